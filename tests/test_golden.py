"""Golden fixtures produced by PyTorch 2.13 (tests/golden/make_golden.py); no torch needed here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conv1d_cli import Conv1d, conv1d

GOLDEN = Path(__file__).parent / "golden"
INDEX = json.loads((GOLDEN / "index.json").read_text())
CASES = sorted(path.stem for path in GOLDEN.glob("*.npz"))
RTOL = {"float32": 1e-5, "float64": 1e-12}


def _load(name):
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    params = dict(INDEX["cases"][name])
    return arrays, params


def _check(actual, expected, dtype):
    assert actual.shape == expected.shape
    assert actual.dtype == np.dtype(dtype)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


def test_golden_index_matches_files():
    assert CASES, "no golden fixtures found"
    assert set(CASES) == set(INDEX["cases"])
    assert INDEX["torch_version"].startswith("2.13")


def test_golden_fixtures_stay_small():
    total = sum(path.stat().st_size for path in GOLDEN.iterdir() if path.is_file())
    assert total < 100 * 1024


def test_golden_covers_the_spread():
    cases = INDEX["cases"].values()
    modes = {c["padding_mode"] for c in cases}
    assert modes == {"zeros", "reflect", "replicate", "circular"}
    for mode in modes:
        assert {c["dtype"] for c in cases if c["padding_mode"] == mode} == {"float32", "float64"}
        assert any(c["padding"] == "same" for c in cases if c["padding_mode"] == mode)
    assert any(c["groups"] > 1 for c in cases) and any(c["stride"] > 1 for c in cases)
    assert any(c["dilation"] > 1 for c in cases)


@pytest.mark.parametrize("name", CASES)
def test_golden_conv1d(name):
    arrays, params = _load(name)
    dtype = params.pop("dtype")
    x, weight, bias, y = arrays["x"], arrays["weight"], arrays.get("bias"), arrays["y"]
    assert x.dtype == weight.dtype == y.dtype == np.dtype(dtype)
    for method in ("direct", "fft"):
        _check(conv1d(x, weight, bias, **params, method=method), y, dtype)
    _check(Conv1d.from_weights(weight, bias, **params)(x), y, dtype)
