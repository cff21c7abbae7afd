"""Numbers ``conv1d inspect`` prints: kernel, frequency-response and signal statistics.

- Kernel statistics (:func:`kernel_stats`), frequency responses
  (:func:`frequency_response`, :func:`response_summary`) and overflow-free
  signal statistics (:class:`SignalStats`).
- Filter specifications (:class:`FilterSpec`: band edges, targets, how a layer's
  description records one) and how well a kernel meets one, measured on a dense
  grid (:func:`measure_spec`); a kernel's latency (:func:`latency`).

NumPy only. The kernels themselves come from :mod:`conv1d_cli.filters`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from conv1d_cli.errors import ConfigError
from conv1d_cli.shapes import check_int, check_sample_rate

__all__ = [
    "FilterSpec",
    "SignalStats",
    "latency",
    "measure_spec",
    "frequency_response",
    "kernel_stats",
    "response_summary",
]


def kernel_stats(weight: Any) -> dict[str, np.ndarray]:
    """Per-kernel numbers for ``inspect``: DC gain, L1/L2 norms, peak, symmetry.

    Parameters
    ----------
    weight : array_like
        ``(C_out, C_in/groups, K)``.

    Returns
    -------
    dict
        Arrays of shape ``(C_out, C_in/groups)``: ``dc_gain`` (sum of taps),
        ``l1_norm``, ``l2_norm``, ``peak`` (max ``|w|``), and ``linear_phase``
        (object array of ``'symmetric'``, ``'antisymmetric'`` or ``None``).

    Examples
    --------
    >>> s = kernel_stats(np.array([[[1.0, 2.0, 1.0]], [[1.0, 0.0, -1.0]]]))
    >>> s["dc_gain"].ravel().tolist(), s["linear_phase"].ravel().tolist()
    ([4.0, 0.0], ['symmetric', 'antisymmetric'])
    """
    w = np.asarray(weight, dtype=np.float64)
    peak = np.abs(w).max(axis=-1)
    tol = (
        8
        * np.finfo(
            np.asarray(weight).dtype if np.asarray(weight).dtype.kind == "f" else np.float64
        ).eps
    )
    atol = tol * np.maximum(peak, np.finfo(np.float64).tiny)[..., None]
    flipped = w[..., ::-1]
    with np.errstate(over="ignore", invalid="ignore"):
        symmetric = (np.abs(w - flipped) <= atol).all(axis=-1)
        antisymmetric = (np.abs(w + flipped) <= atol).all(axis=-1) & (peak > 0)
    phase = np.full(w.shape[:-1], None, dtype=object)
    phase[antisymmetric] = "antisymmetric"
    phase[symmetric] = "symmetric"
    # Sums of taps scaled by the peak, like np.linalg.norm: w * w of 1e200 taps is inf
    # and of 1e-200 taps is 0, though the L2 norm itself is finite and nonzero. Only a
    # sum truly past the float64 range (taps near 1e308) is inf.
    scale = np.where(peak > 0, peak, 1.0)
    unit = w / scale[..., None]
    with np.errstate(over="ignore", invalid="ignore"):
        return {
            "dc_gain": scale * unit.sum(axis=-1),
            "l1_norm": scale * np.abs(unit).sum(axis=-1),
            "l2_norm": scale * np.sqrt((unit * unit).sum(axis=-1)),
            "peak": peak,
            "linear_phase": phase,
        }


class SignalStats:
    """Per-channel peak ``|x|``, RMS and mean (DC) of a signal read block by block.

    The sums are kept scaled by the running peak, ``rms = peak *
    sqrt(mean((x / peak)**2))`` and ``dc = peak * mean(x / peak)``, so samples
    near the float64 limit (1e308) give finite statistics instead of an
    overflow to ``inf``. A signal holding NaN or Inf gives NaN/Inf statistics.

    Parameters
    ----------
    channels : int
        ``C`` of every block.

    Examples
    --------
    >>> stats = SignalStats(2)
    >>> stats.update(np.array([[1e308, -1e308], [0.5, 0.5]]))
    >>> stats.update(np.array([[[1e308], [0.5]]]))  # (N, C, n) blocks too
    >>> stats.peak.tolist(), stats.rms().tolist(), stats.dc().tolist()
    ([1e+308, 0.5], [1e+308, 0.5], [3.333333333333333e+307, 0.5])
    """

    def __init__(self, channels: int) -> None:
        self.channels = check_int("channels", channels)
        #: Largest ``|x|`` so far, per channel.
        self.peak = np.zeros(self.channels)
        #: Samples per channel so far (all batch items together).
        self.count = 0
        self._sum = np.zeros(self.channels)  # sum of x / peak
        self._squares = np.zeros(self.channels)  # sum of (x / peak)**2

    def update(self, block: Any) -> None:
        """Add a ``(C, n)`` or ``(N, C, n)`` block."""
        data = np.asarray(block, dtype=np.float64)
        if data.ndim == 3:
            data = np.moveaxis(data, 1, 0).reshape(self.channels, -1)
        if data.ndim != 2 or data.shape[0] != self.channels:
            raise ValueError(
                f"expected a ({self.channels}, n) or (N, {self.channels}, n) block, "
                f"got shape {np.shape(block)}"
            )
        if data.shape[1] == 0:
            return
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            peak = np.maximum(self.peak, np.abs(data).max(axis=-1))
            scale = np.where(peak > 0, peak, 1.0)
            ratio = self.peak / scale  # earlier sums were scaled by the smaller old peak
            scaled = data / scale[:, None]
            self._sum = self._sum * ratio + scaled.sum(axis=-1)
            self._squares = self._squares * ratio * ratio + np.einsum("cl,cl->c", scaled, scaled)
        self.peak = peak
        self.count += data.shape[1]

    def rms(self) -> np.ndarray:
        """Root mean square per channel (0 before any sample)."""
        if not self.count:
            return np.zeros(self.channels)
        with np.errstate(invalid="ignore"):
            return np.asarray(self.peak * np.sqrt(self._squares / self.count))

    def dc(self) -> np.ndarray:
        """Mean per channel (0 before any sample)."""
        if not self.count:
            return np.zeros(self.channels)
        with np.errstate(invalid="ignore"):
            return np.asarray(self.peak * (self._sum / self.count))


def frequency_response(
    weight: Any, *, dilation: int = 1, left: int = 0, points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Frequency response of every kernel of a layer, as a stride-1 system.

    The layer computes ``y[t] = sum_k w[k] x[t + k*dilation - left]``, so its
    response is ``H(f) = exp(-2j*pi*f*left) * sum_k w[k] exp(2j*pi*f*k*dilation)``:
    the phase includes the padding, and an aligned linear-phase filter of odd
    length has zero phase.

    Parameters
    ----------
    weight : array_like
        ``(C_out, C_in/groups, K)``.
    dilation, left : int
        The layer's dilation and resolved left padding.
    points : int, optional
        Frequencies from 0 to Nyquist inclusive; default about 8 per tap of
        the dilated kernel, as ``2**n + 1`` with ``2**11 <= 2**n <= 2**16`` (more
        only for kernels longer than ``2**16``).

    Returns
    -------
    freqs : ndarray
        ``(points,)`` in cycles per sample, 0 to 0.5.
    response : ndarray
        ``(C_out, C_in/groups, points)`` complex.

    Examples
    --------
    >>> f, h = frequency_response(np.array([[[0.5, 0.5]]]))
    >>> f[[0, -1]].tolist(), np.abs(h[0, 0, [0, -1]]).round(12).tolist()
    ([0.0, 0.5], [1.0, 0.0])
    """
    w = np.asarray(weight, dtype=np.float64)
    k = w.shape[-1]
    span = dilation * (k - 1) + 1
    if points is None:
        # 8 bins per tap of the dilated kernel, between 2**11 + 1 and 2**16 + 1 (enough
        # for a plot or a summary) unless the undilated kernel itself is longer.
        exponent = max(11, min(16, math.ceil(math.log2(8 * span))), math.ceil(math.log2(k)))
        points = 2**exponent + 1
    nfft = 2 * (points - 1)
    if nfft < k:
        raise ConfigError(f"points must be at least {k // 2 + 1} for this kernel")
    # Dilation by d maps H(f) to H(d*f): sample the undilated kernel's spectrum at
    # d*i mod nfft instead of transforming a zero-stuffed kernel of d*(K-1)+1 taps,
    # whose cost grows with the dilation (10**6 took seconds and hundreds of MB).
    base = np.fft.fft(w, n=nfft, axis=-1)
    index = (dilation * np.arange(points)) % nfft
    spectrum = np.conj(base[..., index])
    freqs = np.arange(points) / nfft
    return freqs, spectrum * np.exp(-2j * np.pi * freqs * left)


def _db(magnitude: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 20 * np.log10(magnitude)


def response_summary(
    freqs: np.ndarray, response: np.ndarray, sample_rate: float, *, scale: float = 1.0
) -> dict[str, Any]:
    """Summarise one kernel's magnitude response.

    Parameters
    ----------
    freqs : ndarray
        Cycles per sample (from :func:`frequency_response`).
    response : ndarray
        One kernel's complex response.
    sample_rate : float
        Hz; frequencies in the result are in Hz.
    scale : float, optional
        ``response`` is that of the kernel divided by ``scale`` (e.g. its peak, so that
        taps near 1e308 or 1e-300 give a finite, nonzero response); the gains in dB are
        those of the kernel itself.

    Returns
    -------
    dict
        ``dc_db``, ``nyquist_db``, ``peak_db``, ``peak_hz`` (gains in dB re
        unity; ``-inf`` for an exact zero), ``minus3db_hz`` (increasing list of
        frequencies where the gain crosses 3 dB below the peak, linearly
        interpolated), ``stopband_hz`` (list of ``[low, high]`` ranges: the
        parts below -3 dB after each transition band, which ends at the first
        response minimum next to a passband) and ``stopband_db`` (the highest
        gain inside them, i.e. the worst sidelobe; ``None`` if there is none).

    Examples
    --------
    >>> f, h = frequency_response(np.ones((1, 1, 5)) / 5)
    >>> s = response_summary(f, h[0, 0], 1000.0)
    >>> round(s["dc_db"], 6), [round(x) for x in s["minus3db_hz"]], round(s["stopband_db"], 1)
    (0.0, [90], -12.0)
    """
    rate = check_sample_rate("sample_rate", sample_rate)
    mag = np.abs(np.asarray(response))
    db = _db(mag) + 20 * math.log10(scale)
    hz = np.asarray(freqs) * rate
    peak_index = int(np.argmax(mag))
    peak_db = float(db[peak_index])
    threshold = peak_db - 3.0
    result: dict[str, Any] = {
        "dc_db": float(db[0]),
        "nyquist_db": float(db[-1]),
        "peak_db": peak_db,
        "peak_hz": float(hz[peak_index]),
        "minus3db_hz": [],
        "stopband_hz": [],
        "stopband_db": None,
    }
    if not math.isfinite(peak_db):  # an all-zero kernel
        return result
    above = db >= threshold
    edges = np.flatnonzero(above[1:] != above[:-1])  # crossing between i and i+1
    d0, d1 = db[edges], db[edges + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(np.isfinite(d0 - d1) & (d0 != d1), (d0 - threshold) / (d0 - d1), 0.5)
    result["minus3db_hz"] = (hz[edges] + np.clip(frac, 0, 1) * (hz[edges + 1] - hz[edges])).tolist()
    # Runs of bins below the threshold: [start, stop).
    below = ~above
    starts = np.flatnonzero(below & np.concatenate(([True], ~below[:-1])))
    stops = np.flatnonzero(below & np.concatenate((~below[1:], [True]))) + 1
    worst = -math.inf
    n = mag.size
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        seg = mag[a:b]
        lo, hi = 0, b - a
        if a > 0:  # passband on the left: skip the falling transition band
            rising = np.flatnonzero(np.diff(seg) >= 0)
            lo = int(rising[0]) if rising.size else hi
        if b < n:  # passband on the right: skip the rising transition band
            falling = np.flatnonzero(np.diff(seg) <= 0)
            hi = int(falling[-1]) + 2 if falling.size else lo
            hi = min(hi, b - a)
        if lo < hi:
            result["stopband_hz"].append([float(hz[a + lo]), float(hz[a + hi - 1])])
            worst = max(worst, float(db[a + lo : a + hi].max()))
    if result["stopband_hz"]:
        result["stopband_db"] = worst
    return result


# ---- specifications ------------------------------------------------------------------

_NUM: Final = r"([0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)"
_SPEC_TEXT: Final = re.compile(
    rf"\b(lowpass|highpass|bandpass|bandstop) {_NUM}(?: - {_NUM})? Hz\b.*?"
    rf"\bspec: transition {_NUM} Hz, attenuation {_NUM} dB\b"
)


@dataclass(frozen=True)
class FilterSpec:
    """What a band filter must achieve: SoX ``sinc -a A -t T`` / Kaiser's specification.

    The cutoffs are the -6 dB points; each band ends ``transition / 2`` on either side
    of a cutoff. Kaiser's window method gives about the same ripple ``delta`` in the
    passband as in the stopband, so one number sets both targets: stopband gain at
    most ``delta = 10**(-attenuation/20)`` (``attenuation`` dB down) and passband gain
    within ``1 +- delta`` (a passband ripple of ``20*log10(1 + delta)`` dB; 0.00087 dB
    for 80 dB).

    Parameters
    ----------
    kind : {'lowpass', 'highpass', 'bandpass', 'bandstop'}
    cutoffs : tuple of float
        Hz; one, or two increasing ones for ``bandpass``/``bandstop``.
    transition : float
        Width of each transition band in Hz.
    attenuation : float
        Stopband attenuation in dB (positive).

    Examples
    --------
    >>> spec = FilterSpec("lowpass", (4000.0,), 500.0, 80.0)
    >>> spec.bands(48000.0)
    ([(0.0, 3750.0)], [(4250.0, 24000.0)])
    >>> spec.ripple_target
    0.0001
    >>> FilterSpec.from_description(spec.describe(183, 7.857)) == spec
    True
    """

    kind: str
    cutoffs: tuple[float, ...]
    transition: float
    attenuation: float

    @property
    def ripple_target(self) -> float:
        """``delta = 10**(-attenuation/20)``: the largest stopband gain and passband error."""
        return float(10 ** (-self.attenuation / 20))

    def bands(
        self, sample_rate: float
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """``(passbands, stopbands)`` as ``(low, high)`` Hz ranges, 0 to Nyquist."""
        half = self.transition / 2
        nyquist = sample_rate / 2
        lo = self.cutoffs[0]
        if self.kind == "lowpass":
            return [(0.0, lo - half)], [(lo + half, nyquist)]
        if self.kind == "highpass":
            return [(lo + half, nyquist)], [(0.0, lo - half)]
        hi = self.cutoffs[1]
        inner, outer = [(lo + half, hi - half)], [(0.0, lo - half), (hi + half, nyquist)]
        return (inner, outer) if self.kind == "bandpass" else (outer, inner)

    def describe(self, taps: int, beta: float) -> str:
        """How ``conv1d init`` records a design made to this spec in a layer's description."""
        cut = " - ".join(f"{c:.10g}" for c in self.cutoffs)
        return (
            f"{self.kind} {cut} Hz, {taps} taps, kaiser window (beta {beta:.4f}), "
            f"spec: transition {self.transition:.10g} Hz, attenuation {self.attenuation:.10g} dB"
        )

    @classmethod
    def from_description(cls, description: str | None) -> FilterSpec | None:
        """The spec a description made by :meth:`describe` records; ``None`` if none."""
        match = _SPEC_TEXT.search(description or "")
        if match is None:
            return None
        kind, lo, hi, transition, attenuation = match.groups()
        cutoffs = (float(lo),) if hi is None else (float(lo), float(hi))
        return cls(kind, cutoffs, float(transition), float(attenuation))


def _grid_points(span: int) -> int:
    # 32 bins per tap of the (dilated) kernel, at least 2**15: a sidelobe of a K-tap
    # filter is about 2/K wide, so its peak is sampled within a small fraction of a dB.
    # At most 2**21 bins: a huge dilation (H(d*f) has d narrow copies) would otherwise
    # ask for gigabytes; the taps of a spec design are at most 2**16 anyway.
    return 2 ** min(21, max(15, math.ceil(math.log2(32 * span)))) + 1


def measure_spec(
    taps: Any, spec: FilterSpec, sample_rate: float, *, dilation: int = 1
) -> dict[str, Any]:
    """How well one kernel meets ``spec``, measured from its response on a dense grid.

    Parameters
    ----------
    taps : array_like
        One 1-D kernel (convolution taps or correlation weights: the magnitude is the same).
    spec : FilterSpec
    sample_rate : float
        Hz, the rate the spec's frequencies refer to.
    dilation : int
        The layer's dilation (the response of a dilated kernel is ``H(dilation*f)``).

    Returns
    -------
    dict
        ``passband_ripple`` (largest ``| |H| - 1 |`` in the passbands),
        ``passband_ripple_db`` (``20*log10(1 + ripple)``), ``stopband_attenuation_db``
        (``-20*log10`` of the largest ``|H|`` in the stopbands) and ``met`` (both
        within :attr:`FilterSpec.ripple_target`).

    Examples
    --------
    Kaiser's estimate for this spec (``scipy.signal.kaiserord(60, 0.1)``: 74 taps,
    beta 5.65) falls just short when measured:

    >>> from scipy import signal
    >>> spec = FilterSpec("lowpass", (1000.0,), 400.0, 60.0)
    >>> h = signal.firwin(74, 1000, window=("kaiser", 5.65), fs=8000, scale=False)
    >>> m = measure_spec(h, spec, 8000)
    >>> m["met"], round(m["stopband_attenuation_db"], 1), round(m["passband_ripple"], 5)
    (False, 59.8, 0.00097)
    """
    rate = check_sample_rate("sample_rate", sample_rate)
    w = np.asarray(taps, dtype=np.float64).reshape(1, 1, -1)
    span = dilation * (w.shape[-1] - 1) + 1
    freqs, response = frequency_response(w, dilation=dilation, points=_grid_points(span))
    magnitude = np.abs(response[0, 0])
    hz = freqs * rate
    passbands, stopbands = spec.bands(rate)
    # The response is steepest at a band's edges, between grid points: evaluate it there
    # exactly too (a sum over the taps), so a grid bin just inside cannot hide the edge.
    lags = np.arange(w.shape[-1]) * dilation
    edges = {
        edge: float(np.abs(np.sum(w.ravel() * np.exp(-2j * np.pi * edge / rate * lags))))
        for band in passbands + stopbands
        for edge in band
    }
    ripple = max(
        max(_band_max(np.abs(magnitude - 1), hz, band), *(abs(edges[e] - 1) for e in band))
        for band in passbands
    )
    stop_gain = max(
        max(_band_max(magnitude, hz, band), *(edges[e] for e in band)) for band in stopbands
    )
    with np.errstate(divide="ignore"):
        attenuation = float(-20 * np.log10(stop_gain))
    target = spec.ripple_target
    return {
        "passband_ripple": ripple,
        "passband_ripple_db": float(20 * np.log10(1 + ripple)),
        "stopband_attenuation_db": attenuation,
        "met": bool(ripple <= target and stop_gain <= target),
    }


def _band_max(values: np.ndarray, hz: np.ndarray, band: tuple[float, float]) -> float:
    inside = (hz >= band[0]) & (hz <= band[1])
    if not inside.any():  # a band narrower than one bin: its nearest bin
        inside = np.abs(hz - (band[0] + band[1]) / 2) == np.abs(hz - (band[0] + band[1]) / 2).min()
    return float(values[inside].max())


def latency(weight: Any, *, dilation: int = 1, left: int = 0) -> tuple[float, float]:
    """Delay of one kernel as applied: its group delay at DC, in samples.

    The layer computes ``y[t] = sum_k w[k] x[t + k*dilation - left]``: tap ``k`` takes
    the input ``left - k*dilation`` samples back, and the group delay at DC is the
    taps' centre of mass, ``sum_k w[k] (left - k*dilation) / sum_k w[k]``. 0 means in
    step with the input (an aligned linear-phase filter of odd length); a causal
    minimum-phase filter has a small positive delay. Where the DC gain is more than
    20 dB below the kernel's peak gain (a highpass or bandpass has none to speak of),
    the group delay is taken at the peak-gain frequency instead.

    Parameters
    ----------
    weight : array_like
        One 1-D kernel of correlation weights, as the layer holds it.
    dilation, left : int
        The layer's dilation and resolved left padding.

    Returns
    -------
    (samples, frequency)
        The group delay and the frequency (cycles per sample) it was taken at.

    Examples
    --------
    >>> latency([0.25, 0.5, 0.25], left=1)  # aligned, symmetric: in step
    (0.0, 0.0)
    >>> latency([1.0, 0.0, 0.0], left=2)  # causal: the first weight takes x[t - 2]
    (2.0, 0.0)
    """
    w = np.asarray(weight, dtype=np.float64).ravel()
    scale = float(np.abs(w).max()) or 1.0
    unit = w / scale
    lags = left - np.arange(w.size) * dilation
    # Only where the peak lies matters here: the default grid (bounded) is enough.
    freqs, response = frequency_response(unit.reshape(1, 1, -1), dilation=dilation)
    magnitude = np.abs(response[0, 0])
    peak = float(magnitude.max())
    if peak == 0:
        return 0.0, 0.0
    index = 0 if magnitude[0] >= peak / 10 else int(np.argmax(magnitude))
    f = float(freqs[index])
    phasor = np.exp(-2j * np.pi * f * lags)
    value = np.sum(unit * phasor)
    delay = float(np.real(np.sum(unit * lags * phasor) / value))
    return delay + 0.0, f
