"""1-D convolution of Dask arrays: signals larger than memory, chunk by chunk.

:func:`conv1d` takes a Dask array ``(N, C_in, L)`` or ``(C_in, L)`` (from
``numpy.load(path, mmap_mode="r")``, a Zarr store, ...) and returns a lazy Dask
array equal to :func:`conv1d_cli.conv1d` on the materialised input, to rounding.
Nothing is computed until the result is (``.compute()``, ``.store()``,
``da.to_npy_stack``, ...), and each task holds one chunk plus its halo.

Needs the optional extra: ``pip install 'conv1d-cli[dask]'``. This module is
imported only on use (``conv1d --help`` and ``conv1d shape`` never load Dask).

How the graph is built
----------------------
1. The padding is made explicitly at the two ends of the whole array with
   PyTorch's meaning (Dask's ``boundary='reflect'`` is NumPy's 'symmetric', not
   torch's reflect; circular padding wraps across the whole signal, so its left
   pad is the *last* samples of the array).
2. The padded array keeps the input's time chunks (no data moves between
   tasks; the pads, and chunks shorter than the kernel's reach, are merged
   into their neighbours). Chunk ``j`` computes the outputs whose windows
   start in it -- whole strided outputs, none shared with another task.
3. Each chunk reads the first ``receptive field - 1`` samples of the next chunk
   as its halo, and the NumPy core runs on that, unpadded, in the local stream's
   cache-sized blocks (one :class:`~conv1d_cli.core.Correlator` per task).
4. The weights and bias are one key each of the graph, which every task
   depends on (not a copy inside every task).

Every step adds a fixed number of tasks per chunk: the graph is linear in the
number of chunks. Channels stay whole for ``groups=1``; with groups they are
chunked on group boundaries (each task convolves whole groups), and the batch
axis is chunked as given.

Examples
--------
>>> import numpy as np
>>> import dask.array as da
>>> from conv1d_cli import conv1d as np_conv1d
>>> x = np.arange(20.0).reshape(1, 20)
>>> w = np.array([[[1.0, 2.0, 3.0]]])
>>> y = conv1d(da.from_array(x, chunks=(1, 4)), w, padding="same", padding_mode="reflect")
>>> y
dask.array<...>
>>> bool(np.allclose(y.compute(), np_conv1d(x, w, padding="same", padding_mode="reflect")))
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from conv1d_cli import core
from conv1d_cli.errors import ConfigError, ShapeError

if TYPE_CHECKING:
    import dask.array as da

    from conv1d_cli.shapes import Padding

__all__ = ["conv1d", "is_dask_array"]

#: Samples per correlator call inside a task, and the bounds on its frames: the
#: local stream's block budget (``stream.BLOCK_SAMPLES``, ``stream.BLOCK_FRAMES``),
#: so that a chunk is filtered through cache-sized pieces as a streamed run is.
_BLOCK_SAMPLES = 1 << 18
_BLOCK_FRAMES = (1 << 12, 1 << 17)


def _dask_array() -> Any:
    """``dask.array``, imported on first use.

    Not at import time: importing this module (pytest collects its doctests, and
    the type check of ``Conv1d.__call__`` leads here) must not load Dask into a
    process that has no Dask array to filter. Importing Dask costs time and changes
    the process: it installs tblib's exception pickling for every exception (which
    once broke ``--jobs`` workers' error reports; fixed in ``workers.work``).
    """
    try:
        import dask.array as dask_array
    except ImportError as exc:  # pragma: no cover - exercised where the extra is absent
        raise ImportError("conv1d_cli.dask needs Dask: pip install 'conv1d-cli[dask]'") from exc
    return dask_array


def _tokenize(*args: Any) -> str:
    from dask.base import tokenize

    return str(tokenize(*args))


def is_dask_array(x: object) -> bool:
    """Whether ``x`` is a Dask array (without importing Dask for other objects).

    Examples
    --------
    >>> import dask.array as da
    >>> is_dask_array(np.zeros(3)), is_dask_array(da.zeros(3))
    (False, True)
    """
    return type(x).__module__.startswith("dask.") and hasattr(x, "__dask_graph__")


def conv1d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: int = 1,
    padding: Padding = 0,
    dilation: int = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    *,
    method: str = "auto",
) -> da.Array:
    """Lazy :func:`conv1d_cli.conv1d` of a Dask array, chunk by chunk.

    Parameters
    ----------
    x : dask.array.Array
        ``(N, C_in, L)`` or ``(C_in, L)``; any chunking (chunks shorter than the
        kernel are merged as needed). Chunk sizes must be known.
    weight, bias, stride, padding, dilation, groups, padding_mode, method
        As :func:`conv1d_cli.conv1d` (NumPy arrays for ``weight`` and ``bias``;
        they are sent once with the graph).

    Returns
    -------
    dask.array.Array
        Shape ``(N, C_out, L_out)`` (or ``(C_out, L_out)``), the dtype
        :func:`conv1d_cli.conv1d` would return. Its time chunks are the input's
        over the stride (the first and last may differ: ``.rechunk()`` before
        storing to Zarr, which wants regular chunks).

    Raises
    ------
    ConfigError, ShapeError
        The same checks and messages as :func:`conv1d_cli.conv1d`, raised when
        the graph is built, before any chunk is read.

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.ones((2, 3, 100), chunks=(1, 3, 10))
    >>> y = conv1d(x, np.ones((4, 3, 5)), stride=2, padding="causal")
    >>> y.shape, y.chunks[-1][:3]
    ((2, 4, 50), (7, 5, 5))
    >>> float(y[0, 0, -1].compute())
    15.0
    """
    da = _dask_array()
    if method not in core.METHODS:
        raise ConfigError(f"method must be one of {', '.join(core.METHODS)}, got {method!r}")
    if not is_dask_array(x):
        x = da.asarray(x)
    weight = core.as_real_array("weight", weight)
    bias = None if bias is None else core.as_real_array("bias", bias)
    if x.dtype.kind not in "biuf":
        raise ShapeError(f"input must be a real numeric array, got dtype {x.dtype}")
    if any(math.isnan(size) for size in x.shape):
        raise ShapeError("the input's chunk sizes are unknown; call x.compute_chunk_sizes() first")
    # The core's own validation on a stand-in of the right shape and dtype (a
    # zero-strided view: no memory), so every error and message is the core's.
    stand_in = np.broadcast_to(np.zeros((), x.dtype), x.shape)
    plan = core._plan(stand_in, weight, bias, stride, padding, dilation, groups, padding_mode)
    batched = plan.batched
    xb = x if batched else x[None]
    if 0 in xb.shape[:2]:
        # Nothing to stream: the core gives the empty result (or its error).
        empty = core.conv1d(
            np.zeros(xb.shape, x.dtype),
            weight,
            bias,
            plan.stride,
            (plan.left, plan.right),
            plan.dilation,
            plan.groups,
            plan.padding_mode,
            method=method,
        )
        result = da.from_array(empty)
        return result if batched else result[0]
    out = _convolve(xb, weight, bias, plan, method)
    return out if batched else out[0]


def _pad_time(x: da.Array, left: int, right: int, mode: str) -> da.Array:
    """``pad1d`` of a Dask array: edges built from the array's ends, PyTorch's meaning."""
    if left == right == 0:
        return x
    da = _dask_array()
    length = x.shape[-1]
    lead = x.shape[:-1]
    edge_chunks = x.chunks[:-1]

    def zeros(n: int) -> Any:
        return da.zeros((*lead, n), dtype=x.dtype, chunks=(*edge_chunks, (n,)))

    if mode == "zeros":
        head, tail = zeros(left), zeros(right)
    elif mode == "replicate":
        head = da.broadcast_to(x[..., :1], (*lead, left), chunks=(*edge_chunks, (left,)))
        tail = da.broadcast_to(x[..., -1:], (*lead, right), chunks=(*edge_chunks, (right,)))
    elif mode == "reflect":
        # torch's reflect mirrors about the edge sample without repeating it.
        head = x[..., 1 : left + 1][..., ::-1]
        tail = x[..., length - 1 - right : length - 1][..., ::-1]
    elif mode == "circular":
        # The signal wraps: the left pad is its end, the right pad its start.
        head = x[..., length - left :]
        tail = x[..., :right]
    else:  # pragma: no cover - _plan validated the mode
        raise AssertionError(mode)
    # The pads join the first and last chunks (one chunk each, a copy of those two
    # only): every other chunk of the input stays as it is, with no task of its own.
    sizes = x.chunks[-1]
    whole = {x.ndim - 1: -1}
    if len(sizes) == 1:
        return da.concatenate([head, x, tail], axis=-1).rechunk(whole)
    first = da.concatenate([head, x[..., : sizes[0]]], axis=-1).rechunk(whole)
    last = da.concatenate([x[..., length - sizes[-1] :], tail], axis=-1).rechunk(whole)
    return da.concatenate([first, x[..., sizes[0] : length - sizes[-1]], last], axis=-1)


def _merged(sizes: Sequence[int], least: int) -> list[int]:
    """Chunk sizes with every chunk but the first at least ``least`` long (merged backwards).

    Examples
    --------
    >>> _merged([3, 10, 2, 10, 1], 4)
    [3, 12, 11]
    """
    merged = [int(n) for n in sizes if n]
    i = len(merged) - 1
    while i >= 1:
        if merged[i] < least:
            merged[i - 1] += merged.pop(i)
        i -= 1
    return merged


def _time_plan(
    sizes: Sequence[int], stride: int, length_out: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per padded chunk: the offset of its first output's window, and its output count.

    Chunk ``j`` (padded samples ``[B_j, B_j+1)``) computes the outputs ``t`` whose
    window starts there (``t * stride`` in it): whole strided outputs, none shared.

    Examples
    --------
    >>> _time_plan([5, 5, 6], 2, 6)
    ((0, 1, 0), (3, 2, 1))
    """
    offsets, counts = [], []
    start = 0
    for size in sizes:
        first = min(-(-start // stride), length_out)
        end = min(-(-(start + size) // stride), length_out)
        offsets.append(first * stride - start if end > first else 0)
        counts.append(end - first)
        start += size
    return tuple(offsets), tuple(counts)


def _block(
    body: np.ndarray,
    halo: np.ndarray | None,
    weight: np.ndarray,
    bias: np.ndarray | None,
    block_id: tuple[int, ...] | None = None,
    *,
    last: int,
    offsets: tuple[int, ...],
    counts: tuple[int, ...],
    field: int,
    out_dtype: np.dtype[Any],
    stride: int,
    dilation: int,
    groups: int,
    group_starts: tuple[int, ...],
    method: str,
) -> np.ndarray:
    """One task: the chunk and its right halo through the core, unpadded.

    The chunk computes ``counts[j]`` outputs, the first at ``offsets[j]`` in it.
    They are computed a cache-sized block at a time by one
    :class:`~conv1d_cli.core.Correlator` (the local stream's path: the kernel's
    spectrum is made once per task, and only the last block, which reaches into
    the halo, is joined to it; the chunk itself is never copied whole).
    """
    assert block_id is not None
    j = block_id[2]
    first = group_starts[block_id[1]]
    count = group_starts[block_id[1] + 1] - first
    per_group = weight.shape[0] // groups
    rows = slice(first * per_group, (first + count) * per_group)
    n = counts[j]
    out = np.empty((*body.shape[:-2], rows.stop - rows.start, n), out_dtype)
    if n == 0:  # a short chunk in which no window starts (a stride longer than it)
        return out
    correlate = core.Correlator(
        weight[rows], None if bias is None else bias[rows], stride, dilation, count, method
    )
    size = body.shape[-1]
    frames = _BLOCK_SAMPLES // max(1, body.shape[0] * body.shape[1])
    budget = min(max(frames, _BLOCK_FRAMES[0]), _BLOCK_FRAMES[1]) // stride
    step = correlate.piece_outputs(body.shape[0], budget)
    for s in range(0, n, step):
        e = min(n, s + step)
        start = offsets[j] + s * stride
        stop = offsets[j] + (e - 1) * stride + field
        if stop <= size:
            piece = body[..., start:stop]
        else:
            assert halo is not None and j != last
            piece = np.concatenate([body[..., start:], halo[..., : stop - size]], axis=-1)
        out[..., s:e] = correlate(np.ascontiguousarray(piece))
    return out


def _head(block: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` samples of a chunk: the halo of the chunk before it."""
    return block[..., :n]


def _channel_chunks(chunks: tuple[int, ...], groups: int, c_in: int) -> tuple[int, ...]:
    """Channel chunks on group boundaries, close to the input's own (whole with groups=1)."""
    width = c_in // groups
    sizes: list[int] = []
    start = 0
    for edge in np.cumsum(chunks)[:-1]:
        aligned = int(edge) // width * width
        if aligned > start:
            sizes.append(aligned - start)
            start = aligned
    sizes.append(c_in - start)
    return tuple(sizes)


def _convolve(
    x: da.Array, weight: np.ndarray, bias: np.ndarray | None, plan: Any, method: str
) -> da.Array:
    da = _dask_array()
    stride, dilation, groups = plan.stride, plan.dilation, plan.groups
    kernel = weight.shape[-1]
    field = dilation * (kernel - 1) + 1
    length_out = plan.length_out
    padded = _pad_time(x, plan.left, plan.right, plan.padding_mode)

    # Chunks stay where the input has them (no data moves between tasks): chunk j
    # computes the outputs whose windows start in it, and reads the first
    # `field - 1` samples of chunk j + 1 as its halo. Only chunks shorter than
    # that (tiny ones, or the pads) are merged into the chunk before them.
    halo = field - 1
    in_time = _merged(padded.chunks[-1], max(halo, 1))
    offsets, out_time = _time_plan(in_time, stride, length_out)
    c_chunks = _channel_chunks(x.chunks[1], groups, x.shape[1])
    body = padded
    if tuple(in_time) != padded.chunks[-1] or c_chunks != padded.chunks[1]:
        body = padded.rechunk((x.chunks[0], c_chunks, tuple(in_time)))

    # halos[j] = the first `halo` samples of chunk j + 1; the last chunk needs none
    # (it ends the signal), so its partner is a placeholder the task ignores.
    lead = (x.chunks[0], c_chunks)
    halos = None
    if halo and len(in_time) > 1:
        heads_sizes = tuple(min(halo, n) for n in in_time)
        heads = da.map_blocks(_head, body, halo, chunks=(*lead, heads_sizes), dtype=body.dtype)
        # Shift by one chunk: drop the first head, repeat the last as the placeholder.
        halos = da.concatenate([heads[..., heads_sizes[0] :], heads[..., -halo:]], axis=-1)
    width = x.shape[1] // groups
    group_starts = tuple(int(v) for v in np.cumsum((0, *c_chunks)) // width)
    per_group = weight.shape[0] // groups
    out_channels = tuple(c // width * per_group for c in c_chunks)
    task = functools.partial(
        _block,
        stride=stride,
        dilation=dilation,
        groups=groups,
        group_starts=group_starts,
        method=method,
        last=len(in_time) - 1,
        offsets=offsets,
        counts=out_time,
        field=field,
        out_dtype=plan.dtype,
    )
    return da.map_blocks(
        task,
        body,
        halos,
        # The weights as one key of the graph that every task depends on, not a
        # copy inside each task: a layer of megabytes times thousands of chunks
        # would otherwise be sent (and held by the scheduler) once per chunk.
        _graph_constant(weight),
        None if bias is None else _graph_constant(bias),
        chunks=(x.chunks[0], out_channels, out_time),
        dtype=plan.dtype,
        name="conv1d-" + _tokenize(body, halos, weight, bias, stride, dilation, method),
        meta=np.empty((0, 0, 0), plan.dtype),
    )


def _graph_constant(value: np.ndarray) -> Any:
    """``value`` as a single key of the task graph (a ``dask.delayed``), named by content."""
    from dask.delayed import delayed

    return delayed(value, pure=True, name="conv1d-constant-" + _tokenize(value))
