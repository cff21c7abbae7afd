"""One vocabulary across commands (issue 13, items 8 and 9).

- Frequencies with units wherever a frequency is taken (FrequencyType over
  shapes.parse_frequency).
- An option name means the same thing (type, metavar) in every command; a short flag
  has one meaning across commands; a missing input is exit 1 with the same words.
"""

from __future__ import annotations

from collections import defaultdict

import click
import numpy as np
import pytest
from click.testing import CliRunner

from conv1d_cli.cli import cli
from conv1d_cli.cli._common import FrequencyType
from conv1d_cli.errors import ConfigError
from conv1d_cli.shapes import parse_frequency


def _commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    found = {}
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        found[name] = command
    return found


def _options() -> list[tuple[str, click.Option]]:
    return [
        (name, param)
        for name, command in _commands().items()
        for param in command.params
        if isinstance(param, click.Option)
    ]


def _describe(param: click.Option) -> tuple[str, str]:
    ctx = click.Context(click.Command("x"))
    return type(param.type).__name__, param.type.get_metavar(param, ctx) or param.metavar or ""


# ---- item 9: the vocabulary ------------------------------------------------------------


def test_vocabulary_same_long_option_same_type_and_metavar():
    seen: dict[str, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    for command, param in _options():
        for opt in param.opts + param.secondary_opts:
            if opt.startswith("--") and opt not in ("--help",):
                seen[opt][_describe(param)].append(command)
    clashes = {opt: dict(kinds) for opt, kinds in seen.items() if len(kinds) > 1}
    assert not clashes


def test_vocabulary_a_short_flag_has_one_meaning():
    meanings: dict[str, set[str]] = defaultdict(set)
    for _command, param in _options():
        longs = [o for o in param.opts if o.startswith("--")]
        for opt in param.opts:
            if not opt.startswith("--"):
                meanings[opt].add(longs[0] if longs else opt)
    assert {flag: m for flag, m in meanings.items() if len(m) > 1} == {}
    # -d is apply's --output-dir; shape's --dilation is long-only
    assert meanings["-d"] == {"--output-dir"}


def test_vocabulary_every_frequency_option_uses_frequency_type():
    frequency_words = ("rate", "cutoff", "freq", "hz")
    for command, param in _options():
        long = next(o for o in param.opts if o.startswith("--"))
        if any(word in long for word in frequency_words):
            assert isinstance(param.type, FrequencyType), (command, long)


def test_vocabulary_inspect_takes_input_format_like_apply_and_shape():
    for name in ("apply", "inspect", "shape"):
        longs = {o for _, p in _options() if _ == name for o in p.opts}
        assert "--input-format" in longs, name
    assert "--format" not in {o for c, p in _options() if c == "inspect" for o in p.opts}


@pytest.mark.parametrize(
    "args",
    [
        ["apply", "-w", "{layer}", "{missing}", "-o", "{out}"],
        ["inspect", "{missing}"],
        ["shape", "-w", "{layer}", "{missing}"],
        ["shape", "-k", "3", "{missing}"],
    ],
)
@pytest.mark.parametrize("name", ["nope.wav", "nope.csv", "nope.xyz"])
def test_vocabulary_missing_input_is_exit_1_everywhere(tmp_path, args, name):
    layer = tmp_path / "lp.npz"
    from conv1d_cli import Conv1d

    Conv1d.from_weights(np.ones((1, 1, 3))).save(layer)
    missing = tmp_path / name
    filled = [a.format(layer=layer, missing=missing, out=tmp_path / "out.wav") for a in args]
    result = CliRunner().invoke(cli, filled)
    assert result.exit_code == 1, result.output
    assert result.stderr == f"Error: {missing}: no such file\n"


def test_vocabulary_warnings_are_lowercase(tmp_path):
    """One style: ``warning: ...`` (as ``Error:`` is Click's, ``warning:`` is ours)."""
    import pathlib

    import conv1d_cli

    root = pathlib.Path(conv1d_cli.__file__).parent
    for path in root.rglob("*.py"):
        assert "Warning: " not in path.read_text(encoding="utf-8"), path


# ---- item 8: frequencies with units ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hz"),
    [
        ("48000", 48000.0),
        ("4k", 4000.0),
        ("4kHz", 4000.0),
        ("4 kHz", 4000.0),
        ("4KHZ", 4000.0),
        ("44.1k", 44100.0),
        ("1.5 kHz", 1500.0),
        ("2M", 2e6),
        ("2MHz", 2e6),
        ("250Hz", 250.0),
        ("1e3", 1000.0),
        (" 8000 ", 8000.0),
        ("22.05k", 22050.0),
    ],
)
def test_parse_frequency_forms(text, hz):
    assert parse_frequency(text) == hz


@pytest.mark.parametrize(
    "text", ["", "k", "4m", "4mHz", "4 k Hz", "1_000", "inf", "nan", "4kk", "4x"]
)
def test_parse_frequency_refuses(text):
    with pytest.raises(ConfigError, match="--sample-rate: expected a frequency such as"):
        parse_frequency(text, "--sample-rate")


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_frequency_units_in_init_cutoff_and_sample_rate(tmp_path):
    plain, units = tmp_path / "a.npz", tmp_path / "b.npz"
    common = ["--design", "bandpass", "--taps", "31"]
    assert (
        _run("init", plain, *common, "--cutoff", "1000,4000", "--sample-rate", 44100).exit_code == 0
    )
    result = _run("init", units, *common, "--cutoff", "1k,4kHz", "--sample-rate", "44.1k")
    assert result.exit_code == 0, result.output
    with np.load(plain) as a, np.load(units) as b:
        assert np.array_equal(a["weight"], b["weight"])
        assert a["conv1d_config"] == b["conv1d_config"]


def test_frequency_units_in_shape_apply_inspect(tmp_path):
    result = _run("shape", "-L", 100, "-k", 3, "--sample-rate", "16k")
    assert result.exit_code == 0, result.output
    assert "16000 Hz" in result.stdout
    layer = tmp_path / "lp.npz"
    assert (
        _run(
            "init",
            layer,
            "--design",
            "lowpass",
            "--cutoff",
            "1k",
            "--sample-rate",
            "8k",
            "--taps",
            11,
        ).exit_code
        == 0
    )
    result = _run("inspect", layer, "--sample-rate", "16 kHz", "--json")
    assert result.exit_code == 0, result.output
    csv = tmp_path / "x.csv"
    csv.write_text("1\n2\n3\n4\n")
    result = _run("apply", "-w", layer, csv, "-o", tmp_path / "y.wav", "--sample-rate", "8k", "-q")
    assert result.exit_code == 0, result.output
    import soundfile

    assert soundfile.info(str(tmp_path / "y.wav")).samplerate == 8000


@pytest.mark.parametrize(
    "args",
    [
        ["shape", "-L", "100", "-k", "3", "--sample-rate", "fast"],
        ["apply", "-w", "x.npz", "x.wav", "-o", "y.wav", "--sample-rate", "4m"],
        ["inspect", "x.npz", "--sample-rate", "44,1k"],
        [
            "init",
            "x.npz",
            "--design",
            "lowpass",
            "--taps",
            "3",
            "--sample-rate",
            "8k",
            "--cutoff",
            "1 kilohertz",
        ],
    ],
)
def test_frequency_bad_value_exits_2_naming_option_and_forms(args):
    result = _run(*args)
    assert result.exit_code == 2, result.output
    option = args[-2]
    assert f"'{option}'" in result.stderr
    assert "expected a frequency such as 48000, 44.1k, 4kHz" in result.stderr
