"""Build the files in sample_data/ deterministically (run: python sample_data/make_samples.py).

- stereo.wav      1 s, 48 kHz, 2 channels, PCM_16: a 440 Hz tone plus an 8 kHz
                  whistle on the left, a 200 Hz -> 12 kHz chirp on the right, a little
                  seeded noise on both.
- accel.csv       10 s of a 3-axis accelerometer at 100 Hz (header ax,ay,az):
                  walking-like 2 Hz motion, gravity on z, 25 Hz vibration, noise.
- lowpass.npz     101-tap windowed-sinc lowpass at 4 kHz for 48 kHz stereo,
                  depthwise (groups=2, weight (2, 1, 101)), padding 'same'.
- smooth3.npz     31-tap lowpass at 5 Hz for the 100 Hz 3-axis CSV, depthwise
                  (groups=3), padding 'same', padding_mode 'replicate'.
- room.wav        a synthetic true-stereo room impulse response: 0.25 s, 48 kHz,
                  4 channels LL, LR, RL, RR (LR: from the left source to the right
                  microphone), PCM_16. Direct sound after 2 ms on LL and RR, 1 ms
                  later and weaker on the cross paths, a few early reflections, then
                  a decaying tail that darkens over time (RT60 about 0.2 s).

Each file is well under 1 MiB. The WAV is written with the standard library so
the script does not depend on the I/O layer; the layers use the layer-file API.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np
from scipy.signal import firwin

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing

from conv1d_cli.io.layerfile import save_layer  # noqa: E402
from conv1d_cli.layer import Conv1d  # noqa: E402


def make_wav(path: Path, rng: np.random.Generator) -> None:
    rate = 48000
    t = np.arange(rate) / rate
    left = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 8000 * t)
    # Linear chirp 200 Hz -> 12 kHz over the second.
    phase = 2 * np.pi * (200 * t + 0.5 * (12000 - 200) * t**2)
    right = 0.5 * np.sin(phase)
    stereo = np.stack([left, right], axis=1) + 0.01 * rng.standard_normal((rate, 2))
    pcm = np.clip(np.round(stereo * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def make_csv(path: Path, rng: np.random.Generator) -> None:
    rate = 100
    t = np.arange(10 * rate) / rate
    ax = 0.8 * np.sin(2 * np.pi * 2.0 * t) + 0.15 * np.sin(2 * np.pi * 25 * t)
    ay = 0.3 * np.sin(2 * np.pi * 2.0 * t + 1.0) + 0.1 * np.sin(2 * np.pi * 25 * t + 0.5)
    az = 9.81 + 0.5 * np.sin(2 * np.pi * 4.0 * t) + 0.2 * np.sin(2 * np.pi * 25 * t + 2.0)
    data = np.stack([ax, ay, az], axis=1) + 0.05 * rng.standard_normal((t.size, 3))
    lines = ["ax,ay,az"] + [",".join(f"{v:.5f}" for v in row) for row in data]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def make_layers(directory: Path) -> None:
    taps = firwin(101, 4000, fs=48000)
    lowpass = Conv1d.from_weights(
        np.stack([taps, taps])[:, None, :].astype(np.float32), groups=2, padding="same"
    )
    lowpass.sample_rate = 48000.0
    lowpass.description = "101-tap Hamming-window lowpass, cutoff 4 kHz at 48 kHz, per channel"
    save_layer(lowpass, directory / "lowpass.npz", overwrite=True)

    taps = firwin(31, 5.0, fs=100)
    smooth = Conv1d.from_weights(
        np.stack([taps] * 3)[:, None, :],
        groups=3,
        padding="same",
        padding_mode="replicate",
    )
    smooth.sample_rate = 100.0
    smooth.description = "31-tap lowpass, cutoff 5 Hz at 100 Hz, per axis, edges replicated"
    save_layer(smooth, directory / "smooth3.npz", overwrite=True)


def make_room(path: Path, rng: np.random.Generator) -> None:
    rate, length = 48000, 12000
    t = np.arange(length) / rate
    paths = []
    for k, (direct, delay) in enumerate(((1.0, 96), (0.45, 144), (0.45, 144), (1.0, 96))):
        h = np.zeros(length)
        h[delay] = direct
        for tap, gain in ((410, 0.35), (700, -0.25), (1130, 0.2), (1500 + 40 * k, 0.15)):
            h[tap + (k % 2) * 23] += gain * direct
        tail = rng.standard_normal(length) * np.exp(-6.9 * t / 0.2)  # -60 dB after 0.2 s
        # A one-pole lowpass whose pole moves towards 1: the tail loses its highs.
        smooth = np.empty(length)
        state = 0.0
        for n in range(length):
            pole = 0.2 + 0.7 * n / length
            state = pole * state + (1 - pole) * tail[n]
            smooth[n] = state
        smooth[:delay] = 0.0  # nothing before the direct sound; the tail builds up after it
        smooth[delay : delay + 300] *= np.linspace(0, 1, 300)
        paths.append(h + 0.3 * smooth)
    taps = np.stack(paths, axis=1)
    pcm = np.clip(np.round(taps / np.abs(taps).max() * 0.9 * 32768), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(4)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def main(directory: Path = HERE) -> None:
    rng = np.random.default_rng(20240601)
    make_wav(directory / "stereo.wav", rng)
    make_csv(directory / "accel.csv", rng)
    make_layers(directory)
    make_room(directory / "room.wav", np.random.default_rng(14))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
