"""Layers and chains of 1-D convolutions, shape-wise, in pure Python.

This module deliberately imports nothing but the standard library (not even
NumPy) so that ``conv1d shape`` starts instantly. The NumPy core, the layer
object, the layer file and the streaming engine all validate through
:class:`LayerSpec`, the one set of a layer's hyperparameters, and answer every
length question through :func:`walk_chain`, so each rule exists exactly once.

The single-layer formula and the padding rules live in :mod:`conv1d_cli.padding`,
the number, rate and dtype rules in :mod:`conv1d_cli.units`; both are
re-exported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from conv1d_cli.errors import ConfigError, ShapeError
from conv1d_cli.padding import (
    PADDING_MODES,
    PADDING_WORDS,
    Padding,
    TargetPadding,
    check_pad_limits,
    check_padding,
    check_padding_mode,
    min_input_length,
    output_length,
    paddings_for_target,
    parse_padding,
    receptive_field,
    resolve_padding,
)
from conv1d_cli.units import (
    DTYPES,
    FREQUENCY_FORMS,
    MAX_ARRAY_BYTES,
    MAX_PARAMETERS,
    MAX_SAMPLE_RATE,
    MAX_SIZE,
    check_dtype_name,
    check_int,
    check_parameter_count,
    check_sample_rate,
    check_size,
    check_stored_rate,
    implied_input_rate,
    parse_frequency,
    rate_mismatches,
    rate_warnings,
)

# The limits and unit rules live in conv1d_cli.units; they are re-exported here
# because every caller that checks a hyperparameter also asks shapes.
__all__ = [
    "DTYPES",
    "FREQUENCY_FORMS",
    "check_bias_shape",
    "check_dtype_name",
    "check_padding",
    "check_stored_rate",
    "ChainShape",
    "LayerShape",
    "LayerSpec",
    "PADDING_MODES",
    "PADDING_WORDS",
    "Padding",
    "TargetPadding",
    "check_int",
    "check_size",
    "check_padding_mode",
    "check_pad_limits",
    "check_sample_rate",
    "check_parameter_count",
    "MAX_ARRAY_BYTES",
    "MAX_PARAMETERS",
    "MAX_SAMPLE_RATE",
    "MAX_SIZE",
    "chain_min_input_length",
    "min_input_length",
    "output_length",
    "paddings_for_target",
    "parse_frequency",
    "parse_padding",
    "receptive_field",
    "resolve_padding",
    "walk_chain",
    "implied_input_rate",
    "rate_mismatches",
    "rate_warnings",
    "broadcast_first_spec",
    "channels_hint",
    "mono_broadcast",
]


def check_bias_shape(
    bias_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    name: str = "bias",
    weight_name: str = "weight",
) -> None:
    """Refuse a bias that is not one value per output channel of the weight.

    Raises
    ------
    ShapeError

    Examples
    --------
    >>> check_bias_shape((4,), (4, 1, 3))
    >>> check_bias_shape((3,), (4, 1, 3))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ShapeError: bias must have shape (4,) to match weight (4, 1, 3), got ...
    """
    want = (int(weight_shape[0]),)
    if tuple(bias_shape) != want:
        raise ShapeError(
            f"{name} must have shape {want} to match {weight_name} {tuple(weight_shape)}, "
            f"got shape {tuple(bias_shape)}"
        )


# --- Layers and chains: what ``conv1d shape`` reports ----------------------------------------
#
# Everything below is built on the functions above (resolve_padding, output_length,
# check_pad_limits, min_input_length), so the formula still lives in one place.


class ChannelCounts(Protocol):
    """What :func:`mono_broadcast` reads from a layer: ``Conv1d`` and :class:`LayerSpec` have it."""

    @property
    def in_channels(self) -> int | None: ...

    @property
    def out_channels(self) -> int | None: ...

    @property
    def groups(self) -> int: ...


@dataclass(frozen=True)
class LayerSpec:
    """The one validated set of hyperparameters of a ``Conv1d`` layer.

    :class:`conv1d_cli.Conv1d` holds one, a layer file stores one beside the
    arrays, and ``conv1d shape`` and the streaming engine reason with them, so
    every hyperparameter is checked here and only here. Pure Python (no weights,
    no NumPy). ``in_channels``/``out_channels`` may be ``None`` when only
    lengths matter.

    Parameters
    ----------
    kernel_size, stride, dilation, groups : int
        Positive integers.
    padding : int, tuple or str
        Anything :func:`resolve_padding` accepts.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    in_channels, out_channels : int, optional
        Must be divisible by ``groups`` when given.
    sample_rate : float, optional
        Rate the layer was designed for (layer-file metadata; informational), or
        recorded at when ``sample_rate_binding``.
    name : str
        Label used in reports (e.g. the layer file's name).
    bias : bool
        Whether the layer adds a bias.
    dtype : {'float32', 'float64'}
        The parameters' dtype, by name (see :data:`DTYPES`).
    sample_rate_binding : bool
        ``sample_rate`` is the rate the taps were recorded at (an impulse
        response), so a signal at another rate is refused rather than warned
        about (:func:`rate_warnings`). Needs a ``sample_rate``.

    Examples
    --------
    >>> spec = LayerSpec(4, padding="same", dilation=3)
    >>> spec.resolved_padding(), spec.receptive_field, spec.min_input_length
    ((4, 5), 10, 1)
    >>> LayerSpec(3, in_channels=6, out_channels=4, groups=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    conv1d_cli.errors.ConfigError: in_channels must be divisible by groups, ...
    """

    kernel_size: int
    stride: int = 1
    padding: Padding = 0
    dilation: int = 1
    padding_mode: str = "zeros"
    in_channels: int | None = None
    out_channels: int | None = None
    groups: int = 1
    sample_rate: float | None = None
    name: str = ""
    bias: bool = True
    dtype: str = "float32"
    sample_rate_binding: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise once, here
        # The order of the checks decides which error a call with several shows:
        # channels and kernel first, as torch.nn.Conv1d checks them.
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, check_int(name, value, maximum=MAX_SIZE))
        set_(self, "kernel_size", check_size("kernel_size", self.kernel_size))
        set_(self, "groups", check_int("groups", self.groups, maximum=MAX_SIZE))
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if value is not None and value % self.groups:
                raise ConfigError(
                    f"{name} must be divisible by groups, got {name}={value}, groups={self.groups}"
                )
        set_(self, "stride", check_size("stride", self.stride))
        set_(self, "dilation", check_size("dilation", self.dilation))
        set_(self, "padding_mode", check_padding_mode(self.padding_mode))
        # 'same' with stride > 1 and the receptive-field limit, then the form.
        resolve_padding(self.padding, self.kernel_size, self.dilation, self.stride)
        set_(self, "padding", check_padding(self.padding))
        set_(self, "bias", bool(self.bias))
        set_(self, "dtype", check_dtype_name(self.dtype, self.dtype))
        if self.sample_rate is not None:
            set_(self, "sample_rate", float(self.sample_rate))
        set_(self, "sample_rate_binding", bool(self.sample_rate_binding))
        if self.sample_rate_binding and self.sample_rate is None:
            raise ConfigError("sample_rate_binding needs a sample_rate (the rate recorded at)")

    @classmethod
    def from_layer(cls, layer: Any, name: str = "") -> LayerSpec:
        """Copy the hyperparameters of a layer object (duck-typed, e.g. ``Conv1d``).

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> layer = SimpleNamespace(kernel_size=3, stride=2, padding=1, dilation=1,
        ...                         padding_mode="zeros", in_channels=2, out_channels=4, groups=1)
        >>> LayerSpec.from_layer(layer, "a.npz").resolved_padding()
        (1, 1)
        """
        return cls(
            kernel_size=layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            padding_mode=getattr(layer, "padding_mode", "zeros"),
            in_channels=getattr(layer, "in_channels", None),
            out_channels=getattr(layer, "out_channels", None),
            groups=getattr(layer, "groups", 1),
            sample_rate=getattr(layer, "sample_rate", None),
            name=name,
            sample_rate_binding=getattr(layer, "sample_rate_binding", False),
        )

    @classmethod
    def for_weight(
        cls,
        shape: Sequence[int],
        *,
        stride: int = 1,
        padding: Padding = 0,
        dilation: int = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        bias: bool = True,
        dtype: str = "float32",
        sample_rate: float | None = None,
        sample_rate_binding: bool = False,
    ) -> LayerSpec:
        """The spec of a layer whose weight has ``shape`` ``(C_out, C_in / groups, K)``.

        Examples
        --------
        >>> spec = LayerSpec.for_weight((4, 1, 3), groups=2, padding="same")
        >>> spec.in_channels, spec.out_channels, spec.kernel_size
        (2, 4, 3)
        """
        c_out, c_in_group, kernel_size = (int(n) for n in shape)
        groups = check_int("groups", groups, maximum=MAX_SIZE)
        return cls(
            kernel_size,
            stride,
            padding,
            dilation,
            padding_mode,
            in_channels=c_in_group * groups,
            out_channels=c_out,
            groups=groups,
            sample_rate=sample_rate,
            bias=bias,
            dtype=dtype,
            sample_rate_binding=sample_rate_binding,
        )

    def resolved_padding(self) -> tuple[int, int]:
        """The ``(left, right)`` padding this layer adds."""
        return resolve_padding(self.padding, self.kernel_size, self.dilation, self.stride)

    @property
    def receptive_field(self) -> int:
        """Dilated kernel size ``dilation * (kernel_size - 1) + 1``."""
        return receptive_field(self.kernel_size, self.dilation)

    @property
    def min_input_length(self) -> int:
        """Smallest input length this layer alone accepts (see :func:`min_input_length`)."""
        return min_input_length(
            self.kernel_size, self.stride, self.padding, self.dilation, self.padding_mode
        )

    def output_length(self, length: int) -> int:
        """Output length for an input of ``length`` samples, padding-mode limits included.

        Raises
        ------
        ShapeError
            Input too short for the kernel, or too short for the padding mode.

        Examples
        --------
        >>> LayerSpec(5, stride=2, padding=2).output_length(20)
        10
        >>> LayerSpec(11, padding=5, padding_mode="reflect").output_length(5)
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        conv1d_cli.errors.ShapeError: reflect padding needs each side's pad smaller ...
        """
        left, right = self.resolved_padding()
        # Same order of checks as the core: the kernel must fit, then the padding mode.
        out = output_length(length, self.kernel_size, self.stride, (left, right), self.dilation)
        check_pad_limits(int(length), left, right, self.padding_mode)
        return out


@dataclass(frozen=True)
class LayerShape:
    """One layer's row in a chain report (see :func:`walk_chain`).

    ``receptive_field`` and ``cumulative_stride`` are cumulative from the
    chain's input: one output sample of this layer depends on
    ``receptive_field`` consecutive input samples, and consecutive outputs are
    ``cumulative_stride`` input samples apart. ``sample_rate`` is the rate
    after this layer (``None`` when the input has none).
    """

    index: int
    spec: LayerSpec
    batch: int | None
    in_channels: int | None
    out_channels: int | None
    input_length: int
    padding: tuple[int, int]
    output_length: int
    cumulative_stride: int
    receptive_field: int
    sample_rate: float | None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return _shape(self.batch, self.in_channels, self.input_length)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return _shape(self.batch, self.out_channels, self.output_length)


@dataclass(frozen=True)
class ChainShape:
    """Result of :func:`walk_chain`: per-layer rows and chain totals.

    ``layers`` holds a row for every layer the input got through; if the chain
    breaks, ``failed_layer`` is the 1-based index of the first layer that
    cannot take its input and ``error`` says why (the chain is then
    ``ok == False``). ``min_input_length``, ``receptive_field`` and
    ``cumulative_stride`` describe the whole chain and do not depend on the
    input.
    """

    specs: tuple[LayerSpec, ...]
    batch: int | None
    channels: int | None
    length: int
    sample_rate: float | None
    layers: tuple[LayerShape, ...]
    min_input_length: int
    receptive_field: int
    cumulative_stride: int
    failed_layer: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return _shape(self.batch, self.channels, self.length)


def _shape(batch: int | None, channels: int | None, length: int) -> tuple[int, ...]:
    if channels is None:
        return (length,)
    return (channels, length) if batch is None else (batch, channels, length)


def chain_min_input_length(specs: Sequence[LayerSpec]) -> int:
    """Smallest input length that passes through every layer of a chain.

    Walks the chain backwards: a layer whose output must be at least ``n``
    long needs ``(n - 1) * stride + dilated_kernel - left - right`` input
    samples, and never fewer than it accepts on its own (padding-mode limits
    included). Output length grows with input length, so this is exact.

    Examples
    --------
    >>> chain_min_input_length([LayerSpec(5, stride=2), LayerSpec(3, stride=2)])
    9
    >>> chain_min_input_length([])
    1
    """
    need = 1
    for spec in reversed(specs):
        left, right = spec.resolved_padding()
        need = max(
            spec.min_input_length, (need - 1) * spec.stride + spec.receptive_field - left - right
        )
    return need


def walk_chain(
    specs: Sequence[LayerSpec],
    length: int,
    *,
    channels: int | None = None,
    batch: int | None = None,
    sample_rate: float | None = None,
) -> ChainShape:
    """Push an input of ``length`` samples through a chain of layers, shape-wise.

    Parameters
    ----------
    specs : sequence of LayerSpec
        The layers, first to last.
    length : int
        Input length (positive).
    channels : int, optional
        Input channels. ``None`` means "whatever the first layer expects".
    batch : int, optional
        Batch size (``None``: unbatched ``(C, L)`` input).
    sample_rate : float, optional
        Input sample rate; each row then gives the rate after that layer.

    Returns
    -------
    ChainShape
        Never raises for an input that does not fit: the first failing layer
        and the reason are in ``failed_layer`` / ``error``. The checks and
        their order are the core's: channels, then kernel vs padded length,
        then padding-mode limits.

    Raises
    ------
    ConfigError
        A non-integer or non-positive ``length``, ``channels`` or ``batch``.

    Examples
    --------
    >>> chain = walk_chain([LayerSpec(9, 2, 4, in_channels=1, out_channels=8),
    ...                     LayerSpec(3, 2, in_channels=8, out_channels=8)],
    ...                    16000, sample_rate=16000)
    >>> [row.output_shape for row in chain.layers]
    [(8, 8000), (8, 3999)]
    >>> chain.receptive_field, chain.cumulative_stride, chain.layers[-1].sample_rate
    (13, 4, 4000.0)
    >>> broken = walk_chain([LayerSpec(5)], 3)
    >>> broken.failed_layer, broken.error[:48]
    (1, 'input too short: padded length 3 (length 3 + pad')
    """
    specs = tuple(specs)
    length = check_int("length", length)
    if channels is not None:
        channels = check_int("channels", channels, maximum=MAX_SIZE)
    if batch is not None:
        batch = check_int("batch", batch, minimum=0)
    if sample_rate is not None:
        sample_rate = check_stored_rate(sample_rate)  # arithmetic only: no audio cap
    if channels is None and specs:
        channels = specs[0].in_channels
    rows, failed, error = _rows(specs, length, channels, batch, sample_rate)
    field, jump = _reach(specs)
    return ChainShape(
        specs=specs,
        batch=batch,
        channels=channels,
        length=length,
        sample_rate=sample_rate,
        layers=tuple(rows),
        min_input_length=chain_min_input_length(specs),
        receptive_field=field,
        cumulative_stride=jump,
        failed_layer=failed,
        error=error,
    )


def _reach(specs: Sequence[LayerSpec]) -> tuple[int, int]:
    """Receptive field and cumulative stride of a chain, from its input."""
    field, jump = 1, 1
    for spec in specs:
        field += spec.dilation * (spec.kernel_size - 1) * jump
        jump *= spec.stride
    return field, jump


def _rows(
    specs: tuple[LayerSpec, ...],
    length: int,
    channels: int | None,
    batch: int | None,
    sample_rate: float | None,
) -> tuple[list[LayerShape], int | None, str | None]:
    """One row per layer the input gets through; then the failed layer and why, if any."""
    rows: list[LayerShape] = []
    current_length, current_channels = length, channels
    for index, spec in enumerate(specs, start=1):
        try:
            _check_channels(spec, current_channels, first=index == 1)
            out = spec.output_length(current_length)
        except ShapeError as e:
            return rows, index, str(e)
        field, jump = _reach(specs[:index])
        out_channels = spec.out_channels
        if out_channels is None and spec.in_channels is None:
            out_channels = current_channels  # a length-only layer keeps the channel count
        rows.append(
            LayerShape(
                index=index,
                spec=spec,
                batch=batch,
                in_channels=current_channels,
                out_channels=out_channels,
                input_length=current_length,
                padding=spec.resolved_padding(),
                output_length=out,
                cumulative_stride=jump,
                receptive_field=field,
                sample_rate=None if sample_rate is None else sample_rate / jump,
            )
        )
        current_length, current_channels = out, out_channels
    return rows, None, None


def _check_channels(spec: LayerSpec, channels: int | None, first: bool = False) -> None:
    if channels is None:
        return
    if spec.in_channels is not None and channels != spec.in_channels:
        raise ShapeError(
            f"input has {channels} channels but the layer expects {spec.in_channels} "
            f"(in_channels={spec.in_channels}, groups={spec.groups})"
            f"{channels_hint(channels) if first else ''}"
        )
    if channels % spec.groups:
        raise ShapeError(
            f"input has {channels} channels, which groups={spec.groups} does not divide"
        )


# --- A one-channel filter on a many-channel file: the rule apply and shape share -----------


def mono_broadcast(layer: ChannelCounts, channels: int | None, format: str | None) -> bool:
    """Whether a chain's first ``layer`` is applied to each of ``channels`` separately.

    True for a plain FIR -- one input and one output channel, groups 1 (``conv1d init
    --design ... --channels 1``, or taps from a coefficient file) -- as the first layer
    on a file with several channels that is audio or CSV: SoX's ``fir`` filters every
    channel of a stereo file with a mono kernel, and so does ``conv1d apply``. The
    layer then acts as a depthwise ``(C, 1, K)`` layer with ``groups=C`` (each channel
    gets exactly the result it would get alone). NPY inputs, and the Python ``Conv1d``,
    keep PyTorch's rule: the channel counts must match (an error). ``layer`` is
    duck-typed: ``Conv1d`` or :class:`LayerSpec`.

    Examples
    --------
    >>> fir = LayerSpec(5, in_channels=1, out_channels=1)
    >>> mono_broadcast(fir, 2, "wav"), mono_broadcast(fir, 8, "csv"), mono_broadcast(fir, 2, "npy")
    (True, True, False)
    >>> mono_broadcast(fir, 1, "wav"), mono_broadcast(LayerSpec(5, in_channels=1, out_channels=2), 2, "wav")
    (False, False)
    """  # noqa: E501
    return (
        channels is not None
        and channels > 1
        and format is not None
        and format != "npy"
        and layer.in_channels == 1
        and layer.out_channels == 1
        and layer.groups == 1
    )


def broadcast_notice(name: str, channels: int, source: str) -> str:
    """The one line ``apply`` and ``shape`` print when :func:`mono_broadcast` applies."""
    return (
        f"{name} is a one-channel filter: applying it to each of the {channels} channels "
        f"of {source} separately (as SoX does)"
    )


def channels_hint(channels: int) -> str:
    """How to make a layer for ``channels`` channels: the end of a channel-count error."""
    return (
        f"; for a designed filter or coefficient file, make the layer for {channels} "
        f"channels with 'conv1d init ... --channels {channels}'"
    )


def broadcast_first_spec(
    specs: Sequence[LayerSpec], channels: int | None, format: str | None, source: str
) -> tuple[list[LayerSpec], str | None]:
    """``shape``'s side of :func:`mono_broadcast`: the chain, and the notice if it applies.

    Examples
    --------
    >>> specs, notice = broadcast_first_spec(
    ...     [LayerSpec(5, in_channels=1, out_channels=1, name="lp.npz")], 2, "wav", "a.wav")
    >>> specs[0].in_channels, specs[0].out_channels, specs[0].groups
    (2, 2, 2)
    >>> notice
    'layer 1 (lp.npz) is a one-channel filter: applying it to each of the 2 channels of a.wav separately (as SoX does)'
    """  # noqa: E501
    specs = list(specs)
    if not specs or not mono_broadcast(specs[0], channels, format):
        return specs, None
    assert channels is not None
    first = specs[0]
    specs[0] = dataclasses.replace(
        first, in_channels=channels, out_channels=channels, groups=channels
    )
    name = f"layer 1 ({first.name})" if first.name else "layer 1"
    return specs, broadcast_notice(name, channels, source)
