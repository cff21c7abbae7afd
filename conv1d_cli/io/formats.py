"""Signal formats: names, extensions, audio subtypes, and the facts a source has.

- :func:`detect_format` -- format name from an explicit option or the file extension
- :func:`output_subtype` -- the audio subtype an output gets
- :func:`streams_live` -- whether an output format can be written to a pipe as computed
- :class:`SignalInfo`, :class:`CsvDialect`, :class:`Signal` -- what a reader reports

Where an output's format, subtype and rate are decided from the input and the
options: :func:`conv1d_cli.io.outputs.plan_output`.

``-`` is stdin / stdout and then the format must be given explicitly; an unknown
extension or a bare ``-`` raises :class:`~conv1d_cli.errors.FormatError` (a ConfigError *and* a
DataFileError: the CLI exits 2). The audio format reported for a file is the
container libsndfile found (a FLAC named ``.wav`` is ``"flac"``; WAVEX, i.e.
WAVE_FORMAT_EXTENSIBLE, is reported as ``"wav"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf

from conv1d_cli.core import check_dtype
from conv1d_cli.errors import ConfigError, FormatError

__all__ = [
    "CSV_DELIMITERS",
    "CsvDialect",
    "FormatError",
    "Signal",
    "SignalInfo",
    "check_output_subtype",
    "detect_format",
    "is_audio_format",
    "output_subtype",
    "pcm_step",
    "streams_live",
]

# soundfile format names we accept, lower-case (everything libsndfile can read).
_AUDIO_FORMATS: Final = frozenset(name.lower() for name in sf.available_formats())

_TEXT_FORMATS: Final = frozenset({"csv"})

_ARRAY_FORMATS: Final = frozenset({"npy"})

_FORMATS: Final = _AUDIO_FORMATS | _TEXT_FORMATS | _ARRAY_FORMATS

# extension (no dot, lower-case) -> format, where it is not the format name itself
_EXTENSION_ALIASES: Final = {
    "aif": "aiff",
    "aifc": "aiff",
    "snd": "au",
    "oga": "ogg",
    "opus": "ogg",
    "sf": "ircam",
    "sph": "nist",
    "mat": "mat5",
    "iff": "svx",
    "tsv": "csv",  # delimiter is detected, so tab-separated files read fine
    "txt": "csv",
}

_FORMAT_ALIASES: Final = {"aif": "aiff", "tsv": "csv", "txt": "csv", "snd": "au"}

# libsndfile names a WAVE_FORMAT_EXTENSIBLE file (most 24-bit and multichannel WAVs) WAVEX;
# we report "wav" so that "same format and subtype as the input" keeps e.g. PCM_24 for .wav
_FORMAT_FAMILY: Final = {"wavex": "wav"}

_INT_PCM: Final = {
    # subtype: (bits of the sample grid, NumPy dtype handed to soundfile, left shift)
    "PCM_S8": (8, np.int16, 8),
    "PCM_U8": (8, np.int16, 8),
    "PCM_16": (16, np.int16, 0),
    "PCM_24": (24, np.int32, 8),
    "PCM_32": (32, np.int32, 0),
}

_FLOAT_SUBTYPES: Final = frozenset({"FLOAT", "DOUBLE"})

_ON_CLIP: Final = ("warn", "error", "clip")

#: The dtypes of :data:`conv1d_cli.units.DTYPES`, as a signal's messages list them
#: (float64 first: what a signal is read as by default).
_DTYPES: Final = ("float64", "float32")

#: Live (pipe) audio: the containers written here and the sample encodings each takes,
#: as (bits per sample, WAV format tag, AU encoding). Anything else is spooled.
_LIVE_AUDIO: Final = frozenset({"wav", "au", "raw"})

_LIVE_SUBTYPES: Final = {
    "PCM_16": (16, 0x0001, 3),
    "PCM_24": (24, 0x0001, 4),
    "PCM_32": (32, 0x0001, 5),
    "FLOAT": (32, 0x0003, 6),
    "DOUBLE": (64, 0x0003, 7),
}


def detect_format(
    path: str | os.PathLike[str], explicit: str | None = None, *, parameter: str = "input_format"
) -> str:
    """Return the lower-case format name of ``path``.

    Parameters
    ----------
    path : str or path-like
        File name, or ``"-"`` for stdin/stdout.
    explicit : str, optional
        A format given by the user (``--input-format``/``--output-format``); it wins over
        the extension. Case-insensitive; ``aif``/``tsv``/``txt`` are accepted aliases.
    parameter : str
        Which format is meant (``"input_format"`` or ``"output_format"``), for the
        :class:`FormatError`'s ``parameter``: a front end names its option.

    Returns
    -------
    str
        ``"csv"``, ``"npy"`` or a soundfile format in lower case (``"wav"``, ``"flac"``, ...).

    Raises
    ------
    FormatError
        Unknown format name or extension, or ``"-"`` without ``explicit``.

    Examples
    --------
    >>> detect_format("take1.WAV"), detect_format("x.tsv"), detect_format("-", "FLAC")
    ('wav', 'csv', 'flac')
    """
    if explicit is not None:
        name = str(explicit).strip().lower().lstrip(".")
        name = _FORMAT_ALIASES.get(name, name)
        if name not in _FORMATS:
            raise FormatError(
                f"unknown format {explicit!r}; expected one of {', '.join(sorted(_FORMATS))}",
                parameter=parameter,
            )
        return name
    text = os.fspath(path)
    if text == "-":
        raise FormatError(
            "'-' (stdin/stdout) has no extension to tell the format from; "
            "give the format explicitly",
            parameter=parameter,
        )
    ext = Path(text).suffix.lower().lstrip(".")
    name = _EXTENSION_ALIASES.get(ext, ext)
    if name not in _FORMATS:
        found = f"extension {'.' + ext!r}" if ext else "no extension"
        raise FormatError(
            f"{text}: cannot tell the signal format from {found}; expected .wav, .flac, "
            f".ogg, .aiff, .au, .csv, .npy or another soundfile format, "
            f"or give the format explicitly",
            parameter=parameter,
        )
    return name


def is_audio_format(format: str) -> bool:
    """True for formats written through soundfile (they need a whole-Hz sample rate).

    Examples
    --------
    >>> is_audio_format("flac"), is_audio_format("csv")
    (True, False)
    """
    return detect_format("-", format) in _AUDIO_FORMATS


def output_subtype(format: str, preferred: str | None = None) -> str | None:
    """Return the subtype an audio output in ``format`` gets.

    ``preferred`` (e.g. the input's subtype) is kept when ``format`` supports it; otherwise
    the default is ``FLOAT`` where the format has it (WAV, AIFF, AU, CAF, W64, ...),
    ``PCM_24`` for formats without float samples (FLAC) and soundfile's default otherwise
    (``VORBIS`` for OGG). Non-audio formats give ``None``.

    Examples
    --------
    >>> output_subtype("wav"), output_subtype("flac"), output_subtype("ogg")
    ('FLOAT', 'PCM_24', 'VORBIS')
    >>> output_subtype("flac", preferred="FLOAT"), output_subtype("wav", "PCM_16")
    ('PCM_24', 'PCM_16')
    >>> output_subtype("csv") is None
    True
    """
    fmt = detect_format("-", format)
    if fmt not in _AUDIO_FORMATS:
        return None
    upper = fmt.upper()
    if preferred is not None and sf.check_format(upper, str(preferred).upper()):
        return str(preferred).upper()
    for candidate in ("FLOAT", "PCM_24"):
        if sf.check_format(upper, candidate):
            return candidate
    default: str | None = sf.default_subtype(upper)
    return default


def check_output_subtype(subtype: str, format: str) -> None:
    """Refuse an audio subtype for a format that is not audio (ConfigError).

    Examples
    --------
    >>> check_output_subtype("PCM_16", "wav")
    >>> check_output_subtype("PCM_16", "csv")
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: subtype applies to audio outputs only; the output format is CSV
    """
    if output_subtype(format) is None:
        raise ConfigError(
            f"{{parameter}} applies to audio outputs only; the output format is {format.upper()}",
            parameter="subtype",
        )


def pcm_step(subtype: str | None) -> float | None:
    """One code step (LSB) of an integer PCM subtype on the [-1, 1) float scale, else None.

    The writers round ``x * 2**(bits - 1)`` to the nearest code, so dither of one LSB
    is ``pcm_step`` in the units of the samples given to :meth:`SignalWriter.write`.

    Examples
    --------
    >>> pcm_step("PCM_16") == 2.0**-15, pcm_step("PCM_U8"), pcm_step("FLOAT"), pcm_step(None)
    (True, 0.0078125, None, None)
    """
    if subtype is None or subtype.upper() not in _INT_PCM:
        return None
    bits = _INT_PCM[subtype.upper()][0]
    return 2.0 ** -(bits - 1)


def streams_live(format: str, subtype: str | None = None, frames: int | None = None) -> bool:
    """Whether an output in ``format`` can be written to a pipe as it is computed.

    CSV always; NPY when its length (``frames``) is known before writing (the header
    comes first and holds the shape); WAV, AU and RAW in PCM_16, PCM_24, PCM_32, FLOAT
    or DOUBLE (``subtype`` ``None`` = the format's default). The rest (FLAC, AIFF, OGG,
    8-bit and compressed subtypes, ...) must seek or is encoded by libsndfile alone, and
    is spooled.

    Examples
    --------
    >>> streams_live("wav", "PCM_16"), streams_live("npy"), streams_live("npy", None, 10)
    (True, False, True)
    >>> streams_live("flac"), streams_live("wav", "ULAW")
    (False, False)
    """
    fmt = detect_format("-", format)
    if fmt == "csv":
        return True
    if fmt == "npy":
        return frames is not None
    if fmt not in _LIVE_AUDIO:
        return False
    chosen = output_subtype(fmt) if subtype is None else str(subtype).upper()
    return chosen in _LIVE_SUBTYPES


def _check_dtype(dtype: Any) -> np.dtype[Any]:
    """A signal's dtype by the layers' rule (:func:`conv1d_cli.core.check_dtype`).

    In the readers' and writers' own words, which list the choices.
    """
    try:
        return check_dtype(dtype)
    except ConfigError:
        raise ConfigError(f"dtype must be one of {list(_DTYPES)!r}, not {dtype!r}") from None


@dataclass(frozen=True)
class SignalInfo:
    """Header facts about a signal source, read without loading its samples.

    CSV sources are scanned once to count their rows (they have no header to ask).

    Attributes
    ----------
    path : str
        The path as given (``"-"`` for stdin).
    format : str
        Lower-case format name (``"wav"``, ``"flac"``, ``"csv"``, ``"npy"``, ...). For audio
        it is the container libsndfile found, which may differ from the extension.
    subtype : str or None
        soundfile subtype (``"PCM_16"``, ``"FLOAT"``, ...); ``None`` for CSV and NPY.
    sample_rate : float or None
        Samples per second; ``None`` for CSV and NPY.
    channels : int
        Number of channels ``C``.
    frames : int or None
        Length ``L`` in samples; ``None`` when unknown (audio from a pipe).
    batch : int or None
        ``N`` of a batched ``(N, C, L)`` NPY, else ``None``.
    column_names : tuple of str or None
        The header row of a CSV, if it has one.
    csv_dialect : CsvDialect or None
        How a CSV is written (delimiter, quoting, line ending), so that its output
        can be written the same way. Not part of equality: it says nothing about
        the samples.
    time_column : str or None
        The CSV column read as time, not as a channel (its header name, or
        ``column N`` without a header): see ``time_column`` of
        :func:`~conv1d_cli.io.inputs.open_reader`. ``channels`` and ``column_names``
        then leave it out.
    time_detected : bool
        The time column was recognised by its name (``time_column="auto"``).
    """

    path: str
    format: str
    subtype: str | None
    sample_rate: float | None
    channels: int
    frames: int | None
    batch: int | None = None
    column_names: tuple[str, ...] | None = None
    csv_dialect: CsvDialect | None = field(default=None, compare=False)
    time_column: str | None = None
    time_detected: bool = False


#: ``--csv-delimiter`` names -> the character written. Only what the reader detects
#: (comma, semicolon, tab, whitespace), so an output always reads back.
CSV_DELIMITERS: Final[dict[str, str]] = {
    ",": ",",
    "comma": ",",
    ";": ";",
    "semicolon": ";",
    "tab": "\t",
    "\t": "\t",
    "space": " ",
    " ": " ",
}


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is written: what a CSV output copies from a CSV input.

    Attributes
    ----------
    delimiter : str
        ``","``, ``";"``, ``"\\t"`` or ``" "`` (a whitespace-separated input is written
        with single spaces).
    quote_header : bool
        The header's names are in double quotes (``"time","x"``).
    quote_numbers : bool
        The numbers are in double quotes (``"0.5","1"``), as some exporters write them.
    line_end : str
        ``"\\n"`` or ``"\\r\\n"`` (Windows tools, Excel), taken from the first line.
    """

    delimiter: str = ","
    quote_header: bool = False
    quote_numbers: bool = False
    line_end: str = "\n"


@dataclass(frozen=True)
class Signal:
    """A whole signal: ``data`` is ``(C, L)``, or ``(N, C, L)`` for a batched NPY."""

    data: np.ndarray
    info: SignalInfo
