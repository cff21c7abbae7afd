"""Kernels for ``conv1d init``: FIR filters by the window method and simple kernels.

- FIR design by the window method (:func:`design_fir`, ``scipy.signal.firwin``)
  and simple kernels (:func:`moving_average`, :func:`gaussian`, :func:`identity`,
  :func:`delay`). All of these return **convolution taps** ``h`` (as SoX, SciPy
  and MATLAB use them); :func:`kernel_layer` turns them (or taps read by
  :mod:`conv1d_cli.io.coefficients`) into a :class:`Conv1d` that reproduces
  ``scipy.signal.convolve(x, h, 'same')`` -- SoX ``fir`` -- sample for sample.

NumPy only at import time; SciPy is imported inside the functions that need it.
What ``conv1d inspect`` prints about a kernel comes from :mod:`conv1d_cli.analysis`.

Alignment of convolution taps
-----------------------------
SoX ``fir`` (and ``scipy.signal.convolve(x, h, 'same')``) outputs
``out[n] = full[n + (K-1)//2]`` with ``full = numpy.convolve(x, h)``, i.e.
``out[n] = sum_j h[j] x[n + (K-1)//2 - j]``. The layer computes the
cross-correlation ``y[t] = sum_k w[k] xp[t + k]`` where ``xp`` has ``left``
zeros in front. With ``w = h[::-1]`` (``w[k] = h[K-1-k]``, so ``j = K-1-k``)
this is ``y[t] = sum_j h[j] x[t + K-1-j - left]``; equal to SoX's output iff
``K - 1 - left = (K-1)//2``, i.e. ``left = K//2`` and (for the same output
length) ``right = (K-1)//2``. In general a tap index ``origin`` that should land
on time zero needs ``left = dilation*(K-1-origin)``, ``right = dilation*origin``.

For a symmetric (linear-phase) kernel of odd length this is zero delay. With
an even length the centre lies between two taps: the output is then late by
half a sample (as with SoX and SciPy); no integer padding can do better.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import numpy as np

from conv1d_cli.analysis import FilterSpec, measure_spec
from conv1d_cli.errors import ConfigError
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import Padding, check_int, check_sample_rate

__all__ = [
    "FIR_KINDS",
    "MAX_ATTENUATION",
    "MAX_SPEC_TAPS",
    "MAX_TAPS",
    "SpecDesign",
    "aligned_padding",
    "delay",
    "design_fir",
    "design_spec",
    "gaussian",
    "identity",
    "kernel_layer",
    "minimum_phase",
    "moving_average",
    "parse_window",
]

#: Window-method designs and how many cutoffs each takes.
FIR_KINDS: Final[dict[str, int]] = {"lowpass": 1, "highpass": 1, "bandpass": 2, "bandstop": 2}


#: Longest kernel the designers make (a typo like sigma=1e9 must not eat the RAM).
MAX_TAPS: Final = 2**24


def _check_taps(taps: Any, name: str = "taps") -> int:
    return check_int(name, taps, maximum=MAX_TAPS)


def parse_window(text: str) -> str | tuple[Any, ...]:
    """Turn ``"hamming"`` or ``"kaiser,8.6"`` into what ``scipy.signal.get_window`` takes.

    Examples
    --------
    >>> parse_window("hann"), parse_window("kaiser,8.6")
    ('hann', ('kaiser', 8.6))
    """
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) == 1:
        return parts[0]
    args: list[Any] = [parts[0]]
    for p in parts[1:]:
        try:
            args.append(float(p))
        except ValueError:
            raise ConfigError(
                f"window parameters must be numbers (e.g. 'kaiser,8.6'), got {text!r}"
            ) from None
    return tuple(args)


def design_fir(
    kind: str,
    cutoff: Any,
    sample_rate: float,
    taps: int,
    window: str | tuple[Any, ...] = "hamming",
) -> np.ndarray:
    """Design a linear-phase FIR filter by the window method (``scipy.signal.firwin``).

    Parameters
    ----------
    kind : {'lowpass', 'highpass', 'bandpass', 'bandstop'}
    cutoff : float or sequence of float
        Cutoff frequency in Hz (one for low/highpass, two increasing ones for
        bandpass/bandstop), each strictly between 0 and ``sample_rate / 2``.
    sample_rate : float
        Sampling rate in Hz.
    taps : int
        Number of taps. Must be odd for ``highpass`` and ``bandstop``: an
        even-length symmetric (type II) FIR always has a zero at Nyquist.
    window : str or tuple
        Any ``scipy.signal.get_window`` spec, e.g. ``'hamming'`` (default),
        ``'blackman'``, ``('kaiser', 8.6)``.

    Returns
    -------
    ndarray
        ``(taps,)`` float64 convolution taps, scaled to unit gain at the
        passband centre (``firwin(scale=True)``).

    Raises
    ------
    ConfigError
        For an unknown kind or window, wrong number or order of cutoffs,
        cutoffs outside ``(0, Nyquist)``, or an even tap count where it cannot work.

    Examples
    --------
    >>> h = design_fir("lowpass", 1000, 8000, 31)
    >>> h.shape, bool(np.allclose(h, h[::-1])), round(float(h.sum()), 6)
    ((31,), True, 1.0)
    """
    _check_kind(kind)
    rate = check_sample_rate("sample_rate", sample_rate)
    taps = _check_taps(taps)
    cutoffs = _check_cutoffs(kind, cutoff, rate)
    if kind in ("highpass", "bandstop") and taps % 2 == 0:
        raise ConfigError(
            f"a {kind} needs an odd number of taps, got {taps}: an even-length "
            f"linear-phase (type II) FIR always has a zero at the Nyquist frequency, so it "
            f"cannot pass high frequencies; use {{parameter}} {taps + 1}",
            parameter="taps",
        )
    from scipy import signal

    _check_window(window, taps)
    edges = cutoffs if len(cutoffs) == 2 else cutoffs[0]
    h = signal.firwin(taps, edges, window=window, pass_zero=kind, fs=rate)
    return np.asarray(h, dtype=np.float64)


def _check_kind(kind: str) -> None:
    if kind not in FIR_KINDS:
        raise ConfigError(f"design must be one of {', '.join(FIR_KINDS)}, got {kind!r}")


def _check_cutoffs(kind: str, cutoff: Any, rate: float) -> list[float]:
    cutoffs = [float(c) for c in np.atleast_1d(np.asarray(cutoff, dtype=float))]
    need = FIR_KINDS[kind]
    if len(cutoffs) != need:
        raise ConfigError(
            f"a {kind} design needs {'one cutoff' if need == 1 else 'two cutoffs (low, high)'}"
            f" in Hz, got {len(cutoffs)}: {cutoffs}"
        )
    nyquist = rate / 2
    for c in cutoffs:
        if not (0 < c < nyquist):
            raise ConfigError(
                f"cutoff {c:g} Hz must lie strictly between 0 and the Nyquist frequency "
                f"{nyquist:g} Hz (sample rate {rate:g} Hz)"
            )
    if need == 2 and not cutoffs[0] < cutoffs[1]:
        raise ConfigError(
            f"{kind} cutoffs must be increasing (low, high), got {cutoffs[0]:g} Hz "
            f"then {cutoffs[1]:g} Hz"
        )
    return cutoffs


def _check_window(window: Any, taps: int) -> None:
    from scipy import signal

    try:
        signal.get_window(window, taps)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"window {window!r} is not usable: {e} (try hamming, hann, blackman, "
            f"boxcar or kaiser,BETA)"
        ) from e


class SpecDesign(NamedTuple):
    """A filter :func:`design_spec` made: taps, window and what was measured."""

    #: Convolution taps, float64, linear phase.
    taps: np.ndarray
    #: Kaiser window parameter used.
    beta: float
    #: Tap count Kaiser's formula (``scipy.signal.kaiserord``) estimated.
    kaiser_taps: int
    #: The specification met.
    spec: FilterSpec
    #: :func:`~conv1d_cli.analysis.measure_spec` of ``taps``.
    measured: dict[str, Any]

    @property
    def description(self) -> str:
        """What ``conv1d init`` stores: :meth:`FilterSpec.describe` of this design."""
        return self.spec.describe(self.taps.size, self.beta)


def design_spec(
    kind: str, cutoff: Any, sample_rate: float, *, transition: float, attenuation: float
) -> SpecDesign:
    """Design a Kaiser-window FIR that meets a specification, as measured.

    Kaiser's formulas (``scipy.signal.kaiserord``) give a tap count and ``beta``
    that miss the spec by up to a few dB for about half of all specs. So the
    response of each candidate is measured on a dense grid
    (:func:`~conv1d_cli.analysis.measure_spec`) and, while it misses, taps are added
    (doubling the step, then bisecting back to the fewest that work), each count
    with the ``beta`` (searched between 0.85 and 1.3 times Kaiser's) that meets
    the spec, if any. The result has at least Kaiser's tap count and
    typically a few more.

    Parameters
    ----------
    kind : {'lowpass', 'highpass', 'bandpass', 'bandstop'}
    cutoff : float or sequence of float
        The -6 dB point(s) in Hz, as for :func:`design_fir`.
    sample_rate : float
        Hz.
    transition : float
        Width of each transition band in Hz: the bands end ``transition / 2``
        either side of each cutoff.
    attenuation : float
        Stopband attenuation in dB, at most :data:`MAX_ATTENUATION`; the passband
        gain stays within ``1 +- 10**(-attenuation/20)`` (see :class:`FilterSpec`).

    Returns
    -------
    SpecDesign
        Odd-length taps for ``highpass``/``bandstop`` (type I); any length otherwise.
        Not scaled (``firwin(scale=False)``): the passband gain is centred on 1.

    Raises
    ------
    ConfigError
        For the errors of :func:`design_fir`, a transition band that does not fit
        between 0, the cutoffs and Nyquist, an attenuation out of range, or a spec
        that needs more than :data:`MAX_SPEC_TAPS` taps (naming how many).

    Examples
    --------
    >>> d = design_spec("lowpass", 1000, 8000, transition=400, attenuation=60)
    >>> d.kaiser_taps, d.taps.size, d.measured["met"], round(d.beta, 2)
    (74, 74, True, 5.69)
    """
    _check_kind(kind)
    rate = check_sample_rate("sample_rate", sample_rate)
    cutoffs = _check_cutoffs(kind, cutoff, rate)
    spec = FilterSpec(
        kind,
        tuple(cutoffs),
        _check_transition(transition, cutoffs, rate),
        _check_attenuation(attenuation),
    )
    from scipy import signal

    kaiser_taps, kaiser_beta = signal.kaiserord(spec.attenuation, spec.transition / (rate / 2))
    kaiser_taps = int(kaiser_taps)
    odd = kind in ("highpass", "bandstop")
    step = 2 if odd else 1
    first = kaiser_taps + (1 if odd and kaiser_taps % 2 == 0 else 0)

    def attempt(taps: int) -> SpecDesign | None:
        if taps > MAX_SPEC_TAPS:
            need = (
                f"about {kaiser_taps} taps (Kaiser's estimate)"
                if kaiser_taps > MAX_SPEC_TAPS
                else f"more than {MAX_SPEC_TAPS} taps (Kaiser's estimate, {kaiser_taps}, "
                "misses it when measured)"
            )
            raise ConfigError(
                f"this spec needs {need}; at most {MAX_SPEC_TAPS} (2**16) are designed",
                parameter="transition",
                hint="widen the transition band or ask for less attenuation",
            )
        found = _best_beta(spec, rate, taps, float(kaiser_beta))
        return (
            None if found is None else SpecDesign(found[0], found[1], kaiser_taps, spec, found[2])
        )

    return _fewest_taps(attempt, first, step, _largest(odd))


def _fewest_taps(
    attempt: Callable[[int], SpecDesign | None], first: int, step: int, largest: int
) -> SpecDesign:
    """The design of the fewest taps from ``first`` on (in ``step``s) that meets the spec.

    Gallop: first, + 1 step, + 2, + 4, ... (from about 0.5% of the count for long
    filters, whose every measurement is costly), then bisect back between the last
    count that missed and the first that met. ``attempt`` raises past the tap limit.
    """
    made = attempt(first)
    if made is not None:
        return made
    missed, jump, good = first, max(1, first // (200 * step)), first
    while made is None:
        good = min(missed + jump * step, largest)
        if good <= missed:
            attempt(MAX_SPEC_TAPS + 1)  # raises: even the largest count missed
        made = attempt(good)
        if made is None:
            missed, jump = good, jump * 2
    while good - missed > step:
        middle = missed + (good - missed) // (2 * step) * step
        trial = attempt(middle)
        if trial is None:
            missed = middle
        else:
            good, made = middle, trial
    return made


#: Most taps :func:`design_spec` makes (a spec needing more is refused, naming the count).
MAX_SPEC_TAPS: Final = 2**16
#: Largest stopband attenuation a spec may ask for (float64 resolves about 300 dB).
MAX_ATTENUATION: Final = 200.0


def _largest(odd: bool) -> int:
    return MAX_SPEC_TAPS - 1 if odd and MAX_SPEC_TAPS % 2 == 0 else MAX_SPEC_TAPS


def _check_transition(transition: Any, cutoffs: list[float], rate: float) -> float:
    if isinstance(transition, bool) or not isinstance(transition, (int, float, np.number)):
        raise ConfigError(
            f"{{parameter}} must be a frequency in Hz, got {transition!r}", parameter="transition"
        )
    width = float(transition)
    if not (math.isfinite(width) and width > 0):
        raise ConfigError(
            f"{{parameter}} must be a positive number of Hz, got {width:g}", parameter="transition"
        )
    half, nyquist = width / 2, rate / 2
    edges = [e for c in cutoffs for e in (c - half, c + half)]
    if (
        edges[0] <= 0
        or edges[-1] >= nyquist
        or any(a >= b for a, b in zip(edges[1:-1:2], edges[2::2], strict=True))
    ):
        shown = ", ".join(f"{c - half:g}-{c + half:g} Hz" for c in cutoffs)
        raise ConfigError(
            f"{{parameter}} {width:g} Hz is too wide for cutoff(s) "
            f"{', '.join(f'{c:g}' for c in cutoffs)} Hz: the transition band(s) {shown} must "
            f"lie strictly between 0 and the Nyquist frequency {nyquist:g} Hz without "
            "overlapping",
            parameter="transition",
        )
    return width


def _check_attenuation(attenuation: Any) -> float:
    if isinstance(attenuation, bool) or not isinstance(attenuation, (int, float, np.number)):
        raise ConfigError(
            f"{{parameter}} must be a number of dB, got {attenuation!r}", parameter="attenuation"
        )
    value = float(attenuation)
    if not (math.isfinite(value) and 0 < value <= MAX_ATTENUATION):
        raise ConfigError(
            f"{{parameter}} must be more than 0 and at most {MAX_ATTENUATION:g} dB, got {value:g}",
            parameter="attenuation",
        )
    return value


def _best_beta(
    spec: FilterSpec, rate: float, taps: int, beta: float
) -> tuple[np.ndarray, float, dict[str, Any]] | None:
    """Taps of ``taps`` length meeting ``spec`` with some Kaiser beta near ``beta``, or None.

    Kaiser's beta first; then a golden-section search over [0.85, 1.3] x beta for the
    beta with the largest margin (a larger beta lowers the sidelobes but widens the
    transition band), stopping at the first one that meets the spec.
    """
    from scipy import signal

    edges = list(spec.cutoffs) if len(spec.cutoffs) == 2 else spec.cutoffs[0]

    def margin(b: float) -> tuple[float, np.ndarray, dict[str, Any]]:
        h = np.asarray(
            signal.firwin(
                taps, edges, window=("kaiser", b), pass_zero=spec.kind, fs=rate, scale=False
            ),
            dtype=np.float64,
        )
        m = measure_spec(h, spec, rate)
        target = spec.attenuation
        worst = min(
            m["stopband_attenuation_db"] - target,
            -20 * math.log10(max(m["passband_ripple"], 1e-300)) - target,
        )
        return worst, h, m

    first = margin(beta)
    if first[0] >= 0:
        return first[1], beta, first[2]
    ratio = (math.sqrt(5) - 1) / 2
    lo, hi = 0.85 * beta, 1.3 * beta
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = margin(x1), margin(x2)
    for _ in range(10):
        for x, f in ((x1, f1), (x2, f2)):
            if f[0] >= 0:
                return f[1], x, f[2]
        if f1[0] > f2[0]:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = margin(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = margin(x2)
    return None


def minimum_phase(taps: Any) -> np.ndarray:
    """The minimum-phase filter with the same magnitude response as ``taps``.

    ``scipy.signal.minimum_phase(h, method='homomorphic', half=False)`` (SciPy >=
    1.14; its default ``half=True`` would return the *square root* of the
    magnitude). The homomorphic method works on odd lengths, so an even-length
    kernel gets one zero tap appended first (the magnitude is unchanged). Apply
    the result with causal padding (``kernel_layer(h, origin=0)``): its energy
    comes first, so the delay is small (see :func:`conv1d_cli.analysis.latency`).

    Examples
    --------
    >>> h = design_fir("lowpass", 1000, 8000, 31)
    >>> m = minimum_phase(h)
    >>> H, M = np.abs(np.fft.rfft(h, 512)), np.abs(np.fft.rfft(m, 512))
    >>> m.size, bool(np.abs(M - H).max() < 1e-3), bool(np.argmax(np.abs(m)) < 8)
    (31, True, True)
    """
    h = np.asarray(taps)
    if h.ndim != 1 or h.size == 0 or h.dtype.kind not in "iuf":
        raise ConfigError(f"a kernel must be a non-empty 1-D real array, got shape {h.shape}")
    h = h.astype(np.float64)
    if not np.isfinite(h).all():
        raise ConfigError("kernel taps must be finite (no NaN or Inf)")
    if h.size == 1 or not h.any():
        return h.copy()
    if h.size % 2 == 0:
        h = np.append(h, 0.0)
    from scipy import signal

    return np.asarray(signal.minimum_phase(h, method="homomorphic", half=False), np.float64)


def moving_average(taps: int) -> np.ndarray:
    """``taps`` equal taps summing to one (a boxcar smoother).

    Examples
    --------
    >>> moving_average(4)
    array([0.25, 0.25, 0.25, 0.25])
    """
    taps = _check_taps(taps)
    return np.full(taps, 1.0 / taps)


def gaussian(sigma: float, taps: int | None = None) -> np.ndarray:
    """A sampled Gaussian of standard deviation ``sigma`` samples, summing to one.

    Parameters
    ----------
    sigma : float
        Width (standard deviation) in samples, > 0.
    taps : int, optional
        Kernel length; default ``2*ceil(4*sigma) + 1`` (covers +-4 sigma).

    Examples
    --------
    >>> h = gaussian(1.0)
    >>> h.shape, round(float(h.sum()), 12), int(np.argmax(h))
    ((9,), 1.0, 4)
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.number)):
        raise ConfigError(f"sigma must be a positive number of samples, got {sigma!r}")
    if not math.isfinite(sigma) or sigma <= 0:
        raise ConfigError(f"sigma must be a positive number of samples, got {sigma!r}")
    if taps is None:
        # Checked as a float first: 4 * 1e308 is inf, which math.ceil cannot take.
        width = 2 * 4 * float(sigma) + 1
        if width > MAX_TAPS:
            raise ConfigError(
                f"sigma {sigma:g} needs a kernel of about {width:.3g} taps; at most "
                f"{MAX_TAPS} (2**{MAX_TAPS.bit_length() - 1}) are made (give a smaller "
                "{parameter})",
                parameter="sigma",
            )
        taps = _check_taps(2 * math.ceil(4 * sigma) + 1, "taps (2*ceil(4*sigma)+1)")
    taps = _check_taps(taps)
    n = np.arange(taps) - (taps - 1) / 2
    h = np.exp(-0.5 * (n / sigma) ** 2)
    return h / h.sum()


def identity(taps: int = 1) -> np.ndarray:
    """A unit impulse at the centre tap ``(taps-1)//2``: with aligned padding, output = input.

    Examples
    --------
    >>> identity(4)
    array([0., 1., 0., 0.])
    """
    taps = _check_taps(taps)
    h = np.zeros(taps)
    h[(taps - 1) // 2] = 1.0
    return h


def delay(samples: int) -> tuple[np.ndarray, int]:
    """Taps and origin of a pure delay by ``samples`` (negative: an advance).

    Returns ``(h, origin)`` for :func:`kernel_layer`: ``|samples| + 1`` taps;
    the output is ``x[n - samples]`` (zeros shifted in), same length.

    Examples
    --------
    >>> delay(2), delay(-1)
    ((array([0., 0., 1.]), 0), (array([1., 0.]), 1))
    """
    samples = check_int("delay", samples, minimum=-(2**62))
    _check_taps(abs(samples) + 1, "|delay| + 1 taps")
    h = np.zeros(abs(samples) + 1)
    if samples >= 0:
        h[samples] = 1.0
        return h, 0
    h[0] = 1.0
    return h, -samples


def aligned_padding(
    kernel_size: int, dilation: int = 1, origin: int | None = None
) -> tuple[int, int]:
    """``(left, right)`` padding that puts convolution tap ``origin`` at time zero.

    ``origin`` defaults to ``(K-1)//2``, SoX's and SciPy's ``'same'`` choice:
    ``(K//2, (K-1)//2)`` for ``dilation=1``.

    Examples
    --------
    >>> aligned_padding(5), aligned_padding(4), aligned_padding(4, dilation=3)
    ((2, 2), (2, 1), (6, 3))
    """
    kernel_size = _check_taps(kernel_size)
    if origin is None:
        origin = (kernel_size - 1) // 2
    return dilation * (kernel_size - 1 - origin), dilation * origin


def kernel_layer(
    taps: Any,
    *,
    channels: int = 1,
    correlation: bool = False,
    origin: int | None = None,
    padding: Padding | None = None,
    stride: int = 1,
    dilation: int = 1,
    padding_mode: str = "zeros",
    bias: bool = False,
    dtype: Any = "float64",
    sample_rate: float | None = None,
    description: str = "",
) -> Conv1d:
    """A depthwise layer applying one 1-D kernel to each of ``channels`` channels.

    Parameters
    ----------
    taps : array_like
        1-D kernel. Convolution taps (flipped into the layer's correlation
        weights) unless ``correlation`` is true.
    channels : int
        Channels filtered independently (``groups = channels``, weight
        ``(channels, 1, K)``).
    correlation : bool
        Keep ``taps`` as PyTorch cross-correlation weights (no flip).
    origin : int, optional
        Convolution tap that lands on time zero; default ``(K-1)//2``.
    padding : optional
        Explicit padding; default: :func:`aligned_padding` for convolution
        taps, and for correlation weights PyTorch's ``'same'`` split
        (``(T//2, T - T//2)``, ``T = dilation*(K-1)``).
    stride, dilation, padding_mode, bias, dtype, sample_rate, description
        As for :class:`Conv1d`; a bias is all zeros.

    Examples
    --------
    >>> h = np.array([1.0, 2.0, 3.0, 4.0])
    >>> layer = kernel_layer(h)
    >>> x = np.array([[1.0, 0.0, -2.0, 5.0, 3.0]])
    >>> bool(np.allclose(layer(x)[0], np.convolve(x[0], h)[1:6]))  # (K-1)//2 = 1
    True
    """
    h = np.asarray(taps)
    if h.ndim != 1 or h.size == 0 or h.dtype.kind not in "iuf":
        raise ConfigError(f"a kernel must be a non-empty 1-D real array, got shape {h.shape}")
    h = h.astype(np.float64)
    if not np.isfinite(h).all():
        raise ConfigError("kernel taps must be finite (no NaN or Inf)")
    channels = check_int("channels", channels)
    dilation = check_int("dilation", dilation)
    k = h.size
    weight_row = h if correlation else h[::-1]
    if padding is None:
        if correlation and origin is None:
            total = dilation * (k - 1)
            padding = (total // 2, total - total // 2)
        else:
            if correlation:
                origin = k - 1 - origin  # type: ignore[operator]
            padding = aligned_padding(k, dilation, origin)
    weight = np.broadcast_to(weight_row, (channels, 1, k)).astype(dtype)
    layer = Conv1d.from_weights(
        weight,
        np.zeros(channels, weight.dtype) if bias else None,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=channels,
        padding_mode=padding_mode,
    )
    layer.sample_rate = (
        None if sample_rate is None else check_sample_rate("sample_rate", sample_rate)
    )
    layer.description = description
    return layer
