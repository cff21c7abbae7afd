"""conv1d as a Unix filter on real pipes (issue 13, items 1-3).

Real subprocesses, pipes and FIFOs: live output on a pipe, a reader that stops
early (exit 141), and signals (one ``Error:`` line, exit 128 + N).
"""

from __future__ import annotations

import io
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conv1d_cli import Conv1d
from conv1d_cli.io.layerfile import save_layer

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "conv1d_cli", *map(str, args)]


def _wav_bytes(x: np.ndarray, subtype: str = "PCM_16", rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x.T, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "l.npz"
    save_layer(Conv1d.from_weights(0.3 * rng.standard_normal((2, 2, 9)), padding=4), path)
    return path


@pytest.fixture
def signal_x() -> np.ndarray:
    return (0.3 * np.random.default_rng(4).standard_normal((2, 30_000))).astype(np.float32)


class _HeldFifo:
    """A FIFO fed by a thread that sends ``head``, then holds it open until released."""

    def __init__(self, path: Path, head: bytes, tail: bytes = b"") -> None:
        os.mkfifo(path)
        self.path = path
        self.opened = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._feed, args=(head, tail), daemon=True)
        self._thread.start()

    def _feed(self, head: bytes, tail: bytes) -> None:
        try:
            with open(self.path, "wb") as fh:  # returns once the reader has opened it
                self.opened.set()
                fh.write(head)
                fh.flush()
                self.release.wait(60)
                fh.write(tail)
        except BrokenPipeError:
            pass
        finally:
            self.finished.set()

    def close(self) -> None:
        self.release.set()
        self._thread.join(10)


def _read_some(stream, want: int, timeout: float) -> bytes:
    """Read until ``want`` bytes arrived or ``timeout`` passed (never blocks past it)."""
    got = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while len(got) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            got += chunk
    return got


# -- item 1: live output ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "csv"])
def test_pipe_first_block_arrives_before_the_input_ends(tmp_path, layer, signal_x, fmt):
    data = _wav_bytes(signal_x)
    cut = 44 + 4 * 4096  # the header and 4096 frames; the rest is held back
    fifo = _HeldFifo(tmp_path / "in.fifo", data[:cut], data[cut:])
    try:
        proc = subprocess.Popen(
            _cmd(
                "apply",
                "-q",
                "-w",
                layer,
                fifo.path,
                "--input-format",
                "wav",
                "-o",
                "-",
                "--output-format",
                fmt,
                "--block-size",
                1024,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        assert proc.stdout is not None
        first = _read_some(proc.stdout, 2000, timeout=30)
        assert len(first) >= 2000, proc.stderr.read() if proc.poll() is not None else ""
        assert not fifo.finished.is_set()  # the input is still open: this is live output
        fifo.release.set()
        rest, err = proc.communicate(timeout=60)
    finally:
        fifo.close()
    assert proc.returncode == 0, err
    out = first + rest
    expected = tmp_path / f"expected.{fmt}"
    (tmp_path / "in.wav").write_bytes(data)
    done = subprocess.run(
        _cmd("apply", "-q", "-w", layer, tmp_path / "in.wav", "-o", expected),
        capture_output=True,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    if fmt == "csv":
        assert out == expected.read_bytes()
    else:
        # A WAV from a pipe has no known length: FFmpeg's unknown-length sizes.
        assert out[4:8] == b"\xff\xff\xff\xff" and out[40:44] == b"\xff\xff\xff\xff"
        got, _ = sf.read(io.BytesIO(out), dtype="int16")
        want, _ = sf.read(expected, dtype="int16")
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [
        ("wav", "PCM_16"),
        ("wav", "FLOAT"),
        ("wav", "PCM_24"),
        ("csv", None),
        ("npy", None),
        ("au", "PCM_16"),
    ],
)
def test_pipe_output_equals_the_file_output(tmp_path, layer, signal_x, fmt, subtype):
    src = tmp_path / "in.wav"
    src.write_bytes(_wav_bytes(signal_x))
    options = ["--subtype", subtype] if subtype else []
    target = tmp_path / f"file.{fmt}"
    args = ["apply", "-q", "-w", layer, src, "--output-format", fmt, *options]
    done = subprocess.run(_cmd(*args, "-o", target), capture_output=True, env=_env())
    assert done.returncode == 0, done.stderr
    piped = subprocess.run(_cmd(*args, "-o", "-"), capture_output=True, env=_env())
    assert piped.returncode == 0, piped.stderr
    out = piped.stdout
    if fmt in ("csv", "npy"):
        assert out == target.read_bytes()
        if fmt == "npy":
            np.testing.assert_array_equal(np.load(io.BytesIO(out)), np.load(target))
        return
    with sf.SoundFile(io.BytesIO(out)) as got, sf.SoundFile(target) as want:
        assert (got.samplerate, got.channels, got.subtype) == (8000, 2, subtype)
        assert got.frames == want.frames == signal_x.shape[1]
        np.testing.assert_array_equal(got.read(dtype="float64"), want.read(dtype="float64"))
    if fmt == "wav":
        # Known length (a file input): the true sizes, as SoX writes on a pipe.
        assert struct.unpack("<I", out[4:8])[0] == len(out) - 8
        data_at = out.index(b"data") + 8
        assert struct.unpack("<I", out[data_at - 4 : data_at])[0] == len(out) - data_at


def test_pipe_wav_with_known_length_tells_a_truncated_stream(tmp_path, layer, signal_x):
    src = tmp_path / "in.wav"
    src.write_bytes(_wav_bytes(signal_x))
    piped = subprocess.run(
        _cmd("apply", "-q", "-w", layer, src, "-o", "-"), capture_output=True, env=_env()
    )
    assert piped.returncode == 0, piped.stderr
    out = piped.stdout
    data_at = out.index(b"data") + 8
    announced = struct.unpack("<I", out[data_at - 4 : data_at])[0]
    assert announced == len(out) - data_at == signal_x.size * 2
    cut = out[: len(out) // 2]
    assert len(cut) - data_at < announced  # what a reader checks: fewer bytes than declared


def test_pipe_unknown_length_wav_reads_back_through_libsndfile_from_a_pipe(
    tmp_path, layer, signal_x
):
    data = _wav_bytes(signal_x, "FLOAT")
    proc = subprocess.run(
        _cmd("apply", "-q", "-w", layer, "-", "--input-format", "wav", "-o", "-"),
        input=data,
        capture_output=True,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    read_end, write_end = os.pipe()

    def feed() -> None:
        with open(write_end, "wb") as fh:
            fh.write(proc.stdout)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with sf.SoundFile(read_end, closefd=True) as f:  # a pipe: libsndfile cannot seek
        blocks = []
        while True:
            block = f.read(4096, dtype="float32")
            if not len(block):
                break
            blocks.append(block)
    feeder.join()
    got = np.concatenate(blocks).T
    assert got.shape == signal_x.shape
    (tmp_path / "in.wav").write_bytes(data)
    expected = tmp_path / "out.wav"
    subprocess.run(
        _cmd("apply", "-q", "-w", layer, tmp_path / "in.wav", "-o", expected),
        check=True,
        env=_env(),
    )
    np.testing.assert_array_equal(got, sf.read(expected, dtype="float32")[0].T)


def test_pipe_error_mid_stream_cuts_it_short_with_one_error_line(tmp_path):
    x = np.full((1, 20_000), 0.25)
    x[0, 15_000:] = 2.0  # out of PCM_16 range from sample 15000 on
    src = tmp_path / "in.wav"
    sf.write(src, x.T, 8000, subtype="FLOAT")
    identity = tmp_path / "id.npz"
    save_layer(Conv1d.from_weights(np.ones((1, 1, 1))), identity)
    proc = subprocess.run(
        _cmd(
            "apply",
            "-w",
            identity,
            src,
            "-o",
            "-",
            "--subtype",
            "PCM_16",
            "--on-clip",
            "error",
            "--block-size",
            1024,
        ),
        capture_output=True,
        env=_env(),
    )
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert err.count("Error:") == 1 and "sample 15000" in err and "Traceback" not in err
    assert "the output stops here" in err
    out = proc.stdout
    assert out[:4] == b"RIFF" and len(out) - 44 < 20_000 * 2  # cut short: header says more
    assert struct.unpack("<I", out[40:44])[0] == 20_000 * 2
    assert len(out) - 44 >= 14_000 * 2  # the blocks before the error went out


@pytest.mark.parametrize("fmt", ["wav", "npy"])
def test_pipe_writer_that_falls_short_of_its_header_fails(tmp_path, fmt):
    """The header sent ahead promised 10 frames: closing after 5 is an error, not success.

    (libsndfile counts only the frames a cut input file holds, so through the CLI this
    is a safety net; here the writer is driven directly.)
    """
    from conv1d_cli.errors import DataFileError
    from conv1d_cli.io.outputs import open_writer

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    writer = open_writer(fifo, format=fmt, channels=1, sample_rate=8000, frames=10)
    assert writer.live
    writer.write(np.zeros((1, 5)))
    with pytest.raises(DataFileError, match="5 frames were written but the header sent ahead"):
        writer.close()
    reader.join(10)
    # the header and the 5 frames only (WAV: FLOAT, 32 bits, so the extensible header)
    assert got and len(got[0]) == {"wav": 68 + 5 * 4, "npy": 256 + 5 * 8}[fmt]


def test_pipe_flac_keeps_the_spool_and_apply_help_says_so():
    text = " ".join(
        subprocess.run(_cmd("apply", "--help"), capture_output=True, env=_env(), check=True)
        .stdout.decode()
        .split()
    )
    assert "must seek (FLAC" in text and "spooled" in text and "streamed as it is computed" in text
    assert "141" in text


# -- item 2: a reader that stops early ----------------------------------------------


def test_apply_reader_that_stops_early_exits_141_at_once(tmp_path, layer):
    x = (0.1 * np.random.default_rng(1).standard_normal((2, 2_000_000))).astype(np.float32)
    src = tmp_path / "long.wav"
    sf.write(src, x.T, 8000, subtype="FLOAT")
    start = time.monotonic()
    proc = subprocess.Popen(
        _cmd("apply", "-w", layer, src, "-o", "-", "--output-format", "csv", "--method", "direct"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert len(_read_some(proc.stdout, 100, timeout=30)) >= 100
    proc.stdout.close()  # `| head -c 100`
    err = proc.stderr.read()
    proc.stderr.close()
    proc.wait(timeout=60)
    assert proc.returncode == 141, err
    assert err == b""
    # Filtering all 2e6 frames to CSV takes far longer than stopping does.
    assert time.monotonic() - start < 20


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "{src}"],
        ["shape", "--length", "100", "--kernel-size", "3"],
        ["apply", "-w", "{layer}", "{src}", "-o", "-", "--output-format", "flac"],  # spooled
        ["apply", "-w", "{layer}", "{src}", "-o", "-"],
    ],
    ids=["inspect", "shape", "apply-flac", "apply-wav"],
)
def test_reader_gone_before_the_write_is_141_without_a_message(tmp_path, layer, signal_x, args):
    src = tmp_path / "in.wav"
    src.write_bytes(_wav_bytes(signal_x))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        proc = subprocess.run(
            _cmd(*(a.format(src=src, layer=layer) for a in args)),
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_env(),
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == b""


def test_reader_gone_on_a_file_output_changes_nothing(tmp_path, layer, signal_x):
    src = tmp_path / "in.wav"
    src.write_bytes(_wav_bytes(signal_x))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            _cmd("apply", "-q", "-w", layer, src, "-o", tmp_path / "out.wav"),
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=_env(),
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert sf.info(str(tmp_path / "out.wav")).frames == signal_x.shape[1]


def test_stdout_closed_before_the_run_stays_an_error(tmp_path, layer, signal_x):
    src = tmp_path / "in.wav"
    src.write_bytes(_wav_bytes(signal_x))
    proc = subprocess.run(
        ["sh", "-c", '"$@" >&-', "sh", *_cmd("apply", "-w", layer, src, "-o", "-")],
        capture_output=False,
        stderr=subprocess.PIPE,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("Error: -o -: stdout is closed")


# -- item 3: signals -----------------------------------------------------------------


def _fifo_command(kind: str, fifo: Path, tmp_path: Path, layer: Path) -> tuple[list[str], str]:
    """A command of each kind that blocks reading ``fifo``, and its signal note."""
    if kind == "apply":
        return _cmd(
            "apply", "-w", layer, fifo, "--input-format", "wav", "-o", tmp_path / "out.wav"
        ), "; nothing was written"
    if kind == "apply-pipe":
        return _cmd("apply", "-w", layer, fifo, "--input-format", "wav", "-o", "-"), (
            "; the output on stdout stops where it was"
        )
    if kind == "inspect":
        return _cmd("inspect", fifo, "--input-format", "wav"), ""
    if kind == "shape":
        return _cmd("shape", "-w", layer, fifo, "--input-format", "csv"), ""
    assert kind == "init"
    return _cmd("init", tmp_path / "new.npz", "--coefficients", fifo), "; nothing was written"


@pytest.mark.parametrize("kind", ["apply", "apply-pipe", "inspect", "shape", "init"])
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_is_one_error_line_and_128_plus_n(tmp_path, layer, signal_x, kind, signame):
    signum = getattr(signal, signame)
    head = (
        _wav_bytes(signal_x)[: 44 + 4 * 2048]
        if kind.startswith(("apply", "inspect"))
        else b"0.5\n0.25\n" * 100
    )
    name = "in.fifo" if kind.startswith(("apply", "inspect")) else "in.csv"
    fifo = _HeldFifo(tmp_path / name, head)
    cmd, note = _fifo_command(kind, fifo.path, tmp_path, layer)
    # stdout a pipe: apply's output there is live, so a signal cuts it short
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        assert fifo.opened.wait(30), "the command never opened its input"
        time.sleep(0.5)  # let it read what is there and block for more
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        fifo.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    verb = "interrupted" if signame == "SIGINT" else "terminated"
    assert err.decode() == f"Error: {verb} ({signame}){note}\n"
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == sorted([name, "l.npz"])


def test_ctrl_c_on_a_terminal_is_one_error_line(tmp_path, layer, signal_x):
    # A real Ctrl-C: the command runs on a pseudo-terminal that is its controlling
    # terminal, and ^C typed there makes the terminal driver send SIGINT to it.
    import pty
    import select

    fifo = _HeldFifo(tmp_path / "in.fifo", _wav_bytes(signal_x)[: 44 + 4 * 2048])
    cmd = _cmd("apply", "-w", layer, fifo.path, "--input-format", "wav", "-o", tmp_path / "o.wav")
    pid, master = pty.fork()
    if pid == 0:  # the child: the pty is its stdin, stdout, stderr and controlling terminal
        try:
            os.execve(cmd[0], cmd, _env())
        finally:
            os._exit(127)
    seen = b""
    try:
        assert fifo.opened.wait(30), "the command never opened its input"
        time.sleep(0.5)  # let it read what is there and block for more
        os.write(master, b"\x03")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
        done, status = os.waitpid(pid, os.WNOHANG)
        wait_until = time.monotonic() + 10  # the terminal closes just before the exit
        while not done and time.monotonic() < wait_until:
            time.sleep(0.05)
            done, status = os.waitpid(pid, os.WNOHANG)
        if not done:  # ^C did nothing: fail instead of hanging on the held FIFO
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    finally:
        fifo.close()
        os.close(master)
    assert os.waitstatus_to_exitcode(status) == 130, seen
    text = seen.decode(errors="replace").replace("\r\n", "\n")
    assert "Error: interrupted (SIGINT); nothing was written" in text, text
    assert "Traceback" not in text and "Aborted!" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fifo", "l.npz"]
