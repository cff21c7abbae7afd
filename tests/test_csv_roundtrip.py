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
from conv1d_cli.io.formats import CsvDialect
from conv1d_cli.io.inputs import probe, read_signal


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


# ---- item 6: a one-channel FIR on a many-channel file ---------------------------------


@pytest.fixture
def fir(tmp_path: Path) -> Path:
    path = tmp_path / "fir.npz"
    Conv1d.from_weights(np.array([[[0.25, 0.5, 0.25]]]), padding="same").save(path)
    return path


def _per_channel(x: np.ndarray, taps=(0.25, 0.5, 0.25)) -> np.ndarray:
    layer = Conv1d.from_weights(np.array([[list(taps)]]), padding="same")
    return np.concatenate([layer(row[None]) for row in x])


def test_mono_fir_filters_every_channel_of_a_wav(tmp_path, fir):
    import soundfile

    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (2, 100))
    wav = tmp_path / "st.wav"
    soundfile.write(wav, x.T, 8000, subtype="DOUBLE")
    result = _run("apply", "-w", fir, wav, "-o", tmp_path / "y.wav")
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: layer 1 ({fir}) is a one-channel filter: applying it to each of the 2 "
        f"channels of {wav} separately (as SoX does)\n"
    )
    y = read_signal(tmp_path / "y.wav").data
    np.testing.assert_array_equal(y, _per_channel(x))
    quiet = _run("apply", "-w", fir, wav, "-o", tmp_path / "z.wav", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_mono_fir_filters_every_column_of_a_csv_and_shape_agrees(tmp_path, fir):
    src = tmp_path / "s.csv"
    src.write_text("a,b,c\n1,0,2\n0,4,2\n0,0,2\n")
    result = _run("apply", "-w", fir, src, "-o", tmp_path / "y.csv")
    assert result.exit_code == 0, result.output
    assert "each of the 3 channels" in result.stderr
    y = read_signal(tmp_path / "y.csv")
    assert y.info.column_names == ("a", "b", "c")
    np.testing.assert_array_equal(y.data, _per_channel(read_signal(src).data))
    shape = _run("shape", "-w", fir, src)
    assert shape.exit_code == 0, shape.output
    assert shape.stdout.splitlines()[0] == "(3, 3)"
    assert "each of the 3 channels" in shape.stderr


def test_mono_fir_npy_and_python_keep_pytorchs_rule(tmp_path, fir):
    from conv1d_cli.errors import ShapeError

    np.save(tmp_path / "x.npy", np.zeros((2, 10)))
    for command in (["apply", "-w", fir, tmp_path / "x.npy", "-o", tmp_path / "y.npy"],
                    ["shape", "-w", fir, tmp_path / "x.npy"]):  # fmt: skip
        result = _run(*command)
        assert result.exit_code == 1, result.output
        assert "--channels 2" in result.stderr
    with pytest.raises(ShapeError):
        Conv1d.from_weights(np.ones((1, 1, 3)))(np.zeros((2, 10)))


def test_other_channel_mismatch_stays_an_error_naming_the_fix(tmp_path):
    layer = tmp_path / "d2.npz"
    Conv1d.from_weights(np.ones((2, 1, 3)), groups=2).save(layer)
    src = tmp_path / "s.csv"
    src.write_text("1,2,3\n4,5,6\n7,8,9\n")
    result = _run("apply", "-w", layer, src, "-o", tmp_path / "y.csv")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {src} has 3 channels but layer 1 ({layer})")
    assert "make the layer for 3 channels with 'conv1d init ... --channels 3'" in result.stderr
    assert not (tmp_path / "y.csv").exists()


def test_mono_fir_broadcast_is_for_the_first_layer_only(tmp_path, fir):
    up = tmp_path / "up.npz"
    Conv1d.from_weights(np.ones((2, 1, 1))).save(up)  # 1 -> 2 channels
    src = tmp_path / "m.csv"
    src.write_text("1\n2\n3\n")
    result = _run("apply", "-w", up, "-w", fir, src, "-o", tmp_path / "y.csv")
    assert result.exit_code == 1
    assert "expects 1 input channels but layer 1" in result.stderr


# ---- item 6: time columns and --columns ------------------------------------------------

SENSOR = "time,ax,ay\n0.0,1,0\n0.5,2,0\n1.0,3,4\n1.5,4,0\n2.0,5,0\n"


def test_time_header_recognised_passed_through_with_a_notice(tmp_path, fir):
    src = tmp_path / "s.csv"
    src.write_text(SENSOR)
    result = _run("apply", "-w", fir, src, "-o", tmp_path / "y.csv")
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {src}: column 'time' is read as time, not as a channel "
        f"(--time-column none filters it too)\n"
    ) in result.stderr
    y = read_signal(tmp_path / "y.csv")
    assert y.info.column_names == ("time", "ax", "ay")
    np.testing.assert_array_equal(y.data[0], [0.0, 0.5, 1.0, 1.5, 2.0])
    np.testing.assert_array_equal(
        y.data[1:], _per_channel(np.array([[1, 2, 3, 4, 5], [0, 0, 4, 0, 0.0]]))
    )
    quiet = _run("apply", "-w", fir, src, "-o", tmp_path / "q.csv", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.parametrize("header", ["timestamp", "T", "time (s)", "Time [ms]"])
def test_time_header_names(tmp_path, fir, header):
    src = tmp_path / "s.csv"
    src.write_text(f"x;{header}\n1;10\n2;20\n")
    assert probe(src).channels == 2  # the library does not guess
    result = _run("apply", "-w", fir, src, "-o", tmp_path / "y.csv", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "y.csv").read_text().splitlines()[0] == f"{header};x"


def test_time_column_decimated_with_the_chain_stride(tmp_path):
    dec = tmp_path / "dec.npz"
    Conv1d.from_weights(np.array([[[0.5, 0.5]]]), stride=2).save(dec)
    src = tmp_path / "s.csv"
    src.write_text("".join(f"{10 + i * 0.25!r},{i}\n" for i in range(9)))  # no header
    result = _run(
        "apply", "-w", dec, "-w", dec, src, "-o", tmp_path / "y.csv", "--time-column", "1"
    )
    assert result.exit_code == 0, result.output
    y = read_signal(tmp_path / "y.csv").data
    # output j stands for input index j * 4 (total stride 4): t_out[j] = t_in[4 j]
    np.testing.assert_array_equal(y[0], [10.0, 11.0])
    np.testing.assert_array_equal(y[1], [1.5, 5.5])


def test_time_column_past_the_end_is_extrapolated(tmp_path):
    full = tmp_path / "full.npz"
    Conv1d.from_weights(np.ones((1, 1, 3)), padding="full").save(full)
    src = tmp_path / "s.csv"
    src.write_text("t,x\n0,1\n0.1,0\n0.2,0\n")
    assert _run("apply", "-w", full, src, "-o", tmp_path / "y.csv", "-q").exit_code == 0
    y = read_signal(tmp_path / "y.csv").data
    np.testing.assert_allclose(y[0], [0.0, 0.1, 0.2, 0.3, 0.4])


def test_time_column_keeps_float64_timestamps_with_a_float32_layer(tmp_path):
    layer = tmp_path / "f32.npz"
    Conv1d.from_weights(np.ones((1, 1, 1), np.float32)).save(layer)
    src = tmp_path / "s.csv"
    src.write_text("timestamp,x\n1700000000.125,1\n1700000000.25,2\n")
    assert _run("apply", "-w", layer, src, "-o", tmp_path / "y.csv", "-q").exit_code == 0
    lines = (tmp_path / "y.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "timestamp",
        "1700000000.125",
        "1700000000.25",
    ]


def test_columns_select_and_order_the_channels(tmp_path, fir):
    src = tmp_path / "s.csv"
    src.write_text(SENSOR)
    result = _run("apply", "-w", fir, src, "-o", tmp_path / "y.csv", "--columns", "ay,2", "-q")
    assert result.exit_code == 0, result.output
    y = read_signal(tmp_path / "y.csv")
    assert y.info.column_names == ("time", "ay", "ax")
    one = _run("apply", "-w", fir, src, "-o", tmp_path / "z.csv", "--columns", "ax")
    assert one.exit_code == 0 and "one-channel filter" not in one.stderr
    assert read_signal(tmp_path / "z.csv").info.column_names == ("time", "ax")
    shape = _run("shape", "-w", fir, src, "--columns", "ay")
    assert shape.stdout.splitlines()[0] == "(1, 5)"


def test_time_column_none_filters_it_as_a_channel(tmp_path, fir):
    src = tmp_path / "s.csv"
    src.write_text(SENSOR)
    result = _run("apply", "-w", fir, src, "-o", tmp_path / "y.csv", "--time-column", "none")
    assert result.exit_code == 0, result.output
    assert "read as time" not in result.stderr and "each of the 3 channels" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--columns", "az"],
            1,
            "--columns 'az': no such column; expected names 'time', 'ax', 'ay'",
        ),
        (["--time-column", "7"], 1, "--time-column '7': no such column"),
        (["--columns", "ax,ax"], 2, "--columns names a column twice"),
        (["--columns", "ax,time", "--time-column", "time"], 2, "--columns and --time-column both"),
        (["--columns", "ax,,ay"], 2, "expected names or numbers separated by commas"),
    ],
)
def test_column_options_errors(tmp_path, fir, args, code, message):
    src = tmp_path / "s.csv"
    src.write_text(SENSOR)
    result = _run("apply", "-w", fir, src, "-o", tmp_path / "y.csv", *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_time_column_not_written_to_audio_and_columns_refused_for_audio(tmp_path, fir):
    src = tmp_path / "s.csv"
    src.write_text(SENSOR)
    result = _run("apply", "-w", fir, src, "-o", tmp_path / "y.wav", "--sample-rate", "2")
    assert result.exit_code == 0, result.output
    assert "time column 'time' not written: the output is WAV, not CSV" in result.stderr
    assert read_signal(tmp_path / "y.wav").info.channels == 2
    bad = _run("apply", "-w", fir, tmp_path / "y.wav", "-o", tmp_path / "z.wav", "--columns", "1")
    assert bad.exit_code == 2
    assert "--columns applies to CSV inputs only" in bad.stderr
