"""``conv1d init``: random (torch-exact), designed, coefficient and weight-file layers."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import signal

from conv1d_cli.cli import cli
from conv1d_cli.io.layerfile import load_layer


def run(*args):
    return CliRunner().invoke(cli, ["init", *map(str, args)])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    return result


@pytest.mark.torch
@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "extra", "torch_kwargs"),
    [
        (16, 33, 3, [], {}),
        (4, 6, 5, ["--groups", "2", "--stride", "2"], {"groups": 2, "stride": 2}),
        (3, 3, 7, ["--groups", "3", "--no-bias"], {"groups": 3, "bias": False}),
        (1, 2, 1, ["--dilation", "2", "--padding", "same"], {"dilation": 2, "padding": "same"}),
    ],
)
@pytest.mark.parametrize("seed", [0, 12345])
def test_cli_init_random_is_bit_exact_torch(tmp_path, c_in, c_out, k, extra, torch_kwargs, seed):
    torch = pytest.importorskip("torch")
    path = tmp_path / "l.npz"
    ok(path, "--in-channels", c_in, "--out-channels", c_out, "--kernel-size", k,
       "--seed", seed, *extra)  # fmt: skip
    layer = load_layer(path)
    torch.manual_seed(seed)
    ref = torch.nn.Conv1d(c_in, c_out, k, **torch_kwargs)
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight, ref.weight.detach().numpy())
    if ref.bias is None:
        assert layer.bias is None
    else:
        np.testing.assert_array_equal(layer.bias, ref.bias.detach().numpy())
    assert layer.description == f"random init like torch.nn.Conv1d, seed {seed}"


def test_cli_init_random_reports_and_stores_hyperparameters(tmp_path):
    path = tmp_path / "l.npz"
    result = ok(path, "--in-channels", 2, "--out-channels", 4, "--kernel-size", 3,
                "--padding", "2,1", "--padding-mode", "circular", "--dtype", "float64",
                "--seed", 1, "--sample-rate", 8000, "--description", "mine")  # fmt: skip
    assert result.stderr.startswith(f"wrote {path}: Conv1d(2, 4, kernel_size=(3,)")
    layer = load_layer(path)
    assert layer.padding == (2, 1) and layer.padding_mode == "circular"
    assert layer.weight.dtype == np.float64 and layer.sample_rate == 8000.0
    assert layer.description == "mine" and layer.bias is not None


def test_cli_init_random_without_seed_differs_and_quiet_prints_nothing(tmp_path):
    args = ["--in-channels", 1, "--out-channels", 1, "--kernel-size", 8, "-q"]
    first = ok(tmp_path / "a.npz", *args)
    ok(tmp_path / "b.npz", *args)
    assert first.stderr == ""
    a, b = load_layer(tmp_path / "a.npz"), load_layer(tmp_path / "b.npz")
    assert not np.array_equal(a.weight, b.weight)
    assert a.description.startswith("random init like torch.nn.Conv1d, seed ")


def test_cli_init_lowpass_design_depthwise_stereo(tmp_path):
    path = tmp_path / "lp.npz"
    ok(path, "--design", "lowpass", "--cutoff", 1000, "--sample-rate", 48000, "--taps", 101,
       "--channels", 2)  # fmt: skip
    layer = load_layer(path)
    h = signal.firwin(101, 1000, fs=48000)
    assert layer.weight.shape == (2, 1, 101) and layer.groups == 2 and layer.bias is None
    assert layer.weight.dtype == np.float64
    np.testing.assert_array_equal(layer.weight[1, 0], h[::-1])
    assert layer.resolved_padding() == (50, 50)
    assert layer.sample_rate == 48000.0
    assert layer.description == "lowpass 1000 Hz, 101 taps, hamming window"
    x = np.random.default_rng(0).normal(size=(2, 500))
    np.testing.assert_allclose(layer(x), signal.convolve(x, h[None], mode="same"), atol=1e-12)


@pytest.mark.parametrize(
    ("design", "cutoffs", "taps"),
    [("highpass", [3000], 31), ("bandpass", [500, 2000], 40), ("bandstop", [500, 2000], 41)],
)
def test_cli_init_other_fir_designs_and_window(tmp_path, design, cutoffs, taps):
    path = tmp_path / "f.npz"
    cut = [a for c in cutoffs for a in ("--cutoff", c)]
    if len(cutoffs) == 2 and design == "bandstop":
        cut = ["--cutoff", f"{cutoffs[0]},{cutoffs[1]}"]  # LOW,HIGH in one option
    ok(path, "--design", design, *cut, "--sample-rate", 8000, "--taps", taps,
       "--window", "kaiser,8")  # fmt: skip
    expected = signal.firwin(taps, cutoffs if len(cutoffs) > 1 else cutoffs[0],
                             window=("kaiser", 8.0), pass_zero=design, fs=8000)  # fmt: skip
    np.testing.assert_array_equal(load_layer(path).weight[0, 0], expected[::-1])


def test_cli_init_even_taps_lowpass_documented_half_sample_alignment(tmp_path):
    ok(tmp_path / "l.npz", "--design", "lowpass", "--cutoff", 100, "--sample-rate", 1000,
       "--taps", 10)  # fmt: skip
    assert load_layer(tmp_path / "l.npz").resolved_padding() == (5, 4)


def test_cli_init_simple_kernels(tmp_path):
    ok(tmp_path / "ma.npz", "--design", "moving-average", "--taps", 4, "--dtype", "float32")
    ma = load_layer(tmp_path / "ma.npz")
    assert ma.weight.dtype == np.float32 and ma.weight.tolist() == [[[0.25] * 4]]
    ok(tmp_path / "g.npz", "--design", "gaussian", "--sigma", 1.5, "--channels", 3)
    g = load_layer(tmp_path / "g.npz")
    assert g.weight.shape == (3, 1, 13) and np.isclose(g.weight[0, 0].sum(), 1)
    ok(tmp_path / "i.npz", "--design", "identity", "--bias")
    i = load_layer(tmp_path / "i.npz")
    assert i.weight.tolist() == [[[1.0]]] and i.bias.tolist() == [0.0]
    ok(tmp_path / "d.npz", "--design", "delay", "--delay", 2)
    d = load_layer(tmp_path / "d.npz")
    np.testing.assert_array_equal(d(np.arange(1.0, 6.0)[None]), [[0, 0, 1, 2, 3]])


def test_cli_init_coefficients_are_convolution_taps(tmp_path):
    (tmp_path / "c.txt").write_text("# HP filter\n0.1\n0.2\n0.3\n0.4\n")
    ok(tmp_path / "c.npz", "--coefficients", tmp_path / "c.txt", "--channels", 2)
    layer = load_layer(tmp_path / "c.npz")
    assert layer.weight[0, 0].tolist() == [0.4, 0.3, 0.2, 0.1]
    assert layer.resolved_padding() == (2, 1)
    x = np.random.default_rng(1).normal(size=(2, 50))
    np.testing.assert_allclose(
        layer(x), signal.convolve(x, np.array([[0.1, 0.2, 0.3, 0.4]]), "same"), atol=1e-12
    )
    ok(tmp_path / "r.npz", "--coefficients", tmp_path / "c.txt", "--correlation")
    corr = load_layer(tmp_path / "r.npz")
    assert corr.weight[0, 0].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert corr.resolved_padding() == (1, 2)  # PyTorch's 'same' split


def test_cli_init_csv_coefficients_with_header(tmp_path):
    (tmp_path / "c.csv").write_text("tap\n1\n2\n3\n")
    ok(tmp_path / "c.npz", "--coefficients", tmp_path / "c.csv")
    assert load_layer(tmp_path / "c.npz").weight.tolist() == [[[3.0, 2.0, 1.0]]]


@pytest.mark.parametrize("taps", [5, 6, 1024, 1025])
def test_cli_init_coefficients_then_apply_matches_sox(tmp_path, taps):
    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox is not installed")
    soundfile = pytest.importorskip("soundfile")
    rng = np.random.default_rng(taps)
    x = rng.uniform(-0.4, 0.4, size=(3000, 2)).astype(np.float32)
    h = rng.uniform(-0.3, 0.3, size=taps) / np.sqrt(taps)
    coeffs = tmp_path / "h.txt"
    coeffs.write_text("\n".join(f"{v:.17g}" for v in h) + "\n")
    soundfile.write(tmp_path / "in.wav", x, 8000, subtype="FLOAT")
    subprocess.run(
        [sox, "-D", str(tmp_path / "in.wav"), "-e", "floating-point", "-b", "32",
         str(tmp_path / "out.wav"), "fir", str(coeffs)],
        check=True, capture_output=True,
    )  # fmt: skip
    expected, _ = soundfile.read(tmp_path / "out.wav", dtype="float64")
    ok(tmp_path / "l.npz", "--coefficients", coeffs, "--channels", 2)
    ours = load_layer(tmp_path / "l.npz")(x.T.astype(np.float64)).T
    np.testing.assert_allclose(ours, expected, atol=1e-6)
    # And end to end through `conv1d apply`, alignment included.
    applied = CliRunner().invoke(
        cli, ["apply", "-w", str(tmp_path / "l.npz"), str(tmp_path / "in.wav"),
              "-o", str(tmp_path / "ours.wav"), "--subtype", "FLOAT", "-q"],
    )  # fmt: skip
    assert applied.exit_code == 0, applied.stderr
    through_cli, _ = soundfile.read(tmp_path / "ours.wav", dtype="float64")
    np.testing.assert_allclose(through_cli, expected, atol=1e-6)


def assert_pcm16_codes_match_sox(ours, expected, exact):
    """What holds against `sox -D` (measured: 413 of 57.6 M samples of noise differ).

    Codes are equal except by at most one code, and only where the exact output (in
    codes) is within 1e-5 of a .5 tie: there SoX's own float error (its FFT, its int32
    intermediate) decides which way it rounds.
    """
    diff = ours.astype(np.int64) - expected.astype(np.int64)
    assert np.abs(diff).max(initial=0) <= 1
    off = diff != 0
    assert np.all(np.abs(exact[off] % 1 - 0.5) <= 1e-5), exact[off]
    return int(off.sum())


@pytest.mark.parametrize("taps", [4, 7])
def test_cli_init_coefficients_pcm16_matches_sox_without_dither(tmp_path, taps):
    """PCM in, PCM out: the codes of `sox -D`, exact ties included.

    Dyadic taps on PCM_16 samples make many outputs land exactly on half a code, where
    the rounding rule decides (SoX rounds ties upwards; so do we). All the arithmetic
    is exact here, so no code differs; near-ties of inexact outputs may (see
    ``assert_pcm16_codes_match_sox``).
    """
    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox is not installed")
    soundfile = pytest.importorskip("soundfile")
    rng = np.random.default_rng(taps)
    codes = rng.integers(-12000, 12000, size=(4000, 2), dtype=np.int16)
    soundfile.write(tmp_path / "in.wav", codes, 8000, subtype="PCM_16")
    h = rng.integers(-8, 9, size=taps) / 32.0
    coeffs = tmp_path / "h.txt"
    coeffs.write_text("# dyadic taps\n" + "\n".join(repr(float(v)) for v in h) + "\n")
    subprocess.run(
        [sox, "-D", str(tmp_path / "in.wav"), str(tmp_path / "sox.wav"), "fir", str(coeffs)],
        check=True, capture_output=True,
    )  # fmt: skip
    ok(tmp_path / "l.npz", "--coefficients", coeffs, "--channels", 2)
    applied = CliRunner().invoke(
        cli, ["apply", "-w", str(tmp_path / "l.npz"), str(tmp_path / "in.wav"),
              "-o", str(tmp_path / "ours.wav"), "-q"],
    )  # fmt: skip
    assert applied.exit_code == 0, applied.stderr
    expected, _ = soundfile.read(tmp_path / "sox.wav", dtype="int16")
    ours, _ = soundfile.read(tmp_path / "ours.wav", dtype="int16")
    assert soundfile.info(str(tmp_path / "ours.wav")).subtype == "PCM_16"
    exact = np.stack(
        [
            np.convolve(codes[:, c].astype(float), h)[(taps - 1) // 2 :][: len(codes)]
            for c in (0, 1)
        ],
        axis=1,
    )
    assert np.any(exact % 1 == 0.5)  # the test does exercise ties
    assert assert_pcm16_codes_match_sox(ours, expected, exact) == 0  # exact ties: all equal


def test_cli_init_weight_and_bias_files(tmp_path):
    w = np.random.default_rng(0).normal(size=(4, 1, 3)).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "b.npy", np.arange(4.0))
    ok(tmp_path / "l.npz", "--weight", tmp_path / "w.npy", "--bias-file", tmp_path / "b.npy",
       "--groups", 2, "--padding", "same")  # fmt: skip
    layer = load_layer(tmp_path / "l.npz")
    np.testing.assert_array_equal(layer.weight, w)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    assert layer.bias.tolist() == [0, 1, 2, 3] and layer.groups == 2 and layer.padding == "same"
    np.save(tmp_path / "k.npy", np.array([1, 2, 1]))
    ok(tmp_path / "k.npz", "--weight", tmp_path / "k.npy", "--channels", 2)
    k = load_layer(tmp_path / "k.npz")
    assert k.weight.shape == (2, 1, 3) and k.weight.dtype == np.float64 and k.padding == 0


def test_cli_init_refuses_overwrite_unless_force(tmp_path):
    path = tmp_path / "l.npz"
    path.write_bytes(b"keep me")
    result = run(path, "--design", "identity")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}: already exists (use --force to overwrite)\n"
    assert path.read_bytes() == b"keep me"
    ok(path, "--design", "identity", "--force")
    assert load_layer(path).kernel_size == 1


def test_cli_init_file_appearing_during_build_is_refused_with_cli_wording(tmp_path, monkeypatch):
    # The existence check is save_layer's own (at write time), not a separate earlier
    # one: a file created while the layer is being made is still never replaced, and
    # the message names --force, not the library's overwrite=True.
    from conv1d_cli import filters

    path = tmp_path / "l.npz"
    real = filters.identity

    def identity_then_someone_writes(*args, **kwargs):
        path.write_bytes(b"written meanwhile")
        return real(*args, **kwargs)

    monkeypatch.setattr(filters, "identity", identity_then_someone_writes)
    result = run(path, "--design", "identity")
    assert result.exit_code == 1
    assert result.stderr == f"Error: {path}: already exists (use --force to overwrite)\n"
    assert path.read_bytes() == b"written meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.npz"]


def _no_traceback(result, code):
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--design", "lowpass", "--cutoff", "4000", "--sample-rate", "8000", "--taps", "11"],
            2,
            "cutoff 4000 Hz must lie strictly between 0 and the Nyquist frequency 4000 Hz",
        ),
        (
            ["--design", "lowpass", "--cutoff", "5000", "--sample-rate", "8000", "--taps", "11"],
            2,
            "Nyquist",
        ),
        (
            [
                "--design",
                "bandpass",
                "--cutoff",
                "2000",
                "--cutoff",
                "1000",
                "--sample-rate",
                "8000",
                "--taps",
                "11",
            ],
            2,
            "cutoffs must be increasing",
        ),
        (
            ["--design", "highpass", "--cutoff", "1000", "--sample-rate", "8000", "--taps", "10"],
            2,
            "odd number of taps, got 10: an even-length linear-phase (type II) FIR always has a "
            "zero at the Nyquist frequency",
        ),
        (
            ["--design", "bandpass", "--cutoff", "1000", "--sample-rate", "8000", "--taps", "10"],
            2,
            "needs two cutoffs",
        ),
        (
            ["--design", "lowpass", "--cutoff", "100", "--taps", "10"],
            2,
            "--design lowpass needs --sample-rate",
        ),
        (
            ["--design", "lowpass", "--cutoff", "100", "--sample-rate", "0", "--taps", "3"],
            2,
            "--sample-rate must be a positive number of Hz, got 0",
        ),
        (
            [
                "--design",
                "lowpass",
                "--cutoff",
                "100",
                "--sample-rate",
                "1000",
                "--taps",
                "9",
                "--window",
                "nosuch",
            ],
            2,
            "window 'nosuch' is not usable",
        ),
        (["--design", "gaussian"], 2, "--design gaussian needs --sigma"),
        (["--design", "gaussian", "--sigma", "-1"], 2, "sigma must be a positive"),
        (
            ["--design", "gaussian", "--sigma", "1", "--cutoff", "5"],
            2,
            "--cutoff cannot be used with --design gaussian",
        ),
        (["--design", "identity", "--seed", "1"], 2, "--seed cannot be used with --design"),
        (["--in-channels", "2"], 2, "a random layer needs --out-channels, --kernel-size"),
        (
            ["--in-channels", "3", "--out-channels", "2", "--kernel-size", "3", "--groups", "2"],
            2,
            "in_channels must be divisible by groups",
        ),
        (
            ["--in-channels", "1", "--out-channels", "1", "--kernel-size", "3", "--channels", "2"],
            2,
            "--channels cannot be used with a random layer",
        ),
        (
            [
                "--in-channels",
                "1",
                "--out-channels",
                "1",
                "--kernel-size",
                "3",
                "--stride",
                "2",
                "--padding",
                "same",
            ],
            2,
            "not supported for strided",
        ),
        (["--design", "identity", "--padding", "-1"], 2, "padding must not be negative"),
        (["--design", "identity", "--padding", "1,2,3"], 2, "Invalid value for '--padding'"),
        (
            ["--in-channels", "0", "--out-channels", "1", "--kernel-size", "3"],
            2,
            "Invalid value for '--in-channels'",
        ),
        (
            ["--design", "identity", "--coefficients", "c.txt"],
            2,
            "--design and --coefficients are alternatives",
        ),
        (
            ["--design", "delay", "--delay", "1", "--taps", "3"],
            2,
            "--taps cannot be used with --design delay",
        ),
        (["--design", "notch"], 2, "Invalid value for '--design'"),
        (
            [
                "--design",
                "lowpass",
                "--cutoff",
                "1 kilohertz",
                "--sample-rate",
                "8000",
                "--taps",
                "3",
            ],
            2,
            "expected a frequency such as 48000, 44.1k",
        ),
    ],
)
def test_cli_init_refuses_bad_design_options(tmp_path, args, code, message):
    path = tmp_path / "l.npz"
    result = run(path, *args)
    _no_traceback(result, code)
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_init_refuses_stdout_and_missing_directory(tmp_path):
    result = run("-", "--design", "identity")
    _no_traceback(result, 2)
    assert "not written to stdout" in result.stderr
    result = run(tmp_path / "no" / "l.npz", "--design", "identity")
    _no_traceback(result, 1)
    assert "output directory" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, ": no such file"),
        ("", "holds no coefficients"),
        ("# just a comment\n", "holds no coefficients"),
        ("0.1\n0.2 abc\n", "line 2: 'abc' is not a number"),
        ("0.1,0.2\n", "expected one column"),
        ("DIR", "is a directory"),
    ],
)
def test_cli_init_refuses_bad_coefficient_files(tmp_path, content, message):
    coeffs = tmp_path / "c.txt"
    if content == "DIR":
        coeffs.mkdir()
    elif content is not None:
        coeffs.write_text(content)
    result = run(tmp_path / "l.npz", "--coefficients", coeffs)
    _no_traceback(result, 1)
    assert result.stderr.startswith(f"Error: {coeffs}: ")
    assert message in result.stderr
    assert not (tmp_path / "l.npz").exists()


@pytest.mark.parametrize(
    ("weight", "bias", "message"),
    [
        (np.ones((2, 2)), None, "weight must be 1-D (one kernel) or 3-D"),
        (np.ones((1, 1, 3), complex), None, "must hold real numbers"),
        (np.array([1.0, np.nan]), None, "non-finite"),
        (np.ones((2, 1, 3)), np.ones(3), "bias must have shape (2,)"),
        (np.array([object()], dtype=object), None, "pickled objects"),
        (np.zeros((0,)), None, "is empty"),
    ],
)
def test_cli_init_refuses_bad_weight_files(tmp_path, weight, bias, message):
    np.save(tmp_path / "w.npy", weight, allow_pickle=True)
    args = ["--weight", tmp_path / "w.npy"]
    if bias is not None:
        np.save(tmp_path / "b.npy", bias)
        args += ["--bias-file", tmp_path / "b.npy"]
    result = run(tmp_path / "l.npz", *args)
    _no_traceback(result, 1)
    assert message in result.stderr
    assert not (tmp_path / "l.npz").exists()


def test_cli_init_refuses_weight_that_is_output_or_npz(tmp_path):
    np.save(tmp_path / "w.npy", np.ones(3))
    result = run(tmp_path / "w.npy", "--weight", tmp_path / "w.npy", "--force")
    _no_traceback(result, 2)
    assert "same file as input" in result.stderr
    # An .npz --weight is read as a layer now (tests/test_defects_layers.py), but it
    # may not be the output either.
    np.savez(tmp_path / "w.npz", weight=np.ones((1, 1, 3)))
    result = run(tmp_path / "w.npz", "--weight", tmp_path / "w.npz", "--force")
    _no_traceback(result, 2)
    assert "same file as input" in result.stderr
    result = run(tmp_path / "l.npz", "--weight", tmp_path / "w.npy", "--bias-file",
                 tmp_path / "w.npy", "--no-bias")  # fmt: skip
    _no_traceback(result, 2)
    assert "contradict" in result.stderr


def test_cli_init_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", boom)
    result = run(tmp_path / "l.npz", "--design", "identity")
    _no_traceback(result, 1)
    assert "No space left on device" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_init_coefficients_from_stdin(tmp_path):
    result = CliRunner().invoke(
        cli, ["init", str(tmp_path / "l.npz"), "--coefficients", "-"], input="# taps\n1 2 3\n"
    )
    assert result.exit_code == 0, result.stderr
    assert load_layer(tmp_path / "l.npz").weight.tolist() == [[[3.0, 2.0, 1.0]]]
    empty = CliRunner().invoke(cli, ["init", str(tmp_path / "e.npz"), "--coefficients", "-"])
    assert empty.exit_code == 1 and "Error: <stdin>: holds no coefficients" in empty.stderr


def test_cli_init_sample_rate_follows_the_one_rule(tmp_path):
    # shapes.check_sample_rate names the option and caps the rate an audio file can hold.
    result = CliRunner().invoke(
        cli,
        ["init", str(tmp_path / "x.npz"), "--kernel-size", "3", "--in-channels", "1",
         "--out-channels", "1", "--sample-rate", "1e12"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "Error: --sample-rate must be at most 2147483647 Hz, got 1e+12" in result.stderr
    assert not (tmp_path / "x.npz").exists()
