"""FIR design, simple kernels, coefficient files, SoX alignment, kernel stats, responses."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from scipy import signal

from conv1d_cli.design import (
    SignalStats,
    aligned_padding,
    delay,
    design_fir,
    frequency_response,
    gaussian,
    identity,
    kernel_layer,
    kernel_stats,
    moving_average,
    parse_window,
    read_coefficients,
    response_summary,
)
from conv1d_cli.errors import ConfigError, DataFileError


@pytest.mark.parametrize("taps", [1, 2, 3, 4, 5, 6, 7, 16, 17, 64, 65])
def test_design_kernel_layer_matches_sox_rule_and_scipy_same(taps):
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
def test_design_kernel_layer_correlation_keeps_taps_like_torch_same(taps):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 30))
    w = rng.normal(size=taps)
    layer = kernel_layer(w, correlation=True)
    np.testing.assert_array_equal(layer.weight[0, 0], w)
    left = (taps - 1) // 2
    xp = np.pad(x[0], (left, taps - 1 - left))
    expected = np.correlate(xp, w, mode="valid")
    np.testing.assert_allclose(layer(x)[0], expected, atol=1e-12)


def test_design_kernel_layer_dilation_keeps_alignment():
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


def test_design_kernel_layer_depthwise_stereo_and_options():
    layer = kernel_layer(
        moving_average(3), channels=2, bias=True, dtype="float32", sample_rate=8000, description="d"
    )
    assert layer.weight.shape == (2, 1, 3) and layer.groups == 2
    assert layer.weight.dtype == np.float32 and layer.bias.tolist() == [0.0, 0.0]
    assert layer.sample_rate == 8000.0 and layer.description == "d"
    x = np.array([[3.0, 3.0, 3.0, 3.0], [0.0, 3.0, 0.0, 0.0]])
    np.testing.assert_allclose(layer(x), [[2.0, 3.0, 3.0, 2.0], [1.0, 1.0, 1.0, 0.0]], atol=1e-6)


def test_design_kernel_layer_refuses_bad_taps():
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
def test_design_fir_matches_firwin_and_is_linear_phase(kind, cutoff, taps):
    h = design_fir(kind, cutoff, 16000, taps, window="hann")
    expected = signal.firwin(taps, cutoff, window="hann", pass_zero=kind, fs=16000)
    np.testing.assert_array_equal(h, expected)
    assert kernel_stats(h[None, None])["linear_phase"][0, 0] == "symmetric"


def test_design_fir_aligned_lowpass_has_zero_delay():
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
def test_design_fir_refuses_bad_parameters(args, message):
    with pytest.raises(ConfigError, match=message):
        design_fir(*args)


def test_design_fir_windows():
    assert parse_window("kaiser,8.6") == ("kaiser", 8.6)
    h = design_fir("lowpass", 1000, 8000, 31, window=parse_window("kaiser,8.6"))
    np.testing.assert_array_equal(h, signal.firwin(31, 1000, window=("kaiser", 8.6), fs=8000))
    with pytest.raises(ConfigError, match="window 'nosuch' is not usable"):
        design_fir("lowpass", 1000, 8000, 31, window="nosuch")
    with pytest.raises(ConfigError, match="window parameters must be numbers"):
        parse_window("kaiser,big")


def test_design_simple_kernels():
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
def test_design_delay_layer_shifts_signal(shift):
    h, origin = delay(shift)
    layer = kernel_layer(h, origin=origin)
    x = np.arange(1.0, 11.0)[None]
    expected = np.zeros(10)
    if shift >= 0:
        expected[shift:] = x[0, : 10 - shift]
    else:
        expected[:shift] = x[0, -shift:]
    np.testing.assert_array_equal(layer(x)[0], expected)


def test_design_aligned_padding_values():
    assert aligned_padding(1) == (0, 0)
    assert aligned_padding(6) == (3, 2)
    assert aligned_padding(5, dilation=2) == (4, 4)
    assert aligned_padding(3, origin=0) == (2, 0)


# ---- coefficient files -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("# HP filter\n# freq=10000\n-0.25\n0.5\n-0.25\n", [-0.25, 0.5, -0.25]),
        ("1 2\t3\n  4e-1   -.5 +6.  # trailing\n", [1, 2, 3, 0.4, -0.5, 6]),
        ("coefficient\n0.1\n0.2\n", [0.1, 0.2]),
        ('"h"\n"0.1"\n0.2,\n', [0.1, 0.2]),
        ("\ufeffb\r\n1\r\n2\r\n", [1.0, 2.0]),
        ("0.5#comment without space\n\n\n0.5", [0.5, 0.5]),
    ],
    ids=["sox", "whitespace", "csv-header", "csv-quoted", "bom-crlf", "comments"],
)
def test_design_read_coefficients_formats(tmp_path, text, expected):
    path = tmp_path / "c.csv"
    path.write_text(text, encoding="utf-8", newline="")
    np.testing.assert_array_equal(read_coefficients(path), expected)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no coefficients"),
        ("# only a comment\n\n", "holds no coefficients"),
        ("header\n", r"line 1: 'header' is not a number"),  # a SoX file has no header
        ("0.1\nabc\n", r"line 2: 'abc' is not a number"),
        ("0.1, 0.2\n", "expected one column.*2 fields"),
        ("1 2 three\n", "'three' is not a number"),
        ("nan\n", "'nan' is not a number"),
        ("1_000\n", "not a number"),
        ("1e999\n", "overflow"),
        (b"\xff\xfe\x00\x01", "not a text coefficient file"),
    ],
)
def test_design_read_coefficients_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "c.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(DataFileError, match=message) as info:
        read_coefficients(path)
    assert str(info.value).startswith(str(path))


def test_design_read_coefficients_missing_and_directory(tmp_path):
    with pytest.raises(DataFileError, match=": no such file"):
        read_coefficients(tmp_path / "nope.txt")
    with pytest.raises(DataFileError, match="is a directory"):
        read_coefficients(tmp_path)


@pytest.mark.parametrize("taps", [4, 5, 6, 7])
def test_design_coefficients_match_real_sox_fir(tmp_path, taps):
    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox is not installed")
    soundfile = pytest.importorskip("soundfile")
    rng = np.random.default_rng(taps)
    x = rng.uniform(-0.4, 0.4, size=(300, 2))
    h = rng.uniform(-0.3, 0.3, size=taps)
    (tmp_path / "coeffs.txt").write_text("# test taps\n" + "\n".join(f"{v:.17g}" for v in h))
    soundfile.write(tmp_path / "in.wav", x, 8000, subtype="FLOAT")
    subprocess.run(
        [sox, "-D", str(tmp_path / "in.wav"), "-e", "floating-point", "-b", "32",
         str(tmp_path / "out.wav"), "fir", str(tmp_path / "coeffs.txt")],
        check=True, capture_output=True,
    )  # fmt: skip
    expected, _ = soundfile.read(tmp_path / "out.wav", dtype="float64")
    layer = kernel_layer(read_coefficients(tmp_path / "coeffs.txt"), channels=2)
    x32 = x.astype(np.float32).astype(np.float64)
    ours = layer(x32.T).T
    assert expected.shape == ours.shape
    # sox passes samples as 32-bit integers between effects: ~1e-9 agreement.
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    # A one-sample misalignment would be far larger than the tolerance.
    assert np.abs(np.roll(ours, 1, axis=0) - expected).max() > 1e-2


# ---- stats and responses -----------------------------------------------------


def test_design_kernel_stats_values():
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


def test_design_frequency_response_matches_freqz():
    h = design_fir("bandpass", [100, 300], 1000, 41)
    freqs, response = frequency_response(h[None, None], points=513)
    _, expected = signal.freqz(h, worN=513, include_nyquist=True)
    np.testing.assert_allclose(np.abs(response[0, 0]), np.abs(expected), atol=1e-12)
    assert freqs[0] == 0 and freqs[-1] == 0.5


def test_design_response_summary_lowpass():
    h = design_fir("lowpass", 1000, 8000, 101)
    freqs, response = frequency_response(h[None, None])
    s = response_summary(freqs, response[0, 0], 8000)
    assert abs(s["dc_db"]) < 0.01 and s["nyquist_db"] < -50
    (edge,) = s["minus3db_hz"]
    assert 900 < edge < 1000  # firwin's cutoff is the -6 dB point
    assert -60 < s["stopband_db"] < -45  # hamming window: about -53 dB
    low, high = s["stopband_hz"][0]
    assert 1000 < low < 1300 and high == 4000


def test_design_response_summary_identity_and_zero():
    freqs, response = frequency_response(np.array([[[1.0]], [[0.0]]]))
    s = response_summary(freqs, response[0, 0], 100)
    assert s["minus3db_hz"] == [] and s["stopband_db"] is None and s["peak_db"] == 0
    z = response_summary(freqs, response[1, 0], 100)
    assert z["dc_db"] == -np.inf and z["stopband_db"] is None


def test_design_signal_stats_match_numpy_over_blocks():
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


def test_design_signal_stats_do_not_overflow():
    stats = SignalStats(1)
    stats.update(np.full((1, 10), 1e308))  # the square of 1e308 overflows float64
    stats.update(np.full((1, 10), -1e308))
    assert stats.peak.tolist() == [1e308]
    assert stats.rms().tolist() == [1e308]
    assert stats.dc().tolist() == [0.0]


def test_design_signal_stats_batched_silent_and_empty():
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


def test_design_check_sample_rate_is_the_shapes_rule():
    from conv1d_cli.design import check_sample_rate

    assert check_sample_rate(48000) == 48000.0
    with pytest.raises(ConfigError, match="sample_rate must be at most 2147483647 Hz"):
        design_fir("lowpass", 1000, 1e12, 31)


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
