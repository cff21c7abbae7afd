"""Rebuild the pictures in docs/ with the commands the README shows.

Run from a checkout: ``python docs/make_pictures.py`` (needs matplotlib). Every
picture is drawn by the ``conv1d`` command itself, in a temporary directory, so
the images show exactly what a user gets:

- lowpass-response.png   ``conv1d inspect lowpass4k.npz --plot``: the README's
                         101-tap 4 kHz lowpass (two identical kernels, one curve).
- stereo-signal.png      ``conv1d inspect sample_data/stereo.wav --plot``.
- eight-channel-signal.png  ``conv1d inspect --plot`` of an 8-channel WAV made here.
- lowpass-compare.png    ``conv1d apply ... --plot-compare``: stereo.wav through
                         the lowpass, input vs output spectra and the gain applied.
- lp80-response.png      ``conv1d inspect lp80.npz --plot``: the README's lowpass
                         designed by its specification (4 kHz, 500 Hz transition, 80 dB).
- room-response.png      ``conv1d inspect room.npz --plot``: the README's true-stereo
                         room layer from sample_data/room.wav (four paths).

Each image stays well under 200 KB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LIMIT = 200 * 1024


def conv1d(*args: object, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout, installed or not
    cmd = [sys.executable, "-m", "conv1d_cli", *map(str, args)]
    print("$ conv1d", " ".join(map(str, args)))
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def eight_channels(path: Path) -> None:
    """3 s at 16 kHz: a tone per channel, each fading in or out, a click on two."""
    rate = 16000
    t = np.arange(3 * rate) / rate
    rng = np.random.default_rng(8)
    channels = []
    for c in range(8):
        tone = np.sin(2 * np.pi * 250 * (c + 1) * t)
        fade = t / t[-1] if c % 2 else 1 - t / t[-1]
        x = 0.5 * fade * tone + 0.003 * rng.standard_normal(t.size)
        if c in (2, 5):
            x[int((0.5 + c / 4) * rate)] = 0.95  # a single-sample click: the envelope keeps it
        channels.append(x)
    # The standard library writes it, as sample_data/make_samples.py does: no I/O layer.
    pcm = np.clip(np.round(np.stack(channels, axis=1) * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(8)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        conv1d("init", "lowpass4k.npz", "--design", "lowpass", "--cutoff", 4000,
               "--sample-rate", 48000, "--taps", 101, "--channels", 2, cwd=work)  # fmt: skip
        conv1d("inspect", "lowpass4k.npz", "--plot", HERE / "lowpass-response.png", cwd=work)
        stereo = ROOT / "sample_data" / "stereo.wav"
        conv1d("inspect", stereo, "--plot", HERE / "stereo-signal.png", cwd=work)
        eight_channels(work / "eight.wav")
        conv1d("inspect", "eight.wav", "--plot", HERE / "eight-channel-signal.png", cwd=work)
        conv1d("apply", "-w", "lowpass4k.npz", stereo, "-o", "filtered.wav",
               "--plot-compare", HERE / "lowpass-compare.png", cwd=work)  # fmt: skip
        conv1d("init", "lp80.npz", "--design", "lowpass", "--cutoff", "4k", "--transition", 500,
               "--attenuation", 80, "--sample-rate", "48k", cwd=work)  # fmt: skip
        conv1d("inspect", "lp80.npz", "--plot", HERE / "lp80-response.png", cwd=work)
        # The README's relative path, so the picture's title shows what a user sees.
        (work / "sample_data").mkdir()
        shutil.copy(ROOT / "sample_data" / "room.wav", work / "sample_data" / "room.wav")
        conv1d("init", "room.npz", "--impulse-response", "sample_data/room.wav", "--true-stereo",
               "--ir-norm", "energy", "--trim", 60, "--mix", 0.3, cwd=work)  # fmt: skip
        conv1d("inspect", "room.npz", "--plot", HERE / "room-response.png", cwd=work)
    names = ("lowpass-response", "stereo-signal", "eight-channel-signal", "lowpass-compare",
             "lp80-response", "room-response")  # fmt: skip
    for name in names:
        size = (HERE / f"{name}.png").stat().st_size
        print(f"docs/{name}.png: {size / 1024:.0f} KB")
        if size > LIMIT:
            raise SystemExit(f"docs/{name}.png is over {LIMIT // 1024} KB")


if __name__ == "__main__":
    main()
