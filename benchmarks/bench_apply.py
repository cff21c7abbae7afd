"""Benchmarks for ``conv1d apply`` (issue 5): bounded memory and speed against SoX.

1. Peak RSS: a 1-hour stereo 48 kHz PCM_16 WAV through a 1025-tap lowpass
   (target < 100 MiB; the interpreter and imports alone are ~55 MiB).
2. Whole-process wall time on a 10-minute stereo 48 kHz PCM_16 WAV with the same
   1025-tap lowpass, against ``sox in.wav out.wav fir coeffs.txt`` (target: no
   slower than sox).

The big WAVs are generated into a temporary directory (removed afterwards unless
``--keep``); nothing is written into the repository. Peak RSS and times are
measured on the child process with ``os.wait4`` (``ru_maxrss``, the same number
``/usr/bin/time -v`` prints as "Maximum resident set size").

Usage::

    python benchmarks/bench_apply.py            # both benchmarks
    python benchmarks/bench_apply.py --skip-rss --repeat 5
"""

from __future__ import annotations

import argparse
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
from scipy.signal import firwin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conv1d_cli.layer import Conv1d  # noqa: E402
from conv1d_cli.layerfile import save_layer  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-rss", action="store_true", help="skip the 1-hour RSS run")
    parser.add_argument("--skip-sox", action="store_true", help="skip the sox comparison")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs each (median reported)")
    parser.add_argument("--keep", type=Path, help="generate into and keep this directory")
    args = parser.parse_args()

    directory = args.keep or Path(tempfile.mkdtemp(prefix="conv1d-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        layer, coeffs = make_filter(directory)
        if not args.skip_rss:
            hour = directory / "hour.wav"
            if not hour.exists():
                print("generating 1-hour stereo 48 kHz PCM_16 WAV ...", flush=True)
                make_wav(hour, 3600)
            wall, rss = run(conv1d_cmd(layer, hour, directory / "hour-out.wav"))
            print(
                f"1 h stereo 48 kHz, {TAPS} taps: peak RSS {rss:.1f} MiB "
                f"(target < 100 MiB), wall {wall:.2f} s"
            )
        if not args.skip_sox:
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
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
