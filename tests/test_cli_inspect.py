"""``conv1d inspect``: layer and signal reports, --json schemas, --plot, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import run_with_stdout_full

from conv1d_cli.cli import cli
from conv1d_cli.filters import design_fir, kernel_layer
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d

LAYER_KEYS = {
    "schema", "file", "key", "weight_shape", "bias_shape", "dtype", "in_channels",
    "out_channels", "kernel_size", "stride", "padding", "padding_resolved", "dilation",
    "groups", "padding_mode", "bias", "parameters", "receptive_field", "sample_rate",
    "sample_rate_binding", "description", "spec", "kernels_total", "kernels",
}  # fmt: skip
KERNEL_KEYS = {
    "out_channel", "in_channel", "dc_gain", "l1_norm", "l2_norm", "peak", "linear_phase",
    "afir_gain", "pedalboard_gain", "response", "latency_samples", "latency_ms",
    "latency_at_hz", "spec_check",
}  # fmt: skip
RESPONSE_KEYS = {
    "dc_db", "nyquist_db", "peak_db", "peak_hz", "minus3db_hz", "stopband_hz", "stopband_db",
}  # fmt: skip
SIGNAL_KEYS = {
    "schema", "file", "format", "subtype", "sample_rate", "channels", "frames", "duration_s",
    "batch", "column_names", "channel_stats",
}  # fmt: skip


def run(*args, **kwargs):
    return CliRunner().invoke(cli, ["inspect", *map(str, args)], **kwargs)


def ok(*args, **kwargs):
    result = run(*args, **kwargs)
    assert result.exit_code == 0, result.stderr
    return result


def fails(code, *args, **kwargs):
    result = run(*args, **kwargs)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert "Error: " in result.stderr
    return result


@pytest.fixture
def lowpass(tmp_path):
    h = design_fir("lowpass", 1000, 8000, 31)
    layer = kernel_layer(h, channels=2, sample_rate=8000, description="test lowpass")
    path = tmp_path / "lp.npz"
    save_layer(layer, path)
    return path


def test_cli_inspect_layer_text(lowpass):
    result = ok(lowpass)
    out = result.stdout
    assert result.stderr == ""
    assert out.startswith(f"{lowpass}: conv1d layer\n")
    for line in [
        "  weight         (2, 1, 31) float64",
        "  bias           none",
        "  in_channels    2",
        "  out_channels   2",
        "  kernel_size    31",
        "  stride         1",
        "  padding        (15, 15) -> (left, right) = (15, 15)",
        "  dilation       1",
        "  groups         2 (depthwise)",
        "  padding_mode   zeros",
        "  parameters     62",
        "  receptive      31 samples (3.875 ms)",
        "  sample_rate    8000 Hz",
        "  description    test lowpass",
        "frequency response at 8000 Hz (dB re gain 1)",
    ]:
        assert line + "\n" in out
    assert "     0 <- 0          1            " in out
    assert "symmetric" in out
    assert "DC +0.00 dB, Nyquist" in out and "-3 dB at 892.51 Hz" in out and "stopband -" in out


def test_cli_inspect_layer_json_schema_and_values(lowpass):
    report = json.loads(ok(lowpass, "--json").stdout)
    assert set(report) == LAYER_KEYS
    assert report["schema"] == "conv1d-inspect-layer/1"
    assert report["weight_shape"] == [2, 1, 31] and report["bias_shape"] is None
    assert report["padding"] == [15, 15] and report["padding_resolved"] == [15, 15]
    assert report["parameters"] == 62 and report["receptive_field"] == 31
    assert report["sample_rate"] == 8000.0 and report["kernels_total"] == 2
    assert report["sample_rate_binding"] is False  # a design rate: another only warns
    assert [k["in_channel"] for k in report["kernels"]] == [0, 1]
    kernel = report["kernels"][0]
    assert set(kernel) == KERNEL_KEYS and set(kernel["response"]) == RESPONSE_KEYS
    h = design_fir("lowpass", 1000, 8000, 31)
    assert kernel["dc_gain"] == pytest.approx(h.sum())
    assert kernel["l1_norm"] == pytest.approx(np.abs(h).sum())
    assert kernel["l2_norm"] == pytest.approx(np.sqrt((h * h).sum()))
    assert kernel["peak"] == pytest.approx(np.abs(h).max())
    assert kernel["linear_phase"] == "symmetric"
    assert kernel["afir_gain"] == pytest.approx(1 / np.abs(h).sum())
    assert kernel["pedalboard_gain"] == pytest.approx(0.125 / np.sqrt((h * h).sum()))
    response = kernel["response"]
    assert response["dc_db"] == pytest.approx(0, abs=1e-9)
    assert 850 < response["minus3db_hz"][0] < 1000
    assert response["stopband_db"] < -40 and response["stopband_hz"][0][1] == 4000


def test_cli_inspect_layer_random_groups_and_no_sample_rate(tmp_path):
    layer = Conv1d(4, 6, 3, stride=2, padding="causal", dilation=2, groups=2, seed=0)
    save_layer(layer, tmp_path / "r.npz")
    result = ok(tmp_path / "r.npz", "--json")
    report = json.loads(result.stdout)
    assert report["padding"] == "causal" and report["padding_resolved"] == [4, 0]
    assert report["receptive_field"] == 5 and report["parameters"] == 6 * 2 * 3 + 6
    assert report["bias"] is True and report["bias_shape"] == [6]
    assert report["kernels_total"] == 12
    # output channel 3 is in group 1, which reads input channels 2 and 3
    assert [(k["out_channel"], k["in_channel"]) for k in report["kernels"][6:8]] == [(3, 2), (3, 3)]
    assert all(k["response"] is None for k in report["kernels"])
    text = ok(tmp_path / "r.npz").stdout
    assert "no sample rate: give --sample-rate FS" in text
    limited = json.loads(ok(tmp_path / "r.npz", "--json", "--max-kernels", 3).stdout)
    assert len(limited["kernels"]) == 3 and limited["kernels_total"] == 12
    assert "... 9 more kernels" in ok(tmp_path / "r.npz", "--max-kernels", 3).stdout


def test_cli_inspect_sample_rate_option_and_minus_inf_as_null(tmp_path):
    save_layer(Conv1d.from_weights(np.array([[[0.5, 0.5]]])), tmp_path / "ma.npz")
    report = json.loads(ok(tmp_path / "ma.npz", "--json", "--sample-rate", 1000).stdout)
    assert report["sample_rate"] == 1000.0
    response = report["kernels"][0]["response"]
    assert response["nyquist_db"] is None  # exact zero = -inf dB
    assert response["minus3db_hz"] == [pytest.approx(250, abs=1)]
    assert "Nyquist -inf dB" in ok(tmp_path / "ma.npz", "--sample-rate", 1000).stdout


def test_cli_inspect_overrides_and_key(tmp_path):
    np.savez(
        tmp_path / "sd.npz",
        **{"enc.conv.weight": np.ones((2, 1, 4), np.float32), "dec.weight": np.ones((1, 2, 3))},
    )
    fails(1, tmp_path / "sd.npz")
    report = json.loads(
        ok(tmp_path / "sd.npz", "--key", "enc.conv", "--json", "--padding", "same",
           "--groups", "2", "--padding-mode", "reflect").stdout
    )  # fmt: skip
    assert report["key"] == "enc.conv" and report["padding_resolved"] == [1, 2]
    assert report["groups"] == 2 and report["padding_mode"] == "reflect"
    assert report["in_channels"] == 2 and report["dtype"] == "float32"


def test_cli_inspect_antisymmetric_and_asymmetric_kernels(tmp_path):
    save_layer(Conv1d.from_weights(np.array([[[1.0, 0, -1]], [[1.0, 2, 4]]])), tmp_path / "k.npz")
    kernels = json.loads(ok(tmp_path / "k.npz", "--json").stdout)["kernels"]
    assert [k["linear_phase"] for k in kernels] == ["antisymmetric", None]
    assert "  no\n" in ok(tmp_path / "k.npz").stdout


def test_cli_inspect_plot_writes_png(lowpass, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "resp.png"
    result = ok(lowpass, "--plot", out)
    assert result.stderr == f"wrote {out}\n"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 100 * 1024
    assert result.stdout.startswith(f"{lowpass}: conv1d layer")
    fails(2, lowpass, "--plot", lowpass)  # the layer itself is never overwritten


def test_cli_inspect_plot_replaces_an_existing_image(lowpass, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "r.png"
    out.write_bytes(b"old")
    result = ok(lowpass, "--plot", out)
    assert result.stderr == f"wrote {out}\n"
    assert out.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lp.npz", "r.png"]


def test_cli_inspect_plot_refuses_stdout_and_unknown_image_format(lowpass, tmp_path):
    assert "needs a file name" in fails(2, lowpass, "--plot", "-").stderr
    pytest.importorskip("matplotlib")
    result = fails(2, lowpass, "--plot", tmp_path / "r.xyz")
    assert "Format 'xyz' is not supported" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lp.npz"]


def test_cli_inspect_zero_kernel_has_no_normalisation_gain(tmp_path):
    save_layer(Conv1d.from_weights(np.zeros((1, 1, 3))), tmp_path / "z.npz")
    (kernel,) = json.loads(ok(tmp_path / "z.npz", "--json").stdout)["kernels"]
    assert kernel["afir_gain"] is None and kernel["pedalboard_gain"] is None


def test_cli_inspect_extreme_weights_give_valid_json(tmp_path):
    weight = np.array([[[1e300, 1e300, -1e300]], [[1e-320, 0.0, 0.0]]])
    save_layer(Conv1d.from_weights(weight), tmp_path / "x.npz")
    result = ok(tmp_path / "x.npz", "--json", "--sample-rate", 100)
    big, tiny = json.loads(result.stdout)["kernels"]
    # sqrt(3) * 1e300 is a float64: the L2 norm is computed scaled, so it is finite
    assert big["l2_norm"] == pytest.approx(np.sqrt(3) * 1e300) and big["dc_gain"] == 1e300
    assert tiny["afir_gain"] is None and tiny["pedalboard_gain"] is None
    assert "inf" not in ok(tmp_path / "x.npz").stdout


def test_cli_inspect_plot_without_sample_rate(tmp_path):
    pytest.importorskip("matplotlib")
    save_layer(Conv1d(3, 2, 5, seed=0), tmp_path / "r.npz")
    ok(tmp_path / "r.npz", "--plot", tmp_path / "r.png", "--json")
    assert (tmp_path / "r.png").stat().st_size > 0


def test_cli_inspect_plot_without_matplotlib_is_clear_error(lowpass, tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    result = fails(1, lowpass, "--plot", tmp_path / "r.png")
    assert "--plot needs matplotlib" in result.stderr
    assert "pip install 'conv1d-cli[plot]'" in result.stderr
    assert not (tmp_path / "r.png").exists()


def _bad_layer(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "pickle":
        np.savez(path, weight=np.array([object()], dtype=object))
    elif kind in ("truncated", "not-zip"):
        good = tmp_path / "good.npz"
        save_layer(Conv1d(1, 1, 3, seed=0), good)
        raw = good.read_bytes()
        path.write_bytes(raw[: len(raw) // 2] if kind == "truncated" else b"not a zip at all")
    elif kind == "rank":
        np.savez(path, weight=np.ones((2, 3)))
    elif kind == "int":
        np.savez(path, weight=np.ones((1, 1, 3), np.int32))
    elif kind == "complex":
        np.savez(path, weight=np.ones((1, 1, 3), complex))
    elif kind == "bias":
        np.savez(path, weight=np.ones((2, 1, 3)), bias=np.ones(5))
    elif kind == "nan":
        np.savez(path, weight=np.array([[[np.inf, 0.0]]]))
    elif kind == "groups":
        np.savez(path, weight=np.ones((3, 1, 3)), conv1d_config=np.array('{"groups": 2}'))
    elif kind == "padding-mode":
        np.savez(path, weight=np.ones((3, 1, 3)), conv1d_config=np.array('{"padding_mode": "x"}'))
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("pickle", "pickled objects"),
        ("truncated", "cannot read layer file"),
        ("not-zip", "not a layer file"),
        ("rank", "must be 3-D"),
        ("int", "integer dtype"),
        ("complex", "complex dtype"),
        ("bias", "bias must have shape (2,)"),
        ("nan", "non-finite"),
        ("groups", "groups=2 in the config does not divide the 3 output channels"),
        ("padding-mode", "padding_mode must be one of"),
    ],
)
def test_cli_inspect_bad_layer_files(tmp_path, kind, message):
    path = _bad_layer(tmp_path, kind)
    result = fails(1, path)
    assert result.stderr.startswith(f"Error: {path}: ")
    assert message in result.stderr


def test_cli_inspect_bad_layer_with_plot_writes_nothing(tmp_path):
    path = _bad_layer(tmp_path, "nan")
    fails(1, path, "--plot", tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_cli_inspect_bad_invocations(lowpass, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 10)))
    assert "only apply to layer files" in fails(2, tmp_path / "x.npy", "--stride", "2").stderr
    assert "--key" in fails(2, tmp_path / "x.npy", "--key", "a").stderr
    assert "--input-format only applies" in fails(2, lowpass, "--input-format", "wav").stderr
    assert "positive" in fails(2, lowpass, "--sample-rate", "-5").stderr
    # The one sample-rate rule (shapes.check_sample_rate): also an upper limit.
    assert "--sample-rate must be at most 2147483647 Hz, got 1e+12" in (
        fails(2, lowpass, "--sample-rate", "1e12").stderr
    )
    assert "Invalid value" in fails(2, lowpass, "--stride", "0").stderr
    assert (
        "not supported for strided"
        in fails(2, lowpass, "--stride", "2", "--padding", "same").stderr
    )


# ---- signals -----------------------------------------------------------------


def test_cli_inspect_wav_signal(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    data = np.stack([np.full(8000, 0.5), np.tile([0.25, -0.25], 4000)], axis=1)
    soundfile.write(tmp_path / "s.wav", data, 8000, subtype="FLOAT")
    report = json.loads(ok(tmp_path / "s.wav", "--json").stdout)
    assert set(report) == SIGNAL_KEYS and report["schema"] == "conv1d-inspect-signal/1"
    assert report["format"] == "wav" and report["subtype"] == "FLOAT"
    assert report["sample_rate"] == 8000.0 and report["channels"] == 2
    assert report["frames"] == 8000 and report["duration_s"] == 1.0
    assert report["batch"] is None and report["column_names"] is None
    c0, c1 = report["channel_stats"]
    assert set(c0) == {"channel", "name", "peak", "rms", "dc"}
    assert (c0["peak"], c0["rms"], c0["dc"]) == (0.5, 0.5, 0.5)
    assert (c1["peak"], c1["rms"], c1["dc"]) == (0.25, 0.25, 0.0)
    text = ok(tmp_path / "s.wav").stdout
    assert text.startswith(f"{tmp_path / 's.wav'}: signal\n")
    assert "  format       wav (FLOAT)\n" in text and "  duration     1 s\n" in text
    assert "  0          0.5          -6.02      0.5          -6.02      0.5\n" in text


def test_cli_inspect_csv_and_npy_signals(tmp_path):
    (tmp_path / "s.csv").write_text("x,y\n1,-2\n3,0\n")
    report = json.loads(ok(tmp_path / "s.csv", "--json").stdout)
    assert report["format"] == "csv" and report["sample_rate"] is None
    assert report["duration_s"] is None and report["column_names"] == ["x", "y"]
    x, y = report["channel_stats"]
    assert x == {
        "channel": 0,
        "name": "x",
        "peak": 3.0,
        "rms": pytest.approx(np.sqrt(5)),
        "dc": 2.0,
    }
    assert y["peak"] == 2.0 and y["dc"] == -1.0
    with_rate = json.loads(ok(tmp_path / "s.csv", "--json", "--sample-rate", 2).stdout)
    assert with_rate["duration_s"] == 1.0
    assert "  0 x        3 " in ok(tmp_path / "s.csv").stdout
    np.save(tmp_path / "b.npy", np.array([[[1.0, -1.0]], [[3.0, 3.0]]]))
    npy = json.loads(ok(tmp_path / "b.npy", "--json").stdout)
    assert npy["batch"] == 2 and npy["channels"] == 1 and npy["frames"] == 2
    assert npy["channel_stats"][0]["peak"] == 3.0 and npy["channel_stats"][0]["dc"] == 1.5


def test_cli_inspect_signal_stats_near_float64_limit(tmp_path):
    # x**2 overflows float64 here: RMS and DC are computed scaled by the peak.
    np.save(tmp_path / "big.npy", np.full((1, 10), 1e308))
    result = run(tmp_path / "big.npy", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    (stats,) = json.loads(result.stdout)["channel_stats"]
    assert (stats["peak"], stats["rms"], stats["dc"]) == (1e308, 1e308, 1e308)


def test_cli_inspect_signal_from_stdin(tmp_path):
    report = json.loads(ok("-", "--input-format", "csv", "--json", input="1\n2\n3\n").stdout)
    assert report["file"] == "-" and report["frames"] == 3 and report["channels"] == 1


def test_cli_inspect_signal_from_a_fifo_is_read_once(tmp_path):
    import os
    import threading

    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "w") as f:
            f.write("a,b,c\n1,2,3\n4,5,6\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    report = json.loads(ok(fifo, "--input-format", "csv", "--json").stdout)
    writer.join(timeout=10)
    assert (report["channels"], report["frames"]) == (3, 2)
    assert report["column_names"] == ["a", "b", "c"]


@pytest.mark.parametrize("kind", ["missing", "directory", "garbage"])
def test_cli_inspect_bad_signal_files(tmp_path, kind):
    path = tmp_path / "s.wav"
    if kind == "directory":
        path.mkdir()
    elif kind == "garbage":
        path.write_bytes(b"RIFF\x00\x00 this is no wave")
    result = fails(1, path)
    assert str(path) in result.stderr


def test_cli_inspect_help_documents_every_json_field():
    text = " ".join(ok("--help").stdout.split())
    assert "conv1d-inspect-layer/1" in text and "conv1d-inspect-signal/1" in text
    for key in LAYER_KEYS | KERNEL_KEYS | RESPONSE_KEYS | SIGNAL_KEYS | {"name", "channel"}:
        assert key in text, key


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_cli_inspect_stdout_full_disk_is_one_error_line(tmp_path, extra):
    np.save(tmp_path / "x.npy", np.zeros((1, 4)))
    proc = run_with_stdout_full("inspect", str(tmp_path / "x.npy"), *extra)
    assert proc.returncode == 1
    assert proc.stderr == "Error: cannot write to stdout: No space left on device\n"


@pytest.mark.parametrize("channels", [1, 8])
def test_cli_inspect_plot_of_a_signal(tmp_path, channels):
    pytest.importorskip("matplotlib")
    import soundfile as sf

    wav = tmp_path / "x.wav"
    data = np.random.default_rng(0).standard_normal((4000, channels)) * 0.1
    sf.write(wav, data, 8000)
    out = tmp_path / "x.png"
    result = ok(wav, "--plot", out)
    assert result.stdout.startswith(f"{wav}: signal") and result.stderr == f"wrote {out}\n"
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_cli_inspect_plot_of_a_signal_on_stdin_reads_it_once(tmp_path):
    pytest.importorskip("matplotlib")
    csv = "".join(f"{np.sin(i / 3):.6f},{i % 5}\n" for i in range(3000))
    out = tmp_path / "s.png"
    result = ok(
        "-", "--input-format", "csv", "--sample-rate", 100, "--plot", out, "--json", input=csv
    )
    assert json.loads(result.stdout)["frames"] == 3000  # the statistics saw every row
    assert out.read_bytes().startswith(b"\x89PNG")


def test_cli_inspect_plot_of_a_signal_without_matplotlib(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((1, 10)))
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = fails(1, tmp_path / "x.npy", "--plot", tmp_path / "p.png")
    assert result.stderr.startswith("Error: --plot needs matplotlib, which is not installed")
    assert not (tmp_path / "p.png").exists()


def test_cli_inspect_plot_refuses_to_overwrite_the_signal(tmp_path):
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "x.npy", np.zeros((1, 10)))
    assert "same file as input" in fails(2, tmp_path / "x.npy", "--plot", tmp_path / "x.npy").stderr
