"""``conv1d shape``: numbers mode, layer-file chains, input files, --target-length, --json."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import run_with_stdout_full

from conv1d_cli.cli import cli
from conv1d_cli.cli.cmd_shape import JSON_SCHEMA
from conv1d_cli.core import conv1d
from conv1d_cli.errors import ConfigError, ShapeError


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: Any) -> Result:
    result = runner.invoke(cli, ["shape", *map(str, args)])
    # Whatever happens, never a traceback: only SystemExit (exit codes) may escape.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def make_layer(
    path: Path,
    out_channels: int,
    in_channels: int,
    kernel_size: int,
    *,
    groups: int = 1,
    **config: Any,
) -> Path:
    """A layer file in the documented format: weight, bias and a JSON ``conv1d_config``."""
    weight = np.zeros((out_channels, in_channels // groups, kernel_size), np.float32)
    full = {"format": "conv1d-layer", "version": 1, "groups": groups, **config}
    np.savez(
        path,
        weight=weight,
        bias=np.zeros(out_channels, np.float32),
        conv1d_config=np.array(json.dumps(full)),
    )
    return path


# --- numbers mode -----------------------------------------------------------------------


def test_shape_numbers_prints_output_length_first(runner: CliRunner) -> None:
    result = run(runner, "--length", 16000, "--kernel-size", 9, "--stride", 2)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "7996\n"
        "  padding (left, right): (0, 0)\n"
        "  receptive field: 9 samples\n"
        "  minimum input length: 9\n"
    )
    assert result.stderr == ""


def test_shape_numbers_full_shapes_with_channels(runner: CliRunner) -> None:
    result = run(
        runner,
        "-L",
        10,
        "-k",
        4,
        "-p",
        "same",
        "--dilation",
        3,
        "--in-channels",
        2,
        "--out-channels",
        8,
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "(1, 2, 10) -> (1, 8, 10)",
        "  padding (left, right): (4, 5)",
    ]


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--groups", 4], "(1, 4, 20) -> (1, 4, 18)"),  # depthwise by default
        (["--out-channels", 6], "(1, 1, 20) -> (1, 6, 18)"),
        (["--in-channels", 3, "--batch", 5], "(5, 3, 20) -> (5, 3, 18)"),
        (["--batch", 0], "(0, 1, 20) -> (0, 1, 18)"),  # an empty batch is valid in PyTorch
    ],
)
def test_shape_numbers_channel_defaults(
    runner: CliRunner, args: list[Any], first_line: str
) -> None:
    result = run(runner, "-L", 20, "-k", 3, *args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == first_line


def test_shape_numbers_sample_rate_after_stride(runner: CliRunner) -> None:
    result = run(runner, "-L", 48000, "-k", 9, "-s", 3, "-p", 4, "--sample-rate", 48000)
    assert result.exit_code == 0, result.stderr
    assert "  sample rate: 48000 Hz -> 16000 Hz\n" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-L", 0, "-k", 3], "'--length': expected a positive integer, got 0"),
        (["-L", -5, "-k", 3], "'--length': expected a positive integer, got -5"),
        (["-L", 10, "-k", 0], "'--kernel-size': expected a positive integer, got 0"),
        (["-L", 10, "-k", 3, "-s", 0], "'--stride': expected a positive integer, got 0"),
        (
            ["-L", 10, "-k", 3, "--dilation", -1],
            "'--dilation': expected a positive integer, got -1",
        ),
        (["-L", 10.5, "-k", 3], "'--length': expected an integer, got '10.5'"),
        (["-L", 10, "-k", "3x"], "'--kernel-size': expected an integer, got '3x'"),
        (["-L", 10, "-k", 3, "-s", 2, "-p", "same"], "padding='same' is not supported for strided"),
        (["-L", 10, "-k", 3, "-p", "3,"], "padding must be an integer, LEFT,RIGHT or one of"),
        (["-L", 10, "-k", 3, "-p", "1,2,3"], "got '1,2,3'"),
        (["-L", 10, "-k", 3, "-p", "a,b"], "got 'a,b'"),
        (["-L", 10, "-k", 3, "-p", "-1,0"], "padding must not be negative"),
        (["-L", 10, "-k", 3, "-p", "Same"], "got 'Same'"),
        (["-L", 10, "-k", 3, "-p", "1.5"], "got '1.5'"),
        (["-L", 10, "-k", 3, "--padding-mode", "zero"], "'zero' is not one of"),
        (["-L", 10, "-k", 3, "--in-channels", 6, "-g", 4], "in_channels must be divisible by"),
        (["-L", 10, "-k", 3, "--out-channels", 6, "-g", 4], "out_channels must be divisible"),
        (["-L", 10, "-k", 3, "-t", 0], "'--target-length': expected a positive integer"),
        (["-L", 10, "-k", 3, "--sample-rate", 0], "--sample-rate must be a positive number"),
        (["-L", 10, "-k", 3, "--sample-rate", "inf"], "'--sample-rate': expected a frequency"),
        (["-L", 10, "-k", 3, "--sample-rate", "nan"], "'--sample-rate': expected a frequency"),
        (["-L", 10, "-k", 3, "--sample-rate", 1e12], "--sample-rate must be at most 2147483647"),
        (["-k", 3], "give the input length with --length, or an INPUT_FILE"),
        (["-L", 10], "give --kernel-size (numbers mode) or a layer file with -w"),
        (["-L", 10, "-k", 3, "--input-format", "wav"], "--input-format needs an INPUT_FILE"),
    ],
)
def test_shape_bad_invocation_exits_2(runner: CliRunner, args: list[Any], message: str) -> None:
    result = run(runner, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Error: " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-L", 3, "-k", 5], "input too short: padded length 3 (length 3 + padding 0+0) is less"),
        (["-L", 5, "-k", 11, "-p", 5, "--padding-mode", "reflect"], "reflect padding needs"),
        (["-L", 4, "-k", 13, "-p", 6, "--padding-mode", "circular"], "wrap around more than once"),
    ],
)
def test_shape_numbers_input_that_does_not_fit_exits_1(
    runner: CliRunner, args: list[Any], message: str
) -> None:
    result = run(runner, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and message in result.stderr


def _cli_args(cfg: dict[str, Any]) -> list[Any]:
    padding = cfg["padding"]
    if isinstance(padding, tuple):
        padding = f"{padding[0]},{padding[1]}"
    return [
        "-L", cfg["length"], "-k", cfg["kernel_size"], "-s", cfg["stride"], "-p", padding,
        "--dilation", cfg["dilation"], "--padding-mode", cfg["padding_mode"], "-g", cfg["groups"],
        "--in-channels", cfg["in_channels"], "--out-channels", cfg["out_channels"],
        "-N", cfg["batch"], "--json",
    ]  # fmt: skip


def test_shape_cli_agrees_with_core_on_random_configs(runner: CliRunner) -> None:
    rnd = random.Random(61)
    codes = {0: 0, 1: 0, 2: 0}
    for _ in range(250):
        groups = rnd.choice([1, 1, 2, 3])
        cfg = {
            "length": rnd.randint(1, 12),
            "kernel_size": rnd.randint(1, 6),
            "stride": rnd.randint(1, 3),
            "padding": rnd.choice([0, 1, 3, "same", "valid", "causal", "full", (2, 0), (0, 3)]),
            "dilation": rnd.randint(1, 3),
            "padding_mode": rnd.choice(["zeros", "reflect", "replicate", "circular"]),
            "groups": groups,
            "in_channels": rnd.randint(1, 2) * groups + rnd.choice([0, 0, 0, 1]),
            "out_channels": rnd.randint(1, 2) * groups,
            "batch": rnd.randint(1, 2),
        }
        result = run(runner, *_cli_args(cfg))
        codes[result.exit_code] += 1
        try:
            if cfg["in_channels"] % groups:
                raise ConfigError("in_channels must be divisible by groups")
            x = np.zeros((cfg["batch"], cfg["in_channels"], cfg["length"]))
            weight = np.zeros((cfg["out_channels"], cfg["in_channels"] // groups, 1))
            weight = np.zeros(weight.shape[:2] + (cfg["kernel_size"],))
            expected = conv1d(
                x, weight, None, cfg["stride"], cfg["padding"], cfg["dilation"], groups,
                cfg["padding_mode"],
            ).shape  # fmt: skip
        except ConfigError:
            assert result.exit_code == 2, (cfg, result.stderr)
            continue
        except ShapeError:
            assert result.exit_code == 1, (cfg, result.stderr)
            continue
        assert result.exit_code == 0, (cfg, result.stderr)
        doc = json.loads(result.stdout)
        assert tuple(doc["output"]["shape"]) == expected, cfg
    assert min(codes.values()) > 20, codes


# --- --target-length ---------------------------------------------------------------------


def test_shape_target_length_text(runner: CliRunner) -> None:
    result = run(runner, "-L", 100, "-k", 5, "-s", 2, "-t", 50)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith(
        "  target output length 50 from input length 100:\n"
        "    padding: any LEFT,RIGHT with LEFT+RIGHT = 3..4\n"
        "    symmetric --padding: 2\n"
        "    padding words: causal\n"
    )


def test_shape_target_length_reflect_limit_in_json(runner: CliRunner) -> None:
    result = run(runner, "-L", 6, "-k", 3, "--padding-mode", "reflect", "-t", 14, "--json")
    assert result.exit_code == 0, result.stderr
    target = json.loads(result.stdout)["target"]
    assert target == {
        "length": 14,
        "layer": 1,
        "input_length": 6,
        "possible": True,
        "total_padding": [10, 10],
        "symmetric_padding": [5, 5],
        "max_side": 5,
        "padding_words": [],
        "reason": None,
    }
    # One more would need a side of 6 on a length-6 input.
    result = run(runner, "-L", 6, "-k", 3, "--padding-mode", "reflect", "-t", 15, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["target"]["reason"] == (
        "reflect padding adds at most 5 samples per side on length 6, "
        "so the output is at most 14 samples long"
    )


def test_shape_target_length_impossible_exits_1(runner: CliRunner) -> None:
    result = run(runner, "-L", 100, "-k", 5, "-t", 3)
    assert result.exit_code == 1
    assert "    impossible: the output is at least 96 samples long" in result.stdout
    assert result.stderr == (
        "Error: no padding gives output length 3: the output is at least 96 samples "
        "long (no padding); padding cannot shorten it\n"
    )


# --- --json --------------------------------------------------------------------------------

LAYER_KEYS = {
    "index", "file", "kernel_size", "stride", "dilation", "groups", "in_channels",
    "out_channels", "padding", "padding_mode", "design_sample_rate", "input_shape",
    "padding_resolved", "output_shape", "output_length", "cumulative_stride",
    "receptive_field", "sample_rate", "min_input_length",
}  # fmt: skip
TOP_KEYS = {
    "schema", "input", "layers", "output", "receptive_field", "cumulative_stride",
    "min_input_length", "error", "target",
}  # fmt: skip


def test_shape_json_numbers_schema(runner: CliRunner) -> None:
    result = run(runner, "-L", 10, "-k", 3, "-p", "2,1", "--sample-rate", 100, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == TOP_KEYS and doc["schema"] == JSON_SCHEMA == "conv1d-shape/1"
    assert doc["input"] == {
        "file": None,
        "shape": [10],
        "batch": None,
        "channels": None,
        "length": 10,
        "sample_rate": 100.0,
    }
    (layer,) = doc["layers"]
    assert set(layer) == LAYER_KEYS
    assert layer["padding"] == [2, 1] and layer["padding_resolved"] == [2, 1]
    assert layer["output_shape"] == [11] and layer["output_length"] == 11
    assert doc["output"] == {"shape": [11], "length": 11, "sample_rate": 100.0}
    assert (doc["receptive_field"], doc["cumulative_stride"], doc["min_input_length"]) == (3, 1, 1)
    assert doc["error"] is None and doc["target"] is None


def test_shape_help_documents_json_schema(runner: CliRunner) -> None:
    result = run(runner, "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for key in sorted(TOP_KEYS | LAYER_KEYS):
        assert key in text, key
    assert '"conv1d-shape/1"' in text


# --- layer files ---------------------------------------------------------------------------


@pytest.fixture
def chain_files(tmp_path: Path) -> list[Path]:
    return [
        make_layer(tmp_path / "a.npz", 8, 2, 9, stride=2, padding=4, sample_rate=16000.0),
        make_layer(tmp_path / "b.npz", 8, 8, 3, stride=2, groups=8, padding="same" and 1),
        make_layer(tmp_path / "c.npz", 4, 8, 5, padding="causal", dilation=2),
    ]


def _w(files: list[Path]) -> list[Any]:
    return [arg for f in files for arg in ("-w", f)]


def test_shape_chain_table(runner: CliRunner, chain_files: list[Path]) -> None:
    result = run(runner, *_w(chain_files), "--length", 16000, "--sample-rate", 16000)
    assert result.exit_code == 0, result.stderr
    a, b, c = (str(f) for f in chain_files)
    lines = result.stdout.splitlines()
    assert lines[0] == "(1, 4, 4000)"  # the answer first, for `| head -1`
    assert lines[1] == "input: (1, 2, 16000), 16000 Hz"
    assert lines[2].split() == "layer file input padding output stride field rate (Hz)".split()
    rows = [line.split("  ") for line in lines[3:6]]
    assert [[cell.strip() for cell in row if cell.strip()] for row in rows] == [
        ["1", a, "(1, 2, 16000)", "(4, 4)", "(1, 8, 8000)", "2", "9", "8000"],
        ["2", b, "(1, 8, 8000)", "(1, 1)", "(1, 8, 4000)", "4", "13", "4000"],
        ["3", c, "(1, 8, 4000)", "(8, 0)", "(1, 4, 4000)", "4", "45", "4000"],
    ]
    assert lines[6:] == [
        "output: (1, 4, 4000), receptive field 45 samples, total stride 4",
        "minimum input length: 1",  # layer 1 pads 4+4 around its 9 taps
    ]
    assert result.stderr == ""


def test_shape_chain_json(runner: CliRunner, chain_files: list[Path]) -> None:
    result = run(runner, *_w(chain_files), "-L", 16000, "-N", 3, "--json", "-t", 4000)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [row["file"] for row in doc["layers"]] == [str(f) for f in chain_files]
    assert [row["output_shape"] for row in doc["layers"]] == [
        [3, 8, 8000],
        [3, 8, 4000],
        [3, 4, 4000],
    ]
    assert [row["padding"] for row in doc["layers"]] == [4, 1, "causal"]
    assert [row["design_sample_rate"] for row in doc["layers"]] == [16000.0, None, None]
    assert [row["min_input_length"] for row in doc["layers"]] == [1, 1, 1]
    assert doc["min_input_length"] == 1
    assert doc["target"]["layer"] == 3 and doc["target"]["input_length"] == 4000
    assert doc["target"]["total_padding"] == [8, 8]
    assert doc["target"]["padding_words"] == ["same", "causal"]


def test_shape_chain_min_input_length_accepted_and_one_less_refused(
    runner: CliRunner, tmp_path: Path
) -> None:
    files = [
        make_layer(tmp_path / "a.npz", 1, 1, 9, stride=2),
        make_layer(tmp_path / "b.npz", 1, 1, 3, stride=3, padding=1, padding_mode="reflect"),
        make_layer(tmp_path / "c.npz", 1, 1, 4),
    ]
    # c needs 4 samples; b makes 4 from 10 (and reflect needs >= 2); a makes 10 from 27.
    result = run(runner, *_w(files), "-L", 27)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "minimum input length: 27"
    result = run(runner, *_w(files), "-L", 26)
    assert result.exit_code == 1
    assert result.stdout == ""  # no partial table for `| head -1` to mistake for an answer
    assert result.stderr == (
        f"Error: layer 3 ({files[2]}): input too short: padded length 3 (length 3 + padding "
        f"0+0) is less than the dilated kernel size 4; the input needs at least 4 samples "
        f"(the chain needs an input of at least 27 samples)\n"
    )


def test_shape_chain_channel_mismatch_names_layer(runner: CliRunner, tmp_path: Path) -> None:
    files = [
        make_layer(tmp_path / "a.npz", 4, 1, 3),
        make_layer(tmp_path / "b.npz", 2, 3, 3),
    ]
    result = run(runner, *_w(files), "-L", 50)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: layer 2 ({files[1]}): input has 4 channels but the layer expects 3 "
        f"(in_channels=3, groups=1)\n"
    )
    assert result.stdout == ""


def test_shape_chain_failure_in_json(runner: CliRunner, tmp_path: Path) -> None:
    files = [
        make_layer(tmp_path / "a.npz", 1, 1, 3, stride=4),
        make_layer(tmp_path / "b.npz", 1, 1, 5, padding=3, padding_mode="reflect"),
    ]
    result = run(runner, *_w(files), "-L", 10, "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert len(doc["layers"]) == 1 and doc["output"] is None
    assert doc["error"]["layer"] == 2 and doc["error"]["file"] == str(files[1])
    assert doc["error"]["message"].startswith("reflect padding needs each side's pad smaller")
    assert doc["min_input_length"] == 15  # b needs 4 (reflect 3 < 4); a gives 4 from 15
    assert result.stderr.startswith(f"Error: layer 2 ({files[1]}): reflect padding")


def test_shape_chain_kernel_larger_than_input(runner: CliRunner, tmp_path: Path) -> None:
    files = [make_layer(tmp_path / "a.npz", 1, 1, 3), make_layer(tmp_path / "big.npz", 1, 1, 50)]
    result = run(runner, *_w(files), "-L", 40)
    assert result.exit_code == 1
    assert f"layer 2 ({files[1]}): input too short: padded length 38" in result.stderr
    assert "the input needs at least 50 samples" in result.stderr


def test_shape_chain_target_when_last_layer_fails(runner: CliRunner, tmp_path: Path) -> None:
    files = [make_layer(tmp_path / "a.npz", 1, 1, 3), make_layer(tmp_path / "big.npz", 1, 1, 50)]
    result = run(runner, *_w(files), "-L", 40, "-t", 38)
    assert result.exit_code == 1
    # The chain does not fit: nothing on stdout; the padding hint is a message.
    assert result.stdout == ""
    assert "target output length 38 of layer 2 from input length 38:\n" in result.stderr
    assert "  padding: any LEFT,RIGHT with LEFT+RIGHT = 49\n" in result.stderr
    assert "symmetric --padding: none" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: layer 2 (")


def test_shape_single_layer_overrides(runner: CliRunner, tmp_path: Path) -> None:
    layer = make_layer(tmp_path / "a.npz", 2, 2, 4)
    result = run(runner, "-w", layer, "-L", 10, "--padding", "same", "--json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["layers"][0]
    assert row["padding"] == "same" and row["padding_resolved"] == [1, 2]
    assert row["output_shape"] == [1, 2, 10]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-w", "{b}", "--stride", 2], "--stride can override only a single -w layer file"),
        (["-k", 3], "--kernel-size cannot be used with -w"),
        (["--out-channels", 3], "--out-channels cannot be used with -w"),
    ],
)
def test_shape_layer_option_conflicts_exit_2(
    runner: CliRunner, tmp_path: Path, extra: list[Any], message: str
) -> None:
    a = make_layer(tmp_path / "a.npz", 1, 1, 3)
    b = make_layer(tmp_path / "b.npz", 1, 1, 3)
    extra = [str(e).format(b=b) for e in extra]
    result = run(runner, "-w", a, "-L", 10, *extra)
    assert result.exit_code == 2
    assert message in result.stderr


def test_shape_chain_in_channels_sets_the_input(runner: CliRunner, tmp_path: Path) -> None:
    layer = make_layer(tmp_path / "a.npz", 4, 2, 3)
    result = run(runner, "-w", layer, "-L", 10, "--in-channels", 3)
    assert result.exit_code == 1
    assert "input has 3 channels but the layer expects 2" in result.stderr


def test_shape_bad_layer_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    result = run(runner, "-w", bad, "-L", 10)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {bad}: not a layer file")


def test_shape_missing_layer_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    # A missing data file is bad data (exit 1), as in apply and inspect.
    missing = tmp_path / "nope.npz"
    result = run(runner, "-w", missing, "-L", 10)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {missing}: no such file\n"


@pytest.fixture
def two_layer_npz(tmp_path: Path) -> Path:
    """A state_dict-style archive with two prefixed layers, as numpy.savez of a model writes."""
    path = tmp_path / "model.npz"
    np.savez(
        path,
        **{
            "encoder.conv.weight": np.zeros((2, 1, 3), np.float32),
            "decoder.conv.weight": np.zeros((1, 2, 5), np.float32),
        },
    )
    return path


def test_shape_key_picks_a_layer(runner: CliRunner, two_layer_npz: Path) -> None:
    result = run(runner, "-w", two_layer_npz, "--key", "encoder.conv", "-L", 100, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["output"]["shape"] == [1, 2, 98]
    assert doc["layers"][0]["file"] == f"{two_layer_npz}:encoder.conv"


def test_shape_without_key_on_ambiguous_npz_names_the_layers(
    runner: CliRunner, two_layer_npz: Path
) -> None:
    result = run(runner, "-w", two_layer_npz, "-L", 100)
    assert result.exit_code == 1
    assert "choose one with --key: 'decoder.conv', 'encoder.conv'" in result.stderr


def test_shape_per_layer_key_form(runner: CliRunner, two_layer_npz: Path) -> None:
    result = run(
        runner,
        "-w",
        f"{two_layer_npz}:encoder.conv",
        "-w",
        f"{two_layer_npz}:decoder.conv",
        "-L",
        100,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [row["output_shape"] for row in doc["layers"]] == [[1, 2, 98], [1, 1, 94]]
    assert doc["layers"][1]["file"] == f"{two_layer_npz}:decoder.conv"


def test_shape_per_layer_key_beats_key_option(runner: CliRunner, two_layer_npz: Path) -> None:
    result = run(
        runner, "-w", f"{two_layer_npz}:decoder.conv", "--key", "encoder.conv", "-L", 100, "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["output"]["shape"] == [1, 1, 96]


def test_shape_per_layer_unknown_key_exits_1(runner: CliRunner, two_layer_npz: Path) -> None:
    result = run(runner, "-w", f"{two_layer_npz}:nope", "-L", 100)
    assert result.exit_code == 1
    assert "no weight for key 'nope'" in result.stderr


def test_shape_file_name_with_colon_is_not_split(runner: CliRunner, tmp_path: Path) -> None:
    odd = make_layer(tmp_path / "a:b.npz", 1, 1, 3)
    make_layer(tmp_path / "a", 1, 1, 5)  # "a" exists too: the whole name still wins
    result = run(runner, "-w", odd, "-L", 10, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["output"]["length"] == 8


def test_shape_key_without_layer_file_exits_2(runner: CliRunner) -> None:
    result = run(runner, "-L", 10, "-k", 3, "--key", "encoder.conv")
    assert result.exit_code == 2
    assert "--key needs a layer file (-w)" in result.stderr


def test_shape_design_rate_mismatch_warns(runner: CliRunner, tmp_path: Path) -> None:
    layer = make_layer(tmp_path / "a.npz", 1, 1, 3, sample_rate=44100.0)
    result = run(runner, "-w", layer, "-L", 100, "--sample-rate", 48000)
    assert result.exit_code == 0
    assert result.stderr == (
        f"warning: layer 1 ({layer}) was designed for 44100 Hz but gets 48000 Hz "
        f"from --sample-rate\n"
    )


# --- input files ------------------------------------------------------------------------------


@pytest.fixture
def fake_probe(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace io.inputs.open_reader by the documented contract, to test shape on its own."""
    info: dict[str, Any] = {
        "format": "wav",
        "subtype": "PCM_16",
        "sample_rate": 48000.0,
        "channels": 2,
        "frames": 48000,
        "batch": None,
        "column_names": None,
        "time_column": None,
        "time_detected": False,
    }
    calls: list[tuple[Any, Any]] = []

    class Reader:
        """open_reader's contract: .info, block iteration (blocks of ``block_frames``)."""

        def __init__(self, path: Any) -> None:
            self.info = types.SimpleNamespace(
                path=str(path), **{k: v for k, v in info.items() if k in fields}
            )

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def __iter__(self) -> Any:
            for n in info["stream_blocks"]:
                yield np.zeros((info["channels"], n), np.float32)

    fields = list(info)

    def open_reader(
        path: Any,
        format: str | None = None,
        dtype: Any = "float64",
        *,
        columns: Any = None,
        time_column: Any = None,
    ) -> Any:
        calls.append((path, format))
        return Reader(path)

    info["stream_blocks"] = [65536, 1000]
    module = types.ModuleType("conv1d_cli.io.inputs")
    module.open_reader = open_reader  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "conv1d_cli.io.inputs", module)
    info["calls"] = calls
    return info


def test_shape_input_file_gives_shape_and_rate(
    runner: CliRunner, tmp_path: Path, fake_probe: dict[str, Any]
) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"")
    layer = make_layer(tmp_path / "a.npz", 2, 2, 9, stride=2, padding=4)
    result = run(runner, "-w", layer, wav, "--input-format", "wav")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "(2, 24000)"
    assert result.stdout.splitlines()[1] == f"input: (2, 48000) from {wav}, 48000 Hz"
    assert result.stdout.splitlines()[3].split()[-1] == "24000"
    assert fake_probe["calls"] == [(wav, "wav")]


def test_shape_input_file_numbers_mode(
    runner: CliRunner, tmp_path: Path, fake_probe: dict[str, Any]
) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"")
    result = run(runner, wav, "-k", 5, "--out-channels", 4, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["input"]["file"] == str(wav) and doc["input"]["shape"] == [2, 48000]
    assert doc["output"] == {"shape": [4, 47996], "length": 47996, "sample_rate": 48000.0}


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        (["--length", 10], 2, "give either --length or INPUT_FILE, not both"),
        (["--batch", 2], 2, "--batch cannot be used with INPUT_FILE"),
        (["--sample-rate", 44100], 2, "--sample-rate 44100 contradicts the input file's 48000 Hz"),
        (["--in-channels", 3], 1, "has 2 channels, but --in-channels is 3"),
    ],
)
def test_shape_input_file_conflicts(
    runner: CliRunner,
    tmp_path: Path,
    fake_probe: dict[str, Any],
    options: list[Any],
    code: int,
    message: str,
) -> None:
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"")
    result = run(runner, wav, "-k", 3, *options)
    assert result.exit_code == code
    assert message in result.stderr


def test_shape_input_stream_without_known_length_is_counted(
    runner: CliRunner, tmp_path: Path, fake_probe: dict[str, Any]
) -> None:
    # A header that does not give the length (a pipe): the blocks are read and counted.
    fake_probe["frames"] = None
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"")
    result = run(runner, wav, "-k", 3, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["input"]["length"] == 65536 + 1000


def test_shape_empty_stream_exits_1(
    runner: CliRunner, tmp_path: Path, fake_probe: dict[str, Any]
) -> None:
    fake_probe["frames"] = None
    fake_probe["stream_blocks"] = []
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"")
    result = run(runner, wav, "-k", 3)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {wav}: holds no samples\n"


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox")
def test_shape_wav_piped_from_sox(tmp_path: Path) -> None:
    # sox writes a WAV to a pipe with no length in its header: shape counts the frames.
    layer = make_layer(tmp_path / "lp.npz", 2, 2, 5)
    sox = subprocess.Popen(
        ["sox", "-r", "8000", "-c", "2", "-n", "-t", "wav", "-", "synth", "1234s", "sine", "440"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # sox warns that a piped header cannot say the length
    )
    shape = subprocess.run(
        [
            sys.executable,
            "-m",
            "conv1d_cli",
            "shape",
            "-w",
            str(layer),
            "-",
            "--input-format",
            "wav",
            "--json",
        ],
        stdin=sox.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sox.stdout is not None
    sox.stdout.close()
    assert sox.wait() == 0
    assert shape.returncode == 0, shape.stderr
    doc = json.loads(shape.stdout)
    assert doc["input"]["length"] == 1234
    assert doc["input"]["sample_rate"] == 8000
    assert doc["output"]["shape"] == [2, 1230]


def test_shape_real_files_through_io_readers(runner: CliRunner, tmp_path: Path) -> None:
    batch = tmp_path / "batch.npy"
    np.save(batch, np.zeros((4, 2, 100), np.float32))
    layer = make_layer(tmp_path / "a.npz", 3, 2, 5, stride=2)
    result = run(runner, "-w", layer, batch, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["input"]["shape"] == [4, 2, 100] and doc["input"]["sample_rate"] is None
    assert doc["output"]["shape"] == [4, 3, 48]
    csv = tmp_path / "acc.csv"
    csv.write_text("x,y\n" + "1,2\n" * 30)
    result = run(runner, csv, "-k", 3, "-s", 2, "--sample-rate", 100, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["output"] == {"shape": [2, 14], "length": 14, "sample_rate": 50.0}


# --- start-up ------------------------------------------------------------------------------


def test_shape_numbers_mode_does_not_import_numpy() -> None:
    code = (
        "import sys\n"
        "from conv1d_cli.cli import cli\n"
        "try:\n"
        "    cli(['shape', '--length', '16000', '--kernel-size', '9'], prog_name='conv1d')\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "heavy = sorted(m for m in ('numpy', 'scipy', 'soundfile') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines()[0] == "15992"
    assert done.stdout.splitlines()[-1] == "HEAVY []"


def test_shape_python_dash_m(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "conv1d_cli", "shape", "-L", "10", "-k", "3", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"]["length"] == 8


def test_shape_csv_from_stdin(runner: CliRunner) -> None:
    data = "a,b\n" + "1,2\n" * 10
    result = runner.invoke(cli, ["shape", "-", "--input-format", "csv", "-k", "3", "--json"], data)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["output"]["shape"] == [2, 8]


def test_shape_target_answered_when_unpadded_layer_does_not_fit(runner: CliRunner) -> None:
    result = run(runner, "-L", 3, "-k", 5, "-t", 3)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "  target output length 3 from input length 3:\n"
        "    padding: any LEFT,RIGHT with LEFT+RIGHT = 4\n"
        "    symmetric --padding: 2\n"
        "    padding words: same, causal\n"
        "Error: input too short"
    )


def test_shape_chain_failure_prints_nothing_on_stdout(runner: CliRunner, tmp_path: Path) -> None:
    # The reviewer's case: a 101-tap layer, 10 samples, no padding.
    layer = make_layer(tmp_path / "lp.npz", 2, 2, 101, padding=50)
    result = run(runner, "-w", layer, "--length", 10, "--padding", "valid")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: layer 1 ({layer}): input too short: padded length 10 (length 10 + padding "
        f"0+0) is less than the dilated kernel size 101; the input needs at least 101 samples\n"
    )
    doc = json.loads(run(runner, "-w", layer, "-L", 10, "--padding", "valid", "--json").stdout)
    assert doc["output"] is None and doc["error"]["layer"] == 1


def test_shape_layer_text_first_line_is_output_shape(runner: CliRunner, tmp_path: Path) -> None:
    layer = make_layer(tmp_path / "lp.npz", 2, 2, 101, padding=50)
    result = run(runner, "-w", layer, "--length", 48000)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "(1, 2, 48000)"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_shape_stdout_full_disk_is_one_error_line(extra: list[str]) -> None:
    proc = run_with_stdout_full("shape", "--length", "16000", "--kernel-size", "9", *extra)
    assert proc.returncode == 1
    assert proc.stderr == "Error: cannot write to stdout: No space left on device\n"


def test_shape_reader_gone_exits_141_without_a_message() -> None:
    """Like any filter killed by SIGPIPE (issue 13); it was exit 1 with an Error: line."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "conv1d_cli", "shape", "-L", "16000", "-k", "9", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141
    assert proc.stderr == ""
