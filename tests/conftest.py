"""Shared test set-up: the naive oracle on sys.path, Hypothesis profile, parity stats."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# --import-mode=importlib does not put tests/ on sys.path; the oracle lives here.
sys.path.insert(0, str(Path(__file__).parent))

# Tests never write into the repo: no example database, and Hypothesis' other caches
# (e.g. .hypothesis/constants) go to the temp directory instead of the working directory.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "conv1d-tests-hypothesis")
settings.register_profile("conv1d", max_examples=40, deadline=None, database=None)
settings.load_profile("conv1d")

# Filled by tests/test_torch_parity.py, printed in the terminal summary (visible without -s).
PARITY_STATS: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="session")
def parity_stats() -> dict[str, dict[str, float]]:
    """Worst relative error and count of compared cases, keyed by dtype name."""
    return PARITY_STATS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not PARITY_STATS:
        return
    terminalreporter.section("PyTorch parity")
    for key in sorted(PARITY_STATS):
        stats = PARITY_STATS[key]
        terminalreporter.write_line(
            f"{key}: {int(stats['compared'])} value comparisons, "
            f"{int(stats['errors'])} matching errors, "
            f"worst relative error {stats['worst']:.3g}"
        )


@contextlib.contextmanager
def drained_fifo(fifo: Path) -> Iterator[list[bytes]]:
    """Make ``fifo`` and read it whole in a thread while the block writes into it.

    Yields the list that receives what was read (one ``bytes``). On exit a reader
    still waiting for a writer is unblocked, and a reader that never finished fails
    the test clearly instead of hanging it.
    """
    os.mkfifo(fifo)
    got: list[bytes] = []

    def drain() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield got
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
    assert not reader.is_alive() and got, "the FIFO reader timed out"


def run_with_stdout_full(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m conv1d_cli ARGS`` with stdout on /dev/full (every write fails)."""
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "conv1d_cli", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )


@pytest.fixture
def correlator_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The padded length of every block a Correlator is called on, from now on."""
    from conv1d_cli.core import Correlator

    calls: list[int] = []
    real = Correlator.__call__

    def counted(self: Correlator, xp: object, *args: object) -> object:
        calls.append(xp.shape[-1])  # type: ignore[attr-defined]
        return real(self, xp, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Correlator, "__call__", counted)
    return calls
