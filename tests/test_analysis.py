"""Kernel statistics, frequency responses and signal statistics (conv1d_cli.analysis)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from conv1d_cli.analysis import SignalStats, frequency_response, kernel_stats, response_summary
from conv1d_cli.filters import design_fir


def test_analysis_kernel_stats_values():
    w = np.array([[[1.0, -2.0, 1.0], [0.0, 0.0, 0.0]], [[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]]])
    s = kernel_stats(w)
    np.testing.assert_array_equal(s["dc_gain"], [[0, 0], [6, 0]])
    np.testing.assert_array_equal(s["l1_norm"], [[4, 0], [6, 2]])
    np.testing.assert_allclose(s["l2_norm"], [[np.sqrt(6), 0], [np.sqrt(14), np.sqrt(2)]])
    assert s["linear_phase"].tolist() == [["symmetric", "symmetric"], [None, "antisymmetric"]]
    assert (
        kernel_stats(design_fir("lowpass", 100, 1000, 31)[None, None].astype(np.float32))[
            "linear_phase"
        ][0, 0]
        == "symmetric"
    )


def test_analysis_frequency_response_matches_freqz():
    h = design_fir("bandpass", [100, 300], 1000, 41)
    freqs, response = frequency_response(h[None, None], points=513)
    _, expected = signal.freqz(h, worN=513, include_nyquist=True)
    np.testing.assert_allclose(np.abs(response[0, 0]), np.abs(expected), atol=1e-12)
    assert freqs[0] == 0 and freqs[-1] == 0.5


def test_analysis_response_summary_lowpass():
    h = design_fir("lowpass", 1000, 8000, 101)
    freqs, response = frequency_response(h[None, None])
    s = response_summary(freqs, response[0, 0], 8000)
    assert abs(s["dc_db"]) < 0.01 and s["nyquist_db"] < -50
    (edge,) = s["minus3db_hz"]
    assert 900 < edge < 1000  # firwin's cutoff is the -6 dB point
    assert -60 < s["stopband_db"] < -45  # hamming window: about -53 dB
    low, high = s["stopband_hz"][0]
    assert 1000 < low < 1300 and high == 4000


def test_analysis_response_summary_identity_and_zero():
    freqs, response = frequency_response(np.array([[[1.0]], [[0.0]]]))
    s = response_summary(freqs, response[0, 0], 100)
    assert s["minus3db_hz"] == [] and s["stopband_db"] is None and s["peak_db"] == 0
    z = response_summary(freqs, response[1, 0], 100)
    assert z["dc_db"] == -np.inf and z["stopband_db"] is None


def test_analysis_signal_stats_match_numpy_over_blocks():
    rng = np.random.default_rng(7)
    x = rng.normal(0.1, 2.0, (3, 10_000))
    x[1] *= 1e-3  # the peak grows block after block on some channels, not others
    x[2, 7000] = 50.0
    stats = SignalStats(3)
    for start in range(0, x.shape[1], 999):
        stats.update(x[:, start : start + 999])
    np.testing.assert_allclose(stats.peak, np.abs(x).max(axis=1), rtol=0)
    np.testing.assert_allclose(stats.rms(), np.sqrt((x * x).mean(axis=1)), rtol=1e-13)
    np.testing.assert_allclose(stats.dc(), x.mean(axis=1), rtol=1e-12)
    assert stats.count == 10_000


def test_analysis_signal_stats_do_not_overflow():
    stats = SignalStats(1)
    stats.update(np.full((1, 10), 1e308))  # the square of 1e308 overflows float64
    stats.update(np.full((1, 10), -1e308))
    assert stats.peak.tolist() == [1e308]
    assert stats.rms().tolist() == [1e308]
    assert stats.dc().tolist() == [0.0]


def test_analysis_signal_stats_batched_silent_and_empty():
    stats = SignalStats(2)
    assert stats.rms().tolist() == [0.0, 0.0] and stats.dc().tolist() == [0.0, 0.0]
    stats.update(np.zeros((2, 0)))
    stats.update(np.array([[[0.0, 0.0], [1.0, -1.0]], [[0.0, 0.0], [3.0, 3.0]]]))
    assert stats.count == 4
    assert stats.peak.tolist() == [0.0, 3.0]
    assert stats.rms().tolist() == [0.0, pytest.approx(np.sqrt(5))]
    assert stats.dc().tolist() == [0.0, 1.5]
    with pytest.raises(ValueError, match=r"expected a \(2, n\) or \(N, 2, n\) block"):
        stats.update(np.zeros((3, 4)))


@pytest.mark.parametrize("dilation", [1, 2, 3, 7])
def test_frequency_response_of_a_dilated_kernel_equals_the_zero_stuffed_one(dilation):
    # The response is sampled from the undilated kernel's spectrum (H(d*f)), so a huge
    # dilation costs no more than a small one; it must equal transforming the
    # zero-stuffed kernel, which is what the layer computes.
    w = np.random.default_rng(dilation).standard_normal((2, 1, 7))
    freqs, response = frequency_response(w, dilation=dilation, left=3)
    nfft = 2 * (len(freqs) - 1)
    stuffed = np.zeros((2, 1, dilation * 6 + 1))
    stuffed[..., ::dilation] = w
    expected = np.conj(np.fft.rfft(stuffed, n=nfft, axis=-1)) * np.exp(-6j * np.pi * freqs)
    np.testing.assert_allclose(response, expected, rtol=0, atol=1e-12)
