"""`conv1d apply --plot-compare`: input vs output spectra of one filtered file."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conv1d_cli import plots
from conv1d_cli.cli import cli
from conv1d_cli.filters import design_fir, kernel_layer
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args, **kwargs):
    return CliRunner().invoke(cli, ["apply", *map(str, args)], **kwargs)


def fails(code, *args, **kwargs):
    result = run(*args, **kwargs)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Error: " in result.stderr
    return result


@pytest.fixture
def drawn(monkeypatch):
    """The figures save_figure was given (and still writes)."""
    figures = []
    save = plots.save_figure

    def keep(fig, path):
        figures.append(fig)
        save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


def _lowpass(tmp_path, channels):
    h = design_fir("lowpass", 1000, 8000, 31)
    path = tmp_path / "lp.npz"
    save_layer(kernel_layer(h, channels=channels, sample_rate=8000), path, overwrite=True)
    return path


@pytest.mark.parametrize("channels", [1, 8])
def test_plot_compare_draws_input_output_and_gain(tmp_path, channels, drawn):
    pytest.importorskip("matplotlib")
    wav = tmp_path / "in.wav"
    sf.write(wav, np.random.default_rng(0).standard_normal((8000, channels)) * 0.1, 8000)
    png = tmp_path / "cmp.png"
    result = run("-w", _lowpass(tmp_path, channels), wav, "-o", tmp_path / "out.wav",
                 "--plot-compare", png)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"wrote {png}\n"
    assert png.read_bytes().startswith(PNG_MAGIC)
    (fig,) = drawn
    assert len(fig.axes) == 2 * channels  # per channel: spectra, and the gain applied
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.texts] == ["input in.wav", "output out.wav"]
    fig.draw_without_rendering()
    box = legend.get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)
    # The measured gain is the filter's: about 0 dB in the passband, far down above 2 kHz.
    freqs, gain = fig.axes[1].get_lines()[0].get_data()
    assert abs(np.median(gain[freqs < 500])) < 0.5 and np.max(gain[freqs > 2000]) < -30
    assert run("-w", _lowpass(tmp_path, channels), wav, "-o", tmp_path / "o2.wav",
                        "--plot-compare", png, "-q").stderr == ""  # fmt: skip


def test_plot_compare_rateless_strided_npy_in_cycles_per_input_sample(tmp_path, drawn):
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((1, 5000)))
    layer = tmp_path / "down.npz"
    save_layer(Conv1d.from_weights(np.full((1, 1, 2), 0.5), stride=2), layer)
    result = run("-w", layer, tmp_path / "x.npy", "-o", tmp_path / "y.npy",
                 "--plot-compare", tmp_path / "c.png")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (fig,) = drawn
    assert len(fig.axes) == 1  # different grids: no gain column
    assert fig.axes[0].get_xlabel() == "frequency (cycles per input sample)"
    before, after = fig.axes[0].get_lines()
    assert before.get_xdata()[-1] == 0.5 and after.get_xdata()[-1] == 0.25


def test_plot_compare_needs_a_single_input(tmp_path):
    wavs = []
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, np.zeros((100, 1)), 8000)
        wavs.append(tmp_path / name)
    result = fails(2, "-w", _lowpass(tmp_path, 1), *wavs, "-d", tmp_path / "out",
                   "--plot-compare", tmp_path / "c.png")  # fmt: skip
    assert "--plot-compare draws one file's input and output; got 2 inputs" in result.stderr
    assert not (tmp_path / "out").exists()


def test_plot_compare_refuses_pipes(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros((100, 1)), 8000)
    layer = _lowpass(tmp_path, 1)
    data = (tmp_path / "a.wav").read_bytes()
    result = fails(2, "-w", layer, "-", "--input-format", "wav", "-o", tmp_path / "o.wav",
                   "--plot-compare", tmp_path / "c.png", input=data)  # fmt: skip
    assert "reads the input again after the run, which a pipe or device (stdin)" in result.stderr
    result = fails(2, "-w", layer, tmp_path / "a.wav", "-o", "-", "--output-format", "wav",
                   "--plot-compare", tmp_path / "c.png")  # fmt: skip
    assert "reads the output again" in result.stderr and "(stdout)" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "lp.npz"]


def test_plot_compare_bad_names_fail_before_filtering(tmp_path):
    pytest.importorskip("matplotlib")
    sf.write(tmp_path / "a.wav", np.zeros((100, 1)), 8000)
    layer = _lowpass(tmp_path, 1)
    out = tmp_path / "o.wav"
    result = fails(2, "-w", layer, tmp_path / "a.wav", "-o", out, "--plot-compare",
                   tmp_path / "c.xyz")  # fmt: skip
    assert "Format 'xyz' is not supported" in result.stderr
    assert "needs a file name" in fails(2, "-w", layer, tmp_path / "a.wav", "-o", out,
                                        "--plot-compare", "-").stderr  # fmt: skip
    assert "same file as input" in fails(2, "-w", layer, tmp_path / "a.wav", "-o", out,
                                         "--plot-compare", tmp_path / "a.wav").stderr  # fmt: skip
    assert not out.exists()


def test_plot_compare_without_matplotlib_fails_before_filtering(tmp_path, monkeypatch):
    sf.write(tmp_path / "a.wav", np.zeros((100, 1)), 8000)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "o.wav"
    result = fails(1, "-w", _lowpass(tmp_path, 1), tmp_path / "a.wav", "-o", out,
                   "--plot-compare", tmp_path / "c.png")  # fmt: skip
    assert result.stderr.startswith("Error: --plot-compare needs matplotlib, which is not")
    assert "pip install 'conv1d-cli[plot]'" in result.stderr
    assert not out.exists() and not (tmp_path / "c.png").exists()


def test_plot_compare_of_a_csv_takes_the_rate_the_run_took(tmp_path, drawn):
    pytest.importorskip("matplotlib")
    csv = tmp_path / "a.csv"
    csv.write_text("ax,ay\n" + "".join(f"{np.sin(i)},{i % 3}\n" for i in range(800)))
    h = design_fir("lowpass", 10, 100, 15)
    save_layer(kernel_layer(h, channels=2, sample_rate=100), tmp_path / "lp.npz")
    result = run("-w", tmp_path / "lp.npz", csv, "-o", tmp_path / "b.csv",
                 "--plot-compare", tmp_path / "c.png")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (fig,) = drawn
    assert fig.axes[-1].get_xlabel() == "frequency (Hz)"  # the layer's design rate, 100 Hz
    assert fig.axes[0].get_lines()[0].get_xdata()[-1] == 50.0
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == ["ch 0 ax", "ch 1 ay"]


@pytest.mark.parametrize(("name", "message"), [
    ("", "an image needs a file name, got ''"),
    ("outdir", "is a directory, expected an image file name"),
    ("nodir/c.png", "nodir does not exist"),
])  # fmt: skip
def test_plot_compare_unwritable_image_names_fail_before_filtering(tmp_path, name, message):
    pytest.importorskip("matplotlib")
    sf.write(tmp_path / "a.wav", np.zeros((100, 1)), 8000)
    (tmp_path / "outdir").mkdir()
    out = tmp_path / "o.wav"
    image = str(tmp_path / name) if name else ""
    result = fails(2 if not name else 1, "-w", _lowpass(tmp_path, 1), tmp_path / "a.wav",
                   "-o", out, "--plot-compare", image)  # fmt: skip
    assert message in result.stderr
    assert not out.exists()
