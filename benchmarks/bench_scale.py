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
    """Wall time of one ``conv1d`` process (the CLI as a user runs it).

    Whatever earlier steps left unwritten (the generated inputs, the last run's
    output) goes to the disk first, untimed: each run's final fsync then waits for
    its own data only, as bench_apply's runs do.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    os.sync()
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
    print(f"cluster start-up (LocalCluster, 2 workers, in this process): {startup:.2f} s")
    out = work / "out"
    chain = ["apply", "-w", str(layer), *inputs, "-d", str(out)]
    contestants = {
        "--jobs 2": [*chain, "--jobs", "2"],
        "--scheduler tcp://... (running LocalCluster, 2 workers)": [
            *chain, "--scheduler", cluster.scheduler_address
        ],
        "--scheduler local:2 (start-up included)": [*chain, "--scheduler", "local:2"],
    }  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in contestants}
    loads = [os.getloadavg()[0]]
    try:
        for _ in range(args.repeat):
            for name, command in contestants.items():
                shutil.rmtree(out, ignore_errors=True)
                time.sleep(args.settle)
                times[name].append(_cli(*command))
            loads.append(os.getloadavg()[0])
    finally:
        cluster.close()
        shutil.rmtree(out, ignore_errors=True)
    jobs, running, local = (times[name] for name in contestants)
    print(f"{args.files} files x {args.seconds} s, {args.repeat} interleaved rounds, load "
          f"average per round {', '.join(f'{x:.1f}' for x in loads)}")  # fmt: skip
    print("| run | median s | min s | / --jobs 2 (median of per-round ratios) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        ratio = statistics.median(v / j for v, j in zip(values, jobs, strict=True))
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {ratio:.3f} |")
    after = statistics.median(r - j for r, j in zip(running, jobs, strict=True))
    print(f"cluster overhead after start-up: {after:+.2f} s per run "
          f"({statistics.median(r / j for r, j in zip(running, jobs, strict=True)) - 1:+.1%}; "
          f"target <= +15 %); local:2 minus the running cluster: "
          f"{statistics.median(local) - statistics.median(running):.2f} s")  # fmt: skip


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

        def run(files: list[str]) -> float:
            shutil.rmtree(out, ignore_errors=True)
            return _cli("apply", "-w", str(layer), *files, "-d", str(out),
                        "--scheduler", cluster.scheduler_address)  # fmt: skip

        run(inputs[:1])  # warm the workers' imports
        times = [run(inputs) for _ in range(args.repeat)]
        one = [run(inputs[:1]) for _ in range(args.repeat)]
    total, single = statistics.median(times), statistics.median(one)
    per_file = (total - single) / (args.tiny - 1)
    print(f"{args.tiny} files of 0.1 s on 2 workers: {total:.2f} s; one file: {single:.2f} s")
    print(f"per file (marginal): {per_file * 1000:.1f} ms -> "
          f"{1 / per_file / 2:.0f} files/s per worker")  # fmt: skip


def _peak_memory(cluster, stop: threading.Event, peaks: dict[str, int]) -> None:
    """Dask's own view of each worker's memory (what its nanny compares to the limit)."""
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


def _peak_rss() -> int:
    """On a worker: its process's peak resident memory so far, in bytes (the kernel's).

    ``VmHWM``, not ``getrusage``'s ``ru_maxrss``: a worker is forked from the nanny's
    process and then exec'd, and ``ru_maxrss`` keeps the forked parent's size.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _write_npy(path: Path, channels: int, frames: int, seed: int) -> None:
    mapped = np.lib.format.open_memmap(path, "w+", np.float32, (channels, frames))
    rng = np.random.default_rng(seed)
    step = 1 << 22
    for start in range(0, frames, step):
        stop = min(frames, start + step)
        mapped[:, start:stop] = rng.standard_normal((channels, stop - start), np.float32)
    del mapped


def array(work: Path, args: argparse.Namespace) -> None:
    from distributed import Client

    channels = 8
    frames = args.array_mib * 2**20 // (4 * channels)
    source, quarter = work / "big.npy", work / "quarter.npy"
    _write_npy(source, channels, frames, 2)
    np.save(quarter, np.load(source, mmap_mode="r")[:, : frames // 4])
    layer = _lowpass(work / "lp255.npz", 255, channels)
    gib = args.array_mib / 1024
    outputs = [work / "q-out.npy", work / "out.npy"]
    local, dask, loads = [], [], [os.getloadavg()[0]]
    with _cluster(memory_limit=args.memory_limit) as cluster, Client(cluster) as client:
        workers = sorted(client.scheduler_info()["workers"])
        stop = threading.Event()
        peaks: dict[str, int] = {}
        sampler = threading.Thread(target=_peak_memory, args=(cluster, stop, peaks))
        sampler.start()
        try:
            for _ in range(args.repeat):
                for target in outputs:
                    target.unlink(missing_ok=True)
                time.sleep(args.settle)
                local.append(_cli("apply", "-w", str(layer), str(quarter), "-o", str(outputs[0])))
                time.sleep(args.settle)
                dask.append(
                    _cli(
                        "apply",
                        "-w",
                        str(layer),
                        str(source),
                        "-o",
                        str(outputs[1]),
                        "--scheduler",
                        cluster.scheduler_address,
                    )  # fmt: skip
                )
                loads.append(os.getloadavg()[0])
        finally:
            stop.set()
            sampler.join()
        rss = client.run(_peak_rss)
        restarted = sorted(client.scheduler_info()["workers"]) != workers
    for target in outputs:
        target.unlink(missing_ok=True)
    per_gib_local = [t / (gib / 4) for t in local]
    per_gib_dask = [t / gib for t in dask]
    ratios = [d / q for d, q in zip(per_gib_dask, per_gib_local, strict=True)]
    print(f"(8, {frames}) float32 = {args.array_mib} MiB, 255-tap depthwise, "
          f"memory_limit {args.memory_limit} per worker; {args.repeat} interleaved rounds, "
          f"load average per round {', '.join(f'{x:.1f}' for x in loads)}")  # fmt: skip
    print("| run | median s | min s | s per GiB (median) |")
    print("|---|---|---|---|")
    print(f"| conv1d apply, quarter of the file, one process | {statistics.median(local):.2f} | "
          f"{min(local):.2f} | {statistics.median(per_gib_local):.2f} |")  # fmt: skip
    print(f"| --scheduler, whole file, 2 workers | {statistics.median(dask):.2f} | "
          f"{min(dask):.2f} | {statistics.median(per_gib_dask):.2f} |")  # fmt: skip
    print(
        f"time per GiB, cluster / one process: {statistics.median(ratios):.2f}x (median of "
        f"per-round ratios; rounds {', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.5x)"
    )
    print(
        "rounds, one process / cluster s: "
        + ", ".join(f"{q:.2f} / {d:.2f}" for q, d in zip(local, dask, strict=True))
    )
    for address in sorted(rss):
        print(
            f"peak memory {address}: {rss[address] / 2**20:.0f} MiB resident (kernel's "
            f"high-water mark), {peaks.get(address, 0) / 2**20:.0f} MiB as Dask saw it"
        )
    print(f"workers restarted (a worker over its limit is killed): {'YES' if restarted else 'no'}")


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
    parser.add_argument(
        "--settle", type=float, default=1.0, help="idle seconds before each timed run"
    )
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
