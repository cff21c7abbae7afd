"""Layers from one exported model: overrides in a chain, init from a state_dict key,
``Conv1d.from_torch``, and ``torch.save`` files given as layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conv1d_cli.cli import cli
from conv1d_cli.core import conv1d

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = ["--stride", "2", "--padding", "4"]


def invoke(*args: object):
    result = CliRunner().invoke(cli, [*map(str, args)])
    # Whatever happens, never a traceback: only SystemExit (exit codes) may escape.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert result.stdout == ""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def model(tmp_path):
    """``numpy.savez(**state_dict)`` of encoder Conv1d(2, 4, 9) + decoder Conv1d(4, 2, 3)."""
    rng = np.random.default_rng(7)
    state = {
        "encoder.conv.weight": rng.standard_normal((4, 2, 9)).astype(np.float32),
        "encoder.conv.bias": rng.standard_normal(4).astype(np.float32),
        "decoder.conv.weight": rng.standard_normal((2, 4, 3)).astype(np.float32),
        "decoder.conv.bias": rng.standard_normal(2).astype(np.float32),
    }
    path = tmp_path / "model.npz"
    np.savez(path, **state)
    return path, state


@pytest.fixture
def signal_npy(tmp_path):
    x = np.random.default_rng(3).standard_normal((2, 1000)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path, x


def expected_chain(state, x):
    """What torch gives: encoder stride 2 padding 4, decoder padding 1."""
    h = conv1d(
        x.astype(np.float64),
        state["encoder.conv.weight"].astype(np.float64),
        state["encoder.conv.bias"].astype(np.float64),
        stride=2,
        padding=4,
    )
    return conv1d(
        h,
        state["decoder.conv.weight"].astype(np.float64),
        state["decoder.conv.bias"].astype(np.float64),
        padding=1,
    )


# -- 1. overrides with several -w are refused ---------------------------------------------


def test_apply_refuses_overrides_for_a_chain_and_shows_the_fix(tmp_path, model, signal_npy):
    path, _ = model
    x_path, _ = signal_npy
    out = tmp_path / "y.npy"
    enc, dec = f"{path}:encoder.conv", f"{path}:decoder.conv"
    result = invoke("apply", "-w", enc, "-w", dec, *OVERRIDES, x_path, "-o", out)
    line = error_line(result, 2)
    assert "--stride, --padding can override only a single -w layer file" in line
    assert f"conv1d init layer1.npz --weight {enc} --stride 2 --padding 4" in line
    assert f"-w layer1.npz -w {dec}" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "option",
    [
        ["--stride", "2"],
        ["--padding", "same"],
        ["--padding", "1,2"],
        ["--dilation", "2"],
        ["--groups", "1"],
        ["--padding-mode", "reflect"],
    ],
)
def test_apply_refuses_each_override_with_two_layers(tmp_path, model, signal_npy, option):
    path, _ = model
    x_path, _ = signal_npy
    result = invoke(
        "apply", "-w", path, "--key", "encoder.conv", "-w", f"{path}:decoder.conv", *option,
        x_path, "-o", tmp_path / "y.npy",
    )  # fmt: skip
    line = error_line(result, 2)
    assert f"{option[0]} can override only a single -w layer file" in line
    # --key is shown as the layer it picks, so the suggested command runs as typed.
    assert f"--weight {path}:encoder.conv {option[0]} {option[1]}" in line


def test_apply_and_shape_share_the_refusal(model):
    path, _ = model
    layers = ["-w", f"{path}:encoder.conv", "-w", f"{path}:decoder.conv"]
    applied = error_line(invoke("apply", *layers, *OVERRIDES, "x.npy", "-o", "y.npy"), 2)
    shaped = error_line(invoke("shape", *layers, *OVERRIDES, "-L", 1000), 2)
    assert applied == shaped
