"""Pipes: stdin and stdout, FIFOs, ``<(...)``, and names the shell already opened.

- :func:`is_stream` -- a path that must be read or written once, in order, like ``-``
- :func:`names_open_file` -- ``/dev/...`` and ``/proc/...`` names (the one test for them)
- :func:`is_live_stream` -- an output read as it is written (a pipe, FIFO or socket)
- :func:`pipe_limit` -- how much a pipe input may hold in memory
- :func:`interrupt_inputs` -- end every audio read blocked on a pipe (a stop signal)

Behaviour worth knowing:

- Any input path that is not a regular file (``<(cat x.csv)``, a named FIFO,
  ``/dev/stdin`` on a pipe) follows exactly the rules of ``-``: it is opened once and
  never probed first (that would drain it), and without an extension its format must
  be given. A stdin redirected from a regular file is seekable and behaves like a
  file; a terminal on stdin is refused.
- CSV and NPY on a pipe are buffered in memory, at most :func:`pipe_limit` bytes
  (``$CONV1D_PIPE_LIMIT``). Audio streams through a :class:`_Relay` that replays the
  sniffed first bytes to libsndfile.
- An output that is not a regular file and not live (``-`` or ``/dev/stdout``
  redirected to a file, a device) is spooled to an anonymous temporary file (in
  ``$TMPDIR``: disk, not memory) and copied out by :func:`_copy_spool_out` only when
  its writer closes successfully, so a failed run prints nothing.

No NumPy here: :mod:`conv1d_cli.io.atomic` asks :func:`names_open_file`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import threading
import weakref
from typing import IO, Any, Final

from conv1d_cli.errors import ConfigError, DataFileError, PipeClosedError, shown_path

__all__ = [
    "interrupt_inputs",
    "is_live_stream",
    "is_stream",
    "names_open_file",
    "pipe_limit",
]

_PIPE_LIMIT_ENV: Final = "CONV1D_PIPE_LIMIT"

_PIPE_LIMIT_DEFAULT: Final = 1 << 30

_SIZE_SHIFTS: Final = {"K": 10, "M": 20, "G": 30, "T": 40}


def is_stream(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` must be read (or written) once, in order, like stdin / stdout.

    That is ``"-"`` and every existing path that is neither a regular file nor a directory:
    a bash process substitution ``<(...)`` (``/dev/fd/63``), a named FIFO, ``/dev/stdin``
    on a pipe, a character device. Such a source is opened exactly once (probing it first
    would consume the data) and follows the rules of ``-``: non-seekable audio streams, CSV
    and NPY buffered in memory. Symlinks are followed; a missing path is not a stream.

    Examples
    --------
    >>> is_stream("-"), is_stream("/dev/null"), is_stream("no-such-file.wav")
    (True, True, False)
    """
    text = os.fspath(path)
    if text == "-":
        return True
    try:
        mode = os.stat(text).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def names_open_file(path: str | os.PathLike[str]) -> bool:
    """True for ``/dev/...`` and ``/proc/...`` paths (``/dev/stdout``, ``/dev/fd/3``).

    Such a name stands for a file the shell already opened. Even when it leads to a
    regular file (``conv1d ... -o /dev/stdout >> log.csv``) that file must be written
    through the name, never replaced by a rename, which would drop what is in it.

    Examples
    --------
    >>> names_open_file("/dev/stdout"), names_open_file("out.wav")
    (True, False)
    """
    text = os.path.abspath(os.fspath(path))
    return text.startswith(("/dev/", "/proc/"))


def is_live_stream(path: str | os.PathLike[str]) -> bool:
    """True when output to ``path`` goes to a pipe, FIFO or socket (``-`` = fd 1).

    Such an output is read as it is written (``conv1d apply ... -o - | aplay``), so it
    is streamed where the format allows (:func:`~conv1d_cli.io.formats.streams_live`).
    A regular file, also behind ``/dev/stdout`` (``-o - > out.wav``), a terminal or another
    device is not: those outputs are spooled and appear whole, or not at all.

    Examples
    --------
    >>> is_live_stream("/dev/null"), is_live_stream("no-such-file.wav")
    (False, False)
    """
    text = os.fspath(path)
    try:
        mode = os.fstat(1).st_mode if text == "-" else os.stat(text).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _stdin_binary() -> IO[bytes]:
    stream = sys.stdin
    if stream is None:
        raise DataFileError("<stdin>: no standard input is available")
    try:
        terminal = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        terminal = False
    if terminal:  # reading would wait for the keyboard: say so instead
        raise DataFileError(
            "<stdin>: is a terminal; pipe a signal in (... | conv1d ...) or give a file"
        )
    binary: IO[bytes] = stream.buffer if hasattr(stream, "buffer") else stream  # type: ignore[assignment]
    return binary


def _open_stream(path: str) -> tuple[IO[bytes], bool]:
    """Open a stream source (see :func:`is_stream`) once; return (stream, we_must_close)."""
    if path == "-":
        return _stdin_binary(), False
    try:
        fh = open(path, "rb")  # blocks until a FIFO has a writer, as ``cat`` does
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror}") from e
    terminal = False
    with contextlib.suppress(OSError, ValueError):
        terminal = fh.isatty()
    if terminal:
        fh.close()
        raise DataFileError(f"{path}: is a terminal; give a signal file or pipe one in")
    return fh, True


def _is_seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _size(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it (``"1 GiB"``, ``"1000 bytes"``)."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} bytes"


def pipe_limit() -> int:
    """Bytes a pipe input may hold in memory: ``$CONV1D_PIPE_LIMIT``, default 1 GiB.

    CSV and NPY arriving on a pipe (``-``, ``<(...)``, a FIFO) are read whole, so an
    endless or runaway producer would otherwise fill the memory. The variable takes
    bytes with an optional binary suffix: ``500M``, ``4G``, ``2GiB``, ``123456``.

    Raises
    ------
    ConfigError
        The variable is set but is not a positive size.

    Examples
    --------
    >>> import os
    >>> os.environ["CONV1D_PIPE_LIMIT"] = "4G"
    >>> pipe_limit() == 4 << 30
    True
    >>> del os.environ["CONV1D_PIPE_LIMIT"]
    >>> pipe_limit() == _PIPE_LIMIT_DEFAULT
    True
    """
    text = os.environ.get(_PIPE_LIMIT_ENV, "").strip()
    if not text:
        return _PIPE_LIMIT_DEFAULT
    number = text.upper().removesuffix("B").removesuffix("I")
    shift = 0
    if number[-1:] in _SIZE_SHIFTS:
        number, shift = number[:-1].strip(), _SIZE_SHIFTS[number[-1]]
    if not number.isdigit() or int(number) == 0:
        raise ConfigError(
            f"{_PIPE_LIMIT_ENV}={text!r}: expected a size in bytes such as 500M or 4G"
        )
    return int(number) << shift


def _too_much(path: str, what: str, limit: int) -> DataFileError:
    return DataFileError(
        f"{shown_path(path)}: {what} more than the {_size(limit)} a pipe input may hold in "
        f"memory; save it to a file first, or raise the limit with {_PIPE_LIMIT_ENV} "
        f"(e.g. {_PIPE_LIMIT_ENV}=4G)"
    )


def _read_bounded(stream: IO[bytes], path: str) -> bytes:
    """Read ``stream`` to its end, at most :func:`pipe_limit` bytes; refuse it empty."""
    limit = pipe_limit()
    chunks: list[bytes] = []
    total = 0
    try:
        while chunk := stream.read(min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise _too_much(path, "the input is", limit)
    except OSError as e:
        raise DataFileError(f"{shown_path(path)}: cannot read: {e.strerror}") from e
    if not total:
        raise DataFileError(f"{shown_path(path)}: input is empty")
    return b"".join(chunks)


def _read_upto(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes of ``stream``, fewer only at its end."""
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_all_stream(path: str) -> bytes:
    """Read a stream source (``-``, FIFO, ``<(...)``) to its end, in one pass."""
    stream, owned = _open_stream(path)
    try:
        return _read_bounded(stream, path)
    finally:
        if owned:
            stream.close()


def _read_head(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from ``fd``, fewer only at the end of the stream."""
    head = b""
    while len(head) < size:
        chunk = os.read(fd, size - len(head))
        if not chunk:
            break
        head += chunk
    return head


class _Relay:
    """A fresh pipe that replays the sniffed first bytes, then the rest of the source.

    A pipe cannot give back what was read from it, and libsndfile must see the stream
    from its first byte *and* as a pipe (through a Python file object it would try to
    seek), so a daemon thread writes the sniffed bytes and then copies the source into
    a new pipe whose read end libsndfile gets. Memory stays at one 64 KiB chunk.

    Attributes
    ----------
    fd : int
        The read end, for libsndfile.
    error : OSError or None
        A read error on the source; the relay then ends the stream early, so a reader
        seeing the end must check this before taking it for the end of the signal.
    """

    def __init__(self, head: bytes, source: int, owned: IO[bytes] | None) -> None:
        self.fd, write_end = os.pipe()
        self.error: OSError | None = None
        self._write_end: int | None = write_end
        self._lock = threading.Lock()  # _write_end is closed or replaced under it
        _RELAYS.add(self)
        self._thread = threading.Thread(
            target=self._pump, args=(head, source, write_end, owned), daemon=True
        )
        self._thread.start()

    def interrupt(self) -> None:
        """End the stream for libsndfile now: it sees EOF, as if the source had ended.

        For a stop signal: the thread blocked in libsndfile reading this pipe is in C,
        where no Python signal handler can run, and would wait for a producer that may
        never write again (a FIFO held open). The write end becomes ``/dev/null`` (one
        ``dup2``, so its number is never free for another file to take); the pump may
        go on copying into it, harmlessly, until the process exits.
        """
        with self._lock:
            if self._write_end is None:
                return
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._write_end)
                os.close(devnull)

    def _pump(self, head: bytes, source: int, write_end: int, owned: IO[bytes] | None) -> None:
        try:
            chunk = head
            while chunk:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(write_end, view) :]
                chunk = os.read(source, 1 << 16)
        except BrokenPipeError:
            pass  # the reader closed its end: it wants nothing more
        except OSError as e:
            self.error = e
        finally:
            with self._lock:
                self._write_end = None
                os.close(write_end)
            if owned is not None:  # closed here: the other thread may still be reading it
                with contextlib.suppress(OSError):
                    owned.close()

    def close(self) -> None:
        """Close the read end; a pump blocked writing then ends with EPIPE."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


#: Every relay still pumping, for :func:`interrupt_inputs`.
_RELAYS: weakref.WeakSet[_Relay] = weakref.WeakSet()


def interrupt_inputs() -> None:
    """Make every audio read blocked on a pipe return (end of stream) at once.

    Meant for a signal handler's helper thread (see ``conv1d_cli.cli._common``): a
    stop signal cannot interrupt libsndfile waiting for a pipe whose producer holds
    it open, and the run could not unwind. Safe to call at any time from any thread;
    what the readers then see is a stream that ended, so call it only when stopping.
    """
    for relay in list(_RELAYS):
        relay.interrupt()


def _open_live_output(path: str) -> IO[bytes]:
    """The pipe a live writer writes to: stdout's buffer, or the FIFO/socket ``path``."""
    if path == "-":
        with contextlib.suppress(AttributeError, ValueError, OSError):
            sys.stdout.flush()  # keep any text already printed in order
        stdout: Any = sys.stdout
        out: IO[bytes] = getattr(stdout, "buffer", stdout)
        return out
    try:
        # blocks until the FIFO has a reader, as `cat > fifo` does
        return open(path, "ab")
    except OSError as e:
        raise DataFileError(f"{path}: cannot write: {e.strerror}") from e


def _copy_spool_out(spool: IO[bytes], path: str) -> None:
    """Copy a finished ``spool`` to stdout (``-``) or the device or FIFO ``path``; close it.

    A name such as ``/dev/stdout`` is opened once, at the end, for appending: a
    regular file behind it (``>> log``) keeps what it holds.
    """
    spool.flush()
    spool.seek(0)
    if path != "-":
        try:
            with open(path, "ab") as device:
                shutil.copyfileobj(spool, device, 1 << 20)
        except BrokenPipeError as e:
            raise PipeClosedError(f"{path}: the reader closed the pipe") from e
        spool.close()
        return
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stdout.flush()  # keep any text already printed in order
    out = getattr(sys.stdout, "buffer", sys.stdout)
    try:
        shutil.copyfileobj(spool, out, 1 << 20)
        out.flush()
    except BrokenPipeError as e:
        raise PipeClosedError("<stdout>: the reader closed the pipe") from e
    spool.close()
