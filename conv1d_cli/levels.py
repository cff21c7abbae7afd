"""What is written after the chain: its level, and the time column beside it.

:class:`Leveled` is the writer behind the chain (gain, then the peak is noted,
then dither); :func:`normalized` finds the peak of a whole output first by
spooling it to disk; :func:`check_dither` refuses dither where there is nothing
to round. :class:`Output` opens the planned output file, with a CSV input's
time column written first (:class:`TimedWriter`, :func:`time_track`). Never
imports click; never prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from conv1d_cli.chain import block_frames
from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError, Notice, shown_path
from conv1d_cli.io import formats, inputs, outputs, pipes
from conv1d_cli.jobs import Cancelled, FilterOptions, Job, StopFlag

if TYPE_CHECKING:
    from conv1d_cli.io import csvfile
    from conv1d_cli.io.base import SignalReader, SignalWriter

__all__ = [
    "BlockWriter",
    "Leveled",
    "Output",
    "TimedWriter",
    "check_dither",
    "check_dither_subtype",
    "normalized",
    "time_track",
]


class BlockWriter(Protocol):
    """Where filtered blocks go: a signal writer, or one that adds a time column."""

    @property
    def frames(self) -> int: ...

    @property
    def clipped(self) -> int: ...

    def write(self, block: np.ndarray) -> None: ...


def check_dither(jobs_list: Sequence[Job], options: FilterOptions) -> None:
    """Refuse dither for every output that will not be integer PCM, before any work.

    What an output gets is known from the options and the names, except where it
    follows the input (a ``-`` output takes the input's format, an audio output its
    subtype): those inputs are probed (a header read), and a pipe input is left to
    :func:`~conv1d_cli.pipeline.filter_file`, which checks again once the input is open.

    Raises
    ------
    ConfigError
        An output that is CSV, NPY, float or otherwise not integer PCM.
    """
    if options.dither is None:
        return
    for job in jobs_list:
        source_format = fmt = None
        with contextlib.suppress(Conv1dError):  # unknown here: filter_file checks
            source_format = formats.detect_format(job.source, options.input_format)
        with contextlib.suppress(Conv1dError):  # no extension: a stream takes the input's
            fmt = formats.detect_format(
                job.target, options.output_format, parameter="output_format"
            )
        fmt = fmt or source_format
        if fmt is None:
            continue
        subtype = options.subtype
        if subtype is None and formats.is_audio_format(fmt):
            if source_format is None or (
                formats.is_audio_format(source_format) and pipes.is_stream(job.source)
            ):
                continue  # follows an input not open yet: filter_file checks
            if formats.is_audio_format(source_format):
                # The output keeps an audio input's subtype where it can: read the
                # header (never a CSV's probe, which scans the file; it has no subtype).
                try:
                    subtype = inputs.probe(job.source, format=options.input_format).subtype
                except Conv1dError:
                    continue  # the real read reports the problem, with its exit status
        if formats.is_audio_format(fmt):
            subtype = formats.output_subtype(fmt, subtype)
        else:
            subtype = None
        check_dither_subtype(job.target, fmt, subtype)


def check_dither_subtype(target: str, fmt: str, subtype: str | None) -> None:
    """Refuse dither for an output of format ``fmt`` and ``subtype`` unless it is integer PCM.

    Examples
    --------
    >>> check_dither_subtype("out.wav", "wav", "PCM_16")
    >>> check_dither_subtype("-", "csv", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: <stdout>: dither applies to integer PCM audio outputs only, ...
    """
    if formats.pcm_step(subtype) is not None:
        return
    what = fmt.upper() if subtype is None else f"{fmt.upper()} {subtype}"
    fix = (
        "; give an integer subtype ({parameter:subtype} PCM_16 or PCM_24) to dither"
        if subtype is not None
        else ""
    )
    raise ConfigError(
        f"{{path}}: {{parameter}} applies to integer PCM audio outputs only, and this output "
        f"is {what} (written exactly, nothing to round){fix}",
        path=target,
        output=True,
        parameter="dither",
    )


class Leveled:
    """The writer behind the chain: gain, then the peak is noted, then dither.

    Dither noise is drawn time-major, one frame after another, so the same seed
    gives the same noise whatever the block size.
    """

    def __init__(
        self,
        writer: BlockWriter,
        gain: float,
        step: float | None,
        rng: np.random.Generator | None,
    ) -> None:
        self.writer = writer
        self.gain = gain
        self.step = step
        self.rng = rng if step is not None else None
        self._peak = 0.0

    @property
    def frames(self) -> int:
        return self.writer.frames

    @property
    def clipped(self) -> int:
        return self.writer.clipped

    @property
    def peak(self) -> float | None:
        return self._peak if math.isfinite(self._peak) else None

    def write(self, out: np.ndarray) -> None:
        if self.gain != 1.0:
            with np.errstate(over="ignore"):
                scaled = out * self.gain  # keeps float32 as float32 (NEP 50)
            if not np.isfinite(scaled).all() and np.isfinite(out).all():
                raise DataFileError(
                    f"a gain of {20 * math.log10(self.gain):.1f} dB takes samples past the "
                    f"largest {out.dtype.name} value; lower the gain"
                )
            out = scaled
        if out.size:
            with np.errstate(invalid="ignore"):
                hi, lo = float(out.max()), float(out.min())
            if math.isnan(hi) or math.isnan(lo):
                self._peak = math.nan
            elif not math.isnan(self._peak):
                self._peak = max(self._peak, hi, -lo)
        if self.rng is not None and self.step is not None:
            uniform = self.rng.random((out.shape[-1], out.shape[-2], 2))
            # Sum of two uniforms in [-0.5, 0.5): triangular on (-1, 1) LSB, mean 0.
            noise = (uniform.sum(axis=-1) - 1.0).T
            # float64: a float32 sample cannot hold a fraction of a PCM_24 step near 1.
            out = out.astype(np.float64) + noise * self.step
        self.writer.write(out)


def normalized(
    filter_into: Callable[[Leveled], int],
    open_output: Callable[[], AbstractContextManager[BlockWriter]],
    spec: outputs.OutputSpec,
    opts: FilterOptions,
    cancel: StopFlag | None,
    step: float | None,
    rng: np.random.Generator | None,
    warnings: list[str],
) -> tuple[int, Leveled, float]:
    """Filter into a float NPY spool, find the peak, then scale it into the output.

    ``filter_into(writer)`` runs the whole input through the chain into ``writer``
    and returns the frames read; ``open_output()`` opens the real output, planned as
    ``spec``. The spool is in ``$TMPDIR`` (removed whatever happens) and is read back
    block by block through a memory map: the signal is never held in memory. Returns
    the frames read, the output's writer and the gain applied in dB.
    """
    # Here, not at the top: only --normalize spools, and tempfile costs start-up time.
    import tempfile

    assert opts.normalize_db is not None
    try:
        spool_home = tempfile.TemporaryDirectory(prefix="conv1d-normalize-")
    except OSError as e:
        raise DataFileError(
            f"{{parameter}}: cannot create a spool for the filtered signal in "
            f"{tempfile.gettempdir()}: {e.strerror or e}; point TMPDIR at a writable disk",
            parameter="normalize_db",
        ) from e
    with spool_home as spool_dir:
        spool = dataclasses.replace(
            spec,
            path=str(Path(spool_dir) / "filtered.npy"),
            format="npy",
            sample_rate=None,
            subtype=None,
            column_names=None,
            on_clip="clip",
        )
        try:
            with spool.open() as raw:
                first = Leveled(raw, 1.0, None, None)
                frames = filter_into(first)
        except DataFileError as e:
            if spool.path not in str(e):
                raise  # about the input, not the spool
            raise DataFileError(
                f"{e.render()} ({{parameter}} spools the filtered signal in "
                f"{tempfile.gettempdir()} before writing; point TMPDIR at a disk with room)",
                parameter="normalize_db",
            ) from e
        peak = first.peak
        if peak is None or peak == 0.0:
            why = "silent (peak 0)" if peak == 0.0 else "not finite (NaN or Inf)"
            warnings.append(
                Notice(
                    f"{shown_path(spec.path, output=True)}: the output is {why}; "
                    f"{{parameter:normalize_db}} left its level as it is"
                )
            )
            gain, applied = 1.0, 0.0
        else:
            target = 10.0 ** (opts.normalize_db / 20.0)
            gain = target / peak
            applied = 20.0 * math.log10(gain)
        block = block_frames(spec.channels, spec.batch, opts.block_size)
        with inputs.open_reader(spool.path, format="npy", dtype=spec.dtype) as spooled:
            with open_output() as raw:
                writer = Leveled(raw, gain, step, rng)
                while True:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled
                    data = spooled.read(block)
                    if not data.shape[-1]:
                        break
                    writer.write(data)
    return frames, writer, applied


class TimedWriter:
    """Writes each output block after its time stamps: the input's time column, first.

    Output sample ``j`` gets ``t[j * stride]`` (:class:`csvfile.TimeTrack`), the same
    rule for every block size, since ``j`` counts the frames written so far.
    """

    def __init__(self, writer: SignalWriter, track: csvfile.TimeTrack, stride: int) -> None:
        self._writer = writer
        self._track = track
        self._stride = stride

    @property
    def frames(self) -> int:
        return self._writer.frames

    @property
    def clipped(self) -> int:
        return self._writer.clipped

    def write(self, block: np.ndarray) -> None:
        start = self._writer.frames
        times = self._track.take(np.arange(start, start + block.shape[-1]) * self._stride)
        self._writer.write(np.concatenate([times[None], block.astype(np.float64)]))


def time_track(
    reader: SignalReader, spec: outputs.OutputSpec, shown: str, warnings: list[str]
) -> csvfile.TimeTrack | None:
    """The input's time column, if it has one and the output is a CSV that can hold it."""
    info = reader.info
    if info.time_column is None:
        return None
    if info.time_detected:
        warnings.append(
            Notice(
                f"{shown}: column {info.time_column!r} is read as time, not as a "
                f"channel ({{parameter:time_column}} none filters it too)"
            )
        )
    if spec.format != "csv":
        warnings.append(
            f"{shown}: time column {info.time_column!r} not written: the output "
            f"is {spec.format.upper()}, not CSV"
        )
        return None
    return reader.time_track()


@dataclass(frozen=True)
class Output:
    """The output file, and the time column written first in it (CSV), if any."""

    spec: outputs.OutputSpec
    track: csvfile.TimeTrack | None
    stride: int
    time_name: str | None = None

    @contextlib.contextmanager
    def open(self) -> Iterator[BlockWriter]:
        """The output's writer (a file appears only if the block ends without an error)."""
        if self.track is None:
            with self.spec.open() as writer:
                yield writer
            return
        names = self.spec.column_names
        with_time = dataclasses.replace(
            self.spec,
            channels=self.spec.channels + 1,
            column_names=None if names is None else (str(self.time_name), *names),
        )
        with with_time.open() as writer:
            yield TimedWriter(writer, self.track, self.stride)
