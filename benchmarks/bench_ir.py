"""Long impulse responses (issue 14 item 5): conv1d against FFmpeg afir and pedalboard.

Inputs (generated into a temporary directory, removed unless ``--keep``): a
10-minute stereo 48 kHz PCM_16 WAV, a 96 000-tap (2 s) stereo IR and a
true-stereo (LL, LR, RL, RR) IR of the same length, synthetic decaying noise.
The layers are made by ``conv1d init --impulse-response`` (float64, and float32
with ``--dtype float32``).

Contestants, whole process, each once per round, interleaved so background load
hits all alike (wall time; peak RSS by ``/usr/bin/time``, else ``os.wait4``):

- ``conv1d stereo`` / ``conv1d true-stereo`` (float64 and float32 layers);
- ``ffmpeg afir`` with the stereo IR (``gtype=none:wet=0.5``: unit gain; FFmpeg 5.1
  doubles it otherwise), and true stereo as four afir summed by ``amerge``/``pan``
  (afir has no true-stereo mode); skipped without ``ffmpeg``;
- ``pedalboard Convolution`` with the stereo IR, the file streamed in blocks of
  2**17 frames (``reset=False``); skipped unless ``import pedalboard`` works
  (``--pedalboard-path DIR`` adds a ``pip install --target DIR pedalboard``; it is
  a benchmark-only package, never a project dependency).

Then the latency on a live pipe at ``--block-size 1024``: a writer sends the WAV
header, waits until conv1d is reading, sends ONE block of 1024 frames and holds
the pipe open; the time until that block's output is read from conv1d's stdout
(median of the rounds), and whether it came while the pipe was still held.

The report is a markdown table: medians, the median (and range) of the
per-round ratios to afir, peak RSS, and the load average before and after.

Usage::

    python benchmarks/bench_ir.py --rounds 5
    python benchmarks/bench_ir.py --seconds 60 --rounds 2 --pedalboard-path /tmp/pb
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RATE = 48_000
TAPS = 96_000

_PEDALBOARD = """
import sys
from pedalboard import Convolution
from pedalboard.io import AudioFile
conv = Convolution(sys.argv[2])
with AudioFile(sys.argv[1]) as src, AudioFile(sys.argv[3], "w", src.samplerate, src.num_channels,
                                               bit_depth=16) as dst:
    while src.tell() < src.frames:
        dst.write(conv.process(src.read(1 << 17), src.samplerate, reset=False))
"""

_TRUE_STEREO = (
    "[0:a]channelsplit=channel_layout=stereo[L][R];[L]asplit=2[L1][L2];[R]asplit=2[R1][R2];"
    "[1:a]pan=mono|c0=c0[ll];[2:a]pan=mono|c0=c1[lr];[3:a]pan=mono|c0=c2[rl];"
    "[4:a]pan=mono|c0=c3[rr];"
    "[L1][ll]afir=gtype=none:wet=0.5[yll];[L2][lr]afir=gtype=none:wet=0.5[ylr];"
    "[R1][rl]afir=gtype=none:wet=0.5[yrl];[R2][rr]afir=gtype=none:wet=0.5[yrr];"
    "[yll][yrl][ylr][yrr]amerge=inputs=4,pan=stereo|c0=c0+c1|c1=c2+c3[out]"
)


def _env(extra: str | None = None) -> dict[str, str]:
    """The environment of every contestant: ours, with ``extra`` on the import path.

    Without ``PYTHONDONTWRITEBYTECODE``: an installed conv1d runs from bytecode
    (``main`` compiles the package first, as pip does), where a sandbox setting the
    variable would charge each run the compiling of every module edited since.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    paths = [str(ROOT), *([extra] if extra else []), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _conv1d(*args: object) -> list[str]:
    return [sys.executable, "-m", "conv1d_cli", *map(str, args)]


def make_inputs(folder: Path, seconds: float) -> None:
    """The signal, the two IRs and their layers (float64 and float32)."""
    rng = np.random.default_rng(1)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = 0.2 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))
    sf.write(folder / "in.wav", x.astype(np.float32), RATE, subtype="PCM_16")
    k = np.arange(TAPS)

    def tail(seed: int) -> np.ndarray:
        h = np.random.default_rng(seed).standard_normal(TAPS) * np.exp(-k / (TAPS / 7))
        h[:240] = 0
        h[240] = 3.0
        return h / np.abs(h).sum() * 4  # modest gain: no clipping in PCM_16

    stereo = np.stack([tail(1), tail(2)], 1)
    sf.write(folder / "ir2.wav", stereo.astype(np.float32), RATE, subtype="FLOAT")
    four = np.stack([tail(1), 0.5 * tail(3), 0.5 * tail(4), tail(2)], 1) / 1.5
    sf.write(folder / "ir4.wav", four.astype(np.float32), RATE, subtype="FLOAT")
    for name, ir, extra in [("room2", "ir2.wav", []), ("room4", "ir4.wav", ["--true-stereo"])]:
        for suffix, dtype in [("", "float64"), ("f", "float32")]:
            cmd = _conv1d(
                "init",
                folder / f"{name}{suffix}.npz",
                "--impulse-response",
                folder / ir,
                "--dtype",
                dtype,
                "-q",
                "--force",
                *extra,
            )
            subprocess.run(cmd, check=True, env=_env())


def contestants(folder: Path, pedalboard: str | None) -> dict[str, list[str]]:
    """Name -> command line; those whose tool is missing are left out."""
    out = folder / "out.wav"
    src = folder / "in.wav"
    runs = {
        "conv1d stereo f64": _conv1d("apply", src, "-w", folder / "room2.npz", "-o", out, "-q"),
        "conv1d stereo f32": _conv1d("apply", src, "-w", folder / "room2f.npz", "-o", out, "-q"),
        "conv1d true-stereo f64": _conv1d("apply", src, "-w", folder / "room4.npz", "-o", out),
        "conv1d true-stereo f32": _conv1d("apply", src, "-w", folder / "room4f.npz", "-o", out),
    }
    runs["conv1d true-stereo f64"].append("-q")
    runs["conv1d true-stereo f32"].append("-q")
    if shutil.which("ffmpeg"):
        base = ["ffmpeg", "-y", "-loglevel", "error", "-i", str(src)]
        runs["ffmpeg afir stereo"] = base + [
            "-i",
            str(folder / "ir2.wav"),
            "-filter_complex",
            "[0:a][1:a]afir=gtype=none:wet=0.5",
            "-c:a",
            "pcm_s16le",
            str(out),
        ]
        runs["ffmpeg 4x afir true-stereo"] = (
            base
            + ["-i", str(folder / "ir4.wav")] * 4
            + [
                "-filter_complex",
                _TRUE_STEREO,
                "-map",
                "[out]",
                "-c:a",
                "pcm_s16le",
                str(out),
            ]
        )
    probe = subprocess.run(
        [sys.executable, "-c", "import pedalboard"], env=_env(pedalboard), capture_output=True
    )
    if probe.returncode == 0:
        runs["pedalboard Convolution stereo"] = [
            sys.executable,
            "-c",
            _PEDALBOARD,
            str(src),
            str(folder / "ir2.wav"),
            str(out),
        ]
    return runs


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process.

    ``/usr/bin/time`` where it exists: a child forked from this process (which
    holds the generated signal) would otherwise count its pre-exec pages. What
    earlier runs left unwritten goes to the disk first, untimed: FFmpeg and
    pedalboard do not fsync their outputs, conv1d does (as in bench_apply).
    """
    timer = shutil.which("time", path="/usr/bin")
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as report:
        full = [timer, "-f", "%M", "-o", report.name, *cmd] if timer else cmd
        os.sync()
        start = time.perf_counter()
        proc = subprocess.Popen(full, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        proc.returncode = code
        if code:
            raise RuntimeError(f"{cmd[:4]} failed ({code}): {err}")
        kib = int(report.read().split()[-1]) if timer else usage.ru_maxrss
    return wall, kib / 1024


def _read_until(fd: int, want: int, timeout: float) -> tuple[bytes, float]:
    import select

    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.01)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            got += chunk
    return got, time.perf_counter()


def pipe_latency(folder: Path, block: int = 1024) -> tuple[float, bool]:
    """Seconds from one block written to a held pipe to its output read; did it come live?"""
    x, _ = sf.read(folder / "in.wav", frames=4 * block, dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, x, RATE, subtype="PCM_16", format="WAV")
    data = buf.getvalue()
    header, first = data[:44], data[44 : 44 + 4 * block]
    read_fd, write_fd = os.pipe()
    cmd = _conv1d(
        "apply",
        "-q",
        "-w",
        folder / "room2.npz",
        "-",
        "--input-format",
        "wav",
        "-o",
        "-",
        "--output-format",
        "wav",
        "--block-size",
        block,
    )
    proc = subprocess.Popen(cmd, stdin=read_fd, stdout=subprocess.PIPE, env=_env())
    os.close(read_fd)
    try:
        os.write(write_fd, header)
        time.sleep(3.0)  # start-up and the layer's spectra: not latency
        sent = time.perf_counter()
        os.write(write_fd, first)
        assert proc.stdout is not None
        got, when = _read_until(proc.stdout.fileno(), 44 + 4 * block, 60)
        live = len(got) >= 44 + 4 * block  # the write end is still open here
        os.write(write_fd, data[44 + 4 * block :])
    finally:
        os.close(write_fd)
        proc.communicate(timeout=60)
    return when - sent, live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=600.0, help="signal length")
    parser.add_argument("--pedalboard-path", help="a folder holding pedalboard (pip --target)")
    parser.add_argument("--keep", type=Path, help="make the inputs here and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-ir-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        make_inputs(folder, args.seconds)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(ROOT / "conv1d_cli")],
            check=True,
            env=_env(),
        )
        runs = contestants(folder, args.pedalboard_path)
        times: dict[str, list[float]] = {name: [] for name in runs}
        rss: dict[str, list[float]] = {name: [] for name in runs}
        latencies: list[float] = []
        lives: list[bool] = []
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, cmd in runs.items():
                # Only pedalboard gets its folder: it holds a numpy of its own, which
                # conv1d would otherwise import instead of the one it was installed with.
                extra = args.pedalboard_path if name.startswith("pedalboard") else None
                wall, peak = _timed(cmd, _env(extra))
                times[name].append(wall)
                rss[name].append(peak)
            latency, live = pipe_latency(folder)
            latencies.append(latency)
            lives.append(live)
        load_after = os.getloadavg()[0]
        report(times, rss, latencies, lives, load_before, load_after, args)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def report(
    times: dict[str, list[float]],
    rss: dict[str, list[float]],
    latencies: list[float],
    lives: list[bool],
    load_before: float,
    load_after: float,
    args: argparse.Namespace,
) -> None:
    """The markdown table; a ratio is the median of the per-round ratios to a peer (range)."""
    print(
        f"{args.seconds:g} s stereo 48 kHz PCM_16, {TAPS}-tap IRs, {args.rounds} rounds; "
        f"load average {load_before:.2f} before, {load_after:.2f} after\n"
    )
    print("| contestant | median s | peak RSS MiB | / afir (range) | / pedalboard (range) |")
    print("|---|---|---|---|---|")
    for name, walls in times.items():
        true = "true-stereo" in name
        peers = ["ffmpeg 4x afir true-stereo" if true else "ffmpeg afir stereo"]
        peers.append("" if true else "pedalboard Convolution stereo")
        ratios = []
        for peer in peers:
            ratio = "-"
            if peer in times and name.startswith("conv1d"):
                per = [a / b for a, b in zip(walls, times[peer], strict=True)]
                ratio = f"{statistics.median(per):.2f} ({min(per):.2f}-{max(per):.2f})"
            ratios.append(ratio)
        print(
            f"| {name} | {statistics.median(walls):.2f} | "
            f"{statistics.median(rss[name]):.0f} | {ratios[0]} | {ratios[1]} |"
        )
    print(
        f"\npipe latency at --block-size 1024 (one block = {1024 / RATE * 1e3:.1f} ms): "
        f"median {statistics.median(latencies) * 1e3:.1f} ms "
        f"(range {min(latencies) * 1e3:.1f}-{max(latencies) * 1e3:.1f}); "
        f"first block's output while the writer held the pipe: {sum(lives)}/{len(lives)}"
    )


if __name__ == "__main__":
    main()
