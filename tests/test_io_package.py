"""conv1d_cli.io as a package: light imports, one home for sniffing, parameters not flags."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conv1d_cli.cli import _common
from conv1d_cli.cli._common import error_text
from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError, ShapeError
from conv1d_cli.io import sniff
from conv1d_cli.io.audiofile import ClipError
from conv1d_cli.io.formats import SignalInfo, check_output_subtype
from conv1d_cli.io.inputs import open_reader, read_signal
from conv1d_cli.io.outputs import _output_dialect, open_writer, plan_output
from conv1d_cli.layer import load_layer

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "module",
    ["conv1d_cli.io", "conv1d_cli.io.sniff", "conv1d_cli.io.pipes", "conv1d_cli.io.atomic"],
)
def test_io_light_modules_load_neither_numpy_nor_soundfile(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "heavy = [m for m in ('numpy', 'soundfile', 'click') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)


def test_io_layer_archive_sniffing_has_one_home() -> None:
    assert _common.is_layer_archive is sniff.is_layer_archive


def test_io_is_layer_archive_by_content_not_name(tmp_path: Path) -> None:
    zipped = tmp_path / "weights.bin"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("weight.npy", b"")
    pickled = tmp_path / "model.dat"
    pickled.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    text = tmp_path / "x.csv"
    text.write_text("1,2\n")
    npy = tmp_path / "k.npy"
    np.save(npy, np.ones(3))
    assert sniff.is_layer_archive(str(zipped)) and sniff.is_layer_archive(str(pickled))
    assert not sniff.is_layer_archive(str(text)) and not sniff.is_layer_archive(str(npy))
    assert sniff.is_layer_archive(str(tmp_path / "missing.pt"))  # by extension
    assert not sniff.is_layer_archive(str(tmp_path / "missing.bin"))


def test_io_fifo_is_not_sniffed(tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    assert not sniff.is_layer_archive(str(fifo))  # opening it would block or eat bytes


def test_io_pickle_and_layer_magics() -> None:
    assert sniff.is_pickle(pickle.dumps(1, protocol=2)) and not sniff.is_pickle(b"\x80\x01")
    assert sniff.starts_like_layer(b"\x93NUMPY") and not sniff.starts_like_layer(b"RIFF")


def _cli(error: Conv1dError) -> str:
    return error_text(error)


def test_io_subtype_error_names_the_keyword_and_the_cli_its_flag() -> None:
    with pytest.raises(ConfigError) as e:
        check_output_subtype("PCM_16", "csv")
    assert e.value.parameter == "subtype"
    assert str(e.value) == "subtype applies to audio outputs only; the output format is CSV"
    assert _cli(e.value) == "--subtype applies to audio outputs only; the output format is CSV"


def test_io_column_options_name_their_keyword(tmp_path: Path) -> None:
    wav = tmp_path / "x.wav"
    from conv1d_cli.io.outputs import write_signal

    write_signal(wav, np.zeros((1, 4)), format=None, sample_rate=8000)
    with pytest.raises(ConfigError) as e:
        open_reader(wav, columns=["1"])
    assert _cli(e.value) == f"--columns applies to CSV inputs only; {wav} is WAV"
    csv_path = tmp_path / "x.csv"
    csv_path.write_text("a,b\n1,2\n")
    with pytest.raises(DataFileError) as d:
        open_reader(csv_path, time_column="nope")
    assert e.value.parameter == "columns" and d.value.parameter == "time_column"
    assert _cli(d.value).startswith(f"{csv_path}: --time-column 'nope': no such column")
    with pytest.raises(ConfigError) as twice:
        open_reader(csv_path, columns=["a", "1"])
    assert _cli(twice.value) == f"{csv_path}: --columns names a column twice: a,1"


def test_io_plan_output_errors_name_parameters() -> None:
    info = SignalInfo("in.csv", "csv", None, None, 1, 10)
    with pytest.raises(ConfigError) as e:
        plan_output("y.npy", info, channels=1, csv_delimiter=";")
    assert e.value.parameter == "csv_delimiter"
    assert _cli(e.value) == (
        "in.csv: --csv-delimiter applies to CSV outputs only; the output format is NPY"
    )
    with pytest.raises(DataFileError) as d:
        plan_output("y.wav", info, channels=1)
    assert _cli(d.value).endswith("audio output needs one; give it with --sample-rate")
    with pytest.raises(ConfigError) as r:
        plan_output("y.wav", info, channels=1, sample_rate=44100.5)
    assert _cli(r.value) == (
        "in.csv: --sample-rate must be a whole number of Hz for audio output, got 44100.5"
    )
    wav = SignalInfo("in.wav", "wav", "PCM_16", 44101.0, 1, 10)
    with pytest.raises(ShapeError) as s:
        plan_output("y.wav", wav, channels=1, total_stride=2)
    assert s.value.parameter == "sample_rate" and _cli(s.value).endswith("with --sample-rate")
    with pytest.raises(ConfigError) as bad:
        _output_dialect("y.csv", None, "pipe")
    assert _cli(bad.value).startswith("--csv-delimiter must be one of ")


def test_io_clip_and_dtype_errors_name_their_options(tmp_path: Path) -> None:
    with pytest.raises(ClipError) as c:
        with open_writer(
            tmp_path / "y.wav",
            format=None,
            channels=1,
            sample_rate=8000,
            subtype="PCM_16",
            on_clip="error",
        ) as w:
            w.write(np.array([[0.0, 2.0]]))
    assert c.value.parameter == "on_clip" and "(--on-clip error)" in _cli(c.value)
    big = tmp_path / "big.npy"
    np.save(big, np.array([[1e300]]))
    with pytest.raises(DataFileError) as d:
        read_signal(big, dtype="float32")
    assert _cli(d.value).endswith("compute in float64 (--dtype float64)")


def test_io_several_layers_error_names_key_option(tmp_path: Path) -> None:
    path = tmp_path / "multi.npz"
    np.savez(path, **{"a.weight": np.ones((1, 1, 3)), "b.weight": np.ones((1, 1, 3))})
    with pytest.raises(DataFileError) as e:
        load_layer(path)
    assert "holds several layers, choose one with --key: 'a', 'b'" in _cli(e.value)


def test_io_pipe_spool_copy_appends_to_named_device(tmp_path: Path) -> None:
    from conv1d_cli.io.pipes import _copy_spool_out

    target = tmp_path / "log"
    target.write_bytes(b"old\n")
    spool = io.BytesIO(b"new\n")
    _copy_spool_out(spool, str(target))
    assert target.read_bytes() == b"old\nnew\n" and spool.closed
