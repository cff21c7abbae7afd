"""Regressions for parsing and misleading messages (issue items 3, 11 and 12).

Each test failed on the code before its fix: a mistyped first number taken as a header,
raw NumPy warnings, wrong values or missing facts in messages, and statistics that
overflowed for finite kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from conv1d_cli import cells
from conv1d_cli.cli import cli
from conv1d_cli.errors import DataFileError
from conv1d_cli.io.coefficients import parse_coefficients, read_coefficients
from conv1d_cli.io.inputs import read_signal
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d

MISTYPED = ["\u22120.25", "O.25", "0.25.", "0x1p-2"]


def invoke(*args: object, input: bytes | str | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


# ---- item 3: a malformed first number is not a header ------------------------------


@pytest.mark.parametrize("first", MISTYPED)
def test_coefficients_mistyped_first_number_is_an_error(tmp_path, first):
    path = tmp_path / "c.txt"
    path.write_text(f"{first}\n0.5\n0.25\n", encoding="utf-8")
    with pytest.raises(DataFileError) as info:
        read_coefficients(path)
    message = str(info.value)
    assert str(path) in message and "line 1" in message and "field 1" in message
    assert repr(first) in message


@pytest.mark.parametrize("first", MISTYPED)
def test_cli_init_coefficients_mistyped_first_number_exits_1(tmp_path, first):
    (tmp_path / "c.txt").write_text(f"{first}\n0.5\n0.25\n", encoding="utf-8")
    result = invoke("init", tmp_path / "l.npz", "--coefficients", tmp_path / "c.txt")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert f"line 1: {first!r} is not a number" in result.stderr
    assert not (tmp_path / "l.npz").exists()


@pytest.mark.parametrize(
    ("text", "taps"),
    [
        ("coefficient\n0.1\n0.2\n", [0.1, 0.2]),
        ('"tap"\n1\n2\n', [1.0, 2.0]),
        ("ch0,\n1,\n2,\n", [1.0, 2.0]),
        ("1e-3\n-0.5\n+.5\n", [1e-3, -0.5, 0.5]),
    ],
)
def test_coefficients_legit_header_and_numbers_still_load(text, taps):
    np.testing.assert_array_equal(parse_coefficients(text, "c.csv"), taps)


@pytest.mark.parametrize("first", ["O", "coefficient", "h"])
def test_sox_coefficient_file_has_no_header(first):
    # SoX reads no header: in a .txt the first line is a tap, so a letter O typed for
    # 0 is an error, not a column name that silently drops a tap.
    with pytest.raises(DataFileError, match="line 1"):
        parse_coefficients(f"{first}\n0.5\n0.25\n", "c.txt")


def test_coefficients_nan_first_line_is_a_number_not_a_header():
    with pytest.raises(DataFileError, match="'nan' is not a number"):
        parse_coefficients("nan\n0.5\n", "c.txt")


@pytest.mark.parametrize("first", MISTYPED)
def test_csv_mistyped_first_sample_is_an_error_not_a_column_name(tmp_path, first):
    path = tmp_path / "s.csv"
    path.write_text(f"{first}\n0.25\n1\n", encoding="utf-8")
    with pytest.raises(DataFileError) as info:
        read_signal(path)
    message = str(info.value)
    assert f"{path}: line 1, column 1: expected a number" in message
    assert repr(first) in message


def test_csv_mistyped_field_in_a_would_be_header_names_that_field(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("x,\u22120.5\n1,2\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=r"line 1, column 2: .*found '\u22120.5'"):
        read_signal(path)


@pytest.mark.parametrize(
    ("header", "names"),
    [
        ("ax,ay,az", ("ax", "ay", "az")),
        ("time,x,y", ("time", "x", "y")),
        ('"left","right","b,c"', ("left", "right", "b,c")),
        ("ch0;ch1;ch2", ("ch0", "ch1", "ch2")),
        ("time (s),accel [m/s^2],_z", ("time (s)", "accel [m/s^2]", "_z")),
    ],
)
def test_csv_legit_headers_still_work(tmp_path, header, names):
    delimiter = ";" if ";" in header else ","
    path = tmp_path / "s.csv"
    path.write_text(f"{header}\n" + delimiter.join(["1", "2", "3"]) + "\n", encoding="utf-8")
    sig = read_signal(path)
    assert sig.info.column_names == names
    assert sig.data.ravel().tolist() == [1, 2, 3]


@pytest.mark.parametrize("first", ["1e-3", "-0.5", "+.5", "nan", "inf"])
def test_csv_numbers_in_first_row_are_data(tmp_path, first):
    path = tmp_path / "s.csv"
    path.write_text(f"{first}\n1\n", encoding="utf-8")
    sig = read_signal(path)
    assert sig.info.column_names is None and sig.info.frames == 2


def test_cells_one_rule():
    assert cells.is_header(["time", "x"]) and not cells.is_header(["1", "x"])
    for bad in MISTYPED + ["", "x.1", "1x"]:
        assert not cells.is_name(bad)
    with pytest.raises(cells.FieldError) as info:
        cells.is_header(["a", ""])
    assert info.value.column == 2 and "an empty cell" in str(info.value)


# ---- item 11g: a trailing comma is an empty cell, everywhere -----------------------


@pytest.mark.parametrize("command", ["apply", "shape", "inspect"])
def test_csv_trailing_comma_names_the_empty_cell_in_every_command(tmp_path, command):
    (tmp_path / "t.csv").write_text("1,2,3,\n4,5,6,\n7,8,9,\n")
    save_layer(Conv1d(3, 1, 1, seed=0), tmp_path / "r.npz")
    args = {
        "apply": ["apply", "-w", tmp_path / "r.npz", tmp_path / "t.csv", "-o", tmp_path / "o.csv"],
        "shape": ["shape", "-w", tmp_path / "r.npz", tmp_path / "t.csv"],
        "inspect": ["inspect", tmp_path / "t.csv"],
    }[command]
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {tmp_path / 't.csv'}: line 1, column 4: expected a number, found an empty cell\n"
    )


# ---- item 11a: overflow is conv1d's diagnosis, never a raw NumPy warning -----------


def _layer(path, weight, dtype="float64"):
    layer = Conv1d(1, 1, len(weight), bias=False, dtype=dtype, seed=0)
    layer.weight[...] = np.asarray(weight, dtype=dtype).reshape(1, 1, -1)
    save_layer(layer, path)
    return path


@pytest.mark.parametrize(
    ("weight", "dtype", "values"),
    [([1e300], "float64", [1e10, 2e10]), ([3e38, 3e38], "float32", [1.0, 2.0, 3.0])],
)
@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_apply_overflow_is_named_not_warned_by_numpy(tmp_path, weight, dtype, values, quiet):
    layer = _layer(tmp_path / "huge.npz", weight, dtype)
    (tmp_path / "x.csv").write_text("".join(f"{v!r}\n" for v in values))
    result = invoke("apply", *quiet, "-w", layer, tmp_path / "x.csv", "-o", tmp_path / "y.csv")
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {tmp_path / 'x.csv'}: the layers' output overflows {dtype}: inf at channel 0, "
        f"sample 0 (0-based); pass --allow-nonfinite to write non-finite values anyway\n"
    )
    assert not (tmp_path / "y.csv").exists()
    x, y = tmp_path / "x.csv", tmp_path / "y.csv"
    allowed = invoke("apply", "-q", "--allow-nonfinite", "-w", layer, x, "-o", y)
    assert allowed.exit_code == 0 and allowed.stderr == ""


@pytest.mark.parametrize("quiet", [False, True])
def test_apply_cast_of_huge_float32_to_pcm_is_clipped_without_numpy_warning(tmp_path, quiet):
    import soundfile as sf

    layer = _layer(tmp_path / "huge.npz", [3e38], "float32")
    sf.write(tmp_path / "x.wav", np.array([0.5, -0.5, 0.25]), 8000, subtype="PCM_16")
    args = ["-q"] if quiet else []
    result = invoke("apply", *args, "-w", layer, tmp_path / "x.wav", "-o", tmp_path / "y.wav")
    assert result.exit_code == 0, result.output
    expected = "" if quiet else f"warning: {tmp_path / 'y.wav'}: clipped 3 samples ("
    # (then the peak and the --gain that would fit: tests/test_apply_options.py)
    assert result.stderr.strip().startswith(expected) and result.stderr.count("\n") == 1 - quiet
    assert sf.read(tmp_path / "y.wav", dtype="int16")[0].tolist() == [32767, -32768, 32767]


# ---- item 11b: --on-clip error shows the value that is out of range ----------------


@pytest.mark.parametrize(
    ("value", "subtype", "found"),
    [
        # inside [-1, 1) yet rounding to 32768: the message must not claim otherwise
        (32767.5 / 32768, "PCM_16", "is 0.9999847412109375, which rounds to PCM_16 code 32768, "
         "outside the codes [-32768, 32767]"),
        (1.5, "PCM_16", "is 1.5, which rounds to PCM_16 code 49152, outside the codes "
         "[-32768, 32767]"),
        (-1.5, "ULAW", "is -1.5, outside the ULAW range [-1, 1]"),
    ],
)  # fmt: skip
def test_apply_on_clip_error_names_the_offending_value(tmp_path, value, subtype, found):
    layer = _layer(tmp_path / "id.npz", [1.0])
    (tmp_path / "x.csv").write_text(f"0.5\n{value!r}\n")
    out = tmp_path / "y.wav"
    result = invoke(
        "apply", "-w", layer, tmp_path / "x.csv", "-o", out, "--sample-rate", "8000",
        "--subtype", subtype, "--on-clip", "error",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {out}: sample 1 of channel 0 {found} (--on-clip error); no output was written\n"
    )


# ---- item 11c: statistics of finite kernels are finite -----------------------------


@pytest.mark.parametrize("tap", [1e200, 1e-200, -1e-300])
def test_kernel_stats_of_huge_and_tiny_kernels_are_finite(tap):
    from conv1d_cli.analysis import kernel_stats

    stats = kernel_stats(np.full((1, 1, 4), tap))
    np.testing.assert_allclose(stats["l2_norm"][0, 0], 2 * abs(tap), rtol=1e-12)
    np.testing.assert_allclose(stats["l1_norm"][0, 0], 4 * abs(tap), rtol=1e-12)
    np.testing.assert_allclose(stats["dc_gain"][0, 0], 4 * tap, rtol=1e-12)


@pytest.mark.parametrize("tap", [1e200, 1e-200, 1.5e308])
def test_inspect_dc_gain_db_of_huge_and_tiny_kernels_is_finite(tmp_path, tap):
    import json

    layer = Conv1d(1, 1, 3, bias=False, dtype="float64", seed=0)
    layer.weight[...] = tap
    save_layer(layer, tmp_path / "k.npz")
    result = invoke("inspect", "--json", "--sample-rate", "8000", tmp_path / "k.npz")
    assert result.exit_code == 0, result.output
    kernel = json.loads(result.stdout)["kernels"][0]
    expected_db = 20 * np.log10(3.0) + 20 * np.log10(tap)
    assert kernel["response"]["dc_db"] == pytest.approx(expected_db, abs=1e-6)
    if tap < 1e300:  # 1.5e308 * sqrt(3) is past the float64 range: inf is the truth there
        assert kernel["l2_norm"] == pytest.approx(np.sqrt(3) * tap, rel=1e-12)


# ---- items 11d/11e: a CSV's rate comes from the first layer that records one --------


def _designed(path, rate):
    from conv1d_cli.filters import kernel_layer, moving_average

    layer = kernel_layer(moving_average(3), sample_rate=rate)
    save_layer(layer, path)
    return path


def test_apply_csv_rate_is_implied_by_a_later_designed_layer(tmp_path):
    import soundfile as sf

    random = tmp_path / "r.npz"
    save_layer(Conv1d(1, 1, 3, stride=2, seed=0), random)
    lp8 = _designed(tmp_path / "lp8.npz", 8000.0)
    (tmp_path / "x.csv").write_text("".join(f"{v}\n" for v in np.linspace(-0.5, 0.5, 40)))
    result = invoke("apply", "-w", random, "-w", lp8, tmp_path / "x.csv", "-o", tmp_path / "y.wav")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    # layer 2 gets 8 kHz, so the input was at 16 kHz and the stride-2 output is at 8 kHz
    assert sf.info(tmp_path / "y.wav").samplerate == 8000


def test_apply_csv_without_any_rate_says_what_is_missing(tmp_path):
    random = tmp_path / "r.npz"
    save_layer(Conv1d(1, 1, 3, seed=0), random)
    (tmp_path / "x.csv").write_text("0.1\n0.2\n0.3\n0.4\n")
    result = invoke("apply", "-w", random, tmp_path / "x.csv", "-o", tmp_path / "y.wav")
    assert result.exit_code == 1
    assert "no layer records a design rate" in result.stderr
    assert "--sample-rate" in result.stderr


@pytest.mark.parametrize("command", ["apply", "shape"])
def test_csv_and_wav_chains_warn_the_same_rate_mismatch(tmp_path, command):
    import soundfile as sf

    lp16 = _designed(tmp_path / "lp16.npz", 16000.0)
    lp8 = _designed(tmp_path / "lp8.npz", 8000.0)
    x = np.linspace(-0.5, 0.5, 40)
    (tmp_path / "x.csv").write_text("".join(f"{v}\n" for v in x))
    sf.write(tmp_path / "x.wav", x, 16000, subtype="FLOAT")
    found = {}
    for name in ("x.csv", "x.wav"):
        args = [command, "-w", lp16, "-w", lp8, tmp_path / name]
        if command == "apply":
            args += ["-o", tmp_path / f"y-{name}"]
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        found[name] = result.stderr
    shown = {"apply": str(lp8), "shape": f"layer 2 ({lp8})"}[command]
    expected = f"warning: {shown} was designed for 8000 Hz but gets 16000 Hz from "
    assert found["x.wav"] == f"{expected}{tmp_path / 'x.wav'}\n"
    assert found["x.csv"].startswith(f"{expected}{tmp_path / 'x.csv'} (it has no rate; ")
    assert found["x.csv"].count("\n") == 1


def test_rate_mismatch_rule_is_one_library_function():
    from conv1d_cli.shapes import implied_input_rate, rate_mismatches

    assert implied_input_rate([None, 8000.0], [2, 1]) == (16000.0, 1)
    assert rate_mismatches([8000.0], [1], ["a"], 8000.0 * (1 + 1e-12), "x") == []
    assert rate_mismatches([8000.0], [1], ["a"], 8001.0, "x") == [
        "a was designed for 8000 Hz but gets 8001 Hz from x"
    ]


# ---- item 11f: a layer on a pipe is sniffed from the bytes read once ----------------


def test_inspect_layer_given_as_process_substitution(tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    layer = _designed(tmp_path / "lp8.npz", 8000.0)
    command = f"{sys.executable} -m conv1d_cli inspect --json <(cat '{layer}')"
    proc = subprocess.run([bash, "-c", command], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["schema"].startswith("conv1d-inspect-layer")
    assert report["weight_shape"] == [1, 1, 3] and report["sample_rate"] == 8000.0
    # a CSV on a pipe still needs --format, and with it is read as a signal
    csv = tmp_path / "x.csv"
    csv.write_text("0.5\n0.25\n")
    command = f"{sys.executable} -m conv1d_cli inspect --json --input-format csv <(cat '{csv}')"
    proc = subprocess.run([bash, "-c", command], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 2


# ---- item 12: the SoX parity claim, as measured ------------------------------------


def test_readme_states_the_sox_pcm_claim_as_measured():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    text = " ".join(readme.split())
    assert "the very same PCM_16 codes" not in text
    assert "except within 1e-5 of a .5 tie" in text


def test_apply_pcm16_codes_match_sox_on_noise_up_to_near_ties(tmp_path):
    import shutil
    import subprocess

    import soundfile as sf
    from test_cli_init import assert_pcm16_codes_match_sox

    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox is not installed")
    rng = np.random.default_rng(12)
    frames, taps = 200_000, 31
    x = rng.uniform(-0.4, 0.4, size=(frames, 2))
    sf.write(tmp_path / "in.wav", x, 8000, subtype="FLOAT")
    h = rng.uniform(-0.3, 0.3, size=taps) / np.sqrt(taps)
    (tmp_path / "h.txt").write_text("\n".join(repr(float(v)) for v in h) + "\n")
    subprocess.run(
        [sox, "-D", str(tmp_path / "in.wav"), "-b", "16", str(tmp_path / "sox.wav"),
         "fir", str(tmp_path / "h.txt")],
        check=True, capture_output=True,
    )  # fmt: skip
    layer = tmp_path / "l.npz"
    made = invoke("init", layer, "--coefficients", tmp_path / "h.txt", "--channels", 2)
    assert made.exit_code == 0, made.output
    result = invoke(
        "apply", "-q", "-w", layer, tmp_path / "in.wav", "-o", tmp_path / "ours.wav",
        "--subtype", "PCM_16", "--dtype", "float64",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected, _ = sf.read(tmp_path / "sox.wav", dtype="int16")
    ours, _ = sf.read(tmp_path / "ours.wav", dtype="int16")
    x32, _ = sf.read(tmp_path / "in.wav", dtype="float64")
    exact = 32768 * np.stack(
        [np.convolve(x32[:, c], h)[(taps - 1) // 2 :][:frames] for c in (0, 1)], axis=1
    )
    differing = assert_pcm16_codes_match_sox(ours, expected, exact)
    assert differing < 1e-4 * ours.size  # rare: about 7 per million samples were measured
