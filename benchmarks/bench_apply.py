"""Benchmarks for ``conv1d apply``: bounded memory (issue 5), speed and threads (issue 11).

Scenarios (``--scenario``, repeatable; default all):

``rss``
    Peak RSS: a 1-hour stereo 48 kHz PCM_16 WAV through a 1025-tap lowpass
    (target < 100 MiB; the interpreter and imports alone are ~55 MiB).
``sox``
    Whole-process wall time on a 10-minute stereo 48 kHz PCM_16 WAV with the same
    1025-tap lowpass, against ``sox in.wav out.wav fir coeffs.txt`` (target: no
    slower than sox).
``single``
    One process on an otherwise idle machine, K in 31, 101, 255, 1025, 4097 taps:
    conv1d against ``sox -D in.wav out.wav fir taps.txt`` and FFmpeg's afir (the
    command of FILTERING-NOTES.md: unit gain, stereo out), ratio per K.
``batch``
    8 ten-minute files, 101 taps: ``--jobs 1``, ``--jobs 2``, ``xargs -P2`` of
    single-file runs, ``make -f examples/Makefile -j2``, against ``xargs -P2 sox``
    and sox one file after another (targets: ``--jobs 2`` >= 1.7x faster than
    ``--jobs 1 --threads 1``, and never slower).
``busy``
    One file beside one busy process (``sh -c 'while :; do :; done'``) against
    the same run (``--threads 1``) with nothing beside it.

Every contestant of a scenario runs once per round, interleaved, so background
load hits all alike; the report gives medians and the median of the per-round
ratios, of wall time and of CPU time (user + sys of the command and the children
it waited for: the work done, which other sessions' load disturbs less than the
wall time), plus the load average before, during and after. ``--quick`` runs a small version
(1-minute files, 4 of them, K 101 and 1025, 2 rounds).

The big WAVs are generated into a temporary directory (removed afterwards unless
``--keep``); nothing is written into the repository. Peak RSS and times are
measured on the child process with ``os.wait4`` (``ru_maxrss``, the same number
``/usr/bin/time -v`` prints as "Maximum resident set size").

Usage::

    python benchmarks/bench_apply.py            # every scenario
    python benchmarks/bench_apply.py --skip-rss --repeat 5
    python benchmarks/bench_apply.py --scenario batch --scenario busy --repeat 3
    python benchmarks/bench_apply.py --quick --keep /tmp/bench-inputs
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import firwin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conv1d_cli.io.layerfile import save_layer  # noqa: E402
from conv1d_cli.layer import Conv1d  # noqa: E402
from conv1d_cli.threads import BLAS_ENV_VARS  # noqa: E402

RATE = 48000
TAPS = 1025
CHUNK = 1 << 20


def make_wav(path: Path, seconds: int, seed: int = 0) -> None:
    """Seeded noise plus a tone, written in chunks (never the whole file in memory)."""
    rng = np.random.default_rng(seed)
    frames = seconds * RATE
    with sf.SoundFile(path, "w", RATE, 2, "PCM_16", format="WAV") as f:
        for start in range(0, frames, CHUNK):
            n = min(CHUNK, frames - start)
            t = (start + np.arange(n)) / RATE
            tone = 0.3 * np.sin(2 * np.pi * 440 * t)
            block = 0.1 * rng.standard_normal((n, 2)) + tone[:, None]
            f.write(block.astype(np.float32))


def make_filter(directory: Path) -> tuple[Path, Path]:
    taps = firwin(TAPS, 8000, fs=RATE)
    layer = Conv1d.from_weights(
        np.stack([taps, taps])[:, None, :].astype(np.float32), groups=2, padding="same"
    )
    layer.sample_rate = float(RATE)
    layer_path = directory / "lowpass1025.npz"
    save_layer(layer, layer_path, overwrite=True)
    coeffs = directory / "coeffs.txt"
    # Symmetric taps: SoX's convolution and conv1d's correlation agree, and
    # SoX's alignment (K//2, (K-1)//2) equals padding 'same' for odd K.
    coeffs.write_text("\n".join(repr(float(v)) for v in taps) + "\n")
    return layer_path, coeffs


def _settle_disk() -> None:
    """Write back what earlier runs left dirty, before the timer starts.

    SoX and FFmpeg do not fsync their outputs, conv1d does (atomic outputs): without
    this, the ~1 GB a batch of SoX runs leaves in the page cache is written back
    during whichever run comes next, and a conv1d run's fsync waits behind it.
    """
    os.sync()


def run(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB) of that command alone.

    The peak comes from ``/usr/bin/time -f %M`` (a small C parent), not from
    ``os.wait4`` on a child of this process: a child forked from this (large)
    Python process is charged for the parent's resident pages until it execs,
    which inflated ru_maxrss to this script's own size.
    """
    timer = shutil.which("time", path="/usr/bin:/bin")
    marker = "conv1d-bench-maxrss-kib="
    full = [timer, "-f", marker + "%M", *cmd] if timer else cmd
    _settle_disk()
    start = time.perf_counter()
    proc = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    peak_kib = usage.ru_maxrss  # fallback (may be inflated, see above)
    for line in err.splitlines():
        if line.startswith(marker):
            peak_kib = int(line[len(marker) :])
    return wall, peak_kib / 1024


def conv1d_cmd(layer: Path, src: Path, dst: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "conv1d_cli",
        "apply",
        "-q",
        "-w",
        str(layer),
        str(src),
        "-o",
        str(dst),
    ]


SCENARIOS = ("rss", "sox", "single", "batch", "busy")
SINGLE_TAPS = (31, 101, 255, 1025, 4097)
BATCH_TAPS = 101
BATCH_FILES = 8


def make_fir(directory: Path, taps: int) -> tuple[Path, Path, Path]:
    """A ``taps``-tap lowpass as a conv1d layer, a SoX coefficient file and an afir IR WAV."""
    h = firwin(taps, 8000, fs=RATE)
    layer = Conv1d.from_weights(
        np.stack([h, h])[:, None, :].astype(np.float32), groups=2, padding="same"
    )
    layer.sample_rate = float(RATE)
    layer_path = directory / f"lowpass{taps}.npz"
    save_layer(layer, layer_path, overwrite=True)
    coeffs = directory / f"taps{taps}.txt"
    coeffs.write_text("\n".join(repr(float(v)) for v in h) + "\n")
    ir = directory / f"ir{taps}.wav"
    sf.write(ir, h.astype(np.float32), RATE, subtype="FLOAT")
    return layer_path, coeffs, ir


def ffmpeg_cmd(ffmpeg: str, src: Path, ir: Path, dst: Path) -> list[str]:
    """FFmpeg afir with unit gain and stereo out (FILTERING-NOTES.md, ffmpeg 5.1)."""
    graph = "[0:a][1:a]afir=irfmt=mono:gtype=none:wet=0.5,aformat=channel_layouts=stereo"
    return [ffmpeg, "-y", "-loglevel", "error", "-i", str(src), "-i", str(ir)] + [
        "-filter_complex",
        graph,
        "-c:a",
        "pcm_s16le",
        str(dst),
    ]


#: One timed run: (wall seconds, CPU seconds = user + sys of the command and its children).
Timing = tuple[float, float]


def wall(cmd: list[str] | str, env: dict[str, str] | None = None) -> Timing:
    """Wall and CPU seconds of one command (a string runs in sh); fails loudly.

    The CPU time is ``os.wait4``'s user + sys of the command, which includes every
    descendant it waited for (xargs's and make's children, ``--jobs`` workers): on a
    shared machine it shows the work done, where wall time also shows the others' load.
    """
    _settle_disk()
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        shell=isinstance(cmd, str),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if proc.stderr:
        proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        raise SystemExit(f"{cmd} failed ({code}):\n{err.decode()}")
    return elapsed, usage.ru_utime + usage.ru_stime


def rounds(contestants: dict[str, Callable[[], Timing]], repeat: int) -> dict[str, list[Timing]]:
    """Run every contestant once per round, interleaved; their times per round."""
    times: dict[str, list[Timing]] = {name: [] for name in contestants}
    for _ in range(repeat):
        for name, run_once in contestants.items():
            times[name].append(run_once())
    return times


def report(title: str, times: dict[str, list[Timing]], peer: str) -> None:
    """Medians of wall and CPU time, and each contestant's median per-round ratios to ``peer``."""
    load = os.getloadavg()[0]
    print(f"\n{title} (medians of {len(times[peer])} interleaved rounds, load now {load:.2f})")
    print(
        f"| contestant | median s | min s | ratio to {peer} (median per round) "
        f"| CPU s (user+sys) | CPU ratio |"
    )
    print("|---|---|---|---|---|---|")
    for name, values in times.items():
        walls = [w for w, _ in values]
        cpus = [c for _, c in values]
        pairs = list(zip(values, times[peer], strict=True))
        ratio = statistics.median(a[0] / b[0] for a, b in pairs)
        cpu_ratio = statistics.median(a[1] / b[1] if b[1] else math.nan for a, b in pairs)
        print(
            f"| {name} | {statistics.median(walls):.2f} | {min(walls):.2f} | {ratio:.2f} "
            f"| {statistics.median(cpus):.2f} | {cpu_ratio:.2f} |"
        )


def conv1d_env() -> dict[str, str]:
    """The environment a user's shell would give: no thread variables of ours.

    Nor ``PYTHONDONTWRITEBYTECODE``: an installed conv1d runs from compiled bytecode
    (pip compiles it at install, an editable install on first use), and a sandbox that
    sets the variable would otherwise charge every run ~50 ms of compiling the package.
    """
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV_VARS}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for name in ("MAKEFLAGS", "MFLAGS", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def compile_package() -> None:
    """Write the package's bytecode before timing, as ``pip install`` does."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "conv1d_cli")],
        check=True,
        env=conv1d_env(),
    )


def make_inputs(directory: Path, count: int, seconds: int) -> list[Path]:
    files = []
    for i in range(count):
        path = directory / f"in{seconds}s-{i}.wav"
        if not path.exists():
            print(f"generating {path.name} ...", flush=True)
            make_wav(path, seconds, seed=i)
        files.append(path)
    return files


def scenario_single(directory: Path, seconds: int, taps_list: tuple[int, ...], repeat: int) -> None:
    src = make_inputs(directory, 1, seconds)[0]
    sox, ffmpeg = shutil.which("sox"), shutil.which("ffmpeg")
    env = conv1d_env()
    for taps in taps_list:
        layer, coeffs, ir = make_fir(directory, taps)
        commands = {"conv1d apply": conv1d_cmd(layer, src, directory / "o-c.wav")}
        if sox:
            commands["sox -D fir"] = [sox, "-D", str(src), str(directory / "o-s.wav")] + [
                "fir",
                str(coeffs),
            ]
        if ffmpeg:
            commands["ffmpeg afir"] = ffmpeg_cmd(ffmpeg, src, ir, directory / "o-f.wav")
        contestants = {name: functools.partial(wall, cmd, env) for name, cmd in commands.items()}
        times = rounds(contestants, repeat)
        report(f"single: {seconds} s stereo 48 kHz PCM_16, {taps} taps", times, "conv1d apply")


def scenario_batch(directory: Path, seconds: int, count: int, repeat: int) -> None:
    files = make_inputs(directory, count, seconds)
    layer, coeffs, _ = make_fir(directory, BATCH_TAPS)
    sox = shutil.which("sox")
    env = conv1d_env()
    out = directory / "batch-out"
    py = shlex.quote(sys.executable)
    names = " ".join(shlex.quote(str(f)) for f in files)

    def fresh() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()

    def apply_many(*extra: str) -> Callable[[], Timing]:
        def run_once() -> Timing:
            fresh()
            cmd = [*conv1d_cmd(layer, files[0], out)[:-3], *map(str, files), "-d", str(out)]
            return wall([*cmd, *extra], env)

        return run_once

    def shell(line: str) -> Callable[[], Timing]:
        def run_once() -> Timing:
            fresh()
            return wall(line, env)

        return run_once

    conv1d = f"{py} -m conv1d_cli apply -q -w {shlex.quote(str(layer))}"
    contestants: dict[str, Callable[[], Timing]] = {
        "conv1d --jobs 1 --threads 1": apply_many("--jobs", "1", "--threads", "1"),
        "conv1d --jobs 1": apply_many("--jobs", "1"),
        "conv1d --jobs 2": apply_many("--jobs", "2"),
        "xargs -P2 conv1d (1 file each)": shell(
            f"printf '%s\\n' {names} | xargs -P2 -I{{}} {conv1d} {{}} -d {shlex.quote(str(out))}"
        ),
        "make -j2 (examples/Makefile)": shell(
            f"make -s -f {shlex.quote(str(ROOT / 'examples' / 'Makefile'))} -j2 "
            f"CONV1D={shlex.quote(f'{py} -m conv1d_cli')} IN={shlex.quote(str(files[0].parent))} "
            f"OUT={shlex.quote(str(out))} LAYER={shlex.quote(str(layer))} "
            f"SOURCES={shlex.quote(names)}"
        ),
    }
    if sox:
        each = (
            f"sox -D {{}} {shlex.quote(str(out))}/$(basename {{}}) fir {shlex.quote(str(coeffs))}"
        )
        contestants["xargs -P2 sox"] = shell(
            f"printf '%s\\n' {names} | xargs -P2 -I{{}} sh -c {shlex.quote(each)}"
        )
        contestants["sox one after another"] = shell(
            f'for f in {names}; do sox -D "$f" {shlex.quote(str(out))}/$(basename "$f") '
            f"fir {shlex.quote(str(coeffs))}; done"
        )
    times = rounds(contestants, repeat)
    title = f"batch: {count} files of {seconds} s stereo 48 kHz PCM_16, {BATCH_TAPS} taps"
    report(title, times, "conv1d --jobs 1 --threads 1")
    if sox:
        report(title + ", against xargs -P2 sox", times, "xargs -P2 sox")


def scenario_busy(directory: Path, seconds: int, repeat: int) -> None:
    src = make_inputs(directory, 1, seconds)[0]
    layer, _, _ = make_fir(directory, BATCH_TAPS)
    env = conv1d_env()

    def beside_spinner(*extra: str) -> Callable[[], Timing]:
        def run_once() -> Timing:
            spinner = subprocess.Popen(["sh", "-c", "while :; do :; done"])
            try:
                time.sleep(0.2)  # let it take its core
                return wall([*conv1d_cmd(layer, src, directory / "o-b.wav"), *extra], env)
            finally:
                spinner.kill()
                spinner.wait()

        return run_once

    contestants: dict[str, Callable[[], Timing]] = {
        "--threads 1, nothing beside": lambda: wall(
            [*conv1d_cmd(layer, src, directory / "o-i.wav"), "--threads", "1"], env
        ),
        "default, beside a busy process": beside_spinner(),
        "--threads 1, beside a busy process": beside_spinner("--threads", "1"),
    }
    times = rounds(contestants, repeat)
    report(
        f"busy: {seconds} s stereo 48 kHz PCM_16, {BATCH_TAPS} taps",
        times,
        "--threads 1, nothing beside",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)"
    )
    parser.add_argument("--skip-rss", action="store_true", help="skip the 1-hour RSS run")
    parser.add_argument("--skip-sox", action="store_true", help="skip the sox comparison")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs each (median reported)")
    parser.add_argument(
        "--quick", action="store_true", help="1-minute files, 4 of them, K 101 and 1025, 2 rounds"
    )
    parser.add_argument("--keep", type=Path, help="generate into and keep this directory")
    args = parser.parse_args()
    chosen = set(args.scenario or SCENARIOS)
    if args.skip_rss:
        chosen.discard("rss")
    if args.skip_sox:
        chosen.discard("sox")
    seconds, count, taps_list, repeat = 600, BATCH_FILES, SINGLE_TAPS, args.repeat
    if args.quick:
        seconds, count, taps_list = 60, 4, (101, 1025)
        repeat = min(repeat, 2)
        chosen.discard("rss")

    directory = args.keep or Path(tempfile.mkdtemp(prefix="conv1d-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    print(
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{len(os.sched_getaffinity(0))} usable CPUs",
        flush=True,
    )
    compile_package()
    try:
        layer, coeffs = make_filter(directory)
        if "single" in chosen:
            scenario_single(directory, seconds, taps_list, repeat)
        if "batch" in chosen:
            scenario_batch(directory, seconds, count, repeat)
        if "busy" in chosen:
            scenario_busy(directory, seconds, repeat)
        if "rss" in chosen:
            hour = directory / "hour.wav"
            if not hour.exists():
                print("generating 1-hour stereo 48 kHz PCM_16 WAV ...", flush=True)
                make_wav(hour, 3600)
            wall, rss = run(conv1d_cmd(layer, hour, directory / "hour-out.wav"))
            print(
                f"1 h stereo 48 kHz, {TAPS} taps: peak RSS {rss:.1f} MiB "
                f"(target < 100 MiB), wall {wall:.2f} s"
            )
        if "sox" in chosen:
            ten = directory / "ten.wav"
            if not ten.exists():
                print("generating 10-minute stereo 48 kHz PCM_16 WAV ...", flush=True)
                make_wav(ten, 600)
            sox = shutil.which("sox")
            if sox is None:
                print("sox not installed: conv1d timed alone")
            # Interleaved (ours, sox, ours, sox, ...) so background load hits both alike.
            ours, theirs = [], []
            for _ in range(args.repeat):
                ours.append(run(conv1d_cmd(layer, ten, directory / "ten-conv1d.wav")))
                if sox is not None:
                    sox_out = directory / "ten-sox.wav"
                    theirs.append(run([sox, str(ten), str(sox_out), "fir", str(coeffs)]))
            mid = statistics.median(w for w, _ in ours)
            print(
                f"10 min stereo PCM_16, {TAPS}-tap lowpass: conv1d apply median of "
                f"{args.repeat}: {mid:.2f} s (best {min(w for w, _ in ours):.2f} s, "
                f"peak RSS {max(r for _, r in ours):.1f} MiB)"
            )
            if sox is not None:
                sox_mid = statistics.median(w for w, _ in theirs)
                print(
                    f"  sox in.wav out.wav fir coeffs.txt median of {args.repeat}: "
                    f"{sox_mid:.2f} s (best {min(w for w, _ in theirs):.2f} s)"
                    f" -> conv1d/sox = {mid / sox_mid:.2f} (target <= 1.0)"
                )
                a, _ = sf.read(directory / "ten-conv1d.wav", dtype="int16", frames=RATE * 10)
                b, _ = sf.read(directory / "ten-sox.wav", dtype="int16", frames=RATE * 10)
                diff = np.abs(a.astype(int) - b.astype(int)).max()
                print(f"  first 10 s: max |conv1d - sox| = {diff} LSB (sox adds dither by default)")
    finally:
        load = os.getloadavg()
        print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
