"""Files through a chain of layers: reader -> chain -> writer, one file or many.

The engine under ``conv1d apply``, usable from scripts and notebooks. It never
imports click and never prints: every outcome is a return value
(:class:`FileReport`) or a typed error from :mod:`conv1d_cli.errors`; the CLI
decides how to show them.

Entry points
------------
- :func:`filter_file` -- stream one input file (or pipe) into one output
- :func:`run_jobs` -- many files, one after another or on worker threads
- :func:`plan_jobs` -- map inputs to outputs, refusing every invocation mistake first
- :func:`conv1d_cli.stream.stream_filter` -- filter an iterator of blocks in memory

Examples
--------
>>> import tempfile, pathlib
>>> import numpy as np
>>> from conv1d_cli import Conv1d
>>> from conv1d_cli.signal_io import read_signal, write_signal
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
import math
import multiprocessing
import signal
import sys
import threading
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
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from conv1d_cli import signal_io
from conv1d_cli import threads as thread_policy
from conv1d_cli.errors import BatchError, ConfigError, Conv1dError, DataFileError
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import implied_input_rate, rate_mismatches
from conv1d_cli.signal_io import SignalReader, SignalWriter
from conv1d_cli.stream import (
    StreamChain,
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
    "block_frames",
    "check_output_formats",
    "filter_file",
    "known_frames",
    "plan_jobs",
    "run_jobs",
]

#: Samples (frames x channels x batch) per block by default: 2 MiB in float64.
BLOCK_SAMPLES: Final = 1 << 18
#: Frames per block are kept within these bounds unless the caller asks for a size.
BLOCK_FRAMES: Final = (1 << 12, 1 << 17)

Progress = Callable[[int], None]


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
        Frames per block; default :func:`block_frames`.
    overlap : bool
        Read and write in helper threads while filtering (``threads.Policy.overlap``);
        off, every step runs in the calling thread (one thread per file).
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
    """

    job: Job
    frames_in: int
    clipped: int
    warnings: list[str] = field(default_factory=list)


class Cancelled(Exception):
    """Another file failed or the user interrupted: this one stopped (cleanly)."""


def shown_source(source: str) -> str:
    """How messages call an input: ``<stdin>`` for ``"-"``."""
    return "<stdin>" if source == "-" else source


def _named(error: Conv1dError, source: str, target: str) -> Conv1dError:
    """Make sure the message names the file it is about (input, else output)."""
    text = str(error)
    if source in text or (source == "-" and "stdin" in text):
        return error
    if (target != "-" and target in text) or (target == "-" and "stdout" in text):
        return error
    shown = shown_source(source)
    text = text.replace("the input", shown, 1) if text.startswith("the input") else text
    if not text.startswith(shown):
        text = f"{shown}: {text}"
    named = type(error)(text)
    named.__cause__ = error
    return named


def block_frames(requested: int | None, channels: int, batch: int | None) -> int:
    """Frames per read: as asked, else a fixed sample budget (memory independent of C).

    A requested size is never enlarged: on a pipe the block size is the latency.

    Examples
    --------
    >>> block_frames(None, 2, None), block_frames(None, 512, None), block_frames(7, 2, None)
    (131072, 4096, 7)
    """
    if requested is not None:
        return requested
    per_frame = channels * (batch or 1)
    return max(BLOCK_FRAMES[0], min(BLOCK_FRAMES[1], BLOCK_SAMPLES // max(1, per_frame)))


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
    from conv1d_cli.atomic import check_not_same_file

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
    explicit = None if output_format is None else signal_io.detect_format("-", output_format)
    for job in jobs_list:
        by_name = None
        if not (signal_io.is_stream(job.target) or signal_io.names_open_file(job.target)):
            with contextlib.suppress(Conv1dError):  # no/unknown extension: nothing to compare
                by_name = signal_io.detect_format(job.target)
        fmt = explicit or by_name
        if subtype is not None and fmt is not None:
            signal_io.check_output_subtype(subtype, fmt)
        if explicit is not None and by_name is not None and explicit != by_name:
            # Not refused: a user may mean it (a WAV under a legacy name), but it is
            # usually a typo that a file browser or the next tool will trip over.
            warnings.append(
                f"{job.target}: writing {explicit.upper()} (--output-format {output_format}) "
                f"into a file named like {by_name.upper()}"
            )
    return warnings


def filter_file(
    source: str | Job,
    target: str | None = None,
    layers: Sequence[Conv1d] = (),
    *,
    names: Sequence[str] | None = None,
    options: FilterOptions | None = None,
    cancel: StopFlag | None = None,
    progress: Progress = _no_progress,
) -> FileReport:
    """Stream one input through the chain into its output, in bounded memory.

    Parameters
    ----------
    source : str or Job
        Input path (``"-"`` = stdin), or a :class:`Job` holding source and target.
    target : str, optional
        Output path (``"-"`` = stdout); not given with a Job. The output appears only
        when the whole run succeeds (atomic write).
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
    shown = shown_source(job.source)
    dtype = compute_dtype(layers, opts.dtype)
    try:
        reader_cm = signal_io.open_reader(job.source, format=opts.input_format, dtype=dtype.name)
        with reader_cm as reader:
            info = reader.info
            check_chain(layers, names, info.channels, source=shown)
            check_stage_memory(layers, names, info.batch, dtype)
            if info.frames is not None:
                chain_output_length(layers, info.frames, names, shown)
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
            spec = signal_io.plan_output(
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
            )
            chain = StreamChain(
                layers,
                method=opts.method,
                dtype=dtype,
                names=names,
                prefix=_circular_prefix(reader, layers),
            )
            warnings = rate_mismatches(design_rates, strides, names, in_rate, rate_source)
            with spec.open() as writer:
                frames = _pump(reader, writer, chain, opts, cancel, progress, shown)
                if frames == 0:
                    raise DataFileError(f"{shown}: the signal is empty (0 samples)")
                if info.frames is None:
                    chain_output_length(layers, frames, names, shown)
                # A long right pad comes a piece at a time.
                for out in _checked(chain.finish_pieces(), writer.frames, opts, dtype, shown):
                    writer.write(out)
            return FileReport(job, frames, int(writer.clipped or 0), warnings)
    except Conv1dError as e:
        raise _named(e, job.source, job.target) from e


def _required(target: str | None) -> str:
    if target is None:
        raise ConfigError("filter_file needs a target (or a Job holding one)")
    return target


def _circular_prefix(reader: SignalReader, layers: Sequence[Conv1d]) -> np.ndarray | None:
    """Circular padding starts with the END of the signal: read it first where we can."""
    left = StreamChain.prefix_length(layers)
    frames = reader.info.frames
    if left and reader.seekable and frames is not None and frames >= left:
        return reader.tail(left)
    return None


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
    writer: SignalWriter,
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
    frames = block_frames(opts.block_size, reader.info.channels, reader.info.batch)
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
            if not opts.allow_nonfinite:
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
    progress: Callable[[Job], Progress] | None = None,
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
        (:mod:`conv1d_cli.threads`). Processes, not threads: each file's Python glue
        (and a CSV's parsing) holds the GIL, so threads of one process wait for each
        other, while processes scale like ``make -j``.
    keep_going : bool
        Go on after a failed file and raise one :class:`~conv1d_cli.errors.BatchError`
        listing every failure at the end; otherwise the first failure stops the run
        (and cancels the files under way, which leave nothing behind).
    on_done : callable, optional
        Called as ``on_done(index, report)`` for each file that succeeded, in input
        order whichever worker finished first, so what it prints is deterministic.
    progress : callable, optional
        ``progress(job)`` returns the frame-progress callback for that job (only
        where files are filtered in this process, ``workers=1``).
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
            tick = progress(job) if progress is not None else _no_progress
            try:
                report = filter_file(job, layers=layers, names=names, options=opts, progress=tick)
            except Conv1dError as e:
                failed(index, e)
                continue
            settle(index, report)
    else:
        pool, cancel = _process_pool(min(workers, len(jobs)))
        try:
            futures = {
                pool.submit(_work, job, list(layers), list(names), opts): index
                for index, job in enumerate(jobs)
            }
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = futures[future]
                    try:
                        report = future.result()
                    except Cancelled:
                        settle(index, None)
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


#: A worker process's stop flag, set by the parent (or by a signal to the worker).
_WORKER_CANCEL: StopFlag | None = None


def _process_pool(workers: int) -> tuple[ProcessPoolExecutor, MpEvent]:
    """A pool of ``workers`` single-threaded worker processes and their shared stop event.

    Workers fork from this process on Linux when it runs no other thread (BLAS
    single-threaded, no pipeline threads yet), so nothing is copied mid-lock and
    no worker pays an interpreter start and the NumPy/SciPy imports again
    (~0.5 s measured). Otherwise they start from a forkserver (or spawn) with the
    filtering modules preloaded.
    """
    policy = thread_policy.current() or thread_policy.decide(jobs=workers)
    methods = multiprocessing.get_all_start_methods()
    alone = threading.active_count() == 1 and policy.blas == 1
    ctx: BaseContext
    if sys.platform.startswith("linux") and "fork" in methods and alone:
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["conv1d_cli.pipeline"])
    cancel = ctx.Event()
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(cancel, policy)
    )
    return pool, cancel


def _init_worker(cancel: MpEvent, policy: thread_policy.Policy) -> None:
    """Set up a worker: the parent's thread policy, and stop cleanly on a signal.

    Ctrl-C reaches the whole process group: the worker ignores it and lets the
    parent decide (it sets ``cancel``). SIGTERM/SIGHUP sent to a worker alone stop
    its current file the same way, so its temporary file is removed.
    """
    global _WORKER_CANCEL
    _WORKER_CANCEL = cancel
    thread_policy.configure(policy)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: cancel.set())


def _work(job: Job, layers: list[Conv1d], names: list[str], opts: FilterOptions) -> FileReport:
    """Filter one file in a worker process (see :func:`_process_pool`).

    An error goes back to the parent as a fresh copy, raised outside the ``except``:
    no cause, context or traceback to pickle. Once ``dask`` is imported (it installs
    tblib's exception pickling process-wide), those were pickled too, and under a
    deep stack that failed (RecursionError) and the pool took the worker for dead.
    """
    try:
        return filter_file(job, layers=layers, names=names, options=opts, cancel=_WORKER_CANCEL)
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
    if signal_io.is_stream(source):  # probing a pipe would consume it
        return None
    try:
        return signal_io.probe(source, format=input_format).frames
    except Conv1dError:
        return None  # the real read reports the problem
