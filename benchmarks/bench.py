"""Benchmark conv1d_cli's core against PyTorch and scipy.signal.oaconvolve.

Run ``python benchmarks/bench.py`` (``--help`` for options). Everything is
timed in this one process and run, interleaved (ours, torch, scipy, ours, ...)
so that background load hits every contestant alike; the table reports
medians. Workloads are the issue's W1-W6 (float32, no bias).

Not a test: nothing here asserts. The "met" column compares each median ratio
with the issue's target.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from conv1d_cli.core import Correlator, conv1d
from conv1d_cli.shapes import resolve_padding


@dataclass(frozen=True)
class Workload:
    id: str
    n: int
    c_in: int
    c_out: int
    k: int
    length: int
    stride: int = 1
    padding: Any = 0
    dilation: int = 1
    groups: int = 1
    padding_mode: str = "zeros"
    fir: bool = False  # a plain per-channel FIR: scipy.signal.oaconvolve can do it
    targets: dict[str, float] = field(default_factory=dict)  # peer -> max ratio

    def describe(self) -> str:
        extra = []
        if self.stride != 1:
            extra.append(f"s{self.stride}")
        if self.dilation != 1:
            extra.append(f"d{self.dilation}")
        if self.groups != 1:
            extra.append(f"g{self.groups}")
        if self.padding != 0:
            extra.append(f"p={self.padding}")
        if self.padding_mode != "zeros":
            extra.append(self.padding_mode)
        return f"{self.n}x{self.c_in}->{self.c_out} K{self.k} L{self.length} " + " ".join(extra)


WORKLOADS = [
    Workload("W1", 20, 16, 33, 3, 50, stride=2, targets={"torch": 0.7}),
    Workload("W2", 8, 64, 128, 9, 16000, padding=4, targets={"torch": 1.25}),
    Workload(
        "W3",
        1,
        2,
        2,
        1025,
        2_880_000,
        groups=2,
        fir=True,
        targets={"torch": 0.06, "oaconvolve": 1.0},
    ),
    Workload("W4", 1, 1, 1, 31, 10_000_000, fir=True, targets={"torch": 0.2}),
    Workload("W5", 4, 256, 256, 3, 4096, dilation=4, padding=4, targets={"torch": 1.25}),
    Workload(
        "W6",
        1,
        8,
        8,
        255,
        1_000_000,
        groups=8,
        padding="same",
        padding_mode="reflect",
        fir=True,
        targets={"torch": 0.3},
    ),
]


def gemm_roof(size: int = 4096, repeat: int = 5) -> float:
    """float32 GFLOP/s of numpy's matmul on large square matrices (median)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times) / 1e9


def blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl not installed"}]
    keep = ("user_api", "internal_api", "version", "num_threads", "architecture", "prefix")
    return [{k: d.get(k) for k in keep} for d in threadpool_info()]


def calibrate(fn: Callable[[], Any], min_time: float) -> int:
    """Calls per timed sample so that one sample lasts about ``min_time``."""
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    return max(1, math.ceil(min_time / max(one, 1e-9)))


def sample(fn: Callable[[], Any], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def peak_extra_bytes(fn: Callable[[], Any]) -> tuple[int, int]:
    """(peak bytes allocated during one call beyond what existed before, result bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - before, int(np.asarray(result).nbytes)


def make_contestants(w: Workload, torch_mod: Any, oaconvolve: Any) -> dict[str, Any]:
    rng = np.random.default_rng(1234)
    x = rng.standard_normal((w.n, w.c_in, w.length), dtype=np.float32)
    weight = rng.standard_normal((w.c_out, w.c_in // w.groups, w.k), dtype=np.float32)
    weight /= np.sqrt(weight.shape[1] * w.k)
    kwargs = dict(
        stride=w.stride,
        padding=w.padding,
        dilation=w.dilation,
        groups=w.groups,
        padding_mode=w.padding_mode,
    )
    out: dict[str, Any] = {"conv1d": lambda: conv1d(x, weight, None, **kwargs)}
    left, right = resolve_padding(w.padding, w.k, w.dilation, w.stride)
    if torch_mod is not None:
        F = torch_mod.nn.functional
        xt, wt = torch_mod.from_numpy(x), torch_mod.from_numpy(weight)
        if w.padding_mode == "zeros":

            def run_torch() -> Any:
                return F.conv1d(xt, wt, None, w.stride, w.padding, w.dilation, w.groups).numpy()
        else:
            # What nn.Conv1d does for a non-zero padding_mode.
            def run_torch() -> Any:
                xpt = F.pad(xt, (left, right), mode=w.padding_mode)
                return F.conv1d(xpt, wt, None, w.stride, 0, w.dilation, w.groups).numpy()

        out["torch"] = run_torch
    plain_fir = (
        w.fir and w.c_in == w.c_out == w.groups and w.stride == 1 and w.dilation == 1 and w.n == 1
    )
    if oaconvolve is not None and plain_fir:
        taps = weight[:, 0, ::-1]  # correlation = convolution with reversed taps

        def run_scipy() -> Any:
            from conv1d_cli.shapes import PADDING_MODES

            xp = x[0]
            if left or right:
                xp = np.pad(xp, [(0, 0), (left, right)], mode=PADDING_MODES[w.padding_mode])
            return oaconvolve(xp, taps, mode="valid", axes=-1)[None]

        out["oaconvolve"] = run_scipy
    return out


def flops(w: Workload) -> float:
    left, right = resolve_padding(w.padding, w.k, w.dilation, w.stride)
    field_ = w.dilation * (w.k - 1) + 1
    l_out = (w.length + left + right - field_) // w.stride + 1
    return 2.0 * w.n * w.c_out * (w.c_in // w.groups) * w.k * l_out


def chosen_method(w: Workload) -> str:
    left, right = resolve_padding(w.padding, w.k, w.dilation, w.stride)
    weight = np.zeros((w.c_out, w.c_in // w.groups, w.k), np.float32)
    corr = Correlator(weight, None, w.stride, w.dilation, w.groups)
    describe = getattr(corr, "describe", None)
    if describe is not None:
        return str(describe(w.n, w.length + left + right))
    return "?"


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch_mod = None
    if not args.no_torch:
        try:
            import torch as torch_mod  # type: ignore[no-redef]

            torch_mod.set_num_threads(2)
        except ImportError:
            torch_mod = None
    oaconvolve = None
    if not args.no_scipy:
        try:
            from scipy.signal import oaconvolve
        except ImportError:
            oaconvolve = None

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": None if torch_mod is None else torch_mod.__version__,
        "torch_threads": None if torch_mod is None else torch_mod.get_num_threads(),
        "blas": blas_info(),
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        "loadavg_before": os.getloadavg(),
        "repeat": args.repeat,
        "gemm_roof_gflops": gemm_roof(args.roof_size),
        "roof_size": args.roof_size,
        "workloads": [],
    }
    for w in WORKLOADS:
        if args.only and w.id not in args.only:
            continue
        contestants = make_contestants(w, torch_mod, oaconvolve)
        results = {name: fn() for name, fn in contestants.items()}  # warm-up + check
        ref = results.get("torch")
        errors = {}
        if ref is not None:
            scale = float(np.max(np.abs(ref))) or 1.0
            for name, r in results.items():
                errors[name] = float(np.max(np.abs(r - ref))) / scale
        numbers = {name: calibrate(fn, args.min_time) for name, fn in contestants.items()}
        times: dict[str, list[float]] = {name: [] for name in contestants}
        for _ in range(args.repeat):
            for name, fn in contestants.items():
                # Let the previous contestant's spinning thread pool (OpenBLAS,
                # OpenMP) go to sleep first: it would steal this one's cores.
                time.sleep(args.settle)
                if numbers[name] > 1:
                    # Short calls: bring the thread pool back to its steady
                    # state first (waking parked threads costs ~ms per call here).
                    sample(fn, numbers[name])
                times[name].append(sample(fn, numbers[name]))
        medians = {name: statistics.median(t) for name, t in times.items()}
        extra, out_bytes = peak_extra_bytes(contestants["conv1d"])
        budget = 3 * out_bytes + 64 * 2**20
        ratios = {p: medians["conv1d"] / medians[p] for p in medians if p != "conv1d"}
        met = {p: ratios[p] <= t for p, t in w.targets.items() if p in ratios}
        report["workloads"].append(
            {
                "id": w.id,
                "shape": w.describe(),
                "method": chosen_method(w),
                "gflop": flops(w) / 1e9,
                "median_s": medians,
                "min_s": {name: min(t) for name, t in times.items()},
                "gflops": {name: flops(w) / t / 1e9 for name, t in medians.items()},
                "ratio": ratios,
                "targets": w.targets,
                "met": met,
                "max_rel_error_vs_torch": errors,
                "peak_extra_bytes": extra,
                "output_bytes": out_bytes,
                "memory_ok": extra <= budget,
            }
        )
        print(f"  {w.id} done", file=sys.stderr)
    report["loadavg_after"] = os.getloadavg()
    return report


def ms(t: float | None) -> str:
    return "-" if t is None else f"{t * 1e3:.3g}" if t < 0.1 else f"{t * 1e3:.0f}"


def table(report: dict[str, Any]) -> str:
    roof = report["gemm_roof_gflops"]
    lines = [
        f"float32 GEMM roof (numpy matmul {report['roof_size']}^2): {roof:.0f} GFLOP/s; "
        f"medians of {report['repeat']} repeats; torch {report['torch']} "
        f"({report['torch_threads']} threads); numpy {report['numpy']}",
        "BLAS: "
        + "; ".join(
            ", ".join(f"{k}={v}" for k, v in d.items() if k != "prefix") for d in report["blas"]
        ),
        f"OPENBLAS_* env: {report['openblas_env'] or 'none'}; load avg before/after: "
        f"{report['loadavg_before'][0]:.2f}/{report['loadavg_after'][0]:.2f}",
        "",
        "| id | shape | method | conv1d ms | GFLOP/s | % roof | torch ms | ×torch (target) "
        "| oaconvolve ms | ×oaconv (target) | ×torch, ×oaconv of minima "
        "| peak extra / output | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["workloads"]:
        med = r["median_s"]
        gf = r["gflops"]["conv1d"]

        def ratio(peer: str, r: dict[str, Any] = r) -> str:
            if peer not in r["ratio"]:
                return "-"
            t = r["targets"].get(peer)
            return f"{r['ratio'][peer]:.3f}" + (f" (≤{t})" if t is not None else "")

        mins = r["min_s"]
        by_min = ", ".join(
            f"{mins['conv1d'] / mins[p]:.3f}" for p in ("torch", "oaconvolve") if p in mins
        )
        met = all(r["met"].values()) and r["memory_ok"]
        mem = f"{r['peak_extra_bytes'] / 2**20:.1f} MiB / {r['output_bytes'] / 2**20:.1f} MiB"
        lines.append(
            f"| {r['id']} | {r['shape']} | {r['method']} | {ms(med['conv1d'])} | {gf:.1f} | "
            f"{100 * gf / roof:.0f}% | {ms(med.get('torch'))} | {ratio('torch')} | "
            f"{ms(med.get('oaconvolve'))} | {ratio('oaconvolve')} | {by_min or '-'} | {mem} | "
            f"{'yes' if met else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed samples per contestant (≥5)")
    parser.add_argument(
        "--min-time", type=float, default=0.05, help="seconds per sample (tiny calls loop)"
    )
    parser.add_argument("--settle", type=float, default=0.3, help="idle seconds before each sample")
    parser.add_argument(
        "--roof-size", type=int, default=4096, help="matrix size of the GEMM roof measurement"
    )
    parser.add_argument("--only", action="append", help="workload id (repeatable), e.g. W3")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results ('-': stdout)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    parser.add_argument("--no-scipy", action="store_true", help="skip the oaconvolve peer")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be positive")
    report = run(args)
    if args.json == "-":
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(table(report))
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
