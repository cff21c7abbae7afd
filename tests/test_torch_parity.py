"""Live differential tests against PyTorch 2.13 (skipped where torch is not installed).

Seeded random configurations: values must agree (relative to the largest output
magnitude: float64 1e-12, float32 1e-5) and we must raise Conv1dError exactly
when PyTorch raises. The worst error and the counts are printed in the pytest
terminal summary ("PyTorch parity" section; see conftest.py).

Deliberate differences from PyTorch, excluded explicitly below (each also has its own test):
1. Negative padding with padding_mode != 'zeros': PyTorch's F.pad silently crops; we reject it
   (zeros mode: both reject).
2. Zero-channel input (N, 0, L): PyTorch returns (N, 0, L_out); we reject it. Never generated
   in the random loop.
3. Mixed dtypes (float32 with float64, integer input): PyTorch raises; we promote to float64.
   The random loop uses one dtype per case.
4. Dilation 0 on an empty batch (N=0): PyTorch skips its dilation check and returns an empty
   (0, C_out, L + 2p) result; we reject dilation 0 whatever the batch size.
5. Our extensions 'causal', 'full' and a (left, right) pair: PyTorch rejects them (F.conv1d), or
   for nn.Conv1d with a non-zero mode pads the channel axis too; they are compared against
   tests/reference.py in test_core.py instead. Not generated here.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from conv1d_cli import Conv1d, Conv1dError, conv1d

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.torch

MODES = ("zeros", "reflect", "replicate", "circular")
N_CONFIGS = 1200
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def _random_config(index: int) -> dict:
    """One seeded configuration; about a third of them are invalid on purpose."""
    rng = np.random.default_rng([2026, index])

    def pick(*options, p=None):
        return options[int(rng.choice(len(options), p=p))]

    if rng.random() < 0.3:  # depthwise, multiplier 1..3
        groups = int(rng.integers(1, 5))
        c_in, c_out = groups, groups * int(rng.integers(1, 4))
    else:
        groups = pick(1, 1, 2, 3)
        c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    kernel_size = int(rng.integers(1, 7))
    stride = pick(1, 1, 2, 3, 5, 0, (2,), p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05])
    dilation = pick(1, 1, 2, 3, 0, [2], p=[0.35, 0.2, 0.2, 0.15, 0.05, 0.05])
    padding = pick(
        0, 1, 2, 4, "same", "valid", (1,), -1, p=[0.15, 0.15, 0.1, 0.1, 0.25, 0.1, 0.05, 0.1]
    )
    mode = pick(*MODES)
    # Lengths from 1 up, biased towards the edges where limits bite; L=0 sometimes.
    length = pick(0, *range(1, 13), 20, 33, p=[0.04] + [0.07] * 12 + [0.06, 0.06])
    batch = pick(None, 0, 1, 2, 3, p=[0.3, 0.1, 0.3, 0.2, 0.1])
    x_channels = c_in if rng.random() > 0.05 else c_in + 1  # sometimes a channel mismatch
    return {
        "dtype": pick("float32", "float64"),
        "c_in": c_in,
        "c_out": c_out,
        "x_channels": x_channels,
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "bias": bool(rng.random() < 0.7),
        "padding_mode": mode,
        "length": length,
        "batch": batch,
        "api": pick("functional", "layer"),
        "method": pick("auto", "direct", "fft"),
        "seed": int(rng.integers(2**31)),
    }


def _is_deliberate_difference(cfg: dict) -> bool:
    """Differences 1 and 4 in the module docstring (we raise, PyTorch returns something)."""
    negative_padding = isinstance(cfg["padding"], int) and cfg["padding"] < 0
    if cfg["padding_mode"] != "zeros" and negative_padding:
        return True
    return cfg["batch"] == 0 and cfg["dilation"] in (0, [0])


def _torch_run(cfg, x, w, b):
    """PyTorch's answer as float64 NumPy, or the exception it raised."""
    dtype = getattr(torch, cfg["dtype"])
    tx, tw = torch.tensor(x), torch.tensor(w)
    tb = None if b is None else torch.tensor(b)
    args = (cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # 'same' with an even kernel warns once per process; not our concern here.
            warnings.simplefilter("ignore")
            if cfg["api"] == "functional" and cfg["padding_mode"] == "zeros":
                out = F.conv1d(tx, tw, tb, *args)
            else:
                layer = torch.nn.Conv1d(
                    cfg["c_in"],
                    cfg["c_out"],
                    cfg["kernel_size"],
                    *args,
                    bias=b is not None,
                    padding_mode=cfg["padding_mode"],
                    dtype=dtype,
                )
                layer.weight.copy_(tw)
                if b is not None:
                    layer.bias.copy_(tb)
                out = layer(tx)
    except Exception as exc:  # RuntimeError, ValueError, TypeError, NotImplementedError
        return exc
    return out.numpy()


def _ours_run(cfg, x, w, b):
    args = (cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"], cfg["padding_mode"])
    try:
        if cfg["api"] == "functional":
            return conv1d(x, w, b, *args, method=cfg["method"])
        return Conv1d.from_weights(w, b, *args)(x, method=cfg["method"])
    except Conv1dError as exc:
        return exc


def _arrays(cfg):
    rng = np.random.default_rng(cfg["seed"])
    dtype = np.dtype(cfg["dtype"])
    shape = (cfg["x_channels"], cfg["length"])
    if cfg["batch"] is not None:
        shape = (cfg["batch"], *shape)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal(
        (cfg["c_out"], cfg["c_in"] // cfg["groups"], cfg["kernel_size"])
    ).astype(dtype)
    b = rng.standard_normal(cfg["c_out"]).astype(dtype) if cfg["bias"] else None
    return x, w, b


def _relative_error(ours, theirs) -> float:
    if theirs.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(theirs))), np.finfo(np.float32).tiny)
    return float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)))) / scale


def _record(stats, key, error=None, *, raised=False):
    entry = stats.setdefault(key, {"compared": 0, "errors": 0, "worst": 0.0})
    if raised:
        entry["errors"] += 1
    else:
        entry["compared"] += 1
        entry["worst"] = max(entry["worst"], error)


@pytest.mark.parametrize("block", range(6))
def test_parity_random_configs(block, parity_stats):
    """N_CONFIGS random configurations in 6 blocks; failures list the offending configs."""
    per_block = N_CONFIGS // 6
    failures = []
    for index in range(block * per_block, (block + 1) * per_block):
        cfg = _random_config(index)
        if _is_deliberate_difference(cfg):
            x, w, b = _arrays(cfg)
            if not isinstance(_ours_run(cfg, x, w, b), Conv1dError):
                failures.append((index, cfg, "a deliberate rejection was accepted"))
            continue
        x, w, b = _arrays(cfg)
        theirs = _torch_run(cfg, x, w, b)
        ours = _ours_run(cfg, x, w, b)
        if isinstance(theirs, Exception) or isinstance(ours, Exception):
            if not (isinstance(theirs, Exception) and isinstance(ours, Exception)):
                failures.append((index, cfg, f"torch: {theirs!r:.150} / ours: {ours!r:.150}"))
            else:
                _record(parity_stats, cfg["dtype"], raised=True)
            continue
        if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
            failures.append(
                (
                    index,
                    cfg,
                    f"shape/dtype {ours.shape} {ours.dtype} vs {theirs.shape} {theirs.dtype}",
                )
            )
            continue
        error = _relative_error(ours, theirs)
        _record(parity_stats, cfg["dtype"], error)
        if error > TOLERANCE[cfg["dtype"]]:
            failures.append((index, cfg, f"relative error {error:.3g}"))
    assert not failures, "\n".join(map(str, failures))


N_LARGE = 48


def _large_config(index: int) -> dict:
    """Valid, larger configurations: long kernels (FFT path), oneDNN-sized float32 batches."""
    rng = np.random.default_rng([2027, index])
    groups = int(rng.choice([1, 2, 4]))
    kernel_size = int(rng.choice([3, 17, 64, 101, 255]))
    dilation = int(rng.choice([1, 1, 2]))
    padding = [0, "same", kernel_size // 2, 7][int(rng.integers(4))]
    mode = MODES[index % 4]
    field = dilation * (kernel_size - 1) + 1
    return {
        "dtype": ("float32", "float64")[(index // 4) % 2],
        "c_in": groups * int(rng.integers(1, 4)),
        "c_out": groups * int(rng.integers(1, 4)),
        "kernel_size": kernel_size,
        "stride": 1 if padding == "same" else int(rng.choice([1, 1, 2, 3])),
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "bias": bool(rng.random() < 0.7),
        "padding_mode": mode,
        "length": int(field + rng.integers(0, 3000)),
        "batch": int(rng.integers(1, 5)),
        "api": ("functional", "layer")[index % 2],
        "method": ("auto", "direct", "fft")[index % 3],
        "seed": int(rng.integers(2**31)),
    }


def test_parity_random_large_configs(parity_stats):
    failures = []
    for index in range(N_LARGE):
        cfg = _large_config(index)
        cfg["x_channels"] = cfg["c_in"]
        x, w, b = _arrays(cfg)
        theirs, ours = _torch_run(cfg, x, w, b), _ours_run(cfg, x, w, b)
        if isinstance(theirs, Exception) or isinstance(ours, Exception):
            failures.append((index, cfg, f"torch: {theirs!r:.150} / ours: {ours!r:.150}"))
            continue
        error = _relative_error(ours, theirs)
        _record(parity_stats, cfg["dtype"], error)
        if ours.shape != theirs.shape or error > TOLERANCE[cfg["dtype"]]:
            failures.append(
                (index, cfg, f"{ours.shape} vs {theirs.shape}, relative error {error:.3g}")
            )
    assert not failures, "\n".join(map(str, failures))


def test_parity_random_configs_cover_the_space():
    """The generator really produces what the brief asks for (so the counts mean something)."""
    configs = [_random_config(i) for i in range(N_CONFIGS)]
    seen = {
        (
            c["padding_mode"],
            c["padding"] == "same",
            c["kernel_size"] % 2,
            c["dtype"],
            c["batch"] is None,
        )
        for c in configs
    }
    assert len(seen) == 4 * 2 * 2 * 2 * 2
    assert any(c["batch"] == 0 for c in configs)
    assert any(c["length"] == 0 for c in configs)
    assert any(c["groups"] == c["c_in"] and c["c_out"] > c["c_in"] > 1 for c in configs)
    assert min(c["length"] for c in configs if c["length"]) == 1
    assert {c["method"] for c in configs} == {"auto", "direct", "fft"}


# --- deliberate differences, pinned -----------------------------------------------------------


def test_parity_negative_padding_nonzero_mode_we_reject_torch_crops():
    x = np.ones((1, 2, 10), np.float32)
    layer = torch.nn.Conv1d(2, 2, 3, padding=-1, padding_mode="reflect")
    assert layer(torch.tensor(x)).shape == (1, 2, 6)  # PyTorch crops
    with pytest.raises(Conv1dError, match=r"padding must be >= 0, got -1"):
        conv1d(x, layer.weight.detach().numpy(), padding=-1, padding_mode="reflect")


def test_parity_zero_channel_input_we_reject_torch_returns_zero_channels():
    out = F.conv1d(torch.ones(1, 0, 10), torch.ones(3, 0, 3))
    assert tuple(out.shape) == (1, 0, 8)
    with pytest.raises(Conv1dError, match="weight must have no zero-sized dimension"):
        conv1d(np.ones((1, 0, 10)), np.ones((3, 0, 3)))
    with pytest.raises(Conv1dError, match="input has 0 channels"):
        conv1d(np.ones((1, 0, 10)), np.ones((3, 1, 3)))


def test_parity_mixed_dtypes_we_promote_torch_raises():
    rng = np.random.default_rng(5)
    x32 = rng.standard_normal((2, 3, 12)).astype(np.float32)
    w64 = rng.standard_normal((4, 3, 3))
    with pytest.raises(RuntimeError):
        F.conv1d(torch.tensor(x32), torch.tensor(w64))
    ours = conv1d(x32, w64)
    assert ours.dtype == np.float64
    theirs = F.conv1d(torch.tensor(x32.astype(np.float64)), torch.tensor(w64)).numpy()
    assert _relative_error(ours, theirs) < 1e-12


@pytest.mark.parametrize("padding", ["causal", "full", (2, 0)])
def test_parity_extensions_rejected_by_torch(padding):
    with pytest.raises((RuntimeError, TypeError, ValueError)):
        F.conv1d(torch.ones(1, 1, 8), torch.ones(1, 1, 3), padding=padding)
    assert conv1d(np.ones((1, 1, 8)), np.ones((1, 1, 3)), padding=padding).shape[-1] >= 8


# --- specific edge cases PyTorch pins down ------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("kernel_size", "dilation"), [(2, 1), (4, 1), (4, 3), (4, 2), (6, 1), (3, 2), (5, 1)]
)
def test_parity_same_split_all_modes(mode, kernel_size, dilation):
    rng = np.random.default_rng([kernel_size, dilation])
    x = rng.standard_normal((2, 2, 10))
    w = rng.standard_normal((3, 2, kernel_size))
    layer = torch.nn.Conv1d(
        2, 3, kernel_size, padding="same", dilation=dilation, bias=False, padding_mode=mode
    )
    layer = layer.double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
        theirs = layer(torch.tensor(x)).numpy()
    ours = conv1d(x, w, padding="same", dilation=dilation, padding_mode=mode)
    assert _relative_error(ours, theirs) < 1e-12


def test_parity_docs_example():
    torch.manual_seed(0)
    m = torch.nn.Conv1d(16, 33, 3, stride=2)
    x = torch.randn(20, 16, 50)
    with torch.no_grad():
        theirs = m(x).numpy()
    ours = Conv1d(16, 33, 3, stride=2, seed=0)
    assert theirs.shape == (20, 33, 24)
    np.testing.assert_array_equal(ours.weight, m.weight.detach().numpy())
    out = ours(x.numpy())
    assert out.shape == (20, 33, 24) and out.dtype == np.float32
    assert _relative_error(out, theirs) < 1e-5


# --- default initialisation: bit-exact in float32 -----------------------------------------------

INIT_SHAPES = [
    (1, 1, 1, 1, True),  # fan_in 1: bound computed in double is 0.9999999999999999
    (16, 33, 3, 1, True),
    (4, 6, 5, 2, True),
    (4, 12, 5, 4, True),  # depthwise, multiplier 3
    (3, 7, 9, 1, False),
    (8, 8, 1, 8, False),
    (2, 3, 128, 1, True),
]


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31 - 1, 2**32 + 7, -3])
@pytest.mark.parametrize(("c_in", "c_out", "k", "groups", "bias"), INIT_SHAPES)
def test_parity_init_bit_exact(seed, c_in, c_out, k, groups, bias):
    torch.manual_seed(seed)
    theirs = torch.nn.Conv1d(c_in, c_out, k, groups=groups, bias=bias)
    ours = Conv1d(c_in, c_out, k, groups=groups, bias=bias, seed=seed)
    assert ours.weight.dtype == np.float32
    np.testing.assert_array_equal(ours.weight, theirs.weight.detach().numpy(), strict=True)
    if bias:
        np.testing.assert_array_equal(ours.bias, theirs.bias.detach().numpy(), strict=True)
    else:
        assert ours.bias is None and theirs.bias is None


def test_parity_init_float64_within_bounds_and_close():
    # float64 draws follow PyTorch's recipe but are not promised bit-exact (SPEC §4).
    torch.manual_seed(3)
    theirs = torch.nn.Conv1d(4, 6, 5, dtype=torch.float64)
    ours = Conv1d(4, 6, 5, dtype="float64", seed=3)
    assert ours.weight.dtype == np.float64
    np.testing.assert_allclose(ours.weight, theirs.weight.detach().numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(ours.bias, theirs.bias.detach().numpy(), rtol=0, atol=1e-15)


def test_parity_dilation_zero_empty_batch_we_reject_torch_accepts():
    out = F.conv1d(torch.ones(0, 2, 20), torch.ones(3, 2, 2), dilation=0)
    assert tuple(out.shape) == (0, 3, 20)
    with pytest.raises(Conv1dError, match="dilation must be positive, got 0"):
        conv1d(np.ones((0, 2, 20)), np.ones((3, 2, 2)), dilation=0)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((3, 4, 5), {"padding": "same", "padding_mode": "reflect"}),
        ((4, 8, 3), {"groups": 4, "stride": 2, "padding": 1, "padding_mode": "circular"}),
        ((2, 2, 7), {"dilation": 2, "bias": False, "padding_mode": "replicate"}),
        ((6, 3, 2), {"groups": 3, "padding": "valid"}),
    ],
)
def test_parity_seeded_layer_end_to_end(args, kwargs):
    torch.manual_seed(1234)
    theirs = torch.nn.Conv1d(*args, **kwargs)
    ours = Conv1d(*args, **kwargs, seed=1234)
    x = np.random.default_rng(0).standard_normal((3, args[0], 40)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    got = ours(x)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert _relative_error(got, expected) < 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_parity_exhaustive_small_grid_errors_and_values(mode, parity_stats):
    """Every tiny (L, K, dilation, padding, stride, rank) combination: where the limits bite."""
    failures = []
    grid = itertools.product(
        range(6), (1, 2, 4), (1, 3), (0, 1, 3, "same", "valid"), (1, 2), (None, 2)
    )
    for length, k, dilation, padding, stride, batch in grid:
        cfg = {
            "dtype": "float64",
            "c_in": 1,
            "c_out": 2,
            "x_channels": 1,
            "kernel_size": k,
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": 1,
            "bias": True,
            "padding_mode": mode,
            "length": length,
            "batch": batch,
            "api": "functional",
            "method": "auto",
            "seed": length * 1000 + k,
        }
        x, w, b = _arrays(cfg)
        theirs, ours = _torch_run(cfg, x, w, b), _ours_run(cfg, x, w, b)
        if isinstance(theirs, Exception) or isinstance(ours, Exception):
            if not (isinstance(theirs, Exception) and isinstance(ours, Exception)):
                failures.append((cfg, f"torch: {theirs!r:.120} / ours: {ours!r:.120}"))
            else:
                _record(parity_stats, "float64 grid", raised=True)
            continue
        error = _relative_error(ours, theirs)
        _record(parity_stats, "float64 grid", error)
        if ours.shape != theirs.shape or error > TOLERANCE["float64"]:
            failures.append((cfg, f"{ours.shape} vs {theirs.shape}, relative error {error:.3g}"))
    assert not failures, "\n".join(map(str, failures))
