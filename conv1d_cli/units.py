"""Numbers a person or a file gives: integer limits, frequencies, sample rates, dtypes.

Pure Python, like :mod:`conv1d_cli.shapes` above it (``conv1d shape`` must not
load NumPy). Every rule here exists once: how big a hyperparameter or a weight
array may be, what a frequency may look like, which sample rates are usable
(and the looser rule for the rate a layer file records), which dtypes a layer
may have, and when a layer gets another rate than it was designed for (a warning)
or recorded at (an error).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence
from typing import Final

from conv1d_cli.errors import ConfigError, ShapeError

__all__ = [
    "DTYPES",
    "FREQUENCY_FORMS",
    "MAX_ARRAY_BYTES",
    "MAX_PARAMETERS",
    "MAX_SAMPLE_RATE",
    "MAX_SIZE",
    "check_dtype_name",
    "check_int",
    "check_parameter_count",
    "check_sample_rate",
    "check_size",
    "check_stored_rate",
    "implied_input_rate",
    "parse_frequency",
    "rate_mismatches",
    "rate_warnings",
]

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


def _parse_digits(text: str) -> int:
    # int() refuses more than 4300 digits (ValueError); anything past 20 is over
    # MAX_SIZE anyway, so stand in a value just beyond the limit with the right sign.
    if len(text.lstrip("-")) > 20:
        return -1 if text.startswith("-") else MAX_SIZE + 1
    return int(text)


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
        The parameter it was given as (``"cutoff"``): the message's ``parameter``,
        which the CLI shows as its option.

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
    >>> parse_frequency("4m", "cutoff")
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: cutoff: expected a frequency such as 48000, 44.1k, 4kHz, 1.5 kHz, 2M or 1e3 Hz; got '4m'
    """  # noqa: E501
    from decimal import Decimal

    match = _FREQUENCY.fullmatch(str(text).strip())
    if match is None:
        raise ConfigError(
            f"{{parameter}}: expected a frequency such as {FREQUENCY_FORMS}; got {text!r}",
            parameter=name,
        )
    scale = {"": 1, "k": 1000, "K": 1000, "M": 1000000}[match["prefix"]]
    value = Decimal(match["number"]) * scale
    try:
        return float(value)
    except OverflowError:  # pragma: no cover - float(Decimal) gives inf, not an error
        return float("inf")


#: Largest sample rate anything accepts: libsndfile stores the rate as a C ``int``.
MAX_SAMPLE_RATE: Final[int] = 2**31 - 1


def check_sample_rate(name: str, value: object, *, integer: bool = False) -> float:
    """Return ``value`` as a float if it is a usable sample rate in Hz.

    The one rule for every sample rate (options, designs, audio output): a real
    number, finite, > 0 and at most :data:`MAX_SAMPLE_RATE` (what an audio file
    can store). ``integer=True`` also requires a whole number of Hz, as audio
    file formats do; CSV/NPY outputs and designs may use fractional rates. The
    rate a layer file records has a looser rule, :func:`check_stored_rate`.

    Parameters
    ----------
    name : str
        The library keyword the rate was given as (``"sample_rate"``): the error's
        ``parameter``, which the CLI shows as its option. Anything that is not a
        Python identifier (``"x.wav: output sample rate"``) is used as it stands.
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
    >>> check_sample_rate("sample_rate", 48000)
    48000.0
    >>> check_sample_rate("sample_rate", 1e12)
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: sample_rate must be at most 2147483647 Hz, got 1e+12
    """
    if name.isidentifier():
        shown, parameter = "{parameter}", name
    else:
        shown, parameter = name, None

    def refuse(rule: str) -> ConfigError:
        return ConfigError(f"{shown} {rule}", parameter=parameter)

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise refuse(f"must be a positive number of Hz, got {value!r}")
    rate = float(value)
    if rate != rate or rate <= 0:
        raise refuse(f"must be a positive number of Hz, got {rate:g}")
    if rate > MAX_SAMPLE_RATE:
        raise refuse(f"must be at most {MAX_SAMPLE_RATE} Hz, got {rate:g}")
    if integer and not rate.is_integer():
        raise refuse(f"must be a whole number of Hz for audio output, got {rate:g}")
    return rate


def check_stored_rate(value: object) -> float | None:
    """The sample rate a layer file records (or an override of it), or None.

    Deliberately looser than :func:`check_sample_rate`: any positive finite
    number. Its cap is what an audio file can store, and it is checked where a
    rate is written to audio; a layer file saved with any rate must still load
    (its rate is metadata, not used by the arithmetic).

    Examples
    --------
    >>> check_stored_rate(1e12), check_stored_rate(None)
    (1000000000000.0, None)
    >>> check_stored_rate(float("inf"))
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: sample_rate must be a positive number (finite), got inf
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"sample_rate must be a positive number or null, got {value!r}")
    rate = float(value)
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(f"sample_rate must be a positive number (finite), got {value!r}")
    return rate


#: The dtypes a layer's parameters may have (PyTorch's default first).
DTYPES: Final[tuple[str, ...]] = ("float32", "float64")


def check_dtype_name(name: str | None, given: object) -> str:
    """Return ``name`` if it is one of :data:`DTYPES`; ``given`` is what the caller passed.

    The rule behind :func:`conv1d_cli.core.check_dtype`, which turns any dtype-like
    value into its ``name`` first (pure Python here, so ``shapes`` stays NumPy-free).

    Examples
    --------
    >>> check_dtype_name("float64", "f8")
    'float64'
    >>> check_dtype_name(None, "nonsense")
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: dtype must be 'float32' or 'float64', got 'nonsense'
    """
    if name not in DTYPES:
        raise ConfigError(f"dtype must be 'float32' or 'float64', got {given!r}")
    return name


def implied_input_rate(
    design_rates: Sequence[float | None],
    strides: Sequence[int],
    binding: Sequence[bool] | None = None,
) -> tuple[float, int] | None:
    """The input sample rate a chain's rates imply, for an input without one.

    The first layer ``k`` (0-based) whose rate is binding (an impulse response's:
    the rate it was recorded at) is taken to get that rate; without one, the first
    layer that records a design rate. The chain's input is then at that rate times
    the strides of the layers before it (each stride divides the rate). A recorded
    rate wins over an earlier design rate because it is a fact about the layer's
    taps, while a design rate only says what a filter was meant for: an input whose
    rate is unknown is taken at the one rate that can be right for the recording.

    Parameters
    ----------
    design_rates, strides : sequences
        Per layer: the recorded rate (or None) and the stride.
    binding : sequence of bool, optional
        Per layer: whether its rate is binding (default: none is).

    Returns
    -------
    tuple or None
        ``(rate, k)``, or None when no layer records a rate.

    Examples
    --------
    >>> implied_input_rate([None, 8000.0], [2, 1])
    (16000.0, 1)
    >>> implied_input_rate([8000.0, 48000.0], [1, 1], [False, True])
    (48000.0, 1)
    >>> implied_input_rate([None], [1]) is None
    True
    """
    flags = _binding_flags(binding, design_rates)
    for wanted in (True, False):
        factor = 1
        for index, (rate, stride) in enumerate(zip(design_rates, strides, strict=True)):
            if rate is not None and (flags[index] or not wanted):
                return float(rate) * factor, index
            factor *= stride
    return None


def _binding_flags(binding: Sequence[bool] | None, rates: Sequence[float | None]) -> list[bool]:
    """One flag per layer: ``binding`` as a list, or all False when not given."""
    if binding is None:
        return [False] * len(rates)
    if len(binding) != len(rates):
        raise ValueError(f"binding has {len(binding)} flags for {len(rates)} layers")
    return [bool(flag) for flag in binding]


def rate_mismatches(
    design_rates: Sequence[float | None],
    strides: Sequence[int],
    names: Sequence[str],
    input_rate: float | None,
    source: str,
    binding: Sequence[bool] | None = None,
) -> list[str]:
    """Warnings for layers designed for another rate than the one they receive.

    A filter designed for 8 kHz cuts at the wrong frequencies when fed 16 kHz: the
    one rule ``apply`` and ``shape`` use. Rates within a relative 1e-9 are equal
    (a rate may have gone through a division by a stride).

    A layer whose rate is *binding* (``binding[k]``: an impulse response, whose
    rate is the one it was recorded at) is refused instead: its taps are a
    recording's samples, so at another rate every delay and resonance of the room
    or speaker moves, and no later option can put that right. conv1d does not
    resample, so the way out is to resample the signal or the IR first.

    Parameters
    ----------
    design_rates, strides, names : sequences
        Per layer: the recorded rate (or None), the stride, a display name.
    input_rate : float or None
        The rate of the chain's input (None: nothing to compare).
    source : str
        Where the input rate comes from, for the message (a file name).
    binding : sequence of bool, optional
        Per layer: whether its rate is binding (default: none is).

    Returns
    -------
    list of str
        One warning per designed layer at another rate, in chain order.

    Raises
    ------
    ShapeError
        For the first binding layer that gets another rate (exit 1 in the CLI: the
        signal does not fit the layer, as with a wrong channel count), naming the
        layer, both rates and ``source``.

    Examples
    --------
    >>> rate_mismatches([16000.0, 8000.0], [1, 1], ["layer 1", "layer 2"], 16000.0, "x.csv")
    ['layer 2 was designed for 8000 Hz but gets 16000 Hz from x.csv']
    >>> rate_mismatches([48000.0], [1], ["room.npz"], 44100.0, "x.wav", binding=[True])
    ... # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ShapeError: room.npz was recorded at 48000 Hz but gets 44100 Hz from
    x.wav; resample one of them (conv1d does not resample)
    """
    flags = _binding_flags(binding, design_rates)
    found = []
    rate = input_rate
    for design, stride, name, bound in zip(design_rates, strides, names, flags, strict=True):
        if rate is not None and design is not None and abs(rate - design) > 1e-9 * design:
            if bound:
                raise ShapeError(
                    f"{name} was recorded at {design:.10g} Hz but gets {rate:.10g} Hz from "
                    f"{source}; resample one of them (conv1d does not resample)"
                )
            found.append(
                f"{name} was designed for {design:.10g} Hz but gets {rate:.10g} Hz from {source}"
            )
        rate = None if rate is None else rate / stride
    return found


def rate_warnings(
    design_rates: Sequence[float | None],
    strides: Sequence[int],
    names: Sequence[str],
    input_rate: float | None,
    source: str,
    binding: Sequence[bool] | None = None,
) -> tuple[float | None, list[str]]:
    """The rate a chain's input is taken to have, and the warnings it gives: the one rule.

    An input without a rate (a CSV or NPY) gets the one the chain implies
    (:func:`implied_input_rate`: the first binding layer's, else the first
    designed layer's), and the other layers are checked against it exactly as
    they would be for an audio file at that rate (:func:`rate_mismatches`): a
    designed layer at another rate is a warning, a binding one (an impulse
    response, ``binding[k]``) a :class:`~conv1d_cli.errors.ShapeError`.

    Examples
    --------
    >>> rate_warnings([8000.0, 16000.0], [1, 1], ["layer 1", "layer 2"], None, "x.csv")
    ... # doctest: +NORMALIZE_WHITESPACE
    (8000.0, ["layer 2 was designed for 16000 Hz but gets 8000 Hz from x.csv (it has no
    rate; layer 1's design rate stands in)"])
    >>> rate_warnings([8000.0, 16000.0], [1, 1], ["a", "b"], None, "x.csv", [False, True])
    ... # doctest: +NORMALIZE_WHITESPACE
    (16000.0, ["a was designed for 8000 Hz but gets 16000 Hz from x.csv (it has no rate;
    b's recorded rate stands in)"])
    """
    rate, rate_source = input_rate, source
    implied = implied_input_rate(design_rates, strides, binding)
    if rate is None and implied is not None:
        rate, first = implied
        kind = "recorded" if _binding_flags(binding, design_rates)[first] else "design"
        rate_source = f"{source} (it has no rate; {names[first]}'s {kind} rate stands in)"
    return rate, rate_mismatches(design_rates, strides, names, rate, rate_source, binding)
