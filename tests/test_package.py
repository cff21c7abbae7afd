"""Packaging: the console script's --help/--version, python -m, and lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

import conv1d_cli
from conv1d_cli.cli import cli


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_package_help(flag):
    result = CliRunner().invoke(cli, [flag], prog_name="conv1d")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: conv1d [OPTIONS] COMMAND [ARGS]...")
    assert "torch.nn.Conv1d" in result.stdout
    assert "-h, --help" in result.stdout and "--version" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_package_version(flag):
    result = CliRunner().invoke(cli, [flag], prog_name="conv1d")
    assert result.exit_code == 0
    assert result.stdout == f"conv1d, version {conv1d_cli.__version__}\n"
    assert result.stderr == ""


def test_package_version_is_the_distribution_version():
    from importlib.metadata import version

    assert conv1d_cli.__version__ == version("conv1d-cli")


def test_package_unknown_option_exits_2():
    result = CliRunner().invoke(cli, ["--frobnicate"], prog_name="conv1d")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Error: No such option '--frobnicate'." in result.stderr


def test_package_python_dash_m():
    proc = subprocess.run(
        [sys.executable, "-m", "conv1d_cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: conv1d ")
    assert proc.stderr == ""


def _imported_after(statement: str, candidates: list[str]) -> list[str]:
    """Which of ``candidates`` are in sys.modules after running ``statement`` in a fresh Python."""
    report = f"print(json.dumps([m for m in {candidates!r} if m in sys.modules]))"
    code = f"import sys, json\n{statement}\n{report}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_package_core_imports_neither_click_nor_soundfile():
    assert (
        _imported_after("import conv1d_cli.core, conv1d_cli.layer", ["click", "soundfile", "torch"])
        == []
    )


def test_package_import_is_lazy():
    heavy = ["numpy", "scipy", "scipy.signal", "click", "soundfile", "torch"]
    assert _imported_after("import conv1d_cli", heavy) == []
    assert _imported_after("import conv1d_cli.shapes, conv1d_cli.errors", heavy) == []
    # Touching the NumPy API loads NumPy, still not scipy.signal.
    assert _imported_after("from conv1d_cli import conv1d, Conv1d", ["numpy", "scipy.signal"]) == [
        "numpy"
    ]


def test_package_help_does_not_import_numpy():
    statement = (
        "from conv1d_cli.cli import cli\n"
        "try:\n    cli(['--help'], prog_name='conv1d')\nexcept SystemExit:\n    pass"
    )
    assert _imported_after(statement, ["numpy", "scipy", "soundfile"]) == []


def test_package_public_api():
    for name in conv1d_cli.__all__:
        assert getattr(conv1d_cli, name) is not None
    assert issubclass(conv1d_cli.Conv1dError, ValueError)
    for sub in ("ConfigError", "ShapeError", "DataFileError"):
        assert issubclass(getattr(conv1d_cli, sub), conv1d_cli.Conv1dError)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        conv1d_cli.nope  # noqa: B018


def _cli_statement(args: list[str]) -> str:
    return (
        "from conv1d_cli.cli import cli\n"
        f"try:\n    cli({args!r}, prog_name='conv1d')\nexcept SystemExit:\n    pass"
    )


@pytest.mark.parametrize(
    "args", [["--help"], ["apply", "--help"], ["shape", "--length", "100", "--kernel-size", "3"]]
)
def test_package_help_and_shape_never_import_dask(args):
    """Dask is an optional extra and a heavy import: only --scheduler and Dask arrays load it."""
    assert _imported_after(_cli_statement(args), ["dask", "distributed"]) == []


def test_package_layer_and_pipeline_never_import_dask():
    statement = (
        "import conv1d_cli.layer, conv1d_cli.pipeline, conv1d_cli.cluster, conv1d_cli.npyarray"
    )
    assert _imported_after(statement, ["dask", "distributed"]) == []


def _import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports when it is imported (top level, not for types).

    Read from the source: imports in function bodies (made lazily, for start-up time)
    and under ``if TYPE_CHECKING:`` (types only) are not followed. A package's
    ``__init__`` that Python runs before a submodule is not an edge of its own.
    """
    import ast
    from pathlib import Path

    root = Path(conv1d_cli.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path

    def top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    yield from top_level(node.body)
                yield from top_level(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, *(h.body for h in node.handlers), node.finalbody):
                    yield from top_level(block)
            else:
                yield node

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, set())
        for node in top_level(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module in modules and not node.level:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_package_has_no_import_cycles():
    graph = _import_graph()
    assert (
        "conv1d_cli.cli.cmd_apply" in graph
        and "conv1d_cli.io.layerfile" in graph["conv1d_cli.layer"]
    )
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_package_library_never_imports_the_cli():
    graph = _import_graph()
    for module, imported in graph.items():
        if not module.startswith(("conv1d_cli.cli", "conv1d_cli.__main__")):
            assert not any(m.startswith("conv1d_cli.cli") for m in imported), module


def test_package_plain_apply_imports_only_what_it_runs(tmp_path):
    """A plain one-file audio run loads no worker, CSV, cluster, progress or OpenSSL modules."""
    import numpy as np
    import soundfile as sf

    from conv1d_cli import Conv1d
    from conv1d_cli.io.layerfile import save_layer

    src, dst, layer = tmp_path / "in.wav", tmp_path / "out.wav", tmp_path / "l.npz"
    sf.write(src, np.zeros((480, 2), np.float32), 48000, subtype="PCM_16")
    save_layer(Conv1d.from_weights(np.full((2, 1, 3), 1 / 3), groups=2, padding="same"), layer)
    args = ["apply", "-q", "-w", str(layer), str(src), "-o", str(dst)]
    lazy = [
        "multiprocessing",
        "concurrent.futures",
        "logging",
        "conv1d_cli.io.csvfile",
        "csv",
        "conv1d_cli.cluster",
        "conv1d_cli.cli._progress",
        "secrets",
        "scipy",
    ]
    assert _imported_after(_cli_statement(args), lazy) == []
    assert dst.exists()
