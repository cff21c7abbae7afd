"""Atomic file output: write to a temporary sibling, rename into place on success.

A failed run (exception, Ctrl-C, SIGTERM turned into an exception by the CLI)
never leaves a partial file at the target path, so a failed ``make`` target
never looks done.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from conv1d_cli.errors import ConfigError, DataFileError

__all__ = ["atomic_path", "check_not_same_file"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; publish it only if the block succeeds.

    The temporary file keeps ``target``'s extension (libraries that pick a
    format from the name still see the right one). On any exception it is
    removed and the exception propagates; on success it is fsynced and renamed
    over ``target`` with :func:`os.replace`.

    Parameters
    ----------
    target : path-like
        Final path.
    overwrite : bool
        If false, refuse (``DataFileError``) when ``target`` already exists.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(out) as tmp:
    ...     _ = tmp.write_text("done")
    >>> out.read_text()
    'done'
    """
    target = Path(target)
    if not overwrite and target.exists():
        raise DataFileError(f"{target}: already exists (use --force to overwrite)")
    directory = target.parent
    if not directory.is_dir():
        raise DataFileError(f"{target}: output directory {str(directory)!r} does not exist")
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=directory
        )
    except OSError as e:
        raise DataFileError(f"{target}: cannot write to {str(directory)!r}: {e.strerror}") from e
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if target.exists():
            with contextlib.suppress(OSError):
                os.chmod(tmp, os.stat(target).st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def check_not_same_file(
    output: str | os.PathLike[str], inputs: list[str | os.PathLike[str]]
) -> None:
    """Refuse an output that is one of the inputs (also via symlinks or other spellings).

    ``-`` (stdin/stdout) never clashes.

    Examples
    --------
    >>> check_not_same_file("-", ["-"])
    """
    if str(output) == "-":
        return
    out = Path(output)
    for source in inputs:
        if str(source) == "-":
            continue
        src = Path(source)
        same = out.resolve() == src.resolve()
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(out, src)
        if same:
            raise ConfigError(
                f"output {str(output)!r} is the same file as input {str(source)!r}; "
                f"refusing to overwrite an input"
            )
