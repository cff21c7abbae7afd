"""conv1d_cli.pipeline: the engine under `conv1d apply`, used directly from Python."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conv1d_cli import Conv1d
from conv1d_cli.errors import BatchError, ConfigError, DataFileError, ShapeError
from conv1d_cli.io.formats import SignalInfo
from conv1d_cli.io.inputs import read_signal
from conv1d_cli.io.outputs import plan_output, write_signal
from conv1d_cli.pipeline import FilterOptions, Job, filter_file, plan_jobs, run_jobs


@pytest.fixture
def signals(tmp_path):
    rng = np.random.default_rng(7)
    paths = []
    for i in range(3):
        path = tmp_path / f"in{i}.csv"
        write_signal(path, rng.standard_normal((2, 50 + 10 * i)), format=None)
        paths.append(str(path))
    return paths


def test_filter_file_equals_the_one_shot_layer(tmp_path, signals):
    layer = Conv1d(2, 3, 5, padding="same", seed=1, dtype="float64")
    report = filter_file(
        signals[0], str(tmp_path / "y.npy"), [layer], options=FilterOptions(block_size=7)
    )
    x = read_signal(signals[0]).data
    y = read_signal(tmp_path / "y.npy").data
    assert report.frames_in == 50 and report.clipped == 0 and report.warnings == []
    np.testing.assert_allclose(y, layer(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("workers", [1, 3])
def test_run_jobs_keep_going_reports_failures_in_input_order(tmp_path, signals, workers):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3\n")
    sources = [str(bad), signals[0], str(tmp_path / "missing.csv"), signals[1]]
    jobs = plan_jobs(sources, None, str(tmp_path / "out"), "npy")
    (tmp_path / "out").mkdir()
    layer = Conv1d.from_weights(np.ones((2, 1, 3)), groups=2)
    done = []
    with pytest.raises(BatchError) as info:
        run_jobs(
            jobs,
            [layer],
            ["ones"],
            workers=workers,
            keep_going=True,
            on_done=lambda i, r: done.append(i),
        )
    assert [source for source, _ in info.value.failures] == [sources[0], sources[2]]
    assert str(info.value).startswith("2 of 4 inputs failed")
    assert sorted(done) == [1, 3]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["in0.npy", "in1.npy"]


def test_run_jobs_stops_at_the_first_failure_without_keep_going(tmp_path, signals):
    jobs = [Job(str(tmp_path / "missing.csv"), str(tmp_path / "o.csv"))]
    with pytest.raises(DataFileError, match="missing.csv"):
        run_jobs(jobs, [Conv1d.from_weights(np.ones((2, 2, 1)))], ["l"])
    assert not (tmp_path / "o.csv").exists()


def test_plan_jobs_refuses_an_output_that_is_an_input(tmp_path, signals):
    with pytest.raises(ConfigError, match="same file"):
        plan_jobs([signals[0]], signals[0], None)


def test_plan_output_decides_format_subtype_rate_and_columns():
    wav = SignalInfo("in.wav", "wav", "PCM_16", 48000.0, 2, 1000)
    spec = plan_output("out.flac", wav, channels=2, total_stride=2)
    assert (spec.format, spec.subtype, spec.sample_rate) == ("flac", "PCM_16", 24000)
    assert plan_output("-", wav, channels=1).format == "wav"  # a stream keeps the input's
    csv = SignalInfo("in.csv", "csv", None, None, 2, 10, column_names=("x", "y"))
    assert plan_output("o.csv", csv, channels=2).column_names == ("x", "y")
    assert plan_output("o.csv", csv, channels=3).column_names == ("ch0", "ch1", "ch2")
    assert plan_output("o.wav", csv, channels=2, rate_hint=8000.0).sample_rate == 8000
    with pytest.raises(DataFileError, match="no sample rate"):
        plan_output("o.wav", csv, channels=2)
    with pytest.raises(ShapeError, match="not a whole number of Hz"):
        plan_output("o.wav", wav, channels=2, total_stride=7)
    # A CSV stores no rate: 48000 / 7 is no reason to refuse it.
    assert plan_output("o.csv", wav, channels=2, total_stride=7).format == "csv"
    with pytest.raises(ConfigError, match="audio outputs only"):
        plan_output("o.csv", wav, channels=2, subtype="PCM_16")


def test_block_size_must_be_positive():
    with pytest.raises(ConfigError, match="block_size"):
        FilterOptions(block_size=0)


def test_nan_at_the_end_of_a_circular_input_is_named_as_the_inputs(tmp_path):
    # The circular prefix (the signal's last samples, read first) enters the chain
    # before the checked blocks; its NaN must be reported at its own sample.
    x = np.zeros((1, 1000))
    x[0, 999] = np.nan
    src = tmp_path / "x.npy"
    np.save(src, x)
    layer = Conv1d.from_weights(np.ones((1, 1, 5)), padding=2, padding_mode="circular")
    with pytest.raises(DataFileError, match="sample 999") as info:
        filter_file(
            str(src), str(tmp_path / "y.npy"), [layer], options=FilterOptions(block_size=100)
        )
    assert "overflow" not in str(info.value)


@pytest.mark.parametrize("suffix", ["npy", "csv"])
def test_a_value_too_large_for_float32_is_named_not_turned_into_inf(tmp_path, suffix):
    # A float64 file computed in float32: 1e300 used to become inf with a NumPy
    # warning (past -q), then be reported as an inf the file does not hold.
    src = tmp_path / f"x.{suffix}"
    x = np.zeros((1, 10))
    x[0, 5] = 1e300
    write_signal(src, x, format=None)
    layer = Conv1d.from_weights(np.ones((1, 1, 1), np.float32))
    with pytest.raises(DataFileError, match=r"1e\+300 does not fit float32") as info:
        filter_file(str(src), str(tmp_path / f"y.{suffix}"), [layer])
    assert ("sample 5" if suffix == "npy" else "line 6") in str(info.value)  # no header


def test_a_gain_past_the_largest_float_is_an_error_not_inf(tmp_path, signals):
    layer = Conv1d.from_weights(np.ones((2, 1, 1), np.float32), groups=2)
    with pytest.raises(DataFileError, match="gain of 1000.0 dB"):
        filter_file(
            signals[0], str(tmp_path / "y.npy"), [layer], options=FilterOptions(gain_db=1000)
        )
    assert not (tmp_path / "y.npy").exists()


def test_job_about_names_the_input_unless_a_file_is_named():
    job = Job("in.wav", "out.wav")
    assert str(job.about(ShapeError("{path}: too short"))) == "in.wav: too short"
    assert str(job.about(DataFileError("out.wav: disk full"))) == "out.wav: disk full"
    named = job.about(ConfigError("bad", parameter="dither"))
    assert (named.path, named.parameter) == ("in.wav", "dither")


def test_worker_errors_travel_with_their_fields():
    import pickle

    error = DataFileError("{path}: nan; pass {parameter} to go on", parameter="allow_nonfinite")
    back = pickle.loads(pickle.dumps(error.about("x.csv")))
    assert type(back) is DataFileError
    assert (back.path, back.parameter) == ("x.csv", "allow_nonfinite")
    assert back.render(lambda name: "--" + name) == "x.csv: nan; pass --allow_nonfinite to go on"


def test_errors_pickle_whole_even_a_batch_and_under_tblib():
    # Worker processes send their errors back pickled; Dask installs tblib's
    # pickling for every exception class, which must not lose the fields either.
    import subprocess
    import sys

    code = """
import pickle
from conv1d_cli.errors import BatchError, ConfigError
one = ConfigError("{parameter} must be one of a, b", parameter="csv_delimiter", path="x.csv")
batch = BatchError([("x.csv", one)], 3)
try:
    from tblib import pickling_support
except ImportError:
    pickling_support = None
for round in range(2 if pickling_support else 1):
    back = pickle.loads(pickle.dumps(batch))
    assert type(back) is BatchError and (back.total, str(back)) == (3, str(batch))
    (source, error), = back.failures
    assert type(error) is ConfigError and error.parameter == "csv_delimiter"
    assert error.render(lambda n: "--" + n) == "x.csv: --csv_delimiter must be one of a, b"
    if pickling_support:
        pickling_support.install()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout == "ok\n", done.stderr


def test_run_jobs_in_workers_returns_errors_with_their_fields(tmp_path, signals):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,nan\n3,4\n")
    jobs = plan_jobs([str(bad), signals[0]], None, str(tmp_path / "out"), "npy")
    (tmp_path / "out").mkdir()
    layer = Conv1d.from_weights(np.ones((2, 1, 1)), groups=2)
    with pytest.raises(BatchError) as info:
        run_jobs(jobs, [layer], ["ones"], workers=2, keep_going=True)
    ((source, error),) = info.value.failures
    assert source == str(bad) and isinstance(error, DataFileError)
    assert error.parameter == "allow_nonfinite" and str(error).startswith(f"{bad}: nan")


def test_a_checked_chain_still_meets_each_input(tmp_path):
    # chain_checked: the links were checked for the run; each file still checks
    # its channels against the first layer, and against the second once a
    # one-channel filter is widened to a stereo input.
    import soundfile as sf

    stereo = tmp_path / "s.wav"
    sf.write(stereo, np.zeros((20, 2), np.float32), 8000)
    fir = Conv1d.from_weights(np.ones((1, 1, 3)))
    mono_next = Conv1d.from_weights(np.ones((1, 1, 1)))
    with pytest.raises(ShapeError, match="layer 2"):
        filter_file(str(stereo), str(tmp_path / "o.wav"), [fir, mono_next], chain_checked=True)
    three = Conv1d.from_weights(np.ones((1, 3, 1)))
    with pytest.raises(ShapeError, match="2 channels but layer 1"):
        filter_file(str(stereo), str(tmp_path / "o.wav"), [three], chain_checked=True)
    report = filter_file(str(stereo), str(tmp_path / "o.wav"), [fir], chain_checked=True)
    assert report.frames_out == 18


def test_plan_jobs_messages_name_keywords_and_the_cli_shows_flags(tmp_path):
    from conv1d_cli.cli._common import error_text

    (tmp_path / "dir").mkdir()
    cases = [
        ((["a.wav"], "o.wav", "d"), "give either output or output_dir, not both",
         "give either -o/--output or -d/--output-dir, not both"),
        ((["a.wav"], str(tmp_path / "dir"), None), "output '", "-o '"),
        ((["-"], None, "d"), "stdin ('-') needs output OUTPUT", "stdin ('-') needs -o OUTPUT"),
    ]  # fmt: skip
    for args, library, cli in cases:
        with pytest.raises(ConfigError) as info:
            plan_jobs(*args)
        assert str(info.value).startswith(library)
        assert error_text(info.value).startswith(cli)


def test_warnings_from_worker_processes_keep_their_parameters(tmp_path):
    from conv1d_cli.cli._common import warning_text
    from conv1d_cli.errors import Notice

    for name in ("a", "b"):
        (tmp_path / f"{name}.csv").write_text("time,x\n0,1\n1,2\n2,3\n")
    sources = [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    jobs = plan_jobs(sources, None, str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    layers, options = [Conv1d.from_weights(np.ones((1, 1, 1)))], FilterOptions(time_column="auto")
    reports = run_jobs(jobs, layers, ["one"], options, workers=2)
    for report in reports:
        (note,) = report.warnings
        assert isinstance(note, Notice) and "(time_column none filters it too)" in note
        assert warning_text(note).endswith("(--time-column none filters it too)")


def test_worker_processes_get_the_layers_once_each_not_per_file(tmp_path, signals, monkeypatch):
    """A task carries its job and index; the chain goes to a worker once, as it starts."""
    import concurrent.futures

    from conv1d_cli import workers as jobs_module

    sent = []
    submit = concurrent.futures.ProcessPoolExecutor.submit

    def spy(self, fn, /, *args, **kwargs):
        sent.append(args)
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", spy)
    jobs = plan_jobs(signals, None, str(tmp_path / "out"), "npy")
    (tmp_path / "out").mkdir()
    layer = Conv1d.from_weights(np.ones((2, 1, 3)), groups=2)
    reports = run_jobs(jobs, [layer], ["ones"], workers=2)
    assert [r.job for r in reports] == jobs
    assert sent == [(job, index) for index, job in enumerate(jobs)]
    assert jobs_module._WORKER_CHAIN is None  # set in the workers only


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the workers")
def test_a_signal_to_one_worker_fails_its_file_not_the_run_silently(tmp_path):
    """SIGTERM to one --jobs worker: that file is reported (exit 1), nothing partial is left.

    The worker's signal must not look like the parent's own decision to stop, which
    would settle every stopped file as "cancelled" and end the run with exit 0 and
    no output.
    """
    import contextlib
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    import soundfile as sf

    rng = np.random.default_rng(3)
    for i in range(4):
        sf.write(tmp_path / f"big{i}.wav", rng.uniform(-0.5, 0.5, 48_000 * 60), 48_000)
    # Direct correlation with 8001 taps: long enough per file for the signal to land mid-file.
    Conv1d.from_weights(np.full((1, 1, 8001), 1 / 8001)).save(tmp_path / "long.npz")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "conv1d_cli", "apply", "-q", "-w", str(tmp_path / "long.npz"),
           *(str(tmp_path / f"big{i}.wav") for i in range(4)), "-d", str(out), "--jobs", "2",
           "--method", "direct"]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)

    def descendants(pid: int) -> list[int]:  # forked workers, or a forkserver's
        with contextlib.suppress(OSError):
            tasks = Path(f"/proc/{pid}/task").iterdir()  # children of any of its threads
            kids = [int(k) for task in tasks for k in (task / "children").read_text().split()]
            return kids + [d for kid in kids for d in descendants(kid)]
        return []

    def writing(pid: int) -> bool:  # the worker holds a temporary output open: mid-file
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{pid}/fd")
            return any(".tmp." in os.readlink(fd) for fd in fds.iterdir())
        return False

    victim = None
    deadline = time.monotonic() + 30
    try:
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            victim = next((pid for pid in descendants(proc.pid) if writing(pid)), None)
            time.sleep(0.02)
        if victim is not None:
            os.kill(victim, signal.SIGTERM)
    finally:
        _, stderr = proc.communicate(timeout=120)
    assert victim is not None, f"no worker was seen writing (exit {proc.returncode}): {stderr}"
    assert proc.returncode == 1, stderr
    assert "stopped by a signal to its worker process" in stderr
    assert not [p.name for p in out.iterdir() if ".tmp." in p.name]
