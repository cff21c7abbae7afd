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

import numbers
from typing import Final

from conv1d_cli.errors import ConfigError, ShapeError

__all__ = [
    "PADDING_MODES",
    "PADDING_WORDS",
    "Padding",
    "check_int",
    "check_size",
    "check_padding_mode",
    "check_pad_limits",
    "min_input_length",
    "output_length",
    "parse_padding",
    "receptive_field",
    "resolve_padding",
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


def check_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= minimum``.

    Parameters
    ----------
    name : str
        Parameter name used in the error message.
    value : object
        The value to check. Booleans and floats are refused, even ``2.0``.
    minimum : int, optional
        Smallest accepted value (default 1).

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        If ``value`` is not an integer or is below ``minimum``.

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
        raise ConfigError(f"{name} must be {qualifier}, got {value}")
    return value


def check_size(name: str, value: object, *, minimum: int = 1) -> int:
    """Like :func:`check_int`, but also accept a 1-tuple/list, as PyTorch does.

    ``torch.nn.functional.conv1d(stride=(2,))`` and ``nn.Conv1d(kernel_size=(3,))``
    are valid PyTorch, so ``kernel_size``, ``stride`` and ``dilation`` take them too.

    Examples
    --------
    >>> check_size("stride", (2,)), check_size("stride", 3)
    (2, 3)
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ConfigError(f"{name} must be an integer or a 1-tuple, got {value!r}")
        value = value[0]
    return check_int(name, value, minimum=minimum)


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
    parts = text.split(",")
    try:
        numbers_ = [int(p) for p in parts]
    except ValueError:
        numbers_ = []
    if len(parts) in (1, 2) and len(numbers_) == len(parts):
        if any(n < 0 for n in numbers_):
            raise ConfigError(f"padding must not be negative, got {text!r}")
        return numbers_[0] if len(parts) == 1 else (numbers_[0], numbers_[1])
    raise ConfigError(
        f"padding must be an integer, LEFT,RIGHT or one of {', '.join(PADDING_WORDS)}; got {text!r}"
    )


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
    total = dilation * (kernel_size - 1)
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
            p = check_int("padding", padding[0], minimum=0)
            return p, p
        if len(padding) == 2:
            return (
                check_int("padding[0] (left)", padding[0], minimum=0),
                check_int("padding[1] (right)", padding[1], minimum=0),
            )
        raise ConfigError(
            f"padding must be an int, a 1-tuple or a (left, right) pair, got {padding!r}"
        )
    p = check_int("padding", padding, minimum=0)
    return p, p


def receptive_field(kernel_size: int, dilation: int = 1) -> int:
    """Samples one output sees: ``dilation * (kernel_size - 1) + 1``.

    Examples
    --------
    >>> receptive_field(3, dilation=4)
    9
    """
    return check_size("dilation", dilation) * (check_size("kernel_size", kernel_size) - 1) + 1


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
