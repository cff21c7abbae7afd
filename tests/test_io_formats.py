"""conv1d_cli.io.formats: format names, extensions and audio subtypes."""

from __future__ import annotations

import pytest

from conv1d_cli.errors import ConfigError, DataFileError
from conv1d_cli.io.formats import FormatError, detect_format, output_subtype

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
