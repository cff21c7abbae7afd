"""Padding and the length formula of one 1-D convolution, in pure Python.

The one place that says which paddings exist and what they add: the forms a
padding may take (:func:`check_padding`, :func:`parse_padding` for a command
line), how a form resolves to ``(left, right)`` for a layer
(:func:`resolve_padding`), what each ``padding_mode`` can produce from a signal
(:func:`check_pad_limits`), and PyTorch's length formula built on them
(:func:`output_length`, :func:`min_input_length`)::

    L_out = floor((L_in + left + right - dilation * (K - 1) - 1) / stride) + 1

Padding may be an ``int`` (both sides), a 1-tuple, ``'same'`` or ``'valid'``
as in PyTorch, and -- beyond PyTorch -- ``'causal'``, ``'full'`` or an explicit
``(left, right)`` pair. :mod:`conv1d_cli.shapes` builds layers and chains on
these; both are re-exported there.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Final

from conv1d_cli.errors import ConfigError, Conv1dError, ShapeError
from conv1d_cli.units import MAX_SIZE, _parse_digits, check_int, check_size

__all__ = [
    "PADDING_MODES",
    "PADDING_WORDS",
    "Padding",
    "TargetPadding",
    "check_pad_limits",
    "check_padding",
    "check_padding_mode",
    "min_input_length",
    "output_length",
    "paddings_for_target",
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
    padding = check_padding(padding)
    if not isinstance(padding, str):
        return (padding, padding) if isinstance(padding, int) else (padding[0], padding[1])
    if padding == "same":
        if stride != 1:
            raise ConfigError(
                f"padding='same' is not supported for strided convolutions "
                f"(stride={stride}); use an explicit padding or 'causal'"
            )
        return total // 2, total - total // 2
    return {"valid": (0, 0), "causal": (total, 0), "full": (total, total)}[padding]


#: How a message names the sequence forms of a padding, by where it was written:
#: a Python value, or the JSON of a layer file (which has lists, not tuples).
_PAIR_FORMS: Final = {
    "python": ("(left, right)", "an int, a 1-tuple or a (left, right) pair"),
    "json": ("[left, right]", "an integer or a [left, right] pair"),
}


def check_padding(padding: object, *, notation: str = "python") -> Padding:
    """Return ``padding`` in its one normal form if it is a valid padding.

    The one check of a padding's form and values, wherever it comes from (Python,
    a layer file, :func:`resolve_padding`): an integer ``>= 0``, a word from
    :data:`PADDING_WORDS`, a 1-tuple (becomes its integer) or a ``(left, right)``
    pair (a list becomes a tuple). Whether the word fits the layer ('same' with a
    stride) is :func:`resolve_padding`'s question. ``notation`` (``"python"`` or
    ``"json"``) only says how messages write a pair.

    Raises
    ------
    ConfigError

    Examples
    --------
    >>> check_padding([3]), check_padding([4, 0]), check_padding("causal")
    (3, (4, 0), 'causal')
    >>> check_padding(-1)
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: padding must be >= 0, got -1
    """
    pair, forms = _PAIR_FORMS[notation]
    if isinstance(padding, str):
        if padding not in PADDING_WORDS:
            raise ConfigError(
                f"padding must be an integer, a {pair} pair or one of "
                f"{', '.join(map(repr, PADDING_WORDS))}; got {padding!r}"
            )
        return padding
    if isinstance(padding, (tuple, list)):
        if len(padding) == 1:
            return check_int("padding", padding[0], minimum=0, maximum=MAX_SIZE)
        if len(padding) == 2:
            return (
                check_int("padding[0] (left)", padding[0], minimum=0, maximum=MAX_SIZE),
                check_int("padding[1] (right)", padding[1], minimum=0, maximum=MAX_SIZE),
            )
        raise ConfigError(f"padding must be {forms}, got {padding!r}")
    return check_int("padding", padding, minimum=0, maximum=MAX_SIZE)


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
            left, right = resolve_padding(word, kernel_size, dilation, stride)
            got = output_length(length, kernel_size, stride, (left, right), dilation)
            check_pad_limits(length, left, right, mode)
        except Conv1dError:
            continue
        if got == target:
            words.append(word)
    return TargetPadding(length, target, (lo, hi), symmetric, max_side, tuple(words), None)
