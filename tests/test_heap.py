"""conv1d_cli.heap: block-sized buffers stay in the process (glibc)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conv1d_cli import heap

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt's thresholds are glibc's",
)

# Page faults taken by 20 rounds of allocating, filling and freeing three 6 MiB
# arrays, after a first round.
_FAULTS = """
import resource, sys
import numpy as np
from conv1d_cli import heap
if sys.argv[1] == "keep":
    assert heap.keep_buffers()
def round_():
    arrays = [np.ones(3 * 2**19, np.float32) for _ in range(3)]
    del arrays
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    round_()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    # glibc's defaults, whatever this environment sets (MALLOC_TRIM_THRESHOLD_, ...)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True, env=env
    )
    return int(done.stdout)


@glibc
def test_heap_keeps_freed_buffers_instead_of_faulting_them_in_again():
    kept, default = _faults("keep"), _faults("default")
    # By default glibc hands the memory back and faults it in again every round
    # (measured ~20 000 faults over the 20 rounds); kept, none.
    assert kept * 10 < default


@glibc
def test_heap_apply_keeps_buffers(tmp_path, monkeypatch):
    import numpy as np

    from conv1d_cli.cli import cli

    calls = []
    monkeypatch.setattr(heap, "keep_buffers", lambda: calls.append(1) or True)
    np.savetxt(tmp_path / "x.csv", np.arange(20.0)[:, None], delimiter=",")
    np.savez(tmp_path / "w.npz", weight=np.ones((1, 1, 3)))
    result = CliRunner().invoke(
        cli,
        [
            "apply",
            str(tmp_path / "x.csv"),
            "-w",
            str(tmp_path / "w.npz"),
            "-o",
            str(tmp_path / "y.csv"),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert calls == [1]
