"""Benchmarks for issue 12: ``conv1d apply`` on a Dask cluster, and NPY arrays larger than memory.

Scenarios (``--scenario``, repeatable; default all):

``files``
    ``--files`` stereo 48 kHz PCM_16 WAVs of ``--seconds`` each through a 101-tap
    lowpass: ``conv1d apply --jobs 2`` against ``--scheduler tcp://...`` on an
    already running ``LocalCluster`` of 2 single-threaded workers (interleaved
    rounds). The cluster's start-up is timed on its own line. The issue's
    numbers: ``--files 16 --seconds 600`` (target: overhead after start-up
    <= 15 %).
``overhead``
    ``--tiny`` files of 0.1 s each through the cluster: wall time per file is the
    per-task overhead (scheduling, the round trips, opening and renaming files),
    and files per second per worker bounds what many short files can reach.
``array``
    A float32 ``(8, L)`` NPY of ``--array-mib`` MiB through a 255-tap depthwise
    filter, ``--scheduler local:2`` with ``memory_limit`` ``--memory-limit`` per
    worker (the array path: chunks across the workers), against a whole-process
    ``conv1d apply`` (streaming, one process) of a quarter of the file; time per
    GiB and the workers' peak memory (sampled every 0.1 s). The issue's numbers:
    ``--array-mib 4096 --memory-limit 1GiB`` (targets: no worker above its limit;
    time per GiB within 1.5x of the quarter-file run).

Defaults are small (a minute on 2 cores). Inputs go into a temporary directory,
removed afterwards unless ``--keep``; nothing is written into the repository.
Every cluster listens on 127.0.0.1 only, without a dashboard.

Usage::

    python benchmarks/bench_scale.py                       # small versions of all three
    python benchmarks/bench_scale.py --scenario files --files 16 --seconds 600 --repeat 3
    python benchmarks/bench_scale.py --scenario array --array-mib 4096 --memory-limit 1GiB
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import firwin

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from conv1d_cli import Conv1d  # noqa: E402


def _cli(*args: str) -> float:
    """Wall time of one ``conv1d`` process (the CLI as a user runs it)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "conv1d_cli", *args], check=True, env=env, stderr=subprocess.PIPE
    )
    return time.perf_counter() - start


def _cluster(n: int = 2, memory_limit: str | None = None):
    from distributed import LocalCluster

    extra = {} if memory_limit is None else {"memory_limit": memory_limit}
    return LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        **extra,
    )


def _lowpass(path: Path, taps: int, channels: int) -> Path:
    h = firwin(taps, 4000, fs=48000)
    layer = Conv1d.from_weights(
        np.tile(h[::-1], (channels, 1, 1)).astype(np.float32), groups=channels, padding="same"
    )
    layer.save(path, overwrite=True)
    return path


def files(work: Path, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    layer = _lowpass(work / "lp101.npz", 101, 2)
    inputs = []
    for i in range(args.files):
        path = work / f"in{i}.wav"
        sf.write(path, rng.standard_normal((48000 * args.seconds, 2)) * 0.3, 48000, "PCM_16")
        inputs.append(str(path))
    start = time.perf_counter()
    cluster = _cluster()
    startup = time.perf_counter() - start
    print(f"cluster start-up (LocalCluster, 2 workers): {startup:.2f} s")
    jobs, dask = [], []
    try:
        for _ in range(args.repeat):
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            jobs.append(_cli("apply", "-w", str(layer), *inputs, "-d", str(out), "--jobs", "2"))
            shutil.rmtree(out, ignore_errors=True)
            dask.append(
                _cli(
                    "apply",
                    "-w",
                    str(layer),
                    *inputs,
                    "-d",
                    str(out),
                    "--scheduler",
                    cluster.scheduler_address,
                )  # fmt: skip
            )
    finally:
        cluster.close()
    ratios = [d / j for d, j in zip(dask, jobs, strict=True)]
    print(f"{args.files} files x {args.seconds} s, {args.repeat} rounds (medians)")
    print("| run | wall s |")
    print("|---|---|")
    print(f"| --jobs 2 | {statistics.median(jobs):.2f} |")
    print(f"| --scheduler (running LocalCluster, 2 workers) | {statistics.median(dask):.2f} |")
    print(f"cluster / --jobs 2: {statistics.median(ratios):.3f}x (median of per-round ratios)")


def overhead(work: Path, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    layer = _lowpass(work / "lp31.npz", 31, 1)
    inputs = []
    for i in range(args.tiny):
        path = work / f"t{i}.wav"
        sf.write(path, rng.standard_normal(4800) * 0.3, 48000, "PCM_16")
        inputs.append(str(path))
    with _cluster() as cluster:
        out = work / "tiny-out"
        _cli(
            "apply",
            "-w",
            str(layer),
            inputs[0],
            "-d",
            str(out),
            "--scheduler",
            cluster.scheduler_address,
        )  # fmt: skip  (warm the workers' imports)
        times = []
        for _ in range(args.repeat):
            shutil.rmtree(out, ignore_errors=True)
            times.append(
                _cli(
                    "apply",
                    "-w",
                    str(layer),
                    *inputs,
                    "-d",
                    str(out),
                    "--scheduler",
                    cluster.scheduler_address,
                )  # fmt: skip
            )
        one = []
        for _ in range(args.repeat):
            shutil.rmtree(out, ignore_errors=True)
            one.append(
                _cli(
                    "apply",
                    "-w",
                    str(layer),
                    inputs[0],
                    "-d",
                    str(out),
                    "--scheduler",
                    cluster.scheduler_address,
                )  # fmt: skip
            )
    total, single = statistics.median(times), statistics.median(one)
    per_file = (total - single) / (args.tiny - 1)
    print(f"{args.tiny} files of 0.1 s on 2 workers: {total:.2f} s; one file: {single:.2f} s")
    print(f"per file (marginal): {per_file * 1000:.1f} ms -> "
          f"{1 / per_file / 2:.0f} files/s per worker")  # fmt: skip


def _peak_memory(cluster, stop: threading.Event, peaks: dict[str, int]) -> None:
    from distributed import Client

    with Client(cluster) as client:
        while not stop.is_set():
            try:
                info = client.scheduler_info(n_workers=-1)["workers"]
            except TypeError:  # older distributed: no n_workers argument
                info = client.scheduler_info()["workers"]
            for address, worker in info.items():
                memory = int(worker["metrics"]["memory"])
                peaks[address] = max(peaks.get(address, 0), memory)
            time.sleep(0.1)


def array(work: Path, args: argparse.Namespace) -> None:
    channels = 8
    frames = args.array_mib * 2**20 // (4 * channels)
    source = work / "big.npy"
    mapped = np.lib.format.open_memmap(source, "w+", np.float32, (channels, frames))
    rng = np.random.default_rng(2)
    step = 1 << 22
    for start in range(0, frames, step):
        stop = min(frames, start + step)
        mapped[:, start:stop] = rng.standard_normal((channels, stop - start), np.float32)
    del mapped
    quarter = work / "quarter.npy"
    np.save(quarter, np.load(source, mmap_mode="r")[:, : frames // 4])
    layer = _lowpass(work / "lp255.npz", 255, channels)
    gib = args.array_mib / 1024
    local = statistics.median(
        _cli("apply", "-w", str(layer), str(quarter), "-o", str(work / "q-out.npy"))
        for _ in range(args.repeat)
    )
    with _cluster(memory_limit=args.memory_limit) as cluster:
        stop = threading.Event()
        peaks: dict[str, int] = {}
        sampler = threading.Thread(target=_peak_memory, args=(cluster, stop, peaks))
        sampler.start()
        try:
            times = [
                _cli(
                    "apply",
                    "-w",
                    str(layer),
                    str(source),
                    "-o",
                    str(work / "out.npy"),
                    "--scheduler",
                    cluster.scheduler_address,
                )  # fmt: skip
                for _ in range(args.repeat)
            ]
        finally:
            stop.set()
            sampler.join()
    dask = statistics.median(times)
    print(f"(8, {frames}) float32 = {args.array_mib} MiB, 255-tap depthwise, "
          f"memory_limit {args.memory_limit} per worker")  # fmt: skip
    print("| run | wall s | s per GiB |")
    print("|---|---|---|")
    print(f"| conv1d apply, quarter of the file, one process | {local:.2f} | "
          f"{local / (gib / 4):.2f} |")  # fmt: skip
    print(f"| --scheduler, whole file, 2 workers | {dask:.2f} | {dask / gib:.2f} |")
    print(f"time per GiB, cluster / one process: {(dask / gib) / (local / (gib / 4)):.2f}x")
    for address, peak in sorted(peaks.items()):
        print(f"peak memory {address}: {peak / 2**20:.0f} MiB")


SCENARIOS = {"files": files, "overhead": overhead, "array": array}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--files", type=int, default=4, help="files (default 4; issue: 16)")
    parser.add_argument(
        "--seconds", type=int, default=30, help="seconds per file (default 30; issue: 600)"
    )
    parser.add_argument("--tiny", type=int, default=40, help="0.1-s files for 'overhead'")
    parser.add_argument(
        "--array-mib", type=int, default=128, help="NPY size in MiB (default 128; issue: 4096)"
    )
    parser.add_argument("--memory-limit", default="1GiB", help="per worker, for 'array'")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (medians reported)")
    parser.add_argument("--keep", type=Path, help="generate into and keep this directory")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="conv1d-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for name in args.scenario or list(SCENARIOS):
            print(f"\n## {name} (load average {os.getloadavg()[0]:.1f})")
            SCENARIOS[name](work, args)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
