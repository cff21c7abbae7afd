"""Numbers ``conv1d inspect`` prints: kernel, frequency-response and signal statistics.

- Kernel statistics (:func:`kernel_stats`), frequency responses
  (:func:`frequency_response`, :func:`response_summary`) and overflow-free
  signal statistics (:class:`SignalStats`).

NumPy only. The kernels themselves come from :mod:`conv1d_cli.filters`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from conv1d_cli.errors import ConfigError
from conv1d_cli.shapes import check_int, check_sample_rate

__all__ = [
    "SignalStats",
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
