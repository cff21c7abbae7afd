"""The ``conv1d`` command line.

Each subcommand lives in its own module and is imported only when it runs
(or when ``--help`` lists it); those modules import NumPy and friends inside
the command body, so ``conv1d --help`` and ``conv1d shape`` start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from conv1d_cli._version import __version__
from conv1d_cli.cli._common import guard_closed_streams, signals_exit

__all__ = ["cli"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

# command name -> "module:attribute"
_COMMANDS = {
    "apply": "conv1d_cli.cli.cmd_apply:apply_",
    "init": "conv1d_cli.cli.cmd_init:init",
    "inspect": "conv1d_cli.cli.cmd_inspect:inspect_",
    "shape": "conv1d_cli.cli.cmd_shape:shape",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Before Click parses anything: a usage error is already a message to stderr.
        guard_closed_streams()
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        # Inside Click's main, which would turn Ctrl-C into "Aborted!" with status 1:
        # every command gets one Error: line and 128 + N instead.
        with signals_exit():
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="conv1d")
def cli() -> None:
    """Filter signals with 1-D convolution layers that behave exactly like
    PyTorch's torch.nn.Conv1d.

    \b
    Example:
        conv1d init lowpass.npz --design lowpass --cutoff 1000 --sample-rate 48000 --taps 101
        conv1d apply -w lowpass.npz in.wav -o out.wav
        conv1d shape --length 16000 --kernel-size 9 --stride 2
    """
    # Before any subcommand imports NumPy, which loads BLAS and fixes its thread
    # count for good: see conv1d_cli.threads (apply refines it with --threads/--jobs).
    from conv1d_cli import threads

    threads.configure(threads.decide())
