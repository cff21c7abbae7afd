"""conv1d_cli.io.audiofile: audio round trips, PCM rounding and clipping, bad audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conv1d_cli.io import audiofile
from conv1d_cli.io.audiofile import ClipError
from conv1d_cli.io.formats import SignalInfo
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
