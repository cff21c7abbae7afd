"""Regression tests for issue items 4 (NaN/Inf spreading) and 10 (tiny blocks, huge padding).

Item 4: a non-finite input sample must reach exactly the outputs whose window
holds it, with every algorithm (each direct formulation and the FFT), one-shot
and streamed; those outputs follow the IEEE arithmetic of the direct sum
(tests/reference.py), every other output is bit-for-bit what the same method
gives with the bad samples zeroed.

Item 10: padding streams block by block instead of being allocated at once,
and im2col gathers its columns without a Python loop over taps.
"""

from __future__ import annotations

import contextlib
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_conv1d

from conv1d_cli import core, kernels, stream
from conv1d_cli.cli import cli
from conv1d_cli.core import Correlator, conv1d
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d
from conv1d_cli.stream import StreamChain

MODES = ("zeros", "reflect", "replicate", "circular")
# "small": the one-GEMM path of small problems; "im2col"/"per-tap" with the
# small path switched off, so zero padding takes the pad-free _zero_padded
# route; "banded" needs one input channel per group; "fft" via method="fft".
FORMULATIONS = ("small", "im2col", "per-tap", "banded", "fft")
RTOL = {np.float32: 1e-5, np.float64: 1e-10}


@contextlib.contextmanager
def forced(formulation: str) -> Iterator[str]:
    """Make every Correlator use ``formulation``; yields the ``method`` to pass."""
    with pytest.MonkeyPatch.context() as mp:
        if formulation == "fft":
            yield "fft"
            return
        name = "im2col" if formulation == "small" else formulation
        param = 4 if name == "banded" else 0
        mp.setattr(Correlator, "_choose", lambda self, n, padded: (name, param))
        if formulation != "small":
            mp.setattr(core, "_SMALL_ELEMENTS", 0)
        yield "direct"


def reachable(x: np.ndarray, bad: np.ndarray, w: np.ndarray, **kw: object) -> np.ndarray:
    """Outputs whose window holds a bad sample, by the oracle: ones on the indicator."""
    hits = reference_conv1d(bad.astype(np.float64), np.ones(w.shape), **kw)
    return hits > 0


def assert_ieee_equal(got: np.ndarray, want: np.ndarray, dtype: type) -> None:
    """Same NaN positions, same signed Infs, finite values within tolerance."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    scale = max(float(np.max(np.abs(want[finite]), initial=0.0)), 1e-30)
    err = float(np.max(np.abs(got[finite] - want[finite]), initial=0.0)) / scale
    assert err <= RTOL[dtype], f"relative error {err:.3g}"


@st.composite
def nonfinite_cases(draw: st.DrawFn) -> dict:
    formulation = draw(st.sampled_from(FORMULATIONS))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in_group = 1 if formulation == "banded" else draw(st.integers(1, 3))
    c_out_group = draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 2, 3, 5, 8]))
    stride = draw(st.sampled_from([1, 1, 2, 3]))
    dilation = draw(st.sampled_from([1, 1, 2, 3]))
    mode = draw(st.sampled_from(MODES))
    length = draw(st.integers(12, 48))
    field = dilation * (k - 1) + 1
    cap = length - 1 if mode == "reflect" else length
    left = draw(st.integers(0, min(cap, field + 1)))
    right = draw(st.integers(0, min(cap, field + 1)))
    if length + left + right < field:
        right += field
        mode = "zeros"
    n = draw(st.integers(1, 2))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in_group * groups, length)).astype(dtype)
    w = rng.standard_normal((c_out_group * groups, c_in_group, k)).astype(dtype)
    if draw(st.booleans()):
        w[..., 0] = 0  # a zero tap on an Inf sample: Inf*0 = NaN
    bias = rng.standard_normal(c_out_group * groups).astype(dtype) if draw(st.booleans()) else None
    count = draw(st.integers(1, 4))
    values = [np.inf, -np.inf, np.nan]
    for _ in range(count):
        # The edges often: they are copied into reflect/replicate/circular pads.
        where = draw(st.sampled_from([0, length - 1, draw(st.integers(0, length - 1))]))
        x[draw(st.integers(0, n - 1)), draw(st.integers(0, x.shape[1] - 1)), where] = draw(
            st.sampled_from(values)
        )
    kw = {
        "bias": bias,
        "stride": stride,
        "padding": (left, right),
        "dilation": dilation,
        "groups": groups,
        "padding_mode": mode,
    }
    return {"formulation": formulation, "x": x, "w": w, "kw": kw, "dtype": dtype}


@given(nonfinite_cases())
def test_nonfinite_reaches_exactly_the_direct_sum_outputs(case: dict) -> None:
    x, w, kw, dtype = case["x"], case["w"], case["kw"], case["dtype"]
    bad = ~np.isfinite(x)
    want = reference_conv1d(x, w, **kw)
    with forced(case["formulation"]) as method:
        got = conv1d(x, w, **kw, method=method)
        clean = conv1d(np.where(bad, 0, x), w, **kw, method=method)
    assert got.dtype == dtype
    assert_ieee_equal(got, want, dtype)
    reach = reachable(x, bad, w, **{k: v for k, v in kw.items() if k != "bias"})
    # Every reached output is non-finite, and nothing else is.
    np.testing.assert_array_equal(~np.isfinite(got), reach)
    # Unreached outputs: bit for bit what the same method gives without the bad samples.
    np.testing.assert_array_equal(got[~reach], clean[~reach])


@pytest.mark.parametrize("formulation", FORMULATIONS)
def test_nonfinite_inf_minus_inf_in_one_window_is_nan(formulation: str) -> None:
    x = np.zeros((1, 1, 40))
    x[0, 0, 20], x[0, 0, 22] = np.inf, -np.inf
    w = np.ones((1, 1, 5))
    with forced(formulation) as method:
        y = conv1d(x, w, padding=2, method=method)[0, 0]
    # Output t sees x[t-2 .. t+2].
    assert np.isposinf(y[18:20]).all()
    assert np.isnan(y[20:23]).all()
    assert np.isneginf(y[23:25]).all()
    assert (y[:18] == 0).all() and (y[25:] == 0).all()


@pytest.mark.parametrize(("k", "method"), [(101, "auto"), (1001, "direct"), (1001, "fft")])
def test_nonfinite_one_inf_in_a_long_signal_touches_k_outputs(k: int, method: str) -> None:
    """The issue's numbers: 128, 1088 and 7192 NaN outputs where K belong."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 200_000)).astype(np.float32)
    x[0, 100_000] = np.inf
    w = rng.standard_normal((1, 1, k)).astype(np.float32)
    y = conv1d(x, w, method=method)
    bad = np.flatnonzero(~np.isfinite(y[0]))
    np.testing.assert_array_equal(bad, np.arange(100_000 - k + 1, 100_001))
    clean = x.copy()
    clean[0, 100_000] = 0
    y0 = conv1d(clean, w, method=method)
    mask = np.isfinite(y)
    np.testing.assert_array_equal(y[mask], y0[mask])


@pytest.mark.parametrize("formulation", FORMULATIONS)
@pytest.mark.parametrize("mode", MODES)
def test_nonfinite_streamed_equals_one_shot(formulation: str, mode: str) -> None:
    rng = np.random.default_rng(5)
    groups = 2
    c_in_group = 1 if formulation == "banded" else 2
    x = rng.standard_normal((c_in_group * groups, 300))
    x[0, 0] = np.inf
    x[-1, 127] = -np.inf  # the last sample of block 2 (blocks of 64)
    x[0, 128] = np.inf
    x[1, 299] = np.nan
    w = rng.standard_normal((4, c_in_group, 9))
    layer = Conv1d.from_weights(
        w, rng.standard_normal(4), padding=(5, 7), dilation=2, groups=groups, padding_mode=mode
    )
    prefix = x[:, -5:] if mode == "circular" else None
    kw = {"stride": 1, "padding": (5, 7), "dilation": 2, "groups": groups, "padding_mode": mode}
    with forced(formulation) as method:
        chain = StreamChain([layer], method=method, prefix=prefix)
        parts = [chain.push(x[:, i : i + 64]) for i in range(0, 300, 64)]
        got = np.concatenate([*parts, chain.finish()], axis=-1)
        whole = conv1d(x, w, layer.bias, **kw, method=method)
    want = reference_conv1d(x, w, layer.bias, **kw)
    assert_ieee_equal(got, want, np.float64)
    assert_ieee_equal(whole, want, np.float64)


def test_nonfinite_cli_apply_bad_sample_at_block_boundary(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 200))
    x[1, 63] = np.inf  # last sample of block 1 (--block-size 64)
    x[0, 64] = np.nan  # first sample of block 2
    np.save(tmp_path / "x.npy", x)
    w = rng.standard_normal((2, 2, 33))
    save_layer(Conv1d.from_weights(w, padding="same"), tmp_path / "l.npz", overwrite=True)
    args = ["apply", "-w", str(tmp_path / "l.npz"), str(tmp_path / "x.npy")]
    args += ["-o", str(tmp_path / "y.npy"), "--block-size", "64", "--allow-nonfinite"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    got = np.load(tmp_path / "y.npy")
    assert_ieee_equal(got, reference_conv1d(x, w, padding="same"), np.float64)
    # Both output channels mix both inputs: outputs 63-16 .. 64+16 and no others.
    bad = np.flatnonzero(~np.isfinite(got).all(axis=0))
    np.testing.assert_array_equal(bad, np.arange(63 - 16, 64 + 17))


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_weight_stays_in_its_output_channel(method: str, value: float) -> None:
    """Documented: a non-finite weight spoils its output channel only (as in PyTorch)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 500))
    w = rng.standard_normal((4, 3, 31))
    w[1, 2, 7] = value
    with np.errstate(invalid="ignore", over="ignore"):  # NumPy's own Inf*0 warnings
        y = conv1d(x, w, padding=15, method=method)
    clean = w.copy()
    clean[1] = 0
    y0 = conv1d(x, clean, padding=15, method=method)
    others = [0, 2, 3]
    np.testing.assert_array_equal(y[others], y0[others])
    # Every output whose window lies on real samples is non-finite.
    assert not np.isfinite(y[1, 15:-15]).any()


# -- item 10: huge padding streams, tiny blocks ---------------------------------------


@pytest.mark.parametrize("mode", ["zeros", "replicate"])
def test_huge_padding_streams_in_bounded_memory(mode: str) -> None:
    """padding=10**7 on 1000 samples: no pad (or its outputs) allocated at once."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 1000))
    w = rng.standard_normal((1, 1, 5))
    pad, stride = 10**7, 50  # 80 MB of float64 per padded side; the stride keeps it quick
    kw = {"stride": stride, "padding_mode": mode}
    layer = Conv1d.from_weights(w, rng.standard_normal(1), padding=pad, **kw)
    # Windows wholly in a pad all give the same value, so a one-shot call with a
    # pad of 50 (> the field) has every distinct output; output t of the stream
    # is its output t - (pad - 50) / stride, clamped to its ends.
    small = conv1d(x, w, layer.bias, padding=50, **kw)
    tracemalloc.start()
    try:
        chain = StreamChain([layer])
        parts = [chain.push(x[:, i : i + 4096]) for i in range(0, 1000, 4096)]
        got = np.concatenate([*parts, chain.finish()], axis=-1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.shape[-1] == (2 * pad + 1000 - 5) // stride + 1
    t = np.arange(got.shape[-1]) - (pad - 50) // stride
    np.testing.assert_allclose(got, small[:, t.clip(0, small.shape[-1] - 1)], rtol=1e-12)
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", ["direct", "fft"])
def test_long_padding_fed_in_pieces_equals_one_shot(mode: str, method: str) -> None:
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 3, 700))
    w = rng.standard_normal((2, 3, 17))
    left, right = (650, 699) if mode in ("reflect", "circular") else (5000, 3001)
    kw = {"padding": (left, right), "dilation": 2, "stride": 3, "padding_mode": mode}
    layer = Conv1d.from_weights(w, **kw)
    prefix = x[..., -left:] if mode == "circular" else None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stream, "_PAD_PIECE_BYTES", 8 * 3 * 100)  # pad pieces of 100 frames
        chain = StreamChain([layer], method=method, prefix=prefix)
        parts = [p for i in range(0, 700, 64) for p in chain.push_pieces(x[..., i : i + 64])]
        got = np.concatenate([*parts, *chain.finish_pieces()], axis=-1)
    want = conv1d(x, w, **kw, method=method)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    if mode in ("zeros", "replicate"):
        # Each 100-frame pad piece is one correlator call and one output piece.
        assert max(p.shape[-1] for p in parts[:-1]) <= 100


def _im2col_lines(run: Callable[[], object]) -> tuple[int, int]:
    """(calls of core._im2col, Python lines it executed) while ``run()`` runs."""
    code = core._im2col.__code__
    counts = [0, 0]

    def local(frame: FrameType, event: str, arg: object) -> object:
        if event == "line":
            counts[1] += 1
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> object:
        if event == "call" and frame.f_code is code:
            counts[0] += 1
            return local
        return None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(old)
    return counts[0], counts[1]


@pytest.mark.parametrize("block", [1, 3, 64])
def test_tiny_blocks_long_kernel_no_python_loop_over_taps(block: int) -> None:
    """--block-size 1 with 4097 taps: each call gathers its columns without a tap loop."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 200)).astype(np.float32)
    w = rng.standard_normal((1, 1, 4097)).astype(np.float32)
    layer = Conv1d.from_weights(w, padding="causal")
    chain = StreamChain([layer], method="direct")
    parts: list[np.ndarray] = []

    def run() -> None:
        parts.extend(chain.push(x[:, i : i + block]) for i in range(0, 200, block))
        parts.append(chain.finish())

    calls, lines = _im2col_lines(run)
    got = np.concatenate(parts, axis=-1)
    # Never a block larger than the user's: one output per sample pushed.
    assert all(p.shape[-1] <= block for p in parts)
    want = conv1d(x.astype(np.float64), w.astype(np.float64), padding="causal", method="direct")
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())
    assert calls > 0
    assert lines / calls < 60, f"{lines / calls:.0f} lines per _im2col call"


@pytest.mark.parametrize("padding", [0, 3, 40, 500])
@pytest.mark.parametrize("stride", [1, 2, 7])
def test_im2col_pad_free_edges_match_padded_copy(padding: int, stride: int) -> None:
    """The masked gather of columns that reach into zero padding == reading a padded copy."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 300))
    w = rng.standard_normal((6, 2, 9))
    kw = {"stride": stride, "dilation": 3, "groups": 2}
    with forced("im2col"), pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels, "_IM2COL_CHUNK_BYTES", 4096)  # many chunks: edges inside some
        got = conv1d(x, w, padding=padding, **kw, method="direct")
        padded = np.pad(x, [(0, 0), (0, 0), (padding, padding)])
        want = conv1d(padded, w, **kw, method="direct")
    np.testing.assert_array_equal(got, want)
