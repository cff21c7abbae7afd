"""Files through a chain of layers: reader -> chain -> writer, one file or many.

The engine under ``conv1d apply``, usable from scripts and notebooks. It never
imports click and never prints: every outcome is a return value
(:class:`FileReport`) or a typed error from :mod:`conv1d_cli.errors`; the CLI
decides how to show them.

Entry points
------------
- :func:`filter_file` -- stream one input file (or pipe) into one output
- :func:`run_jobs` -- many files, one after another or in worker processes, with
  progress events (:class:`JobProgress`) for a display
- :func:`plan_jobs` -- map inputs to outputs, refusing every invocation mistake first
- :func:`existing_outputs` / :func:`check_dither` -- checks a caller runs before any work
- :func:`conv1d_cli.stream.stream_filter` -- filter an iterator of blocks in memory

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from conv1d_cli import Conv1d
>>> from conv1d_cli.io.inputs import read_signal
>>> from conv1d_cli.io.outputs import write_signal
>>> workdir = tempfile.TemporaryDirectory()
>>> src = str(pathlib.Path(workdir.name) / "x.csv")
>>> dst = str(pathlib.Path(workdir.name) / "y.csv")
>>> write_signal(src, np.array([[0.0, 1.0, 2.0, 3.0]]), format=None)
0
>>> smooth = Conv1d.from_weights(np.full((1, 1, 2), 0.5))
>>> report = filter_file(src, dst, [smooth])
>>> report.frames_in, report.clipped
(4, 0)
>>> read_signal(dst).data
array([[0.5, 1.5, 2.5]])
>>> workdir.cleanup()
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from multiprocessing.sharedctypes import RawArray
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from conv1d_cli import threads as thread_policy
from conv1d_cli.errors import (
    BatchError,
    ConfigError,
    Conv1dError,
    DataFileError,
    FormatError,
    shown_path,
)
from conv1d_cli.io import csvfile, formats, inputs, outputs, pipes
from conv1d_cli.io.atomic import check_not_same_file
from conv1d_cli.io.base import SignalReader, SignalWriter
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import implied_input_rate, rate_mismatches
from conv1d_cli.stream import (
    StreamChain,
    block_frames,
    broadcast_first_layer,
    chain_output_length,
    check_chain,
    check_finite,
    check_stage_memory,
    compute_dtype,
)

__all__ = [
    "Cancelled",
    "FileReport",
    "FilterOptions",
    "Job",
    "JobProgress",
    "check_dither",
    "check_output_formats",
    "existing_outputs",
    "filter_file",
    "known_frames",
    "plan_jobs",
    "run_jobs",
]

Progress = Callable[[int], None]
#: How often the parent of worker processes looks at their progress counters (seconds).
PROGRESS_POLL: Final = 0.1
#: The dither kinds ``FilterOptions.dither`` takes.
DITHERS: Final = ("tpdf",)


#: ``executor(jobs, layers, names, options)`` -> iterator of (index, outcome); see run_jobs.
Executor = Callable[
    [Sequence["Job"], Sequence[Conv1d], Sequence[str], "FilterOptions"],
    Iterator[tuple[int, "FileReport | Conv1dError | Cancelled"]],
]


class StopFlag(Protocol):
    """What :func:`filter_file` polls between blocks: a threading or multiprocessing Event."""

    def is_set(self) -> bool: ...


def _no_progress(frames: int) -> None:
    """The default progress callback: nothing to show."""


@dataclass(frozen=True)
class FilterOptions:
    """How a file is filtered and written (the options of ``conv1d apply``).

    Attributes
    ----------
    method : {'auto', 'direct', 'fft'}
        Correlation algorithm.
    dtype : {'float32', 'float64'} or None
        Compute dtype; ``None`` is float32 when every layer is float32, else float64.
    subtype : str or None
        Audio subtype of the output (default: the input's where the format has it).
    input_format, output_format : str or None
        Explicit formats (needed for ``"-"``); default from the extensions.
    on_clip : {'warn', 'error', 'clip'}
        Integer PCM output out of range: count it, fail, or clip silently.
    allow_nonfinite : bool
        Pass NaN/Inf through instead of failing at the first one.
    sample_rate : float or None
        Forced output rate; default input rate / total stride.
    block_size : int or None
        Frames per block; default :func:`conv1d_cli.stream.block_frames`.
    overlap : bool
        Read and write in helper threads while filtering (``threads.Policy.overlap``);
        off, every step runs in the calling thread (one thread per file).
    gain_db : float
        Gain applied to the chain's output before it is rounded or written (0 = none);
        float outputs get it too.
    normalize_db : float or None
        Scale each output so that its sample peak is at this many dBFS (``-1`` puts the
        peak at 10**(-1/20)). Needs the peak before the first sample is written, so the
        filtered signal is spooled to a float NPY file in ``$TMPDIR`` (disk, not
        memory) and encoded from there: this output does not stream. A silent output
        (peak 0) is left as it is, with a warning. Exclusive with ``gain_db``.
    dither : {'tpdf'} or None
        Integer PCM outputs only: add triangular dither of +-1 LSB (the sum of two
        uniform values in [-0.5, 0.5) LSB) before rounding. ``None`` rounds exactly.
    seed : int or None
        Seed of the dither: each file's noise comes from ``(seed, file index)``, so the
        bytes do not depend on the block size or on the number of worker processes.
        ``None`` draws fresh noise every run.
    csv_delimiter : str or None
        Delimiter of a CSV output (a key of :data:`conv1d_cli.io.formats.CSV_DELIMITERS`);
        default: a CSV input's (quoting and line ending always follow a CSV input).
    columns : tuple of str or None
        CSV inputs: the columns filtered, by header name or 1-based number; the others
        are dropped (the time column is passed through). Default: all.
    time_column : str or None
        CSV inputs: a column of time stamps (name or 1-based number), written to a CSV
        output unfiltered, first, one value per output sample: ``t[j * S]`` for output
        sample ``j`` and the chain's total stride ``S`` (see
        :class:`conv1d_cli.io.csvfile.TimeTrack`). ``"auto"`` recognises a header named
        ``time``, ``timestamp`` or ``t``. Default: none (every column is a channel).
    """

    method: str = "auto"
    dtype: str | None = None
    subtype: str | None = None
    input_format: str | None = None
    output_format: str | None = None
    on_clip: str = "warn"
    allow_nonfinite: bool = False
    sample_rate: float | None = None
    block_size: int | None = None
    overlap: bool = True
    gain_db: float = 0.0
    normalize_db: float | None = None
    dither: str | None = None
    seed: int | None = None
    csv_delimiter: str | None = None
    columns: tuple[str, ...] | None = None
    time_column: str | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.gain_db):
            raise ConfigError(f"gain_db must be a finite number of dB, not {self.gain_db!r}")
        if self.normalize_db is not None:
            if not math.isfinite(self.normalize_db):
                raise ConfigError(
                    f"normalize_db must be a finite number of dBFS, not {self.normalize_db!r}"
                )
            if self.gain_db:
                # Both set the level: a gain after normalising is a different target.
                raise ConfigError(
                    "gain_db and normalize_db both set the output level; give one "
                    "(normalize_db=T with gain_db=G is normalize_db=T+G)"
                )
        if self.dither is not None and self.dither not in DITHERS:
            raise ConfigError(f"dither must be one of {list(DITHERS)!r}, not {self.dither!r}")
        if self.seed is not None and self.dither is None:
            raise ConfigError("seed applies to dither only; give dither='tpdf' too")
        if self.block_size is not None and (
            isinstance(self.block_size, bool)
            or not isinstance(self.block_size, int)
            or self.block_size < 1
        ):
            raise ConfigError(f"block_size must be a positive integer, got {self.block_size!r}")


@dataclass(frozen=True)
class Job:
    """One input and the output it is filtered into (``"-"`` is stdin / stdout)."""

    source: str
    target: str


@dataclass(frozen=True)
class FileReport:
    """What happened to one file.

    Attributes
    ----------
    job : Job
    frames_in : int
        Frames read from the input.
    clipped : int
        Integer PCM samples clipped (``on_clip`` 'warn' or 'clip').
    warnings : list of str
        Things the user should know (a layer designed for another rate, ...).
    frames_out : int
        Frames written.
    sample_rate_in, sample_rate_out : float or None
        The input's rate (a CSV's or NPY's: the design rate standing in, else None) and
        the output's.
    peak : float or None
        Largest ``|sample|`` written, after the gain and before dither, rounding and
        clipping (so a value over 1 tells how much PCM was clipped); None if not finite.
    gain_db : float
        Gain applied: ``gain_db``, or what ``normalize_db`` found (0 for a silent output).
    seconds : float
        Wall-clock time of this file.
    """

    job: Job
    frames_in: int
    clipped: int
    warnings: list[str] = field(default_factory=list)
    frames_out: int = 0
    sample_rate_in: float | None = None
    sample_rate_out: float | None = None
    peak: float | None = None
    gain_db: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class JobProgress:
    """How far one file of :func:`run_jobs` has come: one event for a progress display.

    Events come in the calling thread: when a file starts (``frames == 0``), after
    blocks are read (every block in this process; with worker processes, what the
    parent sees each :data:`PROGRESS_POLL` seconds) and when it ends.

    Attributes
    ----------
    index : int
        The job's position in ``jobs``.
    frames : int
        Input frames read so far.
    total : int or None
        Input frames of the file; None when its header does not say (a pipe).
    finished : bool
        The file is done: written, failed or cancelled.
    failed : bool
        It ended with an error (the one :func:`run_jobs` raises, or lists in its
        :class:`~conv1d_cli.errors.BatchError`).
    """

    index: int
    frames: int
    total: int | None
    finished: bool = False
    failed: bool = False


class Cancelled(Exception):
    """Another file failed or the user interrupted: this one stopped (cleanly)."""


def _named(error: Conv1dError, source: str, target: str) -> Conv1dError:
    """Make sure the message names the file it is about (input, else output)."""
    text = str(error)
    if source in text or (source == "-" and "stdin" in text):
        return error
    if (target != "-" and target in text) or (target == "-" and "stdout" in text):
        return error
    shown = shown_path(source)
    text = text.replace("the input", shown, 1) if text.startswith("the input") else text
    if not text.startswith(shown):
        text = f"{shown}: {text}"
    # A FormatError's parameter (which format to give) is not part of its text.
    named = type(error)(text, parameter=error.parameter if isinstance(error, FormatError) else None)
    named.__cause__ = error
    return named


def plan_jobs(
    inputs: Sequence[str],
    output: str | None,
    output_dir: str | None,
    output_format: str | None = None,
    layer_paths: Sequence[str] = (),
) -> list[Job]:
    """Map inputs to outputs and refuse every invocation mistake before any work.

    An output may be neither an input nor a layer file: ``-o lowpass.npz
    --output-format npy`` would otherwise replace the filter with its output.

    Raises
    ------
    ConfigError
        Both or neither of ``output``/``output_dir``; ``output`` with several inputs or
        naming a directory; stdin twice or into a directory; two inputs onto one output;
        an output that is an input or a layer file.

    Examples
    --------
    >>> plan_jobs(["a.wav", "b/c.csv"], None, "out", "npy")
    [Job(source='a.wav', target='out/a.npy'), Job(source='b/c.csv', target='out/c.npy')]
    """

    def check_target(target: str) -> None:
        check_not_same_file(target, list(inputs))
        for layer in layer_paths:
            try:
                check_not_same_file(target, [layer])
            except ConfigError as e:
                raise ConfigError(
                    f"output {target!r} is the same file as layer {layer!r} (-w); "
                    f"refusing to overwrite a layer"
                ) from e

    if output is not None and output_dir is not None:
        raise ConfigError("give either -o/--output or -d/--output-dir, not both")
    if output is None and output_dir is None:
        raise ConfigError("missing an output: -o OUTPUT (one input) or -d OUTDIR (any number)")
    if list(inputs).count("-") > 1:
        raise ConfigError("stdin ('-') can be read only once")
    if output is not None:
        if len(inputs) > 1:
            raise ConfigError(
                f"-o/--output takes one input, got {len(inputs)}; use -d/--output-dir "
                f"for several inputs"
            )
        if output != "-" and Path(output).is_dir():
            raise ConfigError(f"-o {output!r} is a directory; use -d/--output-dir for a folder")
        check_target(output)
        return [Job(inputs[0], output)]
    assert output_dir is not None
    directory = Path(output_dir)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"-d {output_dir!r} is not a directory")
    if "-" in inputs:
        raise ConfigError("stdin ('-') needs -o OUTPUT (an output directory needs file names)")
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    for source in inputs:
        src = Path(source)
        suffix = "." + output_format.lower() if output_format else src.suffix
        target = str(directory / (src.stem + suffix))
        if target in seen:
            raise ConfigError(
                f"inputs {seen[target]!r} and {source!r} would both be written to {target!r}"
            )
        seen[target] = source
        check_target(target)
        jobs.append(Job(source, target))
    return jobs


def check_output_formats(
    jobs_list: Sequence[Job], output_format: str | None, subtype: str | None
) -> list[str]:
    """Refuse --subtype for non-audio outputs; warn when --output-format contradicts a name.

    Only what the command line tells: a '-' output without --output-format takes
    the input's format, which :func:`filter_file` checks once it is known.
    """
    warnings = []
    explicit = (
        None
        if output_format is None
        else formats.detect_format("-", output_format, parameter="output_format")
    )
    for job in jobs_list:
        by_name = None
        if not (pipes.is_stream(job.target) or pipes.names_open_file(job.target)):
            with contextlib.suppress(Conv1dError):  # no/unknown extension: nothing to compare
                by_name = formats.detect_format(job.target, parameter="output_format")
        fmt = explicit or by_name
        if subtype is not None and fmt is not None:
            formats.check_output_subtype(subtype, fmt)
        if explicit is not None and by_name is not None and explicit != by_name:
            # Not refused: a user may mean it (a WAV under a legacy name), but it is
            # usually a typo that a file browser or the next tool will trip over.
            warnings.append(
                f"{job.target}: writing {explicit.upper()} (--output-format {output_format}) "
                f"into a file named like {by_name.upper()}"
            )
    return warnings


def existing_outputs(jobs_list: Sequence[Job]) -> list[Job]:
    """The jobs whose output file exists already (for a no-clobber run), in input order.

    Only names that would be created or replaced count: stdout and what is not a
    regular file or a link (``/dev/null``, a FIFO) is written through, never replaced.

    Examples
    --------
    >>> existing_outputs([Job("in.wav", "-"), Job("in.wav", "/dev/null")])
    []
    """
    found = []
    for job in jobs_list:
        if pipes.is_stream(job.target) or pipes.names_open_file(job.target):
            continue
        path = Path(job.target)
        if path.is_symlink() or path.exists():
            found.append(job)
    return found


def check_dither(jobs_list: Sequence[Job], options: FilterOptions) -> None:
    """Refuse dither for every output that will not be integer PCM, before any work.

    What an output gets is known from the options and the names, except where it
    follows the input (a ``-`` output takes the input's format, an audio output its
    subtype): those inputs are probed (a header read), and a pipe input is left to
    :func:`filter_file`, which checks again once the input is open.

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
        _check_dither_subtype(job.target, fmt, subtype)


def _check_dither_subtype(target: str, fmt: str, subtype: str | None) -> None:
    if formats.pcm_step(subtype) is not None:
        return
    shown = "<stdout>" if target == "-" else target
    what = fmt.upper() if subtype is None else f"{fmt.upper()} {subtype}"
    fix = (
        "; give an integer subtype (--subtype PCM_16 or PCM_24) to dither"
        if subtype is not None
        else ""
    )
    raise ConfigError(
        f"{shown}: --dither applies to integer PCM audio outputs only, and this output is "
        f"{what} (written exactly, nothing to round){fix}"
    )


def filter_file(
    source: str | Job,
    target: str | None = None,
    layers: Sequence[Conv1d] = (),
    *,
    names: Sequence[str] | None = None,
    options: FilterOptions | None = None,
    cancel: StopFlag | None = None,
    progress: Progress = _no_progress,
    on_start: Callable[[int | None], None] | None = None,
    index: int = 0,
) -> FileReport:
    """Stream one input through the chain into its output, in bounded memory.

    Parameters
    ----------
    source : str or Job
        Input path (``"-"`` = stdin), or a :class:`Job` holding source and target.
    target : str, optional
        Output path (``"-"`` = stdout); not given with a Job. A file appears only
        when the whole run succeeds (atomic write); a pipe, FIFO or socket gets each
        block as it is computed where the format can stream
        (:func:`conv1d_cli.io.formats.streams_live`), and is cut short by an error.
    layers : sequence of Conv1d
        The chain, applied in order.
    names : sequence of str, optional
        How messages call each layer (default ``layer 1``, ...).
    options : FilterOptions, optional
        Formats, dtype, method, clipping, rate, block size.
    cancel : threading.Event or multiprocessing.Event, optional
        Set by another thread or process to stop this file between blocks (raises
        :class:`Cancelled`).
    progress : callable, optional
        Called with the number of frames after each block is read.
    on_start : callable, optional
        Called once the input's header is read and the output is planned, with the
        input's frame count (None when unknown, e.g. a pipe).
    index : int
        The file's position in a batch: with ``options.seed`` its dither noise is drawn
        from ``(seed, index)``.

    Returns
    -------
    FileReport

    Raises
    ------
    Conv1dError
        A typed error whose message names the input (or the output) file.
    """
    job = source if isinstance(source, Job) else Job(source, _required(target))
    opts = options or FilterOptions()
    layers = list(layers)
    names = list(names) if names is not None else [f"layer {i + 1}" for i in range(len(layers))]
    shown = shown_path(job.source)
    dtype = compute_dtype(layers, opts.dtype)
    started = time.perf_counter()
    try:
        reader_cm = inputs.open_reader(
            job.source,
            format=opts.input_format,
            dtype=dtype.name,
            columns=opts.columns,
            time_column=opts.time_column,
        )
        with reader_cm as reader:
            info = reader.info
            notices: list[str] = []
            layers, broadcast = broadcast_first_layer(
                layers, info.channels, info.format, names, shown
            )
            if broadcast is not None:
                notices.append(broadcast)
            check_chain(layers, names, info.channels, source=shown)
            check_stage_memory(layers, names, info.batch, dtype)
            out_frames = None
            if info.frames is not None:
                out_frames = chain_output_length(layers, info.frames, names, shown)
            design_rates = [layer.sample_rate for layer in layers]
            strides = [layer.stride for layer in layers]
            in_rate, rate_source = info.sample_rate, shown
            implied = implied_input_rate(design_rates, strides)
            if in_rate is None and implied is not None:
                # A CSV or NPY has no rate of its own: the first layer that records one
                # stands in (scaled by the strides before it), and later layers are
                # checked against it exactly as they would be for a WAV at that rate.
                in_rate, first = implied
                rate_source = f"{shown} (it has no rate; {names[first]}'s design rate stands in)"
            spec = outputs.plan_output(
                job.target,
                info,
                channels=layers[-1].out_channels,
                total_stride=math.prod(strides),
                rate_hint=in_rate,
                format=opts.output_format,
                subtype=opts.subtype,
                sample_rate=opts.sample_rate,
                on_clip=opts.on_clip,
                dtype=dtype.name,
                csv_delimiter=opts.csv_delimiter,
                # a pipe output announces its length when the input's header tells it
                frames=out_frames,
            )
            step = formats.pcm_step(spec.subtype)
            if opts.dither is not None:
                _check_dither_subtype(job.target, spec.format, spec.subtype)
            chain = StreamChain(
                layers,
                method=opts.method,
                dtype=dtype,
                names=names,
                prefix=_circular_prefix(reader, layers, opts, shown),
            )
            warnings = notices + rate_mismatches(design_rates, strides, names, in_rate, rate_source)
            track = _time_track(reader, spec, shown, warnings)
            rng = None
            if opts.dither is not None:
                # (seed, index): a file's noise does not depend on which worker runs it.
                entropy = None if opts.seed is None else [opts.seed % 2**64, index]
                rng = np.random.default_rng(entropy)
            if on_start is not None:
                on_start(info.frames)
            run = _Run(reader, chain, opts, cancel, progress, shown, layers, names, info.frames)
            output = _Output(spec, track, math.prod(strides), info.time_column)
            if opts.normalize_db is None:
                gain = 10.0 ** (opts.gain_db / 20.0)
                with output.open() as raw:
                    writer = _Leveled(raw, gain, step, rng)
                    frames = run.filter_into(writer)
                applied = opts.gain_db
            else:
                frames, writer, applied = _normalized(run, output, step, rng, warnings)
            return FileReport(
                job,
                frames,
                int(writer.clipped or 0),
                warnings,
                frames_out=writer.frames,
                sample_rate_in=in_rate,
                sample_rate_out=spec.sample_rate,
                peak=writer.peak,
                gain_db=applied,
                seconds=time.perf_counter() - started,
            )
    except Conv1dError as e:
        raise _named(e, job.source, job.target) from e


@dataclass
class _Run:
    """One file's reader and chain: what filtering it into a writer needs."""

    reader: SignalReader
    chain: StreamChain
    opts: FilterOptions
    cancel: StopFlag | None
    progress: Progress
    shown: str
    layers: list[Conv1d]
    names: list[str]
    known_frames: int | None

    def filter_into(self, writer: _Leveled) -> int:
        """Every block through the chain into ``writer``; returns the frames read."""
        frames = _pump(
            self.reader, writer, self.chain, self.opts, self.cancel, self.progress, self.shown
        )
        if frames == 0:
            raise DataFileError(f"{self.shown}: the signal is empty (0 samples)")
        if self.known_frames is None:
            chain_output_length(self.layers, frames, self.names, self.shown)
        # A long right pad comes a piece at a time.
        dtype = self.chain.dtype
        for out in _checked(
            self.chain.finish_pieces(), writer.frames, self.opts, dtype, self.shown
        ):
            writer.write(out)
        return frames


class _Leveled:
    """The writer behind the chain: gain, then the peak is noted, then dither.

    Dither noise is drawn time-major, one frame after another, so the same seed
    gives the same noise whatever the block size.
    """

    def __init__(
        self,
        writer: SignalWriter | _TimedWriter,
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


def _normalized(
    run: _Run,
    output: _Output,
    step: float | None,
    rng: np.random.Generator | None,
    warnings: list[str],
) -> tuple[int, _Leveled, float]:
    """Filter into a float NPY spool, find the peak, then scale it into the output.

    The spool is in ``$TMPDIR`` (removed whatever happens) and is read back block by
    block through a memory map: the signal is never held in memory. Returns the
    frames read, the output's writer and the gain applied in dB.
    """
    assert run.opts.normalize_db is not None
    spec = output.spec
    try:
        spool_home = tempfile.TemporaryDirectory(prefix="conv1d-normalize-")
    except OSError as e:
        raise DataFileError(
            f"--normalize: cannot create a spool for the filtered signal in "
            f"{tempfile.gettempdir()}: {e.strerror or e}; point TMPDIR at a writable disk"
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
                first = _Leveled(raw, 1.0, None, None)
                frames = run.filter_into(first)
        except DataFileError as e:
            if spool.path not in str(e):
                raise  # about the input, not the spool
            raise DataFileError(
                f"{e} (--normalize spools the filtered signal in {tempfile.gettempdir()} "
                f"before writing; point TMPDIR at a disk with room)"
            ) from e
        peak = first.peak
        if peak is None or peak == 0.0:
            why = "silent (peak 0)" if peak == 0.0 else "not finite (NaN or Inf)"
            warnings.append(
                f"{shown_path(spec.path, output=True)}: the output is {why}; "
                f"--normalize left its level as it is"
            )
            gain, applied = 1.0, 0.0
        else:
            target = 10.0 ** (run.opts.normalize_db / 20.0)
            gain = target / peak
            applied = 20.0 * math.log10(gain)
        block = block_frames(spec.channels, spec.batch, run.opts.block_size)
        with inputs.open_reader(spool.path, format="npy", dtype=spec.dtype) as spooled:
            with output.open() as raw:
                writer = _Leveled(raw, gain, step, rng)
                while True:
                    if run.cancel is not None and run.cancel.is_set():
                        raise Cancelled
                    data = spooled.read(block)
                    if not data.shape[-1]:
                        break
                    writer.write(data)
    return frames, writer, applied


class _TimedWriter:
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


def _time_track(
    reader: SignalReader, spec: outputs.OutputSpec, shown: str, warnings: list[str]
) -> csvfile.TimeTrack | None:
    """The input's time column, if it has one and the output is a CSV that can hold it."""
    info = reader.info
    if info.time_column is None:
        return None
    if info.time_detected:
        warnings.append(
            f"{shown}: column {info.time_column!r} is read as time, not as a "
            f"channel (--time-column none filters it too)"
        )
    if spec.format != "csv":
        warnings.append(
            f"{shown}: time column {info.time_column!r} not written: the output "
            f"is {spec.format.upper()}, not CSV"
        )
        return None
    return reader.time_track()


@dataclass(frozen=True)
class _Output:
    """The output file, and the time column written first in it (CSV), if any."""

    spec: outputs.OutputSpec
    track: csvfile.TimeTrack | None
    stride: int
    time_name: str | None = None

    @contextlib.contextmanager
    def open(self) -> Iterator[SignalWriter | _TimedWriter]:
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
            yield _TimedWriter(writer, self.track, self.stride)


def _required(target: str | None) -> str:
    if target is None:
        raise ConfigError("filter_file needs a target (or a Job holding one)")
    return target


def _circular_prefix(
    reader: SignalReader, layers: Sequence[Conv1d], opts: FilterOptions, shown: str
) -> np.ndarray | None:
    """Circular padding starts with the END of the signal: read it first where we can.

    Those samples enter the chain before the blocks that are checked finite, so they
    are checked here: a NaN at the end must be named as the input's, not mistaken
    for an overflow of the layers' output.
    """
    left = StreamChain.prefix_length(layers)
    frames = reader.info.frames
    if not (left and reader.seekable and frames is not None and frames >= left):
        return None
    prefix = reader.tail(left)
    if not opts.allow_nonfinite:
        check_finite(prefix if prefix.ndim == 3 else prefix[None], frames - left, shown)
    return prefix


def _checked(
    pieces: Iterator[np.ndarray],
    produced: int,
    opts: FilterOptions,
    dtype: np.dtype[Any],
    shown: str,
) -> Iterator[np.ndarray]:
    """The chain's output ``pieces``, with overflow diagnosed by conv1d, not by NumPy.

    The input was checked finite, so NaN/Inf in the output means the layers overflowed
    the compute dtype (weights of 1e200, float32 past 3.4e38). NumPy's RuntimeWarning
    would name a line of core.py and ignore -q; the error below names the output sample.
    ``produced`` is the output frames before the first piece (for that sample index).
    Each piece is computed inside ``next()``, hence under the ``errstate``.
    """
    while True:
        with np.errstate(over="ignore", invalid="ignore"):
            out = next(pieces, None)
        if out is None:
            return
        if not opts.allow_nonfinite and out.shape[-1]:
            check_finite(
                out if out.ndim == 3 else out[None],
                produced,
                f"{shown}: the layers' output overflows {dtype.name}",
                anyway="write non-finite values anyway",
            )
        produced += out.shape[-1]
        yield out


def _pump(
    reader: SignalReader,
    writer: SignalWriter | _Leveled,
    chain: StreamChain,
    opts: FilterOptions,
    cancel: StopFlag | None,
    progress: Progress,
    shown: str,
) -> int:
    """Read -> filter -> write every block; returns the frames read.

    Reading the next block and writing the previous one run in two helper threads
    while this one filters (libsndfile and NumPy release the GIL), so decoding,
    encoding and the FFTs overlap on two cores. At most one block waits on each
    side, so memory stays bounded. Without ``opts.overlap`` (one thread per file:
    ``--jobs``, ``make -j``, ``--threads 1``) the same steps run in this thread.
    """
    reads: ThreadPoolExecutor | _Inline
    writes: ThreadPoolExecutor | _Inline
    if opts.overlap:
        reads = ThreadPoolExecutor(1, thread_name_prefix="conv1d-read")
        writes = ThreadPoolExecutor(1, thread_name_prefix="conv1d-write")
    else:
        reads = writes = _Inline()
    pending_write: Future[None] | None = None
    frames = block_frames(reader.info.channels, reader.info.batch, opts.block_size)
    next_block = reads.submit(reader.read, frames)
    offset = 0
    produced = 0  # output frames so far (the writes may lag behind)
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled
            block = next_block.result()
            n = block.shape[-1]
            if n == 0:
                break
            next_block = reads.submit(reader.read, frames)
            if not (opts.allow_nonfinite or reader.finite):  # integer PCM is always finite
                check_finite(block if block.ndim == 3 else block[None], offset, shown)
            # Pieces: a long left pad completes many outputs at the first block.
            for out in _checked(chain.push_pieces(block), produced, opts, chain.dtype, shown):
                produced += out.shape[-1]
                if pending_write is not None:
                    pending_write.result()
                    pending_write = None
                if out.shape[-1]:
                    pending_write = writes.submit(writer.write, out)
            offset += n
            progress(n)
        if pending_write is not None:
            pending_write.result()
            pending_write = None
    finally:
        # Never leave a helper thread touching the reader or writer after we return
        # (on an error the writer is aborted next and its temp file removed).
        reads.shutdown(wait=True, cancel_futures=True)
        writes.shutdown(wait=True, cancel_futures=True)
    return offset


class _Inline:
    """An executor that runs each task when it is submitted (no helper thread)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as e:  # delivered by .result(), as a thread pool would
            future.set_exception(e)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Nothing runs in the background."""


def run_jobs(
    jobs: Sequence[Job],
    layers: Sequence[Conv1d],
    names: Sequence[str],
    options: FilterOptions | None = None,
    *,
    workers: int = 1,
    keep_going: bool = False,
    on_done: Callable[[int, FileReport], None] | None = None,
    on_progress: Callable[[JobProgress], None] | None = None,
    executor: Executor | None = None,
) -> list[FileReport]:
    """Filter every job, one after another or in ``workers`` worker processes.

    Parameters
    ----------
    jobs : sequence of Job
    layers, names
        The chain and how messages call its layers.
    options : FilterOptions, optional
    workers : int
        Files filtered at once, each in its own single-threaded worker process
        (:mod:`conv1d_cli.threads`). As with any process pool, a script that asks
        for ``workers > 1`` must call this under ``if __name__ == "__main__":``
        (the workers may start from a fresh interpreter that imports the script).
        Processes, not threads: each file's Python glue (and a CSV's parsing) holds
        the GIL, so threads of one process wait for each other, while processes
        scale like ``make -j``.
    keep_going : bool
        Go on after a failed file and raise one :class:`~conv1d_cli.errors.BatchError`
        listing every failure at the end; otherwise the first failure stops the run
        (and cancels the files under way, which leave nothing behind).
    on_done : callable, optional
        Called as ``on_done(index, report)`` for each file that succeeded, in input
        order whichever worker finished first, so what it prints is deterministic.
    on_progress : callable, optional
        Called with a :class:`JobProgress` as each file starts, advances and ends, in
        the calling thread whatever ``workers`` is: worker processes add the frames
        they read to shared counters (one addition per block), which this process
        reads every :data:`PROGRESS_POLL` seconds. Meant for a progress display; it
        must not raise.
    executor : callable, optional
        Filters the files elsewhere instead (``workers`` is then ignored):
        ``executor(jobs, layers, names, options)`` yields ``(index, outcome)`` as
        each file finishes, the outcome a :class:`FileReport`, a
        :class:`~conv1d_cli.errors.Conv1dError` or :class:`Cancelled`; the
        reporting, ``keep_going`` and ordering rules stay these. Closing it early
        must stop the rest. :class:`conv1d_cli.cluster.DaskFiles` is one (Dask).

    Returns
    -------
    list of FileReport
        One per successful job, in input order.
    """
    opts = options or FilterOptions()
    reports: dict[int, FileReport] = {}
    failures: list[tuple[int, Conv1dError]] = []
    settled: set[int] = set()
    next_reported = 0

    def settle(index: int, report: FileReport | None) -> None:
        nonlocal next_reported
        settled.add(index)
        if report is not None:
            reports[index] = report
        while next_reported in settled:
            if on_done is not None and next_reported in reports:
                on_done(next_reported, reports[next_reported])
            next_reported += 1

    def failed(index: int, error: Conv1dError) -> None:
        if not keep_going:
            raise error
        failures.append((index, error))
        settle(index, None)

    if executor is not None:
        outcomes = executor(jobs, layers, names, opts)
        try:
            for index, outcome in outcomes:
                if on_progress is not None:  # files finished elsewhere: their end is known
                    bad = isinstance(outcome, Conv1dError)
                    on_progress(JobProgress(index, 0, None, True, bad))
                if isinstance(outcome, Cancelled):
                    settle(index, None)
                elif isinstance(outcome, Conv1dError):
                    failed(index, outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    settle(index, outcome)
        finally:
            # On an error, Ctrl-C or SIGTERM: the executor cancels what is left.
            close = getattr(outcomes, "close", None)
            if close is not None:
                close()
    elif workers == 1 or len(jobs) == 1:
        for index, job in enumerate(jobs):
            tracker = _Tracker(index, on_progress)
            try:
                report = filter_file(
                    job,
                    layers=layers,
                    names=names,
                    options=opts,
                    progress=tracker.advance,
                    on_start=tracker.start,
                    index=index,
                )
            except Conv1dError as e:
                tracker.finish(failed=True)
                failed(index, e)
                continue
            tracker.finish()
            settle(index, report)
    else:
        counters = _Counters(len(jobs)) if on_progress is not None else None
        pool, cancel = _process_pool(min(workers, len(jobs)), counters)
        try:
            futures = {
                pool.submit(_work, job, list(layers), list(names), opts, index): index
                for index, job in enumerate(jobs)
            }
            pending = set(futures)
            while pending:
                finished, pending = wait(
                    pending,
                    timeout=None if counters is None else PROGRESS_POLL,
                    return_when=FIRST_COMPLETED,
                )
                if counters is not None and on_progress is not None:
                    # Finished files too: their last blocks may be unseen yet.
                    for index in sorted(futures[f] for f in pending | finished):
                        counters.poll(index, on_progress)
                for future in finished:
                    index = futures[future]
                    error = future.exception()
                    if counters is not None and on_progress is not None:
                        bad = isinstance(error, Conv1dError)
                        counters.finish(index, on_progress, failed=bad)
                    try:
                        report = future.result()
                    except Cancelled:
                        if cancel.is_set():  # we stopped it (another file failed)
                            settle(index, None)
                        else:  # a signal sent to that worker alone: not a success
                            failed(
                                index,
                                DataFileError(
                                    f"{jobs[index].source}: stopped by a signal to its worker "
                                    f"process; nothing was written"
                                ),
                            )
                        continue
                    except Conv1dError as e:
                        failed(index, e)
                        continue
                    except BrokenProcessPool as e:
                        # Killed (OOM killer, kill -9): no file of that worker is sure.
                        raise DataFileError(
                            f"{jobs[index].source}: the worker process filtering it died ({e})"
                        ) from e
                    settle(index, report)
        finally:
            # On an error, Ctrl-C or SIGTERM: stop the others and let them clean up
            # their temporary files before we return.
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        # Input order, whatever order the workers finished in: messages are deterministic.
        failures.sort(key=lambda failure: failure[0])
        raise BatchError([(jobs[i].source, e) for i, e in failures], len(jobs))
    return [reports[i] for i in sorted(reports)]


class _Tracker:
    """Turns one in-process file's start and block callbacks into :class:`JobProgress`."""

    def __init__(self, index: int, emit: Callable[[JobProgress], None] | None) -> None:
        self.index = index
        self.emit = emit
        self.frames = 0
        self.total: int | None = None

    def start(self, total: int | None) -> None:
        self.total = total
        if self.emit is not None:
            self.emit(JobProgress(self.index, 0, total))

    def advance(self, frames: int) -> None:
        self.frames += frames
        if self.emit is not None:
            self.emit(JobProgress(self.index, self.frames, self.total))

    def finish(self, failed: bool = False) -> None:
        if self.emit is not None:
            self.emit(JobProgress(self.index, self.frames, self.total, True, failed))


#: ``_Counters.totals`` of a file no worker has started yet, and of an unknown length.
_NOT_STARTED: Final = -2
_UNKNOWN: Final = -1


class _Counters:
    """Progress of worker processes in shared memory: frames read and total per job.

    Each slot is written by the one worker filtering that job (an aligned 64-bit
    store, no lock needed) and read by the parent; a queue would cost a pickle and a
    pipe write per block, these cost one addition.
    """

    def __init__(self, jobs: int) -> None:
        self.frames = RawArray("q", jobs)
        self.totals = RawArray("q", [_NOT_STARTED] * jobs)
        self._seen: dict[int, tuple[int, int]] = {}

    def poll(self, index: int, emit: Callable[[JobProgress], None]) -> None:
        """Emit an event for ``index`` if it has changed since the last poll."""
        total = self.totals[index]
        if total == _NOT_STARTED:
            return
        now = (total, self.frames[index])
        if self._seen.get(index) != now:
            self._seen[index] = now
            emit(JobProgress(index, now[1], None if total == _UNKNOWN else total))

    def finish(self, index: int, emit: Callable[[JobProgress], None], failed: bool) -> None:
        total = self.totals[index]
        shown_total = None if total in (_NOT_STARTED, _UNKNOWN) else total
        emit(JobProgress(index, self.frames[index], shown_total, True, failed))


#: A worker process's stop flag, set by the parent (or by a signal to the worker).
_WORKER_CANCEL: StopFlag | None = None
#: A worker process's progress counters (None: nobody watches).
_WORKER_COUNTERS: _Counters | None = None


def _process_pool(
    workers: int, counters: _Counters | None = None
) -> tuple[ProcessPoolExecutor, MpEvent]:
    """A pool of ``workers`` single-threaded worker processes and their shared stop event.

    Workers fork from this process on Linux when it runs no other thread (BLAS
    single-threaded, no pipeline threads yet), so nothing is copied mid-lock and
    no worker pays an interpreter start and the NumPy/SciPy imports again
    (~0.5 s measured). Otherwise they start from a forkserver (or spawn) with the
    filtering modules preloaded.
    """
    policy = thread_policy.current() or thread_policy.decide(jobs=workers)
    methods = multiprocessing.get_all_start_methods()
    # The CLI's signal watcher only waits in os.read on its wakeup pipe, holding no
    # lock a forked child could inherit locked: it does not count.
    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    alone = all(t.name == "conv1d-signals" for t in others) and policy.blas == 1
    ctx: BaseContext
    if sys.platform.startswith("linux") and "fork" in methods and alone:
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["conv1d_cli.pipeline"])
    cancel = ctx.Event()
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(cancel, policy, counters),
    )
    return pool, cancel


def _init_worker(
    cancel: MpEvent, policy: thread_policy.Policy, counters: _Counters | None = None
) -> None:
    """Set up a worker: the parent's thread policy, and stop cleanly on a signal.

    Ctrl-C reaches the whole process group: the worker ignores it and lets the
    parent decide (it sets ``cancel``). SIGTERM/SIGHUP sent to a worker alone stop
    its current file the same way, so its temporary file is removed.
    """
    global _WORKER_CANCEL, _WORKER_COUNTERS
    _WORKER_CANCEL = cancel
    _WORKER_COUNTERS = counters
    thread_policy.configure(policy)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: cancel.set())


def _work(
    job: Job, layers: list[Conv1d], names: list[str], opts: FilterOptions, index: int
) -> FileReport:
    """Filter one file in a worker process (see :func:`_process_pool`).

    An error goes back to the parent as a fresh copy, raised outside the ``except``:
    no cause, context or traceback to pickle. Once ``dask`` is imported (it installs
    tblib's exception pickling process-wide), those were pickled too, and under a
    deep stack that failed (RecursionError) and the pool took the worker for dead.
    """
    counters = _WORKER_COUNTERS
    on_start: Callable[[int | None], None] | None = None
    progress: Progress = _no_progress
    if counters is not None:

        def on_start(total: int | None) -> None:
            counters.frames[index] = 0
            # Written last: a total other than _NOT_STARTED tells the parent "started".
            counters.totals[index] = _UNKNOWN if total is None else total

        def progress(frames: int) -> None:
            counters.frames[index] += frames

    try:
        return filter_file(
            job,
            layers=layers,
            names=names,
            options=opts,
            cancel=_WORKER_CANCEL,
            progress=progress,
            on_start=on_start,
            index=index,
        )
    except Conv1dError as e:
        try:
            error = type(e)(*e.args)
        except TypeError:  # pragma: no cover - every worker-side error takes a message
            error = DataFileError(str(e))
    raise error


def known_frames(source: str, input_format: str | None = None) -> int | None:
    """Frame count of a file for a progress display (None for pipes and unknown lengths).

    Examples
    --------
    >>> known_frames("-") is None
    True
    """
    if pipes.is_stream(source):  # probing a pipe would consume it
        return None
    try:
        return inputs.probe(source, format=input_format).frames
    except Conv1dError:
        return None  # the real read reports the problem
