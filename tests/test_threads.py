"""The thread policy (issue 11): rules, cgroup/affinity parsing, and its effect on BLAS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conv1d_cli import threads
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d

ROOT = Path(__file__).resolve().parent.parent


# -- MAKEFLAGS ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("makeflags", "parallel"),
    [
        (None, False),
        ("", False),
        ("s", False),
        ("s -j1", False),
        ("ks", False),
        ("s -j", True),  # -j without a limit
        ("s -j2 --jobserver-auth=3,4", True),
        (" -j4 --jobserver-auth=fifo:/tmp/GMfifo1", True),
        ("--jobserver-fds=3,4 -j", True),  # make 3.x/4.1
        ("kj", True),  # bare j in the single-letter word
        ("--jobs=3", True),
        ("s -- CFLAGS=-j2", False),  # a variable after --, not a flag
        ("k -- J=1", False),
    ],
)
def test_threads_make_is_parallel(makeflags, parallel):
    assert threads.make_is_parallel(makeflags) is parallel


# -- cgroup and affinity -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000", None), ("150000 100000", 1.5), ("200000 100000\n", 2.0), ("50000", 0.5)],
)
def test_threads_parse_cpu_max(text, cpus):
    assert threads.parse_cpu_max(text) == cpus


def test_threads_parse_cfs():
    assert threads.parse_cfs("-1\n", "100000\n") is None
    assert threads.parse_cfs("100000\n", "100000\n") == 1.0
    assert threads.parse_cfs("garbage", "100000") is None


def _fake(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_threads_cgroup_v2_takes_the_tightest_ancestor(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/user.slice/job\n")
    root = tmp_path / "sys"
    _fake(
        root,
        {
            "cpu.max": "max 100000\n",
            "user.slice/cpu.max": "150000 100000\n",
            "user.slice/job/cpu.max": "max 100000\n",
        },
    )
    assert threads.cgroup_cpu_limit(proc, root) == 1.5


def test_threads_cgroup_v2_container_root(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/\n")
    _fake(tmp_path / "sys", {"cpu.max": "300000 100000\n"})
    assert threads.cgroup_cpu_limit(proc, tmp_path / "sys") == 3.0


def test_threads_cgroup_v1(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/x\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n")
    root = tmp_path / "sys"
    _fake(
        root,
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert threads.cgroup_cpu_limit(proc, root) == 0.5


def test_threads_cgroup_none(tmp_path):
    assert threads.cgroup_cpu_limit(tmp_path / "missing", tmp_path) is None
    proc = tmp_path / "cgroup"
    proc.write_text("0::/\n1:cpu:/\n")
    assert threads.cgroup_cpu_limit(proc, tmp_path) is None  # no files: no limit


def test_threads_available_cpus_applies_quota_and_affinity(monkeypatch):
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 2.5)
    assert threads.available_cpus() == 2
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 0.3)
    assert threads.available_cpus() == 1
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.available_cpus() == 8
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 2)
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 16.0)
    assert threads.available_cpus() == 2


# -- the rules ---------------------------------------------------------------------------


def test_threads_decide_rules():
    P = threads.Policy
    assert threads.decide(environ={}, cpus=2) == P(1, 1, True, "default", 2)
    assert threads.decide(environ={}, cpus=1) == P(1, 1, False, "default", 1)
    assert threads.decide(jobs=2, environ={}, cpus=2) == P(1, 1, False, "--jobs")
    make = {"MAKEFLAGS": " -j2 --jobserver-auth=3,4"}
    assert threads.decide(environ=make, cpus=2) == P(1, 1, False, "make -j")
    # --threads beats everything, but never exceeds the usable cores.
    assert threads.decide(threads=2, jobs=2, environ=make, cpus=2) == P(1, 2, True, "--threads", 2)
    assert threads.decide(threads=8, environ={}, cpus=2) == P(1, 2, True, "--threads", 2)
    assert threads.decide(threads=1, environ={}, cpus=2) == P(1, 1, False, "--threads", 1)
    # The user's own BLAS setting is left alone; FFT workers follow it.
    user = {"OMP_NUM_THREADS": "2"}
    assert threads.decide(environ=user, cpus=4) == P(None, 2, True, "OMP_NUM_THREADS", 2)
    assert threads.decide(environ=user, cpus=1).fft == 1
    assert threads.decide(environ=user, cpus=1).split == 1
    assert threads.decide(jobs=2, environ=user, cpus=4) == P(
        None, 1, False, "--jobs, BLAS from OMP_NUM_THREADS"
    )


def test_threads_configure_sets_env_only_before_numpy(monkeypatch):
    env: dict[str, str] = {}
    monkeypatch.setattr(threads, "_OURS", {})
    monkeypatch.setattr(threads, "_CURRENT", None)
    # NumPy is loaded in this process: too late for BLAS, FFT workers still follow.
    assert threads.configure(threads.Policy(1, 1, False, "t"), env) is False
    assert env == {} and threads.fft_workers() == 1
    monkeypatch.delitem(sys.modules, "numpy")
    assert threads.configure(threads.Policy(1, 1, False, "t"), env) is True
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert "GOTO_NUM_THREADS" not in env
    # Our own values are not mistaken for the user's by the next decision ...
    assert threads.decide(threads=None, environ=env, cpus=2).reason == "default"
    # ... and a user's value is never replaced by default.
    user = {"OPENBLAS_NUM_THREADS": "2"}
    assert threads.configure(threads.decide(environ=user, cpus=2), user) is True
    assert user == {"OPENBLAS_NUM_THREADS": "2"}


def test_threads_limit_and_per_call_fft_workers(monkeypatch):
    from conv1d_cli import core, kernels

    monkeypatch.setattr(threads, "_CURRENT", None)
    seen: list[int] = []
    real = kernels._transforms

    def spy(workers: int):  # the worker count each FFT call is made with
        seen.append(workers)
        return real(workers)

    monkeypatch.setattr(kernels, "_transforms", spy)
    x = np.ones((1, 1, 50_000))
    w = np.ones((1, 1, 301))
    with threads.limit(1) as policy:
        assert policy.fft == 1 and threads.fft_workers() == 1
        core.conv1d(x, w, method="fft")
    assert threads.current() is None
    core.conv1d(x, w, method="fft")
    assert seen[0] == 1
    assert seen[-1] == threads.available_cpus()


# -- in a fresh process: before NumPy, and what BLAS then reports ------------------------

_PROBE = """
import json, os, sys
from conv1d_cli import threads
seen = []
real = threads.configure
def spy(policy, environ=None):
    seen.append(["numpy" in sys.modules, policy.reason])
    return real(policy, environ)
threads.configure = spy
from conv1d_cli.cli import cli
try:
    cli(sys.argv[1:], prog_name="conv1d", standalone_mode=False)
except SystemExit:
    pass
from threadpoolctl import threadpool_info
blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
print(json.dumps({"seen": seen, "blas": blas, "fft": threads.fft_workers(),
                  "env": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


@pytest.fixture(scope="module")
def probe_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("probe")
    rng = np.random.default_rng(7)
    sf.write(directory / "in.wav", 0.1 * rng.standard_normal((20_000, 2)), 8000, subtype="FLOAT")
    taps = rng.standard_normal((2, 1, 101)) * 0.01
    save_layer(Conv1d.from_weights(taps, groups=2, padding="same"), directory / "l.npz")
    return directory


def _probe(directory: Path, args: list[str], **env: str) -> dict:
    pytest.importorskip("threadpoolctl")
    environ = {k: v for k, v in os.environ.items() if k not in threads.BLAS_ENV_VARS}
    environ.pop("MAKEFLAGS", None)
    environ.pop("MFLAGS", None)
    environ.update(env, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        cwd=directory,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _apply(*extra: str) -> list[str]:
    return ["apply", "-q", "-w", "l.npz", "in.wav", "-o", "out.wav", *extra]


@pytest.mark.parametrize(
    ("args", "env", "reason"),
    [
        (_apply(), {"MAKEFLAGS": " -j2 --jobserver-auth=3,4"}, "make -j"),
        (_apply("--jobs", "2"), {}, "--jobs"),
        (_apply(), {}, "default"),
    ],
)
def test_threads_worker_blas_is_single_threaded(probe_files, args, env, reason):
    report = _probe(probe_files, args, **env)
    # Both decisions (the group's, then apply's) happen before NumPy is imported.
    assert report["seen"][0][0] is False and report["seen"][-1] == [False, reason]
    assert report["blas"] == [1]
    assert report["fft"] == 1
    assert report["env"] == "1"


def test_threads_option_reaches_blas(probe_files):
    if threads.available_cpus() < 2:
        pytest.skip("needs two usable cores")
    report = _probe(probe_files, _apply("--threads", "2"), MAKEFLAGS="-j2")
    assert report["seen"][-1] == [False, "--threads"]
    # BLAS stays single-threaded: its rounding depends on its thread count.
    assert report["blas"] == [1] and report["fft"] == 2


def test_threads_user_blas_setting_is_left_alone(probe_files):
    report = _probe(probe_files, _apply(), OPENBLAS_NUM_THREADS="2")
    assert report["env"] == "2"
    assert report["seen"][-1][1] == "OPENBLAS_NUM_THREADS"
    if threads.available_cpus() >= 2:
        assert report["blas"] == [2]


def test_threads_shape_does_not_import_numpy(probe_files):
    report = _probe(probe_files, ["shape", "--length", "100", "--kernel-size", "3"])
    assert report["seen"] == [[False, "default"]]


# -- results never depend on the thread count --------------------------------------------


def test_threads_output_is_identical_for_any_thread_count(tmp_path):
    rng = np.random.default_rng(11)
    sf.write(tmp_path / "in.wav", 0.1 * rng.standard_normal((100_000, 2)), 48000, subtype="FLOAT")
    layers = {
        "fir101": Conv1d.from_weights(rng.standard_normal((2, 1, 101)) * 0.01, groups=2),
        "fir1025": Conv1d.from_weights(rng.standard_normal((2, 1, 1025)) * 0.01, groups=2),
        "mix": Conv1d.from_weights(rng.standard_normal((3, 2, 257)) * 0.01, padding="same"),
        # Whole FFT frames, a thread per channel with --threads 2 (too long for direct).
        "ir20k": Conv1d.from_weights(
            rng.standard_normal((2, 1, 20_000)) * 0.01, groups=2, padding="causal"
        ),
    }
    for name, layer in layers.items():
        save_layer(layer, tmp_path / f"{name}.npz")
    environ = {k: v for k, v in os.environ.items() if k not in threads.BLAS_ENV_VARS}
    environ["PYTHONPATH"] = str(ROOT)
    for name in layers:
        for method in ("auto", "fft") if name == "ir20k" else ("auto", "fft", "direct"):
            outputs = []
            for n in ("1", "2"):
                # NPY, not WAV: libsndfile stamps the time into a float WAV's PEAK chunk.
                out = tmp_path / f"{name}-{method}-{n}.npy"
                cmd = [sys.executable, "-m", "conv1d_cli", "apply", "-q", "-w"]
                cmd += [str(tmp_path / f"{name}.npz"), str(tmp_path / "in.wav"), "-o", str(out)]
                cmd += ["--method", method, "--threads", n, "--block-size", "30000"]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=environ, timeout=120)
                assert proc.returncode == 0, proc.stderr
                outputs.append(out.read_bytes())
            assert outputs[0] == outputs[1], (name, method)


# -- --jobs: worker processes ------------------------------------------------------------


def _subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in threads.BLAS_ENV_VARS}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize("user_blas", [None, "1"])  # fork, else forkserver workers
def test_threads_jobs_warnings_in_input_order(tmp_path, user_blas):
    rng = np.random.default_rng(3)
    gain = tmp_path / "gain.npz"
    save_layer(Conv1d.from_weights(np.full((1, 1, 1), 4.0)), gain)
    inputs = []
    for i, n in enumerate((40_000, 2_000, 20_000, 1_000)):  # big first: finishes last
        path = tmp_path / f"in{i}.wav"
        sf.write(path, 0.5 * rng.standard_normal(n), 8000, subtype="PCM_16")
        inputs.append(str(path))
    cmd = [sys.executable, "-m", "conv1d_cli", "apply", "-w", str(gain), *inputs]
    cmd += ["-d", str(tmp_path / "out"), "--jobs", "2"]
    env = _subprocess_env()
    if user_blas is not None:
        env["OPENBLAS_NUM_THREADS"] = user_blas
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    named = [line.split(": ")[1] for line in proc.stderr.splitlines()]
    assert named == [str(tmp_path / "out" / f"in{i}.wav") for i in range(4)], proc.stderr


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_threads_jobs_signal_stops_workers_and_leaves_nothing(tmp_path, signame):
    import signal
    import time

    signum = getattr(signal, signame)
    rng = np.random.default_rng(5)
    sources = []
    for i in range(3):
        path = tmp_path / f"long{i}.wav"
        sf.write(path, 0.1 * rng.standard_normal((400_000, 2)), 8000, subtype="FLOAT")
        sources.append(str(path))
    layer = tmp_path / "l.npz"
    save_layer(Conv1d.from_weights(rng.standard_normal((2, 2, 64))), layer)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "conv1d_cli", "apply", "-q", "-w", str(layer), *sources]
    cmd += ["-d", str(out), "--jobs", "2", "--method", "direct", "--block-size", "64"]
    # Its own process group, like a shell job: Ctrl-C reaches the workers too.
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, env=_subprocess_env(), start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        out.is_dir() and sum(p.name.startswith(".") for p in out.iterdir()) >= 2
    ):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.02)
    if signame == "SIGINT":
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)  # the parent alone, as kill/timeout/make do
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert b"Traceback" not in err
    assert list(out.iterdir()) == []


# -- frame threads: long rows side by side ------------------------------------------------


def test_threads_split_map_runs_every_item_and_raises_the_first_error():
    seen: list[tuple[int, str]] = []
    with threads.limit(2):
        threads.split_map(lambda i: seen.append((i, threading.current_thread().name)), range(5))
    assert sorted(i for i, _ in seen) == [0, 1, 2, 3, 4]
    assert {name.startswith("conv1d-split") for _, name in seen} == {False, True}

    def fails(i: int) -> None:
        if i == 3:
            raise ValueError("item 3")

    with threads.limit(2), pytest.raises(ValueError, match="item 3"):
        threads.split_map(fails, list(range(4)))
    with threads.limit(1):
        seen.clear()
        threads.split_map(lambda i: seen.append((i, threading.current_thread().name)), [1, 2])
    assert [name for _, name in seen] == [threading.current_thread().name] * 2


def test_threads_long_frames_identical_for_any_thread_count():
    # 20 000 taps on 2 items x 3 groups: 5 * 2**14-point frames, a frame of all six
    # rows to a call, the calls side by side in frame threads.
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 150_000)).astype(np.float32)
    layer = Conv1d.from_weights(
        rng.standard_normal((3, 1, 20_000)).astype(np.float32), groups=3, padding="causal"
    )
    outputs = []
    for n in (1, 2):
        with threads.limit(n):
            outputs.append(layer(x, method="fft"))
    assert outputs[0].tobytes() == outputs[1].tobytes()
    expected = layer(x.astype(np.float64), method="fft")
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(outputs[0], expected, rtol=0, atol=1e-5 * scale)


def test_threads_split_map_from_several_threads_while_the_pool_grows(monkeypatch):
    # Thread A holds a 1-thread pool when thread B needs a larger one and replaces it:
    # A must still be able to submit (the review found "cannot schedule new futures
    # after shutdown" when the pool was swapped between A's lookup and its submit).
    real = threads._split_pool
    got_pool = threading.Event()

    def slow_for_a(size: int):
        pool = real(size)
        if threading.current_thread().name == "A":
            got_pool.set()
            time.sleep(0.2)  # B asks for a larger pool meanwhile
        return pool

    monkeypatch.setattr(threads, "_split_pool", slow_for_a)
    monkeypatch.setattr(threads, "_POOL", None)
    errors: list[BaseException] = []
    done: list[int] = []

    def caller(count: int) -> None:
        try:
            threads.split_map(done.append, list(range(count)))
        except BaseException as e:  # pragma: no cover - the failure being tested
            errors.append(e)

    with threads.limit(8):
        a = threading.Thread(target=caller, args=(2,), name="A")
        b = threading.Thread(target=caller, args=(8,), name="B")
        a.start()
        assert got_pool.wait(10)
        b.start()
        a.join()
        b.join()
    assert errors == []
    assert sorted(done) == [0, 0, 1, 1, 2, 3, 4, 5, 6, 7]


def test_threads_long_frames_split_by_row_in_calls_serial_in_streams(monkeypatch):
    # A whole-signal call with a filter per channel runs its rows' calls side by side
    # (two threads here), even when the signal is one call's worth of frames; a
    # stream computes its calls in its own thread (serial), its other threads busy.
    from conv1d_cli import kernels
    from conv1d_cli.stream import StreamChain

    seen: list[str] = []
    real = kernels._frames

    def frames(*args: object) -> None:
        seen.append(threading.current_thread().name)
        real(*args)

    monkeypatch.setattr(kernels, "_frames", frames)
    rng = np.random.default_rng(13)
    layer = Conv1d.from_weights(
        rng.standard_normal((2, 1, 9_000)).astype(np.float32), groups=2, padding="causal"
    )
    x = rng.standard_normal((1, 2, 60_000)).astype(np.float32)  # about 2 frames
    with threads.limit(2):
        whole = layer(x, method="fft")
        assert len(set(seen)) == 2
        seen.clear()
        chain = StreamChain([layer])
        parts = [chain.push(x[..., i : i + 10_000]) for i in range(0, 60_000, 10_000)]
        streamed = np.concatenate([*parts, chain.finish()], axis=-1)
    assert seen and set(seen) == {threading.current_thread().name}
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-5 * float(np.abs(whole).max()))
