"""The one route from a failure to an exit code: ``conv1d_cli.cli._common``.

Library errors go through ``reported_errors`` (parameters shown as flags), what only
a command sees through ``refuse`` (exit 2) or ``fail`` (exit 1); no command module
builds a Click error, a library error or an ``Error:`` line of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import click
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

import conv1d_cli.cli._common as common_module
import conv1d_cli.errors as errors_module
from conv1d_cli.cli import cli
from conv1d_cli.cli._common import error_text, fail, flag_label, refuse, reported_errors
from conv1d_cli.errors import (
    BatchError,
    ConfigError,
    Conv1dError,
    DataFileError,
    FormatError,
    OutputExistsError,
    PipeClosedError,
    ShapeError,
)

CLI_DIR = Path(common_module.__file__).parent
COMMAND_MODULES = sorted(p for p in CLI_DIR.glob("*.py") if p.name != "_common.py")
LIBRARY_ERRORS = {
    name
    for name, value in vars(errors_module).items()
    if isinstance(value, type) and issubclass(value, Conv1dError)
}

#: Every library error class, an instance, and the exit status the CLI gives it.
EXIT_CODES: list[tuple[Conv1dError, int]] = [
    (Conv1dError("x"), 1),
    (ConfigError("x"), 2),
    (ShapeError("x"), 1),
    (DataFileError("x"), 1),
    (FormatError("x"), 2),
    (OutputExistsError("x"), 1),
    (BatchError([("a.wav", DataFileError("a.wav: bad"))], 2), 1),
    (PipeClosedError("x"), 141),
]


def _calls(tree: ast.AST) -> list[str]:
    """Dotted names of everything called in ``tree`` (``click.UsageError``, ``ConfigError``)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            parts = []
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                parts.append(func.id)
                names.append(".".join(reversed(parts)))
    return names


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: p.name)
def test_cli_errors_click_errors_are_built_only_in_common(path: Path) -> None:
    built = [
        name
        for name in _calls(ast.parse(path.read_text()))
        if name.split(".")[-1] in ("UsageError", "ClickException", "BadParameter", "Abort")
    ]
    assert built == [], f"{path.name} builds {built}; use _common.refuse/fail"


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: p.name)
def test_cli_errors_commands_raise_no_library_error_of_their_own(path: Path) -> None:
    built = [
        name
        for name in _calls(ast.parse(path.read_text()))
        if name.split(".")[-1] in LIBRARY_ERRORS
    ]
    assert built == [], f"{path.name} raises {built} only to pick an exit code"


@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: p.name)
def test_cli_errors_no_hand_printed_error_lines(path: Path) -> None:
    # Any text that starts an "Error: ..." line (help texts only mention them).
    lines = [
        node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("Error:")
    ]
    assert lines == []


def test_cli_errors_every_library_error_class_is_mapped() -> None:
    assert {type(error).__name__ for error, _ in EXIT_CODES} == LIBRARY_ERRORS


@click.command()
@click.argument("which", type=int)
def _raiser(which: int) -> None:
    with reported_errors():
        raise EXIT_CODES[which][0]


@pytest.mark.parametrize(
    ("index", "code"),
    [(i, code) for i, (_, code) in enumerate(EXIT_CODES)],
    ids=[type(error).__name__ for error, _ in EXIT_CODES],
)
def test_cli_errors_exit_code_of_each_library_error(index: int, code: int) -> None:
    result = CliRunner().invoke(_raiser, [str(index)])
    assert result.exit_code == code, result.output
    if code == 141:
        assert result.stderr == ""  # the reader went away: nothing to say
    else:
        assert result.stderr.endswith(
            "Error: x\n" if index != 6 else "Error: 1 of 2 inputs failed: a.wav\n"
        )
    if code == 2:
        assert "Try '" in result.stderr  # a usage error: the --help hint


def test_cli_errors_batch_error_prints_each_failure_then_the_summary() -> None:
    result = CliRunner().invoke(_raiser, ["6"])
    assert result.stderr == "Error: a.wav: bad\nError: 1 of 2 inputs failed: a.wav\n"


@click.command()
@click.argument("how")
def _leaver(how: str) -> None:
    if how == "refuse":
        refuse("--a and --b clash")
    fail("stdout is closed")


def test_cli_errors_refuse_is_a_usage_error_and_fail_a_failure() -> None:
    refused = CliRunner().invoke(_leaver, ["refuse"])
    assert refused.exit_code == 2
    assert refused.stderr.endswith("\nError: --a and --b clash\n")
    assert refused.stderr.startswith("Usage: ")
    failed = CliRunner().invoke(_leaver, ["fail"])
    assert (failed.exit_code, failed.stderr) == (1, "Error: stdout is closed\n")


def test_cli_errors_parameters_are_shown_as_flags() -> None:
    error = ConfigError(
        "{parameter} must be positive; {parameter:output} is fine", parameter="sample_rate"
    )
    assert str(error) == "sample_rate must be positive; output is fine"
    assert error_text(error) == "--sample-rate must be positive; -o/--output is fine"
    assert flag_label("output_dir") == "-d/--output-dir"


def test_cli_errors_format_error_names_the_option_from_its_parameter() -> None:
    error = FormatError("give the format explicitly", path="-", parameter="output_format")
    assert str(error) == "<stdin>: give the format explicitly"
    assert error_text(error) == "<stdin>: give the format explicitly (--output-format)"
    assert error_text(FormatError("no format")) == "no format"


def test_cli_errors_output_exists_says_how_this_command_overwrites() -> None:
    @click.command()
    def exists() -> None:
        with reported_errors(overwrite="use --force to overwrite"):
            raise OutputExistsError(
                "{path}: already exists", path="./x.npz", hint="pass overwrite=True"
            )

    result = CliRunner().invoke(exists)
    assert (result.exit_code, result.stderr) == (
        1,
        "Error: ./x.npz: already exists (use --force to overwrite)\n",
    )


# --- the route end to end ---------------------------------------------------------------


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


@pytest.fixture
def wav_and_layer(tmp_path: Path) -> tuple[Path, Path]:
    wav = tmp_path / "in.wav"
    sf.write(wav, np.zeros((100, 1)), 8000)
    layer = tmp_path / "id.npz"
    assert _invoke("init", str(layer), "--design", "identity", "-q").exit_code == 0
    return wav, layer


def test_cli_errors_apply_format_hint_names_the_side(wav_and_layer: tuple[Path, Path]) -> None:
    wav, layer = wav_and_layer
    result = _invoke("apply", "-w", str(layer), str(wav), "-o", "-")
    # A '-' output takes the input's format: this one is the input's side.
    assert result.exit_code == 0
    result = _invoke("apply", "-w", str(layer), "-", "-o", str(wav.with_name("o.wav")))
    assert result.exit_code == 2
    assert result.stderr.endswith("give the format explicitly (--input-format)\n")
    result = _invoke("apply", "-w", str(layer), str(wav), "-o", str(wav.with_name("o.xyz")))
    assert result.exit_code == 2
    assert result.stderr.endswith("give the format explicitly (--output-format)\n")


def test_cli_errors_shape_and_inspect_format_hint(tmp_path: Path) -> None:
    odd = tmp_path / "x.xyz"
    odd.write_text("1\n")
    for args in (["shape", str(odd), "-k", "3"], ["inspect", str(odd)]):
        result = _invoke(*args)
        assert result.exit_code == 2
        assert result.stderr.endswith("give the format explicitly (--input-format)\n")


def test_cli_errors_gain_must_be_finite(wav_and_layer: tuple[Path, Path]) -> None:
    wav, layer = wav_and_layer
    result = _invoke("apply", "-w", str(layer), str(wav), "-o", "-", "--gain", "inf")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Invalid value for --gain: expected a finite number of dB, got inf\n"
    )
    result = _invoke("apply", "-w", str(layer), str(wav), "-o", "-", "--normalize", "x")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Invalid value for '--normalize': 'x' is not a valid float.\n"
    )


def test_cli_errors_init_weight_messages_name_init_flags(tmp_path: Path) -> None:
    kernel = tmp_path / "k.npy"
    np.save(kernel, np.ones(3))
    result = _invoke("init", str(tmp_path / "l.npz"), "--weight", str(kernel), "--groups", "2")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: --groups applies to a 3-D --weight; a 1-D kernel uses --channels\n"
    )
    big = tmp_path / "big.npy"
    np.save(big, np.array([1e300]))
    result = _invoke("init", str(tmp_path / "l.npz"), "--weight", str(big), "--dtype", "float32")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {big}: values up to 1e+300 do not fit float32 (largest 3.4e+38); "
        "give --dtype float64\n"
    )


def test_cli_errors_keyed_layer_named_as_given(
    tmp_path: Path, wav_and_layer: tuple[Path, Path]
) -> None:
    wav, _ = wav_and_layer
    model = tmp_path / "model.npz"
    np.savez(model, **{"enc.weight": np.ones((1, 1, 3))})
    result = _invoke("apply", "-w", f"{model}:dec", str(wav), "-o", "-")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {model}:dec: ")
