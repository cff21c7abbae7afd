"""conv1d_cli.layer.Conv1d: torch-like layer object (constructor, from_weights, call, repr)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference import reference_conv1d

from conv1d_cli import ConfigError, Conv1d, ShapeError, conv1d


def test_layer_pytorch_docs_example():
    layer = Conv1d(16, 33, 3, stride=2, seed=0)
    out = layer(np.random.default_rng(0).standard_normal((20, 16, 50)).astype(np.float32))
    assert out.shape == (20, 33, 24)
    assert out.dtype == np.float32


def test_layer_attributes():
    layer = Conv1d(4, 6, 5, stride=2, padding=1, dilation=3, groups=2, seed=1)
    assert layer.weight.shape == (6, 2, 5) and layer.weight.dtype == np.float32
    assert layer.bias.shape == (6,) and layer.bias.dtype == np.float32
    assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (4, 6, 5)
    assert (layer.stride, layer.padding, layer.dilation, layer.groups) == (2, 1, 3, 2)
    assert layer.padding_mode == "zeros" and layer.dtype == np.float32
    assert layer.sample_rate is None and layer.description == ""
    assert isinstance(layer.stride, int) and isinstance(layer.kernel_size, int)


def test_layer_depthwise_shapes():
    layer = Conv1d(4, 12, 5, padding=2, groups=4, seed=0)
    assert layer.weight.shape == (12, 1, 5)
    assert layer(np.ones((2, 4, 20), np.float32)).shape == (2, 12, 20)


def test_layer_bias_false_and_float64():
    layer = Conv1d(3, 2, 4, bias=False, dtype="float64", seed=2)
    assert layer.bias is None and layer.weight.dtype == np.float64
    assert Conv1d(1, 1, 1, dtype=np.float64, seed=0).dtype == np.float64


def test_layer_init_bounds_are_kaiming_uniform():
    for c_in, k, groups in ((1, 1, 1), (16, 3, 1), (8, 5, 4), (3, 200, 1)):
        layer = Conv1d(c_in, 2 * groups, k, groups=groups, seed=7)
        bound = 1 / math.sqrt(c_in // groups * k)
        assert np.all(np.abs(layer.weight) <= bound) and np.all(np.abs(layer.bias) <= bound)
        assert np.ptp(layer.weight) > 0


def test_layer_seed_is_deterministic_and_defaults_to_random():
    a, b = Conv1d(2, 3, 4, seed=5), Conv1d(2, 3, 4, seed=5)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    assert not np.array_equal(a.weight, Conv1d(2, 3, 4, seed=6).weight)
    assert not np.array_equal(Conv1d(2, 3, 4).weight, Conv1d(2, 3, 4).weight)


def test_layer_seed_like_torch_manual_seed_modulo_2_32():
    # torch.manual_seed accepts [-2**63, 2**64) and seeds MT19937 with seed mod 2**32.
    np.testing.assert_array_equal(
        Conv1d(2, 3, 4, seed=-1).weight, Conv1d(2, 3, 4, seed=2**32 - 1).weight
    )
    np.testing.assert_array_equal(
        Conv1d(2, 3, 4, seed=2**32 + 3).weight, Conv1d(2, 3, 4, seed=3).weight
    )


def test_layer_call_matches_reference():
    rng = np.random.default_rng(0)
    for padding, mode in (
        ("same", "reflect"),
        ("causal", "zeros"),
        ((1, 3), "circular"),
        (2, "replicate"),
    ):
        layer = Conv1d(
            4,
            6,
            4,
            padding=padding,
            dilation=2,
            groups=2,
            padding_mode=mode,
            dtype="float64",
            seed=3,
        )
        x = rng.standard_normal((2, 4, 15))
        expected = reference_conv1d(x, layer.weight, layer.bias, 1, padding, 2, 2, mode)
        np.testing.assert_allclose(layer(x), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(layer(x[0], method="fft"), expected[0], rtol=1e-12, atol=1e-12)


def test_layer_float32_params_on_float64_input_promotes():
    layer = Conv1d(2, 2, 3, seed=0)
    assert layer(np.ones((2, 8))).dtype == np.float64
    assert layer(np.ones((2, 8), np.float32)).dtype == np.float32
    assert layer(np.ones((2, 8), np.int16)).dtype == np.float64


@pytest.mark.parametrize(
    ("padding", "kernel_size", "dilation", "expected"),
    [
        ("same", 4, 1, (1, 2)),
        ("same", 4, 3, (4, 5)),
        ("causal", 3, 2, (4, 0)),
        ("full", 2, 1, (1, 1)),
    ],
)
def test_layer_resolved_padding(padding, kernel_size, dilation, expected):
    layer = Conv1d(1, 1, kernel_size, padding=padding, dilation=dilation, seed=0)
    assert layer.resolved_padding() == expected


def test_layer_accepts_pytorch_1_tuples_and_normalises_padding():
    layer = Conv1d(2, 2, (3,), stride=(2,), dilation=[1], padding=(1,), seed=0)
    assert (layer.kernel_size, layer.stride, layer.dilation, layer.padding) == (3, 2, 1, 1)
    assert Conv1d(1, 1, 3, padding=[2, 0], seed=0).padding == (2, 0)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "Conv1d(16, 33, kernel_size=(3,))"),
        ({"stride": 2}, "Conv1d(16, 33, kernel_size=(3,), stride=(2,))"),
        (
            {"padding": 1, "dilation": 2},
            "Conv1d(16, 33, kernel_size=(3,), padding=(1,), dilation=(2,))",
        ),
        (
            {"padding": "same", "bias": False},
            "Conv1d(16, 33, kernel_size=(3,), padding='same', bias=False)",
        ),
        ({"padding": (2, 0)}, "Conv1d(16, 33, kernel_size=(3,), padding=(2, 0))"),
        (
            {"padding": "causal", "padding_mode": "reflect"},
            "Conv1d(16, 33, kernel_size=(3,), padding='causal', padding_mode='reflect')",
        ),
    ],
)
def test_layer_repr(kwargs, expected):
    assert repr(Conv1d(16, 33, 3, seed=0, **kwargs)) == expected
    assert repr(Conv1d(4, 8, 3, groups=4, seed=0)) == "Conv1d(4, 8, kernel_size=(3,), groups=4)"


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((0, 2, 3), {}, ConfigError, "in_channels must be positive, got 0"),
        ((2, -1, 3), {}, ConfigError, "out_channels must be positive, got -1"),
        ((2, 2, 0), {}, ConfigError, "kernel_size must be positive, got 0"),
        ((2, 2, 2.5), {}, ConfigError, "kernel_size must be an integer, got 2.5"),
        (
            (2, 2, (3, 3)),
            {},
            ConfigError,
            r"kernel_size must be an integer or a 1-tuple, got \(3, 3\)",
        ),
        ((2, 2, 3), {"groups": 0}, ConfigError, "groups must be positive, got 0"),
        (
            (3, 2, 3),
            {"groups": 2},
            ConfigError,
            "in_channels must be divisible by groups, got in_channels=3, groups=2",
        ),
        (
            (2, 3, 3),
            {"groups": 2},
            ConfigError,
            "out_channels must be divisible by groups, got out_channels=3, groups=2",
        ),
        ((2, 2, 3), {"stride": 0}, ConfigError, "stride must be positive, got 0"),
        ((2, 2, 3), {"dilation": -1}, ConfigError, "dilation must be positive, got -1"),
        ((2, 2, 3), {"padding": -1}, ConfigError, "padding must be >= 0, got -1"),
        ((2, 2, 3), {"padding": "full!"}, ConfigError, r"padding must be .*got 'full!'"),
        (
            (2, 2, 3),
            {"padding": "same", "stride": 2},
            ConfigError,
            "not supported for strided convolutions",
        ),
        (
            (2, 2, 3),
            {"padding_mode": "zero"},
            ConfigError,
            r"padding_mode must be one of .*got 'zero'",
        ),
        (
            (2, 2, 3),
            {"dtype": "float16"},
            ConfigError,
            r"dtype must be 'float32' or 'float64', got 'float16'",
        ),
        (
            (2, 2, 3),
            {"dtype": "nonsense"},
            ConfigError,
            r"dtype must be 'float32' or 'float64', got 'nonsense'",
        ),
        ((2, 2, 3), {"seed": 1.5}, ConfigError, "seed must be an integer, got 1.5"),
        ((2, 2, 3), {"seed": 2**64}, ConfigError, "seed must be below 2\\*\\*64"),
        ((2, 2, 3), {"seed": -(2**63) - 1}, ConfigError, "seed must be >= "),
    ],
)
def test_layer_constructor_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Conv1d(*args, **kwargs)


def test_layer_call_errors_name_the_problem():
    layer = Conv1d(4, 6, 3, seed=0)
    with pytest.raises(ShapeError, match=r"input has 5 channels but the weight \(6, 4, 3\)"):
        layer(np.ones((2, 5, 10)))
    with pytest.raises(ShapeError, match="dilated kernel size 3"):
        layer(np.ones((4, 2)))
    with pytest.raises(ConfigError, match="method must be one of"):
        layer(np.ones((4, 10)), method="winograd")


# --- from_weights ------------------------------------------------------------------------------


def test_from_weights_keeps_float32_and_hyperparameters():
    w = np.arange(12, dtype=np.float32).reshape(4, 1, 3)
    layer = Conv1d.from_weights(
        w, np.ones(4), stride=2, padding="causal", dilation=2, groups=2, padding_mode="replicate"
    )
    assert layer.weight is w or np.array_equal(layer.weight, w)
    assert layer.dtype == np.float32 and layer.bias.dtype == np.float32
    assert (layer.in_channels, layer.out_channels, layer.kernel_size, layer.groups) == (2, 4, 3, 2)
    assert (layer.stride, layer.padding, layer.dilation, layer.padding_mode) == (
        2,
        "causal",
        2,
        "replicate",
    )
    x = np.random.default_rng(0).standard_normal((2, 9)).astype(np.float32)
    np.testing.assert_allclose(
        layer(x), conv1d(x, w, np.ones(4, np.float32), 2, "causal", 2, 2, "replicate"), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [(np.float64, np.float64), (np.int32, np.float64), (np.float16, np.float64)],
)
def test_from_weights_other_dtypes_become_float64(dtype, expected):
    assert Conv1d.from_weights(np.ones((1, 1, 3), dtype)).dtype == expected


def test_from_weights_accepts_lists():
    layer = Conv1d.from_weights([[[1.0, 2.0, 3.0]]], [0.5], padding="same")
    np.testing.assert_allclose(layer(np.array([[1.0, 2.0, 3.0]])), [[8.5, 14.5, 8.5]])


@pytest.mark.parametrize(
    ("weight", "bias", "kwargs", "error", "match"),
    [
        (np.ones((2, 3)), None, {}, ShapeError, r"weight must be 3-D .*got shape \(2, 3\)"),
        (np.ones((2, 0, 3)), None, {}, ShapeError, r"no empty dimension, got shape \(2, 0, 3\)"),
        (
            np.ones((3, 1, 3)),
            None,
            {"groups": 2},
            ConfigError,
            "out_channels must be divisible by groups, got out_channels=3, groups=2",
        ),
        (
            np.ones((2, 1, 3)),
            np.ones(3),
            {},
            ShapeError,
            r"bias must have shape \(2,\) .*got shape \(3,\)",
        ),
        (np.ones((2, 1, 3)) + 1j, None, {}, ShapeError, "weight must be a real"),
        (np.ones((2, 1, 3)), np.array(["a", "b"]), {}, ShapeError, "bias must be a real"),
        ([[[1.0], [2.0, 3.0]]], None, {}, ShapeError, "weight must be a rectangular numeric array"),
        (np.ones((2, 1, 3)), None, {"padding": "same", "stride": 2}, ConfigError, "strided"),
        (np.ones((2, 1, 3)), None, {"padding_mode": "wrap"}, ConfigError, "padding_mode"),
    ],
)
def test_from_weights_errors(weight, bias, kwargs, error, match):
    with pytest.raises(error, match=match):
        Conv1d.from_weights(weight, bias, **kwargs)


# -- the LayerSpec inside, and the layer file below the layer -----------------------------


def test_layer_holds_one_validated_spec():
    layer = Conv1d(4, 6, 5, stride=2, padding=(3, 1), groups=2, dtype="float64", seed=0)
    spec = layer.spec
    assert (spec.in_channels, spec.out_channels, spec.kernel_size) == (4, 6, 5)
    assert (spec.stride, spec.padding, spec.groups, spec.dtype) == (2, (3, 1), 2, "float64")
    assert spec.bias is True and layer.resolved_padding() == (3, 1)


def test_layer_hyperparameter_set_later_is_validated_like_a_new_one():
    layer = Conv1d(1, 1, 3, seed=0)
    layer.padding = [2]
    assert layer.padding == 2 and layer.spec.padding == 2
    layer.sample_rate = 8000
    assert layer.sample_rate == 8000.0
    with pytest.raises(ConfigError, match="stride must be positive, got 0"):
        layer.stride = 0
    with pytest.raises(ConfigError, match="padding='same' is not supported for strided"):
        Conv1d(1, 1, 3, padding="same", seed=0).stride = 2
    assert layer.stride == 1


def test_layer_from_spec_uses_the_arrays_as_given():
    from conv1d_cli.shapes import LayerSpec

    weight = np.ones((2, 1, 3), np.float32)
    layer = Conv1d.from_spec(LayerSpec.for_weight(weight.shape, groups=2, bias=False), weight, None)
    assert layer.weight is weight and layer.groups == 2 and layer.in_channels == 2


def test_layerfile_reads_a_spec_without_importing_the_layer(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "l.npz"
    Conv1d(2, 2, 3, padding="causal", seed=0).save(path)
    code = (
        "import sys; from conv1d_cli.io.layerfile import read_layer; "
        f"s = read_layer({str(path)!r}); "
        "print(s.spec.padding, s.spec.in_channels, 'conv1d_cli.layer' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["causal", "2", "False"]


def test_layer_dtype_rule_is_the_cores():
    from conv1d_cli.core import check_dtype

    assert Conv1d(1, 1, 1, dtype="f8", seed=0).dtype == check_dtype("float64")
    with pytest.raises(ConfigError, match="dtype must be 'float32' or 'float64', got 'int8'"):
        check_dtype("int8")
