"""`conv1d apply`: level options (--gain, --normalize, --dither), --no-clobber, --json,
and the progress line on a terminal (issue 13, items 4 and 7)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conv1d_cli.cli import cli
from conv1d_cli.cli.cmd_apply import JSON_SCHEMA
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d
from conv1d_cli.pipeline import FilterOptions, Job, JobProgress, run_jobs

ROOT = Path(__file__).resolve().parent.parent
RATE = 8000


def _run(*args: object):
    return CliRunner().invoke(cli, ["apply", *map(str, args)])


def _layer(path: Path, weight) -> Path:
    save_layer(Conv1d.from_weights(np.asarray(weight, np.float64)), path, overwrite=True)
    return path


def _assert_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


@pytest.fixture
def signal_npy(tmp_path, rng):
    """A (2, 3000) float64 NPY input."""
    x = rng.uniform(-0.4, 0.4, (2, 3000))
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path, x


@pytest.fixture
def smooth(tmp_path):
    """A 2-channel, 3-tap float64 smoother (groups 1, so channels mix a little)."""
    w = np.zeros((2, 2, 3))
    w[0, 0] = [0.25, 0.5, 0.25]
    w[1, 1] = [0.2, 0.6, 0.2]
    w[1, 0] = [0.0, 0.1, 0.0]
    return _layer(tmp_path / "smooth.npz", w)


@pytest.fixture
def loud_wav(tmp_path, rng):
    """A PCM_16 stereo WAV that a 4x layer drives far past full scale."""
    x = np.round(rng.uniform(-0.5, 0.5, (2, 20000)) * 32768) / 32768
    path = tmp_path / "loud.wav"
    sf.write(path, x.T, RATE, subtype="PCM_16")
    return path, x


# -- --gain ------------------------------------------------------------------------------


def test_gain_is_exact_in_a_float_output(tmp_path, signal_npy, smooth):
    src, _ = signal_npy
    plain, loud = tmp_path / "plain.npy", tmp_path / "gained.npy"
    assert _run("-w", smooth, src, "-o", plain).exit_code == 0
    result = _run("-w", smooth, src, "-o", loud, "--gain", "-6.5")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(np.load(loud), np.load(plain) * 10 ** (-6.5 / 20), rtol=1e-15)


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--gain", "8000", "--gain must be between -6000 and 6000 dB, got 8000"),
        ("--gain", "-6001", "--gain must be between -6000 and 6000 dB, got -6001"),
        ("--normalize", "8000", "--normalize must be between -6000 and 6000 dBFS, got 8000"),
    ],
)
def test_a_level_whose_factor_overflows_is_refused(
    tmp_path, signal_npy, smooth, option, value, needle
):
    """10**(8000/20) overflows float64: an Error line (exit 2), not an OverflowError traceback."""
    src, _ = signal_npy
    out = tmp_path / "out.npy"
    _assert_error(_run("-w", smooth, src, "-o", out, option, value), 2, needle)
    assert not out.exists()


def test_gain_comes_before_rounding_and_clipping(tmp_path, loud_wav):
    src, x = loud_wav
    boost = _layer(tmp_path / "boost.npz", np.eye(2)[:, :, None] * 4.0)
    out = tmp_path / "out.wav"
    # 4x then -12.04 dB (x 1/4) is the input again, code for code: nothing clipped.
    result = _run("-w", boost, src, "-o", out, "--gain", str(20 * np.log10(0.25)))
    assert result.exit_code == 0 and result.stderr == ""
    assert sf.info(str(out)).subtype == "PCM_16"
    np.testing.assert_array_equal(sf.read(out, always_2d=True)[0].T, x)


@pytest.mark.parametrize("bad", ["inf", "nan"])
def test_gain_must_be_finite(tmp_path, signal_npy, smooth, bad):
    src, _ = signal_npy
    result = _run("-w", smooth, src, "-o", tmp_path / "y.npy", "--gain", bad)
    assert result.exit_code == 2 and "--gain" in result.stderr and "finite" in result.stderr


def test_gain_and_normalize_together_are_refused(tmp_path, signal_npy, smooth):
    src, _ = signal_npy
    result = _run("-w", smooth, src, "-o", tmp_path / "y.npy", "--gain", "3", "--normalize", "-1")
    _assert_error(result, 2, "--gain and --normalize", "--normalize 2")
    assert not (tmp_path / "y.npy").exists()


# -- --normalize -------------------------------------------------------------------------


@pytest.mark.parametrize("target", [-1.0, -20.0, 0.0])
def test_normalize_puts_the_peak_at_the_target(tmp_path, signal_npy, smooth, target, monkeypatch):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    src, _ = signal_npy
    plain, out = tmp_path / "plain.npy", tmp_path / "norm.npy"
    assert _run("-w", smooth, src, "-o", plain).exit_code == 0
    result = _run(
        "-w", smooth, src, "-o", out, "--normalize", target, "--block-size", 256, "--json"
    )
    assert result.exit_code == 0, result.stderr
    y, ref = np.load(out), np.load(plain)
    np.testing.assert_allclose(np.abs(y).max(), 10 ** (target / 20), rtol=1e-14)
    # One scale factor for the whole file, whatever the blocks.
    np.testing.assert_allclose(y, ref * (10 ** (target / 20) / np.abs(ref).max()), rtol=1e-14)
    doc = json.loads(result.stdout)
    gain = doc["files"][0]["gain_db"]
    assert gain == pytest.approx(target - 20 * np.log10(np.abs(ref).max()))
    assert doc["files"][0]["peak_dbfs"] == pytest.approx(target)
    assert list(spool.iterdir()) == []  # the spool is gone


def test_normalize_into_pcm_does_not_clip_a_loud_chain(tmp_path, loud_wav):
    src, _ = loud_wav
    boost = _layer(tmp_path / "boost.npz", np.eye(2)[:, :, None] * 4.0)
    out = tmp_path / "out.wav"
    result = _run("-w", boost, src, "-o", out, "--normalize", "-1")
    assert result.exit_code == 0 and result.stderr == ""
    y = sf.read(out, always_2d=True)[0]
    assert abs(np.abs(y).max() - 10 ** (-1 / 20)) <= 1 / 32768


def test_normalize_leaves_a_silent_output_as_it_is_and_says_so(tmp_path, smooth):
    src = tmp_path / "zeros.npy"
    np.save(src, np.zeros((2, 500)))
    out = tmp_path / "out.npy"
    result = _run("-w", smooth, src, "-o", out, "--normalize", "-1")
    assert result.exit_code == 0, result.stderr
    assert "silent" in result.stderr and "--normalize left its level" in result.stderr
    np.testing.assert_array_equal(np.load(out), np.zeros((2, 498)))
    quiet = _run("-w", smooth, src, "-o", tmp_path / "q.npy", "--normalize", "-1", "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""


# -- --dither ----------------------------------------------------------------------------


@pytest.fixture
def float_wav(tmp_path, rng):
    """A FLOAT WAV whose samples fall between PCM_16 codes."""
    x = rng.uniform(-0.5, 0.5, (2, 50000))
    path = tmp_path / "f.wav"
    sf.write(path, x.T, RATE, subtype="FLOAT")
    return path


@pytest.fixture
def identity(tmp_path):
    return _layer(tmp_path / "id.npz", np.eye(2)[:, :, None])


def _codes(path: Path) -> np.ndarray:
    return sf.read(path, dtype="int16", always_2d=True)[0].astype(np.int64)


def test_dither_is_tpdf_within_one_lsb_and_unbiased(tmp_path, float_wav, identity):
    exact, dithered = tmp_path / "exact.wav", tmp_path / "dith.wav"
    common = ("-w", identity, float_wav, "--subtype", "PCM_16")
    assert _run(*common, "-o", exact).exit_code == 0
    result = _run(*common, "-o", dithered, "--dither", "tpdf", "--seed", 1)
    assert result.exit_code == 0, result.stderr
    diff = _codes(dithered) - _codes(exact)
    assert set(np.unique(diff)) <= {-1, 0, 1}
    assert np.count_nonzero(diff) > diff.size // 10  # it did something
    assert abs(diff.mean()) < 0.01
    # Without --dither the codes are the exact rounding of the float input.
    x = sf.read(float_wav, always_2d=True)[0]
    np.testing.assert_array_equal(_codes(exact), np.floor(x * 32768 + 0.5))


def test_dither_seed_gives_the_same_bytes_for_any_jobs_and_block_size(
    tmp_path, float_wav, identity
):
    second = tmp_path / "g.wav"
    second.write_bytes(float_wav.read_bytes())

    def run(outdir: str, *extra: object) -> list[bytes]:
        result = _run(
            "-w", identity, float_wav, second, "-d", tmp_path / outdir,
            "--subtype", "PCM_16", "--dither", "tpdf", *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        return [(tmp_path / outdir / name).read_bytes() for name in ("f.wav", "g.wav")]

    one = run("a", "--seed", 7)
    assert run("b", "--seed", 7, "--jobs", 2, "--block-size", 1000) == one
    assert one[0] != one[1]  # each file its own noise (same input, other index)
    assert run("c", "--seed", 8) != one
    assert run("d") != run("e")  # unseeded: fresh noise every run


@pytest.mark.parametrize(
    ("output", "extra", "needle"),
    [
        ("y.npy", (), "NPY"),
        ("y.csv", (), "CSV"),
        ("y.wav", (), "WAV FLOAT"),
        ("y.wav", ("--subtype", "DOUBLE"), "WAV DOUBLE"),
    ],
)
def test_dither_is_refused_for_outputs_that_are_not_integer_pcm(
    tmp_path, float_wav, identity, output, extra, needle
):
    result = _run("-w", identity, float_wav, "-o", tmp_path / output, "--dither", "tpdf", *extra)
    _assert_error(result, 2, "--dither applies to integer PCM", needle)
    assert not (tmp_path / output).exists()


def test_seed_without_dither_is_refused(tmp_path, float_wav, identity):
    result = _run("-w", identity, float_wav, "-o", tmp_path / "y.wav", "--seed", "3")
    _assert_error(result, 2, "--seed", "--dither tpdf")


# -- --no-clobber ------------------------------------------------------------------------


def test_no_clobber_refuses_before_any_work_and_leaves_files_untouched(
    tmp_path, float_wav, identity
):
    second = tmp_path / "g.wav"
    second.write_bytes(float_wav.read_bytes())
    outdir = tmp_path / "out"
    outdir.mkdir()
    existing = outdir / "g.wav"
    existing.write_bytes(b"keep me")
    before = existing.stat().st_mtime_ns
    args = ("-w", identity, float_wav, second, "-d", outdir, "--no-clobber")
    for jobs in ("1", "2"):
        result = _run(*args, "--jobs", jobs)
        # Exit 1 and wording as `init` without --force.
        _assert_error(result, 1, str(existing), "already exists", "--no-clobber")
        assert existing.read_bytes() == b"keep me" and existing.stat().st_mtime_ns == before
        assert sorted(p.name for p in outdir.iterdir()) == ["g.wav"]  # f.wav not written
    # Without an existing output it writes as usual.
    assert (
        _run("-w", identity, float_wav, "-o", tmp_path / "new.wav", "--no-clobber").exit_code == 0
    )


# -- --json ------------------------------------------------------------------------------

TOP_KEYS = {"schema", "ok", "seconds", "files", "failures", "warnings", "totals"}
FILE_KEYS = {
    "input", "output", "frames_in", "frames_out", "sample_rate_in", "sample_rate_out",
    "clipped", "peak", "peak_dbfs", "gain_db", "seconds", "warnings",
}  # fmt: skip
FAILURE_KEYS = {"input", "output", "error"}
TOTAL_KEYS = {"inputs", "written", "failed", "frames_in", "frames_out", "clipped"}


def test_json_report_keys_and_values(tmp_path, loud_wav):
    src, _ = loud_wav
    boost = _layer(tmp_path / "boost.npz", np.ones((2, 2, 2)) * 2.0)  # 4x, 1 frame shorter
    result = _run("-w", boost, src, "-o", tmp_path / "o.wav", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == TOP_KEYS and doc["schema"] == JSON_SCHEMA == "conv1d-apply/1"
    assert doc["ok"] is True and doc["failures"] == [] and doc["warnings"] == []
    (entry,) = doc["files"]
    assert set(entry) == FILE_KEYS
    assert entry["input"] == str(src) and entry["output"] == str(tmp_path / "o.wav")
    assert (entry["frames_in"], entry["frames_out"]) == (20000, 19999)
    assert entry["sample_rate_in"] == entry["sample_rate_out"] == RATE
    assert entry["clipped"] > 1000 and entry["peak"] > 1.0 and entry["gain_db"] == 0.0
    assert entry["warnings"] == []  # the clip count is in "clipped", -q or not
    assert set(doc["totals"]) == TOTAL_KEYS
    assert doc["totals"] == {
        "inputs": 1, "written": 1, "failed": 0, "frames_in": 20000, "frames_out": 19999,
        "clipped": entry["clipped"],
    }  # fmt: skip


def test_json_lists_failures_and_exits_1(tmp_path, signal_npy, smooth):
    src, _ = signal_npy
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3\n")
    result = _run("-w", smooth, bad, src, "-d", tmp_path / "out", "--keep-going", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["totals"]["failed"] == 1 and doc["totals"]["written"] == 1
    (failure,) = doc["failures"]
    assert set(failure) == FAILURE_KEYS and failure["input"] == str(bad)
    assert "bad.csv" in failure["error"]
    # Without --keep-going the first failure stops the run; the report says which file.
    result = _run("-w", smooth, bad, src, "-d", tmp_path / "out2", "--json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [f["input"] for f in doc["failures"]] == [str(bad)]


@pytest.mark.parametrize("target", ["-", "/dev/stdout"])
def test_json_with_output_on_stdout_is_refused(signal_npy, smooth, target):
    src, _ = signal_npy
    result = _run("-w", smooth, src, "-o", target, "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert "--json" in result.stderr and "stdout" in result.stderr


def test_help_documents_the_json_schema_and_level_options():
    text = CliRunner().invoke(cli, ["apply", "--help"], terminal_width=200).output
    assert JSON_SCHEMA in text
    for key in TOP_KEYS | FILE_KEYS | FAILURE_KEYS | TOTAL_KEYS:
        assert key in text, key
    for option in ("--gain", "--normalize", "--dither", "--seed", "--no-clobber", "--json"):
        assert option in text
    assert "does not stream" in text


# -- the clip warning says what to do ----------------------------------------------------


def test_clip_warning_suggests_gain_and_normalize(tmp_path, loud_wav):
    src, _ = loud_wav
    boost = _layer(tmp_path / "boost.npz", np.eye(2)[:, :, None] * 4.0)
    result = _run("-w", boost, src, "-o", tmp_path / "o.wav")
    assert result.exit_code == 0
    (line,) = result.stderr.splitlines()
    assert "clipped" in line and "--normalize -1" in line
    needed = float(re.search(r"--gain -([0-9.]+)", line).group(1))
    # The suggested gain really fits: the same command with it clips nothing.
    again = _run("-w", boost, src, "-o", tmp_path / "p.wav", "--gain", -needed)
    assert again.exit_code == 0 and again.stderr == ""


# -- progress ----------------------------------------------------------------------------


def test_run_jobs_reports_progress_of_every_file_from_worker_processes(tmp_path, signal_npy):
    src, _ = signal_npy
    layer = Conv1d.from_weights(np.ones((2, 2, 1)))
    jobs = [Job(str(src), str(tmp_path / f"y{i}.npy")) for i in range(3)]
    for workers in (1, 2):
        events: list[JobProgress] = []
        run_jobs(
            jobs, [layer], ["l"], FilterOptions(block_size=100), workers=workers,
            on_progress=events.append,
        )  # fmt: skip
        for index in range(3):
            mine = [e for e in events if e.index == index]
            assert mine[-1] == JobProgress(index, 3000, 3000, finished=True, failed=False)
            assert [e.frames for e in mine] == sorted(e.frames for e in mine)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _stderr_on_a_terminal(args: list[object]) -> str:
    """Run apply with stderr on a pseudo-terminal; return everything the terminal showed."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conv1d_cli", "apply", *map(str, args)],
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
        proc.wait(timeout=120)
    finally:
        os.close(master)
    assert proc.returncode == 0, b"".join(chunks)
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture
def three_wavs(tmp_path, rng):
    paths = []
    for i in range(3):
        path = tmp_path / f"in{i}.wav"
        sf.write(path, rng.uniform(-0.3, 0.3, (200_000, 2)), RATE, subtype="PCM_16")
        paths.append(path)
    return paths


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_line_shows_each_file_being_filtered(tmp_path, three_wavs, jobs):
    fir = tmp_path / "fir.npz"
    Conv1d(2, 2, 63, padding="same", seed=1).save(fir)
    shown = _stderr_on_a_terminal(
        ["-w", fir, *three_wavs, "-d", tmp_path / "out", "--jobs", jobs, "--block-size", 4096]
    )
    screens = [s.replace("\x1b[K", "") for s in shown.split("\r")]
    bars = [s for s in screens if s.startswith("files ")]
    # The run's bar, and in it the file(s) under way with their own progress.
    assert any(re.search(r"\] +\d+%", s) for s in bars), screens
    under_way = {m for s in bars for m in re.findall(r"(in\d\.wav) \d+%", s)}
    assert under_way, screens
    assert any(s.startswith("files 3/3") and "100%" in s for s in bars)
    for i in range(3):
        assert f"[{i + 1}/3] {tmp_path / 'out' / f'in{i}.wav'}" in shown


def test_progress_line_for_one_file_counts_frames(tmp_path, three_wavs):
    fir = tmp_path / "fir.npz"
    Conv1d(2, 2, 63, padding="same", seed=1).save(fir)
    shown = _stderr_on_a_terminal(
        ["-w", fir, three_wavs[0], "-o", tmp_path / "o.wav", "--block-size", 4096]
    )
    assert "filtering [" in shown and "100%" in shown
    assert re.search(r"in0\.wav [0-9.]+k?/200k frames", shown), shown


def test_no_progress_with_quiet_or_when_stderr_is_not_a_terminal(tmp_path, three_wavs):
    fir = tmp_path / "fir.npz"
    Conv1d(2, 2, 63, padding="same", seed=1).save(fir)
    for jobs in ("1", "2"):
        args = ["-w", fir, *three_wavs, "-d", tmp_path / f"q{jobs}", "--jobs", jobs]
        assert _stderr_on_a_terminal([*args, "-q"]) == ""
        args[-3] = tmp_path / f"p{jobs}"
        piped = subprocess.run(
            [sys.executable, "-m", "conv1d_cli", "apply", *map(str, args)],
            capture_output=True,
            env=_env(),
            check=False,
        )
        assert piped.returncode == 0 and piped.stderr == b""


def test_dither_follows_the_subtype_the_output_gets(tmp_path, loud_wav, float_wav, identity):
    # A PCM_16 input keeps PCM_16 in a WAV output: dither needs no --subtype there.
    src, _ = loud_wav
    result = _run("-w", identity, src, "-o", tmp_path / "y.wav", "--dither", "tpdf")
    assert result.exit_code == 0, result.stderr
    # A FLAC output of a float input gets PCM_24: dithered at its own LSB.
    exact, dithered = tmp_path / "e.flac", tmp_path / "d.flac"
    assert _run("-w", identity, float_wav, "-o", exact).exit_code == 0
    assert _run("-w", identity, float_wav, "-o", dithered, "--dither", "tpdf").exit_code == 0
    codes = [sf.read(p, dtype="int32", always_2d=True)[0] >> 8 for p in (exact, dithered)]
    assert np.abs(codes[1].astype(np.int64) - codes[0]).max() == 1
    # A float WAV on stdin is known to be FLOAT only once it is open: still exit 2.
    result = CliRunner().invoke(
        cli,
        ["apply", "-w", str(identity), "-", "--input-format", "wav", "-o", str(tmp_path / "s.wav"),
         "--dither", "tpdf"],
        input=float_wav.read_bytes(),
    )  # fmt: skip
    _assert_error(result, 2, "--dither applies to integer PCM", "WAV FLOAT")
    assert not (tmp_path / "s.wav").exists()


def test_dither_of_a_pcm16_wav_on_stdin_is_accepted(tmp_path, loud_wav, identity):
    src, x = loud_wav
    result = CliRunner().invoke(
        cli,
        ["apply", "-w", str(identity), "-", "--input-format", "wav", "-o", str(tmp_path / "s.wav"),
         "--dither", "tpdf", "--seed", "0"],
        input=src.read_bytes(),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    # Already on the PCM_16 grid: +-1 LSB of noise rounds back to the same codes... or a
    # neighbour; never further.
    diff = sf.read(tmp_path / "s.wav", always_2d=True)[0].T - x
    assert np.abs(diff).max() <= 1 / 32768


def test_eta_is_measured_from_the_first_block_not_from_the_start(monkeypatch):
    import io

    from conv1d_cli.cli import _progress

    clock = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: clock[0])
    screen = io.StringIO()
    display = _progress.Display([Job("in.wav", "out.wav")], screen)
    display.update(JobProgress(0, 0, 100))
    clock[0] += 20.0  # the first block pays for start-up: 20 s for 4 %
    display.update(JobProgress(0, 4, 100))
    for frames in range(8, 28, 4):  # then 4 % a second
        clock[0] += 1.0
        display.update(JobProgress(0, frames, 100))
    # 24 % done, 76 % to go at 4 %/s: 19 s (counting the start-up would say 76 s).
    assert screen.getvalue().rsplit("\r", 1)[-1].startswith("\x1b[Kfiltering [####")
    assert "ETA 0:19" in screen.getvalue().rsplit("\r", 1)[-1]


def test_normalize_holds_blocks_not_the_signal(tmp_path):
    import tracemalloc

    from conv1d_cli.pipeline import filter_file

    src = tmp_path / "long.npy"
    x = np.lib.format.open_memmap(src, mode="w+", dtype=np.float64, shape=(2, 1_000_000))
    x[:] = np.sin(np.arange(1_000_000) / 50.0)
    x.flush()
    del x
    layer = Conv1d.from_weights(np.full((2, 2, 5), 0.1))
    tracemalloc.start()
    try:
        filter_file(
            str(src), str(tmp_path / "y.npy"), [layer],
            options=FilterOptions(normalize_db=-3.0, block_size=4096, overlap=False),
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak  # the signal is 16 MB; a block is 64 kB
    y = np.load(tmp_path / "y.npy", mmap_mode="r")
    assert np.abs(y).max() == pytest.approx(10 ** (-3 / 20), rel=1e-14)
