"""Opening signal inputs: :func:`open_reader`, :func:`probe`, :func:`read_signal`.

The format comes from :func:`~conv1d_cli.io.formats.detect_format`; each format's
reader lives in its module (:mod:`~conv1d_cli.io.audiofile`,
:mod:`~conv1d_cli.io.csvfile`, :mod:`~conv1d_cli.io.npyfile`) and hands out
``(C, L)`` blocks (``(N, C, L)`` for a batched NPY). ``-`` is stdin; see
:mod:`conv1d_cli.io.pipes` for what pipes can hold.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from conv1d_cli.errors import ConfigError, DataFileError, shown_path
from conv1d_cli.io.audiofile import _AudioReader
from conv1d_cli.io.base import READ_FRAMES, SignalReader
from conv1d_cli.io.formats import Signal, SignalInfo, _check_dtype, detect_format
from conv1d_cli.io.npyfile import _NpyReader

__all__ = ["open_reader", "probe", "read_signal"]


def open_reader(
    path: str | os.PathLike[str],
    format: str | None = None,
    dtype: Any = "float64",
    *,
    columns: Sequence[str] | None = None,
    time_column: str | None = None,
) -> SignalReader:
    """Open a signal for block-wise reading with bounded memory.

    Parameters
    ----------
    path : str or path-like
        File, or ``"-"`` for stdin (then ``format`` is required).
    format : str, optional
        Overrides the extension (see :func:`~conv1d_cli.io.formats.detect_format`).
    dtype : {"float64", "float32"}
        Sample type of the blocks returned.
    columns : sequence of str, optional
        CSV only: the columns read as channels, in this order (header names, or 1-based
        numbers); the others are not read. Default: every column but the time column.
    time_column : str, optional
        CSV only: a column holding time, not a channel (a header name or a 1-based
        number); ``"auto"`` takes a header named ``time``, ``timestamp`` or ``t`` (any
        case, a unit such as ``time (s)`` allowed) if there is one. The reader leaves it
        out of ``channels``; ``reader.time_track()`` gives its values
        (:class:`~conv1d_cli.io.csvfile.TimeTrack`). Default: no time column.

    Returns
    -------
    SignalReader
        ``.info``, ``.seekable``, ``.read(n)``, ``.head(n)``, ``.tail(n)``; a context manager.

    Raises
    ------
    DataFileError
        Missing, empty, unreadable or malformed input.
    ConfigError
        Unknown format, bad ``dtype``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "x.npy"
    >>> np.save(path, np.arange(10.0).reshape(2, 5))
    >>> with open_reader(path) as r:
    ...     r.info.channels, r.read(3).shape, r.read(3).shape, r.read(3).shape
    (2, (2, 3), (2, 2), (2, 0))
    >>> workdir.cleanup()
    """
    text = os.fspath(path)
    if text != "-" and not os.path.lexists(text):
        # Before the format: a missing file is that, whatever its extension (as cat says).
        raise DataFileError(f"{text}: no such file")
    if text != "-" and os.path.isdir(text):
        raise DataFileError(f"{text}: is a directory, expected a signal file")
    fmt = detect_format(text, format)
    dt = _check_dtype(dtype)
    if fmt == "csv":
        # Here, not at the top: the CSV module (csv, shlex, its patterns) costs
        # start-up time that audio and NPY runs need not pay.
        from conv1d_cli.io.csvfile import _CsvReader

        return _CsvReader(text, dt, columns, time_column)
    if columns is not None or (time_column is not None and time_column != "auto"):
        raise ConfigError(
            f"{{parameter}} applies to CSV inputs only; {text} is {fmt.upper()}",
            parameter="columns" if columns is not None else "time_column",
        )
    if fmt == "npy":
        return _NpyReader(text, dt)
    return _AudioReader(text, fmt, dt)


def probe(path: str | os.PathLike[str], format: str | None = None) -> SignalInfo:
    """Return a signal's :class:`~conv1d_cli.io.formats.SignalInfo` without reading its samples.

    A CSV is scanned to count its rows. ``probe("-", fmt)`` consumes stdin; use
    ``open_reader("-", fmt).info`` when the data is needed too.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "batch.npy"
    >>> np.save(path, np.zeros((4, 2, 100), np.float32))
    >>> info = probe(path)
    >>> info.format, info.batch, info.channels, info.frames, info.sample_rate
    ('npy', 4, 2, 100, None)
    >>> workdir.cleanup()
    """
    with open_reader(path, format) as reader:
        return reader.info


def read_signal(
    path: str | os.PathLike[str], format: str | None = None, dtype: Any = "float64"
) -> Signal:
    """Read a whole signal into memory as ``(C, L)`` (or ``(N, C, L)`` for a batched NPY).

    ``"-"`` reads stdin to its end. For a pipe (``info.frames is None``) the returned
    ``info.frames`` is the length actually read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "acc.csv"
    >>> _ = path.write_text("# sensor A\\nx;y\\n1.5;2\\n-3;4e-1\\n")
    >>> sig = read_signal(path)
    >>> sig.data
    array([[ 1.5, -3. ],
           [ 2. ,  0.4]])
    >>> sig.info.column_names
    ('x', 'y')
    >>> workdir.cleanup()
    """
    with open_reader(path, format, dtype) as reader:
        info = reader.info
        if info.frames is not None:
            data = reader.read(info.frames)
            if data.shape[-1] < info.frames:  # e.g. a truncated audio file
                rest = [data]
                while (block := reader.read(READ_FRAMES)).shape[-1]:
                    rest.append(block)
                data = np.concatenate(rest, axis=-1)
        else:
            blocks = []
            while (block := reader.read(READ_FRAMES)).shape[-1]:
                blocks.append(block)
            data = np.concatenate(blocks, axis=-1) if blocks else reader._empty()
            if data.shape[-1] == 0:
                raise DataFileError(f"{shown_path(info.path)}: input has no samples")
            info = dataclasses.replace(info, frames=int(data.shape[-1]))
    return Signal(data, info)
