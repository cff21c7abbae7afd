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

import collections
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError, shown_path
from conv1d_cli.io import formats, inputs, outputs
from conv1d_cli.io.base import SignalReader
from conv1d_cli.io.pipes import is_live_stream
from conv1d_cli.jobs import (
    PROGRESS_POLL,
    Book,
    Cancelled,
    FileReport,
    FilterOptions,
    Job,
    JobProgress,
    Progress,
    StopFlag,
    check_output_formats,
    existing_outputs,
    known_frames,
    no_progress,
    plan_jobs,
)
from conv1d_cli.layer import Conv1d
from conv1d_cli.levels import (
    BlockWriter,
    Leveled,
    Output,
    check_dither,
    check_dither_subtype,
    normalized,
    time_track,
)
from conv1d_cli.overlap import Helper, Inline, Task
from conv1d_cli.shapes import rate_warnings
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
from conv1d_cli.workers import Counters, Tracker, process_pool, work_shared

if TYPE_CHECKING:
    from concurrent.futures import Future

    from conv1d_cli.io import csvfile

# The options, jobs, reports and checks live in conv1d_cli.jobs and conv1d_cli.levels;
# a script imports all of them from here.
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


#: ``executor(jobs, layers, names, options)`` -> iterator of (index, outcome); see run_jobs.
Executor = Callable[
    [Sequence["Job"], Sequence[Conv1d], Sequence[str], "FilterOptions"],
    Iterator[tuple[int, "FileReport | Conv1dError | Cancelled"]],
]


def filter_file(
    source: str | Job,
    target: str | None = None,
    layers: Sequence[Conv1d] = (),
    *,
    names: Sequence[str] | None = None,
    options: FilterOptions | None = None,
    cancel: StopFlag | None = None,
    progress: Progress = no_progress,
    on_start: Callable[[int | None], None] | None = None,
    index: int = 0,
    chain_checked: bool = False,
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
    chain_checked : bool
        The caller has run :func:`~conv1d_cli.stream.check_chain` on ``layers`` once
        for the whole run (``conv1d apply`` does, before any file is opened): only
        what this input adds is checked, its channels against the chain's start.

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
            plan = _plan_file(reader, job, layers, names, opts, dtype, chain_checked)
            if on_start is not None:
                on_start(reader.info.frames)
            run = _Run(reader, plan.chain, opts, cancel, progress, plan.shown, names)
            frames, writer, applied = _write(run, plan, index)
            return FileReport(
                job,
                frames,
                int(writer.clipped or 0),
                plan.warnings,
                frames_out=writer.frames,
                sample_rate_in=plan.in_rate,
                sample_rate_out=plan.spec.sample_rate,
                peak=writer.peak,
                gain_db=applied,
                seconds=time.perf_counter() - started,
            )
    except Conv1dError as e:
        raise job.about(e) from e


@dataclass(frozen=True)
class _FilePlan:
    """One file's chain, output and warnings, decided before any sample is read."""

    shown: str
    chain: StreamChain
    spec: outputs.OutputSpec
    in_rate: float | None
    warnings: list[str]
    track: csvfile.TimeTrack | None
    time_name: str | None


def _plan_file(
    reader: SignalReader,
    job: Job,
    layers: list[Conv1d],
    names: list[str],
    opts: FilterOptions,
    dtype: np.dtype[Any],
    chain_checked: bool = False,
) -> _FilePlan:
    """Check the chain against the input's header once, and plan the output."""
    info = reader.info
    shown = shown_path(job.source)
    warnings: list[str] = []
    layers, broadcast = broadcast_first_layer(layers, info.channels, info.format, names, shown)
    if broadcast is not None:
        warnings.append(broadcast)
    # The input against the chain's start: its first layer and, as a one-channel
    # filter may have been widened to the input's channels just above, the link to
    # the second. The links further on do not depend on the input.
    check_chain(layers[:2] if chain_checked else layers, names, info.channels, source=shown)
    check_stage_memory(layers, names, info.batch, dtype)
    out_frames = None
    if info.frames is not None:
        out_frames = chain_output_length(layers, info.frames, names, shown)
    in_rate, mismatches = rate_warnings(
        [layer.sample_rate for layer in layers],
        [layer.stride for layer in layers],
        names,
        info.sample_rate,
        shown,
        [layer.sample_rate_binding for layer in layers],
    )
    spec = outputs.plan_output(
        job.target,
        info,
        channels=layers[-1].out_channels,
        total_stride=math.prod(layer.stride for layer in layers),
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
    if opts.dither is not None:
        check_dither_subtype(job.target, spec.format, spec.subtype)
    chain = StreamChain(
        layers,
        method=opts.method,
        dtype=dtype,
        names=names,
        prefix=_circular_prefix(reader, layers, opts, shown),
        checked=True,  # just above, against the input's channels
        live_block=_live_block(job.target, spec, reader, opts),
        # _pump checks every block unless told not to; integer PCM needs no check
        finite=reader.finite or not opts.allow_nonfinite,
    )
    warnings += mismatches
    track = time_track(reader, spec, shown, warnings)
    return _FilePlan(shown, chain, spec, in_rate, warnings, track, info.time_column)


def _live_block(
    target: str, spec: outputs.OutputSpec, reader: SignalReader, opts: FilterOptions
) -> int | None:
    """Frames per block when the output is read as it is written (its latency), else None.

    A live pipe gets each block as it is computed: a long kernel is then
    partitioned at the block, so one block in completes one block out.
    """
    live = formats.streams_live(spec.format, spec.subtype, spec.frames)
    if not (live and is_live_stream(target)):
        return None
    return block_frames(reader.info.channels, reader.info.batch, opts.block_size)


def _write(run: _Run, plan: _FilePlan, index: int) -> tuple[int, Leveled, float]:
    """Filter the input into the output at its level; returns frames, writer and gain (dB)."""
    opts = run.opts
    step = formats.pcm_step(plan.spec.subtype)
    rng = None
    if opts.dither is not None:
        # (seed, index): a file's noise does not depend on which worker runs it.
        entropy = None if opts.seed is None else [opts.seed % 2**64, index]
        rng = np.random.default_rng(entropy)
    output = Output(plan.spec, plan.track, run.chain.total_stride, plan.time_name)
    if opts.normalize_db is not None:
        return normalized(
            run.filter_into, output.open, plan.spec, opts, run.cancel, step, rng, plan.warnings
        )
    with output.open() as raw:
        writer = Leveled(raw, 10.0 ** (opts.gain_db / 20.0), step, rng)
        frames = run.filter_into(writer)
    return frames, writer, opts.gain_db


@dataclass
class _Run:
    """One file's reader and chain: what filtering it into a writer needs."""

    reader: SignalReader
    chain: StreamChain
    opts: FilterOptions
    cancel: StopFlag | None
    progress: Progress
    shown: str
    names: list[str]

    def filter_into(self, writer: Leveled) -> int:
        """Every block through the chain into ``writer``; returns the frames read."""
        frames = _pump(
            self.reader, writer, self.chain, self.opts, self.cancel, self.progress, self.shown
        )
        if frames == 0:
            raise DataFileError(f"{self.shown}: the signal is empty (0 samples)")
        if self.reader.info.frames is None:
            # Checked against the header when it gave the length; a pipe's is known now.
            chain_output_length(self.chain.layers, frames, self.names, self.shown)
        # A long right pad comes a piece at a time.
        for out in _computed(self.chain.finish_pieces()):
            _write_checked(writer, out, writer.frames, self.opts, self.chain.dtype, self.shown)
        return frames


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


def _computed(pieces: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The chain's output ``pieces``, each computed inside ``next()`` under an ``errstate``.

    Overflow is diagnosed by conv1d (:func:`_write_checked`), not by NumPy, whose
    RuntimeWarning would name a line of kernels.py and ignore -q.
    """
    while True:
        with np.errstate(over="ignore", invalid="ignore"):
            out = next(pieces, None)
        if out is None:
            return
        yield out


def _write_checked(
    writer: BlockWriter,
    out: np.ndarray,
    produced: int,
    opts: FilterOptions,
    dtype: np.dtype[Any],
    shown: str,
) -> None:
    """Write the chain's output ``out`` unless it holds NaN/Inf (then say where).

    The input was checked finite, so NaN/Inf in the output means the layers
    overflowed the compute dtype (weights of 1e200, float32 past 3.4e38).
    ``produced`` is the output frames before ``out`` (for the sample index).
    :func:`_pump` runs it in the writing thread: the check is a pass over the
    output that the filtering thread need not wait for.
    """
    if not opts.allow_nonfinite and out.shape[-1]:
        check_finite(
            out if out.ndim == 3 else out[None],
            produced,
            f"{shown}: the layers' output overflows {dtype.name}",
            anyway="write non-finite values anyway",
        )
    writer.write(out)


def _pump(
    reader: SignalReader,
    writer: BlockWriter,
    chain: StreamChain,
    opts: FilterOptions,
    cancel: StopFlag | None,
    progress: Progress,
    shown: str,
) -> int:
    """Read -> filter -> write every block; returns the frames read.

    Reading the next block and writing the previous one run in two helper threads
    while this one filters (libsndfile and NumPy release the GIL), so decoding,
    encoding and the FFTs overlap on two cores. At most one output waits to be
    written, and one block to be filtered (a long kernel's whole call of frames,
    when it is read in several blocks), so memory stays bounded. Without
    ``opts.overlap`` (one thread per file:
    ``--jobs``, ``make -j``, ``--threads 1``) the same steps run in this thread.
    """
    reads: Helper | Inline
    writes: Helper | Inline
    if opts.overlap:
        reads = Helper("conv1d-read")
        writes = Helper("conv1d-write")
    else:
        reads = writes = Inline()
    pending_write: Task[None] | None = None
    frame = chain.frame(reader.info.batch or 1)
    frames = block_frames(reader.info.channels, reader.info.batch, opts.block_size, frame)
    # A frame read in several blocks is read ahead whole, by the reading thread: the
    # filter needs all of it at once. (Read here, one block at a time is as fast.)
    depth = -(-(frame or 1) // frames) if opts.overlap else 1
    ahead = collections.deque(reads.submit(reader.read, frames) for _ in range(depth))
    offset = 0
    produced = 0  # output frames so far (the writes may lag behind)
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled
            block = ahead.popleft().result()
            n = block.shape[-1]
            if n == 0:
                break
            ahead.append(reads.submit(reader.read, frames))
            if not (opts.allow_nonfinite or reader.finite):  # integer PCM is always finite
                try:
                    check_finite(block if block.ndim == 3 else block[None], offset, shown)
                except DataFileError:
                    if pending_write is not None:
                        # An earlier output's overflow is told first (of the outputs
                        # computed: those a frame store still waits on never are).
                        pending_write.result()
                    raise
            # Pieces: a long left pad completes many outputs at the first block.
            for out in _computed(chain.push_pieces(block)):
                if not out.shape[-1]:
                    continue  # a block that completes no output leaves the write running
                if pending_write is not None:
                    pending_write.result()
                pending_write = writes.submit(
                    _write_checked, writer, out, produced, opts, chain.dtype, shown
                )
                produced += out.shape[-1]
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
    chain_checked: bool = False,
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
    chain_checked : bool
        As for :func:`filter_file`, for every file.

    Returns
    -------
    list of FileReport
        One per successful job, in input order.
    """
    opts = options or FilterOptions()
    book = Book(keep_going, on_done)
    one_file = functools.partial(filter_file, chain_checked=chain_checked)
    if executor is not None:
        _run_elsewhere(executor, jobs, layers, names, opts, book, on_progress)
    elif workers == 1 or len(jobs) == 1:
        _run_here(one_file, jobs, layers, names, opts, book, on_progress)
    else:
        _run_in_workers(one_file, jobs, layers, names, opts, book, on_progress, workers)
    return book.result(jobs)


def _run_elsewhere(
    executor: Executor,
    jobs: Sequence[Job],
    layers: Sequence[Conv1d],
    names: Sequence[str],
    opts: FilterOptions,
    book: Book,
    on_progress: Callable[[JobProgress], None] | None,
) -> None:
    """Every job through ``executor`` (e.g. Dask), its outcomes booked as they come."""
    outcomes = executor(jobs, layers, names, opts)
    try:
        for index, outcome in outcomes:
            if on_progress is not None:  # files finished elsewhere: their end is known
                bad = isinstance(outcome, Conv1dError)
                on_progress(JobProgress(index, 0, None, True, bad))
            if isinstance(outcome, Cancelled):
                book.settle(index, None)
            elif isinstance(outcome, Conv1dError):
                book.failed(index, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                book.settle(index, outcome)
    finally:
        # On an error, Ctrl-C or SIGTERM: the executor cancels what is left.
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()


def _run_here(
    one_file: Callable[..., FileReport],
    jobs: Sequence[Job],
    layers: Sequence[Conv1d],
    names: Sequence[str],
    opts: FilterOptions,
    book: Book,
    on_progress: Callable[[JobProgress], None] | None,
) -> None:
    """Every job in this process, one after another."""
    for index, job in enumerate(jobs):
        tracker = Tracker(index, on_progress)
        try:
            report = one_file(
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
            book.failed(index, e)
            continue
        tracker.finish()
        book.settle(index, report)


def _run_in_workers(
    one_file: Callable[..., FileReport],
    jobs: Sequence[Job],
    layers: Sequence[Conv1d],
    names: Sequence[str],
    opts: FilterOptions,
    book: Book,
    on_progress: Callable[[JobProgress], None] | None,
    workers: int,
) -> None:
    """Every job in a pool of single-threaded worker processes, progress polled."""
    # Here, not at the top: only runs with worker processes wait on futures (start-up).
    from concurrent.futures import FIRST_COMPLETED, wait

    counters = Counters(len(jobs)) if on_progress is not None else None
    # The chain goes to each worker once; a task is then a job and its index.
    chain = (one_file, list(layers), list(names), opts)
    pool, cancel = process_pool(min(workers, len(jobs)), counters, chain)
    try:
        futures = {pool.submit(work_shared, job, index): index for index, job in enumerate(jobs)}
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
            for future in sorted(finished, key=futures.__getitem__):  # input order
                index = futures[future]
                if counters is not None and on_progress is not None:
                    bad = isinstance(future.exception(), Conv1dError)
                    counters.finish(index, on_progress, failed=bad)
                _book_worker_outcome(future, jobs[index].source, index, book, cancel.is_set())
    finally:
        # On an error, Ctrl-C or SIGTERM: stop the others and let them clean up
        # their temporary files before we return.
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _book_worker_outcome(
    future: Future[FileReport], source: str, index: int, book: Book, cancelled: bool
) -> None:
    """Book what a worker process gave for file ``index``."""
    # Here, not at the top: a run without workers never loads multiprocessing (start-up).
    from concurrent.futures.process import BrokenProcessPool

    try:
        report = future.result()
    except Cancelled:
        if cancelled:  # we stopped it (another file failed)
            book.settle(index, None)
        else:  # a signal sent to that worker alone: not a success
            book.failed(
                index,
                DataFileError(
                    f"{source}: stopped by a signal to its worker process; nothing was written"
                ),
            )
        return
    except Conv1dError as e:
        book.failed(index, e)
        return
    except BrokenProcessPool as e:
        # Killed (OOM killer, kill -9): no file of that worker is sure.
        raise DataFileError(f"{source}: the worker process filtering it died ({e})") from e
    book.settle(index, report)
