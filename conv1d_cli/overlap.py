"""The helper threads that read and write while :mod:`conv1d_cli.pipeline` filters.

:func:`conv1d_cli.pipeline.filter_file` overlaps three steps on two cores: a
helper thread decodes the next block and another encodes the previous one while
the calling thread filters (libsndfile and NumPy release the GIL). Each side has
at most one task waiting, so all it needs is a thread that runs tasks in order
and hands back each result or exception: :class:`Helper`. :class:`Inline` runs
the same tasks in the calling thread (one thread per file). Neither needs
``concurrent.futures``, whose import (it loads ``logging``) every run would pay
at start-up. Never imports click or NumPy; never prints.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Helper", "Inline", "Task"]

T = TypeVar("T")


class Task(Generic[T]):
    """One call submitted to a :class:`Helper` (or run by :class:`Inline`): its outcome.

    Examples
    --------
    >>> task = Inline().submit(divmod, 7, 2)
    >>> task.result()
    (3, 1)
    """

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self.cancelled = False

    def run(self) -> None:
        """Call the function (unless cancelled first) and keep its value or exception."""
        try:
            if not self.cancelled:
                self._value = self._fn(*self._args)
        except BaseException as e:  # delivered by result(), as concurrent.futures does
            self._error = e
        finally:
            self._done.set()

    def result(self) -> T:
        """Wait for the call; its value, or its exception raised here."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Helper:
    """One thread that runs submitted tasks in order, like ``ThreadPoolExecutor(1)``.

    Examples
    --------
    >>> helper = Helper("conv1d-example")
    >>> task = helper.submit(sum, [1, 2, 3])
    >>> task.result()
    6
    >>> helper.shutdown()
    """

    def __init__(self, name: str) -> None:
        self._tasks: queue.SimpleQueue[Task[Any] | None] = queue.SimpleQueue()
        self._pending: list[Task[Any]] = []
        self._lock = threading.Lock()
        # A daemon thread: shutdown() always joins it; should a caller miss that, it
        # must not keep the interpreter alive.
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            task.run()
            with self._lock:
                self._pending.remove(task)

    def submit(self, fn: Callable[..., T], *args: Any) -> Task[T]:
        """Queue ``fn(*args)`` for the helper thread."""
        task = Task(fn, args)
        with self._lock:
            self._pending.append(task)
        self._tasks.put(task)
        return task

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop the thread after its current task; ``cancel_futures`` drops queued ones."""
        if cancel_futures:
            with self._lock:
                for task in self._pending:
                    task.cancelled = True  # a task already running finishes
        self._tasks.put(None)
        if wait:
            self._thread.join()


class Inline:
    """Runs each task when it is submitted, in the calling thread (no helper thread).

    Examples
    --------
    >>> Inline().submit(max, 2, 5).result()
    5
    """

    def submit(self, fn: Callable[..., T], *args: Any) -> Task[T]:
        """Run ``fn(*args)`` now; its value or exception comes from ``result()``."""
        task = Task(fn, args)
        task.run()
        return task

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Nothing runs in the background."""
