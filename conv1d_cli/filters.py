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
from typing import Any, Final

import numpy as np

from conv1d_cli.errors import ConfigError
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import Padding, check_int, check_sample_rate

__all__ = [
    "FIR_KINDS",
    "MAX_TAPS",
    "aligned_padding",
    "delay",
    "design_fir",
    "gaussian",
    "identity",
    "kernel_layer",
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
