"""Pictures: streaming envelope and Welch spectrum (overview), and the figures (plots)."""

from __future__ import annotations

import sys
import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from conv1d_cli import overview, plots
from conv1d_cli.filters import design_fir, kernel_layer
from conv1d_cli.layer import Conv1d

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _splits(rng, length, pieces):
    return np.split(np.arange(length), np.sort(rng.integers(0, length, pieces)))


# ---- overview: exact against the whole-signal answers ---------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_envelope_matches_min_max_of_each_bin_for_any_blocking(seed):
    rng = np.random.default_rng(seed)
    length, channels = int(rng.integers(1, 30000)), int(rng.integers(1, 4))
    columns = int(rng.integers(1, 60))
    x = rng.standard_normal((channels, length))
    env = overview.Envelope(channels, columns=columns, frames=length if seed % 2 else None)
    for idx in _splits(rng, length, int(rng.integers(0, 9))):
        env.update(x[:, idx])
    lo, hi, width = env.result()
    bins = -(-length // width)
    assert lo.shape == hi.shape == (channels, bins)
    assert min(columns, length) <= bins <= 2 * columns  # bounded, and one per column
    for i in range(bins):
        part = x[:, i * width : (i + 1) * width]
        np.testing.assert_array_equal(lo[:, i], part.min(axis=1))
        np.testing.assert_array_equal(hi[:, i], part.max(axis=1))


@pytest.mark.parametrize("seed", range(25))
def test_welch_stream_equals_scipy_welch_of_the_whole_signal(seed):
    rng = np.random.default_rng(100 + seed)
    length, channels = int(rng.integers(2, 20000)), int(rng.integers(1, 4))
    nperseg = int(rng.integers(2, 700))
    x = rng.standard_normal((channels, length))
    acc = overview.WelchSpectrum(channels, sample_rate=8000.0, nperseg=nperseg)
    for idx in _splits(rng, length, int(rng.integers(0, 9))):
        acc.update(x[:, idx])
    freqs, psd = acc.result()
    with warnings.catch_warnings():  # scipy warns when nperseg > length; so be it
        warnings.simplefilter("ignore", UserWarning)
        f0, p0 = welch(x, 8000.0, nperseg=nperseg)
    np.testing.assert_allclose(freqs, f0)
    np.testing.assert_allclose(psd, p0, rtol=1e-10, atol=1e-300)


def test_welch_of_a_batched_block_averages_the_items():
    x = np.random.default_rng(0).standard_normal((3, 2, 4000))
    acc = overview.WelchSpectrum(2, nperseg=256)
    acc.update(x[..., :1234])
    acc.update(x[..., 1234:])
    _, psd = acc.result()
    np.testing.assert_allclose(psd, welch(x, nperseg=256)[1].mean(axis=0))


def test_welch_of_fewer_than_two_samples_is_empty():
    acc = overview.WelchSpectrum(2, nperseg=64)
    acc.update(np.zeros((2, 1)))
    freqs, psd = acc.result()
    assert freqs.shape == (0,) and psd.shape == (2, 0)


def test_signal_overview_streams_a_long_file_in_bounded_memory(tmp_path):
    # 4 Mi frames of float64 = 32 MiB on disk; the pass must hold only blocks.
    path = tmp_path / "long.npy"
    frames = 1 << 22
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(1, frames))
    t = np.arange(1 << 16)
    for start in range(0, frames, 1 << 16):
        out[0, start : start + (1 << 16)] = np.sin(0.1 * (t + start))
    del out
    tracemalloc.start()
    try:
        ov = overview.signal_overview(path, sample_rate=1000.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB for a 32 MiB signal"
    assert ov.frames == frames and overview.COLUMNS <= ov.low.shape[1] <= 2 * overview.COLUMNS
    assert ov.nperseg == overview.MAX_SEGMENT
    assert abs(ov.freqs[np.argmax(ov.psd[0])] - 1000 * 0.1 / (2 * np.pi)) < 0.5


def test_signal_overview_reads_the_file_block_by_block(tmp_path, monkeypatch):
    from conv1d_cli.io import base

    path = tmp_path / "x.wav"
    sf.write(path, np.zeros((10000, 2)), 8000)
    sizes: list[int] = []
    read = base.SignalReader.read

    def spy(self, frames):
        sizes.append(frames)
        return read(self, frames)

    monkeypatch.setattr(base.SignalReader, "read", spy)
    ov = overview.signal_overview(path, block_frames=1024)
    assert set(sizes) == {1024} and len(sizes) == 11  # 10 blocks, then the empty read
    assert ov.frames == 10000 and ov.sample_rate == 8000.0


# ---- figures --------------------------------------------------------------------------


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


def _legend_clear_of_axes(fig):
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    assert legends, "no legend"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), legend.texts
    return [t.get_text() for legend in legends for t in legend.texts]


def _png(fig, tmp_path, name="x.png"):
    path = tmp_path / name
    plots.save_figure(fig, path)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    return data


def test_layer_figure_one_kernel(mpl, tmp_path):
    h = design_fir("lowpass", 1000, 8000, 31)
    layer = kernel_layer(h, sample_rate=8000, description="lowpass 1000 Hz, 31 taps")
    fig = plots.layer_figure(layer, title="lp")
    texts = _legend_clear_of_axes(fig)
    assert texts[0] == "out 0 <- in 0"
    assert "design cutoff 1000 Hz" in texts and "-3 dB points (re each peak)" in texts
    ax_mag, ax_delay = fig.axes
    assert ax_delay.get_ylabel() == "delay (samples)"
    # An aligned linear-phase design: zero delay wherever it is drawn.
    delay = ax_delay.get_lines()[0].get_ydata()
    np.testing.assert_allclose(delay[np.isfinite(delay)], 0.0, atol=1e-6)
    # the -3 dB marker sits on the curve, 3 dB below its peak (the passband ripples)
    (marks,) = [ln for ln in ax_mag.get_lines() if ln.get_marker() == "o"]
    freqs, db = ax_mag.get_lines()[0].get_data()
    assert marks.get_ydata()[0] == pytest.approx(db.max() - 3.0)
    assert np.interp(marks.get_xdata()[0], freqs, db) == pytest.approx(db.max() - 3.0, abs=0.05)
    _png(fig, tmp_path)


def test_layer_figure_sixteen_identical_kernels_draw_one_curve(mpl, tmp_path):
    h = design_fir("bandpass", [300, 3400], 16000, 63)
    text = "bandpass 300 - 3400 Hz, 63 taps, hamming window"
    layer = kernel_layer(h, channels=16, sample_rate=16000, description=text)
    fig = plots.layer_figure(layer)
    texts = _legend_clear_of_axes(fig)
    assert texts[0] == "kernels 0-15 (16 identical): out 0-15 <- in 0-15"
    assert "design cutoffs 300, 3400 Hz" in texts
    curves = [ln for ln in fig.axes[0].get_lines() if ln.get_marker() != "o"]
    assert len(curves) == 1 + 2  # one kernel curve and the two cutoff lines
    _png(fig, tmp_path)


def test_layer_figure_sixteen_kernels_some_identical(mpl, tmp_path):
    weight = np.random.default_rng(0).standard_normal((4, 4, 9))
    weight[2, 1] = weight[0, 3]  # kernels 3 and 9 are the same
    layer = Conv1d.from_weights(weight, padding="same")
    fig = plots.layer_figure(layer, max_kernels=0)
    texts = _legend_clear_of_axes(fig)
    assert "kernels 3, 9 (2 identical): out 0, 2 <- in 1, 3" in texts
    assert len([t for t in texts if t.startswith(("out ", "kernels "))]) == 15
    assert fig.axes[1].get_xlabel() == "frequency (cycles/sample)"
    _png(fig, tmp_path)


def test_layer_figure_names_the_kernels_it_leaves_out(mpl):
    weight = np.random.default_rng(1).standard_normal((5, 4, 3))
    texts = _legend_clear_of_axes(plots.layer_figure(Conv1d.from_weights(weight), max_kernels=0))
    assert "(4 more kernels not drawn)" in texts
    texts = _legend_clear_of_axes(plots.layer_figure(Conv1d.from_weights(weight), max_kernels=3))
    assert "(first 3 of 20 kernels)" in texts


@pytest.mark.parametrize("channels", [1, 8])
def test_signal_figure_has_a_waveform_and_spectrum_row_per_channel(mpl, tmp_path, channels):
    rate = 8000
    t = np.arange(3 * rate) / rate
    data = np.stack([np.sin(2 * np.pi * 200 * (c + 1) * t) / (c + 1) for c in range(channels)])
    path = tmp_path / "x.wav"
    sf.write(path, data.T, rate, subtype="FLOAT")
    ov = overview.signal_overview(path)
    fig = plots.signal_figure(ov, title="x.wav")
    assert len(fig.axes) == 2 * channels
    for c in range(channels):
        ax_spectrum = fig.axes[2 * c + 1]
        freqs, db = ax_spectrum.get_lines()[0].get_data()
        assert freqs[np.argmax(db)] == pytest.approx(200 * (c + 1), abs=rate / ov.nperseg)
        lo, hi = fig.axes[2 * c].get_ylim()
        assert lo < -1 / (c + 1) and hi > 1 / (c + 1)  # each row its own scale
    assert fig.axes[0].get_ylabel() == "ch 0"
    _png(fig, tmp_path)


def test_signal_figure_of_a_rateless_csv_uses_samples(mpl, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a,b\n" + "".join(f"{i % 7},{-i}\n" for i in range(500)))
    fig = plots.signal_figure(overview.signal_overview(path))
    assert fig.axes[-2].get_xlabel() == "time (samples)"
    assert fig.axes[-1].get_xlabel() == "frequency (cycles/sample)"
    assert fig.axes[2].get_ylabel() == "ch 1 b"


def test_compare_figure_shows_both_spectra_and_the_gain(mpl, tmp_path):
    rng = np.random.default_rng(0)
    before = tmp_path / "in.wav"
    after = tmp_path / "out.wav"
    x = rng.standard_normal((2, 20000)) * 0.1
    sf.write(before, x.T, 16000, subtype="FLOAT")
    sf.write(after, (x * 0.5).T, 16000, subtype="FLOAT")
    a = overview.signal_overview(before)
    b = overview.signal_overview(after, nperseg=a.nperseg)
    fig = plots.compare_figure(a, b, labels=("input in.wav", "output out.wav"))
    assert _legend_clear_of_axes(fig) == ["input in.wav", "output out.wav"]
    assert len(fig.axes) == 4  # 2 channels x (spectra, gain)
    gain = fig.axes[1].get_lines()[0].get_ydata()
    np.testing.assert_allclose(gain, 20 * np.log10(0.5), atol=1e-9)
    _png(fig, tmp_path)


def test_compare_figure_with_a_different_channel_count_and_rate(mpl, tmp_path):
    before = tmp_path / "in.wav"
    after = tmp_path / "out.wav"
    sf.write(before, np.random.default_rng(0).standard_normal((8000, 1)) * 0.1, 8000)
    sf.write(after, np.random.default_rng(1).standard_normal((4000, 3)) * 0.1, 4000)
    a = overview.signal_overview(before)
    fig = plots.compare_figure(a, overview.signal_overview(after, nperseg=a.nperseg))
    assert len(fig.axes) == 3  # no gain column: the grids differ
    _legend_clear_of_axes(fig)
    _png(fig, tmp_path)


def test_without_matplotlib_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(plots.MatplotlibMissingError, match=r"pip install 'conv1d-cli\[plot\]'"):
        plots.layer_figure(Conv1d(1, 1, 3, seed=0))


def test_save_figure_refuses_an_unknown_format_and_writes_nothing(mpl, tmp_path):
    from conv1d_cli.errors import ConfigError

    fig = plots.layer_figure(Conv1d(1, 1, 3, seed=0))
    with pytest.raises(ConfigError, match="Format 'xyz' is not supported"):
        plots.save_figure(fig, tmp_path / "x.xyz")
    assert list(tmp_path.iterdir()) == []


def test_importing_plots_does_not_import_matplotlib():
    import subprocess

    code = "import conv1d_cli.plots, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("weight", "padding", "delay"), [
    ([1.0, 0, 0, 0], (3, 0), 3.0),  # y[t] = x[t - 3]: three samples late
    ([0, 0, 0, 1.0], (0, 3), -3.0),  # y[t] = x[t + 3]: three samples early
    ([1.0, 2, 1], (2, 0), 1.0),  # causal symmetric: late by half its span
])  # fmt: skip
def test_layer_figure_delay_is_the_layers_group_delay_in_samples(mpl, weight, padding, delay):
    layer = Conv1d.from_weights(np.array([[weight]]), padding=padding)
    ys = plots.layer_figure(layer).axes[1].get_lines()[0].get_ydata()
    np.testing.assert_allclose(ys[np.isfinite(ys)], delay, atol=1e-9)


@pytest.mark.parametrize("data", [np.ones((2, 1)), np.zeros((2, 5)), np.full((1, 9), np.nan)])
def test_signal_figure_of_degenerate_signals_draws_without_warnings(mpl, tmp_path, data):
    np.save(tmp_path / "x.npy", data)
    _png(plots.signal_figure(overview.signal_overview(tmp_path / "x.npy")), tmp_path)


def test_layer_figure_of_an_all_zero_kernel(mpl, tmp_path):
    _png(plots.layer_figure(Conv1d.from_weights(np.zeros((2, 1, 5)))), tmp_path)
