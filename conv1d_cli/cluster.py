"""Files on a Dask cluster: one task per input file, reported like ``--jobs``.

The engine under ``conv1d apply --scheduler``. It never imports click and never
prints. Dask (the optional ``[dask]`` extra) is imported only by
:func:`connect`, so importing this module is cheap.

- :func:`connect` -- a ``distributed.Client`` for ``tcp://host:port``,
  ``local:N`` (a ``LocalCluster`` of N single-threaded worker processes), or
  ``config`` (Dask's own ``scheduler-address`` / ``DASK_SCHEDULER_ADDRESS``).
- :class:`DaskFiles` -- the ``executor`` of :func:`conv1d_cli.pipeline.run_jobs`:
  submits every file, yields each outcome as it finishes; ``run_jobs`` keeps
  the input order, ``--keep-going`` and the exit-code rules.

Each task runs :func:`conv1d_cli.pipeline.filter_file` on a worker: the same
streaming pipeline and atomic write as a local run, single-threaded under the
client's thread policy (never re-decided on the worker, where Dask's nanny has
exported ``OMP_NUM_THREADS=1`` and friends: those are not a user's choice).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conv1d_cli import threads as thread_policy
from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError

__all__ = ["DaskFiles", "connect", "leftover_temps"]

INSTALL_HINT = "pip install 'conv1d-cli[dask]'"
#: How long a client waits for a scheduler before giving up.
CONNECT_TIMEOUT = "10s"
#: A running task asks the scheduler whether the run was cancelled at most this often.
CANCEL_POLL_S = 0.5


def _require_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            f"{{parameter}} needs Dask, which is not installed: {INSTALL_HINT}",
            parameter="scheduler",
        ) from None
    return distributed


def connect(address: str) -> tuple[Any, Any | None]:
    """A client for ``address``; returns ``(client, cluster)`` (cluster for ``local:N``).

    Raises
    ------
    ConfigError
        Dask is not installed (the message says how to install it), or ``address``
        is malformed (``local:0``), or ``config`` with no address configured.
    DataFileError
        No scheduler answers at ``address``.
    """
    distributed = _require_distributed()
    if address.startswith("local:"):
        text = address[len("local:") :]
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(
                f"{{parameter}} {address}: expected local:N with N >= 1 workers",
                parameter="scheduler",
            )
        # Loopback only, no dashboard: a local cluster must open nothing to the network.
        cluster = distributed.LocalCluster(
            n_workers=int(text),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # The scheduler serves /health etc. even so: on loopback, any free port
            # (its default 8787 warns when a second cluster runs).
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )
        return distributed.Client(cluster), cluster
    if address == "config":
        import dask

        configured = dask.config.get("scheduler-address", None) or dask.config.get(
            "scheduler_address", None
        )
        if not configured:
            raise ConfigError(
                "{parameter} config: Dask's configuration names no scheduler "
                "(set DASK_SCHEDULER_ADDRESS or scheduler-address)",
                parameter="scheduler",
            )
        address = str(configured)
    try:
        return distributed.Client(address, timeout=CONNECT_TIMEOUT), None
    except (OSError, TimeoutError) as e:
        raise DataFileError(
            f"{{parameter}} {address}: no Dask scheduler answers: {e}", parameter="scheduler"
        ) from None
    except ValueError as e:
        raise ConfigError(f"{{parameter}} {address}: {e}", parameter="scheduler") from None


def _temp_pattern(target: Path) -> str:
    """The glob of :func:`conv1d_cli.io.atomic._create_temp`'s names for ``target``."""
    return f".{target.stem}.{'[0-9a-f]' * 8}.tmp{target.suffix}"


def leftover_temps(target: str, since: float) -> list[Path]:
    """Temporary files of ``target`` created since ``since`` (a killed writer's).

    Temporary names are predictable from the target (``.STEM.XXXXXXXX.tmpSUFFIX``
    next to it), so what a killed worker left can be found; only files modified
    since the run began are taken, so another program's work is left alone.
    """
    real = Path(os.path.realpath(target))
    found = []
    for path in real.parent.glob(_temp_pattern(real)):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime >= since:
                found.append(path)
    return found


class _Throttled:
    """A stop flag that asks the scheduler at most every ``CANCEL_POLL_S`` seconds."""

    def __init__(self, event: Any) -> None:
        self._event = event
        self._next = 0.0
        self._set = False

    def is_set(self) -> bool:
        now = time.monotonic()
        if not self._set and now >= self._next:
            self._next = now + CANCEL_POLL_S
            with contextlib.suppress(Exception):  # scheduler gone: the task is moot anyway
                self._set = bool(self._event.is_set())
        return self._set


def _identity(value: Any) -> Any:
    return value


def _visible(paths: list[str], outdirs: list[str]) -> list[str]:
    """On a worker: which inputs it cannot read and which output folders it cannot write."""
    missing = [p for p in paths if not os.access(p, os.R_OK)]
    missing += [d for d in outdirs if not (os.path.isdir(d) and os.access(d, os.W_OK | os.X_OK))]
    return missing


def _worker_version() -> str:
    """On a worker: the conv1d it would filter with (runs only if it can import it)."""
    # Imported on the worker: whether it can is what this asks.
    from conv1d_cli import __version__

    return __version__


def _task(
    job: Any,
    chain: tuple[Any, Any, Any, thread_policy.Policy],
    event_name: str,
    since: float,
    index: int = 0,
) -> Any:
    """On a worker: filter one file; the outcome is returned, never raised.

    ``index`` is the file's position among the inputs (its dither noise comes from
    it, so a cluster writes the same bytes as ``--jobs``).

    A retried task first removes what its killed predecessor left (atomic writes
    make the retry itself safe). Errors come back as values so that the client
    tells a failed file from a failed worker.
    """
    from distributed import Event

    # The engine loads where a task runs, not with this module (imported by every apply).
    from conv1d_cli import pipeline

    layers, names, opts, policy = chain
    thread_policy.configure(policy)
    cancel = _Throttled(Event(event_name))
    if cancel.is_set():
        # The run stopped while this task was on its way to the worker: write nothing, so
        # that only tasks already running when the flag was set touch files (the client
        # waits for those before it removes what they left).
        return pipeline.Cancelled()
    for path in leftover_temps(job.target, since):
        with contextlib.suppress(OSError):
            path.unlink()
    try:
        return pipeline.filter_file(
            job, layers=layers, names=names, options=opts, cancel=cancel, index=index
        )
    except (Conv1dError, pipeline.Cancelled) as e:
        return e


@dataclass
class DaskFiles:
    """The ``executor`` for :func:`conv1d_cli.pipeline.run_jobs` on a Dask cluster.

    Parameters
    ----------
    client : distributed.Client
    policy : threads.Policy, optional
        Threads on each worker; default single-threaded (BLAS 1, FFT 1, no
        overlap), as ``--jobs`` workers.
    """

    client: Any
    policy: thread_policy.Policy | None = None

    def worker_policy(self) -> thread_policy.Policy:
        if self.policy is not None:
            return self.policy
        # Rule 2 ("the parallelism is the files"), decided on the client from the
        # user's environment.
        return replace(thread_policy.decide(jobs=2), reason="--scheduler")

    def check_paths(self, jobs: Sequence[Any]) -> None:
        """Refuse to start unless every worker can read every input and write every folder."""
        # An input missing here too is that file's own error, reported as a local run would.
        from conv1d_cli import __version__

        sources = sorted({job.source for job in jobs if os.access(job.source, os.R_OK)})
        outdirs = sorted({os.path.dirname(os.path.realpath(job.target)) for job in jobs})
        try:
            versions = self.client.run(_worker_version)
        except Exception as e:  # ModuleNotFoundError on the workers, mostly
            raise DataFileError(
                f"{{parameter}}: the Dask workers cannot run conv1d ({type(e).__name__}: {e}); "
                f"install conv1d-cli {__version__} where the workers run",
                parameter="scheduler",
            ) from None
        if not versions:
            raise DataFileError(
                "{parameter}: the Dask cluster has no workers", parameter="scheduler"
            )
        other = {w: v for w, v in versions.items() if v != __version__}
        if other:
            worker, version = sorted(other.items())[0]
            raise DataFileError(
                f"{{parameter}}: worker {worker} runs conv1d {version}, this is {__version__}; "
                f"install the same version where the workers run",
                parameter="scheduler",
            )
        answers = self.client.run(_visible, sources, outdirs)
        blind = {worker: missing for worker, missing in answers.items() if missing}
        if blind:
            worker, missing = sorted(blind.items())[0]
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise DataFileError(
                f"{{parameter}}: {len(blind)} of {len(answers)} Dask workers cannot see "
                f"{', '.join(missing[:3])}{more} (worker {worker}); the inputs and the "
                f"output folder must be on storage shared with the workers, under the same paths",
                parameter="scheduler",
            )

    def __call__(
        self, jobs: Sequence[Any], layers: Sequence[Any], names: Sequence[str], opts: Any
    ) -> Iterator[tuple[int, Any]]:
        """Submit one task per job; yield ``(index, report or error)`` as each finishes.

        Closing the iterator early (an error without ``keep_going``, Ctrl-C) cancels
        the tasks not started, tells the running ones to stop (they remove their
        temporary files), waits until no worker runs one (at most 30 s), and removes
        what killed workers left behind: nothing of the run writes after it returns.
        """
        from distributed import Event, as_completed, wait
        from distributed.client import FutureCancelledError

        # Lazily, as the rest of the engine here: this module loads with every apply.
        from conv1d_cli.pipeline import Job

        client = self.client
        since = time.time() - 1.0  # file systems round mtimes
        local = [Job(os.path.abspath(job.source), os.path.abspath(job.target)) for job in jobs]
        if not local:
            return
        self.check_paths(local)
        event_name = f"conv1d-cancel-{uuid.uuid4().hex}"
        event = Event(event_name, client=client)
        # Loaded and validated once on the client, sent to the cluster once. As a
        # task, not scattered data: if the worker holding it dies, the scheduler
        # makes it again from the task (scattered data would be lost for good).
        chain = client.submit(
            _identity,
            (list(layers), list(names), opts, self.worker_policy()),
            key=f"conv1d-chain-{uuid.uuid4().hex}",
            pure=False,
        )
        # On every worker before the files go out: otherwise they all queue on
        # the one worker holding it (data locality), and die with it.
        with contextlib.suppress(Exception):
            wait([chain], timeout=60)
            client.replicate([chain])
        futures = {
            client.submit(
                _task,
                job,
                chain,
                event_name,
                since,
                i,
                key=f"conv1d-file-{uuid.uuid4().hex}-{i}",
                pure=False,
            ): i
            for i, job in enumerate(local)
        }
        finished = False
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    outcome = future.result()
                except FutureCancelledError as e:
                    outcome = DataFileError(f"{jobs[index].source}: cancelled on the cluster ({e})")
                except Exception as e:  # KilledWorker after the retries, lost scheduler, ...
                    outcome = DataFileError(
                        f"{jobs[index].source}: the Dask worker filtering it failed "
                        f"({type(e).__name__}: {e})"
                    )
                yield index, _relabel(outcome, local[index], jobs[index])
            finished = True
        finally:
            if not finished:
                with contextlib.suppress(Exception):
                    event.set()
                with contextlib.suppress(Exception):
                    client.cancel(list(futures))
                self._wait_stopped(list(futures))
            for job in local:
                for path in leftover_temps(job.target, since):
                    with contextlib.suppress(OSError):
                        path.unlink()

    def _wait_stopped(self, futures: list[Any], timeout: float = 30.0) -> None:
        """Give running tasks a bounded time to see the cancel flag and clean up.

        The workers are asked, not the scheduler: a cancelled task that had started
        runs on in its worker thread (Dask cannot stop a thread) while the scheduler
        has already forgotten it, and it may still create or remove its temporary file.
        """
        keys = [f.key for f in futures]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                answers = self.client.run(_still_running, keys, on_error="return")
            except Exception:  # scheduler gone: no worker can be asked, nor sent more work
                return
            # A worker that cannot answer (killed, restarting) runs nothing of ours.
            if not any(isinstance(busy, list) and busy for busy in answers.values()):
                return
            time.sleep(0.05)


#: A worker's task states in which it runs, or may still start, the task.
_BUSY = frozenset(
    ("waiting", "ready", "constrained", "executing", "long-running", "cancelled", "resumed")
)


def _still_running(keys: list[str], dask_worker: Any = None) -> list[str]:
    """On a worker: those of ``keys`` it runs or may still start (cancelled ones included)."""
    tasks = dask_worker.state.tasks
    return [key for key in keys if key in tasks and tasks[key].state in _BUSY]


def _relabel(outcome: Any, sent: Any, given: Any) -> Any:
    """Messages name files as the user typed them, not the absolute paths sent."""

    def text(message: str) -> str:
        for absolute, shown in ((sent.target, given.target), (sent.source, given.source)):
            if absolute != shown:
                message = message.replace(absolute, shown)
        return message

    if isinstance(outcome, BaseException):
        if not isinstance(outcome, Conv1dError):
            return outcome
        path = None if outcome.path is None else text(outcome.path)
        message = text(outcome.message)
        if message == outcome.message and path == outcome.path:
            return outcome
        # The fields travel with the text, so that the front end still names the
        # parameter its own way (a flag on the command line).
        try:
            relabelled = type(outcome)(
                message,
                path=path,
                parameter=outcome.parameter,
                hint=outcome.hint,
                output=outcome.output,
            )
        except TypeError:  # pragma: no cover - an error class with its own signature
            return outcome
        relabelled.__cause__ = outcome.__cause__
        return relabelled
    return replace(outcome, job=given, warnings=[text(w) for w in outcome.warnings])


# ---------------------------------------------------------------------------------------
# One NPY larger than a worker's memory: a Dask array through conv1d_cli.dask


#: Samples (batch x channels x frames) per chunk of the array path, in float32: 16 MiB
#: (float64 chunks hold half as many). Below glibc's largest mmap threshold (32 MiB),
#: the chunk-sized buffers a task allocates and frees are reused from the heap; at
#: 32 MiB each one was a fresh mapping whose pages faulted in again, and a chunk took
#: 1.6x as long per byte (measured: 91-97 ms per 32 MiB against 54-58 ms).
CHUNK_SAMPLES = 1 << 22


class NpyFile:
    """An NPY file as an array that pickles as its path: workers read and write it themselves.

    Slices along time (batch and channels whole, as :func:`filter_npy_array` chunks
    them) are read with ``os.pread`` and written with ``os.pwrite``, not through a
    memory map: mapped pages count as the worker's memory, and Dask pauses a worker
    whose memory looks full although the kernel could drop them at any time.
    Writing is time-major (a Fortran-ordered file, as the streaming writer makes),
    so each chunk is one contiguous write.
    """

    def __init__(self, path: str) -> None:
        import numpy as np

        fmt = np.lib.format
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            header = (
                fmt.read_array_header_1_0(fh)
                if version == (1, 0)
                else fmt.read_array_header_2_0(fh)
            )
            self.offset = fh.tell()
        shape, self.fortran, self.dtype = header
        self.path = path
        self.shape: tuple[int, ...] = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)

    @classmethod
    def create(cls, path: str, shape: tuple[int, ...], dtype: Any) -> NpyFile:
        """A time-major NPY of ``shape``, header as the streaming writer's, data not written."""
        import numpy as np

        # NPY headers only when an array output is made (keeps this module's import cheap).
        from conv1d_cli.io.npyfile import _npy_header_bytes

        header = _npy_header_bytes(shape, np.dtype(dtype), True)
        with open(path, "wb") as fh:
            fh.write(header)
            fh.truncate(len(header) + int(np.prod(shape)) * np.dtype(dtype).itemsize)
        return cls(path)

    def _time(self, key: Any) -> tuple[tuple[slice, ...], int, int]:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        start, stop, step = key[-1].indices(self.shape[-1])
        if step != 1:  # pragma: no cover - dask slices chunks with step 1
            raise ValueError("NpyFile reads contiguous time ranges only")
        return key[:-1], start, stop

    def __getitem__(self, key: Any) -> Any:
        import numpy as np

        lead_key, start, stop = self._time(key)
        lead = self.shape[:-1]
        rows = int(np.prod(lead))
        size = self.dtype.itemsize
        frames = stop - start
        with open(self.path, "rb") as fh:
            fd = fh.fileno()
            if self.fortran:
                # Time-major: the frames [start, stop) of every row are one range.
                block = np.empty((frames, *lead[::-1]), self.dtype)
                _read_into(fd, block, self.offset + start * rows * size, self.path)
                block = block.T
            else:
                block = np.empty((rows, frames), self.dtype)
                for row in range(rows):
                    at = self.offset + (row * self.shape[-1] + start) * size
                    _read_into(fd, block[row], at, self.path)
                block = block.reshape(*lead, frames)
        return np.ascontiguousarray(block[lead_key])

    def __setitem__(self, key: Any, value: Any) -> None:
        import numpy as np

        lead_key, start, stop = self._time(key)
        if not self.fortran or any(
            k != slice(None) and k.indices(n) != (0, n, 1)
            for k, n in zip(lead_key, self.shape, strict=False)
        ):
            raise ValueError("NpyFile writes whole frames of a time-major file only")
        rows = int(np.prod(self.shape[:-1]))
        # .copy(order="C") of the transpose: 6x faster than np.ascontiguousarray here
        # (measured on (8, 2**20) float32: 8 ms against 47 ms).
        data = np.asarray(value, self.dtype).T.copy(order="C")
        at = self.offset + start * rows * self.dtype.itemsize
        with open(self.path, "r+b") as fh:
            _write_from(fh.fileno(), data, at)


def _read_into(fd: int, array: Any, offset: int, path: str) -> None:
    """Fill the contiguous ``array`` from ``fd`` at ``offset``: one copy, no bytes object."""
    view = memoryview(array).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise DataFileError(f"{path}: the NPY file ends before the data its header promises")
        done += got


def _write_from(fd: int, array: Any, offset: int) -> None:
    """Write the contiguous ``array`` to ``fd`` at ``offset`` from its own buffer."""
    view = memoryview(array).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def _keep_freed_memory() -> bool:
    """On a worker: let glibc keep freed chunk buffers in its heap for the next chunk.

    Every task allocates and frees chunk-sized buffers. With glibc's defaults the heap
    top is trimmed (returned to the kernel) whenever 32 MiB or more are free, and the
    next chunk's pages fault in again: a worker filtering 1 GiB took 1.26 million page
    faults and 3.5-4.8 s of system time, against 300 faults and 1.1-1.8 s with these
    thresholds (wall time about halved, 2 workers). Memory stays bounded: the same
    sizes are reused chunk after chunk, and at most 128 MiB is kept free. A no-op
    where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    try:
        return bool(mallopt(m_mmap_threshold, 32 << 20) and mallopt(m_trim_threshold, 128 << 20))
    except Exception:  # pragma: no cover - a libc without mallopt's usual signature
        return False


def _checked_block(
    block: Any, block_info: Any = None, *, source: str, anyway: str | None = None
) -> Any:
    """``stream.check_finite`` on one chunk, its sample offset from Dask's block_info."""
    # On the worker, where the chunk is filtered.
    from conv1d_cli.stream import check_finite

    offset = block_info[0]["array-location"][-1][0] if block_info else 0
    batched = block if block.ndim == 3 else block[None]
    if anyway is None:
        check_finite(batched, offset, source)
    else:
        check_finite(batched, offset, source, anyway=anyway)
    return block


def filter_npy_array(
    client: Any,
    job: Any,
    layers: Sequence[Any],
    names: Sequence[str],
    opts: Any,
    *,
    chunk_samples: int | None = None,
    policy: thread_policy.Policy | None = None,
) -> Any:
    """Filter one NPY file into an NPY file as a Dask array: any size, bounded per worker.

    The workers read the input chunk by chunk (time chunks of about
    ``chunk_samples`` samples, batch and channels whole; default 16 MiB in the
    compute dtype, :data:`CHUNK_SAMPLES`), every layer is
    :func:`conv1d_cli.dask.conv1d`, and the workers write their chunks straight
    into a temporary NPY next to the target (shared storage), renamed into place
    only on success. The file is laid out as a streamed run's (time-major, same
    header); the values equal to rounding.

    Workers compute under ``policy`` (default single-threaded, as ``--jobs``): two
    FFT threads per worker on a core each already busy with a worker took 2.4x
    longer per chunk (measured: 117 ms against 48 ms).

    Returns
    -------
    FileReport
    """
    import dask.array as da
    import numpy as np

    # The numeric engine and Dask load only when the array path runs (start-up stays cheap).
    from conv1d_cli import dask as dconv
    from conv1d_cli.io.atomic import atomic_path
    from conv1d_cli.pipeline import FileReport
    from conv1d_cli.shapes import rate_warnings
    from conv1d_cli.stream import chain_output_length, check_chain, compute_dtype

    shown = job.source
    try:
        info = _probe(job.source)
        dtype = compute_dtype(layers, opts.dtype)
        check_chain(layers, names, info.channels, source=shown)
        chain_output_length(layers, info.frames, names, shown)
        # An NPY has no rate of its own: the rule a local run applies (the first
        # designed layer's rate stands in, the later layers are checked against it).
        _, warnings = rate_warnings(
            [layer.sample_rate for layer in layers],
            [layer.stride for layer in layers],
            names,
            None,
            shown,
            [layer.sample_rate_binding for layer in layers],
        )
        source = NpyFile(os.path.abspath(job.source))
        if source.ndim > 3:
            raise DataFileError(f"{shown}: NPY array has shape {source.shape}")
        lead = source.shape[:-1]
        per_frame = max(1, int(np.prod(lead)))
        if chunk_samples is None:
            chunk_samples = CHUNK_SAMPLES * 4 // dtype.itemsize
        frames = max(1, chunk_samples // per_frame)
        x = da.from_array(source, chunks=(*lead, frames), asarray=False)
        if x.ndim == 1:
            x = x[None]
        x = x.astype(dtype)
        if not opts.allow_nonfinite:
            x = x.map_blocks(_checked_block, source=shown, dtype=dtype)
        for layer in layers:
            x = dconv.conv1d(
                x,
                layer.weight.astype(dtype),
                None if layer.bias is None else layer.bias.astype(dtype),
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.groups,
                layer.padding_mode,
                method=opts.method,
            )
        if not opts.allow_nonfinite:
            x = x.map_blocks(
                _checked_block,
                source=f"{shown}: the layers' output overflows {dtype.name}",
                anyway="write non-finite values anyway",
                dtype=dtype,
            )
        client.run(thread_policy.configure, policy or DaskFiles(client).worker_policy())
        client.run(_keep_freed_memory)
        # Whole frames per chunk: each is then one contiguous write of a time-major file.
        x = x.rechunk({axis: -1 for axis in range(x.ndim - 1)})
        with atomic_path(job.target) as tmp:
            target: Any = NpyFile.create(str(tmp), x.shape, dtype)
            stored = client.compute(da.store(x, target, lock=False, compute=False))
            try:
                stored.result()
            except BaseException as e:
                # Ctrl-C or a failed chunk: stop the rest before the temp file goes.
                with contextlib.suppress(Exception):
                    client.cancel([stored])
                if isinstance(e, Exception) and not isinstance(e, Conv1dError):
                    # A lost worker, a full disk on a worker, ...: a failed run, not a bug.
                    raise DataFileError(
                        f"{shown}: the Dask computation failed ({type(e).__name__}: {e})"
                    ) from e
                raise
        return FileReport(job, info.frames, 0, warnings)
    except Conv1dError as e:
        raise job.about(e) from e


def _probe(path: str) -> Any:
    # The signal readers (NumPy, soundfile) load only when a file is probed.
    from conv1d_cli.io import inputs

    return inputs.probe(path, format="npy")


def wants_array_path(job: Any, opts: Any) -> bool:
    """An NPY file into an NPY file: filtered as one Dask array across the workers."""
    # Format rules load only for a --scheduler run that asks.
    from conv1d_cli.io import formats, pipes

    if pipes.is_stream(job.source) or pipes.is_stream(job.target):
        return False
    try:
        source = formats.detect_format(job.source, opts.input_format)
        target = formats.detect_format(job.target, opts.output_format)
    except Conv1dError:
        return False
    # The array path filters and writes; the level and dither options live in the
    # file pipeline, so a run that asks for them goes file by file instead.
    plain = not (opts.gain_db or opts.normalize_db is not None or opts.dither is not None)
    return plain and source == target == "npy" and os.path.isfile(job.source)
