"""Hypothesis properties of conv1d (profile in conftest.py: modest max_examples, no deadline)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from reference import reference_conv1d

from conv1d_cli import conv1d, min_input_length

MODES = ("zeros", "reflect", "replicate", "circular")
PADDINGS = st.one_of(
    st.integers(0, 3),
    st.sampled_from(["valid", "same", "causal", "full"]),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
)


@st.composite
def configs(draw, *, stride_one=False):
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 3))
    k = draw(st.integers(1, 5))
    dilation = draw(st.integers(1, 3))
    padding = draw(PADDINGS)
    stride = 1 if stride_one or padding == "same" else draw(st.integers(1, 3))
    mode = draw(st.sampled_from(MODES))
    need = min_input_length(k, stride, padding, dilation, mode)
    length = need + draw(st.integers(0, 12))
    batch = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return {
        "shape": (batch, c_in, length),
        "w_shape": (c_out, c_in // groups, k),
        "kw": {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "padding_mode": mode,
        },
        "rng": np.random.default_rng(seed),
    }


def _close(a, b, rtol=1e-12):
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1.0)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


@given(configs(), st.floats(-3, 3), st.floats(-3, 3), st.sampled_from(["direct", "fft"]))
def test_property_linear_in_x(cfg, a, b, method):
    rng = cfg["rng"]
    x1, x2 = rng.standard_normal(cfg["shape"]), rng.standard_normal(cfg["shape"])
    w = rng.standard_normal(cfg["w_shape"])
    combined = conv1d(a * x1 + b * x2, w, **cfg["kw"], method=method)
    separate = a * conv1d(x1, w, **cfg["kw"], method=method) + b * conv1d(
        x2, w, **cfg["kw"], method=method
    )
    _close(combined, separate, 1e-11)


@given(configs())
def test_property_matches_reference(cfg):
    rng = cfg["rng"]
    x, w = rng.standard_normal(cfg["shape"]), rng.standard_normal(cfg["w_shape"])
    bias = rng.standard_normal(cfg["w_shape"][0])
    _close(conv1d(x, w, bias, **cfg["kw"]), reference_conv1d(x, w, bias, **cfg["kw"]))


@given(
    st.integers(1, 6),
    st.integers(1, 3),
    st.integers(1, 3),
    st.data(),
)
def test_property_delta_kernel_shifts(k, dilation, stride, data):
    tap = data.draw(st.integers(0, k - 1))
    length = dilation * (k - 1) + 1 + data.draw(st.integers(0, 15))
    x = np.random.default_rng(k * 100 + tap).standard_normal((2, 1, length))
    w = np.zeros((1, 1, k))
    w[0, 0, tap] = 1.0
    y = conv1d(x, w, stride=stride, dilation=dilation, method="direct")
    shift = tap * dilation
    expected = x[..., shift : shift + (y.shape[-1] - 1) * stride + 1 : stride]
    np.testing.assert_array_equal(y, expected)
    _close(conv1d(x, w, stride=stride, dilation=dilation, method="fft"), expected)


@given(configs())
def test_property_groups_are_independent_convolutions(cfg):
    rng = cfg["rng"]
    kw = dict(cfg["kw"])
    groups = kw.pop("groups")
    x, w = rng.standard_normal(cfg["shape"]), rng.standard_normal(cfg["w_shape"])
    c_in_g = x.shape[1] // groups
    c_out_g = w.shape[0] // groups
    parts = [
        conv1d(
            x[:, g * c_in_g : (g + 1) * c_in_g], w[g * c_out_g : (g + 1) * c_out_g], **kw, groups=1
        )
        for g in range(groups)
    ]
    _close(conv1d(x, w, **kw, groups=groups), np.concatenate(parts, axis=1))


@given(
    st.integers(1, 4),
    st.integers(1, 20),
    st.sampled_from(MODES),
    st.sampled_from([np.float32, np.float64]),
)
def test_property_identity_kernel_returns_input(channels, length, mode, dtype):
    x = np.random.default_rng(length).standard_normal((2, channels, length)).astype(dtype)
    w = np.eye(channels, dtype=dtype)[:, :, None]
    for padding in (0, "same", "causal", "valid"):
        y = conv1d(x, w, padding=padding, padding_mode=mode, method="direct")
        assert y.dtype == dtype
        np.testing.assert_array_equal(y, x)


@given(configs(), st.data())
def test_property_causal_has_no_look_ahead(cfg, data):
    rng = cfg["rng"]
    kw = dict(cfg["kw"], padding="causal")
    if kw["padding_mode"] in ("reflect", "circular"):
        # Reflect/circular padding on the left copies samples from the right by definition.
        kw["padding_mode"] = "zeros"
    x = rng.standard_normal(cfg["shape"])
    w = rng.standard_normal(cfg["w_shape"])
    t = data.draw(st.integers(0, x.shape[-1] - 1))
    changed = x.copy()
    changed[..., t + 1 :] = rng.standard_normal(changed[..., t + 1 :].shape) * 100
    y, y_changed = conv1d(x, w, **kw), conv1d(changed, w, **kw)
    visible = t // kw["stride"] + 1  # outputs i with i*stride <= t see only x[..., :t+1]
    _close(y_changed[..., :visible], y[..., :visible])
    if kw["stride"] == 1:
        assert y.shape[-1] == x.shape[-1]
