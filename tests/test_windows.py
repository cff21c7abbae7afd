"""Windows of a chain: outputs [a, b) from just the input they need, equal to the whole."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conv1d_cli import windows
from conv1d_cli.core import conv1d
from conv1d_cli.errors import ConfigError, ShapeError
from conv1d_cli.layer import Conv1d


def _whole(layers, x):
    for layer in layers:
        x = layer(x, method="direct")
    return x


@st.composite
def _chains(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels = draw(st.integers(1, 3))
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, 9))
        mode = draw(st.sampled_from(["zeros", "reflect", "replicate"]))
        padding = draw(st.sampled_from([0, 1, 3, "same", "causal", (4, 1), (0, 5), "full"]))
        stride = draw(st.integers(1, 3))
        dilation = draw(st.integers(1, 3))
        if stride > 1 and padding == "same":
            padding = 2
        out = draw(st.integers(1, 3))
        weight = rng.standard_normal((out, channels, k))
        try:
            layers.append(
                Conv1d.from_weights(
                    weight,
                    rng.standard_normal(out),
                    stride=stride,
                    dilation=dilation,
                    padding=padding,
                    padding_mode=mode,
                )
            )
        except (ConfigError, ShapeError):
            continue
        channels = out
    return layers


@settings(max_examples=150, deadline=None)
@given(chain=_chains(), length=st.integers(1, 120), cuts=st.lists(st.integers(0, 200), max_size=4))
def test_windows_concatenated_equal_the_whole_signal(chain, length, cuts):
    if not chain:
        return
    x = np.random.default_rng(length).standard_normal((2, chain[0].in_channels, length))
    try:
        expected = _whole(chain, x)
    except (ConfigError, ShapeError):
        return  # too short for the chain, or a pad PyTorch refuses
    total = expected.shape[-1]
    edges = sorted({0, total, *(c % (total + 1) for c in cuts)})
    parts = []
    for a, b in zip(edges, edges[1:], strict=False):
        plan = windows.plan(chain, length, a, b)
        first = plan[0]
        assert 0 <= first.p <= first.q <= length
        got = windows.compute(chain, length, plan, x[..., first.p : first.q], np.float64, "direct")
        assert got.shape[-1] == b - a
        parts.append(got)
    np.testing.assert_allclose(np.concatenate(parts, axis=-1), expected, rtol=0, atol=1e-9)


def test_windows_read_only_their_halo_and_check_each_layer():
    rng = np.random.default_rng(1)
    a = Conv1d.from_weights(rng.standard_normal((2, 2, 31)), padding="same", padding_mode="reflect")
    b = Conv1d.from_weights(rng.standard_normal((1, 2, 9)), stride=2, padding=4)
    x = rng.standard_normal((1, 2, 10_000))
    plan = windows.plan([a, b], 10_000, 2_000, 2_500)
    # b's outputs 2000-2499 need its inputs 2000*2-4 = 3996 to 2499*2-4+8 = 5002, hence
    # a's inputs 15 further on each side (31 taps, 'same'): 3981 to 5017.
    assert (plan[1].p, plan[1].q) == (3_996, 5_003)
    assert (plan[0].p, plan[0].q) == (3_981, 5_018)
    seen = []
    got = windows.compute(
        [a, b], 10_000, plan, x[..., plan[0].p : plan[0].q], np.float64,
        check=lambda offset, block: seen.append((offset, block.shape[-1])),
    )  # fmt: skip
    assert seen == [(plan[1].p, plan[1].q - plan[1].p), (2_000, 500)]
    np.testing.assert_allclose(got, _whole([a, b], x)[..., 2_000:2_500], rtol=0, atol=1e-10)


def test_windows_float32_and_long_fft_kernels():
    rng = np.random.default_rng(2)
    layer = Conv1d.from_weights(
        rng.standard_normal((2, 1, 3_001)).astype(np.float32), groups=2, padding="same",
        padding_mode="replicate",
    )  # fmt: skip
    x = rng.standard_normal((1, 2, 400_000)).astype(np.float32)
    expected = conv1d(x.astype(np.float64), layer.weight.astype(np.float64), padding="same",
                      groups=2, padding_mode="replicate")  # fmt: skip
    for a, b in [(0, 150_000), (150_000, 390_000), (390_000, 400_000)]:
        plan = windows.plan([layer], 400_000, a, b)
        got = windows.compute([layer], 400_000, plan, x[..., plan[0].p : plan[0].q], np.float32)
        assert got.dtype == np.float32
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(got, expected[..., a:b], rtol=0, atol=1e-5 * scale)


def test_windows_long_kernels_go_in_whole_frames(correlator_calls):
    from conv1d_cli.core import Correlator

    rng = np.random.default_rng(3)
    layer = Conv1d.from_weights(
        rng.standard_normal((2, 1, 20_000)).astype(np.float32), groups=2, padding="causal"
    )
    x = rng.standard_normal((1, 2, 300_000)).astype(np.float32)
    frame = Correlator(layer.weight, groups=2).frame_outputs(1)
    assert frame is not None
    calls = correlator_calls
    plan = windows.plan([layer], 300_000, 50_000, 300_000)
    got = windows.compute([layer], 300_000, plan, x[..., plan[0].p : plan[0].q], np.float32)
    # Whole frames per call but the last: frames of 5 * 2**14 points, 61 921 outputs
    # each, 4 to a stream's call, as many as the piece budget (2**17 outputs) holds here.
    assert frame == 4 * 61_921 and windows._PIECE_SAMPLES // 2 == 2**17
    assert calls[0] == 2 * 61_921 + 20_000 - 1
    assert all(c == calls[0] for c in calls[:-1])
    expected = layer(x.astype(np.float64), method="fft")[..., 50_000:]
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


def test_windows_refuse_circular_padding():
    layer = Conv1d.from_weights(np.ones((1, 1, 3)), padding=1, padding_mode="circular")
    assert not windows.windowable([layer])
    with pytest.raises(ValueError, match="circular"):
        windows.plan([layer], 10, 0, 5)
