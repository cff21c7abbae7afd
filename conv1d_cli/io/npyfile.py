"""NPY signals: headers (checked before a pipe's data is read), the reader, the writers.

- ``(L,)`` reads as mono ``(1, L)``, ``(C, L)``, ``(N, C, L)`` batch; integer and
  float arrays (values as they are, no scaling); read through ``mmap_mode="r"`` and
  never with pickles.
- On a pipe the array is read whole, at most :func:`conv1d_cli.io.pipes.pipe_limit`
  bytes; its header (magic, version, dtype, shape and declared size) is checked
  before its data is read.
- The streaming writer writes time-major (Fortran order) and rewrites the header at
  close; ``np.load`` returns the same ``(C, L)`` / ``(N, C, L)`` array.
  :func:`~conv1d_cli.io.outputs.write_signal` writes a plain C-ordered file.
"""

from __future__ import annotations

import contextlib
import io
import math
import struct
import tokenize
from pathlib import Path
from typing import IO, Any, Final

import numpy as np

from conv1d_cli.errors import DataFileError, ShapeError, shown_path
from conv1d_cli.io.base import SignalReader, SignalWriter, _ByteWriter, _check_input_path, _narrowed
from conv1d_cli.io.formats import SignalInfo
from conv1d_cli.io.pipes import _open_stream, _read_upto, _too_much, is_stream, pipe_limit

__all__: list[str] = []

_NPY_MAX_HEADER: Final = 10000  # numpy's own bound (np.load's max_header_size)

_NPY_HEADER_BYTES: Final = 256  # reserved for a streamed NPY header (shape known at close)


def _npy_header(fh: IO[bytes], path: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            header = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            header = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported NPY version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as e:
        raise DataFileError(f"{shown_path(path)}: not a valid NPY file ({e})") from e
    shape, fortran, dtype = header
    return tuple(int(n) for n in shape), bool(fortran), dtype


def _npy_layout(path: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> SignalInfo:
    where = shown_path(path)
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        kind = "complex" if dtype.kind == "c" else f"{dtype}"
        raise DataFileError(
            f"{where}: NPY holds {kind} values; expected real numbers (float or integer)"
        )
    if len(shape) not in (1, 2, 3):
        raise DataFileError(
            f"{where}: NPY array has shape {shape}; expected (L,), (C, L) or (N, C, L)"
        )
    if 0 in shape:
        raise DataFileError(f"{where}: NPY array of shape {shape} has no samples")
    batch = shape[0] if len(shape) == 3 else None
    channels = 1 if len(shape) == 1 else shape[-2]
    return SignalInfo(
        path=path,
        format="npy",
        subtype=None,
        sample_rate=None,
        channels=channels,
        frames=shape[-1],
        batch=batch,
    )


def _npy_stream_header(fh: IO[bytes], path: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """:func:`_npy_header` for a pipe: every length is checked before it is read.

    numpy reads a declared header length (up to 4 GiB in version 2.0) before checking
    it, and ``/dev/zero`` must fail on its magic, not after filling the memory.
    """
    where = shown_path(path)
    start = _read_upto(fh, 8)  # magic string and version
    if not start:
        raise DataFileError(f"{where}: input is empty")
    try:
        version = np.lib.format.read_magic(io.BytesIO(start))
    except ValueError as e:
        raise DataFileError(f"{where}: not a valid NPY file ({e})") from e
    width = {(1, 0): 2, (2, 0): 4}.get(version)
    if width is None:
        raise DataFileError(f"{where}: not a valid NPY file (unsupported NPY version {version})")
    field = _read_upto(fh, width)
    length = int.from_bytes(field, "little") if len(field) == width else -1
    if not 0 <= length <= _NPY_MAX_HEADER:
        shown = "cut short" if length < 0 else f"{length} bytes long"
        raise DataFileError(
            f"{where}: not a valid NPY file (its header is {shown}; expected at most "
            f"{_NPY_MAX_HEADER} bytes)"
        )
    return _npy_header(io.BytesIO(start + field + _read_upto(fh, length)), path)


def _read_npy_stream(path: str) -> np.ndarray:
    """Read an NPY array from a pipe: header first, its declared size bounded, then data."""
    stream, owned = _open_stream(path)
    try:
        shape, fortran, file_dtype = _npy_stream_header(stream, path)
        _npy_layout(path, shape, file_dtype)  # a bad dtype or shape fails before any data
        nbytes = math.prod(shape) * file_dtype.itemsize
        declared = f"the NPY header declares shape {shape} of {file_dtype} ({nbytes} bytes)"
        limit = pipe_limit()
        if nbytes > limit:
            raise _too_much(path, f"{declared},", limit)
        try:
            data = _read_upto(stream, nbytes)
        except OSError as e:
            raise DataFileError(f"{shown_path(path)}: cannot read: {e.strerror}") from e
    finally:
        if owned:
            stream.close()
    if len(data) < nbytes:
        raise DataFileError(
            f"{shown_path(path)}: not a valid NPY file ({declared}, but the data ends after "
            f"{len(data)} bytes)"
        )
    arr = np.frombuffer(data, dtype=file_dtype)
    return arr.reshape(shape, order="F" if fortran else "C")


class _NpyReader(SignalReader):
    def __init__(self, path: str, dtype: np.dtype[Any]) -> None:
        stream = is_stream(path)
        if stream:  # read once into memory, like stdin
            arr = _read_npy_stream(path)
            info = _npy_layout(path, arr.shape, arr.dtype)
        else:
            _check_input_path(path)
            with open(path, "rb") as fh:
                shape, _, file_dtype = _npy_header(fh, path)
            info = _npy_layout(path, shape, file_dtype)
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise DataFileError(f"{shown_path(path)}: not a valid NPY file ({e})") from e
        if arr.ndim == 1:
            arr = arr[None, :]
        super().__init__(info, dtype, True)
        self._arr = arr
        self._pos = 0

    def _slice(self, start: int, stop: int) -> np.ndarray:
        return _narrowed(
            self._arr[..., start:stop],
            self._dtype,
            lambda at: f"{shown_path(self.info.path)}: channel {at[-2]}, sample {start + at[-1]}",
        )

    def _read(self, frames: int) -> np.ndarray:
        start = self._pos
        self._pos = min(start + frames, self._arr.shape[-1])
        return self._slice(start, self._pos)

    def _head(self, frames: int) -> np.ndarray:
        return self._slice(0, frames)

    def _tail(self, frames: int) -> np.ndarray:
        length = self._arr.shape[-1]
        return self._slice(max(0, length - frames), length)

    def _close(self) -> None:
        mm = getattr(self._arr, "_mmap", None) or getattr(
            getattr(self._arr, "base", None), "_mmap", None
        )
        self._arr = np.zeros((0, 0))
        if mm is not None:
            with contextlib.suppress(BufferError, ValueError):
                mm.close()


def _npy_header_bytes(shape: tuple[int, ...], dtype: np.dtype[Any], fortran: bool) -> bytes:
    """A version-1.0 NPY header padded to exactly _NPY_HEADER_BYTES (rewritable in place)."""
    descr = np.lib.format.dtype_to_descr(dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    room = _NPY_HEADER_BYTES - 10 - 1
    if len(text) > room:  # pragma: no cover - needs shapes with ~100-digit sizes
        raise ShapeError(f"NPY shape {shape} is too large")
    body = (text + " " * (room - len(text)) + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


class _NpyWriter(_ByteWriter):
    """Streams time-major: the file is Fortran-ordered, its header is rewritten at close.

    ``np.load`` gives back the ``(C, L)`` / ``(N, C, L)`` array with the right values (it
    is F-contiguous). :func:`~conv1d_cli.io.outputs.write_signal` writes a plain
    C-ordered file instead. On a pipe (``live``) the header cannot be rewritten: it is
    written once with the ``declared`` length, and writing any other length fails at close.
    """

    def __init__(
        self,
        path: str,
        channels: int,
        batch: int | None,
        dtype: np.dtype[Any],
        on_clip: str,
        declared: int | None = None,
    ) -> None:
        live = declared is not None
        super().__init__(path, "npy", channels, batch, on_clip, live=live, declared=declared)
        self._dtype = dtype
        with self._guarded():
            self._fh = open(self.target, "w+b") if isinstance(self.target, Path) else self.target
            header = _npy_header_bytes(self._shape(declared or 0), dtype, True)
            if live:
                self._header = header
            else:
                self._fh.write(header)

    def _shape(self, frames: int) -> tuple[int, ...]:
        if self.batch is None:
            return (self.channels, frames)
        return (self.batch, self.channels, frames)

    def _write(self, arr: np.ndarray) -> None:
        # Fortran order of (..., n) is C order of its transpose: time-major, streamable
        data = np.ascontiguousarray(arr.T, dtype=self._dtype)
        self._fh.write(data.tobytes())

    def _finish(self) -> None:
        if self.live:  # the header went first, with the length checked by close()
            super()._finish()
            return
        end = self._fh.tell()
        self._fh.seek(0)
        self._fh.write(_npy_header_bytes(self._shape(self.frames), self._dtype, True))
        self._fh.seek(end)
        super()._finish()


class _WholeNpyWriter(SignalWriter):
    """write_signal's NPY path: one np.save, C order."""

    def __init__(self, path: str, data: np.ndarray) -> None:
        super().__init__(path, "npy", 1, None, "warn")
        self._data = data

    def _finish(self) -> None:
        if isinstance(self.target, Path):
            with open(self.target, "wb") as fh:
                np.save(fh, self._data, allow_pickle=False)
        else:
            np.save(self.target, self._data, allow_pickle=False)
