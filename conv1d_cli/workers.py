"""Worker processes for ``apply --jobs N``, and the progress counters they share.

:func:`process_pool` starts single-threaded workers that get the run's chain once
(:func:`work_shared`); :class:`Counters` carries each file's progress back from
them and :class:`Tracker` the progress of a file filtered in this process. Never
imports click; never prints.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from conv1d_cli import heap
from conv1d_cli import threads as thread_policy
from conv1d_cli.errors import Conv1dError
from conv1d_cli.jobs import (
    FileReport,
    FilterOptions,
    Job,
    JobProgress,
    Progress,
    StopFlag,
    no_progress,
)

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.context import BaseContext
    from multiprocessing.synchronize import Event as MpEvent

    from conv1d_cli.layer import Conv1d

__all__ = ["Counters", "Tracker", "process_pool", "work", "work_shared"]


class Tracker:
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


#: ``Counters.totals`` of a file no worker has started yet, and of an unknown length.
_NOT_STARTED: Final = -2
_UNKNOWN: Final = -1


class Counters:
    """Progress of worker processes in shared memory: frames read and total per job.

    Each slot is written by the one worker filtering that job (an aligned 64-bit
    store, no lock needed) and read by the parent; a queue would cost a pickle and a
    pipe write per block, these cost one addition.
    """

    def __init__(self, jobs: int) -> None:
        # Here, not at the top: multiprocessing costs start-up time that a run
        # without worker processes need not pay.
        from multiprocessing.sharedctypes import RawArray

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


class _WorkerStop:
    """A worker's stop flag: the parent's (shared by every worker) or a signal to this one.

    A SIGTERM/SIGHUP sent to one worker must stop that worker's file only, and the
    parent must see it as a failure of that file, not as its own decision to stop:
    the signal sets this worker's own flag, never the shared one.
    """

    def __init__(self, shared: StopFlag) -> None:
        self.shared = shared
        self.signalled = False

    def signal(self, *_: object) -> None:
        self.signalled = True

    def is_set(self) -> bool:
        return self.signalled or self.shared.is_set()


#: A worker process's stop flag, set by the parent or by a signal to the worker.
_WORKER_CANCEL: StopFlag | None = None
#: A worker process's progress counters (None: nobody watches).
_WORKER_COUNTERS: Counters | None = None
#: What every file of a worker's run goes through: (filter_file, layers, names, options).
Chain = tuple[Callable[..., "FileReport"], list["Conv1d"], list[str], FilterOptions]
#: A worker process's chain, given once when it starts (see :func:`process_pool`).
_WORKER_CHAIN: Chain | None = None


def process_pool(
    workers: int, counters: Counters | None = None, chain: Chain | None = None
) -> tuple[ProcessPoolExecutor, MpEvent]:
    """A pool of ``workers`` single-threaded worker processes and their shared stop event.

    Workers fork from this process on Linux when it runs no other thread (BLAS
    single-threaded, no pipeline threads yet), so nothing is copied mid-lock and
    no worker pays an interpreter start and the NumPy/SciPy imports again
    (~0.5 s measured). Otherwise they start from a forkserver (or spawn) with the
    filtering modules preloaded.

    ``chain`` (``(filter_file, layers, names, options)``) goes to each worker once,
    as it starts: a forked worker inherits it, a forkserver's gets it pickled once,
    and each task (:func:`work_shared`) then carries only its job and index, not
    the layers' weights again.
    """
    # Here, not at the top: only runs with worker processes pay for these imports.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

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
        initargs=(cancel, policy, counters, chain),
    )
    return pool, cancel


def _init_worker(
    cancel: MpEvent,
    policy: thread_policy.Policy,
    counters: Counters | None = None,
    chain: Chain | None = None,
) -> None:
    """Set up a worker: the parent's thread policy, and stop cleanly on a signal.

    Ctrl-C reaches the whole process group: the worker ignores it and lets the
    parent decide (it sets ``cancel``). SIGTERM/SIGHUP sent to a worker alone stop
    that worker's files (its own flag), so its temporary file is removed and the
    parent reports the file as stopped by a signal.
    """
    global _WORKER_CANCEL, _WORKER_COUNTERS, _WORKER_CHAIN
    stop = _WorkerStop(cancel)
    _WORKER_CANCEL = stop
    _WORKER_COUNTERS = counters
    _WORKER_CHAIN = chain
    thread_policy.configure(policy)
    heap.keep_buffers()  # a forked worker has it already; a spawned one not
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop.signal)


def work(
    filter_file: Callable[..., FileReport],
    job: Job,
    layers: list[Conv1d],
    names: list[str],
    opts: FilterOptions,
    index: int,
) -> FileReport:
    """Filter one file in a worker process (see :func:`process_pool`).

    ``filter_file`` is :func:`conv1d_cli.pipeline.filter_file` (or a partial of it),
    passed in (by reference, as a pickled function is) so that this module stays
    below the pipeline. An error goes back to the parent as a fresh copy raised outside the
    ``except``: no cause, context or traceback to pickle. Once ``dask`` is imported it
    installs tblib's exception pickling process-wide, which pickles those too, and
    under a deep stack that failed (RecursionError) and the pool took the worker for
    dead. :meth:`~conv1d_cli.errors.Conv1dError.__reduce__` carries the fields.
    """
    counters = _WORKER_COUNTERS
    on_start: Callable[[int | None], None] | None = None
    progress: Progress = no_progress
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
        carried = e.replace()
    raise carried


def work_shared(job: Job, index: int) -> FileReport:
    """:func:`work` on file ``index`` with the chain the worker got when it started.

    See :func:`process_pool`'s ``chain``.
    """
    assert _WORKER_CHAIN is not None, "process_pool(chain=...) gives the workers their chain"
    filter_file, layers, names, opts = _WORKER_CHAIN
    return work(filter_file, job, layers, names, opts, index)
