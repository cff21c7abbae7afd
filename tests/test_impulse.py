"""Impulse responses from audio files: init --impulse-response (issue 14, item 4)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from scipy import signal

from conv1d_cli.cli import cli
from conv1d_cli.errors import ConfigError, DataFileError
from conv1d_cli.impulse import (
    IR_NORMS,
    impulse_layer,
    impulse_response_layer,
    ir_gain,
    onset,
    read_impulse_response,
    trim_tail,
)
from conv1d_cli.layer import load_layer

RATE = 8000


def _run(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def _ir(length, seed, delay=5):
    """A decaying noise tail after ``delay`` zeros, with a clear direct sound."""
    rng = np.random.default_rng(seed)
    k = np.arange(length)
    h = 0.3 * rng.standard_normal(length) * np.exp(-k / (length / 6))
    h[:delay] = 0.0
    h[delay] = 0.9
    return _f32(h)


def _f32(taps):
    """``taps`` rounded to float32: exactly what a FLOAT WAV holds."""
    return np.asarray(taps, dtype=np.float32).astype(np.float64)


def _write(path, taps, rate=RATE, subtype="FLOAT"):
    """Write ``taps`` ``(channels, K)`` as an audio file; returns the path as str."""
    sf.write(str(path), np.asarray(taps, dtype=np.float64).T, rate, subtype=subtype)
    return str(path)


@pytest.fixture
def signal_file(tmp_path):
    """A 3000-frame stereo FLOAT WAV at RATE, and its samples ``(2, L)``."""
    x = np.random.default_rng(7).uniform(-0.3, 0.3, size=(2, 3000))
    return _write(tmp_path / "x.wav", x), sf.read(str(tmp_path / "x.wav"))[0].T


def _apply(layer_path, signal_path, out_path):
    result = _run("apply", signal_path, "-w", layer_path, "-o", out_path, "-q")
    assert result.exit_code == 0, result.stderr
    data, rate = sf.read(str(out_path))
    assert rate == RATE
    return data.T


def _causal(x, h):
    return signal.oaconvolve(x, h)[: x.size]


# ---- applied to real files: equal to scipy.signal.oaconvolve per channel pair ----------


def test_mono_ir_filters_every_channel_like_oaconvolve(tmp_path, signal_file):
    path, x = signal_file
    h = _ir(300, 1)
    ir = _write(tmp_path / "mono.wav", [h])
    result = _run("init", tmp_path / "room.npz", "--impulse-response", ir)
    assert result.exit_code == 0, result.stderr
    layer = load_layer(tmp_path / "room.npz")
    assert (layer.in_channels, layer.out_channels, layer.groups) == (1, 1, 1)
    assert layer.padding == "causal" and layer.sample_rate == RATE
    y = _apply(tmp_path / "room.npz", path, tmp_path / "y.wav")
    expected = np.stack([_causal(x[c], h) for c in range(2)])
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_mono_ir_with_channels_is_depthwise(tmp_path):
    h = _ir(50, 2)
    layer = impulse_layer([h], RATE, channels=3)
    assert layer.weight.shape == (3, 1, 50) and layer.groups == 3
    # Correlation weights are the IR reversed in time, so applying them convolves.
    np.testing.assert_array_equal(layer.weight[1, 0], h[::-1])


def test_stereo_ir_filters_channel_i_by_ir_channel_i(tmp_path, signal_file):
    path, x = signal_file
    h = np.stack([_ir(400, 3), _ir(400, 4, delay=9)])
    ir = _write(tmp_path / "stereo.wav", h)
    assert _run("init", tmp_path / "room.npz", "--impulse-response", ir).exit_code == 0
    layer = load_layer(tmp_path / "room.npz")
    assert (layer.in_channels, layer.out_channels, layer.groups) == (2, 2, 2)
    y = _apply(tmp_path / "room.npz", path, tmp_path / "y.wav")
    expected = np.stack([_causal(x[c], h[c]) for c in range(2)])
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def _true_stereo_expected(x, h):
    ll, lr, rl, rr = h
    left = _causal(x[0], ll) + _causal(x[1], rl)
    right = _causal(x[0], lr) + _causal(x[1], rr)
    return np.stack([left, right])


def test_true_stereo_ir_is_a_2x2_layer_summing_the_paths(tmp_path, signal_file):
    path, x = signal_file
    h = _f32([_ir(350, 5), 0.5 * _ir(350, 6), 0.4 * _ir(350, 7), _ir(350, 8)])
    ir = _write(tmp_path / "ts.wav", h)
    result = _run("init", tmp_path / "room.npz", "--impulse-response", ir, "--true-stereo")
    assert result.exit_code == 0, result.stderr
    layer = load_layer(tmp_path / "room.npz")
    assert (layer.in_channels, layer.out_channels, layer.groups) == (2, 2, 1)
    assert "true stereo LL LR RL RR" in layer.description
    # weight[o, i] is the path from input i to output o: LR (input L -> output R) is [1, 0].
    np.testing.assert_array_equal(layer.weight[1, 0], h[1][::-1])
    np.testing.assert_array_equal(layer.weight[0, 1], h[2][::-1])
    y = _apply(tmp_path / "room.npz", path, tmp_path / "y.wav")
    expected = _true_stereo_expected(x, h)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_true_stereo_equals_ffmpeg_afir_per_path(tmp_path, signal_file):
    """FFmpeg has no true-stereo afir: four afir (one per path) summed per output.

    FFmpeg 5.1 pitfalls: afir with gtype=none has gain 2 (hence wet=0.5), and amix with
    normalize=0, like one asplit IR stream shared by several afir, lost a path; so the
    IR is opened once per path and the outputs are summed with amerge + pan. afir is
    causal (``full[:len(x)]``), as the layer is, so the samples compare directly.
    """
    path, x = signal_file
    h = _f32([_ir(300, 9), 0.5 * _ir(300, 10), 0.3 * _ir(300, 11), _ir(300, 12)])
    ir = _write(tmp_path / "ts.wav", h)
    assert (
        _run("init", tmp_path / "r.npz", "--impulse-response", ir, "--true-stereo").exit_code == 0
    )
    ours = _apply(tmp_path / "r.npz", path, tmp_path / "y.wav")
    paths = [f"[{k + 1}:a]pan=mono|c0=c{k}[h{k}]" for k in range(4)] + [
        "[0:a]channelsplit=channel_layout=stereo[L][R]",
        "[L]asplit=2[L1][L2]",
        "[R]asplit=2[R1][R2]",
        "[L1][h0]afir=gtype=none:wet=0.5[yll]",
        "[L2][h1]afir=gtype=none:wet=0.5[ylr]",
        "[R1][h2]afir=gtype=none:wet=0.5[yrl]",
        "[R2][h3]afir=gtype=none:wet=0.5[yrr]",
        "[yll][yrl][ylr][yrr]amerge=inputs=4,pan=stereo|c0=c0+c1|c1=c2+c3[out]",
    ]
    theirs_path = tmp_path / "ff.wav"
    command = ["ffmpeg", "-y", "-loglevel", "error", "-i", path, *(["-i", ir] * 4),
               "-filter_complex", ";".join(paths), "-map", "[out]", "-c:a", "pcm_f32le",
               str(theirs_path)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.skip(f"this ffmpeg cannot run the afir graph: {proc.stderr.strip()[:200]}")
    theirs = sf.read(str(theirs_path))[0].T
    assert theirs.shape == ours.shape
    peak = np.abs(ours).max()
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5 * peak)
    np.testing.assert_allclose(ours, _true_stereo_expected(x, h), rtol=0, atol=1e-6 * peak)


# ---- the formulas: norm, trim, onset, mix ------------------------------------------------


def test_ir_norm_formulas():
    h = np.array([[0.5, -0.25, 0.25, 0.0], [0.1, 0.2, -0.1, 0.4]])
    assert ir_gain(h, "none") == 1.0
    assert ir_gain(h, "peak") == pytest.approx(1 / 0.5)
    assert ir_gain(h, "dc") == pytest.approx(1 / max(abs(0.5), abs(0.6)))
    assert ir_gain(h, "energy") == pytest.approx(1 / np.sqrt(max(0.375, 0.22)))
    layer = impulse_layer(h, RATE, norm="energy")
    assert np.sum(layer.weight[0, 0] ** 2) == pytest.approx(1.0)
    assert "energy-normalised" in layer.description
    with pytest.raises(DataFileError, match="sum to 0, so ir_norm dc"):
        ir_gain([[1.0, -1.0]], "dc")
    with pytest.raises(ConfigError, match="ir_norm must be one of none, peak, dc, energy"):
        ir_gain(h, "loud")
    assert IR_NORMS == ("none", "peak", "dc", "energy")


def test_trim_cuts_the_tail_below_db_from_the_peak_in_any_channel():
    h = np.array([[0.0, 1.0, 0.5, 0.02, 0.005, 0.0001], [0.0, 0.1, 0.0, 0.0, 0.011, 0.0]])
    assert trim_tail(h, 40).shape == (2, 5)  # 0.011 >= 0.01 in channel 2 keeps tap 4
    assert trim_tail(h, 20).shape == (2, 3)
    assert trim_tail(h, 200).shape == (2, 6)
    for bad in (0, -3, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="trim must be a positive number of dB"):
            trim_tail(h, bad)


def test_mix_adds_a_dry_impulse_at_the_onset():
    h = np.array([0.0, 0.0, 0.05, 0.2, 1.0, -0.5, 0.25])
    assert onset([h]) == 3  # 0.2 is within 20 dB of 1.0; 0.05 is not
    layer = impulse_layer([h], RATE, mix=0.25)
    expected = 0.25 * h
    expected[3] += 0.75
    np.testing.assert_allclose(layer.weight[0, 0, ::-1], expected)
    dry = impulse_layer([h], RATE, mix=0.0)
    x = np.random.default_rng(0).standard_normal((1, 40))
    np.testing.assert_allclose(dry(x)[0, 3:], x[0, :-3])  # a pure delay by the onset
    np.testing.assert_allclose(
        impulse_layer([h], RATE, mix=1.0).weight, impulse_layer([h], RATE).weight
    )
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="mix must be from 0"):
            impulse_layer([h], RATE, mix=bad)


def test_true_stereo_mix_puts_the_dry_path_on_ll_and_rr_only():
    h = np.stack([_ir(40, s) for s in range(4)])
    layer = impulse_layer(h, RATE, true_stereo=True, mix=0.5)
    start = onset(h)
    for o, i, k in ((0, 0, 0), (1, 0, 1), (0, 1, 2), (1, 1, 3)):
        expected = 0.5 * h[k]
        if o == i:
            expected[start] += 0.5
        np.testing.assert_allclose(layer.weight[o, i, ::-1], expected)


def test_order_is_trim_then_norm_then_mix():
    h = np.array([[0.0, 2.0, 1.0, 0.001]])
    layer = impulse_layer(h, RATE, trim=40, norm="peak", mix=0.5)
    np.testing.assert_allclose(layer.weight[0, 0, ::-1], [0.0, 1.0, 0.25])
    assert "trimmed at -40 dB (4 -> 3 taps)" in layer.description


# ---- files, options and refusals -------------------------------------------------------


def test_reading_keeps_rate_and_scales_pcm(tmp_path):
    path = _write(tmp_path / "ir.flac", [[0.5, -0.25, 0.0, 0.125]], rate=44100, subtype="PCM_16")
    ir = read_impulse_response(path)
    assert ir.sample_rate == 44100 and ir.path == path
    np.testing.assert_allclose(ir.taps, [[0.5, -0.25, 0.0, 0.125]])


@pytest.mark.parametrize(
    ("subtype", "dtype"),
    [
        ("PCM_16", "float32"),
        ("PCM_24", "float32"),
        ("FLOAT", "float32"),
        ("PCM_32", "float64"),
        ("DOUBLE", "float64"),
        ("ALAC_24", "float32"),
        ("ALAC_32", "float64"),
    ],
)
def test_layer_keeps_the_ir_files_precision_unless_dtype(tmp_path, subtype, dtype):
    # float32 holds every sample of up to 24-bit PCM and 32-bit float exactly (as afir and
    # pedalboard compute); 32-bit PCM and doubles would lose bits, so they stay float64.
    taps = [[0.5, -0.25, 0.0, 0.125, 1 / 3]]
    name = "ir.caf" if subtype.startswith("ALAC") else "ir.wav"
    path = _write(tmp_path / name, taps, subtype=subtype)
    assert read_impulse_response(path).dtype == dtype
    assert _run("init", tmp_path / "r.npz", "--impulse-response", path, "-q").exit_code == 0
    layer = load_layer(tmp_path / "r.npz")
    assert layer.weight.dtype == dtype
    expected = read_impulse_response(path).taps[:, ::-1].astype(dtype)
    np.testing.assert_array_equal(layer.weight[:, 0, :], expected)  # exact: no bits lost
    result = _run("init", tmp_path / "w.npz", "--impulse-response", path, "--dtype", "float64")
    assert result.exit_code == 0 and load_layer(tmp_path / "w.npz").weight.dtype == "float64"


def test_ir_from_stdin(tmp_path):
    path = _write(tmp_path / "ir.wav", [_ir(64, 1), _ir(64, 2)])
    with open(path, "rb") as fh:
        data = fh.read()
    result = _run("init", tmp_path / "r.npz", "--impulse-response", "-", input=data)
    assert result.exit_code == 0, result.stderr
    layer = load_layer(tmp_path / "r.npz")
    assert layer.groups == 2 and "impulse response <stdin>" in layer.description


def test_library_sample_rate_must_match_the_file(tmp_path):
    path = _write(tmp_path / "ir.wav", [_ir(32, 1)])
    assert impulse_response_layer(path, sample_rate=RATE).sample_rate == RATE
    with pytest.raises(ConfigError, match="recorded at 8000 Hz but sample_rate is 16000 Hz"):
        impulse_response_layer(path, sample_rate=16000)


def _errors(result):
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def test_apply_refuses_a_signal_at_another_rate_naming_both(tmp_path):
    ir = _write(tmp_path / "ir.wav", [_ir(32, 1)])
    assert _run("init", tmp_path / "r.npz", "--impulse-response", ir).exit_code == 0
    # Stereo: the mono IR is widened to both channels first, and stays binding.
    x = _write(tmp_path / "x.wav", np.zeros((2, 100)) + 0.1, rate=16000)
    result = _run("apply", x, "-w", tmp_path / "r.npz", "-o", tmp_path / "y.wav")
    assert result.exit_code == 1, result.stderr
    assert _errors(result) == [
        f"Error: {tmp_path / 'r.npz'} was recorded at 8000 Hz but gets 16000 Hz from {x}; "
        "resample one of them (conv1d does not resample)"
    ]
    assert not (tmp_path / "y.wav").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ir.wav", "r.npz", "x.wav"]


def test_shape_refuses_the_same_chain(tmp_path):
    ir = _write(tmp_path / "ir.wav", [_ir(32, 1), _ir(32, 2)])
    assert _run("init", tmp_path / "r.npz", "--impulse-response", ir).exit_code == 0
    x = _write(tmp_path / "x.wav", np.zeros((2, 100)), rate=44100)
    for extra in ([], ["--json"]):
        result = _run("shape", "-w", tmp_path / "r.npz", x, *extra)
        assert result.exit_code == 1, result.stderr
        assert _errors(result) == [
            f"Error: layer 1 ({tmp_path / 'r.npz'}) was recorded at 8000 Hz but gets 44100 Hz "
            f"from {x}; resample one of them (conv1d does not resample)"
        ]
    result = _run("shape", "-w", tmp_path / "r.npz", "-L", 100, "--sample-rate", 16000)
    assert result.exit_code == 1 and "gets 16000 Hz from --sample-rate;" in result.stderr


def test_a_designed_layer_still_only_warns_and_a_rateless_input_takes_the_irs_rate(tmp_path):
    ir = _write(tmp_path / "ir.wav", [_ir(32, 1)])
    assert _run("init", tmp_path / "r.npz", "--impulse-response", ir).exit_code == 0
    design = ["--design", "lowpass", "--cutoff", 1000, "--taps", 15]
    lp = tmp_path / "lp.npz"
    assert _run("init", lp, *design, "--sample-rate", 16000).exit_code == 0
    wav = _write(tmp_path / "x.wav", np.zeros((1, 100)) + 0.1)
    result = _run("apply", wav, "-w", lp, "-w", tmp_path / "r.npz", "-o", tmp_path / "y.wav")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"warning: {lp} was designed for 16000 Hz but gets 8000 Hz from {wav}\n"
    # A CSV has no rate: the IR's recorded rate stands in, even behind the designed layer.
    np.savetxt(tmp_path / "x.csv", np.zeros(100) + 0.1)
    args = ["-w", lp, "-w", tmp_path / "r.npz"]
    result = _run("apply", tmp_path / "x.csv", *args, "-o", tmp_path / "y.wav")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == (
        f"warning: {lp} was designed for 16000 Hz but gets 8000 Hz from {tmp_path / 'x.csv'} "
        f"(it has no rate; {tmp_path / 'r.npz'}'s recorded rate stands in)\n"
    )
    assert sf.info(str(tmp_path / "y.wav")).samplerate == RATE


def test_two_irs_recorded_at_different_rates_are_refused_even_without_an_input_rate(tmp_path):
    from conv1d_cli import npyarray
    from conv1d_cli.errors import ShapeError
    from conv1d_cli.jobs import FilterOptions, Job

    pytest.importorskip("dask")
    a = impulse_layer([[1.0, 0.5]], 8000)
    b = impulse_layer([[1.0, 0.25]], 16000)
    np.save(tmp_path / "x.npy", np.zeros((1, 50)))
    for layer, name in ((a, "a.npz"), (b, "b.npz")):
        layer.save(tmp_path / name)
    result = _run("apply", tmp_path / "x.npy", "-w", tmp_path / "a.npz", "-w", tmp_path / "b.npz",
                  "-o", tmp_path / "y.npy")  # fmt: skip
    assert result.exit_code == 1 and not (tmp_path / "y.npy").exists()
    assert "b.npz was recorded at 16000 Hz but gets 8000 Hz from" in _errors(result)[0]
    assert f"(it has no rate; {tmp_path / 'a.npz'}'s recorded rate stands in)" in result.stderr
    # The cluster's array path applies the same rule before it needs a client.
    job = Job(str(tmp_path / "x.npy"), str(tmp_path / "z.npy"))
    with pytest.raises(ShapeError, match="b was recorded at 16000 Hz but gets 8000 Hz"):
        npyarray.filter_npy_array(None, job, [a, b], ["a", "b"], FilterOptions())
    assert not (tmp_path / "z.npy").exists()


def test_the_recorded_rate_is_binding_in_the_layer_file_and_copies(tmp_path):
    import zipfile

    ir = _write(tmp_path / "ir.wav", [_ir(32, 1)])
    assert _run("init", tmp_path / "r.npz", "--impulse-response", ir).exit_code == 0
    layer = load_layer(tmp_path / "r.npz")
    assert layer.sample_rate == RATE and layer.sample_rate_binding is True
    with zipfile.ZipFile(tmp_path / "r.npz") as z, z.open("conv1d_config.npy") as f:
        config = json.loads(str(np.lib.format.read_array(f)))
    assert config["sample_rate_binding"] is True and config["version"] == 1
    # init --weight copies the layer, binding and all; --sample-rate relabels the recording.
    args = ["init", tmp_path / "c.npz", "--weight", tmp_path / "r.npz"]
    assert _run(*args).exit_code == 0
    assert load_layer(tmp_path / "c.npz").sample_rate_binding is True
    report = json.loads(_run("inspect", tmp_path / "r.npz", "--json").stdout)
    assert report["sample_rate_binding"] is True
    text = _run("inspect", tmp_path / "r.npz").stdout
    assert "sample_rate    8000 Hz (recorded: a signal at another rate is refused)\n" in text


@pytest.mark.parametrize(
    ("channels", "args", "code", "message"),
    [
        (3, [], 1, "ir.wav: an impulse response must have 1 (mono: every channel), 2 "
                   "(stereo: channel by channel) or 4 (true stereo) channels, found 3"),
        (4, [], 2, "ir.wav has 4 channels: give --true-stereo to read them as a true-stereo"),
        (2, ["--true-stereo"], 2, "--true-stereo needs a 4-channel impulse response (LL, LR, "
                                  "RL, RR), but "),
        (2, ["--channels", "3"], 2, "a stereo impulse response filters 2 channels (channel i "
                                    "by IR channel i), got --channels 3"),
        (4, ["--true-stereo", "--channels", "1"], 2, "makes a 2-channel layer, got --channels 1"),
        (1, ["--mix", "1.5"], 2, "--mix must be from 0 (dry) to 1 (wet), got 1.5"),
        (1, ["--trim", "0"], 2, "--trim must be a positive number of dB below the peak"),
        (1, ["--trim", "-6"], 2, "--trim must be a positive number of dB below the peak"),
        (1, ["--ir-norm", "loud"], 2, "Invalid value for '--ir-norm'"),
        (1, ["--sample-rate", "16k"], 2, "was recorded at 8000 Hz but --sample-rate is 16000 Hz"),
        (1, ["--seed", "1"], 2, "--seed cannot be used with --impulse-response"),
        (1, ["--design", "identity"], 2, "--design and --impulse-response are alternatives"),
        (1, ["--phase", "minimum"], 2, "--phase cannot be used with --impulse-response"),
    ],
)  # fmt: skip
def test_cli_refuses_bad_irs_and_options(tmp_path, channels, args, code, message):
    ir = _write(tmp_path / "ir.wav", [_ir(32, s) for s in range(channels)])
    result = _run("init", tmp_path / "r.npz", "--impulse-response", ir, *args)
    assert result.exit_code == code, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "r.npz").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty.wav: "),
        (b"this is not audio" * 10, "empty.wav: not a readable WAV audio file"),
    ],
)
def test_cli_refuses_files_that_are_not_audio(tmp_path, content, message):
    path = tmp_path / "empty.wav"
    path.write_bytes(content)
    result = _run("init", tmp_path / "r.npz", "--impulse-response", path)
    assert result.exit_code == 1 and message in result.stderr


def test_cli_refuses_missing_silent_nonfinite_and_csv_irs(tmp_path):
    cases = {
        "missing.wav": None,
        "silent.wav": [[0.0, 0.0, 0.0]],
        "nan.wav": [[0.5, float("nan"), 0.1]],
    }
    for name, taps in cases.items():
        if taps is not None:
            _write(tmp_path / name, taps)
    (tmp_path / "taps.csv").write_text("0.5\n0.25\n")
    expected = {
        "missing.wav": "missing.wav: no such file",
        "silent.wav": "silent.wav: the impulse response is silent (every sample is 0)",
        "nan.wav": "nan.wav: the impulse response holds NaN or Inf samples",
        "taps.csv": "taps.csv: an impulse response must be an audio file (WAV, FLAC, ...), "
        "found CSV, which has no sample rate (read plain taps with --coefficients)",
    }
    for name, message in expected.items():
        result = _run("init", tmp_path / "r.npz", "--impulse-response", tmp_path / name)
        assert result.exit_code == 1, (name, result.stderr)
        assert f"Error: {tmp_path / message}" in result.stderr or message in result.stderr


def test_cli_inspect_shows_the_ir_layer(tmp_path):
    h = np.stack([_ir(128, s) for s in range(4)])
    ir = _write(tmp_path / "ts.wav", h)
    assert _run("init", tmp_path / "r.npz", "--impulse-response", ir, "--true-stereo",
                "--ir-norm", "peak", "--trim", "50", "--mix", "0.4").exit_code == 0  # fmt: skip
    report = json.loads(_run("inspect", tmp_path / "r.npz", "--json").stdout)
    assert report["sample_rate"] == RATE and report["padding"] == "causal"
    assert "peak-normalised" in report["description"] and "mix 0.4 wet" in report["description"]


def test_cli_help_documents_the_ir_options():
    text = _run("init", "--help").stdout
    for word in ("--impulse-response", "--true-stereo", "LL, LR,", "path from input L to output R",
                 "--ir-norm", "1/max_c,k|h_c[k]|", "1/sqrt(max_c", "--trim", "--mix",
                 "WET*IR + (1-WET)*delta"):  # fmt: skip
        assert word in text, word
