"""Shape arithmetic of a 1-D convolution, in pure Python.

This module deliberately imports nothing but the standard library (not even
NumPy) so that ``conv1d shape`` starts instantly. The NumPy core calls these
same functions, so the formula and the padding rules exist exactly once.

Conventions are PyTorch's (``torch.nn.Conv1d``)::

    L_out = floor((L_in + left + right - dilation * (K - 1) - 1) / stride) + 1

Padding may be an ``int`` (both sides), a 1-tuple, ``'same'`` or ``'valid'``
as in PyTorch, and -- beyond PyTorch -- ``'causal'``, ``'full'`` or an explicit
``(left, right)`` pair.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from conv1d_cli.errors import ConfigError, Conv1dError, ShapeError

__all__ = [
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
    "broadcast_first_spec",
    "channels_hint",
    "mono_broadcast",
]

#: torch padding_mode name -> the ``numpy.pad`` mode that implements it.
PADDING_MODES: Final[dict[str, str]] = {
    "zeros": "constant",
    "reflect": "reflect",  # edge sample not repeated
    "replicate": "edge",
    "circular": "wrap",
}

#: Padding words: PyTorch's two, then our documented extensions.
PADDING_WORDS: Final[tuple[str, ...]] = ("same", "valid", "causal", "full")

Padding = int | str | tuple[int, ...]

# --- Limits: the one place that says how big anything may be ----------------------------
#
# Every hyperparameter goes through check_int/check_size below, and every weight array
# through check_parameter_count, whether it comes from Python, a command-line option or
# a layer file; the layer-file reader also checks each .npz member's declared size
# against MAX_ARRAY_BYTES before decompressing it. So a value too big to allocate is a
# ConfigError (or DataFileError) naming it, never a NumPy MemoryError or a traceback.

#: Largest kernel_size, stride, dilation, padding (each side), receptive field
#: ``dilation * (kernel_size - 1) + 1``, channel count and groups: a C ``int``, the
#: range PyTorch's kernels and libsndfile index with. It also keeps every product of
#: two of them within int64, so NumPy index arithmetic cannot overflow.
MAX_SIZE: Final[int] = 2**31 - 1
#: Most weights one layer may have: 2**28, 1 GiB in float32 and 2 GiB in float64.
#: Over 50 times the largest Conv1d of common speech and audio models, and small
#: enough that making or loading one cannot exhaust a laptop's memory.
MAX_PARAMETERS: Final[int] = 2**28
#: Largest array a layer file may declare (weight, bias or config), checked from the
#: member's header before it is decompressed: the largest weight, in float64.
MAX_ARRAY_BYTES: Final[int] = MAX_PARAMETERS * 8


def _show_int(value: int) -> str:
    """``value`` for a message; a huge one by its size (``str()`` refuses > 4300 digits)."""
    if value.bit_length() <= 200:
        return str(value)
    digits = int(value.bit_length() * 0.30103) + 1
    return f"a {'negative ' if value < 0 else ''}number of about {digits} digits"


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB"


def check_parameter_count(shape: Sequence[int], itemsize: int = 4, name: str = "weight") -> int:
    """Refuse a weight array with more than :data:`MAX_PARAMETERS` elements.

    Called before the array is allocated (``conv1d init``, :class:`conv1d_cli.Conv1d`;
    layer files check the same limit from each entry's header), so that a typo such
    as ``--in-channels 100000`` is a clear error instead of a NumPy ``MemoryError``
    after minutes of swapping.

    Parameters
    ----------
    shape : sequence of int
        The array's shape.
    itemsize : int
        Bytes per element, for the size shown in the message (4 = float32).
    name : str
        What to call the array in the message.

    Returns
    -------
    int
        The number of elements.

    Raises
    ------
    ConfigError

    Examples
    --------
    >>> check_parameter_count((33, 16, 3))
    1584
    >>> check_parameter_count((100000, 100000, 100))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: weight (100000, 100000, 100) would hold 1000000000000 ...
    """
    count = 1
    for n in shape:
        count *= int(n)
    if count > MAX_PARAMETERS:
        kind = {2: "float16", 4: "float32", 8: "float64"}.get(itemsize, f"{itemsize}-byte items")
        shown = "(" + ", ".join(_show_int(int(n)) for n in shape) + ")"
        raise ConfigError(
            f"{name} {shown} would hold {_show_int(count)} parameters "
            f"({_gib(count * itemsize)} in {kind}); at most {MAX_PARAMETERS} (2**28, "
            f"{_gib(MAX_PARAMETERS * itemsize)} in {kind}) are allowed"
        )
    return count


def check_int(name: str, value: object, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum`` (and ``<= maximum``).

    Parameters
    ----------
    name : str
        Parameter name used in the error message.
    value : object
        The value to check. Booleans and floats are refused, even ``2.0``.
    minimum : int, optional
        Smallest accepted value (default 1).
    maximum : int, optional
        Largest accepted value (default: none); hyperparameters pass :data:`MAX_SIZE`.

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        If ``value`` is not an integer or is outside ``[minimum, maximum]``.

    Examples
    --------
    >>> check_int("stride", 2)
    2
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        qualifier = "positive" if minimum == 1 else f">= {minimum}"
        raise ConfigError(f"{name} must be {qualifier}, got {_show_int(value)}")
    if maximum is not None and value > maximum:
        limit = f"{MAX_SIZE} (2**31 - 1)" if maximum == MAX_SIZE else str(maximum)
        raise ConfigError(f"{name} must be at most {limit}, got {_show_int(value)}")
    return value


def check_size(name: str, value: object, *, minimum: int = 1) -> int:
    """Like :func:`check_int`, but also accept a 1-tuple/list, as PyTorch does.

    ``torch.nn.functional.conv1d(stride=(2,))`` and ``nn.Conv1d(kernel_size=(3,))``
    are valid PyTorch, so ``kernel_size``, ``stride`` and ``dilation`` take them too.
    At most :data:`MAX_SIZE`, like every hyperparameter.

    Examples
    --------
    >>> check_size("stride", (2,)), check_size("stride", 3)
    (2, 3)
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ConfigError(f"{name} must be an integer or a 1-tuple, got {value!r}")
        value = value[0]
    return check_int(name, value, minimum=minimum, maximum=MAX_SIZE)


def check_padding_mode(padding_mode: object) -> str:
    """Return ``padding_mode`` if it is one of :data:`PADDING_MODES`.

    Examples
    --------
    >>> check_padding_mode("reflect")
    'reflect'
    """
    if padding_mode not in PADDING_MODES:
        raise ConfigError(
            f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, "
            f"got {padding_mode!r}"
        )
    return str(padding_mode)


def _parse_digits(text: str) -> int:
    # int() refuses more than 4300 digits (ValueError); anything past 20 is over
    # MAX_SIZE anyway, so stand in a value just beyond the limit with the right sign.
    if len(text.lstrip("-")) > 20:
        return -1 if text.startswith("-") else MAX_SIZE + 1
    return int(text)


def parse_padding(text: str) -> Padding:
    """Parse a padding written on a command line.

    Accepts an integer (``"3"``), a word from :data:`PADDING_WORDS` or a
    ``LEFT,RIGHT`` pair (``"4,0"``).

    Examples
    --------
    >>> parse_padding("same"), parse_padding("2"), parse_padding("3,1")
    ('same', 2, (3, 1))
    """
    text = text.strip()
    if text in PADDING_WORDS:
        return text
    parts = [p.strip() for p in text.split(",")]
    # Plain ASCII digits only: int() would also take "1_0" and other scripts' digits.
    numbers_ = [_parse_digits(p) for p in parts if re.fullmatch(r"-?[0-9]+", p)]
    if len(parts) in (1, 2) and len(numbers_) == len(parts):
        if any(n < 0 for n in numbers_):
            raise ConfigError(f"padding must not be negative, got {text!r}")
        if any(n > MAX_SIZE for n in numbers_):
            raise ConfigError(
                f"padding must be at most {MAX_SIZE} (2**31 - 1) per side, got {text!r}"
            )
        return numbers_[0] if len(parts) == 1 else (numbers_[0], numbers_[1])
    raise ConfigError(
        f"padding must be an integer, LEFT,RIGHT or one of {', '.join(PADDING_WORDS)}; got {text!r}"
    )


#: The forms :func:`parse_frequency` accepts, as error messages list them.
FREQUENCY_FORMS: Final = "48000, 44.1k, 4kHz, 1.5 kHz, 2M or 1e3 Hz"

# A number as Python's float writes it (ASCII only: no "_" separators, no inf/nan),
# then an optional k (1e3) or M (1e6) and an optional "Hz" in any case.
_FREQUENCY: Final = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"\s*(?P<prefix>[kKM]?)(?P<hz>[hH][zZ])?",
    re.ASCII,
)


def parse_frequency(text: str, name: str = "frequency") -> float:
    """Read a frequency written by a person: ``48000``, ``44.1k``, ``4kHz``, ``1.5 kHz``.

    A number, then optionally ``k`` (x1000) or ``M`` (x1,000,000) and optionally
    ``Hz`` (any case; ``KHZ`` is accepted, not read as something else). Spaces are
    allowed around the number and between number and unit, as printed in data
    sheets (quote them on a shell command line). Lower-case ``m`` is refused rather
    than guessed: ``mHz`` is millihertz, ``MHz`` megahertz. The scaling is exact
    in decimal (``44.1k`` is 44100.0, not 44100.00000000001). Only the syntax is
    checked here; the option's own rule (positive, at most 2**31 - 1 Hz for a
    sample rate, below Nyquist for a cutoff) is checked where it is used.

    Parameters
    ----------
    text : str
        The value as typed.
    name : str
        What to call it in the error message (the option, e.g. ``"--cutoff"``).

    Returns
    -------
    float
        The frequency in Hz.

    Raises
    ------
    ConfigError
        Not one of the accepted forms; the message names ``name`` and the forms.

    Examples
    --------
    >>> [parse_frequency(t) for t in ["48000", "44.1k", "4kHz", "1.5 kHz", "2M", "1e3 Hz"]]
    [48000.0, 44100.0, 4000.0, 1500.0, 2000000.0, 1000.0]
    >>> parse_frequency("4 kHz "), parse_frequency("250hz"), parse_frequency(".5k")
    (4000.0, 250.0, 500.0)
    >>> parse_frequency("4m", "--cutoff")
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: --cutoff: expected a frequency such as 48000, 44.1k, 4kHz, 1.5 kHz, 2M or 1e3 Hz; got '4m'
    """  # noqa: E501
    from decimal import Decimal

    match = _FREQUENCY.fullmatch(str(text).strip())
    if match is None:
        raise ConfigError(f"{name}: expected a frequency such as {FREQUENCY_FORMS}; got {text!r}")
    scale = {"": 1, "k": 1000, "K": 1000, "M": 1000000}[match["prefix"]]
    value = Decimal(match["number"]) * scale
    try:
        return float(value)
    except OverflowError:  # pragma: no cover - float(Decimal) gives inf, not an error
        return float("inf")


def resolve_padding(
    padding: Padding, kernel_size: int, dilation: int = 1, stride: int = 1
) -> tuple[int, int]:
    """Resolve any padding spec to the ``(left, right)`` zero counts it adds.

    Parameters
    ----------
    padding : int, tuple or str
        ``int`` or 1-tuple ``p`` pads ``p`` on both sides. ``'valid'`` is 0.
        ``'same'`` pads ``dilation*(kernel_size-1)`` in total, the extra one on
        the right (PyTorch's split); it is refused for ``stride > 1`` as in
        PyTorch. Extensions beyond PyTorch: ``'causal'`` pads
        ``dilation*(kernel_size-1)`` on the left only, ``'full'`` pads that on
        both sides, and a ``(left, right)`` pair pads exactly that.
    kernel_size, dilation, stride : int
        The layer's hyperparameters (positive integers).

    Returns
    -------
    (int, int)

    Examples
    --------
    >>> resolve_padding("same", 4), resolve_padding("same", 4, dilation=3)
    ((1, 2), (4, 5))
    >>> resolve_padding("causal", 3, dilation=2), resolve_padding(1, 5)
    ((4, 0), (1, 1))
    """
    kernel_size = check_size("kernel_size", kernel_size)
    dilation = check_size("dilation", dilation)
    stride = check_size("stride", stride)
    total = receptive_field(kernel_size, dilation) - 1
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if stride != 1:
                raise ConfigError(
                    f"padding='same' is not supported for strided convolutions "
                    f"(stride={stride}); use an explicit padding or 'causal'"
                )
            return total // 2, total - total // 2
        if padding == "causal":
            return total, 0
        if padding == "full":
            return total, total
        raise ConfigError(
            f"padding must be an integer, a (left, right) pair or one of "
            f"{', '.join(map(repr, PADDING_WORDS))}; got {padding!r}"
        )
    if isinstance(padding, (tuple, list)):
        if len(padding) == 1:
            p = check_int("padding", padding[0], minimum=0, maximum=MAX_SIZE)
            return p, p
        if len(padding) == 2:
            return (
                check_int("padding[0] (left)", padding[0], minimum=0, maximum=MAX_SIZE),
                check_int("padding[1] (right)", padding[1], minimum=0, maximum=MAX_SIZE),
            )
        raise ConfigError(
            f"padding must be an int, a 1-tuple or a (left, right) pair, got {padding!r}"
        )
    p = check_int("padding", padding, minimum=0, maximum=MAX_SIZE)
    return p, p


def receptive_field(kernel_size: int, dilation: int = 1) -> int:
    """Samples one output sees: ``dilation * (kernel_size - 1) + 1``.

    Raises
    ------
    ConfigError
        If it exceeds :data:`MAX_SIZE`: the core keeps that many samples per
        channel (and an FFT of the dilated kernel), so it is a limit like the others.

    Examples
    --------
    >>> receptive_field(3, dilation=4)
    9
    """
    kernel_size = check_size("kernel_size", kernel_size)
    dilation = check_size("dilation", dilation)
    field = dilation * (kernel_size - 1) + 1
    if field > MAX_SIZE:
        raise ConfigError(
            f"the receptive field dilation * (kernel_size - 1) + 1 must be at most "
            f"{MAX_SIZE} (2**31 - 1) samples, got {dilation} * ({kernel_size} - 1) + 1 = {field}"
        )
    return field


def check_pad_limits(length: int, left: int, right: int, padding_mode: str) -> None:
    """Refuse padding that ``padding_mode`` cannot produce from ``length`` samples.

    PyTorch's limits, each side checked on its own: ``reflect`` needs
    ``pad < length``, ``circular`` needs ``pad <= length`` (wrap at most once),
    ``replicate`` and ``zeros`` have none.

    Raises
    ------
    ShapeError

    Examples
    --------
    >>> check_pad_limits(5, 4, 4, "reflect")  # fine: 4 < 5
    """
    if padding_mode == "reflect":
        worst = max(left, right)
        if worst >= length:
            raise ShapeError(
                f"reflect padding needs each side's pad smaller than the input length: "
                f"pads ({left}, {right}) on length {length}; the input needs at least "
                f"{worst + 1} samples (or use padding_mode 'replicate' or 'zeros')"
            )
    elif padding_mode == "circular":
        worst = max(left, right)
        if worst > length:
            raise ShapeError(
                f"circular padding cannot wrap around more than once: pads "
                f"({left}, {right}) on length {length}; the input needs at least "
                f"{worst} samples"
            )


def output_length(
    length: int,
    kernel_size: int,
    stride: int = 1,
    padding: Padding = 0,
    dilation: int = 1,
) -> int:
    """Output length of a 1-D convolution, PyTorch's formula.

    Parameters
    ----------
    length : int
        Input length ``L_in`` (at least 1).
    kernel_size, stride, dilation : int
        Positive integers.
    padding : int, tuple or str
        Anything :func:`resolve_padding` accepts.

    Returns
    -------
    int
        ``(L_in + left + right - dilation*(kernel_size-1) - 1) // stride + 1``.

    Raises
    ------
    ConfigError
        For invalid hyperparameters.
    ShapeError
        If the input is empty or the padded input is shorter than the
        dilated kernel.

    Examples
    --------
    >>> output_length(50, 3, stride=2)
    24
    >>> output_length(10, 4, padding="same", dilation=3)
    10
    """
    left, right = resolve_padding(padding, kernel_size, dilation, stride)
    stride = check_size("stride", stride)
    if isinstance(length, bool) or not isinstance(length, numbers.Integral):
        raise ConfigError(f"length must be an integer, got {length!r}")
    length = int(length)
    if length < 1:
        raise ShapeError(f"input length must be at least 1, got {length}")
    field = receptive_field(kernel_size, dilation)
    padded = length + left + right
    if padded < field:
        raise ShapeError(
            f"input too short: padded length {padded} (length {length} + padding "
            f"{left}+{right}) is less than the dilated kernel size {field}; "
            f"the input needs at least {field - left - right} samples"
        )
    return (padded - field) // stride + 1


def min_input_length(
    kernel_size: int,
    stride: int = 1,
    padding: Padding = 0,
    dilation: int = 1,
    padding_mode: str = "zeros",
) -> int:
    """Smallest input length the layer accepts.

    Examples
    --------
    >>> min_input_length(5), min_input_length(5, padding=2)
    (5, 1)
    >>> min_input_length(11, padding=5, padding_mode="reflect")
    6
    """
    left, right = resolve_padding(padding, kernel_size, dilation, stride)
    need = max(1, receptive_field(kernel_size, dilation) - left - right)
    mode = check_padding_mode(padding_mode)
    if mode == "reflect":
        need = max(need, max(left, right) + 1)
    elif mode == "circular":
        need = max(need, left, right)
    return need


# --- Layers and chains: what ``conv1d shape`` reports ----------------------------------------
#
# Everything below is built on the functions above (resolve_padding, output_length,
# check_pad_limits, min_input_length), so the formula still lives in one place.


@dataclass(frozen=True)
class LayerSpec:
    """The shape-relevant hyperparameters of one ``Conv1d`` layer.

    Validated on construction exactly as :class:`conv1d_cli.Conv1d` validates
    them (same checks, same messages), but without weights, so it needs no
    NumPy. ``in_channels``/``out_channels`` may be ``None`` when only lengths
    matter.

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
        Rate the layer was designed for (layer-file metadata; informational).
    name : str
        Label used in reports (e.g. the layer file's name).

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

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise once, here
        set_(self, "kernel_size", check_size("kernel_size", self.kernel_size))
        set_(self, "stride", check_size("stride", self.stride))
        set_(self, "dilation", check_size("dilation", self.dilation))
        set_(self, "groups", check_int("groups", self.groups, maximum=MAX_SIZE))
        set_(self, "padding_mode", check_padding_mode(self.padding_mode))
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if value is not None:
                value = check_int(name, value, maximum=MAX_SIZE)
                set_(self, name, value)
                if value % self.groups:
                    raise ConfigError(
                        f"{name} must be divisible by groups, got {name}={value}, "
                        f"groups={self.groups}"
                    )
        # Validates the spec ('same' with stride > 1, negative or malformed pads) once.
        resolve_padding(self.padding, self.kernel_size, self.dilation, self.stride)
        padding = self.padding
        if isinstance(padding, (tuple, list)):
            padding = tuple(int(p) for p in padding)
            set_(self, "padding", padding[0] if len(padding) == 1 else padding)
        if self.sample_rate is not None:
            set_(self, "sample_rate", float(self.sample_rate))

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
        sample_rate = float(sample_rate)
        if not sample_rate > 0 or sample_rate == float("inf"):
            raise ConfigError(f"sample_rate must be a positive number, got {sample_rate!r}")
    if channels is None and specs:
        channels = specs[0].in_channels
    rows: list[LayerShape] = []
    jump, field = 1, 1
    current_length, current_channels = length, channels
    failed: int | None = None
    error: str | None = None
    for index, spec in enumerate(specs, start=1):
        try:
            _check_channels(spec, current_channels, first=index == 1)
            out = spec.output_length(current_length)
        except ShapeError as e:
            failed, error = index, str(e)
            break
        field += spec.dilation * (spec.kernel_size - 1) * jump
        jump *= spec.stride
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
    total_field, total_jump = 1, 1
    for spec in specs:
        total_field += spec.dilation * (spec.kernel_size - 1) * total_jump
        total_jump *= spec.stride
    return ChainShape(
        specs=specs,
        batch=batch,
        channels=channels,
        length=length,
        sample_rate=sample_rate,
        layers=tuple(rows),
        min_input_length=chain_min_input_length(specs),
        receptive_field=total_field,
        cumulative_stride=total_jump,
        failed_layer=failed,
        error=error,
    )


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


@dataclass(frozen=True)
class TargetPadding:
    """Answer of :func:`paddings_for_target`: which paddings give a target length.

    Output length depends on the padding only through the total
    ``left + right``, so the answer is a range of totals:

    - ``total``: ``(lo, hi)``, every ``(left, right)`` with ``lo <= left + right <= hi``
      gives ``target`` (for 'reflect'/'circular', also each side ``<= max_side``).
      ``None`` if no padding can.
    - ``symmetric``: ``(lo, hi)``, the integer paddings ``p`` (``p`` on both sides,
      what PyTorch accepts) that give ``target``, or ``None``.
    - ``words``: the padding words ('same', 'valid', 'causal', 'full') that give it.
    - ``reason``: why no padding can, else ``None``.
    """

    length: int
    target: int
    total: tuple[int, int] | None
    symmetric: tuple[int, int] | None
    max_side: int | None
    words: tuple[str, ...]
    reason: str | None

    @property
    def possible(self) -> bool:
        return self.total is not None


def paddings_for_target(
    length: int,
    target: int,
    kernel_size: int,
    stride: int = 1,
    dilation: int = 1,
    padding_mode: str = "zeros",
) -> TargetPadding:
    """Which paddings turn ``length`` input samples into ``target`` output samples.

    Solves ``floor((length + P - field) / stride) + 1 == target`` for the total
    padding ``P = left + right >= 0`` (``field = dilation*(kernel_size-1)+1``):
    ``(target-1)*stride + field - length <= P <= target*stride + field - length - 1``.
    'reflect' caps each side at ``length - 1`` and 'circular' at ``length``.

    Returns
    -------
    TargetPadding

    Examples
    --------
    >>> answer = paddings_for_target(100, 50, 5, stride=2)
    >>> answer.total, answer.symmetric, answer.words
    ((3, 4), (2, 2), ('causal',))
    >>> paddings_for_target(10, 10, 3).words
    ('same', 'causal')
    >>> paddings_for_target(10, 2, 3).reason
    'the output is at least 8 samples long (no padding); padding cannot shorten it'
    """
    length = check_int("length", length)
    target = check_int("target length", target)
    kernel_size = check_size("kernel_size", kernel_size)
    stride = check_size("stride", stride)
    dilation = check_size("dilation", dilation)
    mode = check_padding_mode(padding_mode)
    field = receptive_field(kernel_size, dilation)
    lo = max(0, (target - 1) * stride + field - length)
    hi = target * stride + field - length - 1
    max_side = {"reflect": length - 1, "circular": length}.get(mode)
    reason = None
    if hi < 0:
        shortest = (length - field) // stride + 1
        reason = (
            f"the output is at least {shortest} samples long (no padding); "
            f"padding cannot shorten it"
        )
    elif max_side is not None and lo > 2 * max_side:
        longest = (length + 2 * max_side - field) // stride + 1
        reason = f"{mode} padding adds at most {max_side} samples per side on length {length}, " + (
            f"so the output is at most {longest} samples long"
            if longest >= 1
            else "which is too short for the kernel"
        )
    if reason is not None:
        return TargetPadding(length, target, None, None, max_side, (), reason)
    if max_side is not None:
        hi = min(hi, 2 * max_side)
    symmetric = ((lo + 1) // 2, hi // 2) if (lo + 1) // 2 <= hi // 2 else None
    words = []
    for word in PADDING_WORDS:
        try:
            got = LayerSpec(kernel_size, stride, word, dilation, mode).output_length(length)
        except Conv1dError:
            continue
        if got == target:
            words.append(word)
    return TargetPadding(length, target, (lo, hi), symmetric, max_side, tuple(words), None)


#: Largest sample rate anything accepts: libsndfile stores the rate as a C ``int``.
MAX_SAMPLE_RATE: Final[int] = 2**31 - 1


def check_sample_rate(name: str, value: object, *, integer: bool = False) -> float:
    """Return ``value`` as a float if it is a usable sample rate in Hz.

    The one rule for every sample rate (options, layer files, designs): a real
    number, finite, > 0 and at most :data:`MAX_SAMPLE_RATE` (what an audio file
    can store). ``integer=True`` also requires a whole number of Hz, as audio
    file formats do; CSV/NPY outputs and designs may use fractional rates.

    Parameters
    ----------
    name : str
        What to call the value in the error message (``"--sample-rate"``).
    value : object
        The rate. Booleans and strings are refused.
    integer : bool, optional
        Require a whole number (audio output).

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        Naming ``name``, the rule and the value found.

    Examples
    --------
    >>> check_sample_rate("--sample-rate", 48000)
    48000.0
    >>> check_sample_rate("--sample-rate", 1e12)
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: --sample-rate must be at most 2147483647 Hz, got 1e+12
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a positive number of Hz, got {value!r}")
    rate = float(value)
    if rate != rate or rate <= 0:
        raise ConfigError(f"{name} must be a positive number of Hz, got {rate:g}")
    if rate > MAX_SAMPLE_RATE:
        raise ConfigError(f"{name} must be at most {MAX_SAMPLE_RATE} Hz, got {rate:g}")
    if integer and not rate.is_integer():
        raise ConfigError(f"{name} must be a whole number of Hz for audio output, got {rate:g}")
    return rate


def implied_input_rate(
    design_rates: Sequence[float | None], strides: Sequence[int]
) -> tuple[float, int] | None:
    """The input sample rate a chain's design rates imply, for an input without one.

    The first layer ``k`` (0-based) that records a design rate is taken to get the
    rate it was designed for, so the chain's input is at that rate times the strides
    of the layers before it (each stride divides the rate).

    Returns
    -------
    tuple or None
        ``(rate, k)``, or None when no layer records a rate.

    Examples
    --------
    >>> implied_input_rate([None, 8000.0], [2, 1])
    (16000.0, 1)
    >>> implied_input_rate([None], [1]) is None
    True
    """
    factor = 1
    for index, (rate, stride) in enumerate(zip(design_rates, strides, strict=True)):
        if rate is not None:
            return float(rate) * factor, index
        factor *= stride
    return None


def rate_mismatches(
    design_rates: Sequence[float | None],
    strides: Sequence[int],
    names: Sequence[str],
    input_rate: float | None,
    source: str,
) -> list[str]:
    """Warnings for layers designed for another rate than the one they receive.

    A filter designed for 8 kHz cuts at the wrong frequencies when fed 16 kHz: the
    one rule ``apply`` and ``shape`` use. Rates within a relative 1e-9 are equal
    (a rate may have gone through a division by a stride).

    Parameters
    ----------
    design_rates, strides, names : sequences
        Per layer: the recorded design rate (or None), the stride, a display name.
    input_rate : float or None
        The rate of the chain's input (None: nothing to compare).
    source : str
        Where the input rate comes from, for the message (a file name).

    Examples
    --------
    >>> rate_mismatches([16000.0, 8000.0], [1, 1], ["layer 1", "layer 2"], 16000.0, "x.csv")
    ['layer 2 was designed for 8000 Hz but gets 16000 Hz from x.csv']
    """
    found = []
    rate = input_rate
    for design, stride, name in zip(design_rates, strides, names, strict=True):
        if rate is not None and design is not None and abs(rate - design) > 1e-9 * design:
            found.append(
                f"{name} was designed for {design:.10g} Hz but gets {rate:.10g} Hz from {source}"
            )
        rate = None if rate is None else rate / stride
    return found


# --- A one-channel filter on a many-channel file: the rule apply and shape share -----------


def mono_broadcast(layer: Any, channels: int | None, format: str | None) -> bool:
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
