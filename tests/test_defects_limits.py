"""Regression tests: closed standard streams, huge values, and compressed layer bombs.

Each test here failed on the code before the fix: a traceback (AttributeError on a
closed stdout/stderr, NumPy MemoryError or "Maximum allowed dimension exceeded",
RecursionError, the 4300-digit ValueError), Click writing its error to stdout, or
a small compressed layer file inflating to gigabytes before any check ran.
"""

from __future__ import annotations

import json
import time
import tracemalloc
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
from conv1d_cli.layerfile import load_layer
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


def test_apply_padding_within_limits_but_too_big_to_buffer(files: Path) -> None:
    # 2e9 is a valid hyperparameter (<= 2**31 - 1), but its zeros would be 15 GiB.
    out = files / "out.npy"
    result = invoke(
        "apply", "-w", files / "layer.npz", files / "x.npy", "-o", out, "--padding", 2_000_000_000
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
