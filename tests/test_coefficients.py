"""SoX/CSV coefficient files and their agreement with SoX ``fir`` (conv1d_cli.io.coefficients)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from conv1d_cli.errors import DataFileError
from conv1d_cli.filters import kernel_layer
from conv1d_cli.io.coefficients import read_coefficients


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
def test_coefficients_read_coefficients_formats(tmp_path, text, expected):
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
def test_coefficients_read_coefficients_refuses_bad_files(tmp_path, content, message):
    path = tmp_path / "c.txt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(DataFileError, match=message) as info:
        read_coefficients(path)
    assert str(info.value).startswith(str(path))


def test_coefficients_read_coefficients_missing_and_directory(tmp_path):
    with pytest.raises(DataFileError, match=": no such file"):
        read_coefficients(tmp_path / "nope.txt")
    with pytest.raises(DataFileError, match="is a directory"):
        read_coefficients(tmp_path)


@pytest.mark.parametrize("taps", [4, 5, 6, 7])
def test_coefficients_coefficients_match_real_sox_fir(tmp_path, taps):
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
