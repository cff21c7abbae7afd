"""Typed errors raised by the conv1d library.

Every error is a ``ValueError`` subclass so that callers who already catch
``ValueError`` keep working. The CLI turns them into ``Error: ...`` lines in one
place (``conv1d_cli.cli._common``): :class:`ConfigError` is a wrong invocation
(exit 2), the others are bad data or a failed run (exit 1).
"""

from __future__ import annotations

__all__ = [
    "Conv1dError",
    "ConfigError",
    "ShapeError",
    "DataFileError",
    "FormatError",
    "OutputExistsError",
    "BatchError",
    "PipeClosedError",
]


class Conv1dError(ValueError):
    """Base class of every error conv1d raises on purpose."""


class ConfigError(Conv1dError):
    """A hyperparameter or option value is invalid on its own."""


class ShapeError(Conv1dError):
    """An array or signal does not fit the layer (channels, length, padding limits)."""


class DataFileError(Conv1dError):
    """A file could not be read or written, or it holds malformed data."""


class OutputExistsError(DataFileError):
    """An output file already exists and overwriting was not allowed (``overwrite=False``).

    A separate class so the CLI can name its own switch (``--force``) in the message.
    """


class PipeClosedError(DataFileError):
    """The reader of a pipe output went away (``... -o - | head -c 100``).

    Not a failure of the data: a Unix filter whose reader stops early is killed by
    SIGPIPE, and the CLI exits the same way (status 141, no message). Only what the
    reader took was written.
    """


class FormatError(ConfigError, DataFileError):
    """The format of a path cannot be told (unknown extension, or ``-`` without a format).

    It is both a :class:`ConfigError` (the fix is an explicit format, so the CLI exits 2)
    and a :class:`DataFileError` (the file name is what cannot be used). The message says
    "give the format explicitly" without naming an option: the library does not know
    which one the caller has; :func:`conv1d_cli.cli._common.reported_errors` adds it.
    """


class BatchError(DataFileError):
    """Some files of a batch failed (``keep_going=True``); the others were written.

    Attributes
    ----------
    failures : list of (str, Conv1dError)
        Each failed input and its error, in input order.
    total : int
        How many inputs the batch had.
    """

    def __init__(self, failures: list[tuple[str, Conv1dError]], total: int) -> None:
        self.failures = failures
        self.total = total
        names = ", ".join(source for source, _ in failures)
        super().__init__(
            f"{len(failures)} of {total} input{'s' if total != 1 else ''} failed: {names}"
        )
