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

An NPY file into an NPY file goes as one Dask array instead (:mod:`conv1d_cli.npyarray`).

Each task runs :func:`conv1d_cli.pipeline.filter_file` on a worker: the same
streaming pipeline and atomic write as a local run, single-threaded under the
client's thread policy (never re-decided on the worker, where Dask's nanny has
exported ``OMP_NUM_THREADS=1`` and friends: those are not a user's choice).
"""

from __future__ import annotations

import contextlib
import os
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
