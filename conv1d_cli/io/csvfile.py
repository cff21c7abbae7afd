"""CSV signals: rows are time, columns channels.

- Reading: UTF-8 (a BOM is dropped); blank lines and lines starting with ``#`` are
  skipped anywhere; the delimiter is the first of comma, semicolon, tab, whitespace
  that splits the first 20 rows into the same number (> 1) of columns; the first row
  is a header when all its cells are column names by the rule of
  :mod:`conv1d_cli.cells` (a mistyped number such as ``−0.5`` is an error naming the
  cell, never a name). Numbers with a decimal comma (``-0,06786;0,1``) are refused,
  naming the fix, rather than split into columns at their commas.
- Columns: ``columns`` picks the channels, ``time_column`` a column of time stamps
  read apart from the channels (:class:`TimeTrack`).
- Writing: numbers with ``%r`` (shortest exact text). A CSV output keeps a CSV
  input's delimiter, quoting and line ending (:class:`~conv1d_cli.io.formats.CsvDialect`);
  otherwise ``.tsv`` outputs use tabs, others commas.
- On a pipe the text is buffered whole (:func:`conv1d_cli.io.pipes.pipe_limit`); a
  CSV output to a pipe is written as it is computed.
"""

from __future__ import annotations

import csv
import io
import math
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import numpy as np

from conv1d_cli import cells
from conv1d_cli.errors import ConfigError, DataFileError, shown_path
from conv1d_cli.io.base import SignalReader, _ByteWriter, _check_input_path, _narrowed
from conv1d_cli.io.formats import CsvDialect, SignalInfo
from conv1d_cli.io.pipes import _read_all_stream, is_stream

__all__ = ["TIME_NAMES", "TimeTrack"]

_CSV_CHUNK: Final = 8192  # lines parsed per vectorised chunk

_DELIMITERS: Final = (",", ";", "\t", None)  # None = runs of whitespace


def _split(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    if '"' not in line:
        # what csv.reader gives for a line without quotes, without its 128 KiB field
        # limit (tried with the wrong delimiter, a wide row is one huge field)
        return line.split(delimiter)
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except csv.Error:  # a quoted field over csv's limit: no number, so one bad cell
        return [line]


_CSV_READ_BYTES: Final = 1 << 20  # text read per batch of lines

# Longest CSV line accepted, in characters: about 600,000 columns of 25-character numbers.
# A longer "line" is a binary file or a stream without newlines, not a row of samples.
_CSV_MAX_LINE: Final = 16 << 20


@dataclass
class _Lines:
    """Data lines of a CSV with their 1-based line numbers in the file."""

    numbers: list[int]
    lines: list[str]

    def __len__(self) -> int:
        return len(self.lines)

    def cut(self, n: int) -> _Lines:
        """Remove and return the first ``n`` lines."""
        head = _Lines(self.numbers[:n], self.lines[:n])
        del self.numbers[:n], self.lines[:n]
        return head


def _line_batches(opener: Callable[[], IO[str]], path: str) -> Iterator[_Lines]:
    """Yield the lines that are neither blank nor ``#`` comments, about 1 MiB at a time.

    ``readlines(hint)`` splits in C; only the comment filter is a comprehension.
    """
    with opener() as fh:
        base = 1
        while True:
            try:
                raw = fh.readlines(_CSV_READ_BYTES)
            except UnicodeDecodeError as e:
                raise DataFileError(
                    f"{shown_path(path)}: not a UTF-8 text (CSV) file ({e.reason})"
                ) from e
            if not raw:
                return
            if max(map(len, raw)) > _CSV_MAX_LINE:
                number = base + next(i for i, line in enumerate(raw) if len(line) > _CSV_MAX_LINE)
                raise DataFileError(
                    f"{shown_path(path)}: line {number} is longer than {_CSV_MAX_LINE >> 20} MiB, "
                    f"the limit for one CSV row (about 600,000 columns); is it a CSV file?"
                )
            keep = [i for i, line in enumerate(raw) if (t := line.lstrip()) and t[0] != "#"]
            lines = raw if len(keep) == len(raw) else [raw[i] for i in keep]
            yield _Lines([base + i for i in keep], lines)
            base += len(raw)


@dataclass(frozen=True)
class _CsvLayout:
    delimiter: str | None
    width: int
    header: tuple[str, ...] | None
    header_line: int | None
    quote_header: bool = False
    quote_numbers: bool = False


# A number written with a decimal comma (German, French, ... locales): -0,06786 or 1,5e-3.
_DECIMAL_COMMA: Final = re.compile(r'"?\s*[+-]?[0-9]+,[0-9]+(?:[eE][+-]?[0-9]+)?\s*"?', re.ASCII)

_INTEGER: Final = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _decimal_comma(lines: list[str]) -> tuple[int, str, str | None] | None:
    """Find numbers written with a decimal comma: ``(index, cell, column separator)``.

    Read with '.' as the decimal mark, such a file splits every number into two
    columns at the comma (``-0,06786;0,1`` -> ``-0``, ``06786;0``, ``1``), and a
    one-column file would silently become two channels. Two shapes are recognised:

    - columns separated by ``;``, tab or spaces whose cells are all numbers, some with
      a decimal comma (``-0,06786;0,1``, ``0,5<TAB>1``, a one-column ``0,25``); a first
      line of names is skipped;
    - a file that splits on ``,`` into two integer columns everywhere, where the first
      is ``-0`` or the second has a leading zero (``-0,5``, ``0,06786``): a genuine
      integer column has neither. (A one-column ``0,5`` / ``1,25`` file is
      indistinguishable from two integer columns and is read as such.)

    Examples
    --------
    >>> _decimal_comma(["t;x", "-0,06786;0,1"]), _decimal_comma(["0,5 1,5", "1 2"])
    ((1, '-0,06786', ';'), (0, '0,5', None))
    >>> _decimal_comma(["0,06786", "1,5"]), _decimal_comma(["1,2", "3,4"])
    ((0, '0,06786', None), None)
    >>> _decimal_comma(["1.5;2", "3;4,5e-3"]), _decimal_comma(["0.5,1", "2,3"])
    ((1, '4,5e-3', ';'), None)
    """
    for sep in (";", "\t", None):
        rows = [[cell.strip() for cell in _split(line, sep)] for line in lines]
        if all(len(row) < 2 for row in rows):
            continue  # one column: '1,2' may as well be two integers (see below)
        start = 1 if rows and all(cells.is_name(c) for c in rows[0]) else 0
        first = None
        for index, row in enumerate(rows[start:], start):
            for cell in row:
                if _DECIMAL_COMMA.fullmatch(cell):
                    first = first or (index, cell)
                elif not cells.is_number(cell):
                    first = None
                    break
            else:
                continue
            break
        else:
            if first is not None:
                return first[0], first[1], sep
    pairs = [line.split(",") for line in lines]
    if pairs and all(len(p) == 2 and all(_INTEGER.fullmatch(c.strip()) for c in p) for p in pairs):
        for index, (whole, fraction) in enumerate(pairs):
            digits = fraction.strip()
            if whole.strip() == "-0" or (len(digits) > 1 and digits[0] == "0"):
                return index, lines[index].strip(), None
    return None


def _decimal_comma_error(path: str, line: int, cell: str, sep: str | None) -> DataFileError:
    columns = {";": "';' between columns", "\t": "tabs between columns"}.get(
        sep or "", "one column, or spaces between columns"
    )
    pandas_sep = {";": ";", "\t": "\\t"}.get(sep or "", ",")

    name = "in.csv" if is_stream(path) else path
    fixed = str(Path(name).with_name(Path(name).stem + "-dot.csv"))
    return DataFileError(
        f"{shown_path(path)}: line {line}: {cell!r} looks like a number with a decimal comma "
        f"({columns}); conv1d reads '.' as the decimal mark and would split it into two "
        f"columns. Convert the decimal commas first, e.g. "
        f"tr ',' '.' < {shlex.quote(name)} > {shlex.quote(fixed)} "
        f"(sed 's/,/./g' does the same), or with pandas: "
        f"pandas.read_csv({name!r}, sep='{pandas_sep}', decimal=',')"
        f".to_csv({fixed!r}, index=False)"
    )


def _detect_delimiter(lines: list[str]) -> str | None:
    """Comma, semicolon, tab or whitespace: the first giving the same width > 1 everywhere.

    If none does, the first of those characters found at all (so a ragged row is reported
    as such), else whitespace (a single column).

    Examples
    --------
    >>> _detect_delimiter(["a;b", "1,5;2"]), _detect_delimiter(["1 2", "3  4"])
    (';', None)
    >>> _detect_delimiter(["x", "1,2"]), _detect_delimiter(["0.5", "7"])
    (',', None)
    """
    for delimiter in _DELIMITERS:
        widths = {len(_split(line, delimiter)) for line in lines}
        if len(widths) == 1 and widths.pop() > 1:
            return delimiter
    for delimiter in _DELIMITERS[:-1]:
        if any(delimiter in line for line in lines):
            return delimiter
    return None


def _csv_layout(path: str, sample: _Lines) -> _CsvLayout:
    """Detect delimiter and header from the first content lines."""
    if not sample:
        raise DataFileError(f"{shown_path(path)}: CSV has no data rows")
    lines = [line.rstrip("\r\n") for line in sample.lines]
    found = _decimal_comma(lines)
    if found is not None:
        index, cell, sep = found
        raise _decimal_comma_error(path, sample.numbers[index], cell, sep)
    chosen = _detect_delimiter(lines)
    first = [cell.strip() for cell in _split(lines[0], chosen)]
    header: tuple[str, ...] | None = None
    header_line: int | None = None
    try:
        named = cells.is_header(first)
    except cells.FieldError as e:
        raise DataFileError(f"{shown_path(path)}: line {sample.numbers[0]}, {e}") from e
    if named:
        header = tuple(first)
        header_line = sample.numbers[0]
        if len(sample) == 1:
            raise DataFileError(f"{shown_path(path)}: CSV has a header row but no data rows")
    # The first data row sets the channel count: a bad cell there (a trailing comma's
    # empty cell) is named now, before anyone reports a wrong number of channels.
    row = 0 if header is None else 1
    for column, cell in enumerate(_split(lines[row], chosen), 1):
        if not cells.is_number(cell):
            raise _bad_cell(path, sample.numbers[row], column, cell)
    quote_header = header is not None and '"' in lines[0]
    return _CsvLayout(chosen, len(first), header, header_line, quote_header, '"' in lines[row])


def _line_end(head: str) -> str:
    """``"\\r\\n"`` when the first line of ``head`` ends so, else ``"\\n"``."""
    end = head.find("\n")
    return "\r\n" if end > 0 and head[end - 1] == "\r" else "\n"


def _bad_cell(path: str, line: int, column: int, cell: str) -> DataFileError:
    return DataFileError(
        f"{shown_path(path)}: line {line}, column {column}: expected a number, "
        f"found {cells.describe(cell)}"
    )


#: Header names read as a time column by ``time_column="auto"`` (any case, unit allowed).
TIME_NAMES: Final = ("time", "timestamp", "t")


def _column_index(
    path: str, parameter: str, wanted: str, header: tuple[str, ...] | None, width: int
) -> int:
    """0-based index of column ``wanted``: a header name, else a 1-based number.

    ``parameter`` is the keyword ``wanted`` was given as (``"columns"``, ...).
    """
    text = wanted.strip()
    if header is not None:
        for exact in (True, False):
            for i, name in enumerate(header):
                if (name == text) if exact else (name.casefold() == text.casefold()):
                    return i
    if re.fullmatch(r"[0-9]+", text) and 1 <= int(text) <= width:
        return int(text) - 1
    names = f"names {', '.join(map(repr, header))} or " if header is not None else ""
    raise DataFileError(
        f"{shown_path(path)}: {{parameter}} {wanted!r}: no such column; expected {names}"
        f"a number from 1 to {width}",
        parameter=parameter,
    )


def _select_columns(
    path: str,
    layout: _CsvLayout,
    columns: Sequence[str] | None,
    time_column: str | None,
) -> tuple[list[int], int | None, bool]:
    """Channel columns, time column (0-based) and whether the time column was recognised."""
    width, header = layout.width, layout.header
    time_index: int | None = None
    detected = False
    if time_column == "auto":
        if header is not None:
            for i, name in enumerate(header):
                bare = re.sub(r"\s*[(\[].*$", "", name).strip().casefold()
                if bare in TIME_NAMES:
                    time_index, detected = i, True
                    break
    elif time_column is not None:
        time_index = _column_index(path, "time_column", time_column, header, width)
    if columns is not None:
        chosen = [_column_index(path, "columns", c, header, width) for c in columns]
        if time_index is not None and time_index in chosen:
            if detected:
                time_index, detected = None, False  # asked for as a channel: it is one
            else:
                raise ConfigError(
                    f"{{parameter}} and {{parameter:time_column}} both name column "
                    f"{time_index + 1}{'' if header is None else f' ({header[time_index]!r})'}",
                    parameter="columns",
                )
        if len(set(chosen)) != len(chosen):
            raise ConfigError(
                f"{{parameter}} names a column twice: {','.join(columns)}",
                parameter="columns",
                path=path,
            )
    else:
        chosen = [i for i in range(width) if i != time_index]
    if not chosen:
        raise DataFileError(
            f"{shown_path(path)}: no column left to filter (its only column is the time column)"
        )
    return chosen, time_index, detected


class _CsvReader(SignalReader):
    def __init__(
        self,
        path: str,
        dtype: np.dtype[Any],
        columns: Sequence[str] | None = None,
        time_column: str | None = None,
    ) -> None:
        if is_stream(path):  # read once: a second open of a pipe would find it drained
            try:
                text = _read_all_stream(path).decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise DataFileError(f"{shown_path(path)}: not UTF-8 text (CSV) ({e.reason})") from e

            def opener() -> IO[str]:
                return io.StringIO(text, newline=None)

            line_end = _line_end(text[:65536])
        else:
            _check_input_path(path)

            def opener() -> IO[str]:
                return open(path, encoding="utf-8-sig", newline=None)

            # Universal newlines hide the line ending from the text: look at the bytes.
            with open(path, "rb") as raw:
                line_end = _line_end(raw.read(65536).decode("latin-1"))

        self._path = path
        self._opener: Callable[[], IO[str]] = opener
        sample = _Lines([], [])
        # one scan: the layout from the first 20 rows, and the row count (no parsing)
        rows = 0
        for batch in _line_batches(opener, path):
            if len(sample) < 20:
                missing = 20 - len(sample)
                sample.numbers += batch.numbers[:missing]
                sample.lines += batch.lines[:missing]
            rows += len(batch)
        self._layout = layout = _csv_layout(path, sample)
        chosen, time_index, detected = _select_columns(path, layout, columns, time_column)
        # None when every column is a channel in file order: no copy per block.
        self._chosen = None if chosen == list(range(layout.width)) else chosen
        self._time_index = time_index
        time_name = None
        if time_index is not None:
            header = layout.header
            time_name = header[time_index] if header is not None else f"column {time_index + 1}"
        info = SignalInfo(
            path=path,
            format="csv",
            subtype=None,
            sample_rate=None,
            channels=len(chosen),
            frames=rows - (1 if layout.header is not None else 0),
            column_names=None if layout.header is None else tuple(layout.header[i] for i in chosen),
            time_column=time_name,
            time_detected=detected,
            csv_dialect=CsvDialect(
                " " if layout.delimiter is None else layout.delimiter,
                layout.quote_header,
                layout.quote_numbers,
                line_end,
            ),
        )
        super().__init__(info, dtype, True)
        self._batches = self._data_batches()
        self._pending = _Lines([], [])

    def _data_batches(self) -> Iterator[_Lines]:
        for batch in _line_batches(self._opener, self._path):
            if batch.numbers and batch.numbers[0] == self._layout.header_line:
                batch.cut(1)
            yield batch

    def _take(self, batches: Iterator[_Lines], pending: _Lines, frames: int) -> _Lines:
        """Up to ``frames`` data lines, pulled from ``pending`` then ``batches``."""
        while len(pending) < frames:
            batch = next(batches, None)
            if batch is None:
                break
            pending.numbers += batch.numbers
            pending.lines += batch.lines
        return pending.cut(frames)

    def _parse(self, chunk: _Lines) -> np.ndarray:
        """Vectorised parse of lines -> (C, n) of the chosen columns; a precise error on failure."""
        if not chunk:
            return self._empty()
        arr = self._parse_rows(chunk)
        columns = list(range(arr.shape[1])) if self._chosen is None else list(self._chosen)
        if self._chosen is not None:
            arr = arr[:, self._chosen]
        out = _narrowed(
            arr.T,
            self._dtype,
            lambda at: (
                f"{shown_path(self._path)}: line {chunk.numbers[at[-1]]}, "
                f"column {columns[at[0]] + 1}"
            ),
        )
        return np.ascontiguousarray(out)

    def _parse_rows(self, chunk: _Lines) -> np.ndarray:
        """Every column of ``chunk`` as float64 ``(n, width)``."""
        layout = self._layout
        try:
            with np.errstate(all="ignore"):
                arr = np.loadtxt(
                    chunk.lines,
                    delimiter=layout.delimiter,
                    dtype=np.float64,
                    comments=None,
                    quotechar='"',
                    ndmin=2,
                )
        except ValueError as e:
            self._locate_error(chunk, e)
            raise DataFileError(f"{shown_path(self._path)}: malformed CSV ({e})") from e
        if arr.shape[1] != layout.width:
            self._locate_error(chunk, None)
        return arr

    def time_track(self) -> TimeTrack:
        """The time column, read in a second pass alongside the data (see :class:`TimeTrack`).

        Always float64, whatever the reader's dtype: float32 would round epoch
        timestamps to minutes.
        """
        if self._time_index is None:
            raise ConfigError(f"{shown_path(self._path)}: has no time column")
        index = self._time_index

        def values() -> Iterator[np.ndarray]:
            for batch in self._data_batches():
                for start in range(0, len(batch), _CSV_CHUNK):
                    lines = _Lines(
                        batch.numbers[start : start + _CSV_CHUNK],
                        batch.lines[start : start + _CSV_CHUNK],
                    )
                    yield self._parse_rows(lines)[:, index]

        return TimeTrack(values())

    def _locate_error(self, chunk: _Lines, cause: Exception | None) -> None:
        layout = self._layout
        where = shown_path(self._path)
        for number, line in zip(chunk.numbers, chunk.lines, strict=True):
            fields = _split(line.rstrip("\r\n"), layout.delimiter)
            if len(fields) != layout.width:
                raise DataFileError(
                    f"{where}: line {number} has {len(fields)} column(s), expected "
                    f"{layout.width} (like the first row)"
                ) from cause
            for column, cell in enumerate(fields, 1):
                if not cells.is_number(cell):
                    raise _bad_cell(self._path, number, column, cell) from cause

    def _read(self, frames: int) -> np.ndarray:
        blocks = []
        remaining = frames
        while remaining > 0:
            chunk = self._take(self._batches, self._pending, min(remaining, _CSV_CHUNK))
            if not chunk:
                break
            blocks.append(self._parse(chunk))
            remaining -= len(chunk)
        if not blocks:
            return self._empty()
        return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)

    def _head(self, frames: int) -> np.ndarray:
        batches = self._data_batches()
        try:
            return self._parse(self._take(batches, _Lines([], []), frames))
        finally:
            batches.close()  # type: ignore[attr-defined]

    def _tail(self, frames: int) -> np.ndarray:
        last = _Lines([], [])
        for batch in self._data_batches():
            last.numbers += batch.numbers
            last.lines += batch.lines
            if len(last) > frames:
                last.cut(len(last) - frames)
        return self._parse(last)

    def _close(self) -> None:
        self._batches.close()  # type: ignore[attr-defined]


class TimeTrack:
    """The time column of a CSV input, taken at increasing sample indices.

    Output sample ``j`` of a chain with total stride ``S`` gets the input time
    ``t[j * S]``: the time of the input sample at the same index, every S-th for a
    strided chain. For an aligned ('same') layer that is exactly the time of the
    sample the output stands for; for other paddings it is the documented
    convention (the output's first tap plus the left padding). An index past the
    end (a 'full' padding's tail) is extrapolated with the last time step.
    Memory is one parsed chunk, whatever the file's length.
    """

    def __init__(self, chunks: Iterator[np.ndarray]) -> None:
        self._chunks = chunks
        self._buffer = np.empty(0)
        self._start = 0  # input index of self._buffer[0]
        self._last = np.empty(0)  # the last two values seen, for extrapolation

    def take(self, indices: np.ndarray) -> np.ndarray:
        """Times at ``indices`` (non-decreasing, and not below an earlier call's)."""
        out = np.empty(len(indices))
        for k, index in enumerate(indices.tolist()):
            while index >= self._start + len(self._buffer):
                chunk = next(self._chunks, None)
                if chunk is None:
                    out[k] = self._extrapolate(index)
                    break
                self._keep_last(chunk)
                self._start += len(self._buffer)
                self._buffer = chunk
            else:
                out[k] = self._buffer[index - self._start]
        return out

    def _keep_last(self, chunk: np.ndarray) -> None:
        self._last = np.concatenate([self._last, chunk[-2:]])[-2:]

    def _extrapolate(self, index: int) -> float:
        last = self._last
        end = self._start + len(self._buffer) - 1
        if len(last) == 0:
            return math.nan
        step = float(last[-1] - last[-2]) if len(last) == 2 else 0.0
        return float(last[-1]) + (index - end) * step


class _CsvWriter(_ByteWriter):
    def __init__(
        self,
        path: str,
        channels: int,
        column_names: Sequence[str] | None,
        on_clip: str,
        dialect: CsvDialect | None = None,
        live: bool = False,
    ) -> None:
        if column_names is not None and len(column_names) != channels:
            raise ConfigError(
                f"{shown_path(path, output=True)}: {len(column_names)} column names given for "
                f"{channels} channels: {list(column_names)!r}"
            )
        super().__init__(path, "csv", channels, None, on_clip, live=live)
        if dialect is None:
            # a .tsv file name gets tabs; everything else (stdout too) gets commas
            dialect = CsvDialect("\t" if path.lower().endswith(".tsv") else ",")
        self._dialect = dialect
        self._sep = dialect.delimiter
        with self._guarded():
            self._fh = open(self.target, "wb") if isinstance(self.target, Path) else self.target
            if column_names is not None:
                line = io.StringIO()
                csv.writer(
                    line,
                    delimiter=self._sep,
                    lineterminator=dialect.line_end,
                    quoting=csv.QUOTE_ALL if dialect.quote_header else csv.QUOTE_MINIMAL,
                ).writerow([str(n) for n in column_names])
                header = line.getvalue().encode("utf-8")
                if live:
                    self._header = header
                else:
                    self._fh.write(header)

    def _write(self, arr: np.ndarray) -> None:
        if arr.shape[-1] == 0:
            return
        # %r of a Python float is the shortest text that reads back to the same value; one
        # %-format per chunk runs the loop in C (about twice as fast as joining per row)
        values = np.asarray(arr, dtype=np.float64)
        cell = '"%r"' if self._dialect.quote_numbers else "%r"
        row = ((cell + self._sep) * (self.channels - 1)) + cell + self._dialect.line_end
        for start in range(0, values.shape[1], _CSV_CHUNK):
            chunk = values[:, start : start + _CSV_CHUNK]
            text = (row * chunk.shape[1]) % tuple(chunk.T.ravel().tolist())
            self._fh.write(text.encode("ascii"))
