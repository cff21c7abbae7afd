"""conv1d_cli.shapes: the single source of shape truth (pure Python)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from reference import reference_padding

from conv1d_cli import ConfigError, Conv1dError, ShapeError, conv1d, output_length, resolve_padding
from conv1d_cli.shapes import (
    PADDING_MODES,
    PADDING_WORDS,
    check_int,
    check_pad_limits,
    check_padding_mode,
    check_size,
    min_input_length,
    parse_padding,
    receptive_field,
)


def test_output_length_pytorch_docs_example():
    assert output_length(50, 3, stride=2) == 24


@pytest.mark.parametrize(
    ("length", "k", "stride", "padding", "dilation", "expected"),
    [
        (6, 3, 1, 0, 1, 4),
        (20, 5, 3, 2, 1, 7),
        (21, 5, 3, 2, 1, 7),
        (1, 5, 3, 2, 1, 1),
        (10, 1, 50, 0, 1, 1),
        (9, 3, 1, 0, 4, 1),
        (10, 4, 1, "same", 3, 10),
        (3, 9, 1, "same", 1, 3),
        (10, 3, 2, "valid", 1, 4),
        (8, 3, 1, "causal", 2, 8),
        (8, 3, 2, "causal", 2, 4),
        (5, 3, 1, "full", 1, 7),
        (6, 3, 1, (3, 0), 1, 7),
        (10, 3, 1, (1,), 1, 10),
        (10, (3,), (2,), 1, [1], 5),
    ],
)
def test_output_length_formula(length, k, stride, padding, dilation, expected):
    assert output_length(length, k, stride, padding, dilation) == expected


def test_output_length_matches_conv1d_everywhere():
    for length, k, stride, dilation, padding in itertools.product(
        (1, 2, 5, 9), (1, 2, 3, 5), (1, 2, 3), (1, 2), (0, 1, 3, "valid", "causal", "full", (2, 1))
    ):
        try:
            expected = output_length(length, k, stride, padding, dilation)
        except ShapeError:
            with pytest.raises(ShapeError):
                conv1d(np.ones((1, length)), np.ones((1, 1, k)), None, stride, padding, dilation)
            continue
        got = conv1d(np.ones((1, length)), np.ones((1, 1, k)), None, stride, padding, dilation)
        assert got.shape == (1, expected)


@pytest.mark.parametrize(
    ("padding", "k", "dilation", "stride", "expected"),
    [
        ("same", 3, 1, 1, (1, 1)),
        ("same", 4, 1, 1, (1, 2)),  # extra pad on the right
        ("same", 4, 3, 1, (4, 5)),
        ("same", 4, 2, 1, (3, 3)),
        ("same", 2, 1, 1, (0, 1)),
        ("same", 1, 5, 1, (0, 0)),
        ("valid", 7, 3, 4, (0, 0)),
        ("causal", 3, 2, 1, (4, 0)),
        ("causal", 3, 2, 3, (4, 0)),  # causal is fine with a stride, unlike 'same'
        ("full", 4, 2, 1, (6, 6)),
        (3, 5, 1, 2, (3, 3)),
        ((3,), 5, 1, 1, (3, 3)),
        ([2], 5, 1, 1, (2, 2)),
        ((4, 0), 5, 1, 1, (4, 0)),
        ([0, 2], 5, 1, 1, (0, 2)),
        (np.int64(2), 3, 1, 1, (2, 2)),
    ],
)
def test_resolve_padding(padding, k, dilation, stride, expected):
    assert resolve_padding(padding, k, dilation, stride) == expected
    if not isinstance(padding, np.integer):
        assert reference_padding(padding, k, dilation, stride) == expected


def test_resolve_padding_same_matches_pytorch_split_for_all_small_kernels():
    for k, dilation in itertools.product(range(1, 9), range(1, 5)):
        total = dilation * (k - 1)
        left, right = resolve_padding("same", k, dilation)
        assert left + right == total and right - left in (0, 1)


@pytest.mark.parametrize(
    ("padding", "stride", "match"),
    [
        ("same", 2, r"padding='same' is not supported for strided convolutions \(stride=2\)"),
        ("SAME", 1, r"one of 'same', 'valid', 'causal', 'full'; got 'SAME'"),
        ("", 1, r"got ''"),
        (-1, 1, r"padding must be >= 0, got -1"),
        ((-1,), 1, r"padding must be >= 0, got -1"),
        ((1, -1), 1, r"padding\[1\] \(right\) must be >= 0, got -1"),
        ((-2, 1), 1, r"padding\[0\] \(left\) must be >= 0, got -2"),
        ((1, 2, 3), 1, r"a 1-tuple or a \(left, right\) pair, got \(1, 2, 3\)"),
        ((), 1, r"got \(\)"),
        (1.0, 1, r"padding must be an integer, got 1.0"),
        (None, 1, r"padding must be an integer, got None"),
        (True, 1, r"padding must be an integer, got True"),
    ],
)
def test_resolve_padding_errors(padding, stride, match):
    with pytest.raises(ConfigError, match=match):
        resolve_padding(padding, 3, 1, stride)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("kernel_size", 0, "kernel_size must be positive, got 0"),
        ("kernel_size", -1, "kernel_size must be positive, got -1"),
        ("dilation", 0, "dilation must be positive, got 0"),
        ("stride", 0, "stride must be positive, got 0"),
        ("stride", "2", "stride must be an integer, got '2'"),
        ("stride", (1, 1), r"stride must be an integer or a 1-tuple, got \(1, 1\)"),
    ],
)
def test_resolve_padding_checks_hyperparameters(name, value, match):
    kwargs = {"kernel_size": 3, "dilation": 1, "stride": 1, name: value}
    with pytest.raises(ConfigError, match=match):
        resolve_padding(0, **kwargs)


def test_check_int_and_check_size():
    assert check_int("x", 3) == 3 and type(check_int("x", np.int32(3))) is int
    assert check_int("x", 0, minimum=0) == 0
    assert check_size("stride", (4,)) == 4 and check_size("stride", [4]) == 4
    for bad in (True, 2.0, "2", None, 1.5):
        with pytest.raises(ConfigError, match=f"x must be an integer, got {bad!r}"):
            check_int("x", bad)
    with pytest.raises(ConfigError, match="x must be >= 2, got 1"):
        check_int("x", 1, minimum=2)
    with pytest.raises(ConfigError, match=r"must be an integer or a 1-tuple, got \(\)"):
        check_size("stride", ())


def test_check_padding_mode():
    for mode in PADDING_MODES:
        assert check_padding_mode(mode) == mode
    for bad in ("zero", "constant", "Reflect", "wrap", None):
        with pytest.raises(
            ConfigError,
            match=rf"padding_mode must be one of 'zeros', 'reflect', 'replicate', "
            rf"'circular', got {bad!r}",
        ):
            check_padding_mode(bad)


def test_padding_words_pytorch_first():
    assert PADDING_WORDS[:2] == ("same", "valid")
    assert set(PADDING_WORDS) == {"same", "valid", "causal", "full"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("3", 3),
        (" 3 ", 3),
        ("same", "same"),
        ("causal", "causal"),
        ("4,0", (4, 0)),
        ("1, 2", (1, 2)),
    ],
)
def test_parse_padding(text, expected):
    assert parse_padding(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("-1", r"padding must not be negative, got '-1'"),
        ("1,-2", r"padding must not be negative, got '1,-2'"),
        (
            "SAME",
            r"padding must be an integer, LEFT,RIGHT or one of same, valid, causal, full; "
            r"got 'SAME'",
        ),
        ("1,2,3", r"got '1,2,3'"),
        ("1.5", r"got '1.5'"),
        ("", r"got ''"),
        ("1_0", r"got '1_0'"),
        ("\uff13", r"got '\uff13'"),
    ],
)
def test_parse_padding_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_padding(text)


def test_receptive_field():
    assert receptive_field(3, 4) == 9
    assert receptive_field(1) == 1
    assert receptive_field((5,), [2]) == 9


@pytest.mark.parametrize(
    ("length", "left", "right", "mode", "ok"),
    [
        (5, 4, 4, "reflect", True),
        (5, 5, 0, "reflect", False),
        (5, 0, 5, "reflect", False),
        (1, 0, 0, "reflect", True),
        (5, 5, 5, "circular", True),
        (5, 0, 6, "circular", False),
        (1, 100, 100, "replicate", True),
        (1, 100, 100, "zeros", True),
    ],
)
def test_check_pad_limits(length, left, right, mode, ok):
    if ok:
        check_pad_limits(length, left, right, mode)
    else:
        with pytest.raises(ShapeError, match=rf"\({left}, {right}\) on length {length}"):
            check_pad_limits(length, left, right, mode)


def test_output_length_errors():
    with pytest.raises(ShapeError, match="input length must be at least 1, got 0"):
        output_length(0, 3, padding=5)
    with pytest.raises(
        ShapeError,
        match=r"padded length 4 \(length 4 \+ padding 0\+0\) is less than "
        r"the dilated kernel size 5; "
        r"the input needs at least 5 samples",
    ):
        output_length(4, 5)
    with pytest.raises(ShapeError, match=r"padded length 8 .* dilated kernel size 9"):
        output_length(8, 3, dilation=4)
    with pytest.raises(ConfigError, match="length must be an integer, got 4.0"):
        output_length(4.0, 3)


def test_output_length_errors_are_conv1d_errors():
    with pytest.raises(Conv1dError):
        output_length(1, 3)


@pytest.mark.parametrize("mode", list(PADDING_MODES))
def test_min_input_length_is_the_smallest_length_conv1d_accepts(mode):
    for k, stride, dilation, padding in itertools.product(
        (1, 2, 4, 7),
        (1, 3),
        (1, 2),
        (0, 1, 3, 6, "same", "valid", "causal", "full", (5, 0), (0, 2)),
    ):
        if padding == "same" and stride != 1:
            continue
        need = min_input_length(k, stride, padding, dilation, mode)
        w = np.ones((1, 1, k))
        conv1d(np.ones((1, need)), w, None, stride, padding, dilation, 1, mode)
        if need > 1:
            with pytest.raises(ShapeError):
                conv1d(np.ones((1, need - 1)), w, None, stride, padding, dilation, 1, mode)


def test_min_input_length_examples_from_spec():
    assert min_input_length(4, padding="same", dilation=3, padding_mode="reflect") == 6
    assert min_input_length(4, padding="same", dilation=3, padding_mode="circular") == 5
    assert min_input_length(31, padding=15, padding_mode="replicate") == 1


# -- one rule each: padding forms, bias shape, stored rates, rate warnings ----------------


def test_shapes_check_padding_normalises_and_names_the_notation():
    from conv1d_cli.shapes import check_padding

    assert check_padding([2]) == 2 and check_padding([1, 0]) == (1, 0)
    with pytest.raises(ConfigError, match=r"a 1-tuple or a \(left, right\) pair"):
        check_padding((1, 2, 3))
    with pytest.raises(ConfigError, match=r"an integer or a \[left, right\] pair"):
        check_padding([1, 2, 3], notation="json")


def test_shapes_check_bias_shape_names_both_arrays():
    from conv1d_cli.shapes import check_bias_shape

    check_bias_shape((4,), (4, 2, 3))
    with pytest.raises(ShapeError, match=r"b must have shape \(4,\) to match w \(4, 2, 3\)"):
        check_bias_shape((2,), (4, 2, 3), name="b", weight_name="w")


def test_shapes_layer_spec_for_weight_and_its_checks():
    from conv1d_cli.shapes import LayerSpec

    spec = LayerSpec.for_weight((4, 3, 5), groups=2, dtype="float64", bias=False)
    assert (spec.in_channels, spec.out_channels, spec.dtype, spec.bias) == (6, 4, "float64", False)
    with pytest.raises(ConfigError, match="out_channels must be divisible by groups"):
        LayerSpec.for_weight((3, 1, 5), groups=2)
    with pytest.raises(ConfigError, match="dtype must be 'float32' or 'float64'"):
        LayerSpec(3, dtype="float16")


def test_shapes_sample_rate_rules():
    from conv1d_cli.cli._common import error_text
    from conv1d_cli.shapes import check_sample_rate, check_stored_rate

    with pytest.raises(ConfigError) as info:
        check_sample_rate("sample_rate", 0)
    assert str(info.value) == "sample_rate must be a positive number of Hz, got 0"
    assert error_text(info.value) == "--sample-rate must be a positive number of Hz, got 0"
    with pytest.raises(ConfigError, match="^x.wav: output sample rate must be a whole number"):
        check_sample_rate("x.wav: output sample rate", 44100.5, integer=True)
    # A layer file's rate is metadata: any positive finite number loads.
    assert check_stored_rate(1e12) == 1e12 and check_stored_rate(None) is None
    with pytest.raises(ConfigError, match="positive number"):
        check_stored_rate(float("nan"))


def test_shapes_rate_warnings_take_the_first_design_rate_for_an_input_without_one():
    from conv1d_cli.shapes import rate_warnings

    rate, warnings = rate_warnings([None, 8000.0], [2, 1], ["a", "b"], None, "x.csv")
    assert rate == 16000.0 and warnings == []
    rate, warnings = rate_warnings([16000.0], [1], ["a"], 48000.0, "x.wav")
    assert rate == 48000.0
    assert warnings == ["a was designed for 16000 Hz but gets 48000 Hz from x.wav"]


def test_shapes_rate_rule_refuses_a_binding_layer_and_warns_for_the_others():
    from conv1d_cli.errors import ShapeError
    from conv1d_cli.shapes import LayerSpec, rate_warnings

    rates, strides, names = [24000.0, 8000.0], [2, 1], ["lp", "room"]
    # The recorded rate stands in for an input without one, behind a stride too.
    rate, warnings = rate_warnings(rates, strides, names, None, "x.csv", [False, True])
    assert rate == 16000.0
    assert warnings == [
        "lp was designed for 24000 Hz but gets 16000 Hz from x.csv (it has no rate; "
        "room's recorded rate stands in)"
    ]
    rate, warnings = rate_warnings(rates, strides, names, 16000.0, "x.wav", [False, True])
    assert warnings == ["lp was designed for 24000 Hz but gets 16000 Hz from x.wav"]
    with pytest.raises(ShapeError) as info:
        rate_warnings(rates, strides, names, 44100.0, "x.wav", [False, True])
    assert str(info.value) == (
        "room was recorded at 8000 Hz but gets 22050 Hz from x.wav; "
        "resample one of them (conv1d does not resample)"
    )
    # Without the flags (or all False) nothing is refused: the rule as it always was.
    assert rate_warnings(rates, strides, names, 44100.0, "x.wav")[1] == [
        "lp was designed for 24000 Hz but gets 44100 Hz from x.wav",
        "room was designed for 8000 Hz but gets 22050 Hz from x.wav",
    ]
    spec = LayerSpec(3, sample_rate=8000, sample_rate_binding=True)
    assert LayerSpec.from_layer(spec).sample_rate_binding is True
