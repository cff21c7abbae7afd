"""The chain/target arithmetic in conv1d_cli.shapes against the core, brute force and PyTorch."""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import pytest

from conv1d_cli import stream
from conv1d_cli.core import conv1d
from conv1d_cli.errors import ConfigError, Conv1dError, ShapeError
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import (
    PADDING_MODES,
    PADDING_WORDS,
    LayerSpec,
    chain_min_input_length,
    check_pad_limits,
    output_length,
    paddings_for_target,
    walk_chain,
)

MODES = list(PADDING_MODES)


def _random_padding(rnd: random.Random, *, torch_only: bool = False) -> Any:
    choice = rnd.random()
    if choice < 0.4:
        return rnd.randint(0, 5)
    if choice < 0.55 or torch_only:
        return rnd.choice(["same", "valid"])
    if choice < 0.75:
        return rnd.choice(PADDING_WORDS)
    return (rnd.randint(0, 5), rnd.randint(0, 5))


def _random_config(rnd: random.Random, *, torch_only: bool = False) -> dict[str, Any]:
    """A small layer + input, often invalid on purpose (bad groups, too short, bad pads)."""
    groups = rnd.choice([1, 1, 1, 2, 3])
    c_in = rnd.randint(1, 3) * rnd.choice([groups, groups, 1])
    c_out = rnd.randint(1, 3) * rnd.choice([groups, groups, 1])
    x_channels = c_in if rnd.random() < 0.9 else c_in + 1
    return {
        "in_channels": c_in,
        "out_channels": c_out,
        "kernel_size": rnd.randint(1, 6),
        "stride": rnd.randint(1, 4),
        "padding": _random_padding(rnd, torch_only=torch_only),
        "dilation": rnd.randint(1, 3),
        "groups": groups,
        "padding_mode": rnd.choice(MODES),
        "length": rnd.randint(1, 14),
        "x_channels": x_channels,
        "batch": rnd.randint(0, 2),
    }


def _ours(cfg: dict[str, Any]) -> tuple[int, ...] | type[Exception]:
    """The shape walk_chain predicts (batched), or the error class it reports."""
    try:
        spec = LayerSpec(
            cfg["kernel_size"],
            cfg["stride"],
            cfg["padding"],
            cfg["dilation"],
            cfg["padding_mode"],
            in_channels=cfg["in_channels"],
            out_channels=cfg["out_channels"],
            groups=cfg["groups"],
        )
    except ConfigError:
        return ConfigError
    chain = walk_chain([spec], cfg["length"], channels=cfg["x_channels"], batch=cfg["batch"])
    if not chain.ok:
        return ShapeError
    return chain.layers[0].output_shape


def _core(cfg: dict[str, Any]) -> tuple[int, ...] | type[Exception]:
    """Shape the NumPy core actually produces on zeros, or the error class it raises."""
    groups = cfg["groups"]
    if cfg["in_channels"] % groups:
        return ConfigError  # the core cannot even be handed such a weight; Conv1d refuses it
    x = np.zeros((cfg["batch"], cfg["x_channels"], cfg["length"]))
    weight = np.zeros((cfg["out_channels"], cfg["in_channels"] // groups, cfg["kernel_size"]))
    try:
        return conv1d(
            x,
            weight,
            None,
            cfg["stride"],
            cfg["padding"],
            cfg["dilation"],
            groups,
            cfg["padding_mode"],
        ).shape
    except ConfigError:
        return ConfigError
    except ShapeError as e:
        # The core sees out_channels % groups as an array mismatch; LayerSpec, like
        # Conv1d's constructor, as a hyperparameter error.
        if "divisible by groups" in str(e):
            return ConfigError
        return ShapeError


def test_walk_chain_matches_core_on_random_configs() -> None:
    rnd = random.Random(6)
    outcomes = {"ok": 0, "ConfigError": 0, "ShapeError": 0}
    for _ in range(3000):
        cfg = _random_config(rnd)
        ours, core = _ours(cfg), _core(cfg)
        assert ours == core, cfg
        outcomes["ok" if isinstance(ours, tuple) else ours.__name__] += 1
    # The generator must exercise every outcome substantially.
    assert min(outcomes.values()) > 300, outcomes


def test_layer_spec_validates_like_conv1d_layer() -> None:
    rnd = random.Random(7)
    for _ in range(400):
        cfg = _random_config(rnd)
        kwargs = {k: cfg[k] for k in ("stride", "padding", "dilation", "groups", "padding_mode")}
        args = (cfg["in_channels"], cfg["out_channels"], cfg["kernel_size"])
        try:
            Conv1d(*args, **kwargs, seed=0)
            expected = None
        except ConfigError as e:
            expected = str(e)
        try:
            LayerSpec(args[2], in_channels=args[0], out_channels=args[1], **kwargs)
            got = None
        except ConfigError as e:
            got = str(e)
        assert got == expected, cfg


def test_layer_spec_output_length_agrees_with_output_length() -> None:
    rnd = random.Random(8)
    for _ in range(2000):
        cfg = _random_config(rnd)
        length = rnd.randint(0, 14)
        try:
            spec = LayerSpec(cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"])
        except ConfigError:
            with pytest.raises(ConfigError):
                output_length(length, cfg["kernel_size"], cfg["stride"], cfg["padding"], 1)
            continue
        try:
            expected: Any = output_length(
                length, spec.kernel_size, spec.stride, spec.padding, spec.dilation
            )
        except Conv1dError as e:
            expected = type(e)
        try:
            got: Any = spec.output_length(length)
        except Conv1dError as e:
            got = type(e)
        assert got == expected, (cfg, length)


@pytest.mark.torch
def test_walk_chain_matches_torch_conv1d_shapes() -> None:
    torch = pytest.importorskip("torch")
    rnd = random.Random(9)
    compared = rejected = 0
    for _ in range(1000):
        cfg = _random_config(rnd, torch_only=True)
        ours = _ours(cfg)
        try:
            with warnings.catch_warnings():
                # 'same' with an even kernel warns about a padded copy; not our concern here.
                warnings.simplefilter("ignore")
                layer = torch.nn.Conv1d(
                    cfg["in_channels"],
                    cfg["out_channels"],
                    cfg["kernel_size"],
                    stride=cfg["stride"],
                    padding=cfg["padding"],
                    dilation=cfg["dilation"],
                    groups=cfg["groups"],
                    bias=False,
                    padding_mode=cfg["padding_mode"],
                )
                x = torch.zeros((cfg["batch"], cfg["x_channels"], cfg["length"]))
                with torch.no_grad():
                    theirs: Any = tuple(layer(x).shape)
        except (ValueError, RuntimeError) as e:
            theirs = type(e)
        if isinstance(theirs, tuple):
            assert ours == theirs, cfg
            compared += 1
        else:
            assert ours in (ConfigError, ShapeError), cfg
            rejected += 1
    assert compared > 350 and rejected > 200, (compared, rejected)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("kwargs", "length"),
    [
        ({"stride": 0}, 10),
        ({"dilation": 0}, 10),
        ({"stride": 2, "padding": "same"}, 10),
        ({"padding": -1}, 10),
        ({"kernel_size": 5}, 4),
        ({"kernel_size": 11, "padding": 5, "padding_mode": "reflect"}, 5),
        ({"kernel_size": 13, "padding": 6, "padding_mode": "circular"}, 5),
        ({"kernel_size": 4, "padding": "same", "dilation": 3, "padding_mode": "reflect"}, 5),
        ({"groups": 2, "in_channels": 3}, 10),
    ],
)
def test_walk_chain_rejects_what_torch_rejects(kwargs: dict[str, Any], length: int) -> None:
    torch = pytest.importorskip("torch")
    settings = {"in_channels": 2, "out_channels": 2, "kernel_size": 3} | kwargs
    with pytest.raises((ValueError, RuntimeError)):  # at construction or at forward
        layer = torch.nn.Conv1d(**settings)
        layer(torch.zeros((1, settings["in_channels"], length)))
    channels = settings.pop("in_channels")
    settings.pop("out_channels")
    try:
        chain = walk_chain([LayerSpec(**settings)], length, channels=channels)
    except ConfigError:
        return
    assert not chain.ok


def test_walk_chain_documented_extensions_beyond_torch() -> None:
    # PyTorch refuses these; we define them (SPEC section 8).
    assert LayerSpec(5, padding="causal", dilation=2).output_length(10) == 10
    assert LayerSpec(5, padding="full").output_length(10) == 14
    assert LayerSpec(4, padding=(3, 0)).output_length(10) == 10
    # ...and refuse a torch quirk: negative padding cropping under reflect.
    with pytest.raises(ConfigError, match="padding"):
        LayerSpec(3, padding=-1, padding_mode="reflect")


def test_walk_chain_receptive_field_and_stride_match_impulse_response() -> None:
    """Cumulative field/stride: which input samples reach output 0 and output 1."""
    rnd = random.Random(10)
    for _ in range(60):
        specs = [
            LayerSpec(rnd.randint(1, 4), rnd.randint(1, 3), 0, rnd.randint(1, 3))
            for _ in range(rnd.randint(1, 3))
        ]
        length = chain_min_input_length(specs) + 3 * (specs[0].stride + 5)
        chain = walk_chain(specs, length)
        assert chain.ok
        # Row i's response to every unit impulse at once: y[t, i] for input impulse i.
        x = np.eye(length)[:, None, :]
        for spec in specs:
            x = conv1d(x, np.ones((1, 1, spec.kernel_size)), None, spec.stride, 0, spec.dilation)
        reach0 = np.flatnonzero(x[:, 0, 0])
        assert (reach0.min(), reach0.max() + 1) == (0, chain.receptive_field)
        if x.shape[-1] > 1:
            reach1 = np.flatnonzero(x[:, 0, 1])
            assert reach1.min() == chain.cumulative_stride
        assert chain.layers[-1].receptive_field == chain.receptive_field
        assert x.shape[-1] == chain.layers[-1].output_length


def test_chain_min_input_length_is_the_smallest_accepted_length() -> None:
    rnd = random.Random(11)
    for _ in range(200):
        specs = []
        for _ in range(rnd.randint(1, 3)):
            padding = _random_padding(rnd) if rnd.random() < 0.7 else 0
            stride = 1 if padding == "same" else rnd.randint(1, 3)
            specs.append(
                LayerSpec(rnd.randint(1, 5), stride, padding, rnd.randint(1, 2), rnd.choice(MODES))
            )
        accepted = [n for n in range(1, 80) if walk_chain(specs, n).ok]
        expected = accepted[0] if accepted else None
        minimum = chain_min_input_length(specs)
        assert minimum == expected, specs
        # Monotone: every longer input works too.
        assert accepted == list(range(minimum, 80)), specs
        assert walk_chain(specs, minimum).min_input_length == minimum


def test_chain_min_input_length_single_layer_is_min_input_length() -> None:
    spec = LayerSpec(11, padding=5, padding_mode="reflect")
    assert chain_min_input_length([spec]) == spec.min_input_length == 6


def _brute_force_target(
    length: int, target: int, kernel_size: int, stride: int, dilation: int, mode: str
) -> tuple[set[int], set[int]]:
    """Totals (some split allowed by the mode) and symmetric pads that give ``target``."""
    totals, symmetric = set(), set()
    for left in range(0, 30):
        for right in range(0, 30):
            try:
                got = output_length(length, kernel_size, stride, (left, right), dilation)
                check_pad_limits(length, left, right, mode)
            except ShapeError:
                continue
            if got == target:
                totals.add(left + right)
                if left == right:
                    symmetric.add(left)
    return totals, symmetric


def test_paddings_for_target_matches_brute_force() -> None:
    rnd = random.Random(12)
    possible = impossible = 0
    for _ in range(150):
        length, kernel_size = rnd.randint(1, 12), rnd.randint(1, 5)
        stride, dilation = rnd.randint(1, 3), rnd.randint(1, 2)
        mode, target = rnd.choice(MODES), rnd.randint(1, 10)
        answer = paddings_for_target(length, target, kernel_size, stride, dilation, mode)
        totals, symmetric = _brute_force_target(length, target, kernel_size, stride, dilation, mode)
        if not totals:
            assert not answer.possible and answer.reason
            assert answer.symmetric is None and answer.words == ()
            impossible += 1
            continue
        possible += 1
        assert answer.total == (min(totals), max(totals))
        assert totals == set(range(min(totals), max(totals) + 1))
        if symmetric:
            assert answer.symmetric == (min(symmetric), max(symmetric))
        else:
            assert answer.symmetric is None
        for word in PADDING_WORDS:
            try:
                ok = LayerSpec(kernel_size, stride, word, dilation, mode).output_length(length)
            except Conv1dError:
                ok = None
            assert (word in answer.words) == (ok == target)
    assert possible > 60 and impossible > 20, (possible, impossible)


def test_paddings_for_target_reasons() -> None:
    assert paddings_for_target(10, 2, 3).reason == (
        "the output is at least 8 samples long (no padding); padding cannot shorten it"
    )
    answer = paddings_for_target(5, 20, 3, padding_mode="reflect")
    assert answer.reason == (
        "reflect padding adds at most 4 samples per side on length 5, "
        "so the output is at most 11 samples long"
    )
    assert paddings_for_target(16000, 16000, 9).words == ("same", "causal")
    with pytest.raises(ConfigError, match="target length must be positive"):
        paddings_for_target(10, 0, 3)


def test_walk_chain_reports_first_failing_layer() -> None:
    specs = [
        LayerSpec(3, in_channels=1, out_channels=4, name="a"),
        LayerSpec(3, in_channels=2, out_channels=2, name="b"),
        LayerSpec(99, in_channels=2, out_channels=2, name="c"),
    ]
    chain = walk_chain(specs, 20)
    assert (chain.failed_layer, len(chain.layers)) == (2, 1)
    assert chain.error == "input has 4 channels but the layer expects 2 (in_channels=2, groups=1)"
    assert chain.min_input_length == 103  # still answered for the whole chain


def test_walk_chain_sample_rate_and_shapes() -> None:
    specs = [LayerSpec(9, 2, 4, in_channels=2, out_channels=2, groups=2), LayerSpec(3, 3)]
    chain = walk_chain(specs, 48000, batch=None, sample_rate=48000)
    assert [r.sample_rate for r in chain.layers] == [24000.0, 8000.0]
    assert chain.input_shape == (2, 48000)
    assert [r.output_shape for r in chain.layers] == [(2, 24000), (2, 8000)]
    unknown = walk_chain([LayerSpec(3)], 10)
    assert unknown.layers[0].output_shape == (8,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"length": 0}, "length must be positive"),
        ({"length": 2.0}, "length must be an integer"),
        ({"length": 5, "channels": 0}, "channels must be positive"),
        ({"length": 5, "batch": -1}, "batch must be >= 0"),
        ({"length": 5, "sample_rate": -1.0}, "sample_rate must be a positive number"),
    ],
)
def test_walk_chain_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        walk_chain([LayerSpec(3)], **kwargs)


def test_chain_min_input_length_agrees_with_streaming_chain_min_length() -> None:
    """conv1d apply's streaming layer searches the same minimum; the two must agree."""
    rnd = random.Random(13)
    for _ in range(150):
        layers, specs = [], []
        for _ in range(rnd.randint(1, 3)):
            padding = _random_padding(rnd)
            stride = 1 if padding == "same" else rnd.randint(1, 3)
            kwargs = {
                "stride": stride,
                "padding": padding,
                "dilation": rnd.randint(1, 2),
                "padding_mode": rnd.choice(MODES),
            }
            layer = Conv1d.from_weights(np.zeros((1, 1, rnd.randint(1, 6))), **kwargs)
            layers.append(layer)
            specs.append(LayerSpec.from_layer(layer))
        assert chain_min_input_length(specs) == stream.chain_min_length(layers), specs
