"""The reader and writer contract every signal format implements.

- :class:`SignalReader` -- block-wise reading with bounded memory; ``(C, n)`` blocks
- :class:`SignalWriter` -- atomic streaming output: where the encoder's bytes go and
  when the output is published

Blocks are ``(C, n)`` (``(N, C, n)`` for a batched NPY) on both sides; each format's
module (:mod:`~conv1d_cli.io.audiofile`, :mod:`~conv1d_cli.io.csvfile`,
:mod:`~conv1d_cli.io.npyfile`) converts from and to its own layout.

A writer's target is one of three: a temporary file next to the output, renamed into
place by :func:`conv1d_cli.io.atomic.atomic_path` only when the writer closes without
an error; an anonymous spool for stdout and other outputs that are not regular files,
copied out at close (:func:`conv1d_cli.io.pipes._copy_spool_out`); or, for a live pipe
(:func:`conv1d_cli.io.formats.streams_live`), the pipe itself, a block at a time. A
failed run stops a live stream where it is (a reader sees it cut short); a reader
that goes away raises :class:`~conv1d_cli.errors.PipeClosedError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Final

import numpy as np

from conv1d_cli.errors import (
    ConfigError,
    DataFileError,
    PipeClosedError,
    ShapeError,
    shown_path,
)
from conv1d_cli.io.atomic import Writeback, atomic_path
from conv1d_cli.io.pipes import _copy_spool_out, _open_live_output, is_stream, names_open_file
from conv1d_cli.shapes import check_int

if TYPE_CHECKING:
    from conv1d_cli.io.csvfile import TimeTrack
    from conv1d_cli.io.formats import SignalInfo

__all__ = ["READ_FRAMES", "SignalReader", "SignalWriter"]

#: Frames a reader reads at a time when its caller takes the whole signal anyway
#: (iterating over a reader, :func:`~conv1d_cli.io.inputs.read_signal` on a pipe): a
#: buffer size for joining pieces. Not the streaming block size, which
#: :func:`conv1d_cli.chain.block_frames` chooses for the filter's cost per block and
#: memory per channel; io sits below the layers and the chain, so it has its own.
READ_FRAMES: Final = 1 << 16


def _sf_message(e: BaseException) -> str:
    text = getattr(e, "error_string", None) or str(e)
    text = str(text).strip()
    if text.startswith("Error"):  # "Error opening 'x': ..." / "Error : ..."
        text = text.split(":", 1)[-1].strip() if ":" in text else text
    return text.rstrip(".") or "unknown libsndfile error"


def _check_frames(frames: Any) -> int:
    return check_int("frames", frames, minimum=0)


def _check_input_path(path: str) -> None:
    """Turn the common OS failures into one clear DataFileError before any parser runs."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror}") from e
    if os.path.isdir(path):
        raise DataFileError(f"{path}: is a directory, expected a signal file")
    if st.st_size == 0 and os.path.isfile(path):
        raise DataFileError(f"{path}: file is empty")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror}") from e


def _narrowed(
    values: np.ndarray, dtype: np.dtype[Any], where: Callable[[tuple[int, ...]], str]
) -> np.ndarray:
    """``values`` as a C-ordered ``dtype`` array; a finite value too large for it is an error.

    A float64 NPY or CSV computed in float32 would otherwise turn 1e300 into inf with
    a NumPy warning (past ``-q``), and the finite check would then blame the file for
    an inf it does not hold. ``where`` names the position of a value for the message.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(values, dtype=dtype, order="C")
    if dtype.itemsize < values.dtype.itemsize and values.dtype.kind == "f":
        grown = np.isinf(out) & np.isfinite(values)
        if grown.any():
            at = tuple(int(i) for i in np.argwhere(grown)[0])
            raise DataFileError(
                f"{where(at)}: {float(values[at]):g} does not fit {dtype.name} (largest "
                f"{float(np.finfo(dtype).max):.3g}); compute in float64 ({{parameter}} float64)",
                parameter="dtype",
            )
    return out


class SignalReader:
    """Streaming reader; use :func:`~conv1d_cli.io.inputs.open_reader`. A context manager.

    Attributes
    ----------
    info : SignalInfo
        Header facts.
    seekable : bool
        True when :meth:`head` and :meth:`tail` work (files, and buffered CSV/NPY stdin).
    finite : bool
        True when no value read can be NaN or infinite (integer PCM audio), so a
        check for them can be skipped.
    """

    info: SignalInfo
    seekable: bool
    finite: bool = False

    def __init__(self, info: SignalInfo, dtype: np.dtype[Any], seekable: bool) -> None:
        self.info = info
        self.seekable = seekable
        self._dtype = dtype
        self._closed = False

    # -- public API
    def read(self, frames: int) -> np.ndarray:
        """Return the next block, ``(C, n)`` (``(N, C, n)`` when batched), ``n <= frames``.

        ``n == 0`` only at the end of the signal.
        """
        frames = _check_frames(frames)
        self._check_open()
        return self._read(frames)

    def head(self, frames: int) -> np.ndarray:
        """Return the first ``frames`` samples (fewer if shorter) without moving the reader."""
        frames = _check_frames(frames)
        self._check_open()
        self._need_seek("the start")
        return self._head(frames)

    def tail(self, frames: int) -> np.ndarray:
        """Return the last ``frames`` samples (fewer if shorter) without moving the reader."""
        frames = _check_frames(frames)
        self._check_open()
        self._need_seek("the end")
        return self._tail(frames)

    def close(self) -> None:
        """Release the source; idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> SignalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[np.ndarray]:
        """Iterate over blocks of :data:`READ_FRAMES` frames."""
        while True:
            block = self.read(READ_FRAMES)
            if block.shape[-1] == 0:
                return
            yield block

    # -- helpers
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"reader of {shown_path(self.info.path)} is closed")

    def _need_seek(self, what: str) -> None:
        if not self.seekable:
            raise DataFileError(
                f"{shown_path(self.info.path)}: cannot read {what} of a pipe in advance "
                f"(reflect/replicate/circular padding need it); save the input to a file first"
            )

    def _empty(self) -> np.ndarray:
        shape: tuple[int, ...] = (self.info.channels, 0)
        if self.info.batch is not None:
            shape = (self.info.batch, *shape)
        return np.zeros(shape, self._dtype)

    def time_track(self) -> TimeTrack:
        """The input's time column (CSV with ``time_column``); ConfigError otherwise."""
        raise ConfigError(f"{shown_path(self.info.path)}: has no time column")

    def _read(self, frames: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _head(self, frames: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _tail(self, frames: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:
        pass


class _Aborted(Exception):
    """Internal: tells atomic_path to discard the temporary file."""


class SignalWriter:
    """Atomic streaming writer; use :func:`~conv1d_cli.io.outputs.open_writer`. A context manager.

    Blocks passed to :meth:`write` are ``(C, n)`` (``(N, C, n)`` for a batched NPY). The
    output appears at its path (or on stdout) only when :meth:`close` runs without an
    error; leaving the ``with`` block through an exception removes the temporary file.

    Attributes
    ----------
    clipped : int
        Samples clipped so far (integer PCM and other non-float audio subtypes).
    frames : int
        Frames written so far.
    """

    clipped: int
    frames: int
    #: What a failing write(2) / fsync / rename raises: OSError from Python file objects
    #: (ENOSPC, EFBIG, EIO, ...); the audio writer adds libsndfile's error.
    write_errors: ClassVar[tuple[type[Exception], ...]] = (OSError,)

    def __init__(
        self,
        path: str,
        fmt: str,
        channels: int,
        batch: int | None,
        on_clip: str,
        *,
        live: bool = False,
        declared: int | None = None,
    ) -> None:
        self.path = path
        self.format = fmt
        self.channels = channels
        self.batch = batch
        self.on_clip = on_clip
        self.clipped = 0
        self.frames = 0
        self.live = live
        # the frames a live header announced: any other count is an error at close
        self._declared = declared
        # a live writer's header, sent with the first block: a run that fails before
        # any output (a bad input) leaves the pipe empty, as it leaves no file
        self._header = b""
        self._done = False
        self._failed = False
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._spool: IO[bytes] | None = None
        self._stream: IO[bytes] | None = None
        self._copying = False  # the spool is being copied to its destination
        self._writeback: Writeback | None = None  # a file output's early writeback
        # where the encoder writes: the pipe itself (live), a temp path next to the target,
        # or an anonymous spool for stdout and for outputs that are not regular files
        # (/dev/stdout, a FIFO) in a format whose encoder seeks (WAV/NPY headers)
        if live:
            self._stream = self._open_live()
            self.target: Path | IO[bytes] = self._stream
        elif is_stream(path) or names_open_file(path):
            import tempfile  # here, not at the top: only a spool needs it (start-up)

            self._spool = tempfile.TemporaryFile()
            self.target = self._spool
        else:
            if os.path.isdir(path):
                raise DataFileError(f"{path}: is a directory, expected an output file name")
            self._atomic = atomic_path(path)
            self.target = self._atomic.__enter__()
            self._writeback = Writeback(self.target)

    # -- public API
    def write(self, block: np.ndarray) -> None:
        """Append ``block`` (``(C, n)``, or ``(N, C, n)`` for a batch)."""
        if self._done:
            raise ValueError(f"writer of {shown_path(self.path, output=True)} is closed")
        arr = np.asarray(block)
        expected = (self.channels,) if self.batch is None else (self.batch, self.channels)
        if arr.ndim != len(expected) + 1 or arr.shape[:-1] != expected:
            layout = "(C, n)" if self.batch is None else "(N, C, n)"
            raise ShapeError(
                f"{shown_path(self.path, output=True)}: block of shape {arr.shape} does not fit "
                f"the output; expected {layout} with {'N, C' if self.batch else 'C'} = "
                f"{expected if self.batch else self.channels}"
            )
        if arr.dtype.kind not in "biuf":
            raise ShapeError(
                f"{shown_path(self.path, output=True)}: expected real numbers to write, "
                f"got dtype {arr.dtype}"
            )
        with self._guarded():
            self._send_header()
            self._write(arr)
        self.frames += int(arr.shape[-1])
        if self._writeback is not None:
            self._writeback.poke()

    def close(self) -> None:
        """Finish the file and publish it (rename into place, or copy to stdout)."""
        if self._done:
            return
        if self._failed:
            self.abort()
            return
        if self._declared is not None and self.frames != self._declared:
            # The header on the pipe promised another length: the reader must be told
            # by the exit status that what it got is not the whole signal.
            self.abort()
            raise DataFileError(
                f"{shown_path(self.path, output=True)}: {self.frames} frames were written but "
                f"the header sent ahead announced {self._declared} (the input ended "
                f"before its own header said it would)"
            )
        with self._guarded():
            self._send_header()
            self._finish()
            if self._spool is not None:
                self._copy_to_stdout()
            if self._stream is not None:
                self._stream.flush()
                if self.path != "-":
                    self._stream.close()
        self._done = True
        if self._writeback is not None:
            self._writeback.close()
        if self._atomic is not None:
            try:  # fsync + rename; atomic_path removes the temp file if they fail
                self._atomic.__exit__(None, None, None)
            except self.write_errors as e:
                raise self._write_error(e) from e

    def abort(self) -> None:
        """Discard everything written; nothing is published. Idempotent."""
        if self._done:
            return
        self._done = True
        self._failed = True
        if self._writeback is not None:
            self._writeback.close()
        with contextlib.suppress(Exception):
            self._discard()
        if self._atomic is not None:
            exc = _Aborted()
            with contextlib.suppress(_Aborted):
                self._atomic.__exit__(_Aborted, exc, None)
        if self._spool is not None:
            with contextlib.suppress(OSError):  # flushing a doomed spool can fail (disk full)
                self._spool.close()
        if self._stream is not None:
            # What was written stays written: the reader sees the stream cut short (and
            # the exit status). Unflushed bytes are dropped, never sent after the error.
            with contextlib.suppress(OSError, ValueError):
                if self.path == "-":
                    self._stream.flush()
                else:
                    self._stream.close()

    def __enter__(self) -> SignalWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        # a writer dropped without close() must not leave its temporary file behind
        if not getattr(self, "_done", True):
            with contextlib.suppress(Exception):
                self.abort()

    # -- helpers
    def _send_header(self) -> None:
        if self._header:
            header, self._header = self._header, b""
            assert self._stream is not None
            self._stream.write(header)

    def _open_live(self) -> IO[bytes]:
        """The pipe a live writer writes to: stdout's buffer, or the FIFO/socket path."""
        return _open_live_output(self.path)

    def _write_error(self, e: BaseException) -> DataFileError:
        if isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE):
            return PipeClosedError(
                f"{shown_path(self.path, output=True)}: the reader closed the pipe"
            )
        if isinstance(e, OSError):
            reason = e.strerror or str(e) or type(e).__name__
        else:
            reason = _sf_message(e)
        if self._spool is not None and not self._copying:
            import tempfile  # loaded already: the spool was made with it

            # the output itself was not touched yet: say where the bytes were going
            reason += (
                f" (while spooling the output in {tempfile.gettempdir()}; "
                f"point TMPDIR at a disk with room)"
            )
        return DataFileError(f"{shown_path(self.path, output=True)}: cannot write: {reason}")

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """Abort (temp file removed, nothing published) on any error; OS/libsndfile write
        failures (a full disk) become one DataFileError naming the output."""
        try:
            yield
        except self.write_errors as e:
            self.abort()
            raise self._write_error(e) from e
        except BaseException:
            self.abort()
            raise

    def _copy_to_stdout(self) -> None:
        assert self._spool is not None
        self._copying = True
        _copy_spool_out(self._spool, self.path)

    def _write(self, arr: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def _discard(self) -> None:
        pass


class _ByteWriter(SignalWriter):
    """A writer that owns a binary file handle ``_fh`` (a temp file, the spool or a pipe)."""

    _fh: IO[bytes]

    def _finish(self) -> None:
        self._fh.flush()
        if isinstance(self.target, Path):  # only what it opened itself
            self._fh.close()

    def _discard(self) -> None:
        if isinstance(self.target, Path):
            self._fh.close()
