"""Signal outputs: what an output becomes, and opening it.

- :func:`plan_output` -- an output's format, subtype, rate and columns, decided from
  the input and the options (:class:`OutputSpec`)
- :func:`open_writer` -- an atomic, streaming writer for one output
- :func:`write_signal` -- a whole signal at once

File outputs go through :func:`conv1d_cli.io.atomic.atomic_path`: nothing appears
at the target unless the writer closes without an error. stdout on a pipe, FIFO or
socket is written as it is computed where the format allows
(:func:`~conv1d_cli.io.formats.streams_live`); any other stdout is spooled and
copied out at close (:mod:`conv1d_cli.io.pipes`).

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from conv1d_cli.io.inputs import read_signal
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

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from conv1d_cli.errors import PARAMETER, ConfigError, DataFileError, ShapeError, shown_path
from conv1d_cli.io.audiofile import _AudioWriter, _LiveAudioWriter
from conv1d_cli.io.formats import (
    _ON_CLIP,
    CSV_DELIMITERS,
    CsvDialect,
    Signal,
    SignalInfo,
    _check_dtype,
    check_output_subtype,
    detect_format,
    output_subtype,
    streams_live,
)
from conv1d_cli.io.npyfile import _NpyWriter, _WholeNpyWriter
from conv1d_cli.io.pipes import is_live_stream, is_stream, names_open_file
from conv1d_cli.shapes import check_int, check_sample_rate

if TYPE_CHECKING:
    from conv1d_cli.io.base import SignalWriter

__all__ = ["OutputSpec", "open_writer", "plan_output", "write_signal"]


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
        A key of :data:`~conv1d_cli.io.formats.CSV_DELIMITERS` (``","``,
        ``"semicolon"``, ``"tab"``, ...). A CSV output takes, first match wins: this
        delimiter; tabs for a ``.tsv`` name; the input CSV's delimiter; commas. Quoting and
        line ending always follow a CSV input (semicolon and CRLF in, semicolon and CRLF
        out).

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
    shown = shown_path(info.path)
    in_rate = info.sample_rate if info.sample_rate is not None else rate_hint
    out_format = _output_format(target, info, format)
    audio = output_subtype(out_format) is not None
    # A CSV or NPY stores no rate, so only audio needs a whole number of Hz.
    rate = _output_rate(in_rate, total_stride, sample_rate, shown, audio)
    if subtype is not None:
        try:
            check_output_subtype(subtype, out_format)
        except ConfigError as e:  # named after the input, as every error of this plan
            raise e.about(info.path) from e
    else:
        # The input's subtype where the output format has it (PCM_16 WAV -> FLAC
        # stays PCM_16), else the format's best (FLOAT, or PCM_24 for FLAC).
        subtype = output_subtype(out_format, info.subtype)
    if audio:
        _check_audio_rate(rate, sample_rate is not None, info.path)
    dialect = _output_csv_dialect(target, out_format, info, csv_delimiter)
    return OutputSpec(
        path=target,
        format=out_format,
        channels=channels,
        sample_rate=rate,
        subtype=subtype,
        column_names=_output_columns(info, channels),
        batch=info.batch,
        dtype=_check_dtype(dtype).name,
        on_clip=on_clip,
        csv_dialect=dialect,
        frames=frames,
    )


def _output_format(target: str, info: SignalInfo, format: str | None) -> str:
    """The explicit ``format``, else the target's extension; a stream keeps the input's."""
    if format is not None:
        return detect_format("-", format, parameter="output_format")
    if is_stream(target) or names_open_file(target):
        # '-', /dev/stdout, a FIFO: no extension to go by, keep the input's format
        return info.format
    return detect_format(target, parameter="output_format")


def _output_columns(info: SignalInfo, channels: int) -> tuple[str, ...] | None:
    """A headed CSV keeps its names when channels map one to one, else ``ch0``, ..."""
    if info.column_names is None:
        return None
    if channels != info.channels:
        return tuple(f"ch{i}" for i in range(channels))
    return info.column_names


def _output_csv_dialect(
    target: str, out_format: str, info: SignalInfo, csv_delimiter: str | None
) -> CsvDialect | None:
    """The CSV output's dialect; ``csv_delimiter`` for any other format is refused."""
    if out_format == "csv":
        try:
            return _output_dialect(target, info.csv_dialect, csv_delimiter)
        except ConfigError as e:  # named after the input, as every error of the plan
            raise e.about(info.path) from e
    if csv_delimiter is not None:
        raise ConfigError(
            f"{{parameter}} applies to CSV outputs only; the output format is {out_format.upper()}",
            parameter="csv_delimiter",
            path=info.path,
        )
    return None


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
            f"output rate with {{parameter}}",
            parameter="sample_rate",
        )
    return int(rate) if float(rate).is_integer() else rate


def _check_audio_rate(rate: float | None, forced: bool, path: str) -> None:
    """An audio file stores a whole number of Hz that fits a C int (libsndfile).

    A bad forced rate is the invocation's fault (ConfigError, exit 2); a rate derived
    from the input or a layer's design rate is the data's (ShapeError, exit 1), and
    so is no rate at all: the same command works with a WAV input, so it is this
    input that lacks something, not the invocation.
    """
    source = shown_path(path)
    if rate is None:
        raise DataFileError(
            f"{source}: has no sample rate and no layer records a design rate, but "
            f"audio output needs one; give it with {{parameter}}",
            parameter="sample_rate",
        )
    if forced:
        try:
            check_sample_rate("sample_rate", rate, integer=True)
        except ConfigError as e:
            raise e.replace(path=path) from None
        return
    try:
        check_sample_rate(f"{source}: output sample rate", rate, integer=True)
    except ConfigError as e:
        raise ShapeError(
            f"{e}; set the output rate with {PARAMETER}", parameter="sample_rate"
        ) from e


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
            raise ConfigError(
                f"{{parameter}} must be one of {names}; got {delimiter!r}",
                parameter="csv_delimiter",
            )
        return dataclasses.replace(base, delimiter=CSV_DELIMITERS[delimiter])
    if not is_stream(target) and target.lower().endswith(".tsv"):
        return dataclasses.replace(base, delimiter="\t")
    return base


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
        block where the format allows (:func:`~conv1d_cli.io.formats.streams_live`);
        other stdouts and devices are spooled to a temporary file and copied at close.
    format : str or None
        Output format; ``None`` means from the extension.
    channels : int
        ``C`` of every block.
    sample_rate : float, optional
        Required for audio; must be a whole number of Hz. Ignored for CSV/NPY.
    subtype : str, optional
        Audio subtype; default :func:`~conv1d_cli.io.formats.output_subtype` (FLOAT,
        or PCM_24 for FLAC). Integer PCM subtypes get each value rounded to the nearest
        code, exact ties upwards as in SoX (``100.5 -> 101``, ``-100.5 -> -100``;
        ``np.rint`` would give 100 and -100).
    on_clip : {"warn", "error", "clip"}
        For integer PCM (and other non-float audio subtypes): ``warn`` and ``clip`` clip and
        count in ``writer.clipped`` (reporting is the caller's job); ``error`` raises
        :class:`~conv1d_cli.io.audiofile.ClipError` at the first clipped sample and
        publishes nothing.
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
    _check_on_clip(on_clip)
    nchan = check_int("channels", channels)
    nbatch = _check_batch(batch, fmt, text)
    dt = _check_dtype(dtype)
    length = None if frames is None else check_int("frames", frames, minimum=0)
    live = is_live_stream(text) and streams_live(fmt, subtype, length)
    if fmt == "csv":
        # Here, not at the top: the CSV module costs start-up time that audio and NPY
        # runs need not pay.
        from conv1d_cli.io.csvfile import _CsvWriter

        return _CsvWriter(text, nchan, column_names, on_clip, csv_dialect, live=live)
    if fmt == "npy":
        return _NpyWriter(text, nchan, nbatch, dt, on_clip, declared=length if live else None)
    if live:
        return _LiveAudioWriter(text, fmt, nchan, sample_rate, subtype, on_clip, length)
    return _AudioWriter(text, fmt, nchan, sample_rate, subtype, on_clip)


def _check_on_clip(on_clip: str) -> None:
    if on_clip not in _ON_CLIP:
        raise ConfigError(f"on_clip must be one of {list(_ON_CLIP)!r}, not {on_clip!r}")


def _check_batch(batch: int | None, fmt: str, path: str) -> int | None:
    """``batch`` checked: only an NPY output holds ``(N, C, L)``."""
    nbatch = None if batch is None else check_int("batch", batch)
    if nbatch is not None and fmt != "npy":
        raise ConfigError(
            f"{shown_path(path, output=True)}: a batch of {nbatch} signals (N, C, L) can only be "
            f"written as NPY, not {fmt.upper()}"
        )
    return nbatch


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
    :class:`~conv1d_cli.io.formats.Signal` is accepted too. NPY keeps float32 data as
    float32 (``dtype`` overrides) and is written C-ordered. See :func:`open_writer` for the
    other parameters.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "loud.wav"
    >>> write_signal(path, np.array([[0.5, 1.5, -2.0]]), format=None, sample_rate=8000,
    ...              subtype="PCM_16")
    2
    >>> from conv1d_cli.io.inputs import read_signal
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
            f"{shown_path(text, output=True)}: cannot write an array of shape {data.shape} and "
            f"dtype {data.dtype}; expected real (C, L) or (N, C, L)"
        )
    if fmt == "npy":
        _check_on_clip(on_clip)
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
