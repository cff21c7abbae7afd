"""conv1d_cli.io.csvfile: CSV layouts, headers, delimiters and bad cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conv1d_cli.errors import ConfigError, DataFileError
from conv1d_cli.io.formats import SignalInfo
from conv1d_cli.io.inputs import read_signal
from conv1d_cli.io.outputs import open_writer, write_signal


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize(
    "text",
    [
        "t,x\n1,2\n3,4\n5,6\n",
        "t;x\n1;2\n3;4\n5;6\n",
        "t\tx\n1\t2\n3\t4\n5\t6\n",
        "t x\n1   2\n 3 4\n5\t6\n",
        "\ufeff# made by a logger\n# rate=100\n\nt,x\n\n1,2\n# mid comment\n3,4\n5,6\n\n",
        "t,x\r\n1,2\r\n3,4\r\n5,6",
        '"t","x"\n1, 2\n 3 ,4\n5,6\n',
    ],
)
def test_csv_header_delimiters_comments_bom(tmp_path: Path, text: str) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(text.encode("utf-8"))
    sig = read_signal(path)
    np.testing.assert_array_equal(sig.data, [[1, 3, 5], [2, 4, 6]])
    assert sig.info.column_names == ("t", "x")
    assert sig.info == SignalInfo(str(path), "csv", None, None, 2, 3, None, ("t", "x"))


def test_csv_without_header_and_single_column(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("1,2\n3,4\n")
    (tmp_path / "b.csv").write_text("0.5\n-1e3\nnan\ninf\n")
    a = read_signal(tmp_path / "a.csv")
    b = read_signal(tmp_path / "b.csv")
    assert a.info.column_names is None and a.data.tolist() == [[1, 3], [2, 4]]
    assert b.info.channels == 1
    np.testing.assert_array_equal(b.data, [[0.5, -1000, np.nan, np.inf]])


def test_csv_semicolon_with_decimal_comma_is_rejected_clearly(tmp_path: Path) -> None:
    (tmp_path / "eu.csv").write_text("a;b\n1,5;2,5\n3,0;4,0\n")
    # issue 13 item 5: the message names the decimal comma and the fix
    with pytest.raises(
        DataFileError, match=r"eu\.csv: line 2: '1,5' looks like a number with a decimal comma"
    ):
        read_signal(tmp_path / "eu.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t,x\n1,2\n3\n", r"line 3 has 1 column\(s\), expected 2"),
        ("# c\nt,x\n1,2\n3,4,5\n", r"line 4 has 3 column\(s\), expected 2"),
        ("t,x\n1,2\n3,abc\n", r"line 3, column 2: expected a number, found 'abc'"),
        ("1,2\n3,\n", r"line 2, column 2: expected a number, found an empty cell"),
        ("t,x\n1,2\n1_0,2\n", r"line 3, column 1: expected a number, found '1_0'"),
        ("t,x\n", r"header row but no data rows"),
        ("# only\n# comments\n\n", r"no data rows"),
        ("", r"file is empty"),
    ],
)
def test_csv_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFileError, match=message) as info:
        read_signal(path)
    assert str(path) in str(info.value)


def test_csv_error_in_a_later_chunk_names_the_right_line(tmp_path: Path) -> None:
    lines = ["a,b"] + [f"{i},{i}" for i in range(20000)]
    lines[15001] = "1,oops"
    (tmp_path / "long.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match="line 15002, column 2: .*'oops'"):
        read_signal(tmp_path / "long.csv")


def test_csv_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(b"t,x\n\xff\xfe,1\n")
    with pytest.raises(DataFileError, match="b.csv: not a UTF-8"):
        read_signal(tmp_path / "b.csv")


def test_csv_write_full_precision_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((3, 200)) * 10.0 ** rng.integers(-300, 300, (3, 200))
    x[0, :4] = [0.1, 1 / 3, -0.0, 5e-324]
    write_signal(tmp_path / "x.csv", x, format=None, column_names=["a", "b,c", "d"])
    text = (tmp_path / "x.csv").read_text()
    assert text.startswith('a,"b,c",d\n0.1,')
    sig = read_signal(tmp_path / "x.csv")
    assert sig.info.column_names == ("a", "b,c", "d")
    np.testing.assert_array_equal(sig.data, x)
    assert np.signbit(sig.data[0, 2])


def test_csv_write_float32_values_are_exact(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 20)).astype(np.float32)
    write_signal(tmp_path / "x.csv", x, format=None)
    np.testing.assert_array_equal(read_signal(tmp_path / "x.csv", dtype="float32").data, x)


def test_csv_writer_column_count_must_match(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="1 column names given for 2 channels"):
        open_writer(tmp_path / "x.csv", format=None, channels=2, column_names=["a"])
    assert _leftovers(tmp_path) == []
