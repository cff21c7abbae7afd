"""``conv1d apply --scheduler``: files on a Dask cluster, on loopback only (issue 12, item 1).

Every cluster binds 127.0.0.1 with no dashboard; every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
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
from conv1d_cli.layer import Conv1d

HAVE_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="needs the [dask] extra")
REPO = Path(__file__).resolve().parents[1]


def _local_cluster(**config):
    import dask
    from distributed import LocalCluster

    with dask.config.set(config):
        return LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # The scheduler serves /health etc. even so: on loopback, any free port
            # (its default 8787 warns when a second cluster runs).
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )


@pytest.fixture(scope="module")
def cluster():
    if not HAVE_DASK:
        pytest.skip("needs the [dask] extra")
    with _local_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 small files of mixed formats and a 2-layer chain (depthwise, then a mixing layer)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(12)
    a = Conv1d.from_weights(
        (rng.standard_normal((2, 1, 9)) * 0.2).astype(np.float32), groups=2, padding="same"
    )
    b = Conv1d.from_weights((rng.standard_normal((2, 2, 5)) * 0.3).astype(np.float32), stride=1)
    a.save(root / "a.npz")
    b.save(root / "b.npz")
    inputs = []
    for i, (fmt, subtype) in enumerate(
        [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("wav", "PCM_16"),
         ("flac", "PCM_16"), ("flac", "PCM_24"), ("flac", "PCM_16")]
    ):  # fmt: skip
        path = root / f"s{i}.{fmt}"
        sf.write(path, rng.standard_normal((3000 + 100 * i, 2)) * 0.4, 8000, subtype=subtype)
        inputs.append(path)
    for i in range(3):
        path = root / f"c{i}.csv"
        np.savetxt(path, rng.standard_normal((400 + i, 2)), delimiter=",", header="x,y",
                   comments="")  # fmt: skip
        inputs.append(path)
    for i in range(2):
        path = root / f"n{i}.npy"
        np.save(path, rng.standard_normal((2, 2, 700 + i)))
        inputs.append(path)
    return root, [str(p) for p in inputs]


def _apply(args):
    return CliRunner().invoke(cli, ["apply", *args], prog_name="conv1d")


def _same_outputs(left: Path, right: Path) -> None:
    names = sorted(p.name for p in left.iterdir())
    assert names == sorted(p.name for p in right.iterdir())
    for name in names:
        x, y = left / name, right / name
        if name.endswith(".wav") and sf.info(x).subtype == "FLOAT":
            # libsndfile's PEAK chunk holds a timestamp: compare the samples.
            assert sf.info(x).samplerate == sf.info(y).samplerate
            assert np.array_equal(sf.read(x)[0], sf.read(y)[0])
        else:
            assert x.read_bytes() == y.read_bytes(), name


def _no_temps(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if ".tmp" in p.name] == []


@needs_dask
def test_cluster_outputs_equal_a_local_run(cluster, corpus, tmp_path):
    root, inputs = corpus
    chain = ["-w", str(root / "a.npz"), "-w", str(root / "b.npz")]
    local = _apply([*chain, *inputs, "-d", str(tmp_path / "local"), "--jobs", "1"])
    assert local.exit_code == 0, local.output
    remote = _apply(
        [*chain, *inputs, "-d", str(tmp_path / "remote"), "--scheduler", cluster.scheduler_address]
    )
    assert remote.exit_code == 0, remote.output
    assert remote.stderr == local.stderr
    _same_outputs(tmp_path / "local", tmp_path / "remote")
    _no_temps(tmp_path / "remote")


@needs_dask
def test_cluster_keep_going_reports_like_a_local_run(cluster, corpus, tmp_path):
    root, inputs = corpus
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,oops\n")
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((2, 3)))
    files = [*inputs[:4], str(bad), *inputs[4:8], str(short), *inputs[8:]]
    chain = ["-w", str(root / "a.npz"), "-w", str(root / "b.npz"), "--keep-going"]
    local = _apply([*chain, *files, "-d", str(tmp_path / "local")])
    remote = _apply([*chain, *files, "-d", str(tmp_path / "remote"), "--scheduler",
                     cluster.scheduler_address])  # fmt: skip
    assert local.exit_code == remote.exit_code == 1
    assert remote.stderr == local.stderr
    assert "Error: 2 of 14 inputs failed" in remote.stderr
    _same_outputs(tmp_path / "local", tmp_path / "remote")
    assert len(list((tmp_path / "remote").iterdir())) == 12
    _no_temps(tmp_path / "remote")


@needs_dask
def test_cluster_first_failure_stops_without_keep_going(cluster, corpus, tmp_path):
    root, inputs = corpus
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,oops\n")
    result = _apply(["-w", str(root / "a.npz"), str(bad), *inputs[:3], "-d",
                     str(tmp_path / "out"), "--scheduler", cluster.scheduler_address])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "bad.csv" in result.stderr
    _no_temps(tmp_path / "out")


@needs_dask
@pytest.mark.slow
@pytest.mark.parametrize("other", ["writing", "starting"])
def test_cluster_first_failure_returns_after_the_running_tasks_stopped(
    cluster, tmp_path, monkeypatch, other
):
    """The bad file fails while the other worker is writing a big file, or has just started
    its task: the command returns only once no task of the run is left on a worker (a
    cancelled Dask task runs on in its thread; the scheduler forgets it at once), and no
    temporary file is left then or later."""
    from conv1d_cli import cluster as cluster_mod

    rng = np.random.default_rng(10)
    layer = tmp_path / "lp.npz"
    Conv1d.from_weights(np.full((1, 1, 31), 1 / 31), padding="same").save(layer)
    bad = tmp_path / "bad.csv"
    bad.write_text("x\noops\n")
    inputs = [str(bad)]
    for i in range(2):
        path = tmp_path / f"big{i}.wav"
        sf.write(path, rng.standard_normal(1_000_000) * 0.3, 48000, subtype="PCM_16")
        inputs.append(str(path))
    out, log, started = tmp_path / "out", tmp_path / "ends.log", tmp_path / "started"
    out.mkdir()
    real = cluster_mod._task

    def task(job, chain, event_name, since, index=0):  # on a worker (pickled by value)
        deadline = time.monotonic() + 20
        if index == 0:  # fail only once big0 runs (and, if "writing", writes)
            while time.monotonic() < deadline and not (
                started.exists() and (other == "starting" or any(out.glob(".big0.*")))
            ):
                time.sleep(0.01)
        elif index == 1:
            started.touch()
            if other == "starting":  # still before its temporary file when bad.csv fails
                time.sleep(1.0)
        try:
            return real(job, chain, event_name, since, index)
        finally:
            with open(log, "a") as fh:
                fh.write(f"{index} {time.time()!r}\n")

    monkeypatch.setattr(cluster_mod, "_task", task)
    result = _apply(["-w", str(layer), *inputs, "-d", str(out), "--block-size", "64",
                     "--scheduler", cluster.scheduler_address])  # fmt: skip
    returned = time.time()
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {bad}: "), result.stderr
    assert list(out.iterdir()) == []  # big0 stopped before its end, big1 never started
    ends = {int(i): float(t) for i, t in (line.split() for line in log.read_text().splitlines())}
    assert 0 in ends, ends
    assert 1 in ends, "big0's task was still running when the command returned"
    assert {i: t - returned for i, t in ends.items() if t > returned} == {}, "ran on after return"
    time.sleep(1.5)  # nothing on the cluster writes anything more
    assert list(out.iterdir()) == []


@needs_dask
def test_cluster_refuses_paths_the_workers_cannot_see(cluster, corpus, tmp_path, monkeypatch):
    root, inputs = corpus
    from conv1d_cli import cluster as cluster_mod

    def blind(paths, outdirs):  # runs on the workers: they see none of our paths
        return list(paths) + list(outdirs)

    monkeypatch.setattr(cluster_mod, "_visible", blind)
    result = _apply(["-w", str(root / "a.npz"), inputs[0], "-d", str(tmp_path / "out"),
                     "--scheduler", cluster.scheduler_address])  # fmt: skip
    assert result.exit_code == 1
    assert "2 of 2 Dask workers cannot see" in result.stderr
    assert "storage shared with the workers" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_scheduler_without_dask_says_how_to_install(monkeypatch, corpus):
    root, inputs = corpus
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "distributed" else real(name, *a),
    )
    result = _apply(["-w", str(root / "a.npz"), inputs[0], "-o", "x.wav", "--scheduler", "local:2"])
    assert result.exit_code == 2
    assert "pip install 'conv1d-cli[dask]'" in result.stderr


@needs_dask
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "local:0"], "expected local:N"),
        (["--scheduler", "local:2", "--jobs", "2"], "either --jobs or --scheduler"),
    ],
)
def test_scheduler_bad_invocations_exit_2(corpus, tmp_path, args, message):
    root, inputs = corpus
    result = _apply(["-w", str(root / "a.npz"), inputs[0], "-d", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.stderr


def _worker_filtering(client, index, deadline):
    """The address of the worker filtering input ``index`` (None if none by the deadline)."""
    while time.monotonic() < deadline:
        for worker, tasks in client.processing().items():
            if any(str(key).startswith("conv1d-file-") and str(key).endswith(f"-{index}")
                   for key in tasks):  # fmt: skip
                return worker
        time.sleep(0.05)
    return None


def _temp_appeared(folder: Path, stem: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if any(p.name.startswith(f".{stem}.") for p in folder.iterdir()):
            return True
        time.sleep(0.02)
    return False


@needs_dask
@pytest.mark.slow
@pytest.mark.parametrize("allowed_failures", [3, 0])
def test_cluster_worker_killed_mid_file(tmp_path, allowed_failures):
    """SIGKILL the worker writing a file: retried to completion, or (no retries) reported
    failed while the others complete; either way nothing partial is left."""
    from distributed import Client

    rng = np.random.default_rng(5)
    layer = tmp_path / "lp.npz"
    Conv1d.from_weights(np.full((1, 1, 31), 1 / 31), padding="same").save(layer)
    big = tmp_path / "big.wav"
    sf.write(big, rng.standard_normal(1_500_000) * 0.3, 48000, subtype="PCM_16")
    small = []
    for i in range(3):
        path = tmp_path / f"small{i}.csv"
        np.savetxt(path, rng.standard_normal(300))
        small.append(str(path))
    out = tmp_path / "out"
    out.mkdir()
    with _local_cluster(**{"distributed.scheduler.allowed-failures": allowed_failures}) as c:
        with Client(c) as client:
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            proc = subprocess.Popen(
                [sys.executable, "-m", "conv1d_cli", "apply", "-w", str(layer), str(big), *small,
                 "-d", str(out), "--block-size", "256", "--keep-going",
                 "--scheduler", c.scheduler_address],
                stderr=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 30
                assert _temp_appeared(out, "big", deadline), "the big file never started"
                worker = _worker_filtering(client, 0, deadline)
                assert worker is not None
                pid = client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                _, stderr = proc.communicate(timeout=60)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if ".tmp" in n], names
    # Every file is written or reported (without retries, a file queued on the
    # killed worker fails with it: Dask's rule).
    for i in range(3):
        assert f"small{i}.csv" in names or f"Error: {small[i]}: the Dask worker" in stderr
    if allowed_failures:
        assert proc.returncode == 0, stderr
        assert "big.wav" in names
        frames = sf.info(out / "big.wav").frames
        assert frames == 1_500_000
    else:
        assert proc.returncode == 1, stderr
        assert "big.wav" not in names
        assert f"Error: {big}: the Dask worker filtering it failed (KilledWorker" in stderr
        failed = 4 - len(names)
        assert f"Error: {failed} of 4 inputs failed" in stderr


@needs_dask
@pytest.mark.slow
def test_cluster_ctrl_c_cancels_and_leaves_nothing(cluster, tmp_path):
    """Ctrl-C: the running task sees the cancel flag and removes its temp file; the queued
    ones are cancelled; exit 130 and no output."""
    from distributed import Client

    rng = np.random.default_rng(6)
    layer = tmp_path / "lp.npz"
    Conv1d.from_weights(np.full((1, 1, 31), 1 / 31), padding="same").save(layer)
    inputs = []
    for i in range(4):
        path = tmp_path / f"big{i}.wav"
        sf.write(path, rng.standard_normal(1_000_000) * 0.3, 48000, subtype="PCM_16")
        inputs.append(str(path))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conv1d_cli", "apply", "-w", str(layer), *inputs, "-d", str(out),
         "--block-size", "256", "--scheduler", cluster.scheduler_address],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert _temp_appeared(out, "big0", time.monotonic() + 30), "nothing started"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert [p.name for p in out.iterdir() if ".tmp" in p.name] == []
    with Client(cluster) as client:
        deadline = time.monotonic() + 20
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(client.processing().values())


@needs_dask
@pytest.mark.slow
def test_cluster_separate_scheduler_and_worker_processes(corpus, tmp_path):
    """`dask scheduler` and `dask worker` started on their own (as on HPC), on loopback."""
    import json

    root, inputs = corpus
    scheduler_file = tmp_path / "scheduler.json"
    loopback = ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0",
         "--scheduler-file", str(scheduler_file), *loopback],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 30
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
             "--nworkers", "1", *loopback],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=30)
        chain = ["-w", str(root / "a.npz"), "-w", str(root / "b.npz")]
        local = _apply([*chain, *inputs, "-d", str(tmp_path / "local")])
        remote = _apply([*chain, *inputs, "-d", str(tmp_path / "remote"), "--scheduler", address])
        assert remote.exit_code == local.exit_code == 0, remote.output
        assert remote.stderr == local.stderr
        _same_outputs(tmp_path / "local", tmp_path / "remote")
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@needs_dask
@pytest.mark.parametrize("layout", ["C (N, C, L)", "Fortran (C, L)", "(L,)"])
def test_cluster_npy_goes_as_a_dask_array(cluster, tmp_path, monkeypatch, layout):
    """`apply big.npy -o out.npy --scheduler ...`: chunks across the workers (small chunks
    here, so the file is many tasks), values equal a local streamed run's."""
    from conv1d_cli import npyarray as cluster_mod

    monkeypatch.setattr(cluster_mod, "CHUNK_SAMPLES", 4096)
    rng = np.random.default_rng(8)
    source = tmp_path / "big.npy"
    channels = 1 if layout == "(L,)" else 2
    x = {
        "C (N, C, L)": lambda: rng.standard_normal((2, 2, 20_000)),
        "Fortran (C, L)": lambda: np.asfortranarray(rng.standard_normal((2, 20_000))),
        "(L,)": lambda: rng.standard_normal(20_000).astype(np.float32),
    }[layout]()
    np.save(source, x)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    Conv1d.from_weights(rng.standard_normal((channels, 1, 33)), groups=channels, padding="same",
                        padding_mode="reflect").save(a)  # fmt: skip
    Conv1d.from_weights(rng.standard_normal((3, channels, 4)), stride=2, padding="causal").save(b)
    calls = []
    real = cluster_mod.filter_npy_array

    def spy(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs, chunk_samples=4096)

    monkeypatch.setattr(cluster_mod, "filter_npy_array", spy)
    chain = ["-w", str(a), "-w", str(b), str(source)]
    local = _apply([*chain, "-o", str(tmp_path / "local.npy")])
    remote = _apply([*chain, "-o", str(tmp_path / "remote.npy"), "--scheduler",
                     cluster.scheduler_address])  # fmt: skip
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert len(calls) == 1
    want, got = np.load(tmp_path / "local.npy"), np.load(tmp_path / "remote.npy")
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want))
    _no_temps(tmp_path)


@needs_dask
@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_cluster_npy_stretches_read_their_own_halo_unless_circular(
    cluster, tmp_path, monkeypatch, mode
):
    """Without circular padding each output stretch is one task reading its halo from the
    file (no task waits on another); circular padding takes the general Dask-array path."""
    from conv1d_cli import dask as dconv
    from conv1d_cli import npyarray

    rng = np.random.default_rng(9)
    source = tmp_path / "big.npy"
    np.save(source, rng.standard_normal((3, 30_000)))
    layer = tmp_path / "a.npz"
    Conv1d.from_weights(rng.standard_normal((3, 1, 65)), groups=3, padding="same",
                        padding_mode=mode).save(layer)  # fmt: skip
    real = npyarray.filter_npy_array
    monkeypatch.setattr(
        npyarray, "filter_npy_array", lambda *a, **k: real(*a, **k, chunk_samples=3 * 4096)
    )
    general = []
    real_conv = dconv.conv1d
    monkeypatch.setattr(dconv, "conv1d", lambda *a, **k: general.append(1) or real_conv(*a, **k))
    args = ["-w", str(layer), str(source)]
    local = _apply([*args, "-o", str(tmp_path / "local.npy")])
    remote = _apply([*args, "-o", str(tmp_path / "remote.npy"), "--scheduler",
                     cluster.scheduler_address])  # fmt: skip
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert bool(general) == (mode == "circular")
    want, got = np.load(tmp_path / "local.npy"), np.load(tmp_path / "remote.npy")
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-12 * np.max(np.abs(want))
    _no_temps(tmp_path)


@needs_dask
def test_cluster_npy_nonfinite_is_reported_like_a_local_run(cluster, tmp_path):
    x = np.zeros((2, 5000))
    x[1, 3210] = np.nan
    source = tmp_path / "nan.npy"
    np.save(source, x)
    layer = tmp_path / "a.npz"
    Conv1d.from_weights(np.ones((2, 1, 3)), groups=2).save(layer)
    args = ["-w", str(layer), str(source)]
    local = _apply([*args, "-o", str(tmp_path / "local.npy")])
    remote = _apply([*args, "-o", str(tmp_path / "remote.npy"), "--scheduler",
                     cluster.scheduler_address])  # fmt: skip
    assert local.exit_code == remote.exit_code == 1
    assert remote.stderr == local.stderr
    assert "channel 1, sample 3210" in remote.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "nan.npy"]


@needs_dask
def test_cluster_scheduler_from_dask_config(cluster, corpus, tmp_path):
    """`--scheduler config`: Dask's scheduler-address (which DASK_SCHEDULER_ADDRESS sets)."""
    import dask

    root, inputs = corpus
    args = ["-w", str(root / "a.npz"), inputs[0], "-d", str(tmp_path / "out")]
    with dask.config.set({"scheduler-address": cluster.scheduler_address}):
        result = _apply([*args, "--scheduler", "config"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / Path(inputs[0]).name).exists()
    with dask.config.set({"scheduler-address": None}):
        result = _apply([*args, "--scheduler", "config"])
    assert result.exit_code == 2
    assert "DASK_SCHEDULER_ADDRESS" in result.stderr


@needs_dask
def test_cluster_refuses_workers_with_another_conv1d(cluster, corpus, tmp_path, monkeypatch):
    root, inputs = corpus
    from conv1d_cli import cluster as cluster_mod

    def old_version():  # runs on the workers (pickled by value): an older install there
        return "0.0.1"

    monkeypatch.setattr(cluster_mod, "_worker_version", old_version)
    result = _apply(["-w", str(root / "a.npz"), inputs[0], "-d", str(tmp_path / "out"),
                     "--scheduler", cluster.scheduler_address])  # fmt: skip
    assert result.exit_code == 1
    assert "runs conv1d 0.0.1" in result.stderr and "install the same version" in result.stderr


@needs_dask
def test_jobs_errors_survive_an_imported_dask(tmp_path):
    """`import dask` installs tblib's exception pickling process-wide (causes, contexts and
    tracebacks are pickled too). In a pytest process where any test module had imported
    dask, a --jobs worker's error then failed to pickle (RecursionError) and the pool
    reported the worker dead: test_cli_apply's --keep-going test failed. Run exactly that."""
    imports_dask = tmp_path / "test_imports_dask.py"
    imports_dask.write_text("import dask  # noqa: F401\n")
    target = "tests/test_cli_apply.py::test_apply_keep_going_reports_all_failures"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:logging", target, str(imports_dask)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]


@needs_dask
def test_cluster_level_options_and_dither_equal_a_local_run(cluster, corpus, tmp_path):
    # --gain/--normalize/--dither live in the file pipeline: a cluster run (one NPY too,
    # which would otherwise go as a Dask array) must give --jobs' bytes; each file's
    # dither noise comes from its position among the inputs, on a worker as locally.
    root, inputs = corpus
    wavs = [p for p in inputs if p.endswith(".wav") and sf.info(p).subtype == "PCM_16"]
    chain = ["-w", str(root / "a.npz")]
    dither = ["--dither", "tpdf", "--seed", "3", "--gain", "-3"]
    local = _apply([*chain, *wavs, "-d", str(tmp_path / "local"), "--jobs", "2", *dither])
    assert local.exit_code == 0, local.output
    remote = _apply(
        [*chain, *wavs, "-d", str(tmp_path / "remote"), "--scheduler", cluster.scheduler_address,
         *dither]
    )  # fmt: skip
    assert remote.exit_code == 0, remote.output
    _same_outputs(tmp_path / "local", tmp_path / "remote")
    npy = next(p for p in inputs if p.endswith(".npy"))
    for where, extra in (
        ("l.npy", ["--jobs", "1"]),
        ("r.npy", ["--scheduler", cluster.scheduler_address]),
    ):
        result = _apply([*chain, npy, "-o", str(tmp_path / where), "--normalize", "-1", *extra])
        assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(tmp_path / "l.npy"), np.load(tmp_path / "r.npy"))
    assert np.isclose(np.abs(np.load(tmp_path / "r.npy")).max(), 10 ** (-1 / 20))
    # --json reports the file (the array path is for plain NPY runs only)
    result = _apply(
        [*chain, npy, "-o", str(tmp_path / "j.npy"), "--scheduler", cluster.scheduler_address,
         "--json"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["input"] == npy


@needs_dask
@pytest.mark.parametrize("address", ["local:0", "local:x"])
def test_scheduler_errors_name_the_parameter_not_the_flag(address):
    """The library names the parameter; the command line shows it as --scheduler."""
    from conv1d_cli import cluster as cluster_mod
    from conv1d_cli.cli._common import error_text
    from conv1d_cli.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        cluster_mod.connect(address)
    assert info.value.parameter == "scheduler"
    assert str(info.value) == f"scheduler {address}: expected local:N with N >= 1 workers"
    assert error_text(info.value) == f"--scheduler {address}: expected local:N with N >= 1 workers"


def test_relabel_keeps_the_error_fields():
    """A worker's error names the files as typed, and still carries its parameter."""
    from conv1d_cli import cluster as cluster_mod
    from conv1d_cli.cli._common import error_text
    from conv1d_cli.errors import ConfigError
    from conv1d_cli.pipeline import Job

    sent, given = Job("/abs/in.wav", "/abs/out.wav"), Job("in.wav", "out.wav")
    error = ConfigError("{parameter} is too low for /abs/in.wav", parameter="sample_rate",
                        path="/abs/out.wav", output=True, hint="see --help")  # fmt: skip
    relabelled = cluster_mod._relabel(error, sent, given)
    assert type(relabelled) is ConfigError
    assert (relabelled.parameter, relabelled.path, relabelled.hint) == (
        "sample_rate", "out.wav", "see --help")  # fmt: skip
    assert error_text(relabelled) == "out.wav: --sample-rate is too low for in.wav (see --help)"
    untouched = ConfigError("nothing to rename", parameter="sample_rate")
    assert cluster_mod._relabel(untouched, sent, given) is untouched


def test_npy_file_reads_and_writes_chunks(tmp_path):
    """NpyFile: time slices of C and Fortran files read as numpy would; a time-major file
    written chunk by chunk loads as the whole array; a truncated file is an error."""
    from conv1d_cli import npyarray as cluster_mod
    from conv1d_cli.errors import DataFileError

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 50)).astype(np.float32)
    for order in ("C", "F"):
        path = tmp_path / f"{order}.npy"
        np.save(path, np.asarray(x, order=order))
        source = cluster_mod.NpyFile(str(path))
        assert source.shape == x.shape and source.fortran == (order == "F")
        got = source[:, :, 7:31]
        assert got.flags.c_contiguous and np.array_equal(got, x[:, :, 7:31])
    target = cluster_mod.NpyFile.create(str(tmp_path / "out.npy"), x.shape, np.float32)
    for start in range(0, 50, 16):
        target[:, :, start : start + 16] = x[:, :, start : start + 16]
    written = np.load(tmp_path / "out.npy")
    assert np.isfortran(written) and np.array_equal(written, x)
    truncated = tmp_path / "short.npy"
    truncated.write_bytes((tmp_path / "C.npy").read_bytes()[:-40])
    with pytest.raises(DataFileError, match="ends before"):
        cluster_mod.NpyFile(str(truncated))[:, :, 40:50]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_workers_keep_freed_chunk_buffers():
    """The array path's workers keep freed chunk buffers (in a child: it is process-wide)."""
    code = "from conv1d_cli.heap import keep_buffers as k; print(k())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert proc.stdout.strip() in ("True", "False"), proc.stderr  # False: not glibc
