"""Measure the constants of ``conv1d_cli.kernels``'s cost model on this machine, one thread.

The cost model (``kernels._choose_method``) prices each algorithm in seconds of
ONE core: BLAS and FFT threads only divide the work, and under ``make -j`` or
``--jobs`` every run gets one thread anyway. So everything here runs with
BLAS limited to one thread (threadpoolctl, or ``OPENBLAS_NUM_THREADS=1``) and
one FFT worker, and prints:

1. the per-unit constants (``_GEMM_FLOP_S``, ``_BANDED_FLOP_S``, ``_COPY_S``,
   ``_FFT_S``, ``_MIX_S``, ``_CALL_S``) as the median over a few shapes, next
   to the values in ``kernels``;
2. for per-channel FIRs (the streaming case: a stereo block of 2**17 frames)
   the measured time of the banded GEMM and of overlap-save FFT at every FFT
   size, which one ``auto`` picks, and how far its pick is from the best.

Not a test and not run by CI. Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/calibrate.py
    python benchmarks/calibrate.py --repeat 9 --frames 65536
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from conv1d_cli import kernels
from conv1d_cli.core import Correlator


def best_time(repeat: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    """Minimum of ``repeat`` calls ``fn(*args, **kwargs)``: the least disturbed by others."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def single_thread() -> Any:
    """Limit BLAS/OpenMP to one thread (threadpoolctl if present) and FFT to one worker."""
    kernels.fft_workers = lambda: 1  # type: ignore[attr-defined]  # read by every FFT call
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(1)


def calibrate_units(repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    units: dict[str, list[float]] = {k: [] for k in ("gemm", "banded", "copy", "fft", "mix")}
    # GEMM at im2col shapes: (O, C*K) @ (C*K, chunk).
    for o, depth, cols in ((128, 576, 4096), (256, 768, 2048), (33, 48, 8192)):
        a = rng.standard_normal((o, depth), dtype=np.float32)
        b = rng.standard_normal((depth, cols), dtype=np.float32)
        out = np.empty((o, cols), np.float32)
        t = best_time(repeat, np.matmul, a, b, out=out)
        units["gemm"].append(t / (2.0 * o * depth * cols))
    # im2col copy: strided taps into a contiguous buffer.
    x = rng.standard_normal((8, 1 << 16), dtype=np.float32)
    buf = np.empty((8, 9, 1 << 15), np.float32)

    def copy() -> None:
        for k in range(9):
            buf[:, k] = x[:, k : k + (1 << 15)]

    units["copy"].append(best_time(repeat, copy) / buf.size)
    frames = 1 << 17
    # Banded GEMM of a stereo FIR block, per flop (P outputs per window of W).
    for k in (31, 101, 255):
        w = rng.standard_normal((2, 1, k), dtype=np.float32)
        xp = rng.standard_normal((1, 2, frames + k - 1), dtype=np.float32)
        corr = Correlator(w, groups=2)
        rows = kernels._banded_rows(k)
        band = corr._prepared(("banded", rows))
        out = np.empty((1, 2, frames), np.float32)
        t = best_time(repeat, kernels._banded, xp, band, rows, 1, out)
        width = rows - 1 + k
        units["banded"].append(t / (2.0 * 2 * frames * width))
    # FFT: r2c + c2r of (2, F, nfft) frames, per sample x log2(nfft).
    rfft, irfft = kernels._transforms(1)
    for nfft in (1024, 4096, 16384):
        f = (2 * frames) // nfft
        xf = rng.standard_normal((2, f, nfft), dtype=np.float32)
        spec = rfft(xf, nfft)
        t = best_time(repeat, lambda x, n: irfft(rfft(x, n), n), xf, nfft)
        units["fft"].append(t / (2 * 2 * f * nfft * math.log2(nfft)))
        h = spec[:, :1].copy()
        t = best_time(repeat, np.multiply, spec, h, out=spec)
        units["mix"].append(t / spec.size)
    return {k: statistics.median(v) for k, v in units.items()}


def fir_sweep(repeat: int, frames: int) -> None:
    rng = np.random.default_rng(1)
    print(f"\nStereo FIR block of {frames} frames (groups 2), ms; * = auto's pick")
    for k in (9, 15, 31, 47, 63, 81, 101, 127, 191, 255, 511, 1025, 2049, 4097, 8193):
        w = rng.standard_normal((2, 1, k), dtype=np.float32)
        xp = rng.standard_normal((1, 2, frames + k - 1), dtype=np.float32)
        corr = Correlator(w, groups=2)
        pick = corr._choose(1, xp.shape[-1])
        out = np.empty((1, 2, frames), np.float32)
        results: dict[tuple[str, int], float] = {}
        if k <= 1025:
            rows = kernels._banded_rows(k)
            corr._run("banded", rows, xp, out)  # builds the band outside the timing
            results[("banded", rows)] = best_time(repeat, corr._run, "banded", rows, xp, out)
        nfft = 1 << max(6, (2 * k - 1).bit_length())
        while nfft <= 1 << 17:
            corr._run("fft", nfft, xp, out)  # kernel spectrum outside the timing
            results[("fft", nfft)] = best_time(repeat, corr._run, "fft", nfft, xp, out)
            nfft *= 2
        best = min(results, key=lambda key: results[key])
        cells = " ".join(
            f"{'*' if key == pick else ''}{key[0][0]}{key[1]}:{t * 1e3:.2f}"
            for key, t in results.items()
        )
        ratio = results.get(pick, math.nan) / results[best]
        print(f"K={k:5d} best {best[0]}({best[1]}) pick/best {ratio:.2f} | {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (min)")
    parser.add_argument("--frames", type=int, default=1 << 17, help="FIR block length")
    args = parser.parse_args()
    limits = single_thread()
    print(f"numpy {np.__version__}; one thread; load average {os.getloadavg()[0]:.2f}")
    units = calibrate_units(args.repeat)
    current = {
        "gemm": kernels._GEMM_FLOP_S,
        "banded": kernels._BANDED_FLOP_S,
        "copy": kernels._COPY_S,
        "fft": kernels._FFT_S,
        "mix": kernels._MIX_S,
    }
    print("\nunit      measured   kernels")
    for name, value in units.items():
        print(f"{name:8s} {value:.3g}  {current[name]:.3g}")
    fir_sweep(args.repeat, args.frames)
    if limits is not None:
        limits.unregister()


if __name__ == "__main__":
    main()
