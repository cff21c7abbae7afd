"""`conv1d apply`: formats, chains, batch runs, pipes, and every bad input of issue 5."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conv1d_cli.cli import cli
from conv1d_cli.core import conv1d
from conv1d_cli.errors import DataFileError
from conv1d_cli.io import base
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d

ROOT = Path(__file__).resolve().parent.parent
RATE = 8000


# -- helpers -----------------------------------------------------------------------------


def _run(*args: object, input: bytes | None = None):
    return CliRunner().invoke(cli, ["apply", *map(str, args)], input=input)


def _layer_file(path: Path, weight, bias=None, **kw) -> Path:
    save_layer(Conv1d.from_weights(np.asarray(weight), bias, **kw), path, overwrite=True)
    return path


def _wav(path: Path, x: np.ndarray, subtype: str = "FLOAT", rate: int = RATE) -> Path:
    sf.write(path, x.T, rate, subtype=subtype)
    return path


def _whole(path: Path, x: np.ndarray) -> np.ndarray:
    from conv1d_cli.layer import load_layer

    layer = load_layer(path)
    return conv1d(
        x.astype(np.float64),
        layer.weight.astype(np.float64),
        None if layer.bias is None else layer.bias.astype(np.float64),
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
        layer.padding_mode,
        method="direct",
    )


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def _assert_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.stdout == ""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def stereo(tmp_path, rng):
    x = (0.3 * rng.standard_normal((2, 3000))).astype(np.float32)
    return _wav(tmp_path / "in.wav", x), x


@pytest.fixture
def smooth(tmp_path, rng):
    w = rng.standard_normal((2, 1, 9)) / 9
    return _layer_file(tmp_path / "smooth.npz", w, groups=2, padding="same")


# -- happy paths -------------------------------------------------------------------------


def test_apply_wav_matches_whole_signal_and_keeps_subtype(tmp_path, stereo, smooth):
    path, x = stereo
    out = tmp_path / "out.wav"
    result = _run("-w", smooth, path, "-o", out, "--block-size", 256)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    y, rate = sf.read(out, always_2d=True)
    assert rate == RATE and sf.info(out).subtype == "FLOAT"
    np.testing.assert_allclose(y.T, _whole(smooth, x), atol=1e-6)
    assert _leftovers(tmp_path, {"in.wav", "out.wav", "smooth.npz"}) == []


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_apply_streamed_equals_whole_every_padding_mode(tmp_path, rng, mode):
    x = rng.standard_normal((3, 200))
    np.save(tmp_path / "x.npy", x)
    layer = _layer_file(
        tmp_path / "l.npz",
        rng.standard_normal((2, 3, 6)),
        rng.standard_normal(2),
        padding=(4, 3),
        padding_mode=mode,
        dilation=2,
    )
    for block in (1, 7, 64, 1000):
        result = _run(
            "-w",
            layer,
            tmp_path / "x.npy",
            "-o",
            tmp_path / "y.npy",
            "--block-size",
            block,
            "--method",
            "direct",
        )
        assert result.exit_code == 0, result.stderr
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), _whole(layer, x), atol=1e-12)


def test_apply_npy_batch_stays_batch(tmp_path, rng):
    x = rng.standard_normal((4, 2, 50))
    np.save(tmp_path / "b.npy", x)
    layer = _layer_file(tmp_path / "l.npz", rng.standard_normal((3, 2, 5)), stride=2)
    result = _run("-w", layer, tmp_path / "b.npy", "-o", tmp_path / "o.npy", "--block-size", 8)
    assert result.exit_code == 0, result.stderr
    y = np.load(tmp_path / "o.npy")
    assert y.shape == (4, 3, 23)
    np.testing.assert_allclose(y, _whole(layer, x), atol=1e-12)


def test_apply_csv_keeps_header_names_when_channels_map(tmp_path, rng):
    csv = tmp_path / "acc.csv"
    csv.write_text("# recorded 2024\nax,ay\n" + "".join(f"{i},{-i * 0.5}\n" for i in range(20)))
    same = _layer_file(tmp_path / "same.npz", np.ones((2, 1, 3)) / 3, groups=2, padding=1)
    mix = _layer_file(tmp_path / "mix.npz", np.ones((3, 2, 1)))
    assert _run("-w", same, csv, "-o", tmp_path / "o.csv").exit_code == 0
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[0] == "ax,ay" and len(lines) == 21
    assert lines[2] == "1.0,-0.5"
    assert _run("-w", mix, csv, "-o", tmp_path / "m.csv").exit_code == 0
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == "ch0,ch1,ch2"


def test_apply_chain_and_output_sample_rate(tmp_path, stereo, smooth):
    path, x = stereo
    down = _layer_file(tmp_path / "down.npz", np.ones((1, 2, 4)) / 8, stride=4)
    result = _run("-w", smooth, "-w", down, path, "-o", tmp_path / "o.wav")
    assert result.exit_code == 0, result.stderr
    y, rate = sf.read(tmp_path / "o.wav", always_2d=True)
    assert rate == RATE // 4 and y.shape == (750, 1)
    # 8000 / 3 is not a whole rate: refused unless --sample-rate says what to write.
    third = _layer_file(tmp_path / "third.npz", np.ones((2, 2, 3)), stride=3)
    _assert_error(_run("-w", third, path, "-o", tmp_path / "t.wav"), 1, "in.wav", "--sample-rate")
    assert not (tmp_path / "t.wav").exists()
    result = _run("-w", third, path, "-o", tmp_path / "t.wav", "--sample-rate", 2667)
    assert result.exit_code == 0, result.stderr
    assert sf.info(tmp_path / "t.wav").samplerate == 2667


def test_apply_output_dir_many_inputs_jobs(tmp_path, rng, smooth):
    ins = tmp_path / "in"
    ins.mkdir()
    for i in range(4):
        _wav(ins / f"take{i}.wav", rng.standard_normal((2, 500)).astype(np.float32) * 0.1)
    out = tmp_path / "out"
    result = _run("-w", smooth, *sorted(ins.iterdir()), "-d", out, "--jobs", 2)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"take{i}.wav" for i in range(4)]
    result = _run("-w", smooth, ins / "take0.wav", "-d", out, "--output-format", "flac")
    assert result.exit_code == 0, result.stderr
    assert sf.info(out / "take0.flac").format == "FLAC"


def test_apply_keep_going_reports_all_failures(tmp_path, rng, smooth):
    good = _wav(tmp_path / "good.wav", rng.standard_normal((2, 400)).astype(np.float32) * 0.1)
    bad1 = tmp_path / "bad1.wav"
    bad1.write_bytes(b"not audio at all")
    bad2 = tmp_path / "bad2.wav"
    bad2.write_bytes(b"")
    out = tmp_path / "out"
    for jobs in (1, 2):
        shutil.rmtree(out, ignore_errors=True)
        result = _run("-w", smooth, bad1, good, bad2, "-d", out, "--keep-going", "-j", jobs)
        assert result.exit_code == 1
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 3, result.stderr
        assert "bad1.wav" in errors[0] or "bad1.wav" in errors[1]
        assert "2 of 3 inputs failed" in errors[-1]
        assert sorted(p.name for p in out.iterdir()) == ["good.wav"]
    # Without --keep-going the first failure stops the run.
    shutil.rmtree(out)
    result = _run("-w", smooth, bad1, good, "-d", out)
    _assert_error(result, 1, "bad1.wav")
    assert list(out.iterdir()) == []


def test_apply_clip_warning_quiet_and_policies(tmp_path, rng):
    x = (0.6 * rng.standard_normal((1, 2000))).astype(np.float32)
    pcm = _wav(tmp_path / "pcm.wav", x, subtype="PCM_16")
    gain = _layer_file(tmp_path / "gain.npz", np.full((1, 1, 1), 4.0))
    out = tmp_path / "o.wav"
    result = _run("-w", gain, pcm, "-o", out)
    assert result.exit_code == 0
    assert sf.info(out).subtype == "PCM_16"
    assert result.stderr.startswith(f"warning: {out}: clipped ")
    assert "samples" in result.stderr
    for extra in (["-q"], ["--on-clip", "clip"]):
        result = _run("-w", gain, pcm, "-o", out, *extra)
        assert result.exit_code == 0 and result.stderr == ""
    out.unlink()
    result = _run("-w", gain, pcm, "-o", out, "--on-clip", "error")
    _assert_error(result, 1)
    assert _leftovers(tmp_path, {"pcm.wav", "gain.npz"}) == []


def test_apply_nonfinite_input(tmp_path, smooth):
    x = np.zeros((2, 100))
    x[1, 42] = np.nan
    np.save(tmp_path / "x.npy", x)
    result = _run("-w", smooth, tmp_path / "x.npy", "-o", tmp_path / "y.npy", "--block-size", 16)
    _assert_error(result, 1, "x.npy", "channel 1, sample 42", "--allow-nonfinite")
    assert not (tmp_path / "y.npy").exists()
    result = _run("-w", smooth, tmp_path / "x.npy", "-o", tmp_path / "y.npy", "--allow-nonfinite")
    assert result.exit_code == 0
    assert np.isnan(np.load(tmp_path / "y.npy")).any()


def test_apply_overrides_for_plain_weights(tmp_path, rng):
    x = rng.standard_normal((1, 40))
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "plain.npz", weight=np.ones((1, 1, 4)))
    result = _run(
        "-w",
        tmp_path / "plain.npz",
        tmp_path / "x.npy",
        "-o",
        tmp_path / "y.npy",
        "--padding",
        "3,0",
        "--stride",
        "2",
        "--padding-mode",
        "replicate",
    )
    assert result.exit_code == 0, result.stderr
    expected = conv1d(x, np.ones((1, 1, 4)), stride=2, padding=(3, 0), padding_mode="replicate")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected)


@pytest.mark.parametrize("block", [None, 3, 100_000_000])
def test_apply_reads_blocks_of_the_size_asked_never_more(
    tmp_path, stereo, smooth, monkeypatch, block
):
    """--block-size is latency on a pipe: every read asks for exactly that many frames."""
    path, _ = stereo
    asked = []
    real_read = base.SignalReader.read

    def read(self, frames):
        asked.append(frames)
        return real_read(self, frames)

    monkeypatch.setattr(base.SignalReader, "read", read)
    extra = [] if block is None else ["--block-size", block]
    result = _run("-w", smooth, path, "-o", tmp_path / "out.wav", *extra)
    assert result.exit_code == 0, result.stderr
    assert set(asked) == {1 << 17 if block is None else block}


def test_apply_atomic_on_error_mid_write(tmp_path, stereo, smooth, monkeypatch):
    path, _ = stereo
    real_write = base.SignalWriter.write
    calls = []

    def failing_write(self, block):
        calls.append(block.shape)
        if len(calls) > 1:
            raise DataFileError("disk on fire")
        real_write(self, block)

    monkeypatch.setattr(base.SignalWriter, "write", failing_write)
    result = _run("-w", smooth, path, "-o", tmp_path / "out.wav", "--block-size", 100)
    _assert_error(result, 1, "disk on fire")
    assert len(calls) == 2
    assert _leftovers(tmp_path, {"in.wav", "smooth.npz"}) == []


# -- bad input ---------------------------------------------------------------------------


def test_apply_bad_input_files(tmp_path, rng, smooth):
    wav = _wav(tmp_path / "ok.wav", rng.standard_normal((2, 300)).astype(np.float32) * 0.1)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(wav.read_bytes()[:30])
    fake = tmp_path / "fake.wav"
    fake.write_text("this is a text file, not audio\n")
    unknown = tmp_path / "data.xyz"
    unknown.write_text("1,2\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n4,5\n")
    words = tmp_path / "words.csv"
    words.write_text("a,b\n1,2\n3,x\n")
    cases = [
        (tmp_path / "missing.wav", 1, "missing.wav"),
        (truncated, 1, "truncated.wav"),
        (fake, 1, "fake.wav"),
        (unknown, 2, "data.xyz"),
        (empty, 1, "empty.wav"),
        (header_only, 1, "header.csv"),
        (ragged, 1, "ragged.csv"),
        (words, 1, "words.csv"),
    ]
    keep = {p.name for p in tmp_path.iterdir()}
    for source, code, name in cases:
        out = tmp_path / ("out.csv" if source.suffix == ".csv" else "out.wav")
        result = _run("-w", smooth, source, "-o", out)
        _assert_error(result, code, name)
        assert _leftovers(tmp_path, keep) == [], source


def test_apply_channel_mismatch(tmp_path, rng, smooth):
    mono = _wav(tmp_path / "mono.wav", rng.standard_normal((1, 300)).astype(np.float32) * 0.1)
    result = _run("-w", smooth, mono, "-o", tmp_path / "o.wav")
    _assert_error(result, 1, "mono.wav", "1 channel", "expects 2 input channels")
    assert not (tmp_path / "o.wav").exists()


def test_apply_signal_shorter_than_kernel_says_min_length(tmp_path, rng):
    short = _wav(tmp_path / "short.wav", rng.standard_normal((1, 5)).astype(np.float32) * 0.1)
    valid = _layer_file(tmp_path / "valid.npz", np.ones((1, 1, 9)), padding="valid")
    result = _run("-w", valid, short, "-o", tmp_path / "o.wav")
    _assert_error(result, 1, "short.wav", "5 samples", "at least 9")
    # The same from a pipe (length unknown up front).
    data = short.read_bytes()
    result = _run("-w", valid, "-", "--input-format", "wav", "-o", tmp_path / "o.wav", input=data)
    _assert_error(result, 1, "at least 9")
    assert not (tmp_path / "o.wav").exists()


def test_apply_reflect_padding_larger_than_signal(tmp_path, rng):
    short = _wav(tmp_path / "short.wav", rng.standard_normal((1, 4)).astype(np.float32) * 0.1)
    layer = _layer_file(tmp_path / "r.npz", np.ones((1, 1, 11)), padding=5, padding_mode="reflect")
    result = _run("-w", layer, short, "-o", tmp_path / "o.wav")
    _assert_error(
        result, 1, "short.wav", "padding (5, 5)", "reflect padding must be smaller", "at least 6"
    )
    assert not (tmp_path / "o.wav").exists()


def test_apply_chain_mismatch_shows_shapes(tmp_path, stereo, smooth):
    path, _ = stereo
    three = _layer_file(tmp_path / "three.npz", np.ones((1, 3, 3)))
    result = _run("-w", smooth, "-w", three, path, "-o", tmp_path / "o.wav")
    _assert_error(result, 1, "layer 2", "three.npz", "expects 3", "produces 2", "-> 2 ->")


def test_apply_invocation_errors(tmp_path, stereo, smooth):
    path, _ = stereo
    other = _wav(tmp_path / "other.wav", np.zeros((2, 50), np.float32))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    _assert_error(_run("-w", smooth, path, other, "-o", tmp_path / "o.wav"), 2, "-o")
    _assert_error(_run("-w", smooth, path, "-d", a_file), 2, "file.txt", "not a directory")
    _assert_error(_run("-w", smooth, path), 2, "-o")
    _assert_error(_run("-w", smooth, path, "-o", tmp_path / "x.wav", "-d", tmp_path), 2)
    _assert_error(_run("-w", smooth, path, "-o", tmp_path), 2, "directory")
    _assert_error(_run("-w", smooth, "-", "-d", tmp_path / "d"), 2, "stdin")
    _assert_error(
        _run("-w", tmp_path / "nolayer.npz", path, "-o", tmp_path / "o.wav"), 1, "nolayer.npz"
    )
    assert not (tmp_path / "o.wav").exists()


def test_apply_refuses_output_equal_to_input(tmp_path, stereo, smooth):
    path, _ = stereo
    before = path.read_bytes()
    _assert_error(_run("-w", smooth, path, "-o", path), 2, "same file")
    link = tmp_path / "link.wav"
    link.symlink_to(path)
    _assert_error(_run("-w", smooth, path, "-o", link), 2, "same file")
    spelled = tmp_path / "sub" / ".." / "in.wav"
    (tmp_path / "sub").mkdir()
    _assert_error(_run("-w", smooth, path, "-o", spelled), 2, "same file")
    # -d into the input's own folder would overwrite it too.
    _assert_error(_run("-w", smooth, path, "-d", tmp_path), 2, "same file")
    assert path.read_bytes() == before


def test_apply_unwritable_output_location(tmp_path, stereo, smooth):
    path, _ = stereo
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    # A directory under a regular file cannot be created or written, even by root.
    _assert_error(_run("-w", smooth, path, "-o", a_file / "o.wav"), 1, "o.wav")
    _assert_error(_run("-w", smooth, path, "-d", a_file / "sub"), 1, "sub")
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            _assert_error(_run("-w", smooth, path, "-d", ro), 1, "ro")
            assert list(ro.iterdir()) == []
        finally:
            ro.chmod(0o700)


def test_apply_circular_from_pipe_falls_back_to_whole_signal(tmp_path, rng):
    x = rng.standard_normal((1, 300)).astype(np.float32) * 0.1
    wav = _wav(tmp_path / "c.wav", x)
    layer = _layer_file(
        tmp_path / "c.npz", rng.standard_normal((1, 1, 7)), padding=3, padding_mode="circular"
    )
    result = _run(
        "-w",
        layer,
        "-",
        "--input-format",
        "wav",
        "-o",
        tmp_path / "o.wav",
        "--block-size",
        32,
        input=wav.read_bytes(),
    )
    assert result.exit_code == 0, result.stderr
    y, _ = sf.read(tmp_path / "o.wav", always_2d=True)
    np.testing.assert_allclose(y.T, _whole(layer, x), atol=1e-6)


# -- real processes ----------------------------------------------------------------------


def _cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "conv1d_cli", "apply", *map(str, args)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_apply_subprocess_pipe_in_and_out(tmp_path, stereo, smooth):
    path, _ = stereo
    subprocess.run(_cmd("-w", smooth, path, "-o", tmp_path / "file.wav"), check=True, env=_env())
    with open(path, "rb") as src, open(tmp_path / "pipe.wav", "wb") as dst:
        cat = subprocess.Popen(["cat"], stdin=src, stdout=subprocess.PIPE)
        proc = subprocess.run(
            _cmd("-w", smooth, "-", "--input-format", "wav", "-o", "-", "--output-format", "wav"),
            stdin=cat.stdout,
            stdout=dst,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        cat.wait()
        assert cat.stdout is not None
        cat.stdout.close()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    a, _ = sf.read(tmp_path / "file.wav")
    b, _ = sf.read(tmp_path / "pipe.wav")
    np.testing.assert_array_equal(a, b)


def test_apply_subprocess_csv_pipe_and_error_exit(tmp_path, smooth):
    csv = "l,r\n" + "".join(f"{i},{i % 3}\n" for i in range(30))
    proc = subprocess.run(
        _cmd("-w", smooth, "-", "--input-format", "csv", "-o", "-"),
        input=csv.encode(),
        capture_output=True,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0] == "l,r" and len(lines) == 31
    proc = subprocess.run(
        _cmd("-w", smooth, "-", "--input-format", "csv", "-o", "-"),
        input=b"l,r\n1,2\n3\n",
        capture_output=True,
        env=_env(),
    )
    assert proc.returncode == 1 and proc.stdout == b""
    assert proc.stderr.decode().startswith("Error: ") and b"Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "signame",
    [
        "SIGTERM",  # kill, timeout, make on error
        pytest.param(
            "SIGHUP",  # closed terminal, dropped ssh session
            marks=pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP"),
        ),
        "SIGINT",  # Ctrl-C: 130, not Click's "Aborted!" with 1
    ],
)
def test_apply_subprocess_signal_exits_128_plus_n_and_leaves_nothing(tmp_path, rng, signame):
    signum = getattr(signal, signame)
    x = rng.standard_normal((2, 400_000)).astype(np.float32) * 0.1
    src = _wav(tmp_path / "long.wav", x)
    layer = _layer_file(tmp_path / "l.npz", rng.standard_normal((2, 2, 64)))
    proc = subprocess.Popen(
        _cmd(
            "-w", layer, src, "-o", tmp_path / "out.wav", "--method", "direct", "--block-size", 64
        ),
        stderr=subprocess.PIPE,
        env=_env(),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        p.name.startswith(".out.") for p in tmp_path.iterdir()
    ):
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err
    assert b"Traceback" not in err
    assert _leftovers(tmp_path, {"long.wav", "l.npz"}) == []


def test_apply_subprocess_flac_from_pipe_is_refused_clearly(tmp_path, stereo, smooth):
    path, x = stereo
    flac = tmp_path / "x.flac"
    sf.write(flac, x.T, RATE, subtype="PCM_16")
    with open(flac, "rb") as src:
        cat = subprocess.Popen(["cat"], stdin=src, stdout=subprocess.PIPE)
        proc = subprocess.run(
            _cmd("-w", smooth, "-", "--input-format", "flac", "-o", tmp_path / "o.wav"),
            stdin=cat.stdout,
            capture_output=True,
            env=_env(),
        )
        cat.wait()
        assert cat.stdout is not None
        cat.stdout.close()
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("Error: <stdin>: FLAC cannot be read from a pipe")
    assert not (tmp_path / "o.wav").exists()


def test_apply_warns_when_layer_was_designed_for_another_rate(tmp_path, stereo, rng):
    path, _ = stereo
    layer = Conv1d.from_weights(np.ones((2, 1, 3)) / 3, groups=2, padding="same")
    layer.sample_rate = 48000.0
    save_layer(layer, tmp_path / "l48k.npz")
    result = _run("-w", tmp_path / "l48k.npz", path, "-o", tmp_path / "o.wav")
    assert result.exit_code == 0
    layer_name = tmp_path / "l48k.npz"
    expected = f"warning: {layer_name} was designed for 48000 Hz but gets 8000 Hz from {path}\n"
    assert result.stderr == expected
    result = _run("-w", tmp_path / "l48k.npz", path, "-o", tmp_path / "o.wav", "-q")
    assert result.exit_code == 0 and result.stderr == ""


def test_apply_example_makefile_batch_filters_folder(tmp_path, rng, smooth):
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    src = tmp_path / "raw"
    src.mkdir()
    for name in ("a", "b", "c"):
        _wav(src / f"{name}.wav", rng.standard_normal((2, 300)).astype(np.float32) * 0.1)
    out = tmp_path / "filtered"
    args = [
        make,
        "-s",
        "-f",
        str(ROOT / "examples" / "Makefile"),
        "-j2",
        f"IN={src}",
        f"OUT={out}",
        f"LAYER={smooth}",
        f"CONV1D={sys.executable} -m conv1d_cli",
    ]
    subprocess.run(args, check=True, env=_env(), capture_output=True)
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "c.wav"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    subprocess.run(args, check=True, env=_env(), capture_output=True)  # up to date: no work
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_apply_csv_to_wav_takes_the_layers_design_rate(tmp_path, rng):
    src = tmp_path / "acc.csv"
    src.write_text(
        "a,b\n" + "".join(f"{u},{v}\n" for u, v in rng.standard_normal((40, 2)).tolist())
    )
    layer = Conv1d.from_weights(np.full((2, 1, 3), 1 / 3), groups=2, padding="same")
    layer.sample_rate = 100.0
    save_layer(layer, tmp_path / "l.npz")
    result = _run("-w", tmp_path / "l.npz", src, "-o", tmp_path / "out.wav")
    assert result.exit_code == 0, result.stderr
    info = sf.info(str(tmp_path / "out.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (100, 2, 40, "FLOAT")


def test_apply_csv_to_wav_without_any_rate_says_to_give_one(tmp_path):
    src = tmp_path / "acc.csv"
    src.write_text("1\n2\n3\n4\n")
    layer = _layer_file(tmp_path / "l.npz", np.ones((1, 1, 2)))
    result = _run("-w", layer, src, "-o", tmp_path / "out.wav")
    # Exit 1: the input lacks the rate (a WAV input would work), see apply --help.
    _assert_error(result, 1, "acc.csv", "no sample rate", "--sample-rate")
    assert _leftovers(tmp_path, {"acc.csv", "l.npz"}) == []


def test_apply_wav_to_flac_keeps_pcm16(tmp_path, rng):
    x = np.round(rng.uniform(-0.5, 0.5, (2, 300)) * 32768) / 32768
    src = _wav(tmp_path / "in.wav", x, subtype="PCM_16")
    layer = _layer_file(tmp_path / "l.npz", np.eye(2)[:, :, None])
    result = _run("-w", layer, src, "-o", tmp_path / "out.flac")
    assert result.exit_code == 0, result.stderr
    assert sf.info(str(tmp_path / "out.flac")).subtype == "PCM_16"
    np.testing.assert_array_equal(sf.read(tmp_path / "out.flac", always_2d=True)[0].T, x)


def _stderr_on_a_terminal(args: list[str]) -> str:
    """Run apply with stderr on a pseudo-terminal; return what the terminal showed."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            _cmd(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=_env(),
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 0, b"".join(chunks)
    return b"".join(chunks).decode(errors="replace")


def test_apply_progress_bar_only_on_a_terminal_and_not_with_quiet(tmp_path, stereo, smooth):
    path, _ = stereo
    shown = _stderr_on_a_terminal(
        ["-w", smooth, path, "-o", tmp_path / "a.wav", "--block-size", 64]
    )
    assert "filtering" in shown and "100%" in shown
    quiet = ["-w", smooth, path, "-o", tmp_path / "b.wav", "--block-size", 64, "-q"]
    assert _stderr_on_a_terminal(quiet) == ""
    piped = subprocess.run(
        _cmd("-w", smooth, path, "-o", tmp_path / "c.wav"), capture_output=True, env=_env()
    )
    assert piped.returncode == 0 and piped.stderr == b""


# -- review fixes ------------------------------------------------------------------------


def test_apply_refuses_output_equal_to_a_layer_file(tmp_path, stereo, smooth):
    path, _ = stereo
    before = smooth.read_bytes()
    result = _run("-w", smooth, path, "-o", smooth, "--output-format", "npy")
    _assert_error(result, 2, "same file as layer", str(smooth))
    # -d writing <stem>.npz next to the layer is refused too.
    src = tmp_path / "sub" / (smooth.stem + ".wav")
    src.parent.mkdir()
    shutil.copy(path, src)
    result = _run("-w", smooth, src, "-d", smooth.parent, "--output-format", "npz")
    _assert_error(result, 2, "same file as layer")
    assert smooth.read_bytes() == before


@pytest.mark.parametrize(
    ("rate", "needle"),
    [
        ("1e12", "at most 2147483647 Hz"),
        # inf and nan are not frequencies at all (FrequencyType, item 9 of issue 13)
        ("inf", "expected a frequency such as 48000, 44.1k"),
        ("nan", "expected a frequency such as 48000, 44.1k"),
        ("0", "positive number of Hz"),
        ("-8000", "positive number of Hz"),
        ("44100.5", "whole number of Hz for audio output"),
    ],
)
def test_apply_sample_rate_option_is_checked_once_clearly(tmp_path, stereo, smooth, rate, needle):
    path, _ = stereo
    result = _run("-w", smooth, path, "-o", tmp_path / "big.wav", "--sample-rate", rate)
    _assert_error(result, 2, "--sample-rate", needle)
    assert _leftovers(tmp_path, {"in.wav", "smooth.npz"}) == []


def test_apply_fractional_sample_rate_is_fine_for_csv(tmp_path, stereo, smooth):
    path, _ = stereo
    result = _run("-w", smooth, path, "-o", tmp_path / "o.csv", "--sample-rate", "44100.5")
    assert result.exit_code == 0, result.stderr


def test_apply_layer_design_rate_too_big_for_audio_is_a_data_error(tmp_path):
    src = tmp_path / "acc.csv"
    src.write_text("1\n2\n3\n4\n")
    layer = Conv1d.from_weights(np.ones((1, 1, 2)))
    layer.sample_rate = 1e12
    save_layer(layer, tmp_path / "l.npz")
    result = _run("-w", tmp_path / "l.npz", src, "-o", tmp_path / "out.wav")
    _assert_error(result, 1, "acc.csv", "output sample rate", "2147483647", "--sample-rate")
    assert _leftovers(tmp_path, {"acc.csv", "l.npz"}) == []


def test_apply_ctrl_c_exits_130_and_removes_temp_files(tmp_path, stereo, smooth, monkeypatch):
    from conv1d_cli import pipeline

    path, _ = stereo
    real_pump = pipeline._pump

    def interrupted(reader, writer, *args):
        real_pump(reader, writer, *args)  # the temp file exists and holds data
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_pump", interrupted)
    result = _run("-w", smooth, path, "-o", tmp_path / "o.wav")
    assert result.exit_code == 130, (result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    assert _leftovers(tmp_path, {"in.wav", "smooth.npz"}) == []


@pytest.fixture
def two_layer_model(tmp_path, rng):
    """A PyTorch-style state_dict export holding two conv layers."""
    enc = rng.standard_normal((3, 2, 5))
    dec = rng.standard_normal((2, 3, 3))
    path = tmp_path / "model.npz"
    np.savez(path, **{"encoder.conv.weight": enc, "decoder.conv.weight": dec})
    return path, enc, dec


def test_apply_per_layer_key_chains_two_layers_of_one_model(tmp_path, rng, two_layer_model):
    model, enc, dec = two_layer_model
    x = rng.standard_normal((2, 50))
    np.save(tmp_path / "x.npy", x)
    result = _run(
        "-w", f"{model}:encoder.conv", "-w", f"{model}:decoder.conv",
        tmp_path / "x.npy", "-o", tmp_path / "y.npy",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    want = conv1d(conv1d(x[None], enc), dec)[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-10)
    # --key is the default for a -w without its own key.
    result = _run(
        "-w", f"{model}:encoder.conv", "-w", model, "--key", "decoder.conv",
        tmp_path / "x.npy", "-o", tmp_path / "z.npy",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "z.npy"), np.load(tmp_path / "y.npy"))


def test_apply_per_layer_key_errors_name_file_and_key(tmp_path, rng, two_layer_model):
    model, _, _ = two_layer_model
    np.save(tmp_path / "x.npy", rng.standard_normal((2, 50)))
    result = _run("-w", f"{model}:nope", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    _assert_error(result, 1, f"{model}:nope", "no weight for key", "encoder.conv")
    # Chain mismatch: decoder (3 in) first gets 2 channels: both layers named with their key.
    result = _run(
        "-w", f"{model}:decoder.conv", "-w", f"{model}:encoder.conv",
        tmp_path / "x.npy", "-o", tmp_path / "y.npy",
    )  # fmt: skip
    _assert_error(result, 1, f"{model}:decoder.conv")
    assert not (tmp_path / "y.npy").exists()


def test_apply_layer_path_with_colon_still_works(tmp_path, rng, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _layer_file(tmp_path / "a:b.npz", np.ones((1, 1, 2)))
    np.save(tmp_path / "x.npy", np.arange(5.0)[None])
    result = _run("-w", "a:b.npz", "x.npy", "-o", "y.npy")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), [[1.0, 3.0, 5.0, 7.0]])


def test_apply_help_documents_per_layer_key():
    result = CliRunner().invoke(cli, ["apply", "--help"])
    assert result.exit_code == 0
    assert "LAYER[:KEY]" in result.stdout and "model.npz:encoder.conv" in result.stdout


def test_apply_override_error_names_the_layer_and_the_option(tmp_path, stereo, smooth):
    path, _ = stereo
    # smooth.npz has padding='same', which cannot stride. (Overrides with several -w
    # are refused outright: tests/test_defects_layers.py.)
    result = _run("-w", smooth, path, "-o", tmp_path / "q.wav", "--stride", 2)
    _assert_error(result, 2, f"{smooth}: padding='same'", "(from --stride 2)")
    result = _run("-w", smooth, path, "-o", tmp_path / "q.wav", "--padding", "1,2", "--groups", 3)
    _assert_error(result, 2, f"{smooth}: ", "groups", "(from --padding 1,2 --groups 3)")
    assert _leftovers(tmp_path, {"in.wav", "smooth.npz"}) == []


def test_apply_subtype_for_a_non_audio_output_is_refused(tmp_path, stereo, smooth):
    path, _ = stereo
    result = _run("-w", smooth, path, "-o", tmp_path / "o.csv", "--subtype", "PCM_16")
    _assert_error(result, 2, "--subtype applies to audio outputs only", "CSV")
    # Known only from the input (stdout takes the input's format): refused per file.
    np.save(tmp_path / "x.npy", np.ones((2, 20)))
    result = _run("-w", smooth, tmp_path / "x.npy", "-o", "-", "--subtype", "PCM_16")
    _assert_error(result, 2, "--subtype applies to audio outputs only", "NPY")
    assert _leftovers(tmp_path, {"in.wav", "smooth.npz", "x.npy"}) == []


def test_apply_output_format_contradicting_the_name_warns(tmp_path, stereo, smooth):
    path, _ = stereo
    out = tmp_path / "x.flac"
    result = _run("-w", smooth, path, "-o", out, "--output-format", "wav")
    assert result.exit_code == 0, result.stderr
    assert (
        result.stderr
        == f"warning: {out}: writing WAV (--output-format wav) into a file named like FLAC\n"
    )
    assert sf.info(str(out)).format == "WAV"
    assert _run("-w", smooth, path, "-o", out, "--output-format", "wav", "-q").stderr == ""
    # No contradiction, no warning: same format, or a name without a known extension.
    assert _run("-w", smooth, path, "-o", tmp_path / "y.WAV", "--output-format", "wav").stderr == ""
    assert _run("-w", smooth, path, "-o", tmp_path / "y.out", "--output-format", "wav").stderr == ""


def test_apply_exit_codes_rate_from_data_is_1_rate_option_is_2(tmp_path, rng):
    x = rng.standard_normal((1, 300)).astype(np.float32)
    src = _wav(tmp_path / "in.wav", x, rate=44101)
    layer = _layer_file(tmp_path / "l.npz", np.ones((1, 1, 2)), stride=2)
    result = _run("-w", layer, src, "-o", tmp_path / "o.wav")
    _assert_error(result, 1, "in.wav", "44101 Hz / total stride 2", "--sample-rate")
    result = _run("-w", layer, src, "-o", tmp_path / "o.wav", "--sample-rate", "22050.5")
    _assert_error(result, 2, "--sample-rate", "whole number")
    result = _run("-w", layer, src, "-o", tmp_path / "o.wav", "--sample-rate", "22050")
    assert result.exit_code == 0, result.stderr
    assert sf.info(str(tmp_path / "o.wav")).samplerate == 22050


def test_apply_help_documents_exit_status():
    text = CliRunner().invoke(cli, ["apply", "--help"]).stdout
    assert "Exit status:" in text and "130 Ctrl-C" in text


def test_apply_help_does_not_overclaim_streaming():
    text = " ".join(CliRunner().invoke(cli, ["apply", "--help"]).stdout.split())
    assert "CSV and NPY on stdin are read whole" in text
    # Live on a pipe only where the format allows; the rest is spooled (issue 13).
    assert "Output to a pipe, FIFO or socket ('-o - | ...') is streamed" in text
    assert "must seek (FLAC, AIFF, OGG, ...), and '-' redirected to a file, are spooled" in text


def test_apply_to_dev_stdout_appends_to_the_file_behind_it(tmp_path, stereo, smooth):
    """`-o /dev/stdout >> log.csv` must add to log.csv, never replace it by a rename."""
    path, x = stereo
    log = tmp_path / "log.csv"
    log.write_text("keep me\n")
    with open(log, "ab") as out:
        proc = subprocess.run(
            _cmd("-w", smooth, path, "-o", "/dev/stdout", "--output-format", "csv", "-q"),
            stdout=out, stderr=subprocess.PIPE, env=_env(),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "keep me" and len(lines) == 1 + x.shape[1]
    assert log.is_file() and not log.is_symlink()


def test_apply_to_dev_stdout_keeps_the_input_format_like_dash(tmp_path, stereo, smooth):
    path, x = stereo
    with open(tmp_path / "out.wav", "wb") as out:
        proc = subprocess.run(
            _cmd("-w", smooth, path, "-o", "/dev/stdout"),
            stdout=out, stderr=subprocess.PIPE, env=_env(),
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    y, rate = sf.read(tmp_path / "out.wav", always_2d=True, dtype="float32")
    assert rate == RATE and y.shape == (x.shape[1], 2)


def test_apply_output_symlink_loop_is_one_error_line(tmp_path, stereo, smooth):
    path, _ = stereo
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    result = _run("-w", smooth, path, "-o", loop)
    _assert_error(result, 1, "loop.wav")


def test_apply_stdin_without_a_format_names_the_options(smooth, stereo):
    path, _ = stereo
    result = _run("-w", smooth, "-", "-o", "-", input=path.read_bytes())
    _assert_error(result, 2, "--input-format")
