"""The core's algorithms agree: direct (im2col, per-tap, banded) vs FFT vs a naive loop.

No timing assertions here: speed is benchmarks/bench.py's job. Memory is
checked with tracemalloc, which sees NumPy's allocations.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from conv1d_cli import core, kernels, threads
from conv1d_cli.core import Correlator, conv1d, pad1d
from conv1d_cli.errors import ConfigError
from conv1d_cli.shapes import resolve_padding

MODES = ("zeros", "reflect", "replicate", "circular")
TOL = {np.float32: 1e-5, np.float64: 1e-10}


def naive(xp: np.ndarray, w: np.ndarray, stride: int, dilation: int, groups: int) -> np.ndarray:
    """Valid correlation straight from the definition, in float64."""
    n, c_in, padded = xp.shape
    c_out, c_in_group, k = w.shape
    field = dilation * (k - 1) + 1
    length_out = (padded - field) // stride + 1
    c_out_group = c_out // groups
    out = np.zeros((n, c_out, length_out))
    xp = xp.astype(np.float64)
    w = w.astype(np.float64)
    for o in range(c_out):
        g = o // c_out_group
        for c in range(c_in_group):
            for tap in range(k):
                start = tap * dilation
                seg = xp[
                    :, g * c_in_group + c, start : start + (length_out - 1) * stride + 1 : stride
                ]
                out[:, o] += w[o, c, tap] * seg
    return out


def assert_close(got: np.ndarray, want: np.ndarray, dtype: type) -> None:
    # Relative to the output's scale: FFT error is spread evenly over outputs.
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-30)
    err = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0)) / scale
    assert err <= TOL[dtype], f"relative error {err:.3g} > {TOL[dtype]}"


def random_config(rng: np.random.Generator) -> dict:
    groups = int(rng.choice([1, 1, 2, 3, 4]))
    depthwise = rng.random() < 0.4
    c_in_group = 1 if depthwise else int(rng.integers(1, 4))
    c_out_group = int(rng.integers(1, 4))
    k = int(rng.choice([1, 2, 3, 5, 8, 17, 31, 64, 129, 300]))
    dilation = int(rng.choice([1, 1, 1, 2, 3]))
    stride = int(rng.choice([1, 1, 1, 2, 3, 5]))
    field = dilation * (k - 1) + 1
    length = int(rng.integers(max(field // 2, 1), 3 * field + 400))
    mode = str(rng.choice(MODES))
    padding: object = int(rng.integers(0, min(field, length - 1) + 1)) if mode != "zeros" else 0
    if mode == "zeros":
        padding = rng.choice(["valid", "causal", "full", 0, 2])
        padding = int(padding) if str(padding).isdigit() else str(padding)
    if stride == 1 and rng.random() < 0.2:
        padding = "same"
    return dict(
        n=int(rng.integers(1, 3)),
        c_in=c_in_group * groups,
        c_out=c_out_group * groups,
        k=k,
        length=length,
        stride=stride,
        dilation=dilation,
        groups=groups,
        padding=padding,
        padding_mode=mode,
        bias=bool(rng.random() < 0.5),
    )


def fits(cfg: dict) -> bool:
    left, right = resolve_padding(cfg["padding"], cfg["k"], cfg["dilation"], cfg["stride"])
    if cfg["padding_mode"] == "reflect" and max(left, right) >= cfg["length"]:
        return False
    if cfg["padding_mode"] == "circular" and max(left, right) > cfg["length"]:
        return False
    field = cfg["dilation"] * (cfg["k"] - 1) + 1
    return cfg["length"] + left + right >= field


def configs(seed: int, count: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out: list[dict] = []
    while len(out) < count:
        cfg = random_config(rng)
        if fits(cfg):
            out.append(cfg)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(4))
def test_methods_agree_with_naive_on_random_configs(seed: int, dtype: type) -> None:
    rng = np.random.default_rng(1000 + seed)
    for cfg in configs(seed, 40):
        x = rng.standard_normal((cfg["n"], cfg["c_in"], cfg["length"])).astype(dtype)
        w = rng.standard_normal((cfg["c_out"], cfg["c_in"] // cfg["groups"], cfg["k"]))
        w = w.astype(dtype)
        b = rng.standard_normal(cfg["c_out"]).astype(dtype) if cfg["bias"] else None
        kw = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups", "padding_mode")}
        left, right = resolve_padding(cfg["padding"], cfg["k"], cfg["dilation"], cfg["stride"])
        xp = pad1d(x, left, right, cfg["padding_mode"])
        want = naive(xp, w, cfg["stride"], cfg["dilation"], cfg["groups"])
        if b is not None:
            want += b[:, None]
        for method in ("direct", "fft", "auto"):
            got = conv1d(x, w, b, method=method, **kw)
            assert got.dtype == dtype, (cfg, method)
            assert got.shape == want.shape, (cfg, method)
            try:
                assert_close(got, want, dtype)
            except AssertionError as exc:
                raise AssertionError(f"{method} {cfg}: {exc}") from None


@pytest.mark.parametrize(
    "name, shape",
    [
        # (n, c_in, c_out, k, length, stride, dilation, groups)
        ("im2col", (2, 3, 4, 5, 300, 2, 3, 1)),
        ("per-tap", (2, 64, 3, 40, 120, 1, 1, 1)),
        ("banded", (2, 3, 6, 40, 1000, 1, 1, 3)),
        ("banded", (1, 2, 2, 33, 2000, 3, 2, 2)),
        ("banded", (1, 1, 1, 9, 70, 1, 1, 1)),
        ("fft", (2, 4, 6, 50, 3000, 1, 1, 2)),
        ("fft", (1, 3, 2, 200, 5000, 4, 2, 1)),
        ("fft", (3, 1, 1, 7, 40, 1, 1, 1)),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_methods_each_direct_algorithm_matches_naive(name: str, shape: tuple, dtype: type) -> None:
    n, c_in, c_out, k, length, stride, dilation, groups = shape
    rng = np.random.default_rng(7)
    xp = rng.standard_normal((n, c_in, length)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, k)).astype(dtype)
    corr = Correlator(w, None, stride, dilation, groups)
    out = np.empty((n, c_out, corr.output_length(length)), dtype)
    param = {"banded": 32, "fft": 256 if k * dilation < 100 else 2048}.get(name, 0)
    corr._run(name, param, xp, out)
    assert_close(out, naive(xp, w, stride, dilation, groups), dtype)


@pytest.mark.parametrize("chunk_bytes", [256, 4096, 2**22])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_methods_pad_free_direct_paths_equal_padded_copy(
    chunk_bytes: int, dtype: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    """im2col/per-tap reading the unpadded signal (padding as zeros) == on np.pad's copy."""
    monkeypatch.setattr(kernels, "_IM2COL_CHUNK_BYTES", chunk_bytes)  # many chunks, or one
    rng = np.random.default_rng(11)
    for _ in range(60):
        n, groups = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3]))
        c_in_group, c_out_group = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        k = int(rng.choice([1, 2, 3, 5, 9]))
        stride, dilation = int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2, 4]))
        field = dilation * (k - 1) + 1
        length = int(rng.integers(1, 3 * field + 60))
        # Pads from none to longer than the signal, on either side or both.
        left, right = (int(p) for p in rng.integers(0, field + length + 3, size=2))
        if rng.random() < 0.3:
            left, right = (0, right) if rng.random() < 0.5 else (left, 0)
        if length + left + right < field:
            continue
        x = rng.standard_normal((n, groups * c_in_group, length)).astype(dtype)
        w = rng.standard_normal((groups * c_out_group, c_in_group, k)).astype(dtype)
        length_out = (length + left + right - field) // stride + 1
        w2 = w.reshape(groups, c_out_group, c_in_group * k)
        got = np.full((n, groups, c_out_group, length_out), np.nan, dtype)
        want = np.full_like(got, np.nan)
        xp = pad1d(x, left, right)
        kernels._im2col(xp.reshape(n, groups, c_in_group, -1), w2, k, stride, dilation, want)
        kernels._im2col(x.reshape(n, groups, c_in_group, -1), w2, k, stride, dilation, got, left)
        np.testing.assert_array_equal(got, want, err_msg=f"{x.shape} {w.shape} {left, right}")
        # Per-tap GEMMs over only the columns that see samples (BLAS may block a
        # narrower product differently, so equal within rounding, not bitwise).
        wk = np.ascontiguousarray(
            w.reshape(groups, c_out_group, c_in_group, k).transpose(3, 0, 1, 2)
        )
        got = np.full_like(want, np.nan)
        kernels._per_tap(x.reshape(n, groups, c_in_group, -1), wk, stride, dilation, got, left)
        assert_close(got.reshape(n, -1, length_out), want.reshape(n, -1, length_out), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.bool_])
def test_methods_pad1d_zeros_equals_np_pad(dtype: type) -> None:
    """pad1d's own zero padding (np.pad is slow on tiny arrays) is np.pad's result."""
    rng = np.random.default_rng(2)
    for shape in [(5,), (2, 7), (3, 2, 0), (2, 3, 9)]:
        x = (rng.standard_normal(shape) * 5).astype(dtype)
        for view in (x, np.asfortranarray(x), x[..., ::2]):
            for left, right in [(0, 1), (3, 0), (2, 5), (10, 10)]:
                got = pad1d(view, left, right)
                want = np.pad(view, [(0, 0)] * (view.ndim - 1) + [(left, right)])
                assert got.dtype == want.dtype
                np.testing.assert_array_equal(got, want)


def test_methods_conv1d_zero_padding_skips_the_padded_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large zero-padded im2col call never pads; results equal the padded route."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 9000)).astype(np.float32)
    w = rng.standard_normal((6, 4, 5)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    kw = dict(stride=2, dilation=3, groups=2)
    want = Correlator(w, b, **kw)(pad1d(x, 7, 3))
    calls: list[tuple] = []
    monkeypatch.setattr(core, "pad1d", lambda *a: calls.append(a[1:]) or pad1d(*a))
    got = conv1d(x, w, b, padding=(7, 3), **kw)
    assert calls == []
    np.testing.assert_array_equal(got, want)
    # Per-tap GEMMs (from _PER_TAP_MIN_CHANNELS input channels per group) too.
    xd = rng.standard_normal((1, kernels._PER_TAP_MIN_CHANNELS, 600)).astype(np.float32)
    wd = rng.standard_normal((3, kernels._PER_TAP_MIN_CHANNELS, 4)).astype(np.float32)
    assert Correlator(wd).describe(1, 605) == "per-tap"
    got = conv1d(xd, wd, padding=(3, 2), dilation=2)
    assert calls == []
    assert_close(got, Correlator(wd, dilation=2)(pad1d(xd, 3, 2)).astype(np.float64), np.float32)
    # Paths that still need a padded array (banded here) pad as before.
    got = conv1d(x[:, :2], w[:2, :1], padding=(7, 3), stride=2, dilation=3, groups=2)
    assert calls == [(7, 3)]
    assert_close(got, naive(pad1d(x[:, :2], 7, 3), w[:2, :1], 2, 3, 2), np.float32)


def test_methods_choose_fft_for_long_fir_and_direct_for_small_layers() -> None:
    fir = Correlator(np.ones((2, 1, 1025), np.float32), groups=2)
    assert fir.describe(1, 2_881_024).startswith("fft")
    assert Correlator(np.ones((33, 16, 3), np.float32), stride=2).describe(20, 50) == "im2col"
    assert Correlator(np.ones((1, 1, 31), np.float32)).describe(1, 10**7).startswith("banded")
    assert Correlator(np.ones((1, 1, 31), np.float32), method="fft").describe(1, 100) != "banded"


def test_methods_correlator_blockwise_equals_whole_signal() -> None:
    """Streaming use: consecutive overlapping blocks give the one-shot result."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 50_000)).astype(np.float32)
    w = rng.standard_normal((2, 1, 301)).astype(np.float32)
    for method in ("auto", "direct", "fft"):
        corr = Correlator(w, np.array([0.5, -1.0], np.float32), groups=2, method=method)
        whole = corr(x)
        hop = 8192
        parts = []
        for start in range(0, x.shape[-1] - corr.field + 1, hop):
            block = x[..., start : start + hop + corr.field - 1]
            parts.append(corr(block))
        assert_close(np.concatenate(parts, axis=-1), whole.astype(np.float64), np.float32)
        assert whole.dtype == np.float32
    # The kernel spectrum is computed once per FFT length, then reused.
    cached = dict(corr._cache)
    corr(x[..., : hop + corr.field - 1])
    assert all(corr._cache[key] is value for key, value in cached.items())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 2, 2, 101, 9000, 2), (1, 3, 4, 40, 5000, 1)])
def test_methods_fft_on_one_thread_equals_scipy_on_several(
    monkeypatch: pytest.MonkeyPatch, shape: tuple, dtype: type
) -> None:
    """One worker runs numpy.fft, several scipy.fft: both exact, same result to rounding."""
    n, c_in, c_out, k, length, groups = shape
    rng = np.random.default_rng(11)
    xp = rng.standard_normal((n, c_in, length)).astype(dtype)
    w = rng.standard_normal((c_out, c_in // groups, k)).astype(dtype)
    want = naive(xp, w, 1, 1, groups)
    got = {}
    for workers in (1, 2):
        monkeypatch.setattr(kernels, "fft_workers", lambda workers=workers: workers)
        out = np.empty((n, c_out, length - k + 1), dtype)
        Correlator(w, groups=groups)._run("fft", 1024, xp, out)
        assert_close(out, want, dtype)
        got[workers] = out
    assert_close(got[1], got[2].astype(np.float64), dtype)


def test_methods_single_thread_fft_does_not_import_scipy() -> None:
    code = (
        "import sys, numpy as np, conv1d_cli.core as c, conv1d_cli.kernels as k; "
        "k.fft_workers = lambda: 1; "
        "c.conv1d(np.ones((1, 1, 5000)), np.ones((1, 1, 500)), method='fft'); "
        "print('scipy' in ' '.join(sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_methods_correlator_spectrum_cache_is_bounded() -> None:
    corr = Correlator(np.ones((1, 1, 20)), method="fft")
    for length in (40, 100, 300, 700, 1500, 3000, 7000):
        corr(np.ones((1, 1, length)))
    assert sum(1 for key in corr._cache if key[0] == "fft") <= kernels._SPECTRA_KEPT


def test_methods_float32_stays_float32_through_fft() -> None:
    x = np.ones((1, 1, 5000), np.float32)
    w = np.ones((1, 1, 500), np.float32)
    y = conv1d(x, w, method="fft")
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 500.0, rtol=1e-5)


def test_methods_rejects_unknown_method() -> None:
    with pytest.raises(ConfigError, match="method must be one of"):
        conv1d(np.ones((1, 4)), np.ones((1, 1, 2)), method="winograd")
    with pytest.raises(ConfigError, match="method must be one of"):
        Correlator(np.ones((1, 1, 2)), method="FFT")


def test_methods_empty_batch_gives_empty_output() -> None:
    y = Correlator(np.ones((3, 2, 4), np.float32))(np.ones((0, 2, 10), np.float32))
    assert y.shape == (0, 3, 7) and y.dtype == np.float32


@pytest.mark.parametrize(
    "shape, method",
    [
        ((1, 1, 1, 31, 4_000_000), "direct"),  # banded
        ((1, 2, 2, 9, 1_000_000), "direct"),  # im2col
        ((1, 2, 2, 1025, 2_000_000), "fft"),
    ],
)
def test_methods_memory_stays_near_output_size(shape: tuple, method: str) -> None:
    """No K-fold im2col of a long signal: peak extra memory ~ output + fixed."""
    n, c_in, c_out, k, length = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, length), dtype=np.float32)
    w = rng.standard_normal((c_out, c_in // (c_in if c_in == c_out else 1), k), dtype=np.float32)
    groups = c_in if w.shape[1] == 1 else 1
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        y = conv1d(x, w, groups=groups, method=method)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak <= 2 * y.nbytes + 32 * 2**20, (peak / 2**20, y.nbytes / 2**20)


def test_methods_import_core_does_not_import_scipy() -> None:
    code = "import sys, conv1d_cli.core; print('scipy' in ' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_methods_correlator_rejects_a_block_with_wrong_channels() -> None:
    from conv1d_cli.errors import ShapeError

    corr = Correlator(np.ones((4, 3, 5), np.float32), groups=2)
    with pytest.raises(ShapeError, match=r"block must be \(N, 6, L\)"):
        corr(np.ones((1, 3, 100), np.float32))


def test_methods_benchmark_script_runs(tmp_path) -> None:
    """benchmarks/bench.py works from a checkout (smoke run: tiny workload, no peers)."""
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
    out = tmp_path / "bench.json"
    args = ["--only", "W1", "--repeat", "1", "--min-time", "0.001", "--settle", "0"]
    args += ["--roof-size", "128", "--no-torch", "--no-scipy", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "| W1 |" in result.stdout
    report = json.loads(out.read_text())
    (w1,) = report["workloads"]
    assert w1["id"] == "W1" and w1["method"] == "im2col" and w1["memory_ok"]


@pytest.mark.parametrize(("n", "channels", "groups"), [(1, 1, 1), (1, 2, 2), (3, 2, 2), (1, 2, 1)])
def test_methods_long_frames_fill_the_simd_lanes_of_each_transform(
    n: int, channels: int, groups: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pocketfft runs the rows of one call in SIMD lanes only if they are one stride
    # apart: long frames go VECTOR_ROWS rows at least to a call, each call either a
    # channel's frames as they lie (a 2-D view) or frames copied contiguous.
    rng = np.random.default_rng(31)
    weight = rng.standard_normal((channels, channels // groups, 9_000)).astype(np.float32)
    x = rng.standard_normal((n, channels, 400_000)).astype(np.float32)
    calls: list[tuple[tuple[int, ...], bool]] = []
    real = np.fft.rfft

    def rfft(a: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        calls.append((a.shape, a.ndim == 2 or a.flags.c_contiguous))
        return real(a, *args, **kwargs)

    monkeypatch.setattr(np.fft, "rfft", rfft)
    with threads.limit(1):
        got = Correlator(weight, groups=groups, method="fft")(x)
    monkeypatch.undo()
    nfft = kernels._fft_size(9_000, 1, got.shape[-1])
    assert nfft >= kernels.LONG_FRAME_NFFT
    frames = [(shape, one_stride) for shape, one_stride in calls if shape[-1] == nfft]
    assert len(frames) > 2 and all(one_stride for _, one_stride in frames)
    # Only the last call of each row (a filter per channel) or of all may be short.
    short = [shape for shape, _ in frames if np.prod(shape[:-1]) < kernels.VECTOR_ROWS]
    assert len(short) <= (n * channels if groups == channels else 1)
    expected = conv1d(x.astype(np.float64), weight.astype(np.float64), groups=groups)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())


@pytest.mark.skipif(not kernels._FFT_OUT, reason="numpy.fft takes out= from NumPy 2.0")
def test_methods_long_frames_reuse_their_transform_buffers() -> None:
    # Each thread keeps its long frames' buffers: a second call allocates none of them
    # anew (fresh 6 MiB arrays were page-faulted in at every call), and the results of
    # one call are not overwritten by the next.
    rng = np.random.default_rng(32)
    weight = rng.standard_normal((2, 1, 9_000)).astype(np.float32)
    corr = Correlator(weight, groups=2, method="fft")
    x1, x2 = (rng.standard_normal((1, 2, 70_000)).astype(np.float32) for _ in range(2))
    first = corr(x1)
    kept = {name: id(buf) for name, buf in vars(kernels._SCRATCH).items()}
    assert {"frames", "spectra", "signals"} <= set(kept)
    second = corr(x2)
    assert {name: id(buf) for name, buf in vars(kernels._SCRATCH).items()} == kept
    expected = conv1d(x1.astype(np.float64), weight.astype(np.float64), groups=2)
    np.testing.assert_allclose(first, expected, rtol=0, atol=2e-5 * np.abs(expected).max())
    np.testing.assert_allclose(second, corr(x2), rtol=0, atol=0)
    # A buffer past _SCRATCH_BYTES is not kept.
    assert kernels._scratch("big", (kernels._SCRATCH_BYTES // 4 + 1,), np.float32) is None


def test_methods_long_frames_without_fft_out_as_on_numpy_1(monkeypatch) -> None:
    # NumPy 1.x's numpy.fft has no out=: the transforms' results are used as returned.
    rng = np.random.default_rng(33)
    weight = rng.standard_normal((2, 1, 9_000)).astype(np.float32)
    x = rng.standard_normal((1, 2, 200_000)).astype(np.float32)
    with threads.limit(1):
        kept = Correlator(weight, groups=2, method="fft")(x)
        monkeypatch.setattr(kernels, "_FFT_OUT", False)
        fresh = Correlator(weight, groups=2, method="fft")(x)
    np.testing.assert_array_equal(fresh, kept)
