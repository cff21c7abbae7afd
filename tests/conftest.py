"""Shared test set-up: the naive oracle on sys.path, Hypothesis profile, parity stats."""

from __future__ import annotations

import sys
import tempfile
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
