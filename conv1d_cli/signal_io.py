"""Every read and write of signal files: audio (soundfile), CSV and NPY, files and pipes.

This is the only module that knows soundfile's ``(frames, channels)`` layout; everything
it hands out or takes is ``(C, L)`` (or ``(N, C, L)`` for a batched NPY).

Entry points
------------
- :func:`detect_format` -- format name from an explicit option or the file extension
- :func:`probe` -- cheap header facts (:class:`SignalInfo`) without reading samples
- :func:`read_signal` / :func:`write_signal` -- whole signals
- :func:`open_reader` / :func:`open_writer` -- streaming, bounded memory, atomic output
- :func:`output_subtype` -- the audio subtype an output gets
- :func:`plan_output` -- an output's format, subtype, rate and columns (:class:`OutputSpec`)

Behaviour worth knowing
-----------------------
- ``-`` is stdin / stdout and then the format must be given explicitly; an unknown
  extension or a bare ``-`` raises :class:`FormatError` (a ConfigError *and* a
  DataFileError: the CLI exits 2).
- stdin: WAV, WAVEX, W64, AU, AIFF and OGG stream from a pipe (frame count unknown,
  ``info.frames is None``, not seekable); FLAC, RF64, CAF and the other audio formats
  cannot be read from a pipe and raise :class:`~conv1d_cli.errors.DataFileError`. The
  container is told from the first bytes (``RIFF``, ``RF64``, ``fLaC``, ...), not from
  the format given: an RF64 recording named ``.wav`` is refused. CSV and NPY on stdin
  are buffered in memory (then seekable, frames known), at most :func:`pipe_limit` bytes
  (``$CONV1D_PIPE_LIMIT``); an NPY header is checked (magic, version, dtype, shape and
  declared size) before its data is read. A stdin redirected from a regular
  file is seekable and behaves like a file; a terminal on stdin is refused.
- Any other input path that is not a regular file (``<(cat x.csv)``, a named FIFO,
  ``/dev/stdin`` on a pipe; see :func:`is_stream`) follows exactly the rules of ``-``: it
  is opened once and never probed first (that would drain it), and without an extension
  its format must be given.
- stdout on a pipe, FIFO or socket (:func:`is_live_stream`): CSV, NPY of a known length,
  and WAV/AU/RAW in PCM_16/24/32, FLOAT or DOUBLE are written block by block as they are
  computed (:func:`streams_live`): bounded memory, about one block of latency. The WAV,
  AU and NPY headers are written by this module, never by libsndfile (which writes
  corrupt WAV on a pipe): with the true sizes when the output length is known in
  advance (as SoX does), else the unknown-length sizes FFmpeg writes (``0xFFFFFFFF``).
  A failed run stops the stream where it is (a reader sees it cut short). A reader that
  goes away raises :class:`~conv1d_cli.errors.PipeClosedError`.
- Any other stdout (``-`` or ``/dev/stdout`` redirected to a file, a device) and the
  formats that must seek (FLAC, AIFF, OGG, ...) are spooled to an anonymous temporary
  file (in ``$TMPDIR``: disk, not memory) and copied out only when the writer closes
  successfully, so soundfile never sees a pipe and a failed run prints nothing.
- Audio: the reported ``format`` is the container libsndfile found (a FLAC named ``.wav``
  is ``"flac"``; WAVEX, i.e. WAVE_FORMAT_EXTENSIBLE, is reported as ``"wav"``).
  Headerless RAW cannot be read (ConfigError). A file whose data chunk is cut short
  yields the frames that are there (libsndfile's behaviour); a cut header or a corrupt
  FLAC frame raises DataFileError. Zero-frame files raise DataFileError.
- Integer PCM output is rounded (to nearest, exact ties upwards as SoX does;
  not NumPy's ties-to-even) and clipped here, then handed to soundfile as int16/int32 so
  libsndfile's ``floor`` never applies; a value that rounds past
  the largest code (``1.0`` in PCM_16) counts as clipped; NaN is written as 0. Other
  non-float subtypes (ULAW, VORBIS, ...) are clipped to [-1, 1] here and quantised by
  libsndfile. FLOAT/DOUBLE are written as they are. Default subtype: :func:`output_subtype`.
- CSV: rows are time, columns channels. UTF-8 (a BOM is dropped); blank lines and lines
  starting with ``#`` are skipped anywhere; the delimiter is the first of comma, semicolon,
  tab, whitespace that splits the first 20 rows into the same number (> 1) of columns; the
  first row is a header when all its cells are column names by the rule of
  :mod:`conv1d_cli.cells` (a mistyped number such as ``−0.5`` is an error naming the cell,
  never a name). Numbers are written with ``%r`` (shortest exact text). A CSV output keeps a CSV
  input's delimiter, quoting and line ending (:class:`CsvDialect`); otherwise ``.tsv`` outputs
  use tabs, others commas. Numbers with a decimal comma (``-0,06786;0,1``) are refused,
  naming the fix, rather than split into columns at their commas.
- NPY: ``(L,)`` reads as mono ``(1, L)``, ``(C, L)``, ``(N, C, L)`` batch; integer and
  float arrays (values as they are, no scaling); read through ``mmap_mode="r"`` and never
  with pickles. The streaming writer writes time-major (Fortran order) and rewrites the
  header at close; ``np.load`` returns the same ``(C, L)`` / ``(N, C, L)`` array.
  :func:`write_signal` writes a plain C-ordered file.
- File outputs go through :func:`conv1d_cli.atomic.atomic_path`: nothing appears at the
  target unless the writer closes without an error.

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> workdir = tempfile.TemporaryDirectory()
>>> path = str(pathlib.Path(workdir.name) / "tone.wav")
>>> x = np.array([[0.0, 0.25, -0.5], [0.5, 0.0, 0.125]])
>>> write_signal(path, x, format="wav", sample_rate=8000, subtype="PCM_16")
0
>>> sig = read_signal(path)
>>> sig.info.format, sig.info.subtype, sig.info.channels, sig.info.frames
('wav', 'PCM_16', 2, 3)
>>> np.array_equal(sig.data, x)
True
>>> workdir.cleanup()
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import math
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import threading
import tokenize
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import soundfile as sf

from conv1d_cli import cells
from conv1d_cli.atomic import atomic_path
from conv1d_cli.errors import (
    ConfigError,
    Conv1dError,
    DataFileError,
    FormatError,
    PipeClosedError,
    ShapeError,
)
from conv1d_cli.shapes import check_int, check_sample_rate

__all__ = [
    "CSV_DELIMITERS",
    "ClipError",
    "CsvDialect",
    "FormatError",
    "Signal",
    "SignalInfo",
    "SignalReader",
    "OutputSpec",
    "SignalWriter",
    "TIME_NAMES",
    "TimeTrack",
    "check_output_subtype",
    "detect_format",
    "interrupt_inputs",
    "is_audio_format",
    "is_live_stream",
    "is_stream",
    "names_open_file",
    "open_reader",
    "open_writer",
    "output_subtype",
    "pcm_step",
    "pipe_limit",
    "plan_output",
    "probe",
    "streams_live",
    "read_signal",
    "write_signal",
]


class ClipError(Conv1dError):
    """Integer PCM output would clip and ``on_clip="error"`` was asked for (exit 1)."""


# ---------------------------------------------------------------------------------------
# formats

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

# audio containers libsndfile reads correctly from a pipe (checked with libsndfile 1.2.2
# for every subtype: FLAC loses sync, CAF reads 0 frames, RF64 drops frames, SDS hangs)
_PIPE_READABLE: Final = frozenset({"wav", "wavex", "w64", "au", "aiff", "ogg"})
# ... except these subtypes, which libsndfile reads as 0 frames from a pipe, silently
_PIPE_UNREADABLE_SUBTYPES: Final = frozenset(
    {("AU", "G721_32"), ("AU", "G723_24"), ("AU", "G723_40")}
)
# What a pipe holds is told from its first bytes, never from --input-format or the name:
# libsndfile decodes whatever container it finds there. (prefix, bytes 8-12 or b"", name)
_MAGIC: Final = (
    (b"RIFF", b"WAVE", "wav"),
    (b"RIFX", b"WAVE", "wav"),  # big-endian WAV
    (b"RF64", b"WAVE", "rf64"),
    (b"BW64", b"WAVE", "rf64"),  # EBU Tech 3285 broadcast WAV over 4 GB
    (b"riff\x2e\x91\xcf\x11", b"", "w64"),  # the first 8 bytes of W64's RIFF GUID
    (b"FORM", b"AIFF", "aiff"),
    (b"FORM", b"AIFC", "aiff"),
    (b"FORM", b"8SVX", "svx"),
    (b"FORM", b"16SV", "svx"),
    (b".snd", b"", "au"),
    (b"dns.", b"", "au"),  # little-endian AU
    (b"OggS", b"", "ogg"),
    (b"fLaC", b"", "flac"),
    (b"caff", b"", "caf"),
    (b"\x93NUMPY", b"", "npy"),
)
_SNIFF_BYTES: Final = 12
_PIPE_LIMIT_ENV: Final = "CONV1D_PIPE_LIMIT"
_PIPE_LIMIT_DEFAULT: Final = 1 << 30
_SIZE_SHIFTS: Final = {"K": 10, "M": 20, "G": 30, "T": 40}
_NPY_MAX_HEADER: Final = 10000  # numpy's own bound (np.load's max_header_size)
_PIPE_FORMATS_TEXT: Final = "pipe WAV, AU or AIFF instead"

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
_DTYPES: Final = ("float64", "float32")
_CSV_CHUNK: Final = 8192  # lines parsed per vectorised chunk
_ENCODE_CHUNK_SAMPLES: Final = 1 << 16  # PCM encoding: temporaries of 256-512 KiB
_NPY_HEADER_BYTES: Final = 256  # reserved for a streamed NPY header (shape known at close)


def _shown(path: str, *, output: bool = False) -> str:
    if path == "-":
        return "<stdout>" if output else "<stdin>"
    return path


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


def _check_dtype(dtype: Any) -> np.dtype[Any]:
    try:
        dt: np.dtype[Any] | None = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in _DTYPES:
        raise ConfigError(f"dtype must be one of {list(_DTYPES)!r}, not {dtype!r}")
    return dt


def _check_frames(frames: Any) -> int:
    return check_int("frames", frames, minimum=0)


# ---------------------------------------------------------------------------------------
# data classes


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
        ``column N`` without a header): see :func:`open_reader`'s ``time_column``.
        ``channels`` and ``column_names`` then leave it out.
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


# ---------------------------------------------------------------------------------------
# opening sources


def is_stream(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` must be read (or written) once, in order, like stdin / stdout.

    That is ``"-"`` and every existing path that is neither a regular file nor a directory:
    a bash process substitution ``<(...)`` (``/dev/fd/63``), a named FIFO, ``/dev/stdin``
    on a pipe, a character device. Such a source is opened exactly once (probing it first
    would consume the data) and follows the rules of ``-``: non-seekable audio streams, CSV
    and NPY buffered in memory. Symlinks are followed; a missing path is not a stream.

    Examples
    --------
    >>> is_stream("-"), is_stream("/dev/null"), is_stream("no-such-file.wav")
    (True, True, False)
    """
    text = os.fspath(path)
    if text == "-":
        return True
    try:
        mode = os.stat(text).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def names_open_file(path: str | os.PathLike[str]) -> bool:
    """True for ``/dev/...`` and ``/proc/...`` paths (``/dev/stdout``, ``/dev/fd/3``).

    Such a name stands for a file the shell already opened. Even when it leads to a
    regular file (``conv1d ... -o /dev/stdout >> log.csv``) that file must be written
    through the name, never replaced by a rename, which would drop what is in it.

    Examples
    --------
    >>> names_open_file("/dev/stdout"), names_open_file("out.wav")
    (True, False)
    """
    text = os.path.abspath(os.fspath(path))
    return text.startswith(("/dev/", "/proc/"))


def is_live_stream(path: str | os.PathLike[str]) -> bool:
    """True when output to ``path`` goes to a pipe, FIFO or socket (``-`` = fd 1).

    Such an output is read as it is written (``conv1d apply ... -o - | aplay``), so it
    is streamed where the format allows (:func:`streams_live`). A regular file, also
    behind ``/dev/stdout`` (``-o - > out.wav``), a terminal or another device is not:
    those outputs are spooled and appear whole, or not at all.

    Examples
    --------
    >>> is_live_stream("/dev/null"), is_live_stream("no-such-file.wav")
    (False, False)
    """
    text = os.fspath(path)
    try:
        mode = os.fstat(1).st_mode if text == "-" else os.stat(text).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _stdin_binary() -> IO[bytes]:
    stream = sys.stdin
    if stream is None:
        raise DataFileError("<stdin>: no standard input is available")
    try:
        terminal = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        terminal = False
    if terminal:  # reading would wait for the keyboard: say so instead
        raise DataFileError(
            "<stdin>: is a terminal; pipe a signal in (... | conv1d ...) or give a file"
        )
    binary: IO[bytes] = stream.buffer if hasattr(stream, "buffer") else stream  # type: ignore[assignment]
    return binary


def _open_stream(path: str) -> tuple[IO[bytes], bool]:
    """Open a stream source (see :func:`is_stream`) once; return (stream, we_must_close)."""
    if path == "-":
        return _stdin_binary(), False
    try:
        fh = open(path, "rb")  # blocks until a FIFO has a writer, as ``cat`` does
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror}") from e
    terminal = False
    with contextlib.suppress(OSError, ValueError):
        terminal = fh.isatty()
    if terminal:
        fh.close()
        raise DataFileError(f"{path}: is a terminal; give a signal file or pipe one in")
    return fh, True


def _is_seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _check_input_path(path: str) -> None:
    """Turn the common OS failures into one clear DataFileError before any parser runs."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror}") from e
    if os.path.isdir(path):
        raise DataFileError(f"{path}: is a directory, expected a signal file")
    if st.st_size == 0 and os.path.isfile(path):
        raise DataFileError(f"{path}: file is empty")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror}") from e


def _size(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it (``"1 GiB"``, ``"1000 bytes"``)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def pipe_limit() -> int:
    """Bytes a pipe input may hold in memory: ``$CONV1D_PIPE_LIMIT``, default 1 GiB.

    CSV and NPY arriving on a pipe (``-``, ``<(...)``, a FIFO) are read whole, so an
    endless or runaway producer would otherwise fill the memory. The variable takes
    bytes with an optional binary suffix: ``500M``, ``4G``, ``2GiB``, ``123456``.

    Raises
    ------
    ConfigError
        The variable is set but is not a positive size.

    Examples
    --------
    >>> import os
    >>> os.environ["CONV1D_PIPE_LIMIT"] = "4G"
    >>> pipe_limit() == 4 << 30
    True
    >>> del os.environ["CONV1D_PIPE_LIMIT"]
    >>> pipe_limit() == _PIPE_LIMIT_DEFAULT
    True
    """
    text = os.environ.get(_PIPE_LIMIT_ENV, "").strip()
    if not text:
        return _PIPE_LIMIT_DEFAULT
    number = text.upper().removesuffix("B").removesuffix("I")
    shift = 0
    if number[-1:] in _SIZE_SHIFTS:
        number, shift = number[:-1].strip(), _SIZE_SHIFTS[number[-1]]
    if not number.isdigit() or int(number) == 0:
        raise ConfigError(
            f"{_PIPE_LIMIT_ENV}={text!r}: expected a size in bytes such as 500M or 4G"
        )
    return int(number) << shift


def _too_much(path: str, what: str, limit: int) -> DataFileError:
    return DataFileError(
        f"{_shown(path)}: {what} more than the {_size(limit)} a pipe input may hold in "
        f"memory; save it to a file first, or raise the limit with {_PIPE_LIMIT_ENV} "
        f"(e.g. {_PIPE_LIMIT_ENV}=4G)"
    )


def _read_bounded(stream: IO[bytes], path: str) -> bytes:
    """Read ``stream`` to its end, at most :func:`pipe_limit` bytes; refuse it empty."""
    limit = pipe_limit()
    chunks: list[bytes] = []
    total = 0
    try:
        while chunk := stream.read(min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _too_much(path, "the input is", limit)
    except OSError as e:
        raise DataFileError(f"{_shown(path)}: cannot read: {e.strerror}") from e
    if not total:
        raise DataFileError(f"{_shown(path)}: input is empty")
    return b"".join(chunks)


def _read_upto(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes of ``stream``, fewer only at its end."""
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_all_stream(path: str) -> bytes:
    """Read a stream source (``-``, FIFO, ``<(...)``) to its end, in one pass."""
    stream, owned = _open_stream(path)
    try:
        return _read_bounded(stream, path)
    finally:
        if owned:
            stream.close()


class SignalReader:
    """Streaming reader; use :func:`open_reader`. A context manager.

    Attributes
    ----------
    info : SignalInfo
        Header facts.
    seekable : bool
        True when :meth:`head` and :meth:`tail` work (files, and buffered CSV/NPY stdin).
    finite : bool
        True when no value read can be NaN or infinite (integer PCM audio), so a
        check for them can be skipped.
    """

    info: SignalInfo
    seekable: bool
    finite: bool = False

    def __init__(self, info: SignalInfo, dtype: np.dtype[Any], seekable: bool) -> None:
        self.info = info
        self.seekable = seekable
        self._dtype = dtype
        self._closed = False

    # -- public API
    def read(self, frames: int) -> np.ndarray:
        """Return the next block, ``(C, n)`` (``(N, C, n)`` when batched), ``n <= frames``.

        ``n == 0`` only at the end of the signal.
        """
        frames = _check_frames(frames)
        self._check_open()
        return self._read(frames)

    def head(self, frames: int) -> np.ndarray:
        """Return the first ``frames`` samples (fewer if shorter) without moving the reader."""
        frames = _check_frames(frames)
        self._check_open()
        self._need_seek("the start")
        return self._head(frames)

    def tail(self, frames: int) -> np.ndarray:
        """Return the last ``frames`` samples (fewer if shorter) without moving the reader."""
        frames = _check_frames(frames)
        self._check_open()
        self._need_seek("the end")
        return self._tail(frames)

    def close(self) -> None:
        """Release the source; idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> SignalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        """Iterate over blocks of 65536 frames."""
        while True:
            block = self.read(65536)
            if block.shape[-1] == 0:
                return
            yield block

    # -- helpers
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"reader of {_shown(self.info.path)} is closed")

    def _need_seek(self, what: str) -> None:
        if not self.seekable:
            raise DataFileError(
                f"{_shown(self.info.path)}: cannot read {what} of a pipe in advance "
                f"(reflect/replicate/circular padding need it); save the input to a file first"
            )

    def _empty(self) -> np.ndarray:
        shape: tuple[int, ...] = (self.info.channels, 0)
        if self.info.batch is not None:
            shape = (self.info.batch, *shape)
        return np.zeros(shape, self._dtype)

    def time_track(self) -> TimeTrack:
        """The input's time column (CSV with ``time_column``); ConfigError otherwise."""
        raise ConfigError(f"{_shown(self.info.path)}: has no time column")

    def _read(self, frames: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _head(self, frames: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _tail(self, frames: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------
# audio


def _sf_message(e: BaseException) -> str:
    text = getattr(e, "error_string", None) or str(e)
    text = str(text).strip()
    if text.startswith("Error"):  # "Error opening 'x': ..." / "Error : ..."
        text = text.split(":", 1)[-1].strip() if ":" in text else text
    return text.rstrip(".") or "unknown libsndfile error"


def _sniff_container(head: bytes) -> str | None:
    """The container the first bytes of a stream announce (lower case), or None.

    Examples
    --------
    >>> _sniff_container(b"RF64sizeWAVE"), _sniff_container(b"fLaC")
    ('rf64', 'flac')
    >>> _sniff_container(b"1.5,2;3,4") is None
    True
    """
    for prefix, tag, name in _MAGIC:
        if head.startswith(prefix) and (not tag or head[8:12] == tag):
            return name
    return None


def _read_head(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``fd``, fewer only at the end of the stream."""
    head = b""
    while len(head) < size:
        chunk = os.read(fd, size - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _check_pipe_container(path: str, fmt: str, head: bytes) -> None:
    """Refuse, by what the bytes are, a stream libsndfile cannot decode from a pipe."""
    where = _shown(path)
    if not head:
        raise DataFileError(f"{where}: input is empty")
    found = _sniff_container(head)
    if found in _PIPE_READABLE:
        return
    if found is None or found == "npy":
        looks = " (it is an NPY array)" if found == "npy" else ""
        raise DataFileError(
            f"{where}: expected {fmt.upper()} audio on the pipe, found data starting with "
            f"{head!r}{looks}, which is not WAV, W64, AU, AIFF or OGG (the audio that can be "
            f"read from a pipe); save it to a file first"
        )
    declared = _FORMAT_FAMILY.get(fmt, fmt)
    note = "" if found == declared else f" (the data is {found.upper()}, not {fmt.upper()})"
    raise DataFileError(
        f"{where}: {found.upper()} cannot be read from a pipe{note}; save it to a file "
        f"first (or {_PIPE_FORMATS_TEXT})"
    )


class _Relay:
    """A fresh pipe that replays the sniffed first bytes, then the rest of the source.

    A pipe cannot give back what was read from it, and libsndfile must see the stream
    from its first byte *and* as a pipe (through a Python file object it would try to
    seek), so a daemon thread writes the sniffed bytes and then copies the source into
    a new pipe whose read end libsndfile gets. Memory stays at one 64 KiB chunk.

    Attributes
    ----------
    fd : int
        The read end, for libsndfile.
    error : OSError or None
        A read error on the source; the relay then ends the stream early, so a reader
        seeing the end must check this before taking it for the end of the signal.
    """

    def __init__(self, head: bytes, source: int, owned: IO[bytes] | None) -> None:
        self.fd, write_end = os.pipe()
        self.error: OSError | None = None
        self._write_end: int | None = write_end
        self._lock = threading.Lock()  # _write_end is closed or replaced under it
        _RELAYS.add(self)
        self._thread = threading.Thread(
            target=self._pump, args=(head, source, write_end, owned), daemon=True
        )
        self._thread.start()

    def interrupt(self) -> None:
        """End the stream for libsndfile now: it sees EOF, as if the source had ended.

        For a stop signal: the thread blocked in libsndfile reading this pipe is in C,
        where no Python signal handler can run, and would wait for a producer that may
        never write again (a FIFO held open). The write end becomes ``/dev/null`` (one
        ``dup2``, so its number is never free for another file to take); the pump may
        go on copying into it, harmlessly, until the process exits.
        """
        with self._lock:
            if self._write_end is None:
                return
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._write_end)
                os.close(devnull)

    def _pump(self, head: bytes, source: int, write_end: int, owned: IO[bytes] | None) -> None:
        try:
            chunk = head
            while chunk:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(write_end, view) :]
                chunk = os.read(source, 1 << 16)
        except BrokenPipeError:
            pass  # the reader closed its end: it wants nothing more
        except OSError as e:
            self.error = e
        finally:
            with self._lock:
                self._write_end = None
                os.close(write_end)
            if owned is not None:  # closed here: the other thread may still be reading it
                with contextlib.suppress(OSError):
                    owned.close()

    def close(self) -> None:
        """Close the read end; a pump blocked writing then ends with EPIPE."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


#: Every relay still pumping, for :func:`interrupt_inputs`.
_RELAYS: weakref.WeakSet[_Relay] = weakref.WeakSet()


def interrupt_inputs() -> None:
    """Make every audio read blocked on a pipe return (end of stream) at once.

    Meant for a signal handler's helper thread (see ``conv1d_cli.cli._common``): a
    stop signal cannot interrupt libsndfile waiting for a pipe whose producer holds
    it open, and the run could not unwind. Safe to call at any time from any thread;
    what the readers then see is a stream that ended, so call it only when stopping.
    """
    for relay in list(_RELAYS):
        relay.interrupt()


def _open_soundfile(path: str, fmt: str) -> tuple[sf.SoundFile, bool, IO[bytes] | _Relay | None]:
    """Open an audio source; return (SoundFile, seekable, what the caller must close)."""
    if fmt == "raw":
        raise ConfigError(
            f"{_shown(path)}: headerless RAW input is not supported (it has no sample rate, "
            f"channel count or sample type); convert it to WAV first"
        )
    source: Any
    owned: IO[bytes] | _Relay | None = None
    relay: _Relay | None = None
    if is_stream(path):
        stream, must_close = _open_stream(path)
        owned = stream if must_close else None
        try:
            if _is_seekable(stream):
                source = stream  # stdin redirected from a file, or an in-memory buffer
            else:
                try:
                    fd = stream.fileno()
                except (AttributeError, OSError, io.UnsupportedOperation):
                    # a non-seekable Python stream without a descriptor: buffer it, and
                    # take the same containers as from any other pipe
                    data = _read_bounded(stream, path)
                    _check_pipe_container(path, fmt, data[:_SNIFF_BYTES])
                    source = io.BytesIO(data)
                else:
                    try:
                        head = _read_head(fd, _SNIFF_BYTES)
                    except OSError as e:
                        raise DataFileError(f"{_shown(path)}: cannot read: {e.strerror}") from e
                    _check_pipe_container(path, fmt, head)
                    relay = owned = _Relay(head, fd, owned)
                    source = relay.fd
        except BaseException:
            if owned is not None:
                owned.close()
            raise
    else:
        _check_input_path(path)
        source = path
    try:
        f = sf.SoundFile(source, "r", closefd=False) if isinstance(source, int) else None
        if f is None:
            f = sf.SoundFile(source, "r")
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as e:
        if owned is not None:
            owned.close()
        raise DataFileError(
            f"{_shown(path)}: not a readable {fmt.upper()} audio file ({_sf_message(e)})"
        ) from e
    if relay is not None and (str(f.format), str(f.subtype)) in _PIPE_UNREADABLE_SUBTYPES:
        f.close()
        relay.close()
        raise DataFileError(
            f"{_shown(path)}: {f.format} with {f.subtype} samples cannot be read from a pipe "
            f"(libsndfile finds no samples); save it to a file first (or {_PIPE_FORMATS_TEXT})"
        )
    seekable = not isinstance(source, int) and bool(f.seekable())
    return f, seekable, owned


def _audio_info(path: str, f: sf.SoundFile, seekable: bool) -> SignalInfo:
    frames = int(f.frames) if seekable else None
    if frames == 0:
        f.close()
        raise DataFileError(f"{_shown(path)}: audio file has no samples")
    return SignalInfo(
        path=path,
        format=_FORMAT_FAMILY.get(str(f.format).lower(), str(f.format).lower()),
        subtype=str(f.subtype),
        sample_rate=float(f.samplerate),
        channels=int(f.channels),
        frames=frames,
    )


class _AudioReader(SignalReader):
    def __init__(self, path: str, fmt: str, dtype: np.dtype[Any]) -> None:
        f, seekable, owned = _open_soundfile(path, fmt)
        try:
            info = _audio_info(path, f, seekable)
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        super().__init__(info, dtype, seekable)
        self._f = f
        self._owned = owned
        # Integer PCM is read as its integer codes and scaled here: libsndfile's own
        # float conversion of 16-bit WAV costs three times the integer read, and
        # the result is the same to the bit (code * 2**-15 or 2**-31; PCM_32 in
        # float32 rounds the code to float32 first, as libsndfile does).
        self._codes: np.ndarray | None = None
        pcm = _INT_PCM.get(info.subtype or "")
        self.finite = pcm is not None
        self._code_type = None if pcm is None else pcm[1]
        self._code_scale = 0.0 if pcm is None else 2.0 ** (1 - 8 * np.dtype(pcm[1]).itemsize)

    def _block(self, frames: int) -> np.ndarray:
        try:
            if self._code_type is None:
                data = self._f.read(frames, dtype=self._dtype.name, always_2d=True)
            else:
                if self._codes is None or len(self._codes) < frames:
                    self._codes = np.empty((frames, self.info.channels), self._code_type)
                data = self._f.read(out=self._codes[:frames])
        except (sf.SoundFileError, RuntimeError) as e:
            raise DataFileError(
                f"{_shown(self.info.path)}: error reading audio ({_sf_message(e)})"
            ) from e
        relay = self._owned if isinstance(self._owned, _Relay) else None
        if relay is not None and relay.error is not None and len(data) < frames:
            # the relay ended the stream because the source failed: not the real end
            raise DataFileError(
                f"{_shown(self.info.path)}: cannot read: {relay.error.strerror}"
            ) from relay.error
        if self._code_type is None:
            return np.ascontiguousarray(data.T)
        # One pass: convert, scale (exact, a power of two) and transpose to (C, n).
        block = np.empty((self.info.channels, len(data)), self._dtype)
        np.multiply(data.T, self._code_scale, out=block, dtype=self._dtype)
        return block

    def _read(self, frames: int) -> np.ndarray:
        return self._block(frames)

    def _head(self, frames: int) -> np.ndarray:
        pos = self._f.tell()
        self._f.seek(0)
        try:
            return self._block(frames)
        finally:
            self._f.seek(pos)

    def _tail(self, frames: int) -> np.ndarray:
        pos = self._f.tell()
        total = self.info.frames or 0
        self._f.seek(max(0, total - frames))
        try:
            return self._block(frames)
        finally:
            self._f.seek(pos)

    def _close(self) -> None:
        self._f.close()
        if self._owned is not None:
            self._owned.close()


# ---------------------------------------------------------------------------------------
# CSV

_DELIMITERS: Final = (",", ";", "\t", None)  # None = runs of whitespace


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    if '"' not in line:
        # what csv.reader gives for a line without quotes, without its 128 KiB field
        # limit (tried with the wrong delimiter, a wide row is one huge field)
        return line.split(delimiter)
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except csv.Error:  # a quoted field over csv's limit: no number, so one bad cell
        return [line]


_CSV_READ_BYTES: Final = 1 << 20  # text read per batch of lines
# Longest CSV line accepted, in characters: about 600,000 columns of 25-character numbers.
# A longer "line" is a binary file or a stream without newlines, not a row of samples.
_CSV_MAX_LINE: Final = 16 << 20


@dataclass
class _Lines:
    """Data lines of a CSV with their 1-based line numbers in the file."""

    numbers: list[int]
    lines: list[str]

    def __len__(self) -> int:
        return len(self.lines)

    def cut(self, n: int) -> _Lines:
        """Remove and return the first ``n`` lines."""
        head = _Lines(self.numbers[:n], self.lines[:n])
        del self.numbers[:n], self.lines[:n]
        return head


def _line_batches(opener: Callable[[], IO[str]], path: str) -> Iterator[_Lines]:
    """Yield the lines that are neither blank nor ``#`` comments, about 1 MiB at a time.

    ``readlines(hint)`` splits in C; only the comment filter is a comprehension.
    """
    with opener() as fh:
        base = 1
        while True:
            try:
                raw = fh.readlines(_CSV_READ_BYTES)
            except UnicodeDecodeError as e:
                raise DataFileError(
                    f"{_shown(path)}: not a UTF-8 text (CSV) file ({e.reason})"
                ) from e
            if not raw:
                return
            if max(map(len, raw)) > _CSV_MAX_LINE:
                number = base + next(i for i, line in enumerate(raw) if len(line) > _CSV_MAX_LINE)
                raise DataFileError(
                    f"{_shown(path)}: line {number} is longer than {_CSV_MAX_LINE >> 20} MiB, "
                    f"the limit for one CSV row (about 600,000 columns); is it a CSV file?"
                )
            keep = [i for i, line in enumerate(raw) if (t := line.lstrip()) and t[0] != "#"]
            lines = raw if len(keep) == len(raw) else [raw[i] for i in keep]
            yield _Lines([base + i for i in keep], lines)
            base += len(raw)


@dataclass(frozen=True)
class _CsvLayout:
    delimiter: str | None
    width: int
    header: tuple[str, ...] | None
    header_line: int | None
    quote_header: bool = False
    quote_numbers: bool = False


# A number written with a decimal comma (German, French, ... locales): -0,06786 or 1,5e-3.
_DECIMAL_COMMA: Final = re.compile(r'"?\s*[+-]?[0-9]+,[0-9]+(?:[eE][+-]?[0-9]+)?\s*"?', re.ASCII)
_INTEGER: Final = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _decimal_comma(lines: list[str]) -> tuple[int, str, str | None] | None:
    """Find numbers written with a decimal comma: ``(index, cell, column separator)``.

    Read with '.' as the decimal mark, such a file splits every number into two
    columns at the comma (``-0,06786;0,1`` -> ``-0``, ``06786;0``, ``1``), and a
    one-column file would silently become two channels. Two shapes are recognised:

    - columns separated by ``;``, tab or spaces whose cells are all numbers, some with
      a decimal comma (``-0,06786;0,1``, ``0,5<TAB>1``, a one-column ``0,25``); a first
      line of names is skipped;
    - a file that splits on ``,`` into two integer columns everywhere, where the first
      is ``-0`` or the second has a leading zero (``-0,5``, ``0,06786``): a genuine
      integer column has neither. (A one-column ``0,5`` / ``1,25`` file is
      indistinguishable from two integer columns and is read as such.)

    Examples
    --------
    >>> _decimal_comma(["t;x", "-0,06786;0,1"]), _decimal_comma(["0,5 1,5", "1 2"])
    ((1, '-0,06786', ';'), (0, '0,5', None))
    >>> _decimal_comma(["0,06786", "1,5"]), _decimal_comma(["1,2", "3,4"])
    ((0, '0,06786', None), None)
    >>> _decimal_comma(["1.5;2", "3;4,5e-3"]), _decimal_comma(["0.5,1", "2,3"])
    ((1, '4,5e-3', ';'), None)
    """
    for sep in (";", "\t", None):
        rows = [[cell.strip() for cell in _split(line, sep)] for line in lines]
        if all(len(row) < 2 for row in rows):
            continue  # one column: '1,2' may as well be two integers (see below)
        start = 1 if rows and all(cells.is_name(c) for c in rows[0]) else 0
        first = None
        for index, row in enumerate(rows[start:], start):
            for cell in row:
                if _DECIMAL_COMMA.fullmatch(cell):
                    first = first or (index, cell)
                elif not cells.is_number(cell):
                    first = None
                    break
            else:
                continue
            break
        else:
            if first is not None:
                return first[0], first[1], sep
    pairs = [line.split(",") for line in lines]
    if pairs and all(len(p) == 2 and all(_INTEGER.fullmatch(c.strip()) for c in p) for p in pairs):
        for index, (whole, fraction) in enumerate(pairs):
            digits = fraction.strip()
            if whole.strip() == "-0" or (len(digits) > 1 and digits[0] == "0"):
                return index, lines[index].strip(), None
    return None


def _decimal_comma_error(path: str, line: int, cell: str, sep: str | None) -> DataFileError:
    columns = {";": "';' between columns", "\t": "tabs between columns"}.get(
        sep or "", "one column, or spaces between columns"
    )
    pandas_sep = {";": ";", "\t": "\\t"}.get(sep or "", ",")
    import shlex

    name = "in.csv" if is_stream(path) else path
    fixed = str(Path(name).with_name(Path(name).stem + "-dot.csv"))
    return DataFileError(
        f"{_shown(path)}: line {line}: {cell!r} looks like a number with a decimal comma "
        f"({columns}); conv1d reads '.' as the decimal mark and would split it into two "
        f"columns. Convert the decimal commas first, e.g. "
        f"tr ',' '.' < {shlex.quote(name)} > {shlex.quote(fixed)} "
        f"(sed 's/,/./g' does the same), or with pandas: "
        f"pandas.read_csv({name!r}, sep='{pandas_sep}', decimal=',')"
        f".to_csv({fixed!r}, index=False)"
    )


def _detect_delimiter(lines: list[str]) -> str | None:
    """Comma, semicolon, tab or whitespace: the first giving the same width > 1 everywhere.

    If none does, the first of those characters found at all (so a ragged row is reported
    as such), else whitespace (a single column).

    Examples
    --------
    >>> _detect_delimiter(["a;b", "1,5;2"]), _detect_delimiter(["1 2", "3  4"])
    (';', None)
    >>> _detect_delimiter(["x", "1,2"]), _detect_delimiter(["0.5", "7"])
    (',', None)
    """
    for delimiter in _DELIMITERS:
        widths = {len(_split(line, delimiter)) for line in lines}
        if len(widths) == 1 and widths.pop() > 1:
            return delimiter
    for delimiter in _DELIMITERS[:-1]:
        if any(delimiter in line for line in lines):
            return delimiter
    return None


def _csv_layout(path: str, sample: _Lines) -> _CsvLayout:
    """Detect delimiter and header from the first content lines."""
    if not sample:
        raise DataFileError(f"{_shown(path)}: CSV has no data rows")
    lines = [line.rstrip("\r\n") for line in sample.lines]
    found = _decimal_comma(lines)
    if found is not None:
        index, cell, sep = found
        raise _decimal_comma_error(path, sample.numbers[index], cell, sep)
    chosen = _detect_delimiter(lines)
    first = [cell.strip() for cell in _split(lines[0], chosen)]
    header: tuple[str, ...] | None = None
    header_line: int | None = None
    try:
        named = cells.is_header(first)
    except cells.FieldError as e:
        raise DataFileError(f"{_shown(path)}: line {sample.numbers[0]}, {e}") from e
    if named:
        header = tuple(first)
        header_line = sample.numbers[0]
        if len(sample) == 1:
            raise DataFileError(f"{_shown(path)}: CSV has a header row but no data rows")
    # The first data row sets the channel count: a bad cell there (a trailing comma's
    # empty cell) is named now, before anyone reports a wrong number of channels.
    row = 0 if header is None else 1
    for column, cell in enumerate(_split(lines[row], chosen), 1):
        if not cells.is_number(cell):
            raise _bad_cell(path, sample.numbers[row], column, cell)
    quote_header = header is not None and '"' in lines[0]
    return _CsvLayout(chosen, len(first), header, header_line, quote_header, '"' in lines[row])


def _line_end(head: str) -> str:
    """``"\\r\\n"`` when the first line of ``head`` ends so, else ``"\\n"``."""
    end = head.find("\n")
    return "\r\n" if end > 0 and head[end - 1] == "\r" else "\n"


def _bad_cell(path: str, line: int, column: int, cell: str) -> DataFileError:
    return DataFileError(
        f"{_shown(path)}: line {line}, column {column}: expected a number, "
        f"found {cells.describe(cell)}"
    )


def _narrowed(
    values: np.ndarray, dtype: np.dtype[Any], where: Callable[[tuple[int, ...]], str]
) -> np.ndarray:
    """``values`` as a C-ordered ``dtype`` array; a finite value too large for it is an error.

    A float64 NPY or CSV computed in float32 would otherwise turn 1e300 into inf with
    a NumPy warning (past ``-q``), and the finite check would then blame the file for
    an inf it does not hold. ``where`` names the position of a value for the message.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(values, dtype=dtype, order="C")
    if dtype.itemsize < values.dtype.itemsize and values.dtype.kind == "f":
        grown = np.isinf(out) & np.isfinite(values)
        if grown.any():
            at = tuple(int(i) for i in np.argwhere(grown)[0])
            raise DataFileError(
                f"{where(at)}: {float(values[at]):g} does not fit {dtype.name} (largest "
                f"{float(np.finfo(dtype).max):.3g}); compute in float64 (--dtype float64)"
            )
    return out


#: Header names read as a time column by ``time_column="auto"`` (any case, unit allowed).
TIME_NAMES: Final = ("time", "timestamp", "t")


def _column_index(
    path: str, option: str, wanted: str, header: tuple[str, ...] | None, width: int
) -> int:
    """0-based index of column ``wanted``: a header name, else a 1-based number."""
    text = wanted.strip()
    if header is not None:
        for exact in (True, False):
            for i, name in enumerate(header):
                if (name == text) if exact else (name.casefold() == text.casefold()):
                    return i
    if re.fullmatch(r"[0-9]+", text) and 1 <= int(text) <= width:
        return int(text) - 1
    names = f"names {', '.join(map(repr, header))} or " if header is not None else ""
    raise DataFileError(
        f"{_shown(path)}: {option} {wanted!r}: no such column; expected {names}"
        f"a number from 1 to {width}"
    )


def _select_columns(
    path: str,
    layout: _CsvLayout,
    columns: Sequence[str] | None,
    time_column: str | None,
) -> tuple[list[int], int | None, bool]:
    """Channel columns, time column (0-based) and whether the time column was recognised."""
    width, header = layout.width, layout.header
    time_index: int | None = None
    detected = False
    if time_column == "auto":
        if header is not None:
            for i, name in enumerate(header):
                bare = re.sub(r"\s*[(\[].*$", "", name).strip().casefold()
                if bare in TIME_NAMES:
                    time_index, detected = i, True
                    break
    elif time_column is not None:
        time_index = _column_index(path, "--time-column", time_column, header, width)
    if columns is not None:
        chosen = [_column_index(path, "--columns", c, header, width) for c in columns]
        if time_index is not None and time_index in chosen:
            if detected:
                time_index, detected = None, False  # asked for as a channel: it is one
            else:
                raise ConfigError(
                    f"--columns and --time-column both name column {time_index + 1}"
                    f"{'' if header is None else f' ({header[time_index]!r})'}"
                )
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"--columns names a column twice: {','.join(columns)}")
    else:
        chosen = [i for i in range(width) if i != time_index]
    if not chosen:
        raise DataFileError(
            f"{_shown(path)}: no column left to filter (its only column is the time column)"
        )
    return chosen, time_index, detected


class _CsvReader(SignalReader):
    def __init__(
        self,
        path: str,
        dtype: np.dtype[Any],
        columns: Sequence[str] | None = None,
        time_column: str | None = None,
    ) -> None:
        if is_stream(path):  # read once: a second open of a pipe would find it drained
            try:
                text = _read_all_stream(path).decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise DataFileError(f"{_shown(path)}: not UTF-8 text (CSV) ({e.reason})") from e

            def opener() -> IO[str]:
                return io.StringIO(text, newline=None)

            line_end = _line_end(text[:65536])
        else:
            _check_input_path(path)

            def opener() -> IO[str]:
                return open(path, encoding="utf-8-sig", newline=None)

            # Universal newlines hide the line ending from the text: look at the bytes.
            with open(path, "rb") as raw:
                line_end = _line_end(raw.read(65536).decode("latin-1"))

        self._path = path
        self._opener: Callable[[], IO[str]] = opener
        sample = _Lines([], [])
        # one scan: the layout from the first 20 rows, and the row count (no parsing)
        rows = 0
        for batch in _line_batches(opener, path):
            if len(sample) < 20:
                missing = 20 - len(sample)
                sample.numbers += batch.numbers[:missing]
                sample.lines += batch.lines[:missing]
            rows += len(batch)
        self._layout = layout = _csv_layout(path, sample)
        chosen, time_index, detected = _select_columns(path, layout, columns, time_column)
        # None when every column is a channel in file order: no copy per block.
        self._chosen = None if chosen == list(range(layout.width)) else chosen
        self._time_index = time_index
        time_name = None
        if time_index is not None:
            header = layout.header
            time_name = header[time_index] if header is not None else f"column {time_index + 1}"
        info = SignalInfo(
            path=path,
            format="csv",
            subtype=None,
            sample_rate=None,
            channels=len(chosen),
            frames=rows - (1 if layout.header is not None else 0),
            column_names=None if layout.header is None else tuple(layout.header[i] for i in chosen),
            time_column=time_name,
            time_detected=detected,
            csv_dialect=CsvDialect(
                " " if layout.delimiter is None else layout.delimiter,
                layout.quote_header,
                layout.quote_numbers,
                line_end,
            ),
        )
        super().__init__(info, dtype, True)
        self._batches = self._data_batches()
        self._pending = _Lines([], [])

    def _data_batches(self) -> Iterator[_Lines]:
        for batch in _line_batches(self._opener, self._path):
            if batch.numbers and batch.numbers[0] == self._layout.header_line:
                batch.cut(1)
            yield batch

    def _take(self, batches: Iterator[_Lines], pending: _Lines, frames: int) -> _Lines:
        """Up to ``frames`` data lines, pulled from ``pending`` then ``batches``."""
        while len(pending) < frames:
            batch = next(batches, None)
            if batch is None:
                break
            pending.numbers += batch.numbers
            pending.lines += batch.lines
        return pending.cut(frames)

    def _parse(self, chunk: _Lines) -> np.ndarray:
        """Vectorised parse of lines -> (C, n) of the chosen columns; a precise error on failure."""
        if not chunk:
            return self._empty()
        arr = self._parse_rows(chunk)
        columns = list(range(arr.shape[1])) if self._chosen is None else list(self._chosen)
        if self._chosen is not None:
            arr = arr[:, self._chosen]
        out = _narrowed(
            arr.T,
            self._dtype,
            lambda at: (
                f"{_shown(self._path)}: line {chunk.numbers[at[-1]]}, column {columns[at[0]] + 1}"
            ),
        )
        return np.ascontiguousarray(out)

    def _parse_rows(self, chunk: _Lines) -> np.ndarray:
        """Every column of ``chunk`` as float64 ``(n, width)``."""
        layout = self._layout
        try:
            with np.errstate(all="ignore"):
                arr = np.loadtxt(
                    chunk.lines,
                    delimiter=layout.delimiter,
                    dtype=np.float64,
                    comments=None,
                    quotechar='"',
                    ndmin=2,
                )
        except ValueError as e:
            self._locate_error(chunk, e)
            raise DataFileError(f"{_shown(self._path)}: malformed CSV ({e})") from e
        if arr.shape[1] != layout.width:
            self._locate_error(chunk, None)
        return arr

    def time_track(self) -> TimeTrack:
        """The time column, read in a second pass alongside the data (see :class:`TimeTrack`).

        Always float64, whatever the reader's dtype: float32 would round epoch
        timestamps to minutes.
        """
        if self._time_index is None:
            raise ConfigError(f"{_shown(self._path)}: has no time column")
        index = self._time_index

        def values() -> Iterator[np.ndarray]:
            for batch in self._data_batches():
                for start in range(0, len(batch), _CSV_CHUNK):
                    lines = _Lines(
                        batch.numbers[start : start + _CSV_CHUNK],
                        batch.lines[start : start + _CSV_CHUNK],
                    )
                    yield self._parse_rows(lines)[:, index]

        return TimeTrack(values())

    def _locate_error(self, chunk: _Lines, cause: Exception | None) -> None:
        layout = self._layout
        where = _shown(self._path)
        for number, line in zip(chunk.numbers, chunk.lines, strict=True):
            fields = _split(line.rstrip("\r\n"), layout.delimiter)
            if len(fields) != layout.width:
                raise DataFileError(
                    f"{where}: line {number} has {len(fields)} column(s), expected "
                    f"{layout.width} (like the first row)"
                ) from cause
            for column, cell in enumerate(fields, 1):
                if not cells.is_number(cell):
                    raise _bad_cell(self._path, number, column, cell) from cause

    def _read(self, frames: int) -> np.ndarray:
        blocks = []
        remaining = frames
        while remaining > 0:
            chunk = self._take(self._batches, self._pending, min(remaining, _CSV_CHUNK))
            if not chunk:
                break
            blocks.append(self._parse(chunk))
            remaining -= len(chunk)
        if not blocks:
            return self._empty()
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)

    def _head(self, frames: int) -> np.ndarray:
        batches = self._data_batches()
        try:
            return self._parse(self._take(batches, _Lines([], []), frames))
        finally:
            batches.close()  # type: ignore[attr-defined]

    def _tail(self, frames: int) -> np.ndarray:
        last = _Lines([], [])
        for batch in self._data_batches():
            last.numbers += batch.numbers
            last.lines += batch.lines
            if len(last) > frames:
                last.cut(len(last) - frames)
        return self._parse(last)

    def _close(self) -> None:
        self._batches.close()  # type: ignore[attr-defined]


class TimeTrack:
    """The time column of a CSV input, taken at increasing sample indices.

    Output sample ``j`` of a chain with total stride ``S`` gets the input time
    ``t[j * S]``: the time of the input sample at the same index, every S-th for a
    strided chain. For an aligned ('same') layer that is exactly the time of the
    sample the output stands for; for other paddings it is the documented
    convention (the output's first tap plus the left padding). An index past the
    end (a 'full' padding's tail) is extrapolated with the last time step.
    Memory is one parsed chunk, whatever the file's length.
    """

    def __init__(self, chunks: Iterator[np.ndarray]) -> None:
        self._chunks = chunks
        self._buffer = np.empty(0)
        self._start = 0  # input index of self._buffer[0]
        self._last = np.empty(0)  # the last two values seen, for extrapolation

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Times at ``indices`` (non-decreasing, and not below an earlier call's)."""
        out = np.empty(len(indices))
        for k, index in enumerate(indices.tolist()):
            while index >= self._start + len(self._buffer):
                chunk = next(self._chunks, None)
                if chunk is None:
                    out[k] = self._extrapolate(index)
                    break
                self._keep_last(chunk)
                self._start += len(self._buffer)
                self._buffer = chunk
            else:
                out[k] = self._buffer[index - self._start]
        return out

    def _keep_last(self, chunk: np.ndarray) -> None:
        self._last = np.concatenate([self._last, chunk[-2:]])[-2:]

    def _extrapolate(self, index: int) -> float:
        last = self._last
        end = self._start + len(self._buffer) - 1
        if len(last) == 0:
            return math.nan
        step = float(last[-1] - last[-2]) if len(last) == 2 else 0.0
        return float(last[-1]) + (index - end) * step


# ---------------------------------------------------------------------------------------
# NPY


def _npy_header(fh: IO[bytes], path: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            header = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            header = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported NPY version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as e:
        raise DataFileError(f"{_shown(path)}: not a valid NPY file ({e})") from e
    shape, fortran, dtype = header
    return tuple(int(n) for n in shape), bool(fortran), dtype


def _npy_layout(path: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> SignalInfo:
    where = _shown(path)
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        kind = "complex" if dtype.kind == "c" else f"{dtype}"
        raise DataFileError(
            f"{where}: NPY holds {kind} values; expected real numbers (float or integer)"
        )
    if len(shape) not in (1, 2, 3):
        raise DataFileError(
            f"{where}: NPY array has shape {shape}; expected (L,), (C, L) or (N, C, L)"
        )
    if 0 in shape:
        raise DataFileError(f"{where}: NPY array of shape {shape} has no samples")
    batch = shape[0] if len(shape) == 3 else None
    channels = 1 if len(shape) == 1 else shape[-2]
    return SignalInfo(
        path=path,
        format="npy",
        subtype=None,
        sample_rate=None,
        channels=channels,
        frames=shape[-1],
        batch=batch,
    )


def _npy_stream_header(fh: IO[bytes], path: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """:func:`_npy_header` for a pipe: every length is checked before it is read.

    numpy reads a declared header length (up to 4 GiB in version 2.0) before checking
    it, and ``/dev/zero`` must fail on its magic, not after filling the memory.
    """
    where = _shown(path)
    start = _read_upto(fh, 8)  # magic string and version
    if not start:
        raise DataFileError(f"{where}: input is empty")
    try:
        version = np.lib.format.read_magic(io.BytesIO(start))
    except ValueError as e:
        raise DataFileError(f"{where}: not a valid NPY file ({e})") from e
    width = {(1, 0): 2, (2, 0): 4}.get(version)
    if width is None:
        raise DataFileError(f"{where}: not a valid NPY file (unsupported NPY version {version})")
    field = _read_upto(fh, width)
    length = int.from_bytes(field, "little") if len(field) == width else -1
    if not 0 <= length <= _NPY_MAX_HEADER:
        shown = "cut short" if length < 0 else f"{length} bytes long"
        raise DataFileError(
            f"{where}: not a valid NPY file (its header is {shown}; expected at most "
            f"{_NPY_MAX_HEADER} bytes)"
        )
    return _npy_header(io.BytesIO(start + field + _read_upto(fh, length)), path)


def _read_npy_stream(path: str) -> np.ndarray:
    """Read an NPY array from a pipe: header first, its declared size bounded, then data."""
    stream, owned = _open_stream(path)
    try:
        shape, fortran, file_dtype = _npy_stream_header(stream, path)
        _npy_layout(path, shape, file_dtype)  # a bad dtype or shape fails before any data
        nbytes = math.prod(shape) * file_dtype.itemsize
        declared = f"the NPY header declares shape {shape} of {file_dtype} ({nbytes} bytes)"
        limit = pipe_limit()
        if nbytes > limit:
            raise _too_much(path, f"{declared},", limit)
        try:
            data = _read_upto(stream, nbytes)
        except OSError as e:
            raise DataFileError(f"{_shown(path)}: cannot read: {e.strerror}") from e
    finally:
        if owned:
            stream.close()
    if len(data) < nbytes:
        raise DataFileError(
            f"{_shown(path)}: not a valid NPY file ({declared}, but the data ends after "
            f"{len(data)} bytes)"
        )
    arr = np.frombuffer(data, dtype=file_dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


class _NpyReader(SignalReader):
    def __init__(self, path: str, dtype: np.dtype[Any]) -> None:
        stream = is_stream(path)
        if stream:  # read once into memory, like stdin
            arr = _read_npy_stream(path)
            info = _npy_layout(path, arr.shape, arr.dtype)
        else:
            _check_input_path(path)
            with open(path, "rb") as fh:
                shape, _, file_dtype = _npy_header(fh, path)
            info = _npy_layout(path, shape, file_dtype)
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise DataFileError(f"{_shown(path)}: not a valid NPY file ({e})") from e
        if arr.ndim == 1:
            arr = arr[None, :]
        super().__init__(info, dtype, True)
        self._arr = arr
        self._pos = 0

    def _slice(self, start: int, stop: int) -> np.ndarray:
        return _narrowed(
            self._arr[..., start:stop],
            self._dtype,
            lambda at: f"{_shown(self.info.path)}: channel {at[-2]}, sample {start + at[-1]}",
        )

    def _read(self, frames: int) -> np.ndarray:
        start = self._pos
        self._pos = min(start + frames, self._arr.shape[-1])
        return self._slice(start, self._pos)

    def _head(self, frames: int) -> np.ndarray:
        return self._slice(0, frames)

    def _tail(self, frames: int) -> np.ndarray:
        length = self._arr.shape[-1]
        return self._slice(max(0, length - frames), length)

    def _close(self) -> None:
        mm = getattr(self._arr, "_mmap", None) or getattr(
            getattr(self._arr, "base", None), "_mmap", None
        )
        self._arr = np.zeros((0, 0))
        if mm is not None:
            with contextlib.suppress(BufferError, ValueError):
                mm.close()


# ---------------------------------------------------------------------------------------
# public reading API


def open_reader(
    path: str | os.PathLike[str],
    format: str | None = None,
    dtype: Any = "float64",
    *,
    columns: Sequence[str] | None = None,
    time_column: str | None = None,
) -> SignalReader:
    """Open a signal for block-wise reading with bounded memory.

    Parameters
    ----------
    path : str or path-like
        File, or ``"-"`` for stdin (then ``format`` is required).
    format : str, optional
        Overrides the extension (see :func:`detect_format`).
    dtype : {"float64", "float32"}
        Sample type of the blocks returned.
    columns : sequence of str, optional
        CSV only: the columns read as channels, in this order (header names, or 1-based
        numbers); the others are not read. Default: every column but the time column.
    time_column : str, optional
        CSV only: a column holding time, not a channel (a header name or a 1-based
        number); ``"auto"`` takes a header named ``time``, ``timestamp`` or ``t`` (any
        case, a unit such as ``time (s)`` allowed) if there is one. The reader leaves it
        out of ``channels``; ``reader.time_track()`` gives its values
        (:class:`TimeTrack`). Default: no time column.

    Returns
    -------
    SignalReader
        ``.info``, ``.seekable``, ``.read(n)``, ``.head(n)``, ``.tail(n)``; a context manager.

    Raises
    ------
    DataFileError
        Missing, empty, unreadable or malformed input.
    ConfigError
        Unknown format, bad ``dtype``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "x.npy"
    >>> np.save(path, np.arange(10.0).reshape(2, 5))
    >>> with open_reader(path) as r:
    ...     r.info.channels, r.read(3).shape, r.read(3).shape, r.read(3).shape
    (2, (2, 3), (2, 2), (2, 0))
    >>> workdir.cleanup()
    """
    text = os.fspath(path)
    if text != "-" and not os.path.lexists(text):
        # Before the format: a missing file is that, whatever its extension (as cat says).
        raise DataFileError(f"{text}: no such file")
    if text != "-" and os.path.isdir(text):
        raise DataFileError(f"{text}: is a directory, expected a signal file")
    fmt = detect_format(text, format)
    dt = _check_dtype(dtype)
    if fmt == "csv":
        return _CsvReader(text, dt, columns, time_column)
    if columns is not None or (time_column is not None and time_column != "auto"):
        option = "--columns" if columns is not None else "--time-column"
        raise ConfigError(f"{option} applies to CSV inputs only; {text} is {fmt.upper()}")
    if fmt == "npy":
        return _NpyReader(text, dt)
    return _AudioReader(text, fmt, dt)


def probe(path: str | os.PathLike[str], format: str | None = None) -> SignalInfo:
    """Return a signal's :class:`SignalInfo` without reading its samples.

    A CSV is scanned to count its rows. ``probe("-", fmt)`` consumes stdin; use
    ``open_reader("-", fmt).info`` when the data is needed too.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "batch.npy"
    >>> np.save(path, np.zeros((4, 2, 100), np.float32))
    >>> info = probe(path)
    >>> info.format, info.batch, info.channels, info.frames, info.sample_rate
    ('npy', 4, 2, 100, None)
    >>> workdir.cleanup()
    """
    with open_reader(path, format) as reader:
        return reader.info


def read_signal(
    path: str | os.PathLike[str], format: str | None = None, dtype: Any = "float64"
) -> Signal:
    """Read a whole signal into memory as ``(C, L)`` (or ``(N, C, L)`` for a batched NPY).

    ``"-"`` reads stdin to its end. For a pipe (``info.frames is None``) the returned
    ``info.frames`` is the length actually read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "acc.csv"
    >>> _ = path.write_text("# sensor A\\nx;y\\n1.5;2\\n-3;4e-1\\n")
    >>> sig = read_signal(path)
    >>> sig.data
    array([[ 1.5, -3. ],
           [ 2. ,  0.4]])
    >>> sig.info.column_names
    ('x', 'y')
    >>> workdir.cleanup()
    """
    with open_reader(path, format, dtype) as reader:
        info = reader.info
        if info.frames is not None:
            data = reader.read(info.frames)
            if data.shape[-1] < info.frames:  # e.g. a truncated audio file
                rest = [data]
                while (block := reader.read(1 << 16)).shape[-1]:
                    rest.append(block)
                data = np.concatenate(rest, axis=-1)
        else:
            blocks = []
            while (block := reader.read(1 << 16)).shape[-1]:
                blocks.append(block)
            data = np.concatenate(blocks, axis=-1) if blocks else reader._empty()
            if data.shape[-1] == 0:
                raise DataFileError(f"{_shown(info.path)}: input has no samples")
            info = dataclasses.replace(info, frames=int(data.shape[-1]))
    return Signal(data, info)


# ---------------------------------------------------------------------------------------
# writers


class _Aborted(Exception):
    """Internal: tells atomic_path to discard the temporary file."""


# what a failing write(2) / fsync / rename looks like: OSError from Python file objects
# (ENOSPC, EFBIG, EIO, ...), LibsndfileError (a SoundFileError) from soundfile
_WRITE_ERRORS: Final = (OSError, sf.SoundFileError)


class SignalWriter:
    """Atomic streaming writer; use :func:`open_writer`. A context manager.

    Blocks passed to :meth:`write` are ``(C, n)`` (``(N, C, n)`` for a batched NPY). The
    output appears at its path (or on stdout) only when :meth:`close` runs without an
    error; leaving the ``with`` block through an exception removes the temporary file.

    Attributes
    ----------
    clipped : int
        Samples clipped so far (integer PCM and other non-float audio subtypes).
    frames : int
        Frames written so far.
    """

    clipped: int
    frames: int

    def __init__(
        self,
        path: str,
        fmt: str,
        channels: int,
        batch: int | None,
        on_clip: str,
        *,
        live: bool = False,
        declared: int | None = None,
    ) -> None:
        self.path = path
        self.format = fmt
        self.channels = channels
        self.batch = batch
        self.on_clip = on_clip
        self.clipped = 0
        self.frames = 0
        self.live = live
        # the frames a live header announced: any other count is an error at close
        self._declared = declared
        # a live writer's header, sent with the first block: a run that fails before
        # any output (a bad input) leaves the pipe empty, as it leaves no file
        self._header = b""
        self._done = False
        self._failed = False
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._spool: IO[bytes] | None = None
        self._stream: IO[bytes] | None = None
        self._copying = False  # the spool is being copied to its destination
        # where the encoder writes: the pipe itself (live), a temp path next to the target,
        # or an anonymous spool for stdout and for outputs that are not regular files
        # (/dev/stdout, a FIFO) in a format whose encoder seeks (WAV/NPY headers)
        if live:
            self._stream = self._open_live()
            self.target: Path | IO[bytes] = self._stream
        elif is_stream(path) or names_open_file(path):
            self._spool = tempfile.TemporaryFile()
            self.target = self._spool
        else:
            if os.path.isdir(path):
                raise DataFileError(f"{path}: is a directory, expected an output file name")
            self._atomic = atomic_path(path)
            self.target = self._atomic.__enter__()

    # -- public API
    def write(self, block: np.ndarray) -> None:
        """Append ``block`` (``(C, n)``, or ``(N, C, n)`` for a batch)."""
        if self._done:
            raise ValueError(f"writer of {_shown(self.path, output=True)} is closed")
        arr = np.asarray(block)
        expected = (self.channels,) if self.batch is None else (self.batch, self.channels)
        if arr.ndim != len(expected) + 1 or arr.shape[:-1] != expected:
            layout = "(C, n)" if self.batch is None else "(N, C, n)"
            raise ShapeError(
                f"{_shown(self.path, output=True)}: block of shape {arr.shape} does not fit "
                f"the output; expected {layout} with {'N, C' if self.batch else 'C'} = "
                f"{expected if self.batch else self.channels}"
            )
        if arr.dtype.kind not in "biuf":
            raise ShapeError(
                f"{_shown(self.path, output=True)}: expected real numbers to write, "
                f"got dtype {arr.dtype}"
            )
        with self._guarded():
            self._send_header()
            self._write(arr)
        self.frames += int(arr.shape[-1])

    def close(self) -> None:
        """Finish the file and publish it (rename into place, or copy to stdout)."""
        if self._done:
            return
        if self._failed:
            self.abort()
            return
        if self._declared is not None and self.frames != self._declared:
            # The header on the pipe promised another length: the reader must be told
            # by the exit status that what it got is not the whole signal.
            self.abort()
            raise DataFileError(
                f"{_shown(self.path, output=True)}: {self.frames} frames were written but "
                f"the header sent ahead announced {self._declared} (the input ended "
                f"before its own header said it would)"
            )
        with self._guarded():
            self._send_header()
            self._finish()
            if self._spool is not None:
                self._copy_to_stdout()
            if self._stream is not None:
                self._stream.flush()
                if self.path != "-":
                    self._stream.close()
        self._done = True
        if self._atomic is not None:
            try:  # fsync + rename; atomic_path removes the temp file if they fail
                self._atomic.__exit__(None, None, None)
            except _WRITE_ERRORS as e:
                raise self._write_error(e) from e

    def abort(self) -> None:
        """Discard everything written; nothing is published. Idempotent."""
        if self._done:
            return
        self._done = True
        self._failed = True
        with contextlib.suppress(Exception):
            self._discard()
        if self._atomic is not None:
            exc = _Aborted()
            with contextlib.suppress(_Aborted):
                self._atomic.__exit__(_Aborted, exc, None)
        if self._spool is not None:
            with contextlib.suppress(OSError):  # flushing a doomed spool can fail (disk full)
                self._spool.close()
        if self._stream is not None:
            # What was written stays written: the reader sees the stream cut short (and
            # the exit status). Unflushed bytes are dropped, never sent after the error.
            with contextlib.suppress(OSError, ValueError):
                if self.path == "-":
                    self._stream.flush()
                else:
                    self._stream.close()

    def __enter__(self) -> SignalWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # a writer dropped without close() must not leave its temporary file behind
        if not getattr(self, "_done", True):
            with contextlib.suppress(Exception):
                self.abort()

    # -- helpers
    def _send_header(self) -> None:
        if self._header:
            header, self._header = self._header, b""
            assert self._stream is not None
            self._stream.write(header)

    def _open_live(self) -> IO[bytes]:
        """The pipe a live writer writes to: stdout's buffer, or the FIFO/socket path."""
        if self.path == "-":
            with contextlib.suppress(AttributeError, ValueError, OSError):
                sys.stdout.flush()  # keep any text already printed in order
            stdout: Any = sys.stdout
            out: IO[bytes] = getattr(stdout, "buffer", stdout)
            return out
        try:
            # blocks until the FIFO has a reader, as `cat > fifo` does
            return open(self.path, "ab")
        except OSError as e:
            raise DataFileError(f"{self.path}: cannot write: {e.strerror}") from e

    def _write_error(self, e: BaseException) -> DataFileError:
        if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE):
            return PipeClosedError(f"{_shown(self.path, output=True)}: the reader closed the pipe")
        if isinstance(e, OSError):
            reason = e.strerror or str(e) or type(e).__name__
        else:
            reason = _sf_message(e)
        if self._spool is not None and not self._copying:
            # the output itself was not touched yet: say where the bytes were going
            reason += (
                f" (while spooling the output in {tempfile.gettempdir()}; "
                f"point TMPDIR at a disk with room)"
            )
        return DataFileError(f"{_shown(self.path, output=True)}: cannot write: {reason}")

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """Abort (temp file removed, nothing published) on any error; OS/libsndfile write
        failures (a full disk) become one DataFileError naming the output."""
        try:
            yield
        except _WRITE_ERRORS as e:
            self.abort()
            raise self._write_error(e) from e
        except BaseException:
            self.abort()
            raise

    def _copy_to_stdout(self) -> None:
        assert self._spool is not None
        self._copying = True
        self._spool.flush()
        self._spool.seek(0)
        if self.path != "-":  # a device or FIFO named by its path: opened once, at the end
            try:
                # Append: a regular file behind /dev/stdout (`>> log`) keeps what it holds.
                with open(self.path, "ab") as device:
                    shutil.copyfileobj(self._spool, device, 1 << 20)
            except BrokenPipeError as e:
                raise PipeClosedError(f"{self.path}: the reader closed the pipe") from e
            self._spool.close()
            return
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stdout.flush()  # keep any text already printed in order
        out = getattr(sys.stdout, "buffer", sys.stdout)
        try:
            shutil.copyfileobj(self._spool, out, 1 << 20)
            out.flush()
        except BrokenPipeError as e:
            raise PipeClosedError("<stdout>: the reader closed the pipe") from e
        self._spool.close()

    def _write(self, arr: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def _discard(self) -> None:
        pass


class _AudioWriter(SignalWriter):
    def __init__(
        self,
        path: str,
        fmt: str,
        channels: int,
        sample_rate: float | None,
        subtype: str | None,
        on_clip: str,
        declared: int | None = None,
    ) -> None:
        upper = fmt.upper()
        if sample_rate is None:
            raise ConfigError(f"{_shown(path, output=True)}: audio output needs a sample rate")
        try:
            rate = check_sample_rate("sample rate", sample_rate, integer=True)
        except ConfigError as e:
            raise ConfigError(f"{_shown(path, output=True)}: {e}") from None
        if subtype is None:
            chosen = output_subtype(fmt)
        else:
            chosen = str(subtype).upper()
            if not sf.check_format(upper, chosen):
                valid = ", ".join(sf.available_subtypes(upper))
                raise ConfigError(
                    f"{_shown(path, output=True)}: subtype {subtype!r} is not valid for "
                    f"{upper}; expected one of {valid}"
                )
        assert chosen is not None
        self.subtype = chosen
        super().__init__(path, fmt, channels, None, on_clip, **self._live_args(fmt, declared))
        self._open_encoder(int(rate))

    def _live_args(self, fmt: str, declared: int | None) -> dict[str, Any]:
        """How :class:`SignalWriter` opens the target: a file writer is never live."""
        return {}

    def _open_encoder(self, rate: int) -> None:
        upper, chosen, path, channels = self.format.upper(), self.subtype, self.path, self.channels
        # The stdout spool goes to libsndfile as a descriptor, as a file output goes as a
        # path: through a Python file object (soundfile's virtual I/O) a failed write, e.g.
        # $TMPDIR full, is only printed from a cffi callback and ends in an AssertionError.
        target: str | int = (
            str(self.target) if isinstance(self.target, Path) else self.target.fileno()
        )
        try:
            self._sf = sf.SoundFile(
                target,
                "w",
                samplerate=rate,
                channels=channels,
                format=upper,
                subtype=chosen,
                closefd=False,
            )
        except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as e:
            self.abort()
            raise DataFileError(
                f"{_shown(path, output=True)}: cannot write {upper} {chosen} with "
                f"{channels} channels at {rate} Hz ({_sf_message(e)})"
            ) from e

    def _clip_report(
        self,
        x: np.ndarray,
        over: np.ndarray,
        codes: tuple[np.ndarray, int, int] | None = None,
        offset: int = 0,
    ) -> None:
        """Count the samples flagged in ``over``; with ``--on-clip error`` name the first.

        ``x`` holds the block's columns from ``offset``. ``codes`` is ``(rounded,
        lowest, highest)`` for integer PCM: a sample such as 0.99999 lies inside
        [-1, 1) yet rounds past the largest code, so the message gives the code it
        rounds to, not a range the value is inside of.
        """
        count = int(np.count_nonzero(over))
        if not count:
            return
        if self.on_clip == "error":
            t = int(np.argmax(over.any(axis=0)))
            c = int(np.argmax(over[:, t]))
            value = float(x[c, t])  # repr below: the shortest text that is this value
            found = f"is {value!r}, outside the {self.subtype} range [-1, 1]"
            if codes is not None:
                rounded, lowest, highest = codes
                code = float(rounded[c, t])
                if np.isfinite(code):
                    found = (
                        f"is {value!r}, which rounds to {self.subtype} code {int(code)}, "
                        f"outside the codes [{lowest}, {highest}]"
                    )
                else:
                    found = f"is {value!r}, outside the {self.subtype} codes [{lowest}, {highest}]"
            outcome = "the output stops here" if self.live else "no output was written"
            raise ClipError(
                f"{_shown(self.path, output=True)}: sample {self.frames + offset + t} of "
                f"channel {c} {found} (--on-clip error); {outcome}"
            )
        self.clipped += count

    def _write(self, arr: np.ndarray) -> None:
        self._sf.write(self._samples(arr))

    def _samples(self, arr: np.ndarray) -> np.ndarray:
        """``(C, n)`` values -> the ``(n, C)`` samples to encode, rounded and clipped.

        The one rounding and clipping rule of every audio output, file or pipe: integer
        PCM as int16/int32 codes (:meth:`_to_int`), FLOAT/DOUBLE as they are, other
        subtypes clipped to [-1, 1] for libsndfile to quantise.
        """
        if self.subtype in _INT_PCM:
            return self._to_int(arr)
        if self.subtype in _FLOAT_SUBTYPES:
            x = arr if arr.dtype.kind == "f" else arr.astype(np.float64)
            return np.ascontiguousarray(x.T)
        x = arr.astype(np.float64, copy=False)
        with np.errstate(invalid="ignore"):
            over = (x > 1.0) | (x < -1.0)
        self._clip_report(x, over)
        return np.ascontiguousarray(np.clip(x, -1.0, 1.0).T)

    def _to_int(self, arr: np.ndarray) -> np.ndarray:
        """Round to the subtype's grid, clip (counting), return (n, C) int16/int32 codes.

        Rounding is to the nearest code, exact ties upwards (``100.5 -> 101``,
        ``-100.5 -> -100``), as SoX does; not NumPy's ties-to-even ``rint``.
        A value that rounds past the largest code counts as clipped.
        """
        bits, int_type, shift = _INT_PCM[self.subtype]
        # float32 holds every code up to 24 bits exactly (the scale is a power of two);
        # PCM_32 needs float64, as 2**31 - 1 is not a float32
        work = np.float32 if arr.dtype == np.float32 and bits <= 24 else np.float64
        scale = float(1 << (bits - 1))
        hi = scale - 1
        channels, frames = arr.shape
        out = np.empty((frames, channels), int_type)
        # A chunk of frames at a time: bounded temporaries, reused from one to the next.
        chunk = max(256, _ENCODE_CHUNK_SAMPLES // max(1, channels))
        buf = np.empty((channels, min(chunk, frames)), work)
        for t0 in range(0, frames, chunk):
            x = arr[:, t0 : t0 + chunk]
            q = buf[:, : x.shape[1]]
            # A float32 near its largest value scales to inf: that is clipped below, like
            # any other overflow, so NumPy's overflow warning would only be noise.
            with np.errstate(over="ignore"):
                np.multiply(x, scale, out=q, dtype=work)
            _round_half_up(q)
            if not (q.max() <= hi and q.min() >= -scale):  # clipping or NaN: slow path
                with np.errstate(invalid="ignore"):
                    over = (q > hi) | (q < -scale)
                self._clip_report(x, over, (q, -int(scale), int(hi)), t0)
                np.clip(q, -scale, hi, out=q)
                q[np.isnan(q)] = 0.0  # NaN has no integer code; the CLI refuses NaN by default
            # Channel by channel: a copy into the interleaved (n, C) codes as one
            # transposed copy runs an inner loop of C elements, four times slower.
            for c in range(channels):
                np.copyto(out[t0 : t0 + q.shape[1], c], q[c], casting="unsafe")
        if shift:
            out <<= shift  # libsndfile takes the top bits of int16/int32 for 8/24-bit files
        return out

    def _finish(self) -> None:
        self._sf.close()

    def _discard(self) -> None:
        self._sf.close()


def _round_half_up(q: np.ndarray) -> None:
    """Round ``q`` in place to integers, exact ties upwards (towards +inf), as SoX does.

    So ``conv1d apply`` and ``sox -D`` (no dither) write the same PCM codes, except
    within about 1e-5 of a tie, where SoX's own float error decides (one code apart).
    ``floor(q + 0.5)`` would be wrong just below a tie (``0.49999997 + 0.5`` rounds up to
    ``1.0`` in float32); ``q - floor(q)`` is exact, so the tie test is too.

    Examples
    --------
    >>> q = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.4, -2.6, np.nan])
    >>> _round_half_up(q)
    >>> q
    array([ 1.,  2.,  3.,  0., -2.,  2., -3., nan])
    """
    whole = np.floor(q)
    with np.errstate(invalid="ignore"):  # inf - inf: the inf stays inf below
        up = (q - whole) >= 0.5
    np.add(whole, up, out=q, casting="unsafe")


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
#: What a WAV or AU header says when the length is not known: FFmpeg's sizes, which
#: libsndfile (and SoX with --ignore-length) read as "until the data ends".
_UNKNOWN_SIZE: Final = 0xFFFFFFFF
#: KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT without their first two bytes (the format tag).
_WAVEX_GUID_TAIL: Final = bytes.fromhex("000000001000800000aa00389b71")


def _wav_header(channels: int, rate: int, subtype: str, frames: int | None) -> bytes:
    """A WAV header for a pipe: RIFF, ``fmt `` and the ``data`` chunk's header.

    WAVE_FORMAT_EXTENSIBLE for more than two channels or more than 16 bits, as
    Microsoft asks and SoX and FFmpeg write on a pipe (libsndfile's WAV writer keeps
    the plain tag), with speaker positions for mono and stereo only (0 = none
    assigned, rather than guess a layout). The RIFF and data sizes are the true ones
    when ``frames`` is known and fits 32 bits, else ``0xFFFFFFFF``.

    Examples
    --------
    >>> len(_wav_header(2, 8000, "PCM_16", 10)), len(_wav_header(2, 8000, "PCM_24", None))
    (44, 68)
    """
    bits, tag, _ = _LIVE_SUBTYPES[subtype]
    align = channels * bits // 8
    extensible = channels > 2 or bits > 16
    fmt = struct.pack(
        "<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits
    )
    if extensible:
        mask = {1: 0x4, 2: 0x3}.get(channels, 0)
        guid = struct.pack("<H", tag) + _WAVEX_GUID_TAIL
        fmt += struct.pack("<HHI", 22, bits, mask) + guid
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    data = None if frames is None else frames * align
    if data is None or 4 + len(chunks) + data > _UNKNOWN_SIZE - 1:
        riff = data_size = _UNKNOWN_SIZE
    else:
        riff, data_size = len(chunks) + 4 + data, data
    return b"RIFF" + struct.pack("<I", riff) + chunks + struct.pack("<I", data_size)


def _au_header(channels: int, rate: int, subtype: str, frames: int | None) -> bytes:
    """A Sun/NeXT AU header (big-endian); data size ``0xFFFFFFFF`` when not known."""
    bits, _, encoding = _LIVE_SUBTYPES[subtype]
    size = _UNKNOWN_SIZE if frames is None else frames * channels * bits // 8
    if size >= _UNKNOWN_SIZE:
        size = _UNKNOWN_SIZE
    return b".snd" + struct.pack(">IIIII", 24, size, encoding, rate, channels)


class _LiveAudioWriter(_AudioWriter):
    """WAV, AU or RAW straight to a pipe, a block at a time.

    libsndfile cannot write WAV to a pipe (it seeks back to fix the header), so the
    header is written here, once, up front; the samples come out of the file writer's
    own :meth:`_AudioWriter._samples` (same rounding and clipping) and are only laid out
    as bytes here: little-endian (WAV, RAW, as libsndfile writes them), big-endian (AU).
    """

    def _live_args(self, fmt: str, declared: int | None) -> dict[str, Any]:
        # With a header that states the length, a short run must fail at close; RAW
        # has no header, so nothing was promised.
        return {"live": True, "declared": declared if fmt != "raw" else None}

    def _open_encoder(self, rate: int) -> None:
        bits = _LIVE_SUBTYPES[self.subtype][0]
        order = ">" if self.format == "au" else "<"
        # PCM_24 leaves _to_int as the top 3 bytes of an int32: see _write
        kind = "f" if self.subtype in _FLOAT_SUBTYPES else "i"
        self._dtype = np.dtype(f"{order}{kind}{2 if bits == 16 else max(4, bits // 8)}")
        if self.format == "wav":
            self._header = _wav_header(self.channels, rate, self.subtype, self._declared)
        elif self.format == "au":
            self._header = _au_header(self.channels, rate, self.subtype, self._declared)

    def _write(self, arr: np.ndarray) -> None:
        samples = self._samples(arr)
        if self.subtype == "PCM_24":
            # _to_int hands libsndfile the code in the top 24 bits of an int32; on the
            # wire it is 3 bytes: the high three of little-endian, or the first three of
            # big-endian
            wide = np.ascontiguousarray(samples, dtype=self._dtype).view(np.uint8)
            wide = wide.reshape(-1, 4)
            data = (wide[:, :3] if self.format == "au" else wide[:, 1:]).tobytes()
        else:
            data = np.ascontiguousarray(samples, dtype=self._dtype).tobytes()
        assert self._stream is not None
        self._stream.write(data)

    def _finish(self) -> None:
        """Nothing to finish: the header went first, the base class flushes."""

    def _discard(self) -> None:
        """Nothing to take back from a pipe."""


class _ByteWriter(SignalWriter):
    """A writer that owns a binary file handle ``_fh`` (a temp file, the spool or a pipe)."""

    _fh: IO[bytes]

    def _finish(self) -> None:
        self._fh.flush()
        if isinstance(self.target, Path):  # only what it opened itself
            self._fh.close()

    def _discard(self) -> None:
        if isinstance(self.target, Path):
            self._fh.close()


class _CsvWriter(_ByteWriter):
    def __init__(
        self,
        path: str,
        channels: int,
        column_names: Sequence[str] | None,
        on_clip: str,
        dialect: CsvDialect | None = None,
        live: bool = False,
    ) -> None:
        if column_names is not None and len(column_names) != channels:
            raise ConfigError(
                f"{_shown(path, output=True)}: {len(column_names)} column names given for "
                f"{channels} channels: {list(column_names)!r}"
            )
        super().__init__(path, "csv", channels, None, on_clip, live=live)
        if dialect is None:
            # a .tsv file name gets tabs; everything else (stdout too) gets commas
            dialect = CsvDialect("\t" if path.lower().endswith(".tsv") else ",")
        self._dialect = dialect
        self._sep = dialect.delimiter
        with self._guarded():
            self._fh = open(self.target, "wb") if isinstance(self.target, Path) else self.target
            if column_names is not None:
                line = io.StringIO()
                csv.writer(
                    line,
                    delimiter=self._sep,
                    lineterminator=dialect.line_end,
                    quoting=csv.QUOTE_ALL if dialect.quote_header else csv.QUOTE_MINIMAL,
                ).writerow([str(n) for n in column_names])
                header = line.getvalue().encode("utf-8")
                if live:
                    self._header = header
                else:
                    self._fh.write(header)

    def _write(self, arr: np.ndarray) -> None:
        if arr.shape[-1] == 0:
            return
        # %r of a Python float is the shortest text that reads back to the same value; one
        # %-format per chunk runs the loop in C (about twice as fast as joining per row)
        values = np.asarray(arr, dtype=np.float64)
        cell = '"%r"' if self._dialect.quote_numbers else "%r"
        row = ((cell + self._sep) * (self.channels - 1)) + cell + self._dialect.line_end
        for start in range(0, values.shape[1], _CSV_CHUNK):
            chunk = values[:, start : start + _CSV_CHUNK]
            text = (row * chunk.shape[1]) % tuple(chunk.T.ravel().tolist())
            self._fh.write(text.encode("ascii"))


def _npy_header_bytes(shape: tuple[int, ...], dtype: np.dtype[Any], fortran: bool) -> bytes:
    """A version-1.0 NPY header padded to exactly _NPY_HEADER_BYTES (rewritable in place)."""
    descr = np.lib.format.dtype_to_descr(dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    room = _NPY_HEADER_BYTES - 10 - 1
    if len(text) > room:  # pragma: no cover - needs shapes with ~100-digit sizes
        raise ShapeError(f"NPY shape {shape} is too large")
    body = (text + " " * (room - len(text)) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


class _NpyWriter(_ByteWriter):
    """Streams time-major: the file is Fortran-ordered, its header is rewritten at close.

    ``np.load`` gives back the ``(C, L)`` / ``(N, C, L)`` array with the right values (it
    is F-contiguous). :func:`write_signal` writes a plain C-ordered file instead. On a
    pipe (``live``) the header cannot be rewritten: it is written once with the
    ``declared`` length, and writing any other length fails at close.
    """

    def __init__(
        self,
        path: str,
        channels: int,
        batch: int | None,
        dtype: np.dtype[Any],
        on_clip: str,
        declared: int | None = None,
    ) -> None:
        live = declared is not None
        super().__init__(path, "npy", channels, batch, on_clip, live=live, declared=declared)
        self._dtype = dtype
        with self._guarded():
            self._fh = open(self.target, "w+b") if isinstance(self.target, Path) else self.target
            header = _npy_header_bytes(self._shape(declared or 0), dtype, True)
            if live:
                self._header = header
            else:
                self._fh.write(header)

    def _shape(self, frames: int) -> tuple[int, ...]:
        if self.batch is None:
            return (self.channels, frames)
        return (self.batch, self.channels, frames)

    def _write(self, arr: np.ndarray) -> None:
        # Fortran order of (..., n) is C order of its transpose: time-major, streamable
        data = np.ascontiguousarray(arr.T, dtype=self._dtype)
        self._fh.write(data.tobytes())

    def _finish(self) -> None:
        if self.live:  # the header went first, with the length checked by close()
            super()._finish()
            return
        end = self._fh.tell()
        self._fh.seek(0)
        self._fh.write(_npy_header_bytes(self._shape(self.frames), self._dtype, True))
        self._fh.seek(end)
        super()._finish()


def open_writer(
    path: str | os.PathLike[str],
    *,
    format: str | None,
    channels: int,
    sample_rate: float | None = None,
    subtype: str | None = None,
    on_clip: str = "warn",
    column_names: Sequence[str] | None = None,
    batch: int | None = None,
    dtype: Any = "float64",
    csv_dialect: CsvDialect | None = None,
    frames: int | None = None,
) -> SignalWriter:
    """Open an atomic, streaming writer.

    Parameters
    ----------
    path : str or path-like
        Output file, or ``"-"`` for stdout. A pipe, FIFO or socket is written block by
        block where the format allows (:func:`streams_live`); other stdouts and devices
        are spooled to a temporary file and copied at close.
    format : str or None
        Output format; ``None`` means from the extension.
    channels : int
        ``C`` of every block.
    sample_rate : float, optional
        Required for audio; must be a whole number of Hz. Ignored for CSV/NPY.
    subtype : str, optional
        Audio subtype; default :func:`output_subtype` (FLOAT, or PCM_24 for FLAC). Integer
        PCM subtypes get each value rounded to the nearest code, exact ties upwards as in
        SoX (``100.5 -> 101``, ``-100.5 -> -100``; ``np.rint`` would give 100 and -100).
    on_clip : {"warn", "error", "clip"}
        For integer PCM (and other non-float audio subtypes): ``warn`` and ``clip`` clip and
        count in ``writer.clipped`` (reporting is the caller's job); ``error`` raises
        :class:`ClipError` at the first clipped sample and publishes nothing.
    column_names : sequence of str, optional
        CSV header, one name per channel.
    batch : int, optional
        ``N`` for a batched ``(N, C, L)`` output (NPY only).
    dtype : {"float64", "float32"}
        Element type of an NPY output.
    csv_dialect : CsvDialect, optional
        Delimiter, quoting and line ending of a CSV output [default: tabs for a
        ``.tsv`` name, else commas; unquoted; ``\\n``].
    frames : int, optional
        The output's length when it is known before writing (from the input's header).
        A pipe output puts it in its header (WAV, AU, NPY), and writing any other number
        of frames then fails at close; an NPY to a pipe needs it to stream.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "y.csv"
    >>> with open_writer(path, format=None, channels=2, column_names=["l", "r"]) as w:
    ...     w.write(np.array([[0.1, 0.2], [1.0, -2.5]]))
    ...     w.write(np.array([[1 / 3], [1e-300]]))
    >>> print(path.read_text(), end="")
    l,r
    0.1,1.0
    0.2,-2.5
    0.3333333333333333,1e-300
    >>> workdir.cleanup()
    """
    text = os.fspath(path)
    fmt = detect_format(text, format, parameter="output_format")
    if on_clip not in _ON_CLIP:
        raise ConfigError(f"on_clip must be one of {list(_ON_CLIP)!r}, not {on_clip!r}")
    nchan = check_int("channels", channels)
    nbatch = None if batch is None else check_int("batch", batch)
    dt = _check_dtype(dtype)
    if nbatch is not None and fmt != "npy":
        raise ConfigError(
            f"{_shown(text, output=True)}: a batch of {nbatch} signals (N, C, L) can only be "
            f"written as NPY, not {fmt.upper()}"
        )
    length = None if frames is None else check_int("frames", frames, minimum=0)
    live = is_live_stream(text) and streams_live(fmt, subtype, length)
    if fmt == "csv":
        return _CsvWriter(text, nchan, column_names, on_clip, csv_dialect, live=live)
    if fmt == "npy":
        return _NpyWriter(text, nchan, nbatch, dt, on_clip, declared=length if live else None)
    if live:
        return _LiveAudioWriter(text, fmt, nchan, sample_rate, subtype, on_clip, length)
    return _AudioWriter(text, fmt, nchan, sample_rate, subtype, on_clip)


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


@dataclass(frozen=True)
class OutputSpec:
    """Everything needed to open one output: what :func:`plan_output` decides.

    Attributes
    ----------
    path : str
        Output file, or ``"-"`` for stdout.
    format : str
        Lower-case format name.
    channels : int
        ``C`` of every block written.
    sample_rate : float, int or None
        Output rate (``None`` for a rateless CSV/NPY output).
    subtype : str or None
        Audio subtype (``None`` for CSV and NPY).
    column_names : tuple of str or None
        CSV header, one name per channel.
    batch : int or None
        ``N`` of a batched NPY output.
    dtype : str
        Element type of an NPY output (the compute dtype).
    on_clip : str
        What to do with integer PCM values out of range.
    csv_dialect : CsvDialect or None
        Delimiter, quoting and line ending of a CSV output.
    frames : int or None
        The output's length when known before the run (from the input's header); a
        pipe output announces it in its header.
    """

    path: str
    format: str
    channels: int
    sample_rate: float | int | None
    subtype: str | None
    column_names: tuple[str, ...] | None
    batch: int | None
    dtype: str
    on_clip: str = "warn"
    csv_dialect: CsvDialect | None = None
    frames: int | None = None

    def open(self) -> SignalWriter:
        """Open the atomic streaming writer this spec describes (:func:`open_writer`)."""
        return open_writer(
            self.path,
            format=self.format,
            channels=self.channels,
            sample_rate=self.sample_rate,
            subtype=self.subtype,
            on_clip=self.on_clip,
            column_names=self.column_names,
            batch=self.batch,
            dtype=self.dtype,
            csv_dialect=self.csv_dialect,
            frames=self.frames,
        )


def is_audio_format(format: str) -> bool:
    """True for formats written through soundfile (they need a whole-Hz sample rate).

    Examples
    --------
    >>> is_audio_format("flac"), is_audio_format("csv")
    (True, False)
    """
    return detect_format("-", format) in _AUDIO_FORMATS


def _output_rate(
    in_rate: float | None, total_stride: int, forced: float | None, source: str, audio: bool
) -> float | int | None:
    """Input rate / total stride; an audio output needs it to be a whole number of Hz."""
    if forced is not None:
        return int(forced) if float(forced).is_integer() else forced
    if in_rate is None:
        return None
    rate = in_rate / total_stride
    if audio and not float(rate).is_integer():
        raise ShapeError(
            f"{source}: input sample rate {in_rate:g} Hz / total stride {total_stride} = "
            f"{rate:g} Hz is not a whole number of Hz, which audio output needs; set the "
            f"output rate with --sample-rate"
        )
    return int(rate) if float(rate).is_integer() else rate


def _check_audio_rate(rate: float, forced: bool, source: str) -> None:
    """An audio file stores a whole number of Hz that fits a C int (libsndfile).

    A bad forced rate is the invocation's fault (ConfigError, exit 2); a rate derived
    from the input or a layer's design rate is the data's (ShapeError, exit 1).
    """
    if forced:
        check_sample_rate("--sample-rate", rate, integer=True)
        return
    try:
        check_sample_rate(f"{source}: output sample rate", rate, integer=True)
    except ConfigError as e:
        raise ShapeError(f"{e}; set the output rate with --sample-rate") from e


def check_output_subtype(subtype: str, format: str) -> None:
    """Refuse an audio subtype for a format that is not audio (ConfigError).

    Examples
    --------
    >>> check_output_subtype("PCM_16", "wav")
    >>> check_output_subtype("PCM_16", "csv")
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: --subtype applies to audio outputs only; the output format is CSV
    """
    if output_subtype(format) is None:
        raise ConfigError(
            f"--subtype applies to audio outputs only; the output format is {format.upper()}"
        )


def plan_output(
    target: str,
    info: SignalInfo,
    *,
    channels: int,
    total_stride: int = 1,
    rate_hint: float | None = None,
    format: str | None = None,
    subtype: str | None = None,
    sample_rate: float | None = None,
    on_clip: str = "warn",
    dtype: Any = "float64",
    csv_delimiter: str | None = None,
    frames: int | None = None,
) -> OutputSpec:
    """Decide the output's format, subtype, rate and columns from the input and options.

    Parameters
    ----------
    target : str
        Output path, ``"-"`` for stdout.
    info : SignalInfo
        The input's header facts.
    channels : int
        Output channels (the chain's last ``C_out``).
    total_stride : int
        Product of the chain's strides: output rate = input rate / ``total_stride``.
    rate_hint : float, optional
        The rate a rateless input (CSV/NPY) stands for, e.g. a designed layer's rate.
    format, subtype : str, optional
        Explicit output format / audio subtype; default from ``target``'s extension
        (the input's format for a stream) and the input's subtype where the format has it.
    sample_rate : float, optional
        Forced output rate.
    on_clip, dtype, frames
        Passed on to the writer (see :func:`open_writer`).
    csv_delimiter : str, optional
        A key of :data:`CSV_DELIMITERS` (``","``, ``"semicolon"``, ``"tab"``, ...). A
        CSV output takes, first match wins: this delimiter; tabs for a ``.tsv`` name;
        the input CSV's delimiter; commas. Quoting and line ending always follow a
        CSV input (semicolon and CRLF in, semicolon and CRLF out).

    Returns
    -------
    OutputSpec

    Raises
    ------
    ShapeError
        The output rate is not a whole number of Hz where audio needs one.
    DataFileError
        Audio output of an input that has no rate, and none was given.

    Examples
    --------
    >>> info = SignalInfo("in.wav", "wav", "PCM_16", 48000.0, 2, 1000)
    >>> spec = plan_output("out.flac", info, channels=2, total_stride=2)
    >>> spec.format, spec.subtype, spec.sample_rate
    ('flac', 'PCM_16', 24000)
    """
    shown = _shown(info.path)
    in_rate = info.sample_rate if info.sample_rate is not None else rate_hint
    if format is not None:
        out_format = detect_format("-", format, parameter="output_format")
    elif is_stream(target) or names_open_file(target):
        # '-', /dev/stdout, a FIFO: no extension to go by, keep the input's format
        out_format = info.format
    else:
        out_format = detect_format(target, parameter="output_format")
    audio = output_subtype(out_format) is not None
    # A CSV or NPY stores no rate, so only audio needs a whole number of Hz.
    rate = _output_rate(in_rate, total_stride, sample_rate, shown, audio)
    if subtype is not None:
        check_output_subtype(subtype, out_format)
    else:
        # The input's subtype where the output format has it (PCM_16 WAV -> FLAC
        # stays PCM_16), else the format's best (FLOAT, or PCM_24 for FLAC).
        subtype = output_subtype(out_format, info.subtype)
    if audio and rate is None:
        # Exit 1, like a non-integer rate: the same command works with a WAV
        # input, so it is this input that lacks something, not the invocation.
        raise DataFileError(
            f"{shown}: has no sample rate and no layer records a design rate, but "
            f"audio output needs one; give it with --sample-rate"
        )
    if audio and rate is not None:
        _check_audio_rate(rate, sample_rate is not None, shown)
    columns = None
    if info.column_names is not None:
        # A headed CSV keeps its names when channels map one to one, else ch0...
        columns = info.column_names
        if channels != info.channels:
            columns = tuple(f"ch{i}" for i in range(channels))
    dialect = None
    if out_format == "csv":
        dialect = _output_dialect(target, info.csv_dialect, csv_delimiter)
    elif csv_delimiter is not None:
        raise ConfigError(
            f"--csv-delimiter applies to CSV outputs only; the output format is "
            f"{out_format.upper()}"
        )
    return OutputSpec(
        path=target,
        format=out_format,
        channels=channels,
        sample_rate=rate,
        subtype=subtype,
        column_names=columns,
        batch=info.batch,
        dtype=_check_dtype(dtype).name,
        on_clip=on_clip,
        csv_dialect=dialect,
        frames=frames,
    )


def _output_dialect(target: str, source: CsvDialect | None, delimiter: str | None) -> CsvDialect:
    """A CSV output's dialect (see :func:`plan_output`).

    Examples
    --------
    >>> semi = CsvDialect(";", line_end="\\r\\n")
    >>> _output_dialect("y.csv", semi, None) == semi
    True
    >>> _output_dialect("y.tsv", semi, None).delimiter, _output_dialect("y.csv", None, "tab")
    ('\\t', CsvDialect(delimiter='\\t', quote_header=False, quote_numbers=False, line_end='\\n'))
    """
    base = source if source is not None else CsvDialect()
    if delimiter is not None:
        if delimiter not in CSV_DELIMITERS:
            names = ", ".join(repr(k) for k in CSV_DELIMITERS if k.strip() and k != "\\t")
            raise ConfigError(f"--csv-delimiter must be one of {names}; got {delimiter!r}")
        return dataclasses.replace(base, delimiter=CSV_DELIMITERS[delimiter])
    if not is_stream(target) and target.lower().endswith(".tsv"):
        return dataclasses.replace(base, delimiter="\t")
    return base


class _WholeNpyWriter(SignalWriter):
    """write_signal's NPY path: one np.save, C order."""

    def __init__(self, path: str, data: np.ndarray) -> None:
        super().__init__(path, "npy", 1, None, "warn")
        self._data = data

    def _finish(self) -> None:
        if isinstance(self.target, Path):
            with open(self.target, "wb") as fh:
                np.save(fh, self._data, allow_pickle=False)
        else:
            np.save(self.target, self._data, allow_pickle=False)


def write_signal(
    path: str | os.PathLike[str],
    signal_data: np.ndarray | Signal,
    *,
    format: str | None,
    sample_rate: float | None = None,
    subtype: str | None = None,
    on_clip: str = "warn",
    column_names: Sequence[str] | None = None,
    dtype: Any = None,
) -> int:
    """Write a whole signal atomically; return the number of clipped samples.

    ``signal_data`` is ``(C, L)``, ``(L,)`` (mono) or, for NPY only, ``(N, C, L)``; a
    :class:`Signal` is accepted too. NPY keeps float32 data as float32 (``dtype`` overrides)
    and is written C-ordered. See :func:`open_writer` for the other parameters.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "loud.wav"
    >>> write_signal(path, np.array([[0.5, 1.5, -2.0]]), format=None, sample_rate=8000,
    ...              subtype="PCM_16")
    2
    >>> read_signal(path).data * 32768
    array([[ 16384.,  32767., -32768.]])
    >>> workdir.cleanup()
    """
    data = signal_data.data if isinstance(signal_data, Signal) else np.asarray(signal_data)
    text = os.fspath(path)
    fmt = detect_format(text, format, parameter="output_format")
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim not in (2, 3) or data.dtype.kind not in "biuf":
        raise ShapeError(
            f"{_shown(text, output=True)}: cannot write an array of shape {data.shape} and "
            f"dtype {data.dtype}; expected real (C, L) or (N, C, L)"
        )
    if fmt == "npy":
        if on_clip not in _ON_CLIP:
            raise ConfigError(f"on_clip must be one of {list(_ON_CLIP)!r}, not {on_clip!r}")
        out_dtype = _check_dtype(
            dtype if dtype is not None else (data.dtype if data.dtype.kind == "f" else "float64")
        )
        with _WholeNpyWriter(text, np.ascontiguousarray(data, dtype=out_dtype)):
            pass
        return 0
    batch = data.shape[0] if data.ndim == 3 else None
    with open_writer(
        text,
        format=fmt,
        channels=data.shape[-2],
        sample_rate=sample_rate,
        subtype=subtype,
        on_clip=on_clip,
        column_names=column_names,
        batch=batch,
    ) as writer:
        writer.write(data)
    return writer.clipped
