"""The read/write helper threads of the pipeline's overlap (conv1d_cli.overlap)."""

from __future__ import annotations

import threading

import pytest

from conv1d_cli.overlap import Helper, Inline


def test_helper_runs_tasks_in_order_in_its_own_thread():
    helper = Helper("conv1d-test")
    try:
        tasks = [helper.submit(lambda i=i: (i, threading.current_thread().name)) for i in range(5)]
        assert [task.result() for task in tasks] == [(i, "conv1d-test") for i in range(5)]
    finally:
        helper.shutdown(wait=True)
    assert not any(t.name == "conv1d-test" for t in threading.enumerate())


@pytest.mark.parametrize("runner", [lambda: Helper("conv1d-test"), Inline])
def test_a_tasks_exception_is_raised_by_result(runner):
    executor = runner()
    try:
        task = executor.submit(int, "not a number")
        with pytest.raises(ValueError, match="not a number"):
            task.result()
        assert executor.submit(int, "7").result() == 7  # the helper goes on
    finally:
        executor.shutdown(wait=True)


def test_shutdown_with_cancel_drops_queued_tasks_and_lets_the_running_one_finish():
    helper = Helper("conv1d-test")
    started, release = threading.Event(), threading.Event()
    ran = []

    def slow():
        started.set()
        release.wait(10)
        ran.append("slow")

    first = helper.submit(slow)
    helper.submit(ran.append, "queued")
    assert started.wait(10)
    helper.shutdown(wait=False, cancel_futures=True)
    release.set()
    first.result()
    helper.shutdown(wait=True)
    assert ran == ["slow"]
