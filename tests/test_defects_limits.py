"""Regression tests: closed standard streams, huge values, and compressed layer bombs.

Each test here failed on the code before the fix: a traceback (AttributeError on a
closed stdout/stderr, NumPy MemoryError or "Maximum allowed dimension exceeded",
RecursionError, the 4300-digit ValueError), Click writing its error to stdout, or
a small compressed layer file inflating to gigabytes before any check ran.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

from conv1d_cli import Conv1d, conv1d
from conv1d_cli.cli import cli
from conv1d_cli.core import pad1d
from conv1d_cli.errors import ConfigError, DataFileError
from conv1d_cli.io.layerfile import load_layer
from conv1d_cli.shapes import (
    MAX_ARRAY_BYTES,
    MAX_PARAMETERS,
    MAX_SIZE,
    LayerSpec,
    check_parameter_count,
    output_length,
    receptive_field,
)

HUGE_DIGITS = "9" * 5000


# ---- helpers ---------------------------------------------------------------------------


def run_with_closed_fd(fd: int, *args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m conv1d_cli ARGS`` with fd 1 or 2 closed, as ``>&-`` / ``2>&-`` do.

    The other stream is captured. The child closes the fd after subprocess has set
    up its standard streams, so the interpreter starts with it closed.
    """
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    pipe = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    pipe["stdout" if fd == 1 else "stderr"] = subprocess.DEVNULL
    return subprocess.run(
        [sys.executable, "-m", "conv1d_cli", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(fd),
        check=False,
        timeout=120,
        **pipe,  # type: ignore[call-overload]
    )


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_error_line(result: Result, code: int, *needles: str) -> str:
    """Exit ``code``, no traceback, and exactly one ``Error:`` line holding ``needles``."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """``layer.npz`` (1 -> 1, K=3), ``x.wav`` (100 samples, 8 kHz) and ``x.npy`` (1, 100)."""
    Conv1d(1, 1, 3, seed=0).save(tmp_path / "layer.npz")
    sf.write(tmp_path / "x.wav", np.linspace(-0.5, 0.5, 100), 8000)
    np.save(tmp_path / "x.npy", np.linspace(-1, 1, 100)[None])
    return tmp_path


def layer_with_config(path: Path, config_text: str) -> Path:
    np.savez(path, weight=np.ones((1, 1, 3)), conv1d_config=np.array(config_text))
    return path


# ---- item 6: closed stdout / stderr ----------------------------------------------------

STDOUT_COMMANDS = [
    pytest.param(["apply", "-w", "layer.npz", "x.wav", "-o", "-"], id="apply -o -"),
    pytest.param(
        ["apply", "-w", "layer.npz", "x.wav", "-o", "/dev/stdout"], id="apply -o /dev/stdout"
    ),
    pytest.param(["apply", "-w", "layer.npz", "missing.wav", "-o", "-"], id="apply before reading"),
    pytest.param(["inspect", "x.wav"], id="inspect signal"),
    pytest.param(["inspect", "layer.npz", "--json"], id="inspect layer"),
    pytest.param(["inspect", "missing.wav"], id="inspect before reading"),
    pytest.param(["shape", "-L", "100", "-k", "3"], id="shape numbers"),
    pytest.param(["shape", "-w", "layer.npz", "x.wav"], id="shape layer file"),
]


@pytest.mark.parametrize("args", STDOUT_COMMANDS)
def test_closed_stdout_is_one_error_line_before_any_work(files: Path, args: list[str]) -> None:
    done = run_with_closed_fd(1, *args, cwd=files)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("Error: "), stderr
    assert "stdout is closed; nothing to write to" in stderr


@pytest.mark.parametrize(
    ("args", "made"),
    [
        (["apply", "-w", "layer.npz", "x.wav", "-o", "out.wav"], "out.wav"),
        (
            ["init", "new.npz", *"--in-channels 1 --out-channels 2 --kernel-size 3".split()],
            "new.npz",
        ),
    ],
    ids=["apply to a file", "init"],
)
def test_closed_stdout_does_not_stop_commands_that_do_not_use_it(
    files: Path, args: list[str], made: str
) -> None:
    done = run_with_closed_fd(1, *args, cwd=files)
    assert done.returncode == 0, done.stderr.decode()
    assert (files / made).stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "made"),
    [
        (["apply", "-w", "layer.npz", "x.wav", "-o", "out.wav"], "out.wav"),
        (["apply", "-w", "layer.npz", "x.wav", "-o", "out.wav", "-q"], "out.wav"),
        (["init", "new.npz", "--design", "moving-average", "--taps", "5"], "new.npz"),
    ],
    ids=["apply", "apply -q", "init"],
)
def test_closed_stderr_runs_normally(files: Path, args: list[str], made: str) -> None:
    done = run_with_closed_fd(2, *args, cwd=files)
    assert done.returncode == 0
    assert done.stdout == b""
    assert (files / made).stat().st_size > 0


def test_closed_stderr_apply_to_stdout_writes_the_same_data(files: Path) -> None:
    args = ["apply", "-w", "layer.npz", "x.npy", "-o", "-", "--output-format", "npy"]
    closed = run_with_closed_fd(2, *args, cwd=files)
    assert closed.returncode == 0
    expected = Conv1d.load(files / "layer.npz")(np.load(files / "x.npy").astype(np.float32))
    np.testing.assert_array_equal(np.load(io.BytesIO(closed.stdout)), expected)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["apply", "-w", "layer.npz", "missing.wav", "-o", "out.wav"], 1),
        (["apply", "-w", "layer.npz", "x.wav"], 2),
        (["shape", "-L", "1", "-k", "3"], 1),
        (["shape", "-L", "1"], 2),
        (["shape", "--no-such-option"], 2),
        (["inspect", "missing.wav"], 1),
        (["init", "layer.npz", "--design", "moving-average", "--taps", "5"], 1),
    ],
    ids=[
        "apply bad input",
        "apply usage",
        "shape too short",
        "shape usage",
        "parse error",
        "inspect missing",
        "init exists",
    ],
)
def test_closed_stderr_failure_keeps_exit_code_and_stdout_clean(
    files: Path, args: list[str], code: int
) -> None:
    # Click falls back to stdout when sys.stderr is None: the message must not land
    # in the data stream.
    done = run_with_closed_fd(2, *args, cwd=files)
    assert done.returncode == code
    assert done.stdout == b""


@pytest.mark.parametrize(
    "args",
    [["shape", "-L", "100", "-k", "3"], ["inspect", "x.wav"]],
    ids=["shape", "inspect"],
)
def test_closed_stderr_reports_still_go_to_stdout(files: Path, args: list[str]) -> None:
    done = run_with_closed_fd(2, *args, cwd=files)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] in (b"98", b"x.wav: signal")


# ---- item 9: huge values in layer files ------------------------------------------------

HUGE_CONFIGS = [
    pytest.param(json.dumps({"stride": 10**30}), ["stride", "at most 2147483647"], id="stride"),
    pytest.param(json.dumps({"padding": 10**12}), ["padding", "at most 2147483647"], id="padding"),
    pytest.param(
        json.dumps({"padding": [0, 10**12]}), ["padding[1]", "at most 2147483647"], id="right"
    ),
    pytest.param(
        json.dumps({"dilation": 2**31 - 1}), ["receptive field", "at most 2147483647"], id="field"
    ),
    pytest.param("[" * 100_000 + "]" * 100_000, ["nested too deeply"], id="nested"),
    pytest.param(
        '{"description": ' + "[" * 100_000 + "]" * 100_000 + "}",
        ["nested too deeply"],
        id="nested-field",
    ),
    pytest.param('{"stride": ' + HUGE_DIGITS + "}", ["more than", "digits"], id="5000 digits"),
    pytest.param(
        json.dumps({"stride": 10**4000 * -1}), ["stride must be positive", "4001 digits"], id="neg"
    ),
]


@pytest.mark.parametrize(("config", "needles"), HUGE_CONFIGS)
@pytest.mark.parametrize(
    "command",
    [
        ["apply", "-w", "{layer}", "{x}", "-o", "{out}"],
        ["shape", "-w", "{layer}", "-L", "100"],
        ["inspect", "{layer}"],
    ],
    ids=["apply", "shape", "inspect"],
)
def test_huge_layer_config_values_are_one_error_line(
    files: Path, config: str, needles: list[str], command: list[str]
) -> None:
    layer = layer_with_config(files / "huge.npz", config)
    args = [a.format(layer=layer, x=files / "x.npy", out=files / "out.npy") for a in command]
    line = assert_one_error_line(invoke(*args), 1, str(layer), *needles)
    assert len(line) < 500  # a digest, not the 5000 digits
    assert not (files / "out.npy").exists()


def test_huge_layer_config_values_library_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="nested too deeply"):
        load_layer(layer_with_config(tmp_path / "a.npz", "[" * 100_000 + "]" * 100_000))
    with pytest.raises(DataFileError, match="more than 4300 digits"):
        load_layer(layer_with_config(tmp_path / "b.npz", '{"stride": ' + HUGE_DIGITS + "}"))


# ---- item 9: huge values on the command line and in the library ------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (
            ["apply", "-w", "{layer}", "{x}", "-o", "{out}", "--padding", "1000000000000"],
            "--padding",
        ),
        (["apply", "-w", "{layer}", "{x}", "-o", "{out}", "--dilation", str(10**23)], "--dilation"),
        (["apply", "-w", "{layer}", "{x}", "-o", "{out}", "--stride", HUGE_DIGITS], "--stride"),
        (["inspect", "{layer}", "--padding", "1000000000000"], "--padding"),
        (["inspect", "{layer}", "--dilation", str(10**23)], "--dilation"),
        (["shape", "-L", "100", "-k", "3", "--padding", "1000000000000"], "--padding"),
        (["shape", "-L", "100", "-k", "3", "--padding", "0," + HUGE_DIGITS], "--padding"),
        (["shape", "-L", "100", "-k", "3", "--dilation", str(10**23)], "--dilation"),
        (["shape", "-L", "100", "-k", HUGE_DIGITS], "--kernel-size"),
        (["shape", "-L", HUGE_DIGITS, "-k", "3"], "--length"),
        (["shape", "-L", "100", "-k", "3", "--in-channels", str(10**12)], "--in-channels"),
        (
            ["init", "{out}", *"--in-channels 1 --out-channels 1 --kernel-size 3".split()]
            + ["--stride", str(10**30)],
            "--stride",
        ),
    ],
)
def test_huge_option_values_are_usage_errors_naming_the_option(
    files: Path, args: list[str], option: str
) -> None:
    out = files / "out.npy"
    filled = [a.format(layer=files / "layer.npz", x=files / "x.npy", out=out) for a in args]
    result = invoke(*filled)
    line = assert_one_error_line(result, 2, option)
    assert len(line) < 6000
    assert not out.exists()


def test_init_huge_random_layer_refused_before_allocating(tmp_path: Path) -> None:
    out = tmp_path / "big.npz"
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = invoke(
            "init", out, "--in-channels", 100000, "--out-channels", 100000, "--kernel-size", 100
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    line = assert_one_error_line(result, 2, "1000000000000 parameters", "3,725.3 GiB", "2**28")
    assert "1.0 GiB in float32" in line
    assert time.perf_counter() - start < 10
    assert peak < 50 * 2**20
    assert not out.exists()


def test_apply_receptive_field_within_limits_but_too_big_to_buffer(files: Path) -> None:
    # A dilation of 2**29 is a valid hyperparameter (field 2**30 + 1 <= 2**31 - 1), but
    # each stage holds about two receptive fields of history per row: 16 GiB. (A huge
    # padding is no longer refused: its zeros are fed a piece at a time.)
    out = files / "out.npy"
    result = invoke(
        "apply", "-w", files / "layer.npz", files / "x.npy", "-o", out, "--dilation", 2**29
    )
    assert_one_error_line(result, 1, "x.npy", "layer.npz", "GiB of buffers", "at most 2.0 GiB")
    assert not out.exists()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv1d(1, 1, 3, stride=10**30),
        lambda: Conv1d(1, 1, 3, padding=10**12),
        lambda: Conv1d(1, 1, 3, padding=(0, 10**12)),
        lambda: Conv1d(1, 1, 3, dilation=10**23),
        lambda: Conv1d(1, 1, 3, dilation=2**30),  # field 2**31 + 1
        lambda: Conv1d(10**12, 1, 3),
        lambda: Conv1d(100000, 100000, 100),
        lambda: Conv1d(1, 1, 3, stride=10**5000),
        lambda: Conv1d.from_weights(np.ones((1, 1, 3)), padding=10**12),
        lambda: Conv1d.from_weights(np.ones((1, 1, 3)), groups=10**30),
        lambda: Conv1d.from_weights(np.broadcast_to(np.float32(0), (1, 1, MAX_PARAMETERS + 1))),
        lambda: LayerSpec(3, stride=10**30),
        lambda: LayerSpec(3, padding=10**12),
        lambda: LayerSpec(3, in_channels=10**12, out_channels=1),
        lambda: LayerSpec(3, dilation=2**30),
        lambda: output_length(100, 3, padding=10**12),
        lambda: receptive_field(2**31 - 1, 2),
        lambda: conv1d(np.zeros((1, 5)), np.ones((1, 1, 3)), padding=10**12),
        lambda: conv1d(np.zeros((1, 5)), np.ones((1, 1, 3)), stride=10**30),
        lambda: conv1d(np.zeros((1, 5)), np.ones((1, 1, 3)), dilation=2**30, padding="full"),
        lambda: pad1d(np.zeros((1, 5)), 10**12, 0),
        lambda: check_parameter_count((2**14, 2**14, 2)),
    ],
)
def test_huge_hyperparameters_are_config_errors_in_the_library(make: Any) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert len(str(info.value)) < 500


def test_limits_are_the_documented_values() -> None:
    assert MAX_SIZE == 2**31 - 1
    assert MAX_PARAMETERS == 2**28
    assert MAX_ARRAY_BYTES == 2 * 2**30
    # The largest allowed values still work.
    assert LayerSpec(3, stride=MAX_SIZE, padding=MAX_SIZE).output_length(1) == 2
    assert check_parameter_count((1, 1, MAX_PARAMETERS), 8) == MAX_PARAMETERS


# ---- item 10: compressed layer files whose members would inflate to gigabytes ----------


def _npz_with_member(path: Path, name: str, header: dict[str, Any], body: bytes) -> Path:
    """A deflated .npz whose member ``name`` has ``header`` and ``body`` (may be short)."""
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, npy.getvalue() + body)
    return path


def _load_measured(path: Path) -> tuple[BaseException, float, int]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DataFileError) as info:
            load_layer(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return info.value, time.perf_counter() - start, peak


@pytest.mark.parametrize(
    ("shape", "descr"),
    [((1, 1, 2**29), "<f8"), ((2**16, 2**16, 1), "<f4"), ((1, 1, 3 * 10**8), "<f8")],
    ids=["4 GiB float64", "2**32 float32 values", "2.4 GB (the reported file)"],
)
def test_compressed_weight_over_the_limit_is_refused_before_decompressing(
    tmp_path: Path, shape: tuple[int, ...], descr: str
) -> None:
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    # 8 MiB of zeros deflate to ~8 KB: the archive is tiny, its claim is not.
    path = _npz_with_member(tmp_path / "bomb.npz", "weight.npy", header, bytes(8 << 20))
    assert path.stat().st_size < 100_000
    error, seconds, peak = _load_measured(path)
    assert "entry 'weight' declares shape" in str(error)
    assert "a layer file entry may hold at most 268435456 (2**28) values and 2.0 GiB" in str(error)
    assert str(path) in str(error)
    assert seconds < 2
    assert peak < 4 << 20  # not even the 8 MiB body was inflated


def test_compressed_bomb_via_cli_is_one_error_line(tmp_path: Path) -> None:
    header = {"descr": "<f8", "fortran_order": False, "shape": (1, 1, 2**29)}
    path = _npz_with_member(tmp_path / "bomb.npz", "weight.npy", header, bytes(1 << 20))
    for args in (["inspect", path], ["shape", "-w", path, "-L", 100]):
        assert_one_error_line(invoke(*args), 1, str(path), "declares shape (1, 1, 536870912)")


def test_compressed_real_savez_bomb_in_a_prefixed_state_dict(tmp_path: Path) -> None:
    # Choosing among several prefixes reads each weight: that read is checked too.
    header = {"descr": "<f4", "fortran_order": False, "shape": (2**15, 2**15, 1)}
    path = _npz_with_member(tmp_path / "sd.npz", "a.weight.npy", header, bytes(1 << 20))
    with zipfile.ZipFile(path, "a") as zf:
        buf = io.BytesIO()
        np.save(buf, np.ones(4, np.float32))
        zf.writestr("b.weight.npy", buf.getvalue())
    error, seconds, peak = _load_measured(path)
    assert "entry 'a.weight'" in str(error)
    assert peak < 4 << 20


def test_member_smaller_than_its_header_claims_is_truncated_not_allocated(tmp_path: Path) -> None:
    header = {"descr": "<f8", "fortran_order": False, "shape": (1, 1, 2**27)}  # 1 GiB: allowed
    path = _npz_with_member(tmp_path / "short.npz", "weight.npy", header, bytes(1 << 20))
    error, seconds, peak = _load_measured(path)
    assert "entry 'weight' is truncated" in str(error)
    assert peak < 4 << 20


def test_compressed_huge_json_config_is_refused_before_parsing(tmp_path: Path) -> None:
    # A 0-d unicode array of 64 MiB of JSON; the header says so up front.
    header = {"descr": f"<U{16 << 20}", "fortran_order": False, "shape": ()}
    path = tmp_path / "config.npz"
    np.savez(path, weight=np.ones((1, 1, 3)))
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, header)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conv1d_config.npy", npy.getvalue() + bytes(1 << 20))
    error, seconds, peak = _load_measured(path)
    assert "'conv1d_config' declares shape () <U16777216" in str(error)
    assert "at most 1048576 bytes (1 MiB)" in str(error)
    assert peak < 4 << 20
