"""``conv1d init``'s layer makers: one per source, from the checked command line.

The command (:mod:`conv1d_cli.cli.cmd_init`) parses and checks the options into
an :class:`Options`; :func:`build` makes the layer. Imported only once the command
runs; NumPy and the library load inside the makers.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from conv1d_cli.cli._common import is_layer_archive, layer_display_name, split_layer_arg

if TYPE_CHECKING:
    import numpy as np

    from conv1d_cli.layer import Conv1d
    from conv1d_cli.shapes import Padding

__all__ = ["Options", "build"]


@dataclasses.dataclass
class Options:
    """The command line, checked: what :func:`build` makes a layer from."""

    source: str
    in_channels: int | None
    out_channels: int | None
    kernel_size: int | None
    padding: Padding | None
    groups: int | None
    bias: bool | None
    dtype: str | None
    seed: int | None
    design: str | None
    cutoff: tuple[float, ...]
    sample_rate: float | None
    taps: int | None
    window: str
    transition: float | None
    attenuation: float | None
    phase: str
    sigma: float | None
    delay: int | None
    channels: int | None
    coefficients: str | None
    correlation: bool
    weight: str | None
    key: str | None
    bias_file: str | None
    impulse_response: str | None
    true_stereo: bool
    ir_norm: str
    trim: float | None
    mix: float | None
    #: The hyperparameters typed on the command line: they override an .npz layer's.
    explicit: dict[str, Any]
    #: stride, dilation, padding_mode with init's defaults: every other source's.
    common: dict[str, Any]


def build(opts: Options) -> Conv1d:
    """The layer of the chosen source."""
    makers = {
        "random": _random_layer,
        "impulse-response": _impulse_response_layer,
        "weight": _weight_layer,
    }
    return makers.get(opts.source, _kernel_source_layer)(opts)


def _random_layer(opts: Options) -> Conv1d:
    """``--in-channels/--out-channels/--kernel-size``: random weights, as PyTorch draws them."""
    import secrets

    # Here, not at the top: the layer loads NumPy, which `conv1d --help` must not pay for.
    from conv1d_cli.layer import Conv1d

    assert opts.in_channels and opts.out_channels and opts.kernel_size
    seed = opts.seed if opts.seed is not None else secrets.randbits(32)
    layer = Conv1d(
        opts.in_channels,
        opts.out_channels,
        opts.kernel_size,
        padding=0 if opts.padding is None else opts.padding,
        groups=opts.groups or 1,
        bias=opts.bias is not False,
        dtype=opts.dtype or "float32",
        seed=seed,
        **opts.common,
    )
    layer.sample_rate = opts.sample_rate  # checked in init()
    layer.description = f"random init like torch.nn.Conv1d, seed {seed}"
    return layer


def _impulse_response_layer(opts: Options) -> Conv1d:
    """``--impulse-response FILE``: an audio file's taps as a causal layer."""
    # Here, not at the top: NumPy and soundfile load only once the command runs.
    from conv1d_cli.impulse import impulse_response_layer

    assert opts.impulse_response is not None
    return impulse_response_layer(
        opts.impulse_response,
        sample_rate=opts.sample_rate,
        channels=opts.channels,
        true_stereo=opts.true_stereo,
        norm=opts.ir_norm,
        trim=opts.trim,
        mix=opts.mix,
        padding=opts.padding,
        bias=bool(opts.bias),
        dtype=opts.dtype,  # None: the IR file's precision
        **opts.common,
    )


def _weight_layer(opts: Options) -> Conv1d:
    """``--weight FILE[:KEY]``: an .npy kernel, or a layer of an .npz with overrides."""
    # Here, not at the top: NumPy loads only once the command runs.
    from conv1d_cli import weightfile

    assert opts.weight is not None
    path, own_key = split_layer_arg(opts.weight)
    if own_key is not None or opts.key is not None or is_layer_archive(path):
        return weightfile.layer_from_archive(
            path,
            key=own_key if own_key is not None else opts.key,
            name=layer_display_name(opts.weight, opts.key),
            bias_file=opts.bias_file,
            bias=opts.bias,
            dtype=opts.dtype,
            sample_rate=opts.sample_rate,
            **opts.explicit,
        )
    return weightfile.layer_from_npy(
        opts.weight,
        bias_file=opts.bias_file,
        bias=bool(opts.bias),
        channels=opts.channels,
        groups=opts.groups,
        dtype=opts.dtype,
        padding=opts.padding,
        sample_rate=opts.sample_rate,
        **opts.common,
    )


def _kernel_source_layer(opts: Options) -> Conv1d:
    """``--design`` or ``--coefficients``: one kernel for every channel (depthwise)."""
    # Here, not at the top: NumPy loads only once the command runs.
    from conv1d_cli import filters

    taps, origin, text = _kernel(opts)
    correlation = opts.source == "coefficients" and opts.correlation
    padding = opts.padding
    if opts.phase == "minimum":
        if correlation:  # the taps of these correlation weights
            taps, correlation = taps[::-1], False
        taps = filters.minimum_phase(taps)
        text += ", minimum phase"
        padding = "causal" if padding is None else padding
    return filters.kernel_layer(
        taps,
        channels=opts.channels or 1,
        correlation=correlation,
        origin=origin,
        padding=padding,
        bias=bool(opts.bias),
        dtype=opts.dtype or "float64",
        sample_rate=opts.sample_rate,
        description=text,
        **opts.common,
    )


def _kernel(opts: Options) -> tuple[np.ndarray, int | None, str]:
    """The taps of a designed kernel or of coefficients, their origin and a description."""
    # Here, not at the top: NumPy and SciPy load only once the command runs.
    from conv1d_cli import filters
    from conv1d_cli.io import coefficients

    origin = None
    if opts.source == "fir" and opts.transition is not None:
        assert opts.design and opts.sample_rate and opts.attenuation is not None
        made = filters.design_spec(
            opts.design,
            list(opts.cutoff),
            opts.sample_rate,
            transition=opts.transition,
            attenuation=opts.attenuation,
        )
        taps, text = made.taps, made.description
    elif opts.source == "fir":
        assert opts.design and opts.taps and opts.sample_rate
        window = filters.parse_window(opts.window)
        taps = filters.design_fir(
            opts.design, list(opts.cutoff), opts.sample_rate, opts.taps, window
        )
        cut = " - ".join(f"{c:g}" for c in opts.cutoff)
        text = f"{opts.design} {cut} Hz, {opts.taps} taps, {opts.window} window"
    elif opts.source == "moving-average":
        assert opts.taps is not None
        taps = filters.moving_average(opts.taps)
        text = f"moving average, {opts.taps} taps"
    elif opts.source == "gaussian":
        assert opts.sigma is not None
        taps = filters.gaussian(opts.sigma, opts.taps)
        text = f"gaussian, sigma {opts.sigma:g} samples, {taps.size} taps"
    elif opts.source == "identity":
        taps = filters.identity(opts.taps or 1)
        text = "identity"
    elif opts.source == "delay":
        assert opts.delay is not None
        taps, origin = filters.delay(opts.delay)
        text = f"delay by {opts.delay} samples"
    else:
        assert opts.coefficients is not None
        if opts.coefficients == "-":  # like SoX's `fir -`
            taps = coefficients.parse_coefficients(sys.stdin.buffer.read(), "<stdin>")
        else:
            taps = coefficients.read_coefficients(opts.coefficients)
        kind = "correlation weights" if opts.correlation else "convolution taps"
        text = f"{taps.size} {kind} from {opts.coefficients}"
    return taps, origin, text
