"""FIR design by the window method, simple kernels and SoX alignment (conv1d_cli.filters)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from conv1d_cli.analysis import frequency_response, kernel_stats
from conv1d_cli.errors import ConfigError
from conv1d_cli.filters import (
    aligned_padding,
    delay,
    design_fir,
    gaussian,
    identity,
    kernel_layer,
    moving_average,
    parse_window,
)


@pytest.mark.parametrize("taps", [1, 2, 3, 4, 5, 6, 7, 16, 17, 64, 65])
def test_filters_kernel_layer_matches_sox_rule_and_scipy_same(taps):
    rng = np.random.default_rng(taps)
    x = rng.normal(size=(2, 80))
    h = rng.normal(size=taps)
    layer = kernel_layer(h, channels=2)
    assert layer.resolved_padding() == (taps // 2, (taps - 1) // 2)
    y = layer(x)
    full = np.array([np.convolve(row, h) for row in x])
    shift = (taps - 1) // 2
    np.testing.assert_allclose(y, full[:, shift : shift + 80], atol=1e-12)
    np.testing.assert_allclose(y, signal.convolve(x, h[None], mode="same"), atol=1e-12)


@pytest.mark.parametrize("taps", [4, 5])
def test_filters_kernel_layer_correlation_keeps_taps_like_torch_same(taps):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 30))
    w = rng.normal(size=taps)
    layer = kernel_layer(w, correlation=True)
    np.testing.assert_array_equal(layer.weight[0, 0], w)
    left = (taps - 1) // 2
    xp = np.pad(x[0], (left, taps - 1 - left))
    expected = np.correlate(xp, w, mode="valid")
    np.testing.assert_allclose(layer(x)[0], expected, atol=1e-12)


def test_filters_kernel_layer_dilation_keeps_alignment():
    h = np.array([1.0, 2.0, 3.0, 4.0])
    layer = kernel_layer(h, dilation=3)
    assert layer.resolved_padding() == (6, 3)
    x = np.random.default_rng(2).normal(size=(1, 40))
    hd = np.zeros(10)
    hd[::3] = h
    full = np.convolve(x[0], hd)
    # Tap (K-1)//2 = 1 of the dilated kernel lands on time zero: full[n + 1*3].
    np.testing.assert_allclose(layer(x)[0], full[3 : 3 + 40], atol=1e-12)
    delta = kernel_layer(identity(4), dilation=3)
    np.testing.assert_allclose(delta(x), x)


def test_filters_kernel_layer_depthwise_stereo_and_options():
    layer = kernel_layer(
        moving_average(3), channels=2, bias=True, dtype="float32", sample_rate=8000, description="d"
    )
    assert layer.weight.shape == (2, 1, 3) and layer.groups == 2
    assert layer.weight.dtype == np.float32 and layer.bias.tolist() == [0.0, 0.0]
    assert layer.sample_rate == 8000.0 and layer.description == "d"
    x = np.array([[3.0, 3.0, 3.0, 3.0], [0.0, 3.0, 0.0, 0.0]])
    np.testing.assert_allclose(layer(x), [[2.0, 3.0, 3.0, 2.0], [1.0, 1.0, 1.0, 0.0]], atol=1e-6)


def test_filters_kernel_layer_refuses_bad_taps():
    with pytest.raises(ConfigError, match="non-empty 1-D"):
        kernel_layer(np.ones((2, 2)))
    with pytest.raises(ConfigError, match="finite"):
        kernel_layer(np.array([1.0, np.nan]))


@pytest.mark.parametrize(
    ("kind", "cutoff", "taps"),
    [
        ("lowpass", 1000, 101),
        ("lowpass", 1000, 100),
        ("highpass", 2000, 51),
        ("bandpass", [500, 3000], 64),
        ("bandstop", [500, 3000], 65),
    ],
)
def test_filters_fir_matches_firwin_and_is_linear_phase(kind, cutoff, taps):
    h = design_fir(kind, cutoff, 16000, taps, window="hann")
    expected = signal.firwin(taps, cutoff, window="hann", pass_zero=kind, fs=16000)
    np.testing.assert_array_equal(h, expected)
    assert kernel_stats(h[None, None])["linear_phase"][0, 0] == "symmetric"


def test_filters_fir_aligned_lowpass_has_zero_delay():
    h = design_fir("lowpass", 500, 8000, 31)
    layer = kernel_layer(h)
    n = np.arange(400)
    x = np.sin(2 * np.pi * 100 / 8000 * n)[None]
    y = layer(x)[0]
    # A 100 Hz tone passes scaled by |H(100 Hz)| and not delayed at all.
    gain = abs(np.sum(h * np.exp(-2j * np.pi * 100 / 8000 * np.arange(31))))
    assert 0.95 < gain < 1.05
    np.testing.assert_allclose(y[50:-50], gain * x[0, 50:-50], atol=1e-9)
    freqs, response = frequency_response(layer.weight, left=layer.resolved_padding()[0])
    passband = freqs * 8000 < 300
    np.testing.assert_allclose(np.angle(response[0, 0, passband]), 0, atol=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lowpass", 4000, 8000, 31), "strictly between 0 and the Nyquist frequency 4000"),
        (("lowpass", 5000, 8000, 31), "Nyquist"),
        (("lowpass", 0, 8000, 31), "strictly between 0"),
        (("lowpass", -5, 8000, 31), "strictly between 0"),
        (("bandpass", [3000, 1000], 8000, 31), "must be increasing"),
        (("bandpass", [1000, 1000], 8000, 31), "must be increasing"),
        (("bandstop", [1000, 4000], 8000, 31), "Nyquist"),
        (("bandpass", 1000, 8000, 31), "needs two cutoffs"),
        (("lowpass", [100, 200], 8000, 31), "needs one cutoff"),
        (("highpass", 1000, 8000, 30), r"odd number of taps.*type II.*zero at the Nyquist"),
        (("bandstop", [500, 900], 8000, 30), "odd number of taps"),
        (("notch", 1000, 8000, 31), "design must be one of"),
        (("lowpass", 1000, 0, 31), "sample_rate must be a positive"),
        (("lowpass", 1000, 8000, 0), "taps must be positive"),
    ],
)
def test_filters_fir_refuses_bad_parameters(args, message):
    with pytest.raises(ConfigError, match=message):
        design_fir(*args)


def test_filters_fir_windows():
    assert parse_window("kaiser,8.6") == ("kaiser", 8.6)
    h = design_fir("lowpass", 1000, 8000, 31, window=parse_window("kaiser,8.6"))
    np.testing.assert_array_equal(h, signal.firwin(31, 1000, window=("kaiser", 8.6), fs=8000))
    with pytest.raises(ConfigError, match="window 'nosuch' is not usable"):
        design_fir("lowpass", 1000, 8000, 31, window="nosuch")
    with pytest.raises(ConfigError, match="window parameters must be numbers"):
        parse_window("kaiser,big")


def test_filters_simple_kernels():
    np.testing.assert_array_equal(moving_average(2), [0.5, 0.5])
    g = gaussian(2.0)
    assert g.size == 17 and np.isclose(g.sum(), 1) and np.argmax(g) == 8
    assert gaussian(2.0, taps=5).size == 5
    np.testing.assert_array_equal(identity(3), [0.0, 1.0, 0.0])
    with pytest.raises(ConfigError, match="sigma"):
        gaussian(0.0)
    with pytest.raises(ConfigError, match="taps"):
        moving_average(0)
    with pytest.raises(ConfigError, match=r"sigma 1e\+09 needs .* at most 16777216"):
        gaussian(1e9)
    with pytest.raises(ConfigError, match=r"sigma 1e\+308 needs"):  # 4*sigma is inf
        gaussian(1e308)
    with pytest.raises(ConfigError, match="must be at most 16777216"):
        delay(-(10**12))
    with pytest.raises(ConfigError, match="must be at most"):
        design_fir("lowpass", 10, 100, 2**25 + 1)


@pytest.mark.parametrize("shift", [-3, -1, 0, 1, 4])
def test_filters_delay_layer_shifts_signal(shift):
    h, origin = delay(shift)
    layer = kernel_layer(h, origin=origin)
    x = np.arange(1.0, 11.0)[None]
    expected = np.zeros(10)
    if shift >= 0:
        expected[shift:] = x[0, : 10 - shift]
    else:
        expected[:shift] = x[0, -shift:]
    np.testing.assert_array_equal(layer(x)[0], expected)


def test_filters_aligned_padding_values():
    assert aligned_padding(1) == (0, 0)
    assert aligned_padding(6) == (3, 2)
    assert aligned_padding(5, dilation=2) == (4, 4)
    assert aligned_padding(3, origin=0) == (2, 0)


def test_filters_sample_rate_is_the_shapes_rule():
    with pytest.raises(ConfigError, match="sample_rate must be at most 2147483647 Hz"):
        design_fir("lowpass", 1000, 1e12, 31)
    with pytest.raises(ConfigError, match="sample_rate must be a positive number of Hz"):
        kernel_layer(np.ones(3), sample_rate=float("nan"))
