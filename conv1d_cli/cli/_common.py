"""What every subcommand shares: turning library errors into Click errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from conv1d_cli.errors import ConfigError, Conv1dError

__all__ = ["reported_errors"]


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Translate library errors: a bad option is exit 2, bad data or a failed run exit 1.

    Anything else is a bug and propagates as a traceback.
    """
    try:
        yield
    except ConfigError as e:
        raise click.UsageError(str(e)) from e
    except Conv1dError as e:
        raise click.ClickException(str(e)) from e
