"""conv1d_cli.dask: lazy convolution of Dask arrays equals the NumPy core (issue 12, item 2)."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conv1d_cli import Conv1d, Conv1dError
from conv1d_cli import conv1d as np_conv1d

# Dask is imported by the tests themselves, not at collection: importing it changes
# the whole pytest process (tblib's exception pickling; see conv1d_cli.dask._dask_array).
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("dask") is None, reason="needs the [dask] extra"
)


class _LazyModule:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        if attr.startswith("_"):  # pytest's collection probes attributes: import nothing
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)


da = _LazyModule("dask.array")
dconv = _LazyModule("conv1d_cli.dask")

MODES = ["zeros", "reflect", "replicate", "circular"]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _close(got: np.ndarray, want: np.ndarray, dtype) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= TOL[dtype] * scale, (err, scale)


@st.composite
def partitions(draw, total: int, max_parts: int = 8):
    """Chunk sizes summing to ``total`` (any sizes, 1 upwards)."""
    if total <= 1:
        return (total,)
    cuts = draw(st.sets(st.integers(1, total - 1), max_size=max_parts - 1))
    edges = [0, *sorted(cuts), total]
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:], strict=True))


@st.composite
def cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    per_in = draw(st.integers(1, 2))
    per_out = draw(st.integers(1, 2))
    kernel = draw(st.integers(1, 7))
    dilation = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 4))
    length = draw(st.integers(1, 60))
    batch = draw(st.sampled_from([None, 1, 2]))
    padding = draw(
        st.one_of(
            st.integers(0, 6),
            st.sampled_from(["same", "valid", "causal", "full"]),
            st.tuples(st.integers(0, 6), st.integers(0, 6)),
        )
    )
    mode = draw(st.sampled_from(MODES))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    bias = draw(st.booleans())
    c_in = groups * per_in
    shape = (c_in, length) if batch is None else (batch, c_in, length)
    chunks = tuple(draw(partitions(n)) for n in shape)
    return dict(
        shape=shape,
        chunks=chunks,
        weight_shape=(groups * per_out, per_in, kernel),
        bias=bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=mode,
        dtype=dtype,
        method=draw(st.sampled_from(["auto", "direct", "fft"])),
    )


def _arrays(case, seed=0):
    rng = np.random.default_rng(seed)
    dtype = case["dtype"]
    x = rng.standard_normal(case["shape"]).astype(dtype)
    weight = rng.standard_normal(case["weight_shape"]).astype(dtype)
    bias = rng.standard_normal(case["weight_shape"][0]).astype(dtype) if case["bias"] else None
    return x, weight, bias


def _args(case):
    return dict(
        stride=case["stride"],
        padding=case["padding"],
        dilation=case["dilation"],
        groups=case["groups"],
        padding_mode=case["padding_mode"],
        method=case["method"],
    )


@settings(max_examples=200)
@given(cases())
def test_dask_equals_core(case):
    x, weight, bias = _arrays(case)
    try:
        want = np_conv1d(x, weight, bias, **_args(case))
    except Conv1dError as e:
        # Refused by the core: refused identically, when the graph is built.
        with pytest.raises(type(e)) as caught:
            dconv.conv1d(da.from_array(x, chunks=case["chunks"]), weight, bias, **_args(case))
        assert str(caught.value) == str(e)
        return
    y = dconv.conv1d(da.from_array(x, chunks=case["chunks"]), weight, bias, **_args(case))
    assert y.shape == want.shape and y.dtype == want.dtype
    got = y.compute(scheduler="sync")
    _close(got, want, case["dtype"])
    # Time chunks follow the input's: never more output chunks than input chunks.
    assert sum(y.chunks[-1]) == want.shape[-1]
    assert len(y.chunks[-1]) <= len(case["chunks"][-1])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", [(5, 3), "same", "causal", 2])
def test_dask_chunks_shorter_than_the_kernel(mode, padding):
    """Chunks of 1-3 samples under an 8-tap, dilation-2 kernel: the halo spans many chunks."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 40))
    weight = rng.standard_normal((3, 1, 8))
    chunks = (1, 3, (1, 2, 3) * 6 + (1, 1, 2))
    assert sum(chunks[-1]) == 40
    y = dconv.conv1d(
        da.from_array(x, chunks=chunks),
        weight,
        padding=padding,
        dilation=2,
        groups=3,
        padding_mode=mode,
    )
    _close(
        y.compute(scheduler="sync"),
        np_conv1d(x, weight, padding=padding, dilation=2, groups=3, padding_mode=mode),
        np.float64,
    )


def test_dask_long_kernel_in_whole_frames():
    """A 20 000-tap IR: each task filters its chunk in whole FFT frames (2**17 points)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 400_000)).astype(np.float32)
    weight = rng.standard_normal((2, 1, 20_000)).astype(np.float32)
    y = dconv.conv1d(da.from_array(x, chunks=(2, 150_000)), weight, padding="causal", groups=2)
    want = np_conv1d(x.astype(np.float64), weight.astype(np.float64), padding="causal", groups=2)
    _close(y.compute(scheduler="sync"), want.astype(np.float32), np.float32)


def test_dask_graph_is_linear_in_chunks():
    weight = np.ones((4, 2, 9))
    sizes = []
    for n_chunks in (10, 20, 40, 80):
        x = da.zeros((2, 4, 100 * n_chunks), chunks=(1, 2, 100))
        y = dconv.conv1d(x, weight, stride=2, padding=4, groups=2, padding_mode="reflect")
        sizes.append(len(y.__dask_graph__()))
    per_chunk = [(b - a) / 10 for a, b in zip(sizes, sizes[1:], strict=False)]
    # Doubling the chunks doubles the growth: a constant number of tasks per chunk.
    assert sizes[1] - sizes[0] == pytest.approx((sizes[2] - sizes[1]) / 2, rel=0.1)
    assert sizes[2] - sizes[1] == pytest.approx((sizes[3] - sizes[2]) / 2, rel=0.1)
    assert per_chunk[0] / 2 < 30  # tasks per time chunk (x 2 batch x 2 channel blocks)


def test_dask_channel_chunks_respect_groups():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 6, 50))
    weight = rng.standard_normal((9, 2, 3))  # 3 groups of 2 input channels
    y = dconv.conv1d(da.from_array(x, chunks=(1, (1, 3, 2), 7)), weight, groups=3)
    assert all(c % 3 == 0 for c in y.chunks[1])  # whole groups of 3 output channels
    _close(y.compute(scheduler="sync"), np_conv1d(x, weight, groups=3), np.float64)


def test_dask_layer_call_returns_a_lazy_array():
    layer = Conv1d(2, 3, 5, stride=2, padding=2, padding_mode="circular", seed=0)
    x = np.random.default_rng(3).standard_normal((2, 2, 64)).astype(np.float32)
    y = layer(da.from_array(x, chunks=(1, 2, 16)))
    assert isinstance(y, da.Array)
    _close(y.compute(scheduler="sync"), layer(x), np.float32)


def test_dask_mmap_npy(tmp_path):
    path = tmp_path / "big.npy"
    x = np.random.default_rng(4).standard_normal((3, 5000))
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")
    weight = np.random.default_rng(5).standard_normal((3, 1, 31))
    y = dconv.conv1d(
        da.from_array(mapped, chunks=(3, 700)),
        weight,
        padding="same",
        groups=3,
        padding_mode="reflect",
    )
    out = tmp_path / "out.npy"
    np.save(out, y.compute(scheduler="sync"))
    _close(
        np.load(out),
        np_conv1d(x, weight, padding="same", groups=3, padding_mode="reflect"),
        np.float64,
    )


def test_dask_zarr(tmp_path):
    zarr = pytest.importorskip("zarr")
    x = np.random.default_rng(6).standard_normal((2, 4, 3000)).astype(np.float32)
    store = zarr.open_array(
        str(tmp_path / "x.zarr"), mode="w", shape=x.shape, chunks=(1, 4, 512), dtype="float32"
    )
    store[...] = x
    weight = np.random.default_rng(7).standard_normal((4, 4, 11)).astype(np.float32)
    y = dconv.conv1d(da.from_zarr(store), weight, padding="causal", stride=3)
    target = str(tmp_path / "y.zarr")
    y.rechunk((1, 4, 512)).to_zarr(target, compute=True)  # Zarr wants regular chunks
    got = da.from_zarr(target).compute()
    _close(got, np_conv1d(x, weight, padding="causal", stride=3), np.float32)


def test_dask_errors_are_the_cores():
    x = da.zeros((2, 10), chunks=5)
    with pytest.raises(Conv1dError, match="input has 2 channels"):
        dconv.conv1d(x, np.zeros((1, 3, 3)))
    with pytest.raises(Conv1dError, match="method"):
        dconv.conv1d(x, np.zeros((1, 2, 3)), method="magic")
    unknown = da.zeros((2, 10), chunks=5)[:, da.arange(10, chunks=5) > 3]
    with pytest.raises(Conv1dError, match="compute_chunk_sizes"):
        dconv.conv1d(unknown, np.zeros((1, 2, 3)))


def test_dask_empty_batch():
    x = da.zeros((0, 2, 10), chunks=(1, 2, 5))
    y = dconv.conv1d(x, np.ones((1, 2, 3)))
    assert y.shape == (0, 1, 8)


def test_dask_is_lazy():
    """Building the graph reads nothing: a chunk that raises is never touched."""

    def explode(block):
        raise AssertionError("read")

    x = da.zeros((1, 2, 100), chunks=(1, 2, 10)).map_blocks(explode, dtype=float)
    y = dconv.conv1d(x, np.ones((1, 2, 3)), padding_mode="circular", padding=1)
    assert y.shape == (1, 1, 100)


def test_weights_are_one_key_of_the_graph():
    """Every task depends on the weights' one key: a layer of megabytes is not copied
    into each of thousands of tasks (the graph stays linear in the chunks, with a small
    constant per chunk)."""
    import pickle

    rng = np.random.default_rng(3)
    weight = rng.standard_normal((64, 64, 9))  # 295 KB
    x = da.ones((1, 64, 4000), chunks=(1, 64, 100))  # no data of its own in the graph
    graph = dict(dconv.conv1d(x, weight, padding=4).__dask_graph__())
    sizes = [len(pickle.dumps(task)) for task in graph.values()]
    assert sum(sizes) < 2 * weight.nbytes + 40 * 20_000, (len(sizes), max(sizes))
    assert sum(size > weight.nbytes for size in sizes) == 1


def test_block_budget_matches_the_stream():
    """A task filters its chunk in the local stream's block sizes."""
    from conv1d_cli import dask as dask_mod
    from conv1d_cli import stream

    assert dask_mod._BLOCK_SAMPLES == stream.BLOCK_SAMPLES
    assert dask_mod._BLOCK_FRAMES == stream.BLOCK_FRAMES
