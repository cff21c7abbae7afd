"""One NPY larger than a worker's memory, filtered as a Dask array (``apply --scheduler``).

The array path of :mod:`conv1d_cli.cluster`: an NPY input with an NPY output and no
level or dither options (:func:`wants_array_path`) goes through the workers stretch
by stretch instead of as one task: :func:`filter_npy_array` makes one task per
stretch of the output, which reads the input samples it needs, its halo included,
straight from the file (:class:`NpyFile`, :mod:`conv1d_cli.windows`) and writes
straight into a temporary NPY renamed into place on success. No task waits on
another. A chain with circular padding, whose pads come from the far end of a
layer's input, goes as one lazy array instead (:func:`conv1d_cli.dask.conv1d`).
Importing this module is cheap: NumPy, Dask and the engine load when it runs.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from typing import Any

from conv1d_cli import heap
from conv1d_cli import threads as thread_policy
from conv1d_cli.cluster import DaskFiles
from conv1d_cli.errors import Conv1dError, DataFileError
from conv1d_cli.io.atomic import start_writeback

__all__ = ["CHUNK_SAMPLES", "NpyFile", "filter_npy_array", "wants_array_path"]


#: Samples (batch x channels x frames) per chunk of the array path, in float32: 16 MiB
#: (float64 chunks hold half as many). Below glibc's largest mmap threshold (32 MiB),
#: the chunk-sized buffers a task allocates and frees are reused from the heap; at
#: 32 MiB each one was a fresh mapping whose pages faulted in again, and a chunk took
#: 1.6x as long per byte (measured: 91-97 ms per 32 MiB against 54-58 ms).
CHUNK_SAMPLES = 1 << 22


class NpyFile:
    """An NPY file as an array that pickles as its path: workers read and write it themselves.

    Slices along time (batch and channels whole, as :func:`filter_npy_array` chunks
    them) are read with ``os.pread`` and written with ``os.pwrite``, not through a
    memory map: mapped pages count as the worker's memory, and Dask pauses a worker
    whose memory looks full although the kernel could drop them at any time.
    Writing is time-major (a Fortran-ordered file, as the streaming writer makes),
    so each chunk is one contiguous write.
    """

    def __init__(self, path: str) -> None:
        import numpy as np

        fmt = np.lib.format
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            header = (
                fmt.read_array_header_1_0(fh)
                if version == (1, 0)
                else fmt.read_array_header_2_0(fh)
            )
            self.offset = fh.tell()
        shape, self.fortran, self.dtype = header
        self.path = path
        self.shape: tuple[int, ...] = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)

    @classmethod
    def create(cls, path: str, shape: tuple[int, ...], dtype: Any) -> NpyFile:
        """A time-major NPY of ``shape``, header as the streaming writer's, data not written."""
        import numpy as np

        # NPY headers only when an array output is made (keeps this module's import cheap).
        from conv1d_cli.io.npyfile import _npy_header_bytes

        header = _npy_header_bytes(shape, np.dtype(dtype), True)
        with open(path, "wb") as fh:
            fh.write(header)
            fh.truncate(len(header) + int(np.prod(shape)) * np.dtype(dtype).itemsize)
        return cls(path)

    def _time(self, key: Any) -> tuple[tuple[slice, ...], int, int]:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        start, stop, step = key[-1].indices(self.shape[-1])
        if step != 1:  # pragma: no cover - dask slices chunks with step 1
            raise ValueError("NpyFile reads contiguous time ranges only")
        return key[:-1], start, stop

    def __getitem__(self, key: Any) -> Any:
        import numpy as np

        lead_key, start, stop = self._time(key)
        lead = self.shape[:-1]
        rows = int(np.prod(lead))
        size = self.dtype.itemsize
        frames = stop - start
        with open(self.path, "rb") as fh:
            fd = fh.fileno()
            if self.fortran:
                # Time-major: the frames [start, stop) of every row are one range.
                block = np.empty((frames, *lead[::-1]), self.dtype)
                _read_into(fd, block, self.offset + start * rows * size, self.path)
                block = block.T
            else:
                block = np.empty((rows, frames), self.dtype)
                for row in range(rows):
                    at = self.offset + (row * self.shape[-1] + start) * size
                    _read_into(fd, block[row], at, self.path)
                block = block.reshape(*lead, frames)
        return np.ascontiguousarray(block[lead_key])

    def __setitem__(self, key: Any, value: Any) -> None:
        import numpy as np

        lead_key, start, stop = self._time(key)
        if not self.fortran or any(
            k != slice(None) and k.indices(n) != (0, n, 1)
            for k, n in zip(lead_key, self.shape, strict=False)
        ):
            raise ValueError("NpyFile writes whole frames of a time-major file only")
        rows = int(np.prod(self.shape[:-1]))
        # .copy(order="C") of the transpose: 6x faster than np.ascontiguousarray here
        # (measured on (8, 2**20) float32: 8 ms against 47 ms).
        data = np.asarray(value, self.dtype).T.copy(order="C")
        at = self.offset + start * rows * self.dtype.itemsize
        with open(self.path, "r+b") as fh:
            _write_from(fh.fileno(), data, at)
            # On its way to the disk now, not all at the fsync that publishes the file.
            start_writeback(fh.fileno(), at, data.nbytes)


def _read_into(fd: int, array: Any, offset: int, path: str) -> None:
    """Fill the contiguous ``array`` from ``fd`` at ``offset``: one copy, no bytes object."""
    view = memoryview(array).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if got == 0:
            raise DataFileError(f"{path}: the NPY file ends before the data its header promises")
        done += got


def _write_from(fd: int, array: Any, offset: int) -> None:
    """Write the contiguous ``array`` to ``fd`` at ``offset`` from its own buffer."""
    view = memoryview(array).cast("B")
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def _checked_block(
    block: Any, block_info: Any = None, *, source: str, anyway: str | None = None
) -> Any:
    """``stream.check_finite`` on one chunk, its sample offset from Dask's block_info."""
    # On the worker, where the chunk is filtered.
    from conv1d_cli.stream import check_finite

    offset = block_info[0]["array-location"][-1][0] if block_info else 0
    batched = block if block.ndim == 3 else block[None]
    if anyway is None:
        check_finite(batched, offset, source)
    else:
        check_finite(batched, offset, source, anyway=anyway)
    return block


def filter_npy_array(
    client: Any,
    job: Any,
    layers: Sequence[Any],
    names: Sequence[str],
    opts: Any,
    *,
    chunk_samples: int | None = None,
    policy: thread_policy.Policy | None = None,
) -> Any:
    """Filter one NPY file into an NPY file on the workers: any size, bounded per worker.

    The output is made in stretches of about ``chunk_samples`` samples (batch and
    channels whole; default 16 MiB in the compute dtype, :data:`CHUNK_SAMPLES`),
    one task each, which reads the input samples its stretch needs from the file
    (:mod:`conv1d_cli.windows`: the halo too, so no task waits on another) and
    writes its stretch straight into a temporary NPY next to the target (shared
    storage), renamed into place only on success. Measured, 4 GiB through 255
    taps, 2 workers: 11.1 s with the halos handed from task to task, 9.1 s with
    each read from the file; worker peaks 320-350 -> 185-200 MiB. A chain with
    circular padding goes as one lazy array (:func:`conv1d_cli.dask.conv1d`, the
    halos handed on). The file is laid out as a streamed run's (time-major, same
    header); the values equal to rounding.

    Workers compute under ``policy`` (default single-threaded, as ``--jobs``): two
    FFT threads per worker on a core each already busy with a worker took 2.4x
    longer per chunk (measured: 117 ms against 48 ms).

    Returns
    -------
    FileReport
    """
    import dask.array as da
    import numpy as np

    # The numeric engine and Dask load only when the array path runs (start-up stays cheap).
    from conv1d_cli import dask as dconv
    from conv1d_cli import windows
    from conv1d_cli.io.atomic import atomic_path
    from conv1d_cli.pipeline import FileReport
    from conv1d_cli.shapes import rate_warnings
    from conv1d_cli.stream import chain_output_length, check_chain, compute_dtype

    shown = job.source
    try:
        info = _probe(job.source)
        dtype = compute_dtype(layers, opts.dtype)
        check_chain(layers, names, info.channels, source=shown)
        total = chain_output_length(layers, info.frames, names, shown)
        # An NPY has no rate of its own: the rule a local run applies (the first
        # designed layer's rate stands in, the later layers are checked against it).
        _, warnings = rate_warnings(
            [layer.sample_rate for layer in layers],
            [layer.stride for layer in layers],
            names,
            None,
            shown,
            [layer.sample_rate_binding for layer in layers],
        )
        source = NpyFile(os.path.abspath(job.source))
        if source.ndim > 3:
            raise DataFileError(f"{shown}: NPY array has shape {source.shape}")
        lead = source.shape[:-1]
        per_frame = max(1, int(np.prod(lead)))
        if chunk_samples is None:
            chunk_samples = CHUNK_SAMPLES * 4 // dtype.itemsize
        frames = max(1, chunk_samples // per_frame)
        client.run(thread_policy.configure, policy or DaskFiles(client).worker_policy())
        client.run(heap.keep_buffers)
        if windows.windowable(layers):
            _filter_windows(client, source, job.target, layers, total, dtype, opts, frames, shown)
            return FileReport(job, info.frames, 0, warnings)
        x = da.from_array(source, chunks=(*lead, frames), asarray=False)
        if x.ndim == 1:
            x = x[None]
        x = x.astype(dtype)
        if not opts.allow_nonfinite:
            x = x.map_blocks(_checked_block, source=shown, dtype=dtype)
        for layer in layers:
            x = dconv.conv1d(
                x,
                layer.weight.astype(dtype),
                None if layer.bias is None else layer.bias.astype(dtype),
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.groups,
                layer.padding_mode,
                method=opts.method,
            )
        if not opts.allow_nonfinite:
            x = x.map_blocks(
                _checked_block,
                source=f"{shown}: the layers' output overflows {dtype.name}",
                anyway="write non-finite values anyway",
                dtype=dtype,
            )
        # Whole frames per chunk: each is then one contiguous write of a time-major file.
        x = x.rechunk({axis: -1 for axis in range(x.ndim - 1)})
        with atomic_path(job.target) as tmp:
            target: Any = NpyFile.create(str(tmp), x.shape, dtype)
            stored = client.compute(da.store(x, target, lock=False, compute=False))
            _await(client, [stored], shown)
        return FileReport(job, info.frames, 0, warnings)
    except Conv1dError as e:
        raise job.about(e) from e


def _filter_windows(
    client: Any,
    source: NpyFile,
    target_path: str,
    layers: Sequence[Any],
    total: int,
    dtype: Any,
    opts: Any,
    frames: int,
    shown: str,
) -> None:
    """One task per stretch of the output, each reading its own halo from the file.

    No task depends on another and no samples move between workers (the general
    array path, :func:`conv1d_cli.dask.conv1d`, hands each chunk's first samples
    to the task before it). The layers go to every worker once. ``total``: the
    chain's output length, checked by the caller.
    """
    # Here, not at the top: only the array path writes an output from the client.
    from conv1d_cli.io.atomic import atomic_path

    # (N, C, L) -> (N, C_out, L_out); (C, L) and (L,) -> (C_out, L_out), as the general path.
    shape = (*source.shape[:-2], layers[-1].out_channels, total)
    step = _stretch(source.shape, layers, frames)
    stretches = [(a, min(total, a + step)) for a in range(0, total, step)]
    chain = client.scatter(list(layers), broadcast=True, hash=False)
    with atomic_path(target_path) as tmp:
        target = NpyFile.create(str(tmp), shape, dtype)
        futures = client.map(
            _window_task,
            stretches,
            source=source,
            target=target,
            layers=chain,
            dtype=dtype.name,
            method=opts.method,
            allow_nonfinite=opts.allow_nonfinite,
            shown=shown,
            pure=False,
        )
        _await(client, futures, shown)


def _await(client: Any, futures: Sequence[Any], shown: str) -> None:
    """Wait for ``futures`` in order; on a failure or Ctrl-C cancel the rest, then raise.

    In order, so that the first bad stretch of the output is the one reported. The
    rest is stopped before the caller's temporary file goes. A lost worker, a full
    disk on a worker, ...: a failed run (DataFileError), not a bug.
    """
    try:
        for future in futures:
            future.result()
    except BaseException as e:
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
        if isinstance(e, Exception) and not isinstance(e, Conv1dError):
            raise DataFileError(
                f"{shown}: the Dask computation failed ({type(e).__name__}: {e})"
            ) from e
        raise


def _stretch(shape: tuple[int, ...], layers: Sequence[Any], frames: int) -> int:
    """Output frames per task: its input window holds about ``frames`` input frames' samples.

    Every layer's stride multiplies the input a stretch of output needs, and a
    layer with more channels than the input holds more samples per frame.

    Examples
    --------
    >>> from conv1d_cli.layer import Conv1d
    >>> import numpy as np
    >>> down = Conv1d.from_weights(np.ones((2, 2, 4)), stride=4)
    >>> wide = Conv1d.from_weights(np.ones((8, 2, 3)))
    >>> _stretch((2, 10**6), [down, down], 2**20), _stretch((2, 10**6), [wide], 2**20)
    (65536, 262144)
    """
    rows = shape[-2] if len(shape) > 1 else 1
    stride = math.prod(layer.stride for layer in layers)
    widest = max([rows] + [layer.out_channels for layer in layers])
    return max(1, frames * rows // widest // stride)


def _window_task(
    stretch: tuple[int, int],
    *,
    source: NpyFile,
    target: NpyFile,
    layers: Sequence[Any],
    dtype: str,
    method: str,
    allow_nonfinite: bool,
    shown: str,
) -> None:
    """On a worker: the output frames ``[a, b)`` from the input samples they need."""
    import numpy as np

    from conv1d_cli import windows
    from conv1d_cli.stream import check_finite

    a, b = stretch
    length = source.shape[-1]
    plan = windows.plan(layers, length, a, b)
    lead = (slice(None),) * (source.ndim - 1)
    x = source[(*lead, slice(plan[0].p, plan[0].q))]
    x = x.reshape(-1, *x.shape[-2:]) if x.ndim > 1 else x[None, None]
    x = x.astype(dtype, copy=False)
    if not allow_nonfinite:
        check_finite(x, plan[0].p, shown)
    y = windows.compute(layers, length, plan, x, np.dtype(dtype), method)
    if not allow_nonfinite:
        check_finite(
            y,
            a,
            f"{shown}: the layers' output overflows {dtype}",
            anyway="write non-finite values anyway",
        )
    whole = (slice(None),) * (target.ndim - 1)
    target[(*whole, slice(a, b))] = y.reshape(*target.shape[:-1], b - a)


def _probe(path: str) -> Any:
    # The signal readers (NumPy, soundfile) load only when a file is probed.
    from conv1d_cli.io import inputs

    return inputs.probe(path, format="npy")


def wants_array_path(job: Any, opts: Any) -> bool:
    """An NPY file into an NPY file: filtered as one Dask array across the workers."""
    # Format rules load only for a --scheduler run that asks.
    from conv1d_cli.io import formats, pipes

    if pipes.is_stream(job.source) or pipes.is_stream(job.target):
        return False
    try:
        source = formats.detect_format(job.source, opts.input_format)
        target = formats.detect_format(job.target, opts.output_format)
    except Conv1dError:
        return False
    # The array path filters and writes; the level and dither options live in the
    # file pipeline, so a run that asks for them goes file by file instead.
    plain = not (opts.gain_db or opts.normalize_db is not None or opts.dither is not None)
    return plain and source == target == "npy" and os.path.isfile(job.source)
