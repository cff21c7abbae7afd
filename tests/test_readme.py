"""Every command the README prints runs as printed (issue 13: "every README command still runs").

What is collected, from ``README.md`` at collection time (new commands are picked up by
themselves):

* **```sh blocks** (also ``bash``/``shell``): every command line (``\\`` continuations joined,
  a here-document kept whole). Each runs as printed with
  ``bash -euo pipefail -c`` (pipes, redirections and ``# comments`` included) in a fresh copy of
  a fixture directory, ``conv1d`` on ``PATH`` being a wrapper for ``sys.executable -m conv1d_cli``
  so the code under test (``PYTHONPATH``) runs, not an installed copy (``python`` is
  ``sys.executable`` too). Skipped: commands that run ``pip`` (the two set-up commands: they
  install the package instead of testing it) and commands whose program (``jq``, ``sox``, ...)
  is not installed.
* **Inline code spans** (single backticks) that start with ``conv1d`` (after optional
  ``VAR=value`` words) or ``make``: a span is a complete command, and runs like the ones above,
  when it holds no ``...`` and Click parses it with every required argument present; otherwise it
  is a fragment (``conv1d inspect --json``, ``conv1d init ... --channels C``) and only its option
  names are checked. A span may break across lines of the Markdown source.
* **```python blocks**: each runs as one script in the fixture directory. Names a block uses but
  never defines (``x``, ``weight``, ``bias``, ``model``, ``layer``, ``blocks``) come from
  ``PY_FIXTURES``; ``model`` is a real ``torch.nn.Module`` where torch is installed and a
  duck-typed stand-in otherwise (``Conv1d.from_torch`` never imports torch), so nothing skips.
  ``name = expr  # (20, 33, 24)`` checks ``name``'s shape; ``# [[14, 20, 26, 32]]`` its values.
  A block importing a module that is not installed (other than conv1d_cli) is skipped.

Markers a README author may put in a command's trailing comment (``cmd  # marker``):

* ``# prints VALUE`` or ``# prints VALUE, then ...``: stdout's first line is ``VALUE``;
* ``# exits N``: the command is an example of a failure and exits with status N (else 0);
* ``# needs MODULE``: skipped where the Python module ``MODULE`` is not installed;
* ``# on a remote cluster ...``: not run (its options are still checked).

Output the README shows: a comment-only line with two or more spaces after its ``#``, right
under a command (``#   padding (50, 50); -3 dB at 3805.5 Hz``): each ``;``-separated piece must
appear in the command's stdout (spaces collapsed); an ```output (or ```text) block right after an
sh block: each of its lines without ``...`` must appear in the block's last command's stdout.
Other comment lines are plain comments.

Inputs: each command's file arguments (words with a file extension or a ``/``, except outputs:
``-o``, ``-d``, ``--plot``, ``>``/``>>`` targets, ``init``'s layer file, ``make OUT=``) must be a
fixture built by ``_build_fixtures`` or the output of an earlier README command, which then runs
first (so ``conv1d inspect filtered.wav`` runs the ``init`` and ``apply`` that make it). A new
placeholder input fails with "add a fixture for X" instead of a puzzling "no such file"
(except in a ``# exits N`` example, which may name a missing file on purpose).

Plus: every subcommand's ``--help`` exits 0, every option a README command uses exists (catches
an option renamed in the code but not in the README), and the README's command listing names
exactly the CLI's subcommands.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest

from conv1d_cli import Conv1d
from conv1d_cli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TIMEOUT = 120

# Words that end a command in a pipeline / list, as shlex(punctuation_chars=True) yields them.
_SEPARATORS = {"|", "||", "&&", ";", "&", "|&"}
_REDIRECTS = {">", ">>", "<", "&>", ">&", "2>", "2>>"}
# Options whose value is a file or folder a command writes (never a fixture).
_OUTPUT_OPTIONS = {"-o", "--output", "-d", "--output-dir", "--plot", "--plot-compare"}
# make variables of examples/Makefile that name what it writes.
_MAKE_OUTPUT_VARS = {"OUT"}
_FILE_EXTENSIONS = (
    "wav flac ogg aiff aif au w64 rf64 caf npz npy csv tsv txt json png pt pth mat"
).split()
_PATHLIKE = re.compile(r"^[\w./*?\[\]~+-]+$")
_FILE_NAME = re.compile(r"[\w./-]+\.(?:" + "|".join(_FILE_EXTENSIONS) + r")\b")


# --------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------


@dataclass
class Command:
    """One shell command of the README, as printed."""

    text: str  # what runs: continuations joined, the trailing comment kept
    line: int  # 1-based README line
    source: str  # "sh" or "inline"
    comment: str = ""  # trailing comment, without '#'
    shown: list[str] = field(default_factory=list)  # comment-only lines right under it
    fragment: str = ""  # why an inline span is not run ("" = it runs)

    @property
    def code(self) -> str:
        return _strip_comment(self.text)[0]

    @property
    def id(self) -> str:
        short = " ".join(self.code.split())
        short = short if len(short) <= 40 else short[:40] + "..."
        return f"L{self.line}:{short}"


def _strip_comment(line: str) -> tuple[str, str]:
    """Split ``cmd  # comment`` at the first ``#`` that starts a word outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                continue
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def _fences(text: str) -> list[tuple[str, int, list[str], int]]:
    """``(language, first content line, lines, closing fence line)`` of each fenced block."""
    blocks: list[tuple[str, int, list[str], int]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(```+|~~~+)\s*([\w+-]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        blocks.append((lang, start + 1, lines[start:j], j + 1))
        i = j + 1
    return blocks


_SH_LANGS = {"sh", "bash", "shell"}
_OUTPUT_LANGS = {"output", "text", "console-output"}
_SHOWN = re.compile(r"^#\s{2,}(\S.*)$")  # '#   padding (50, 50); ...': output shown
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")


def _sh_commands(text: str) -> list[Command]:
    out: list[Command] = []
    blocks = _fences(text)
    all_lines = text.splitlines()
    for n, (lang, first, lines, last) in enumerate(blocks):
        if lang not in _SH_LANGS:
            continue
        pending = ""
        pending_line = 0
        heredoc = ""
        block_cmds: list[Command] = []
        for k, raw in enumerate(lines):
            lineno = first + k
            stripped = raw.strip()
            if heredoc:  # inside a here-document: kept verbatim up to its delimiter
                pending += raw + "\n"
                if stripped == heredoc:
                    heredoc = ""
                    block_cmds.append(Command(pending.rstrip("\n"), pending_line, "sh"))
                    pending = ""
                continue
            if not pending and stripped.startswith("#"):
                shown = _SHOWN.match(stripped)
                if shown and block_cmds:
                    block_cmds[-1].shown.append(shown.group(1).strip())
                continue  # any other comment line is just a comment
            if not stripped and not pending:
                continue
            if not pending:
                pending_line = lineno
            if raw.rstrip().endswith("\\") and not _strip_comment(raw)[1]:
                pending += raw.rstrip()[:-1] + " "
                continue
            full = (pending + raw).strip()
            m = _HEREDOC.search(_strip_comment(full)[0])
            if m:
                heredoc, pending = m.group(1), full + "\n"
                continue
            pending = ""
            block_cmds.append(Command(full, pending_line, "sh", _strip_comment(full)[1]))
        # An ```output block right after the sh block (blank lines between at most) shows
        # the stdout of the block's last command.
        if n + 1 < len(blocks) and block_cmds:
            nlang, nfirst, nlines, _ = blocks[n + 1]
            between = all_lines[last : nfirst - 2]
            if nlang in _OUTPUT_LANGS and not any(x.strip() for x in between):
                block_cmds[-1].shown.extend(
                    x.strip() for x in nlines if x.strip() and "..." not in x and "\u2026" not in x
                )
        out.extend(block_cmds)
    return out


def _inline_commands(text: str) -> list[Command]:
    """Single-backtick code spans that are (or start like) a conv1d or make command."""
    # Blank out fenced blocks, keeping line numbers.
    lines = text.splitlines()
    for _lang, first, body, _last in _fences(text):
        for k in range(first - 2, first - 1 + len(body) + 1):
            if 0 <= k < len(lines):
                lines[k] = ""
    flat = "\n".join(lines)
    out: list[Command] = []
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", flat):
        span = " ".join(m.group(1).split())
        words = span.split()
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]
        if not words or words[0] not in {"conv1d", "make"}:
            continue
        line = flat.count("\n", 0, m.start()) + 1
        cmd = Command(span, line, "inline")
        cmd.fragment = _fragment_reason(span)
        out.append(cmd)
    return out


def _fragment_reason(span: str) -> str:
    """Why an inline span is a fragment of a command rather than one to run ("" if none)."""
    if "..." in span:
        return "holds '...' (a placeholder)"
    words = _drop_env(span.split())
    if len(words) <= 2:
        return "names a command, gives it no arguments"
    if words[0] == "make" and "-f" not in words:
        return "a make invocation without -f MAKEFILE (prose, not a command)"
    for words in _segments(span):
        words = _drop_env(words)
        if words[:1] != ["conv1d"]:
            continue
        sub = _subcommand(words)
        if sub is None:
            return "names no subcommand"
        rest = words[2:]
        try:  # (Click consumes the list it parses: give it a copy)
            ctx = sub.make_context(f"conv1d {words[1]}", list(rest), resilient_parsing=True)
        except click.UsageError:
            return ""  # broken, not a fragment: running it shows the error
        if any(h in rest for h in ("-h", "--help")):
            return ""
        for p in sub.params:
            if p.required and ctx.params.get(p.name) in (None, ()):
                return f"no {p.human_readable_name} (a fragment)"
    return ""


def _tokens(code: str) -> list[str]:
    lex = shlex.shlex(code, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = ""
    return list(lex)


def _segments(code: str) -> list[list[str]]:
    """The simple commands of a pipeline / list, as word lists (redirections kept as words)."""
    segs: list[list[str]] = [[]]
    for tok in _tokens(_strip_comment(code)[0]):
        if tok in _SEPARATORS:
            segs.append([])
        else:
            segs[-1].append(tok)
    return [s for s in segs if s]


def _drop_env(words: list[str]) -> list[str]:
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        words = words[1:]
    return words


def _subcommand(words: list[str]) -> click.Command | None:
    if len(words) < 2:
        return None
    with click.Context(cli) as ctx:
        return cli.get_command(ctx, words[1])


README_TEXT = README.read_text(encoding="utf-8")
SH_COMMANDS = _sh_commands(README_TEXT)
INLINE_COMMANDS = _inline_commands(README_TEXT)
ALL_COMMANDS = SH_COMMANDS + INLINE_COMMANDS
RUNNABLE = [c for c in ALL_COMMANDS if not c.fragment]


# --------------------------------------------------------------------------------------------
# Inputs and outputs of a command
# --------------------------------------------------------------------------------------------


def _pathlike(word: str) -> bool:
    if word in {"-", ""} or word.startswith(("-", "/dev/", ".", "$")) or "=" in word:
        return False
    if not _PATHLIKE.match(word):
        return False
    if "/" in word:
        return True
    ext = word.rsplit(".", 1)[-1].lower() if "." in word else ""
    return ext in _FILE_EXTENSIONS


def _strip_key(word: str) -> str:
    """``model.npz:encoder.conv`` -> ``model.npz``."""
    head, sep, _ = word.partition(":")
    return head if sep and _pathlike(head) else word


def _io(cmd: Command) -> tuple[list[str], list[str], list[str]]:
    """(inputs, outputs, mentioned): the paths a command reads and writes, as written in the
    README, and file names inside other words (``python -c "...load('enc.npz')"``), which are
    made first when an earlier command writes them but may as well be outputs."""
    inputs: list[str] = []
    outputs: list[str] = []
    mentioned: list[str] = []
    for words in _segments(cmd.code):
        words = _drop_env(words)
        prog = words[0] if words else ""
        positional_seen = 0
        i = 1
        while i < len(words):
            w = words[i]
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if w in _REDIRECTS or re.fullmatch(r"\d?>>?|\d?<", w):
                (inputs if "<" in w else outputs).append(nxt)
                i += 2
                continue
            if w in _OUTPUT_OPTIONS:
                outputs.append(nxt)
                i += 2
                continue
            if prog == "make" and "=" in w:
                var, _, value = w.partition("=")
                (outputs if var in _MAKE_OUTPUT_VARS else inputs).append(value)
                i += 1
                continue
            if prog == "conv1d" and i == 1:  # the subcommand
                i += 1
                continue
            if not w.startswith("-") or w == "-":
                positional_seen += 1
                if prog == "conv1d" and words[1] == "init" and positional_seen == 1:
                    outputs.append(w)  # init's LAYER_FILE is what it writes
                    i += 1
                    continue
            path = _strip_key(w)
            if _pathlike(path):
                inputs.append(path)
            else:
                mentioned += [m for m in _FILE_NAME.findall(w) if _pathlike(m)]
            i += 1

    def norm(paths: list[str]) -> list[str]:
        return [p.rstrip("/") for p in paths if p and p != "-" and not p.startswith("/dev/")]

    return norm(inputs), norm(outputs), norm(mentioned)


def _producer(path: str, before: Command) -> Command | None:
    """The last README command before ``before`` that writes ``path`` (or its folder)."""
    found = None
    for c in RUNNABLE:
        if c is before:
            break
        if c.line >= before.line:
            continue
        if _skip_reason(c):
            continue
        for out in _io(c)[1]:
            if path == out or path.startswith(out + "/"):
                found = c
    return found


def _skip_reason(cmd: Command) -> str:
    for words in _segments(cmd.code):
        if _drop_env(words)[:1] in (["pip"], ["pip3"]) or words[:3] == ["python", "-m", "pip"]:
            return "set-up command: installs the package with pip; the test runs the worktree"
    if re.match(r"on a remote cluster", cmd.comment):
        return "needs a remote Dask scheduler (tests/test_cluster.py runs one on loopback)"
    needs = re.match(r"needs\s+([\w.]+)", cmd.comment)
    if needs and importlib.util.find_spec(needs.group(1)) is None:
        return f"needs {needs.group(1)}, which is not installed"
    for words in _segments(cmd.code):
        prog = _drop_env(words)[:1]
        if (
            prog
            and prog[0] not in {"conv1d", "python", "python3"}
            and shutil.which(prog[0]) is None
        ):
            return f"{prog[0]} is not installed"
    return ""


# --------------------------------------------------------------------------------------------
# Fixtures: every placeholder input the README mentions
# --------------------------------------------------------------------------------------------


def _depthwise(weight_1ck: np.ndarray, **kw: object) -> Conv1d:
    c = weight_1ck.shape[0]
    return Conv1d.from_weights(weight_1ck, groups=c, padding="same", **kw)  # type: ignore[arg-type]


def _build_fixtures(d: Path) -> None:
    """Everything a README command reads that no earlier README command makes."""
    import soundfile as sf

    shutil.copytree(ROOT / "sample_data", d / "sample_data")
    shutil.copytree(ROOT / "examples", d / "examples")
    stereo, rate = sf.read(ROOT / "sample_data/stereo.wav", dtype="int16")
    # Audio placeholders: stereo 16-bit WAVs (shortened where several are filtered).
    for name in ("in.wav", "a.wav", "b.wav", "x.wav"):
        shutil.copy(ROOT / "sample_data/stereo.wav", d / name)
    # "A day of 64-channel sensor data", a few seconds of it.
    np.save(d / "day.npy", np.random.default_rng(5).standard_normal((64, 50000)).astype("float32"))
    (d / "recordings").mkdir()
    for name, part in (("a.wav", stereo[:12000]), ("b.wav", stereo[12000:24000])):
        sf.write(d / "recordings" / name, part, rate, subtype="PCM_16")
    # Layer files: lowpass.npz is the sample one; a.npz and b.npz chain 2 -> 2 -> 2.
    shutil.copy(ROOT / "sample_data/lowpass.npz", d / "lowpass.npz")
    _depthwise(np.full((2, 1, 5), 0.2, np.float32)).save(d / "a.npz")
    _depthwise(np.tile(np.array([0.25, 0.5, 0.25], np.float32), (2, 1, 1))).save(d / "b.npz")
    _depthwise(np.full((2, 1, 1), 4.0, np.float32)).save(d / "boost.npz")  # clips: +12 dB
    rng = np.random.default_rng(13)
    # A bare weight array (no conv1d_config), hyperparameters from the command line.
    np.savez(d / "plain_weights.npz", weight=rng.standard_normal((3, 2, 5)).astype(np.float32))
    np.save(d / "x.npy", rng.standard_normal((2, 1000)))
    # An exported PyTorch state_dict: numpy.savez("model.npz", **{k: v.numpy() ...}).
    state = {
        "encoder.conv.weight": rng.standard_normal((8, 2, 9)).astype(np.float32) * 0.1,
        "encoder.conv.bias": rng.standard_normal(8).astype(np.float32) * 0.1,
        "encoder.norm.weight": np.ones(8, np.float32),
        "decoder.conv.weight": rng.standard_normal((2, 8, 9)).astype(np.float32) * 0.1,
        "decoder.conv.bias": rng.standard_normal(2).astype(np.float32) * 0.1,
    }
    np.savez(d / "model.npz", **state)  # type: ignore[arg-type]
    # A sensor CSV with a time column, 100 Hz.
    t = np.arange(500) / 100.0
    acc = rng.standard_normal((500, 3)) * 0.1 + [0.0, 0.0, 9.81]
    rows = ["time,ax,ay,az"] + [
        ",".join(repr(float(v)) for v in (ti, *a)) for ti, a in zip(t, acc, strict=True)
    ]
    (d / "sensors.csv").write_text("\n".join(rows) + "\n")
    # SoX fir coefficients: '#' comment, whitespace-separated numbers.
    from scipy.signal import firwin

    taps = firwin(31, 0.2)
    (d / "taps.txt").write_text(
        "# 31-tap lowpass\n" + "\n".join(repr(float(v)) for v in taps) + "\n"
    )


def _missing_fixture(path: str, workdir: Path) -> bool:
    if any(ch in path for ch in "*?["):
        return not list(workdir.glob(path))
    return not (workdir / path).exists()


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("readme-fixtures")
    _build_fixtures(d)
    return d


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``conv1d`` on PATH that runs this checkout's code with this interpreter."""
    d = tmp_path_factory.mktemp("readme-bin")
    py = shlex.quote(sys.executable)
    for name, line in (
        ("conv1d", f'exec {py} -m conv1d_cli "$@"'),
        ("python", f'exec {py} "$@"'),  # a README `python -c ...` gets numpy and conv1d_cli
        ("python3", f'exec {py} "$@"'),
    ):
        wrapper = d / name
        wrapper.write_text(f"#!/bin/sh\n{line}\n")
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return d


def _env(bin_dir: Path, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    tmp.mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmp)
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    return env


def _bash(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _report(cmd: Command, res: subprocess.CompletedProcess[str], what: str) -> str:
    return (
        f"README.md line {cmd.line}: {what}\n"
        f"  command: {cmd.text}\n  exit status: {res.returncode}\n"
        f"--- stdout ---\n{res.stdout[-4000:]}\n--- stderr ---\n{res.stderr[-4000:]}"
    )


def _prepare(cmd: Command, workdir: Path, env: dict[str, str], seen: set[int]) -> None:
    """Check every input exists; run the earlier README commands that make the missing ones."""
    inputs, _outputs, mentioned = _io(cmd)
    for path in inputs + mentioned:
        if not _missing_fixture(path, workdir):
            continue
        maker = _producer(path, cmd)
        if maker is None and path not in inputs:
            continue  # only mentioned: perhaps something the command writes
        if maker is None and _expected_status(cmd) != 0:
            continue  # an example of a failure may well name a file that is not there
        if maker is None:
            pytest.fail(
                f"README.md line {cmd.line}: `{cmd.code}` reads {path!r}, which is neither a "
                f"fixture nor written by an earlier README command: add a fixture for {path} "
                f"to _build_fixtures() in tests/test_readme.py",
                pytrace=False,
            )
        if id(maker) in seen:
            continue
        seen.add(id(maker))
        _prepare(maker, workdir, env, seen)
        res = _bash(maker.text, workdir, env)
        if res.returncode != _expected_status(maker):
            pytest.fail(_report(maker, res, f"set-up for line {cmd.line} failed"), pytrace=False)


def _expected_status(cmd: Command) -> int:
    m = re.search(r"\bexits\s+(\d+)", cmd.comment)
    return int(m.group(1)) if m else 0


# --------------------------------------------------------------------------------------------
# Tests: shell commands
# --------------------------------------------------------------------------------------------


def _params(cmds: list[Command]) -> list[Any]:
    out: list[Any] = []
    for c in cmds:
        reason = _skip_reason(c)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


def test_readme_has_commands() -> None:
    """The extraction finds the README's commands (guards against a parser that finds none)."""
    assert len(SH_COMMANDS) >= 10, [c.text for c in SH_COMMANDS]
    assert any(c.source == "inline" for c in RUNNABLE)


@pytest.mark.parametrize("cmd", _params(RUNNABLE))
def test_readme_command_runs(
    cmd: Command, fixture_dir: Path, bin_dir: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(fixture_dir, workdir, symlinks=True)
    env = _env(bin_dir, tmp_path / "tmp")
    _prepare(cmd, workdir, env, set())

    res = _bash(cmd.text, workdir, env)

    expected = _expected_status(cmd)
    assert res.returncode == expected, _report(cmd, res, f"expected exit status {expected}")
    assert "Traceback" not in res.stderr, _report(cmd, res, "a traceback on stderr")
    prints = re.match(r"prints\s+(.+?)(?:,\s*then\b.*)?$", cmd.comment)
    if prints:
        first = res.stdout.splitlines()[0] if res.stdout else ""
        assert first.strip() == prints.group(1).strip(), _report(
            cmd, res, f"the README says it prints {prints.group(1)!r} first"
        )
    flat = " ".join(res.stdout.split())
    for shown in cmd.shown:
        for piece in (p.strip() for p in shown.split(";")):
            assert " ".join(piece.split()) in flat, _report(
                cmd, res, f"the README shows {piece!r} in its output"
            )
    if expected != 0:
        return
    for out in _io(cmd)[1]:
        assert (workdir / out).exists(), _report(cmd, res, f"{out} was not written")
        if out.endswith(".json"):
            _assert_json((workdir / out).read_text(), cmd, res, out)
    last = _drop_env(_segments(cmd.code)[-1])
    if last[:2] == ["conv1d", last[1]] and "--json" in last and not set(last) & _REDIRECTS:
        _assert_json(res.stdout, cmd, res, "stdout")


def _assert_json(text: str, cmd: Command, res: subprocess.CompletedProcess[str], what: str) -> None:
    try:
        json.loads(text)
    except ValueError as e:
        pytest.fail(
            _report(cmd, res, f"{what} is not the JSON --json promises: {e}"), pytrace=False
        )


# --------------------------------------------------------------------------------------------
# Tests: Python blocks
# --------------------------------------------------------------------------------------------

# Placeholder names of the README's Python blocks -> code that defines them.
PY_FIXTURES: dict[str, str] = {
    "x": "x = np.random.default_rng(0).standard_normal((2, 1000))",
    "weight": "weight = np.random.default_rng(1).standard_normal((4, 2, 5))",
    "bias": "bias = np.random.default_rng(2).standard_normal(4)",
    "layer": "layer = __import__('conv1d_cli').Conv1d.load('lowpass.npz')",
    "blocks": "blocks = [np.random.default_rng(3).standard_normal((2, 4096)) for _ in range(3)]",
    "model": textwrap.dedent(
        """\
        try:
            import torch
        except ImportError:  # duck-typed stand-in: from_torch never imports torch
            from types import SimpleNamespace as _NS
            _rng = np.random.default_rng(4)
            model = _NS(encoder=_NS(conv=_NS(
                weight=_rng.standard_normal((8, 2, 9)).astype(np.float32), bias=np.zeros(8,
                np.float32), stride=(2,), padding=(4,), dilation=(1,), groups=1,
                padding_mode="zeros")))
        else:
            class _Encoder(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = torch.nn.Conv1d(2, 8, 9, stride=2, padding=4)

            class _Model(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = _Encoder()

            torch.manual_seed(0)
            model = _Model()
        """
    ),
}


def _python_blocks() -> list[tuple[int, str]]:
    return [
        (first, "\n".join(body))
        for lang, first, body, _last in _fences(README_TEXT)
        if lang in {"python", "py"}
    ]


def _free_names(tree: ast.AST) -> list[str]:
    """Names the block loads before (or without) binding them itself."""
    imported: set[str] = set()
    first_store: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            imported.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            first_store[node.id] = min(first_store.get(node.id, 10**9), node.lineno)
    free: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            continue
        name = node.id
        if name in imported or hasattr(builtins, name) or name in free:
            continue
        if first_store.get(name, 10**9) > node.lineno:
            free.append(name)
    return free


def _shown_checks(source: str) -> list[str]:
    """``name = expr  # (2, 3)`` -> a shape check; ``# [[1, 2]]`` -> a value check."""
    checks = []
    for line in source.splitlines():
        code, comment = _strip_comment(line)
        m = re.match(r"^([A-Za-z_]\w*)\s*=", code)
        if not (m and comment):
            continue
        try:
            value = ast.literal_eval(comment.split("  ")[0].strip())
        except (ValueError, SyntaxError):
            continue
        name = m.group(1)
        if isinstance(value, tuple):
            checks.append(
                f"assert np.shape({name}) == {value!r}, "
                f"f'README: {name} has shape {{np.shape({name})}}, not {value!r}'"
            )
        elif isinstance(value, list):
            checks.append(
                f"assert np.allclose({name}, {value!r}), "
                f"f'README: {name} is {{np.asarray({name}).tolist()}}, not {value!r}'"
            )
    return checks


@pytest.mark.parametrize(
    "first, source", [pytest.param(f, s, id=f"python@L{f}") for f, s in _python_blocks()]
)
def test_readme_python_block_runs(
    first: int, source: str, fixture_dir: Path, bin_dir: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    shutil.copytree(fixture_dir, workdir, symlinks=True)
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = (
                [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            )
            for top in {str(n).split(".")[0] for n in names if n}:
                if top != "conv1d_cli" and importlib.util.find_spec(top) is None:
                    pytest.skip(f"README python block at line {first} needs {top} (not installed)")
    prelude = ["import numpy as np"]
    for name in _free_names(tree):
        if name not in PY_FIXTURES:
            pytest.fail(
                f"README.md python block at line {first} uses {name!r}, which it does not "
                f"define: add a fixture for {name} to PY_FIXTURES in tests/test_readme.py",
                pytrace=False,
            )
        prelude.append(PY_FIXTURES[name])
    script = "\n".join(prelude) + "\n# --- README ---\n" + source + "\n"
    script += "\n".join(_shown_checks(source)) + "\n"
    path = workdir / "readme_block.py"
    path.write_text(script)
    res = subprocess.run(
        [sys.executable, str(path)],
        cwd=workdir,
        env=_env(bin_dir, tmp_path / "tmp"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert res.returncode == 0, (
        f"README.md python block at line {first} failed (exit {res.returncode})\n"
        f"--- script ---\n{script}\n--- stdout ---\n{res.stdout[-3000:]}\n"
        f"--- stderr ---\n{res.stderr[-4000:]}"
    )


# --------------------------------------------------------------------------------------------
# Tests: --help and option drift
# --------------------------------------------------------------------------------------------


def _command_names() -> list[str]:
    with click.Context(cli) as ctx:
        return cli.list_commands(ctx)


@pytest.mark.parametrize("args", [[], *([name] for name in _command_names())], ids=" ".join)
def test_help_runs(args: list[str], bin_dir: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        ["conv1d", *args, "--help"],
        env=_env(bin_dir, tmp_path / "tmp"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("Usage: conv1d"), res.stdout[:200]


def _used_options() -> list[tuple[Command, str, str]]:
    """(command, subcommand, option) for every option word after ``conv1d SUB``."""
    used = []
    for cmd in ALL_COMMANDS:
        for words in _segments(cmd.code):
            words = _drop_env(words)
            if words[:1] != ["conv1d"] or len(words) < 2:
                continue
            for w in words[2:]:
                if re.match(r"^--?[A-Za-z][\w-]*(=.*)?$", w):
                    used.append((cmd, words[1], w.split("=")[0]))
    return used


def test_readme_options_exist() -> None:
    """Every ``--option`` (and ``-x``) a README command passes to ``conv1d SUB`` exists."""
    names = set(_command_names())
    problems = []
    for cmd, sub, opt in _used_options():
        if sub not in names:
            problems.append(f"line {cmd.line}: no command `conv1d {sub}`")
            continue
        with click.Context(cli) as ctx:
            command = cli.get_command(ctx, sub)
            assert command is not None
            known = {o for p in command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
        if opt not in known:
            problems.append(f"line {cmd.line}: `conv1d {sub}` has no option {opt} ({cmd.code})")
    assert not problems, "README uses options the CLI does not have:\n" + "\n".join(problems)


def test_readme_listing_names_every_command() -> None:
    """The README's command listing names exactly the CLI's subcommands."""
    listed = {
        m.group(1)
        for _lang, _first, body, _last in _fences(README_TEXT)
        for line in body
        if (m := re.match(r"^conv1d (\w+)\s{2,}\S", line))
    }
    assert listed == set(_command_names())
