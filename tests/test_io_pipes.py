"""conv1d_cli.io.pipes: stdin and stdout, <(...), FIFOs, devices and symlinked outputs."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import drained_fifo

from conv1d_cli.errors import DataFileError
from conv1d_cli.io.formats import FormatError
from conv1d_cli.io.inputs import open_reader, read_signal
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
