"""conv1d_cli.io.inputs: the streaming reader and inputs that are missing, empty or wrong."""

from __future__ import annotations

import io
import os
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conv1d_cli.errors import ConfigError, DataFileError
from conv1d_cli.io import csvfile
from conv1d_cli.io.base import SignalReader
from conv1d_cli.io.formats import FormatError
from conv1d_cli.io.inputs import open_reader, probe, read_signal
from conv1d_cli.io.outputs import open_writer, write_signal


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


def _pcm16(rng: np.random.Generator, channels: int, frames: int) -> np.ndarray:
    """Float signal on the PCM_16 grid (exactly representable)."""
    return rng.integers(-32768, 32768, (channels, frames)).astype(np.float64) / 32768


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


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


def test_writer_dropped_without_close_leaves_nothing(tmp_path: Path) -> None:
    w = open_writer(tmp_path / "o.npy", format=None, channels=1)
    w.write(np.ones((1, 5)))
    del w
    assert _leftovers(tmp_path) == []


def test_wavex_is_reported_as_wav(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", np.zeros((10, 4)), 8000, format="WAVEX", subtype="PCM_24")
    info = probe(tmp_path / "x.wav")
    assert (info.format, info.subtype, info.channels) == ("wav", "PCM_24", 4)
