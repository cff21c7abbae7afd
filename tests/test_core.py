"""conv1d_cli.core against the naive oracle, the spec's worked examples, dtypes and errors."""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest
from reference import reference_conv1d, reference_pad, reference_padding

from conv1d_cli import ConfigError, Conv1dError, ShapeError, conv1d, pad1d
from conv1d_cli.core import Correlator

MODES = ("zeros", "reflect", "replicate", "circular")
METHODS = ("direct", "fft", "auto")


def _random(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _assert_close(actual, expected, rtol):
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


# --- against the naive reference -------------------------------------------------------------

# (C_in, C_out, K, stride, padding, dilation, groups, L): PyTorch's paddings and our extensions.
ORACLE_CONFIGS = [
    (1, 1, 3, 1, 0, 1, 1, 6),
    (2, 3, 4, 1, "same", 1, 1, 7),
    (2, 3, 4, 1, "same", 3, 1, 10),
    (2, 3, 4, 1, "same", 2, 1, 9),
    (3, 2, 5, 2, 2, 1, 1, 11),
    (4, 6, 3, 1, 1, 1, 2, 8),
    (4, 12, 5, 1, 2, 1, 4, 9),  # depthwise, multiplier 3
    (3, 3, 2, 3, 1, 2, 3, 10),  # depthwise, multiplier 1
    (2, 2, 1, 50, 0, 1, 1, 10),  # stride larger than the input
    (2, 4, 3, 2, "valid", 1, 2, 9),
    (1, 2, 3, 1, "causal", 2, 1, 8),
    (2, 2, 4, 2, "causal", 1, 2, 9),
    (1, 1, 3, 1, "full", 1, 1, 5),
    (2, 4, 2, 1, "full", 3, 1, 6),
    (2, 3, 3, 1, (3, 0), 1, 1, 6),
    (2, 3, 5, 2, (0, 4), 1, 1, 7),
    (1, 1, 6, 1, (1,), 1, 1, 8),
    (1, 2, 9, 1, "same", 1, 1, 3),  # kernel longer than the input, 'same' makes it fit
]


def _mode_fits(mode, length, left, right):
    if mode == "reflect":
        return max(left, right) < length
    if mode == "circular":
        return max(left, right) <= length
    return True


@pytest.mark.parametrize("config", ORACLE_CONFIGS, ids=str)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
def test_conv1d_matches_reference(config, mode, method):
    c_in, c_out, k, stride, padding, dilation, groups, length = config
    left, right = reference_padding(padding, k, dilation, stride)
    if not _mode_fits(mode, length, left, right):
        pytest.skip("padding too large for this mode (tested in test_conv1d_pad_limits)")
    rng = np.random.default_rng(zlib.crc32(repr((config, mode)).encode()))
    x = _random(rng, (2, c_in, length))
    w = _random(rng, (c_out, c_in // groups, k))
    b = _random(rng, (c_out,))
    args = (stride, padding, dilation, groups, mode)
    expected = reference_conv1d(x, w, b, *args)
    _assert_close(conv1d(x, w, b, *args, method=method), expected, 1e-12)
    # unbatched input, no bias
    _assert_close(
        conv1d(x[1], w, None, *args, method=method), reference_conv1d(x[1], w, None, *args), 1e-12
    )


@pytest.mark.parametrize("mode", MODES)
def test_conv1d_reference_random_small(mode):
    rng = np.random.default_rng(7)
    for _ in range(40):
        groups = int(rng.integers(1, 4))
        c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        k, dilation, stride = (
            int(rng.integers(1, 5)),
            int(rng.integers(1, 4)),
            int(rng.integers(1, 4)),
        )
        padding = [
            int(rng.integers(0, 4)),
            "valid",
            "causal",
            "full",
            (int(rng.integers(0, 4)), int(rng.integers(0, 4))),
        ][int(rng.integers(0, 5))]
        left, right = reference_padding(padding, k, dilation, stride)
        field = dilation * (k - 1) + 1
        length = max(1, field - left - right, max(left, right) + 1) + int(rng.integers(0, 6))
        x = _random(rng, (int(rng.integers(1, 3)), c_in, length), np.float32)
        w = _random(rng, (c_out, c_in // groups, k), np.float32)
        got = conv1d(x, w, None, stride, padding, dilation, groups, mode)
        assert got.dtype == np.float32
        _assert_close(
            got, reference_conv1d(x, w, None, stride, padding, dilation, groups, mode), 1e-5
        )


# --- worked examples from SPEC-conv1d.md ------------------------------------------------------


def test_conv1d_spec_example_is_cross_correlation():
    got = conv1d(np.arange(1.0, 7.0)[None, None], np.array([[[1.0, 2.0, 3.0]]]))
    np.testing.assert_array_equal(got, [[[14.0, 20.0, 26.0, 32.0]]])


def test_conv1d_pytorch_docs_example_shape():
    # torch.nn.Conv1d docs: m = nn.Conv1d(16, 33, 3, stride=2); m(torch.randn(20, 16, 50))
    rng = np.random.default_rng(0)
    out = conv1d(
        _random(rng, (20, 16, 50), np.float32), _random(rng, (33, 16, 3), np.float32), stride=2
    )
    assert out.shape == (20, 33, 24)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("zeros", None),
        ("reflect", [2, 3, 4, 5, 4]),
        ("circular", [2, 3, 4, 5, 1]),
        ("replicate", [2, 3, 4, 5, 5]),
    ],
)
def test_conv1d_same_even_kernel_extra_pad_on_right(mode, expected):
    w_next = np.array([[[0.0, 1.0]]])  # picks x[t + 1]
    if expected is None:
        got = conv1d(np.arange(1.0, 7.0)[None], w_next, padding="same", padding_mode=mode)
        np.testing.assert_array_equal(got, [[2, 3, 4, 5, 6, 0]])
    else:
        got = conv1d(np.arange(1.0, 6.0)[None], w_next, padding="same", padding_mode=mode)
        np.testing.assert_array_equal(got, [expected])
    x = np.arange(1.0, 6.0)[None]
    np.testing.assert_array_equal(
        conv1d(x, np.array([[[1.0, 0.0]]]), padding="same", padding_mode=mode), x
    )


@pytest.mark.parametrize(
    ("mode", "left", "right", "expected"),
    [
        ("zeros", 2, 1, [0, 0, 1, 2, 3, 4, 5, 0]),
        ("reflect", 2, 1, [3, 2, 1, 2, 3, 4, 5, 4]),
        ("replicate", 2, 1, [1, 1, 1, 2, 3, 4, 5, 5]),
        ("circular", 2, 1, [4, 5, 1, 2, 3, 4, 5, 1]),
        ("reflect", 4, 4, [5, 4, 3, 2, 1, 2, 3, 4, 5, 4, 3, 2, 1]),
        ("circular", 5, 5, [1, 2, 3, 4, 5] * 3),
        ("replicate", 10, 0, [1] * 10 + [1, 2, 3, 4, 5]),
    ],
)
def test_pad1d_spec_table(mode, left, right, expected):
    x = np.arange(1, 6)
    np.testing.assert_array_equal(pad1d(x, left, right, mode), expected)
    np.testing.assert_array_equal(reference_pad(x, left, right, mode), expected)


def test_pad1d_returns_input_when_nothing_added():
    x = np.arange(5.0)
    assert pad1d(x, 0, 0, "reflect") is x


@pytest.mark.parametrize(
    ("mode", "length", "left", "right", "ok"),
    [
        ("reflect", 5, 4, 4, True),
        ("reflect", 5, 5, 5, False),
        ("reflect", 5, 4, 5, False),  # each side on its own
        ("reflect", 1, 1, 0, False),
        ("circular", 5, 5, 5, True),
        ("circular", 5, 6, 0, False),
        ("replicate", 1, 10, 10, True),
        ("zeros", 1, 10, 10, True),
    ],
)
def test_pad1d_limits(mode, length, left, right, ok):
    x = np.ones((1, 1, length))
    if ok:
        assert pad1d(x, left, right, mode).shape[-1] == length + left + right
    else:
        with pytest.raises(ShapeError, match=rf"{mode}.*\({left}, {right}\).*length {length}"):
            pad1d(x, left, right, mode)


def test_pad1d_empty_signal_only_zero_mode():
    assert pad1d(np.ones((1, 0)), 1, 1, "zeros").shape == (1, 2)
    for mode in ("reflect", "replicate", "circular"):
        with pytest.raises(ShapeError, match=f"cannot {mode}-pad an empty signal"):
            pad1d(np.ones((1, 0)), 1, 1, mode)


@pytest.mark.parametrize(
    ("k", "dilation", "padding", "mode", "length", "ok"),
    [
        (4, 3, "same", "reflect", 5, False),  # pads (4, 5): the right side hits the limit
        (4, 3, "same", "reflect", 6, True),
        (4, 3, "same", "circular", 5, True),
        (4, 3, "same", "circular", 4, False),
        (9, 1, 4, "reflect", 5, True),
        (11, 1, 5, "reflect", 5, False),
        (11, 1, 5, "circular", 5, True),
        (13, 1, 6, "circular", 5, False),
        (31, 1, 15, "replicate", 5, True),
        (3, 1, "same", "replicate", 1, True),
        (3, 1, "same", "zeros", 1, True),
    ],
)
def test_conv1d_pad_limits(k, dilation, padding, mode, length, ok):
    x, w = np.ones((1, 2, length)), np.ones((3, 2, k))
    if ok:
        assert conv1d(x, w, padding=padding, dilation=dilation, padding_mode=mode).shape == (
            1,
            3,
            length,
        )
    else:
        with pytest.raises(ShapeError, match=mode):
            conv1d(x, w, padding=padding, dilation=dilation, padding_mode=mode)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs", "out_shape"),
    [
        ((2, 4, 20), (12, 1, 5), {"padding": 2, "groups": 4}, (2, 12, 20)),
        ((2, 4, 20), (6, 2, 3), {"groups": 2}, (2, 6, 18)),
        ((1, 2, 20), (2, 2, 5), {"stride": 3, "padding": 2}, (1, 2, 7)),
        ((1, 2, 21), (2, 2, 5), {"stride": 3, "padding": 2}, (1, 2, 7)),
        ((1, 2, 1), (2, 2, 5), {"stride": 3, "padding": 2}, (1, 2, 1)),
        ((1, 2, 3), (2, 2, 5), {"stride": 3, "padding": 2, "padding_mode": "reflect"}, (1, 2, 1)),
        ((2, 10), (3, 2, 3), {}, (3, 8)),
        ((2, 10), (3, 2, 3), {"padding": 1, "padding_mode": "circular"}, (3, 10)),
        ((2, 10), (3, 2, 4), {"padding": "same"}, (3, 10)),
        ((1, 2, 10), (3, 2, 3), {"padding": "valid", "stride": 2}, (1, 3, 4)),
        ((1, 1, 10), (1, 1, 1), {"stride": 50}, (1, 1, 1)),
        ((1, 1, 9), (1, 1, 3), {"dilation": 4}, (1, 1, 1)),
        ((0, 2, 5), (3, 2, 3), {"padding": 1, "padding_mode": "reflect"}, (0, 3, 5)),
        ((0, 2, 0), (3, 2, 3), {"padding": 2}, (0, 3, 2)),  # PyTorch accepts this empty case
        ((1, 2, 10), (3, 2, 3), {"stride": (2,), "dilation": [1], "padding": (1,)}, (1, 3, 5)),
    ],
)
def test_conv1d_spec_shapes(x_shape, w_shape, kwargs, out_shape):
    assert (
        conv1d(np.ones(x_shape), np.ones(w_shape), np.ones(w_shape[0]), **kwargs).shape == out_shape
    )


def test_conv1d_empty_batch_is_bias_only_shape():
    out = conv1d(np.ones((0, 2, 7)), np.ones((3, 2, 3)), np.ones(3), padding=1)
    assert out.shape == (0, 3, 7)


# --- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x_dtype", "w_dtype", "b_dtype", "expected"),
    [
        (np.float32, np.float32, np.float32, np.float32),
        (np.float32, np.float32, None, np.float32),
        (np.float64, np.float64, np.float64, np.float64),
        (np.float32, np.float64, None, np.float64),
        (np.float64, np.float32, np.float32, np.float64),
        (np.float32, np.float32, np.float64, np.float64),
        (np.int64, np.float64, None, np.float64),
        (np.int16, np.float32, None, np.float64),  # np.result_type would say float32
        (np.uint8, np.float32, np.float32, np.float64),
        (np.int32, np.int32, None, np.float64),
        (np.float16, np.float32, None, np.float32),
    ],
)
def test_conv1d_dtype_rules(x_dtype, w_dtype, b_dtype, expected):
    x = np.arange(12).reshape(2, 6).astype(x_dtype)
    w = np.ones((3, 2, 3), w_dtype)
    b = None if b_dtype is None else np.ones(3, b_dtype)
    out = conv1d(x, w, b)
    assert out.dtype == expected
    np.testing.assert_allclose(out, reference_conv1d(x, w, b), rtol=1e-6)


def test_conv1d_does_not_modify_inputs():
    rng = np.random.default_rng(1)
    x, w, b = _random(rng, (2, 2, 9)), _random(rng, (2, 2, 3)), _random(rng, (2,))
    copies = [a.copy() for a in (x, w, b)]
    for method in METHODS:
        conv1d(x, w, b, padding=1, padding_mode="reflect", method=method)
    for a, c in zip((x, w, b), copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_conv1d_accepts_lists_and_noncontiguous():
    x = np.arange(24.0).reshape(2, 12)[:, ::2]
    w = [[[1.0, -1.0], [0.5, 2.0]]]
    np.testing.assert_allclose(conv1d(x, w), reference_conv1d(x, w), rtol=1e-12)


def test_correlator_blocks_are_valid_correlation():
    rng = np.random.default_rng(3)
    w = _random(rng, (4, 1, 3))
    corr = Correlator(w, None, stride=1, dilation=2, groups=2)
    xp = _random(rng, (1, 2, 12))
    assert corr.output_length(12) == 8
    assert corr.output_length(4) == 0
    _assert_close(corr(xp), reference_conv1d(xp, w, None, 1, 0, 2, 2), 1e-12)


# --- errors: every kind names the parameter, what was expected and what was received ----------

X, W = np.ones((2, 4, 10)), np.ones((6, 4, 3))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stride": 0}, ConfigError, r"stride must be positive, got 0"),
        ({"stride": -2}, ConfigError, r"stride must be positive, got -2"),
        ({"stride": 1.5}, ConfigError, r"stride must be an integer, got 1.5"),
        ({"stride": (1, 2)}, ConfigError, r"stride must be an integer or a 1-tuple, got \(1, 2\)"),
        ({"dilation": 0}, ConfigError, r"dilation must be positive, got 0"),
        ({"dilation": True}, ConfigError, r"dilation must be an integer, got True"),
        ({"groups": 0}, ConfigError, r"groups must be positive, got 0"),
        ({"groups": 2.0}, ConfigError, r"groups must be an integer, got 2.0"),
        ({"padding": -1}, ConfigError, r"padding must be >= 0, got -1"),
        ({"padding": -1, "padding_mode": "reflect"}, ConfigError, r"padding must be >= 0, got -1"),
        ({"padding": 1.5}, ConfigError, r"padding must be an integer, got 1.5"),
        (
            {"padding": "SAME"},
            ConfigError,
            r"padding must be .*'same', 'valid', 'causal', 'full'.*got 'SAME'",
        ),
        ({"padding": (1, 2, 3)}, ConfigError, r"padding must be .* pair, got \(1, 2, 3\)"),
        ({"padding": (1, -2)}, ConfigError, r"padding\[1\] \(right\) must be >= 0, got -2"),
        (
            {"padding": "same", "stride": 2},
            ConfigError,
            r"padding='same' is not supported for strided .*stride=2",
        ),
        (
            {"padding_mode": "zero"},
            ConfigError,
            r"padding_mode must be one of 'zeros', .*got 'zero'",
        ),
        (
            {"padding_mode": "constant"},
            ConfigError,
            r"padding_mode must be one of .*got 'constant'",
        ),
        (
            {"method": "fastest"},
            ConfigError,
            r"method must be one of auto, direct, fft, got 'fastest'",
        ),
        (
            {"groups": 4},
            ShapeError,
            r"out_channels must be divisible by groups: weight has 6 output channels, groups=4",
        ),
        (
            {"groups": 2},
            ShapeError,
            r"input has 4 channels but the weight \(6, 4, 3\) with groups=2 expects 8",
        ),
        ({"dilation": 5}, ShapeError, r"padded length 10 .* less than the dilated kernel size 11"),
    ],
)
def test_conv1d_invalid_argument_messages(kwargs, error, match):
    with pytest.raises(error, match=match):
        conv1d(X, W, **kwargs)


@pytest.mark.parametrize(
    ("x", "w", "b", "match"),
    [
        (
            np.ones(10),
            W,
            None,
            r"input must be 2-D \(channels, length\) or 3-D .*got shape \(10,\)",
        ),
        (np.ones((1, 2, 4, 10)), W, None, r"input must be 2-D .*got shape \(1, 2, 4, 10\)"),
        (
            np.ones((2, 5, 10)),
            W,
            None,
            r"input has 5 channels but the weight \(6, 4, 3\) with groups=1 expects 4",
        ),
        (np.ones((2, 0, 10)), W, None, r"input has 0 channels"),
        (np.ones((2, 4, 0)), W, None, r"input length must be at least 1, got 0"),
        (np.ones((4, 0)), W, None, r"input length must be at least 1, got 0"),
        (
            np.ones((2, 4, 4)),
            np.ones((6, 4, 5)),
            None,
            r"padded length 4 .* dilated kernel size 5.*at least 5",
        ),
        (X, np.ones((6, 4)), None, r"weight must be 3-D .*got shape \(6, 4\)"),
        (X, np.ones((6, 4, 3, 1)), None, r"weight must be 3-D .*got shape \(6, 4, 3, 1\)"),
        (
            X,
            np.ones((0, 4, 3)),
            None,
            r"weight must have no zero-sized dimension, got shape \(0, 4, 3\)",
        ),
        (X, np.ones((6, 4, 0)), None, r"weight must have no zero-sized dimension"),
        (
            X,
            W,
            np.ones(5),
            r"bias must have shape \(6,\) to match weight \(6, 4, 3\), got shape \(5,\)",
        ),
        (X, W, np.ones((6, 1)), r"bias must have shape \(6,\) .*got shape \(6, 1\)"),
        (X + 0j, W, None, r"input must be a real numeric array, got dtype complex128"),
        (X, W.astype(str), None, r"weight must be a real numeric array, got dtype <U"),
        (X, W, np.array(["a"] * 6), r"bias must be a real numeric array"),
        ([[1.0, 2.0], [3.0]], W, None, r"input must be a rectangular numeric array"),
    ],
)
def test_conv1d_invalid_array_messages(x, w, b, match):
    with pytest.raises(ShapeError, match=match):
        conv1d(x, w, b)


def test_conv1d_errors_are_valueerrors():
    assert issubclass(Conv1dError, ValueError)
    with pytest.raises(ValueError, match="stride"):
        conv1d(X, W, stride=0)


@pytest.mark.parametrize(("left", "right"), [(-1, 0), (0, 1.0)])
def test_pad1d_rejects_bad_widths(left, right):
    with pytest.raises(ConfigError, match="left|right"):
        pad1d(np.ones(4), left, right)


def test_pad1d_rejects_bad_mode():
    with pytest.raises(ConfigError, match="padding_mode must be one of .*got 'wrap'"):
        pad1d(np.ones(4), 1, 1, "wrap")


def test_conv1d_all_small_combinations_agree_between_methods():
    rng = np.random.default_rng(11)
    for k, dilation, stride in itertools.product((1, 2, 5), (1, 2), (1, 3)):
        x, w = _random(rng, (2, 2, 17)), _random(rng, (4, 1, k))
        results = [conv1d(x, w, None, stride, 1, dilation, 2, method=m) for m in METHODS]
        for other in results[1:]:
            _assert_close(other, results[0], 1e-12)
