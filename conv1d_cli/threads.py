"""How many compute threads a run uses: BLAS, FFT workers, and the apply pipeline.

Decided in one place, so that ``conv1d`` never runs more busy threads than the
cores it may use. The measurement behind it (issue 11): every process that
loads OpenBLAS with its defaults starts one thread per core, and those threads
busy-wait between calls. Two such processes on two cores (``make -j2``,
``xargs -P2``, or one file beside any busy program) spin against each other and
a 1-second job takes 10-50 seconds. OpenBLAS reads its thread count once, when
NumPy loads it; ``threadpoolctl.threadpool_limits(1)`` afterwards did not stop
the collapse, ``OPENBLAS_NUM_THREADS=1`` in the environment before the load did.

Rules (:func:`decide`), first match wins:

1. ``apply --threads N``: N FFT workers (capped at the usable cores), N
   threads for long frames (below) and the read/filter/write overlap when
   N > 1; BLAS stays at 1 thread (below). The command line beats the
   environment.
2. ``apply --jobs N`` with N > 1, or running under GNU make's ``-j`` (its
   jobserver in ``MAKEFLAGS``): every worker is single-threaded (BLAS 1, FFT 1,
   no overlap or frame threads); the parallelism is the files.
3. A thread count the user put in the environment (``OPENBLAS_NUM_THREADS``,
   ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ...) is never overwritten: BLAS
   is left to it, and FFT workers and frame threads follow the same number
   (capped at the usable cores; 1 under rule 2).
4. Otherwise (a lone process): BLAS 1 and FFT 1, plus the read/filter/write
   overlap threads and one frame thread per usable core. Measured in
   ``benchmarks/README.md``: the streaming path is FFT and banded products
   on blocks, where a second BLAS or FFT thread buys nothing that the overlap
   does not already use, and a spinning BLAS thread cost up to 14x.

Frame threads (:func:`split_map`) are the second core of a whole-signal
call with a long kernel (an impulse response through the library, or an
array chunk): its frames of 2**15 points or more go a few to a transform call
(enough rows to fill pocketfft's SIMD lanes), and those calls run side by
side. A stream that computes whole frames from a store (an IR's stride-1
layer on a file, the usual case) filters one such call at a time while its
reading and writing threads use the other core (:func:`serial`): two calls
side by side there cost 15-20% more CPU (memory bandwidth) for no shorter
run. Its other long-kernel paths (strided layers, stores past
``FRAME_STORE_SAMPLES``) still spread their calls, as before; not measured.
scipy.fft's own ``workers`` do not help: pocketfft gives the rows of one SIMD
loop to a single thread. Pool threads wait on a queue, never spin.

The command line never gives BLAS more than one thread (unless the user's
environment does): besides the spinning, OpenBLAS's GEMM rounds differently
with 2 threads than with 1 (measured: the banded product differs in the last
bit), and ``apply``'s output must not depend on ``--threads``. FFT workers
split independent frames, which leaves every result bit-identical.

"Usable cores" (:func:`available_cpus`) is the CPU affinity mask, lowered by a
cgroup CPU quota where one is set (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``).

The command line applies the policy with :func:`configure` before anything
imports NumPy. The library (``import conv1d_cli``) keeps BLAS's own defaults and
uses every usable core for its FFT workers unless the caller asks for a limit
with :func:`limit`.

This module is pure Python and imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "BLAS_ENV_VARS",
    "Policy",
    "affinity_cpus",
    "available_cpus",
    "cgroup_cpu_limit",
    "configure",
    "current",
    "decide",
    "fft_workers",
    "limit",
    "make_is_parallel",
    "parse_cfs",
    "parse_cpu_max",
    "serial",
    "split_map",
    "split_workers",
]

#: Environment variables that set a BLAS/OpenMP thread count when the library loads.
#: OpenBLAS reads OPENBLAS_NUM_THREADS, then GOTO_NUM_THREADS, then OMP_NUM_THREADS;
#: MKL, BLIS and Apple's Accelerate have their own.
BLAS_ENV_VARS = (
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


@dataclass(frozen=True)
class Policy:
    """Threads for one process (one file at a time, or one ``--jobs`` worker).

    Attributes
    ----------
    blas : int or None
        BLAS threads, set through the environment before NumPy loads; ``None``
        leaves BLAS alone (the user's environment decides).
    fft : int
        ``workers=`` for ``scipy.fft`` calls.
    overlap : bool
        Whether ``apply`` reads and writes in helper threads while it filters.
    split : int
        Frame threads: independent calls of a long kernel's frames (:func:`split_map`).
    reason : str
        Which rule decided it, for messages and tests.
    """

    blas: int | None
    fft: int
    overlap: bool
    reason: str
    split: int = 1


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value > 0 else None


def affinity_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` ("quota period", or "max period")."""
    parts = text.split()
    if len(parts) < 1 or parts[0] == "max":
        return None
    quota = _positive_int(parts[0])
    period = _positive_int(parts[1]) if len(parts) > 1 else 100_000
    if quota is None or period is None:
        return None
    return quota / period


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 = none)."""
    quota = _positive_int(quota_text)
    period = _positive_int(period_text)
    if quota is None or period is None:
        return None
    return quota / period


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _ancestors(root: Path, relative: str) -> Iterator[Path]:
    """``root/relative`` and each of its parents up to ``root`` (limits nest)."""
    here = root / relative.strip("/")
    while True:
        yield here
        if here == root or root not in here.parents:
            return
        here = here.parent


def cgroup_cpu_limit(
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
) -> float | None:
    """The tightest cgroup CPU quota on this process, in CPUs, or None if unlimited.

    Reads the process's cgroup paths from ``proc_cgroup`` and the quota of that
    cgroup and every ancestor under ``root``: v2 ``cpu.max`` on the unified
    hierarchy, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` under the ``cpu``
    controller's mount (``cpu``, or ``cpu,cpuacct``). In a container the paths
    are usually ``/``, and the limit is on the root that the container sees.
    """
    root = Path(root)
    text = _read(Path(proc_cgroup))
    if text is None:
        return None
    limits: list[float] = []
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, relative = fields
        if controllers == "":
            for base in (root, root / "unified"):
                for directory in _ancestors(base, relative):
                    found = _read(directory / "cpu.max")
                    if found is not None and (cpus := parse_cpu_max(found)) is not None:
                        limits.append(cpus)
        elif "cpu" in controllers.split(","):
            for mount in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                base = root / mount
                for directory in _ancestors(base, relative):
                    quota = _read(directory / "cpu.cfs_quota_us")
                    period = _read(directory / "cpu.cfs_period_us")
                    if quota is not None and period is not None:
                        cpus = parse_cfs(quota, period)
                        if cpus is not None:
                            limits.append(cpus)
    return min(limits) if limits else None


def available_cpus() -> int:
    """Cores this process may use: the affinity mask, lowered by a cgroup quota.

    A fractional quota is rounded down (1.5 CPUs -> 1 thread): a second busy
    thread would only be throttled.
    """
    cpus = affinity_cpus()
    quota = cgroup_cpu_limit()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return cpus


def make_is_parallel(makeflags: str | None) -> bool:
    """Whether ``MAKEFLAGS`` says we run as one of several GNU make jobs.

    GNU make 4.x passes ``-jN`` and ``--jobserver-auth=...`` (older: ``--jobserver-fds``)
    to recipes when run with ``-j``; ``-j1`` is serial. A first word without a
    dash holds single-letter flags (``ks``), where a bare ``j`` is ``-j``
    without a limit. Variable assignments after `` -- `` are not flags.
    """
    if not makeflags:
        return False
    words = makeflags.split(" -- ", 1)[0].split()
    for i, word in enumerate(words):
        if word.startswith(("--jobserver-auth", "--jobserver-fds")):
            return True
        if word.startswith("-j") or word.startswith("--jobs"):
            value = word[2:] if word.startswith("-j") else word.partition("=")[2]
            count = _positive_int(value) if value else None
            if not value or (count is not None and count > 1):
                return True
        elif i == 0 and not word.startswith("-") and "=" not in word and "j" in word:
            return True
    return False


def _user_threads(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(name, value) of the first thread variable the user set, else None."""
    for name in BLAS_ENV_VARS:
        value = environ.get(name)
        if value is not None and _OURS.get(name) != value:
            return name, value
    return None


def decide(
    threads: int | None = None,
    jobs: int = 1,
    environ: Mapping[str, str] | None = None,
    cpus: int | None = None,
) -> Policy:
    """The policy for one process of the command line (rules in the module docstring).

    Parameters
    ----------
    threads : int, optional
        ``--threads``: caps FFT workers and the pipeline together (BLAS stays 1).
    jobs : int
        ``--jobs``: files filtered in parallel by this process.
    environ : mapping, optional
        The environment to read (default ``os.environ``).
    cpus : int, optional
        Usable cores (default :func:`available_cpus`).
    """
    env = os.environ if environ is None else environ
    usable = available_cpus() if cpus is None else cpus
    if threads is not None:
        n = max(1, min(threads, usable))
        return Policy(1, n, n > 1, "--threads", n)
    user = _user_threads(env)
    parallel = "--jobs" if jobs > 1 else "make -j" if make_is_parallel(env.get("MAKEFLAGS")) else ""
    if parallel:
        if user is not None:
            return Policy(None, 1, False, f"{parallel}, BLAS from {user[0]}")
        return Policy(1, 1, False, parallel)
    if user is not None:
        n = max(1, min(_positive_int(user[1]) or 1, usable))
        return Policy(None, n, usable > 1, user[0], n)
    return Policy(1, 1, usable > 1, "default", usable)


#: Values this process put into the environment (so a second configure() can
#: tell them from the user's).
_OURS: dict[str, str] = {}
_CURRENT: Policy | None = None


def configure(policy: Policy, environ: MutableMapping[str, str] | None = None) -> bool:
    """Make ``policy`` this process's: FFT workers now, BLAS through the environment.

    The BLAS variables are set only while NumPy is not imported yet (OpenBLAS
    reads them once, when it loads); :func:`decide` leaves ``policy.blas`` None
    when the user's own value must stand. Child processes inherit them.
    Returns whether BLAS will follow the policy.
    """
    global _CURRENT
    _CURRENT = policy
    env = os.environ if environ is None else environ
    if policy.blas is None or "numpy" in sys.modules:
        return policy.blas is None
    for name in BLAS_ENV_VARS:
        if name == "GOTO_NUM_THREADS":  # only a fallback name of OpenBLAS's
            continue
        env[name] = _OURS[name] = str(policy.blas)
    return True


def current() -> Policy | None:
    """The policy set by :func:`configure` or :func:`limit`, if any."""
    return _CURRENT


def fft_workers() -> int:
    """``workers=`` for the next ``scipy.fft`` call, read at call time.

    The configured policy's, else every usable core (the library's default).
    """
    if _CURRENT is not None:
        return _CURRENT.fft
    return _default_fft_workers()


def split_workers() -> int:
    """Threads :func:`split_map` may use now: the policy's, else every usable core.

    1 in a thread inside :func:`serial`.
    """
    if getattr(_THIS_THREAD, "serial", False):
        return 1
    if _CURRENT is not None:
        return _CURRENT.split
    return _default_fft_workers()


@contextlib.contextmanager
def serial() -> Iterator[None]:
    """Within it, this thread's :func:`split_map` calls run their items here, in turn.

    For a caller whose other threads keep the other cores busy: a stream
    filters long frames while its read and write threads decode and encode
    (two transform calls at once there measured no faster, for 15-20 % more CPU).

    Examples
    --------
    >>> with serial():
    ...     split_workers()
    1
    """
    before = getattr(_THIS_THREAD, "serial", False)
    _THIS_THREAD.serial = True
    try:
        yield
    finally:
        _THIS_THREAD.serial = before


_THIS_THREAD = threading.local()


def split_map(function: Callable[[T], None], items: Sequence[T]) -> None:
    """Call ``function`` on every item, up to :func:`split_workers` at a time.

    For independent pieces of one computation whose results do not depend on
    how they are spread (each item writes its own slice of an output). The
    caller's thread takes the first item itself; the others go to a pool of
    idle threads kept for the process. An exception from any item is raised
    here, after every item started has ended. Safe to call from several
    threads at once; ``function`` itself must not call it (a pool thread
    waiting on the pool could wait forever).

    Examples
    --------
    >>> seen = []
    >>> split_map(seen.append, [1, 2, 3])
    >>> sorted(seen)
    [1, 2, 3]
    """
    workers = min(split_workers(), len(items))
    if workers <= 1:
        for item in items:
            function(item)
        return
    # Items go round-robin: the caller takes every workers-th, starting with the first.
    # Submitted under the lock: another caller may replace the pool with a larger one.
    with _POOL_LOCK:
        pool = _split_pool(workers - 1)
        futures = [pool.submit(_each, function, items[k::workers]) for k in range(1, workers)]
    try:
        _each(function, items[::workers])
    finally:
        errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error


def _each(function: Callable[[T], None], items: Sequence[T]) -> None:
    for item in items:
        function(item)


def _split_pool(size: int) -> Any:
    """The process's pool of at least ``size`` threads; the caller holds ``_POOL_LOCK``."""
    global _POOL
    # A forked child inherits the pool but not its threads: it makes its own.
    if _POOL is None or _POOL[0] < size or _POOL[2] != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        if _POOL is not None and _POOL[2] == os.getpid():
            _POOL[1].shutdown(wait=False)  # what was submitted to it still runs
        pool = ThreadPoolExecutor(size, thread_name_prefix="conv1d-split")
        _POOL = (size, pool, os.getpid())
    return _POOL[1]


_POOL: tuple[int, Any, int] | None = None
_POOL_LOCK = threading.Lock()


def _default_fft_workers() -> int:
    global _DEFAULT_FFT
    if _DEFAULT_FFT is None:
        _DEFAULT_FFT = available_cpus()
    return _DEFAULT_FFT


_DEFAULT_FFT: int | None = None


@contextlib.contextmanager
def limit(threads: int) -> Iterator[Policy]:
    """Run library calls with at most ``threads`` compute threads.

    FFT workers always follow. BLAS follows too if ``threadpoolctl`` is
    installed (it is optional: without it, only an environment variable such as
    ``OPENBLAS_NUM_THREADS`` set before NumPy is imported limits BLAS). The
    limit is process-wide, not per thread.

    Examples
    --------
    >>> from conv1d_cli import threads
    >>> with threads.limit(1):
    ...     threads.fft_workers()
    1
    """
    global _CURRENT
    n = max(1, int(threads))
    policy = Policy(n, n, n > 1, "limit()", n)
    previous = _CURRENT
    blas: Any = contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        blas = threadpool_limits(limits=n)
    with blas:
        _CURRENT = policy
        try:
            yield policy
        finally:
            _CURRENT = previous
