"""conv1d_cli.io signal files: formats, round trips, pipes, streaming, atomic output, bad input."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import pickle
import re
import stat
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import soundfile as sf
from conftest import drained_fifo

from conv1d_cli.errors import ConfigError, DataFileError, ShapeError
from conv1d_cli.io import audiofile, csvfile
from conv1d_cli.io.audiofile import ClipError
from conv1d_cli.io.base import SignalReader
from conv1d_cli.io.formats import FormatError, Signal, SignalInfo, detect_format, output_subtype
from conv1d_cli.io.inputs import open_reader, probe, read_signal
from conv1d_cli.io.outputs import open_writer, write_signal

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


def _pcm16(rng: np.random.Generator, channels: int, frames: int) -> np.ndarray:
    """Float signal on the PCM_16 grid (exactly representable)."""
    return rng.integers(-32768, 32768, (channels, frames)).astype(np.float64) / 32768


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> io.BytesIO:
    raw = io.BytesIO(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw))
    return raw


def _stdout(monkeypatch: pytest.MonkeyPatch) -> io.BytesIO:
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw, write_through=True))
    return raw


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.wav", "wav"),
        ("A.WAV", "wav"),
        ("b.flac", "flac"),
        ("c.ogg", "ogg"),
        ("d.aif", "aiff"),
        ("d.aiff", "aiff"),
        ("e.au", "au"),
        ("e.snd", "au"),
        ("f.csv", "csv"),
        ("f.tsv", "csv"),
        ("f.txt", "csv"),
        ("g.npy", "npy"),
        ("dir.v2/h.w64", "w64"),
    ],
)
def test_detect_format_from_extension(name: str, expected: str) -> None:
    assert detect_format(name) == expected


def test_detect_format_explicit_wins_and_is_case_insensitive() -> None:
    assert detect_format("x.wav", "FLAC") == "flac"
    assert detect_format("-", "Csv") == "csv"
    assert detect_format("-", ".npy") == "npy"


@pytest.mark.parametrize(("path", "explicit"), [("x.foo", None), ("noext", None), ("-", None)])
def test_detect_format_unknown_is_config_and_data_error(path: str, explicit: None) -> None:
    with pytest.raises(FormatError) as info:
        detect_format(path, explicit)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, DataFileError)
    if path != "-":
        assert path in str(info.value)
    # the library does not know the caller's option (apply: --input-format, inspect: --format)
    assert "give the format explicitly" in str(info.value)
    assert "--" not in str(info.value)


def test_detect_format_unknown_explicit_name() -> None:
    with pytest.raises(ConfigError, match="unknown format 'mp4'"):
        detect_format("x.wav", "mp4")


def test_output_subtype_defaults() -> None:
    assert output_subtype("wav") == "FLOAT"
    assert output_subtype("aiff") == "FLOAT"
    assert output_subtype("flac") == "PCM_24"
    assert output_subtype("ogg") == "VORBIS"
    assert output_subtype("flac", "PCM_16") == "PCM_16"
    assert output_subtype("flac", "FLOAT") == "PCM_24"  # not valid for FLAC: default
    assert output_subtype("npy", "PCM_16") is None


# --------------------------------------------------------------------------- audio


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("wav", "PCM_16"),
        ("wav", "PCM_24"),
        ("wav", "PCM_32"),
        ("wav", "FLOAT"),
        ("wav", "DOUBLE"),
        ("flac", "PCM_16"),
        ("flac", "PCM_24"),
        ("aiff", "PCM_16"),
        ("au", "PCM_16"),
        ("au", "FLOAT"),
        ("w64", "PCM_16"),
    ],
)
def test_audio_round_trip_exact(
    tmp_path: Path, rng: np.random.Generator, fmt: str, subtype: str, channels: int
) -> None:
    x = _pcm16(rng, channels, 257)
    if subtype == "DOUBLE":
        x = rng.uniform(-3, 3, (channels, 257))
    elif subtype == "FLOAT":
        x = rng.uniform(-3, 3, (channels, 257)).astype(np.float32).astype(np.float64)
    path = tmp_path / f"x.{fmt}"
    assert write_signal(path, x, format=None, sample_rate=44100, subtype=subtype) == 0
    sig = read_signal(path)
    assert sig.info == SignalInfo(str(path), fmt, subtype, 44100.0, channels, 257)
    assert sig.data.shape == (channels, 257) and sig.data.dtype == np.float64
    np.testing.assert_array_equal(sig.data, x)


def test_audio_ogg_vorbis_round_trip_is_close(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    x = 0.5 * np.sin(2 * np.pi * 440 * t)[None].repeat(2, 0)
    write_signal(tmp_path / "x.ogg", x, format=None, sample_rate=8000)
    sig = read_signal(tmp_path / "x.ogg")
    assert sig.info.subtype == "VORBIS" and sig.data.shape[0] == 2
    n = min(sig.data.shape[1], 8000)
    assert np.max(np.abs(sig.data[:, 1000:n] - x[:, 1000:n])) < 0.05


def test_audio_pcm16_int_to_float_to_pcm16_is_bit_exact(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    ints = rng.integers(-32768, 32768, (1000, 2), dtype=np.int16)
    ints[:4, 0] = [-32768, 32767, 0, -1]
    sf.write(tmp_path / "in.wav", ints, 48000, subtype="PCM_16")
    sig = read_signal(tmp_path / "in.wav")
    assert (
        write_signal(tmp_path / "out.wav", sig, format=None, sample_rate=48000, subtype="PCM_16")
        == 0
    )
    back, rate = sf.read(tmp_path / "out.wav", dtype="int16")
    np.testing.assert_array_equal(back, ints)
    assert rate == 48000
    assert (tmp_path / "in.wav").read_bytes() == (tmp_path / "out.wav").read_bytes()


def test_audio_float32_dtype_read(tmp_path: Path, rng: np.random.Generator) -> None:
    x = _pcm16(rng, 2, 50)
    write_signal(tmp_path / "x.wav", x, format=None, sample_rate=8000, subtype="PCM_16")
    sig = read_signal(tmp_path / "x.wav", dtype="float32")
    assert sig.data.dtype == np.float32 and sig.data.flags.c_contiguous
    np.testing.assert_array_equal(sig.data, x.astype(np.float32))


@pytest.mark.parametrize(
    "fmt, subtype",
    [
        ("WAV", "PCM_16"),
        ("WAV", "PCM_24"),
        ("WAV", "PCM_32"),
        ("WAV", "PCM_U8"),
        ("AIFF", "PCM_S8"),
        ("FLAC", "PCM_16"),
        ("FLAC", "PCM_24"),
        ("WAV", "FLOAT"),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_audio_integer_codes_decode_like_libsndfile_float(
    tmp_path: Path, rng: np.random.Generator, fmt: str, subtype: str, dtype: str
) -> None:
    """Integer PCM is read as codes and scaled by us: bit for bit libsndfile's float."""
    x = np.clip(rng.standard_normal((3000, 3)) * 0.5, -1.0, 1.0)
    x[:5] = [-1.0, 1.0 - 2.0**-15, 0.5]
    path = tmp_path / f"x.{fmt.lower()}"
    sf.write(path, x, 48000, subtype=subtype, format=fmt)
    want = sf.read(path, dtype=dtype, always_2d=True)[0].T
    with open_reader(path, dtype=dtype) as reader:
        assert reader.finite == (subtype != "FLOAT")
        blocks = [reader.read(700) for _ in range(6)]
        assert reader.read(700).shape == (3, 0)
        head = reader.head(10)
    got = np.concatenate(blocks, axis=-1)
    assert got.dtype == dtype and all(b.flags.c_contiguous for b in blocks)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(head, want[:, :10])


def test_audio_pcm16_rounds_instead_of_floor(tmp_path: Path) -> None:
    x = np.array([[8192.9, -8192.1, 100.5, 101.5, -0.4, 8192.5]]) / 32768
    write_signal(tmp_path / "r.wav", x, format=None, sample_rate=8000, subtype="PCM_16")
    ints, _ = sf.read(tmp_path / "r.wav", dtype="int16")
    # nearest, ties upwards (libsndfile alone would floor: 8192, -8193)
    assert ints.tolist() == [8193, -8192, 101, 102, 0, 8193]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_audio_pcm_ties_round_upwards_like_sox(tmp_path: Path, dtype: str) -> None:
    below_half = float(np.nextafter(np.float32(0.5), np.float32(0)))  # exact in both dtypes
    codes = [100.5, 101.5, -100.5, -101.5, 0.5, -0.5, 2.5, -2.5, below_half, -below_half]
    x = (np.array([codes]) / 32768).astype(dtype)
    with open_writer(
        tmp_path / "t.wav", format=None, channels=1, sample_rate=8000, subtype="PCM_16"
    ) as writer:
        writer.write(x)
    ints, _ = sf.read(tmp_path / "t.wav", dtype="int16")
    # SoX 14.4.2 (`sox -D in.wav -b 16 out.wav`) gives the same codes for these ties.
    assert ints.tolist() == [101, 102, -100, -101, 1, 0, 3, -2, 0, 0]
    assert writer.clipped == 0


def test_audio_pcm_tie_at_the_top_still_counts_as_clipped(tmp_path: Path) -> None:
    x = np.array([[32766.5, 32767.4, 32767.5, -32768.4, -32768.5, -32768.6]]) / 32768
    clipped = write_signal(tmp_path / "t.wav", x, format=None, sample_rate=8000, subtype="PCM_16")
    ints, _ = sf.read(tmp_path / "t.wav", dtype="int16")
    assert ints.tolist() == [32767, 32767, 32767, -32768, -32768, -32768] and clipped == 2


@pytest.mark.parametrize(
    ("subtype", "scale", "dtype"),
    [("PCM_24", 2**23, "int32"), ("PCM_32", 2**31, "int32"), ("PCM_U8", 2**7, "int16")],
)
def test_audio_other_pcm_round(tmp_path: Path, subtype: str, scale: int, dtype: str) -> None:
    x = np.array([[10.6, -10.6, 3.2, scale - 1]]) / scale
    write_signal(tmp_path / "r.wav", x, format=None, sample_rate=8000, subtype=subtype)
    back = read_signal(tmp_path / "r.wav").data * scale
    np.testing.assert_array_equal(back, [[11, -11, 3, scale - 1]])


def test_audio_clip_counting_warn_and_clip(tmp_path: Path) -> None:
    x = np.array([[0.5, 1.5, -1.5, 1.0], [-1.0, 0.99, 2.0, -3.0]])
    for mode in ("warn", "clip"):
        clipped = write_signal(
            tmp_path / f"{mode}.wav",
            x,
            format=None,
            sample_rate=8000,
            subtype="PCM_16",
            on_clip=mode,
        )
        # 1.0 rounds to 32768, one past the largest code: it is clipped and counted
        assert clipped == 5
        ints, _ = sf.read(tmp_path / f"{mode}.wav", dtype="int16")
        assert ints.T.tolist() == [[16384, 32767, -32768, 32767], [-32768, 32440, 32767, -32768]]


def test_audio_clip_error_names_channel_and_sample_and_publishes_nothing(
    tmp_path: Path,
) -> None:
    with pytest.raises(ClipError, match=r"sample 5 of channel 1 is 1\.25.*PCM_16") as info:
        with open_writer(
            tmp_path / "c.wav",
            format=None,
            channels=2,
            sample_rate=8000,
            subtype="PCM_16",
            on_clip="error",
        ) as w:
            w.write(np.zeros((2, 4)))
            block = np.zeros((2, 4))
            block[1, 1] = 1.25
            block[0, 3] = 7.0
            w.write(block)
    assert str(tmp_path / "c.wav") in str(info.value)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_audio_pcm_encoding_in_chunks_equals_one_pass(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, dtype: str
) -> None:
    """Blocks are encoded a chunk of frames at a time: same codes, counts and sample index."""
    x = (rng.standard_normal((3, 5000)) * 0.4).astype(dtype)
    x[:, 100] = [0.5 / 32768, -2.5 / 32768, 1.0]
    x[2, 4321] = -1.5
    written = {}
    for chunk in (1 << 20, 256):
        monkeypatch.setattr(audiofile, "_ENCODE_CHUNK_SAMPLES", chunk)
        path = tmp_path / f"c{chunk}.wav"
        with open_writer(path, format=None, channels=3, sample_rate=8000, subtype="PCM_16") as w:
            w.write(x)
        written[chunk] = (sf.read(path, dtype="int16")[0], w.clipped)
        with pytest.raises(ClipError, match=r"sample 4331 of channel 2 is -1\.5"):
            with open_writer(
                tmp_path / "e.wav",
                format=None,
                channels=3,
                sample_rate=8000,
                subtype="PCM_16",
                on_clip="error",
            ) as w:
                w.write(np.zeros((3, 10), dtype))
                w.write(np.where(np.arange(5000) < 4321, np.clip(x, -0.9, 0.9), x))
    np.testing.assert_array_equal(written[256][0], written[1 << 20][0])
    assert (
        written[256][1]
        == written[1 << 20][1]
        == int(np.sum(x >= 1.0 - 0.5 / 32768)) + int(np.sum(x < -1.0 - 0.5 / 32768))
    )


def test_audio_clip_error_keeps_existing_target(tmp_path: Path) -> None:
    target = tmp_path / "c.wav"
    target.write_bytes(b"old contents")
    with pytest.raises(ClipError):
        write_signal(
            target,
            np.array([[2.0]]),
            format=None,
            sample_rate=8000,
            subtype="PCM_16",
            on_clip="error",
        )
    assert target.read_bytes() == b"old contents"
    assert _leftovers(tmp_path) == ["c.wav"]


def test_audio_float_subtype_never_clips(tmp_path: Path) -> None:
    x = np.array([[2.0, -7.5, 0.25]])
    assert (
        write_signal(
            tmp_path / "f.wav", x, format=None, sample_rate=8000, subtype="FLOAT", on_clip="error"
        )
        == 0
    )
    np.testing.assert_array_equal(read_signal(tmp_path / "f.wav").data, x)


def test_audio_companded_subtype_clips_to_unit_range(tmp_path: Path) -> None:
    clipped = write_signal(
        tmp_path / "u.wav",
        np.array([[0.5, 1.5, -2.0]]),
        format=None,
        sample_rate=8000,
        subtype="ULAW",
    )
    assert clipped == 2
    back = read_signal(tmp_path / "u.wav").data
    assert back.shape == (1, 3) and np.all(np.abs(back) <= 1.0)


def test_audio_default_subtype_is_float_for_wav_and_pcm24_for_flac(tmp_path: Path) -> None:
    x = np.array([[0.1, -0.2]])
    write_signal(tmp_path / "d.wav", x, format=None, sample_rate=8000)
    write_signal(tmp_path / "d.flac", x, format=None, sample_rate=8000)
    assert probe(tmp_path / "d.wav").subtype == "FLOAT"
    assert probe(tmp_path / "d.flac").subtype == "PCM_24"


def test_audio_nan_becomes_zero_in_pcm(tmp_path: Path) -> None:
    write_signal(
        tmp_path / "n.wav",
        np.array([[np.nan, 0.5]]),
        format=None,
        sample_rate=8000,
        subtype="PCM_16",
    )
    np.testing.assert_array_equal(read_signal(tmp_path / "n.wav").data, [[0.0, 0.5]])


def test_probe_audio_reads_header_only(tmp_path: Path) -> None:
    write_signal(
        tmp_path / "p.flac", np.zeros((3, 1234)), format=None, sample_rate=22050, subtype="PCM_16"
    )
    info = probe(tmp_path / "p.flac")
    assert info == SignalInfo(str(tmp_path / "p.flac"), "flac", "PCM_16", 22050.0, 3, 1234)


def test_audio_format_comes_from_content_not_extension(tmp_path: Path) -> None:
    write_signal(tmp_path / "x.flac", np.zeros((1, 10)), format=None, sample_rate=8000)
    os.replace(tmp_path / "x.flac", tmp_path / "x.wav")
    assert probe(tmp_path / "x.wav").format == "flac"


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


# --------------------------------------------------------------------------- NPY


@pytest.mark.parametrize(
    ("shape", "batch", "channels"), [((2, 50), None, 2), ((3, 2, 50), 3, 2), ((50,), None, 1)]
)
def test_npy_layouts(tmp_path: Path, rng: np.random.Generator, shape, batch, channels) -> None:
    x = rng.standard_normal(shape)
    np.save(tmp_path / "x.npy", x)
    sig = read_signal(tmp_path / "x.npy")
    assert sig.info == SignalInfo(str(tmp_path / "x.npy"), "npy", None, None, channels, 50, batch)
    np.testing.assert_array_equal(sig.data, x if x.ndim > 1 else x[None])


def test_npy_int_and_float32_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "i.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    np.save(tmp_path / "f.npy", np.ones((1, 3), np.float32) / 3)
    assert read_signal(tmp_path / "i.npy").data.tolist() == [[0, 1, 2], [3, 4, 5]]
    f = read_signal(tmp_path / "f.npy", dtype="float32").data
    assert f.dtype == np.float32 and f[0, 0] == np.float32(1) / 3


def test_npy_reader_is_memory_mapped(tmp_path: Path) -> None:
    np.save(tmp_path / "big.npy", np.ones((2, 1_000_000)))  # 16 MB on disk
    tracemalloc.start()
    try:
        with open_reader(tmp_path / "big.npy") as r:
            assert r.read(1000).shape == (2, 1000)
            assert r.tail(10).shape == (2, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "Python objects|object"),
        (lambda p: np.save(p, np.ones((2, 3), complex)), "complex"),
        (lambda p: np.save(p, np.ones((1, 1, 1, 3))), r"shape \(1, 1, 1, 3\)"),
        (lambda p: np.save(p, np.ones((2, 0))), "no samples"),
        (lambda p: np.save(p, np.float64(3.0)), r"shape \(\)"),
        (lambda p: p.write_bytes(b"not an npy file at all"), "not a valid NPY"),
        (lambda p: p.write_bytes(pickle.dumps([1, 2])), "not a valid NPY"),
        (
            lambda p: (
                np.savez(p.with_suffix(".npz"), a=np.ones(3)) or p.with_suffix(".npz").rename(p)
            ),
            "not a valid NPY",
        ),
    ],
)
def test_npy_bad_files(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(DataFileError, match=message):
        read_signal(path)


def test_npy_truncated(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.ones((2, 100)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-50])
    with pytest.raises(DataFileError, match="t.npy: not a valid NPY"):
        read_signal(tmp_path / "t.npy")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(2, 37), (3, 2, 37)])
def test_npy_streaming_writer(tmp_path: Path, rng: np.random.Generator, shape, dtype) -> None:
    x = rng.standard_normal(shape)
    batch = shape[0] if len(shape) == 3 else None
    with open_writer(tmp_path / "o.npy", format=None, channels=2, batch=batch, dtype=dtype) as w:
        for start in range(0, 37, 10):
            w.write(x[..., start : start + 10])
    y = np.load(tmp_path / "o.npy", allow_pickle=False)
    assert y.shape == shape and y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, x.astype(dtype))
    assert _leftovers(tmp_path) == ["o.npy"]
    with open_reader(tmp_path / "o.npy") as r:  # and our own mmap reader takes it back
        np.testing.assert_array_equal(r.read(100), x.astype(dtype))


def test_npy_writer_with_no_blocks_gives_empty_array(tmp_path: Path) -> None:
    with open_writer(tmp_path / "e.npy", format=None, channels=3):
        pass
    assert np.load(tmp_path / "e.npy").shape == (3, 0)


def test_npy_write_signal_is_c_ordered_and_keeps_float32(tmp_path: Path) -> None:
    x = np.ones((2, 3, 4), np.float32)
    assert write_signal(tmp_path / "w.npy", x, format=None) == 0
    y = np.load(tmp_path / "w.npy")
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == (2, 3, 4)


# --------------------------------------------------------------------------- streaming reader


@pytest.mark.parametrize("fmt", ["wav", "flac", "csv", "npy", "npy3"])
def test_reader_blocks_equal_whole_read(tmp_path: Path, rng: np.random.Generator, fmt) -> None:
    shape = (2, 3, 1001) if fmt == "npy3" else (3, 1001)
    x = _pcm16(rng, int(np.prod(shape[:-1])), 1001).reshape(shape)
    path = tmp_path / f"x.{fmt.rstrip('3')}"
    write_signal(path, x, format=None, sample_rate=8000, subtype="PCM_16")
    whole = read_signal(path).data
    np.testing.assert_array_equal(whole, x)
    with open_reader(path) as r:
        assert isinstance(r, SignalReader) and r.seekable
        blocks = []
        while (b := r.read(97)).shape[-1]:
            assert b.shape[:-1] == shape[:-1] and 0 < b.shape[-1] <= 97
            blocks.append(b)
        assert r.read(97).shape[-1] == 0
    np.testing.assert_array_equal(np.concatenate(blocks, axis=-1), whole)


@pytest.mark.parametrize("fmt", ["wav", "csv", "npy"])
def test_reader_head_and_tail_keep_position(tmp_path: Path, fmt: str) -> None:
    x = np.arange(40.0).reshape(2, 20) / 64
    path = tmp_path / f"x.{fmt}"
    write_signal(path, x, format=None, sample_rate=8000, subtype="PCM_16")
    with open_reader(path) as r:
        first = r.read(5)
        np.testing.assert_array_equal(r.head(3), x[:, :3])
        np.testing.assert_array_equal(r.tail(4), x[:, -4:])
        np.testing.assert_array_equal(r.tail(100), x)  # longer than the signal: all of it
        assert r.head(0).shape == (2, 0) and r.read(0).shape == (2, 0)
        np.testing.assert_array_equal(r.read(5), x[:, 5:10])
        np.testing.assert_array_equal(first, x[:, :5])
        assert [b.shape[-1] for b in r] == [10]


def test_reader_bad_frames_and_dtype(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((1, 5)))
    with pytest.raises(ConfigError, match="dtype must be one of"):
        open_reader(tmp_path / "x.npy", dtype="int16")
    with open_reader(tmp_path / "x.npy") as r:
        with pytest.raises(ConfigError, match=r"^frames must be >= 0, got -1$"):
            r.read(-1)
        with pytest.raises(ConfigError, match=r"^frames must be an integer, got 2\.0$"):
            r.head(2.0)  # type: ignore[arg-type]


def test_csv_reader_works_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvfile, "_CSV_CHUNK", 7)
    monkeypatch.setattr(csvfile, "_CSV_READ_BYTES", 16)  # a few lines per batch read from disk
    x = np.arange(60.0).reshape(2, 30)
    lines = ["# comment", "", "a,b"] + [f"{p},{q}" for p, q in x.T.tolist()]
    lines[10:10] = ["# in the middle", "   "]
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    with open_reader(tmp_path / "c.csv") as r:
        assert r.info.frames == 30 and r.info.column_names == ("a", "b")
        np.testing.assert_array_equal(r.read(25), x[:, :25])
        np.testing.assert_array_equal(r.tail(3), x[:, -3:])
        np.testing.assert_array_equal(r.head(9), x[:, :9])
        np.testing.assert_array_equal(r.read(25), x[:, 25:])
    lines[30] = "1,2,3"
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match="line 31 has 3 column"):
        read_signal(tmp_path / "c.csv")


# --------------------------------------------------------------------------- stdin / stdout


def test_stdin_needs_a_format(monkeypatch: pytest.MonkeyPatch) -> None:
    _stdin(monkeypatch, b"1,2\n")
    with pytest.raises(
        FormatError, match=r"^'-' \(stdin/stdout\) has no extension to tell the format from; "
    ) as info:
        read_signal("-")
    assert str(info.value).endswith("give the format explicitly") and "--" not in str(info.value)


@pytest.mark.parametrize("fmt", ["wav", "flac", "csv", "npy"])
def test_stdin_buffer_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, fmt: str
) -> None:
    x = _pcm16(rng, 2, 300)
    write_signal(tmp_path / f"x.{fmt}", x, format=None, sample_rate=8000, subtype="PCM_16")
    _stdin(monkeypatch, (tmp_path / f"x.{fmt}").read_bytes())
    sig = read_signal("-", fmt)
    assert sig.info.path == "-" and sig.info.format == fmt and sig.info.frames == 300
    np.testing.assert_array_equal(sig.data, x)


def test_stdin_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    for fmt in ("csv", "npy"):
        _stdin(monkeypatch, b"")
        with pytest.raises(DataFileError, match="<stdin>: input is empty"):
            read_signal("-", fmt)
    _stdin(monkeypatch, b"")
    with pytest.raises(DataFileError, match="<stdin>: not a readable WAV"):
        read_signal("-", "wav")


def _run_python(code: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], input=stdin, capture_output=True, env=env, timeout=60
    )


def test_stdin_real_pipe_streams_wav_with_unknown_length(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    x = _pcm16(rng, 2, 5000)
    write_signal(tmp_path / "p.wav", x, format=None, sample_rate=8000, subtype="PCM_16")
    code = (
        "import sys, numpy as np\n"
        "from conv1d_cli.io.inputs import open_reader\n"
        "from conv1d_cli.errors import DataFileError\n"
        "with open_reader('-', 'wav') as r:\n"
        "    print(r.info.frames, r.seekable, r.info.sample_rate)\n"
        "    try:\n"
        "        r.tail(3)\n"
        "    except DataFileError as e:\n"
        "        print(e)\n"
        "    blocks = []\n"
        "    while (b := r.read(999)).shape[-1]:\n"
        "        blocks.append(b)\n"
        "np.save(sys.stdout.buffer, np.concatenate(blocks, axis=1))\n"
    )
    result = _run_python(code, (tmp_path / "p.wav").read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.split(b"\n", 2)
    assert lines[0] == b"None False 8000.0"
    assert b"<stdin>: cannot read the end of a pipe" in lines[1]
    np.testing.assert_array_equal(np.load(io.BytesIO(lines[2])), x)


def test_stdin_real_pipe_refuses_flac(tmp_path: Path) -> None:
    write_signal(tmp_path / "p.flac", np.zeros((1, 100)), format=None, sample_rate=8000)
    code = (
        "from conv1d_cli.io.inputs import read_signal\n"
        "from conv1d_cli.errors import DataFileError\n"
        "try:\n"
        "    read_signal('-', 'flac')\n"
        "except DataFileError as e:\n"
        "    print(e)\n"
    )
    result = _run_python(code, (tmp_path / "p.flac").read_bytes())
    assert result.stdout.decode().strip() == (
        "<stdin>: FLAC cannot be read from a pipe; save it to a file first "
        "(or pipe WAV, AU or AIFF instead)"
    )


@pytest.mark.parametrize("fmt", ["wav", "flac", "au", "csv", "npy"])
def test_stdout_output_is_complete_and_decodable(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, fmt: str
) -> None:
    x = _pcm16(rng, 2, 300)
    out = _stdout(monkeypatch)
    with open_writer("-", format=fmt, channels=2, sample_rate=8000, subtype=None) as w:
        w.write(x[:, :100])
        w.write(x[:, 100:])
        assert out.getvalue() == b""  # nothing reaches stdout before a successful close
    data = out.getvalue()
    if fmt == "csv":
        back = np.loadtxt(io.StringIO(data.decode()), delimiter=",").T
    elif fmt == "npy":
        back = np.load(io.BytesIO(data), allow_pickle=False)
    else:
        back = sf.read(io.BytesIO(data), always_2d=True)[0].T
        assert sf.info(io.BytesIO(data)).frames == 300
    np.testing.assert_array_equal(back, x)


def test_stdout_gets_nothing_on_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _stdout(monkeypatch)
    with pytest.raises(RuntimeError, match="boom"):
        with open_writer("-", format="wav", channels=1, sample_rate=8000) as w:
            w.write(np.zeros((1, 10)))
            raise RuntimeError("boom")
    assert out.getvalue() == b""


def test_stdout_write_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _stdout(monkeypatch)
    assert (
        write_signal("-", np.array([[0.5, 1.5]]), format="wav", sample_rate=8000, subtype="PCM_16")
        == 1
    )
    assert sf.read(io.BytesIO(out.getvalue()), dtype="int16")[0].tolist() == [16384, 32767]


def test_stdout_needs_a_format() -> None:
    with pytest.raises(FormatError):
        open_writer("-", format=None, channels=1, sample_rate=8000)


# --------------------------------------------------------------------------- atomic output


@pytest.mark.parametrize("fmt", ["wav", "flac", "csv", "npy"])
def test_writer_exception_mid_write_leaves_nothing(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    with pytest.raises(KeyboardInterrupt):
        with open_writer(target, format=None, channels=1, sample_rate=8000) as w:
            w.write(np.zeros((1, 1000)))
            assert len(_leftovers(tmp_path)) == 1  # the temporary sibling, not the target
            assert not target.exists()
            raise KeyboardInterrupt
    assert _leftovers(tmp_path) == []


def test_writer_shape_error_aborts(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match=r"block of shape \(3, 10\).*C = 2"):
        with open_writer(tmp_path / "o.wav", format=None, channels=2, sample_rate=8000) as w:
            w.write(np.zeros((3, 10)))
    assert _leftovers(tmp_path) == []


def test_writer_abort_and_close_are_idempotent(tmp_path: Path) -> None:
    w = open_writer(tmp_path / "o.csv", format=None, channels=1)
    w.write(np.ones((1, 2)))
    w.abort()
    w.abort()
    w.close()
    assert _leftovers(tmp_path) == []
    w2 = open_writer(tmp_path / "o.csv", format=None, channels=1)
    w2.close()
    w2.close()
    assert _leftovers(tmp_path) == ["o.csv"]
    with pytest.raises(ValueError, match="closed"):
        w2.write(np.ones((1, 2)))


def test_writer_output_directory_missing(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="output directory .* does not exist"):
        open_writer(tmp_path / "nope" / "o.wav", format=None, channels=1, sample_rate=8000)


def test_writer_output_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(DataFileError, match="is a directory"):
        write_signal(tmp_path / "d.wav", np.zeros((1, 3)), format=None, sample_rate=8000)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_writer_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(DataFileError, match="cannot write"):
            write_signal(ro / "o.csv", np.zeros((1, 3)), format=None)
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "wav", "channels": 1}, "needs a sample rate"),
        ({"format": "wav", "channels": 1, "sample_rate": 44100.5}, "whole number of Hz"),
        (
            {"format": "flac", "channels": 1, "sample_rate": 8000, "subtype": "FLOAT"},
            "subtype 'FLOAT' is not valid for FLAC",
        ),
        ({"format": "wav", "channels": 1, "sample_rate": 8000, "on_clip": "wrap"}, "on_clip"),
        ({"format": "wav", "channels": 0, "sample_rate": 8000}, "channels must be"),
        ({"format": "wav", "channels": 2, "sample_rate": 8000, "batch": 3}, "only be written"),
        ({"format": "npy", "channels": 2, "dtype": "int8"}, "dtype must be"),
    ],
)
def test_writer_bad_options(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_writer(tmp_path / "o.x", **kwargs)
    assert _leftovers(tmp_path) == []


def test_write_signal_accepts_mono_vector_and_signal(tmp_path: Path) -> None:
    write_signal(tmp_path / "m.csv", np.array([1.0, 2.0]), format=None)
    sig = read_signal(tmp_path / "m.csv")
    assert sig.data.shape == (1, 2)
    write_signal(tmp_path / "n.npy", Signal(sig.data, sig.info), format=None)
    assert np.load(tmp_path / "n.npy").tolist() == [[1.0, 2.0]]
    with pytest.raises(ShapeError, match="cannot write an array of shape"):
        write_signal(tmp_path / "x.npy", np.zeros((1, 1, 1, 1)), format=None)


# --------------------------------------------------------------------------- bad inputs


def test_input_missing(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"missing\.wav: no such file"):
        probe(tmp_path / "missing.wav")


def test_input_directory(tmp_path: Path) -> None:
    (tmp_path / "d.wav").mkdir()
    for path in (tmp_path / "d.wav", tmp_path):
        with pytest.raises(DataFileError, match="is a directory"):
            read_signal(path)


@pytest.mark.parametrize("ext", ["wav", "flac", "csv", "npy"])
def test_input_empty_file(tmp_path: Path, ext: str) -> None:
    (tmp_path / f"e.{ext}").write_bytes(b"")
    with pytest.raises(DataFileError, match=rf"e\.{ext}: file is empty"):
        read_signal(tmp_path / f"e.{ext}")


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "aiff"])
def test_input_not_audio(tmp_path: Path, ext: str) -> None:
    (tmp_path / f"n.{ext}").write_text("this is not audio, just text\n" * 20)
    with pytest.raises(DataFileError, match=rf"n\.{ext}: not a readable {ext.upper()} audio"):
        probe(tmp_path / f"n.{ext}")


def test_input_truncated_header(tmp_path: Path) -> None:
    write_signal(tmp_path / "t.wav", np.zeros((1, 100)), format=None, sample_rate=8000)
    (tmp_path / "t.wav").write_bytes((tmp_path / "t.wav").read_bytes()[:30])
    with pytest.raises(DataFileError, match=r"t\.wav: not a readable WAV audio file \(.+\)"):
        read_signal(tmp_path / "t.wav")


def test_input_truncated_flac_fails_while_reading(tmp_path: Path) -> None:
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 20000))
    write_signal(tmp_path / "t.flac", x, format=None, sample_rate=8000, subtype="PCM_16")
    data = (tmp_path / "t.flac").read_bytes()
    (tmp_path / "t.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match=r"t\.flac: error reading audio"):
        read_signal(tmp_path / "t.flac")


def test_input_audio_without_samples(tmp_path: Path) -> None:
    sf.write(tmp_path / "z.wav", np.zeros((0, 1)), 8000)
    with pytest.raises(DataFileError, match="has no samples"):
        probe(tmp_path / "z.wav")


def test_input_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "x.mp4").write_bytes(b"abc")
    with pytest.raises(FormatError, match=r"x\.mp4: cannot tell the signal format.*'\.mp4'"):
        read_signal(tmp_path / "x.mp4")


def test_input_raw_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.raw").write_bytes(b"\0" * 10)
    with pytest.raises(ConfigError, match="headerless RAW"):
        read_signal(tmp_path / "x.raw")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_input_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("1\n")
    path.chmod(0)
    with pytest.raises(DataFileError, match="u.csv: cannot read: Permission denied"):
        read_signal(path)


class _Pipe(io.RawIOBase):
    """A non-seekable byte stream without a file descriptor (like a wrapped pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        return self._data.readinto(buffer)


def test_stdin_nonseekable_stream_without_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = np.array([[0.25, -0.5, 0.125]])
    write_signal(tmp_path / "x.wav", x, format=None, sample_rate=8000, subtype="PCM_16")
    write_signal(tmp_path / "x.flac", x, format=None, sample_rate=8000, subtype="PCM_16")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(_Pipe((tmp_path / "x.wav").read_bytes())))
    with open_reader("-", "wav") as r:
        # buffered in memory (no descriptor to hand libsndfile), so it became seekable
        assert r.seekable and r.info.frames == 3
        np.testing.assert_array_equal(r.read(10), x)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(_Pipe((tmp_path / "x.flac").read_bytes())))
    with pytest.raises(DataFileError, match="FLAC cannot be read from a pipe"):
        read_signal("-", "flac")


def test_stdin_terminal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class _Tty(io.TextIOWrapper):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", _Tty(io.BytesIO(b"")))
    with pytest.raises(DataFileError, match="<stdin>: is a terminal"):
        read_signal("-", "csv")


def test_csv_header_narrower_than_data_is_ragged(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("x\n1,2\n3,4\n")
    with pytest.raises(DataFileError, match="line 2 has 2 column"):
        read_signal(tmp_path / "h.csv")


def test_tsv_output_uses_tabs(tmp_path: Path) -> None:
    write_signal(
        tmp_path / "x.tsv",
        np.array([[1.5, 2.0], [3.0, 4.25]]),
        format=None,
        column_names=["a", "b"],
    )
    assert (tmp_path / "x.tsv").read_text() == "a\tb\n1.5\t3.0\n2.0\t4.25\n"
    assert read_signal(tmp_path / "x.tsv").info.column_names == ("a", "b")


def test_writer_unwritable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("conv1d_cli.io.atomic.os.open", refuse)
    with pytest.raises(DataFileError, match=r"o\.wav: cannot write to .*Permission denied"):
        open_writer(tmp_path / "o.wav", format=None, channels=1, sample_rate=8000)


def test_npy_big_endian_and_fortran_inputs(tmp_path: Path) -> None:
    x = np.arange(12.0).reshape(3, 4)
    np.save(tmp_path / "be.npy", x.astype(">f8"))
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    for name in ("be.npy", "f.npy"):
        with open_reader(tmp_path / name) as r:
            np.testing.assert_array_equal(np.concatenate([r.read(3), r.read(3)], axis=1), x)


def test_audio_reader_reads_blocks_not_the_whole_file(tmp_path: Path) -> None:
    sf.write(tmp_path / "long.wav", np.zeros((1_000_000, 2), np.int16), 48000)  # 4 MB
    tracemalloc.start()
    try:
        with open_reader(tmp_path / "long.wav") as r:
            assert r.read(1000).shape == (2, 1000)
            assert r.tail(1000).shape == (2, 1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 500_000


def test_stdin_real_pipe_au(tmp_path: Path) -> None:
    x = np.array([[0.5, -0.25, 0.125, 0.0]])
    write_signal(tmp_path / "p.au", x, format=None, sample_rate=8000, subtype="PCM_16")
    code = (
        "from conv1d_cli.io.inputs import read_signal\n"
        "s = read_signal('-', 'au')\n"
        "print(s.info.format, s.info.frames, s.data.tolist())\n"
    )
    result = _run_python(code, (tmp_path / "p.au").read_bytes())
    assert result.stdout.decode().split() == ["au", "4", "[[0.5,", "-0.25,", "0.125,", "0.0]]"]


def test_writer_dropped_without_close_leaves_nothing(tmp_path: Path) -> None:
    w = open_writer(tmp_path / "o.npy", format=None, channels=1)
    w.write(np.ones((1, 5)))
    del w
    assert _leftovers(tmp_path) == []


def test_wavex_is_reported_as_wav(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", np.zeros((10, 4)), 8000, format="WAVEX", subtype="PCM_24")
    info = probe(tmp_path / "x.wav")
    assert (info.format, info.subtype, info.channels) == ("wav", "PCM_24", 4)


# ---- inputs that are pipes but not "-": <(...), named FIFOs, /dev/stdin


def _fifo_with_writer(tmp_path: Path, name: str, data: bytes) -> tuple[Path, Callable[[], None]]:
    """A named FIFO and a thread that writes ``data`` into it once a reader opens it.

    A reader that wrongly opens the FIFO a second time would block for ever; the thread
    then keeps giving such opens an empty stream (EOF) until ``finish()`` (at most a few
    seconds), so a regression fails instead of hanging the suite.
    """
    fifo = tmp_path / name
    os.mkfifo(fifo)
    done = threading.Event()

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as fh:
            fh.write(data)
        deadline = time.monotonic() + 5
        while not done.wait(0.05) and time.monotonic() < deadline:
            with contextlib.suppress(OSError):  # ENXIO: nobody is reading it now
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()

    def finish() -> None:
        done.set()
        writer.join(10)

    return fifo, finish


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("fmt", ["csv", "npy", "wav"])
def test_fifo_input_is_read_once_like_stdin(tmp_path: Path, fmt: str) -> None:
    x = np.array([[0.5, -0.25, 0.125, 0.0], [0.25, 0.5, -0.5, 0.75]])
    write_signal(tmp_path / f"src.{fmt}", x, format=None, sample_rate=8000, subtype="PCM_16")
    fifo, finish = _fifo_with_writer(tmp_path, f"in.{fmt}", (tmp_path / f"src.{fmt}").read_bytes())
    sig = read_signal(fifo)
    finish()
    np.testing.assert_array_equal(sig.data, x)
    assert sig.info.channels == 2 and sig.info.frames == 4


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_input_without_extension_needs_a_format(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FormatError, match="give the format explicitly"):
        open_reader(fifo)
    fifo2, finish = _fifo_with_writer(tmp_path, "pipe2", b"a,b\n1,2\n3,4\n")
    with open_reader(fifo2, "csv") as reader:
        assert reader.info.column_names == ("a", "b") and reader.info.frames == 2
        np.testing.assert_array_equal(reader.read(10), [[1, 3], [2, 4]])
    finish()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_wav_input_is_not_seekable(tmp_path: Path) -> None:
    x = np.array([[0.5, -0.25, 0.125]])
    write_signal(tmp_path / "src.wav", x, format=None, sample_rate=8000, subtype="PCM_16")
    fifo, finish = _fifo_with_writer(tmp_path, "in.wav", (tmp_path / "src.wav").read_bytes())
    with open_reader(fifo) as reader:
        assert not reader.seekable and reader.info.frames is None
        with pytest.raises(DataFileError, match="of a pipe"):
            reader.head(1)
        np.testing.assert_array_equal(reader.read(10), x)
    finish()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_fifo_empty_input(tmp_path: Path) -> None:
    fifo, finish = _fifo_with_writer(tmp_path, "in.csv", b"")
    with pytest.raises(DataFileError, match=r"in\.csv: input is empty"):
        read_signal(fifo)
    finish()


@pytest.mark.skipif(sys.platform != "linux", reason="needs /dev/stdin and a shell FIFO")
@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_pipe_path_input_in_a_subprocess(tmp_path: Path, fmt: str) -> None:
    x = np.arange(6.0).reshape(2, 3)
    write_signal(tmp_path / f"src.{fmt}", x, format=None)
    code = (
        "import sys, numpy as np\n"
        "from conv1d_cli.io.inputs import read_signal\n"
        f"sig = read_signal(sys.argv[1], {fmt!r})\n"
        "sys.stdout.write(repr(sig.data.tolist()) + ' ' + repr(sig.info.frames))\n"
    )
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/stdin"):
        with open(tmp_path / f"src.{fmt}", "rb") as src:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=REPO,
            )
            data = src.read()
            if path == "/dev/stdin":
                out, err = proc.communicate(data, timeout=20)
            else:
                with open(fifo, "wb") as fh:
                    fh.write(data)
                out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err.decode()
        assert out.decode() == "[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] 3"


# ---- outputs that are symlinks, devices or FIFOs


def test_writer_through_a_symlink_updates_the_real_file(tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to("real.csv")
    write_signal(tmp_path / "link.csv", np.array([[1.0, 2.0]]), format=None)
    assert (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "real.csv").read_text() == "1.0\n2.0\n"
    assert _leftovers(tmp_path) == ["link.csv", "real.csv"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("fmt", ["csv", "npy", "wav"])
def test_writer_into_a_fifo_streams_a_complete_file(tmp_path: Path, fmt: str) -> None:
    fifo = tmp_path / f"out.{fmt}"
    x = np.array([[0.5, -0.25, 0.125], [0.0, 0.75, -1.0]])
    with drained_fifo(fifo) as got:
        write_signal(fifo, x, format=None, sample_rate=8000, subtype="PCM_16")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and _leftovers(tmp_path) == [f"out.{fmt}"]
    (tmp_path / f"copy.{fmt}").write_bytes(got[0])
    np.testing.assert_array_equal(read_signal(tmp_path / f"copy.{fmt}").data, x)


@pytest.mark.skipif(sys.platform != "linux", reason="needs /dev/stdout")
def test_writer_to_dev_stdout_in_a_subprocess(tmp_path: Path) -> None:
    # the guard keeps a regression from replacing the system's /dev/stdout (root can)
    code = (
        "import os, numpy as np\n"
        "real_replace = os.replace\n"
        "def guard(src, dst):\n"
        "    assert not str(dst).startswith('/dev/'), dst\n"
        "    real_replace(src, dst)\n"
        "os.replace = guard\n"
        "from conv1d_cli.io.outputs import write_signal\n"
        "write_signal('/dev/stdout', np.array([[0.5, -0.25]]), format='wav',\n"
        "             sample_rate=8000, subtype='PCM_16')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    (tmp_path / "o.wav").write_bytes(result.stdout)
    np.testing.assert_array_equal(read_signal(tmp_path / "o.wav").data, [[0.5, -0.25]])


# ---- a full disk: one clear error, no traceback, no temp file left


class _FullDisk(io.RawIOBase):
    """Wraps a writer's file; every write after the first ``allow`` bytes fails (ENOSPC)."""

    def __init__(self, inner: IO[bytes], allow: int = 0) -> None:
        self.inner = inner
        self.allow = allow

    def write(self, data: Any) -> int:
        if len(data) > self.allow:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.allow -= len(data)
        return int(self.inner.write(data))

    def seek(self, *args: Any) -> int:
        return int(self.inner.seek(*args))

    def tell(self) -> int:
        return int(self.inner.tell())

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
        super().close()


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_writer_full_disk_while_writing(tmp_path: Path, fmt: str) -> None:
    writer = open_writer(tmp_path / f"o.{fmt}", format=None, channels=2)
    writer._fh = _FullDisk(writer._fh)  # type: ignore[attr-defined]
    with pytest.raises(DataFileError) as info:
        writer.write(np.ones((2, 10)))
    assert str(info.value) == f"{tmp_path / f'o.{fmt}'}: cannot write: No space left on device"
    assert isinstance(info.value.__cause__, OSError)
    assert _leftovers(tmp_path) == []


def test_writer_full_disk_while_closing_npy(tmp_path: Path) -> None:
    # the NPY header is rewritten at close: the failure comes from close()
    writer = open_writer(tmp_path / "o.npy", format=None, channels=2)
    writer.write(np.ones((2, 10)))
    writer._fh = _FullDisk(writer._fh)  # type: ignore[attr-defined]
    with pytest.raises(DataFileError, match=r"o\.npy: cannot write: No space left on device"):
        writer.close()
    assert _leftovers(tmp_path) == []


def test_writer_full_disk_while_publishing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DataFileError, match=r"o\.csv: cannot write: No space left on device"):
        write_signal(tmp_path / "o.csv", np.ones((1, 3)), format=None)
    assert _leftovers(tmp_path) == []


def test_writer_libsndfile_error_while_writing_wav(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = open_writer(tmp_path / "o.wav", format=None, channels=1, sample_rate=8000)

    def broken(data: Any) -> None:
        raise sf.LibsndfileError(1, "Error writing: ")  # libsndfile's system error code

    monkeypatch.setattr(writer._sf, "write", broken)  # type: ignore[attr-defined]
    with pytest.raises(DataFileError, match=r"o\.wav: cannot write: "):
        writer.write(np.zeros((1, 5)))
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_writer_to_dev_full_path() -> None:
    with pytest.raises(DataFileError, match=r"^/dev/full: cannot write: No space left on device$"):
        write_signal("/dev/full", np.zeros((1, 10)), format="csv")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_copy_to_dev_full(tmp_path: Path) -> None:
    code = (
        "import numpy as np\n"
        "from conv1d_cli.errors import DataFileError\n"
        "from conv1d_cli.io.outputs import write_signal\n"
        "try:\n"
        "    write_signal('-', np.zeros((1, 10)), format='csv')\n"
        "except DataFileError as e:\n"
        "    raise SystemExit(f'caught: {e}')\n"
    )
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE, cwd=REPO, timeout=60
        )
    assert result.stderr.decode() == "caught: <stdout>: cannot write: No space left on device\n"


@pytest.mark.skipif(sys.platform != "linux", reason="needs RLIMIT_FSIZE and SIGXFSZ")
@pytest.mark.parametrize("fmt", ["csv", "npy", "wav", "flac"])
def test_writer_real_write_failure_via_file_size_limit(tmp_path: Path, fmt: str) -> None:
    # a real failing write(2) (EFBIG past RLIMIT_FSIZE) through every encoder, libsndfile too
    code = (
        "import resource, signal, sys, numpy as np\n"
        "from conv1d_cli.errors import DataFileError\n"
        "from conv1d_cli.io.outputs import write_signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        "x = np.random.default_rng(1).uniform(-0.9, 0.9, (2, 100000))\n"
        "try:\n"
        "    write_signal(sys.argv[1], x, format=None, sample_rate=8000)\n"
        "except DataFileError as e:\n"
        "    raise SystemExit(f'caught: {e}')\n"
    )
    target = tmp_path / f"big.{fmt}"
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"caught: {target}: cannot write: "), result.stderr
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0}, "channels must be positive, got 0"),
        ({"channels": True}, "channels must be an integer, got True"),
        ({"channels": 2.0}, "channels must be an integer, got 2.0"),
        ({"channels": 2, "batch": 0}, "batch must be positive, got 0"),
        ({"channels": 2, "batch": "3"}, "batch must be an integer, got '3'"),
    ],
)
def test_writer_counts_use_the_shared_integer_check(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    # same wording as every other count in the library (shapes.check_int)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        open_writer(tmp_path / "o.npy", format=None, **kwargs)
    with open_writer(tmp_path / "o.npy", format=None, channels=np.int64(2), batch=np.int32(1)):
        pass
    assert _leftovers(tmp_path) == ["o.npy"]


@pytest.mark.parametrize(
    ("rate", "match"),
    [(1e12, "at most 2147483647"), (44100.5, "whole number"), (0, "positive"), (-1, "positive")],
)
def test_audio_writer_sample_rate_checked_before_soundfile(tmp_path: Path, rate, match) -> None:
    with pytest.raises(ConfigError, match=match):
        write_signal(tmp_path / "x.wav", np.zeros((1, 4)), format=None, sample_rate=rate)
    assert list(tmp_path.iterdir()) == []
