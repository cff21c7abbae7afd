"""Streaming engine: block-wise output equals the whole-signal conv1d (numpy only)."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from conv1d_cli.core import conv1d
from conv1d_cli.errors import ConfigError, DataFileError, ShapeError
from conv1d_cli.layer import Conv1d
from conv1d_cli.stream import (
    LayerStage,
    StreamChain,
    chain_min_length,
    chain_output_length,
    check_chain,
    check_finite,
    stream_filter,
)

MODES = ("zeros", "reflect", "replicate", "circular")
PADDINGS = (0, 1, 3, "same", "causal", "full", (4, 1), (0, 5))


def _layer(rng, c_in, c_out, k, *, groups=1, dtype=np.float64, **kw):
    weight = rng.standard_normal((c_out, c_in // groups, k)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    return Conv1d.from_weights(weight, bias, groups=groups, **kw)


def _blocks(x, size):
    return [x[..., i : i + size] for i in range(0, x.shape[-1], size)]


def _stream(layers, x, size, **kw):
    chain = StreamChain(layers, **kw)
    parts = [chain.push(b) for b in _blocks(x, size)]
    parts.append(chain.finish())
    return np.concatenate(parts, axis=-1), chain


def _prefix(layers, x):
    left = StreamChain.prefix_length(layers)
    return x[..., x.shape[-1] - left :] if left else None


def _assert_same(got, expected, err_msg=""):
    # The direct core reduces with BLAS GEMMs whose summation order may change
    # with the block width, so "identical" means within a few ulp (observed <= 1).
    assert got.shape == expected.shape, err_msg
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13 * scale, err_msg=err_msg)


def _whole(layers, x, method="direct"):
    for layer in layers:
        x = conv1d(
            x,
            layer.weight,
            layer.bias,
            layer.stride,
            layer.padding,
            layer.dilation,
            layer.groups,
            layer.padding_mode,
            method=method,
        )
    return x


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_stream_equals_whole_every_padding_mode(mode, padding):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 37))
    layer = _layer(rng, 2, 3, 4, padding=padding, padding_mode=mode, dilation=2)
    expected = _whole([layer], x)
    for size in (1, 2, 5, 16, 100):
        got, _ = _stream([layer], x, size, method="direct", prefix=_prefix([layer], x))
        _assert_same(got, expected, err_msg=f"block size {size}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("stride", "dilation", "k"), [(2, 1, 3), (3, 2, 5), (5, 1, 2), (7, 1, 3)])
def test_stream_equals_whole_strided_dilated(mode, stride, dilation, k):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 50))
    layer = _layer(rng, 3, 2, k, stride=stride, dilation=dilation, padding=2, padding_mode=mode)
    expected = _whole([layer], x)
    for size in (1, 3, 4, 7, 64):
        got, _ = _stream([layer], x, size, method="direct", prefix=_prefix([layer], x))
        _assert_same(got, expected, err_msg=f"block size {size}")


def test_stream_equals_whole_batched_grouped():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 40))  # (N, C, L)
    layer = _layer(rng, 6, 9, 5, groups=3, padding="same", padding_mode="reflect")
    got, _ = _stream([layer], x, 6, method="direct")
    _assert_same(got, _whole([layer], x))
    assert got.shape == (4, 9, 40)


@pytest.mark.parametrize("modes", list(itertools.product(MODES, repeat=2)))
def test_stream_chain_equals_whole(modes):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 60))
    layers = [
        _layer(rng, 2, 4, 5, padding=2, padding_mode=modes[0], stride=2),
        _layer(rng, 4, 1, 3, padding="same", padding_mode=modes[1], dilation=3),
    ]
    expected = _whole(layers, x)
    for size in (1, 7, 32):
        got, chain = _stream(layers, x, size, method="direct", prefix=_prefix(layers, x))
        _assert_same(got, expected, err_msg=f"block size {size}")
    # Only a later circular layer needs its whole input.
    assert chain.whole_signal == (modes[1] == "circular")


def test_stream_circular_first_layer_without_prefix_falls_back_to_whole():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 30))
    layer = _layer(rng, 1, 1, 5, padding=2, padding_mode="circular")
    got, chain = _stream([layer], x, 4, method="direct")
    assert chain.whole_signal
    _assert_same(got, _whole([layer], x))


def test_stream_fft_float32_within_tolerance():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3000)).astype(np.float32)
    layer = _layer(rng, 2, 2, 129, dtype=np.float32, padding="same", padding_mode="reflect")
    expected = _whole([layer], x.astype(np.float64))
    got, chain = _stream([layer], x, 700, method="fft")
    assert got.dtype == np.float32 and chain.dtype == np.float32
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * scale)
    whole32 = _whole([layer], x, method="fft")
    np.testing.assert_allclose(got, whole32, rtol=0, atol=1e-6 * scale)


def test_stream_signal_shorter_than_block_and_single_sample():
    rng = np.random.default_rng(7)
    layer = _layer(rng, 1, 1, 3, padding=1, padding_mode="replicate")
    for length in (1, 2, 3):
        x = rng.standard_normal((1, length))
        got, _ = _stream([layer], x, 1024, method="direct")
        _assert_same(got, _whole([layer], x))


def test_stream_output_blocks_bounded_history():
    # Memory must not grow with the signal: the carried buffer stays < field + stride.
    rng = np.random.default_rng(8)
    layer = _layer(rng, 1, 1, 9, stride=2, padding="causal")
    stage = LayerStage(layer, method="direct")
    for block in _blocks(rng.standard_normal((1, 1, 5000)), 97):
        stage.push(block)
        assert stage._buf is not None and stage._buf.shape[-1] < stage.field + stage.stride
    stage.finish()


def test_stream_too_short_for_kernel_names_min_length():
    layer = Conv1d.from_weights(np.ones((1, 1, 7)))
    chain = StreamChain([layer], names=["lp.npz"])
    chain.push(np.ones((1, 4)))
    with pytest.raises(ShapeError, match=r"layer 1 \(lp.npz\).*at least 7 input samples"):
        chain.finish()


def test_stream_reflect_pad_larger_than_signal():
    layer = Conv1d.from_weights(np.ones((1, 1, 11)), padding=5, padding_mode="reflect")
    with pytest.raises(ShapeError, match=r"padding \(5, 5\).*reflect padding must be smaller"):
        chain_output_length([layer], 5)
    chain = StreamChain([layer])
    chain.push(np.ones((1, 5)))
    with pytest.raises(ShapeError, match="at least 6"):
        chain.finish()


def test_stream_empty_signal_refused():
    chain = StreamChain([Conv1d.from_weights(np.ones((1, 1, 1)))])
    with pytest.raises(ShapeError, match="empty"):
        chain.finish()
    with pytest.raises(ShapeError, match="empty"):
        chain_output_length([Conv1d.from_weights(np.ones((1, 1, 1)))], 0)


def test_stream_chain_min_length_matches_search():
    rng = np.random.default_rng(9)
    layers = [
        _layer(rng, 1, 1, 5, stride=3),
        _layer(rng, 1, 1, 4, dilation=2, padding=(1, 0), padding_mode="reflect"),
    ]
    need = chain_min_length(layers)
    assert need == 20  # layer 2 needs 7 - 1 = 6 samples: (L - 5) // 3 + 1 >= 6
    chain_output_length(layers, need)
    with pytest.raises(ShapeError, match=f"the input needs at least {need} samples"):
        chain_output_length(layers, need - 1)


def test_stream_chain_channel_mismatch_message_shows_shapes():
    a = Conv1d.from_weights(np.ones((2, 1, 3)))
    b = Conv1d.from_weights(np.ones((1, 4, 3)))
    msg = (
        "layer 2 (b.npz) expects 4 input channels but layer 1 (a.npz) produces 2: "
        "1 -> [a.npz] -> 2 -> [b.npz] expects 4"
    )
    with pytest.raises(ShapeError, match=re.escape(msg)):
        check_chain([a, b], ["a.npz", "b.npz"])
    with pytest.raises(ShapeError, match="in.wav has 2 channels but layer 1 expects 1"):
        check_chain([a], in_channels=2, source="in.wav")
    with pytest.raises(ConfigError):
        check_chain([])


def test_stream_check_finite_reports_channel_and_sample():
    x = np.zeros((1, 3, 10))
    x[0, 2, 4] = np.nan
    x[0, 1, 7] = np.inf
    with pytest.raises(DataFileError, match="nan at channel 2, sample 104"):
        check_finite(x, offset=100, source="a.csv")
    check_finite(np.zeros((1, 2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("contiguous", [True, False])
def test_stream_check_finite_finds_every_non_finite_kind(dtype, bad, contiguous):
    x = np.ones((1, 2, 64), dtype)
    x[0, 1, 40] = bad
    block = x if contiguous else x[..., ::2]
    sample = 40 if contiguous else 20
    with pytest.raises(DataFileError, match=f"{bad} at channel 1, sample {sample}"):
        check_finite(block)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_check_finite_passes_the_largest_finite_values(dtype):
    big = np.finfo(dtype).max
    check_finite(np.array([[[big, big, -big, 1.0]]], dtype))


def test_stream_filter_generator_and_unbatched_shape():
    rng = np.random.default_rng(10)
    layer = _layer(rng, 2, 2, 3, padding="same", padding_mode="reflect")
    x = rng.standard_normal((2, 25))
    out = np.concatenate(list(stream_filter([layer], _blocks(x, 4), method="direct")), axis=-1)
    _assert_same(out, _whole([layer], x))


def test_stream_chain_output_length_is_walk_chains_answer():
    from conv1d_cli.shapes import walk_chain

    layers = [
        Conv1d.from_weights(np.ones((2, 1, 5)), stride=2, padding=1),
        Conv1d.from_weights(np.ones((1, 2, 3)), dilation=2),
    ]
    assert chain_min_length(layers) == 11
    for length in range(11, 40):
        walked = walk_chain([layer.spec for layer in layers], length)
        assert chain_output_length(layers, length) == walked.layers[-1].output_length


def test_stream_chain_checked_by_the_caller_is_not_checked_again(monkeypatch):
    from conv1d_cli import stream

    calls = []
    monkeypatch.setattr(stream, "check_chain", lambda *a: calls.append(a))
    layer = Conv1d.from_weights(np.ones((1, 1, 3)))
    stream.StreamChain([layer], checked=True)
    assert calls == []
    stream.StreamChain([layer])
    assert len(calls) == 1


# -- long kernels: whole FFT frames ------------------------------------------------------


@pytest.mark.parametrize(
    ("padding", "mode", "size"),
    [
        ("causal", "zeros", 30_000),
        ("same", "reflect", 7_777),
        ((5_000, 9_000), "replicate", 80_000),
    ],
)
def test_stream_long_kernel_computes_whole_frames_equal_to_whole_signal(
    padding, mode, size, correlator_calls
):
    # 9 000 taps: 5 * 2**13-point frames (the least fast length at least 3/4 new
    # samples); 2 items x 4 channels fill a transform's SIMD lanes with one frame.
    nfft = 5 * 2**13
    rng = np.random.default_rng(21)
    layer = _layer(rng, 4, 4, 9_000, groups=2, padding=padding, padding_mode=mode)
    x = rng.standard_normal((2, 4, 70_000))
    chain = StreamChain([layer])
    frame = chain.frame(2)
    assert frame == nfft - 9_000 + 1
    got, chain = _stream([layer], x, size)
    assert chain.stages[0].samples_out == got.shape[-1]
    # Whole frames: every correlator call but the last (the partial frame) is one frame.
    calls = correlator_calls
    calls.clear()  # those of the run above
    stage = LayerStage(layer)
    for block in _blocks(x, size):
        stage.push(block)
    stage.finish()
    assert calls[:-1] == [nfft] * (len(calls) - 1) and 0 < calls[-1] <= nfft
    expected = _whole([layer], x, method="fft")
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * scale)


def test_stream_long_kernel_keeps_its_own_copy_of_what_it_waits_on():
    # A frame is computed only when it is full: the stage must not hold views of the
    # caller's blocks, which the caller may reuse for the next read.
    rng = np.random.default_rng(22)
    layer = _layer(rng, 1, 1, 9_000, padding="causal")
    x = rng.standard_normal((1, 1, 50_000))
    stage, buffer, parts = LayerStage(layer), np.empty((1, 1, 5_000)), []
    for i in range(0, x.shape[-1], 5_000):
        buffer[...] = x[..., i : i + 5_000]
        parts.append(stage.push(buffer))
    buffer[...] = np.nan
    parts.append(stage.finish())
    got = np.concatenate(parts, axis=-1)
    np.testing.assert_allclose(got, _whole([layer], x), rtol=0, atol=1e-10)


def test_stream_live_or_short_kernels_compute_every_block():
    rng = np.random.default_rng(23)
    assert StreamChain([_layer(rng, 2, 2, 101, groups=2)]).frame(1) is None
    long = _layer(rng, 2, 2, 9_000, groups=2, padding="causal")
    assert StreamChain([long], live_block=20_000).frame(1) is None  # a live pipe's latency
    assert StreamChain([long], method="direct").frame(1) is None
    # A frame's input for every row must fit FRAME_STORE_SAMPLES: 64 channels of a
    # 600 000-tap kernel would hold 512 MiB.
    wide = _layer(rng, 64, 64, 600_000, groups=64, padding="causal", dtype=np.float32)
    assert StreamChain([wide]).frame(1) is None
    assert StreamChain([wide.__class__.from_weights(wide.weight[:2], groups=2)]).frame(1)
    stage = LayerStage(long, live_block=20_000)
    x = rng.standard_normal((1, 2, 20_000))
    assert stage.push(x).shape[-1] == 20_000  # every block's outputs at once


def test_stream_chain_vouched_finite_skips_the_first_layers_scan(monkeypatch):
    # A chain told its input is finite (checked, or integer PCM) does not scan the
    # first layer's input for NaN/Inf; the second layer's input, an output that may
    # have overflowed, is still scanned. The outputs are the same.
    from conv1d_cli import core

    scanned: list[int] = []
    real = core._nonfinite
    monkeypatch.setattr(core, "_nonfinite", lambda x: scanned.append(x.shape[1]) or real(x))
    rng = np.random.default_rng(8)
    layers = [
        Conv1d.from_weights(rng.standard_normal((3, 2, 9)), padding="same"),  # 2 -> 3
        Conv1d.from_weights(rng.standard_normal((1, 3, 5))),  # 3 -> 1
    ]
    x = rng.standard_normal((2, 2_000))
    outputs = []
    for finite in (True, False):
        scanned.clear()
        chain = StreamChain(layers, finite=finite)
        parts = [chain.push(x[:, :1_000]), chain.push(x[:, 1_000:]), chain.finish()]
        outputs.append(np.concatenate(parts, axis=-1))
        # the channels of each scanned block tell the layer: 2 in for the first
        assert (2 in scanned) is not finite and 3 in scanned
    np.testing.assert_array_equal(outputs[0], outputs[1])
