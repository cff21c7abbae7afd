"""Streaming summaries of a signal for pictures: a min/max envelope and a Welch spectrum.

Both are accumulated block by block (:class:`Envelope`, :class:`WelchSpectrum`), so a
signal of any length is summarised in memory bounded by the block size and the
summary size, never by the signal's length. :func:`signal_overview` runs both over
one pass of a :func:`~conv1d_cli.io.inputs.open_reader`. NumPy only at import time;
SciPy (for the window) is imported inside :class:`WelchSpectrum`. Nothing here
imports matplotlib: :mod:`conv1d_cli.plots` draws what this module computes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from conv1d_cli.errors import ConfigError
from conv1d_cli.io.base import READ_FRAMES
from conv1d_cli.io.inputs import open_reader
from conv1d_cli.shapes import check_int

if TYPE_CHECKING:
    from conv1d_cli.io.formats import SignalInfo

__all__ = [
    "COLUMNS",
    "Envelope",
    "OverviewBuilder",
    "SignalOverview",
    "WelchSpectrum",
    "segment_length",
    "signal_overview",
]

#: Envelope bins kept (between this and twice this): about one per pixel column of a
#: 10-inch figure at 100 dpi, so the drawn envelope is as detailed as the image.
COLUMNS: Final = 1000
#: Longest Welch segment: 4096 samples resolve 11.7 Hz at 48 kHz, fine for a picture.
MAX_SEGMENT: Final = 4096


def _as_3d(block: Any) -> np.ndarray:
    """A reader's block as ``(N, C, n)``: a plain ``(C, n)`` block is one item."""
    arr = np.asarray(block, dtype=np.float64)
    return arr[None] if arr.ndim == 2 else arr


class Envelope:
    """Minimum and maximum of each channel over consecutive bins of samples, streaming.

    Bins start one sample wide (or ``frames // (2 * columns)`` wide when the length is
    known). Whenever ``2 * columns`` bins are full, neighbours are merged pairwise and
    the bin width doubles, so at most ``2 * columns`` bins are ever held however long
    the signal is, and at the end there are at least ``columns`` (unless the signal
    is shorter than that): at least one per pixel column of the picture.

    Parameters
    ----------
    channels : int
        ``C``.
    columns : int
        Target number of bins (see above).
    frames : int, optional
        The signal's length if known; only sets the starting bin width.

    Examples
    --------
    >>> env = Envelope(1, columns=2)
    >>> for block in np.array_split(np.arange(10.0)[None], 3, axis=1):
    ...     env.update(block)
    >>> lo, hi, width = env.result()
    >>> lo.tolist(), hi.tolist(), width
    ([[0.0, 4.0, 8.0]], [[3.0, 7.0, 9.0]], 4)
    """

    def __init__(self, channels: int, *, columns: int = COLUMNS, frames: int | None = None):
        self.channels = check_int("channels", channels, minimum=1)
        self.columns = check_int("columns", columns, minimum=1)
        self.width = max(1, (frames or 0) // (2 * self.columns))
        self._lo: list[np.ndarray] = []  # full bins, each (C, k) for one update
        self._hi: list[np.ndarray] = []
        self._bins = 0
        # The bin being filled, kept as its min/max and sample count.
        self._part_lo = np.full(self.channels, np.inf)
        self._part_hi = np.full(self.channels, -np.inf)
        self._part_n = 0
        self.frames = 0

    def update(self, block: Any) -> None:
        """Add the next ``(C, n)`` (or batched ``(N, C, n)``) samples."""
        arr = _as_3d(block)
        lo_all, hi_all = arr.min(axis=0), arr.max(axis=0)  # over batch items: (C, n)
        self.frames += arr.shape[-1]
        start = 0
        n = lo_all.shape[-1]
        if self._part_n:
            take = min(self.width - self._part_n, n)
            self._absorb(lo_all[:, :take], hi_all[:, :take], take)
            start = take
            if self._part_n == self.width:
                self._push(self._part_lo[:, None], self._part_hi[:, None])
                self._reset_part()
        full = (n - start) // self.width
        if full:
            stop = start + full * self.width
            shape = (self.channels, full, self.width)
            self._push(
                lo_all[:, start:stop].reshape(shape).min(axis=-1),
                hi_all[:, start:stop].reshape(shape).max(axis=-1),
            )
            start = stop
        if start < n:
            self._absorb(lo_all[:, start:], hi_all[:, start:], n - start)

    def result(self) -> tuple[np.ndarray, np.ndarray, int]:
        """``(lo, hi, width)``: ``(C, bins)`` minima and maxima, and samples per bin.

        Bin ``i`` covers samples ``i*width`` to ``(i+1)*width - 1``; the last one may
        be shorter.
        """
        lo = self._lo + ([self._part_lo[:, None]] if self._part_n else [])
        hi = self._hi + ([self._part_hi[:, None]] if self._part_n else [])
        if not lo:
            empty = np.zeros((self.channels, 0))
            return empty, empty.copy(), self.width
        return np.concatenate(lo, axis=1), np.concatenate(hi, axis=1), self.width

    def _absorb(self, lo: np.ndarray, hi: np.ndarray, count: int) -> None:
        if count:
            self._part_lo = np.minimum(self._part_lo, lo.min(axis=-1))
            self._part_hi = np.maximum(self._part_hi, hi.max(axis=-1))
            self._part_n += count

    def _reset_part(self) -> None:
        self._part_lo = np.full(self.channels, np.inf)
        self._part_hi = np.full(self.channels, -np.inf)
        self._part_n = 0

    def _push(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self._lo.append(lo)
        self._hi.append(hi)
        self._bins += lo.shape[1]
        while self._bins >= 2 * self.columns:
            self._halve()

    def _halve(self) -> None:
        lo = np.concatenate(self._lo, axis=1)
        hi = np.concatenate(self._hi, axis=1)
        if lo.shape[1] % 2:
            # The odd last bin becomes the start of the (now twice as wide) partial bin.
            # The partial bin holds the samples after it, so the order is kept.
            self._part_n += self.width
            self._part_lo = np.minimum(self._part_lo, lo[:, -1])
            self._part_hi = np.maximum(self._part_hi, hi[:, -1])
            lo, hi = lo[:, :-1], hi[:, :-1]
        pairs = (self.channels, lo.shape[1] // 2, 2)
        self._lo = [lo.reshape(pairs).min(axis=-1)]
        self._hi = [hi.reshape(pairs).max(axis=-1)]
        self._bins = self._lo[0].shape[1]
        self.width *= 2


def segment_length(frames: int | None) -> int:
    """Welch segment length for a signal of ``frames`` samples (``None``: unknown).

    A power of two, at most :data:`MAX_SEGMENT` and at most a quarter of the signal
    (so that several segments are averaged; 50 % overlap gives about 7), at least 16.

    Examples
    --------
    >>> segment_length(None), segment_length(48000), segment_length(1000), segment_length(10)
    (4096, 4096, 128, 16)
    """
    if frames is None:
        return MAX_SEGMENT
    quarter = max(frames // 4, 16)
    return int(min(MAX_SEGMENT, 1 << (quarter.bit_length() - 1)))


class WelchSpectrum:
    """Welch's power spectral density per channel, accumulated block by block.

    The same estimate as ``scipy.signal.welch(x, fs, nperseg=nperseg)`` of the
    whole signal (Hann window, 50 % overlap, each segment's mean removed, one-sided
    density): segments are cut from the stream as they complete and their
    periodograms summed, keeping only the samples of the next unfinished segment
    (fewer than ``nperseg``). Batched ``(N, C, n)`` blocks average the items too.
    A signal shorter than one segment gets one segment of its own length, as
    ``scipy.signal.welch`` does.

    Parameters
    ----------
    channels : int
        ``C``.
    sample_rate : float, optional
        Hz; without it frequencies are in cycles per sample.
    nperseg : int
        Segment length (see :func:`segment_length`).

    Examples
    --------
    >>> from scipy.signal import welch
    >>> x = np.random.default_rng(0).standard_normal((2, 5000))
    >>> acc = WelchSpectrum(2, sample_rate=100.0, nperseg=256)
    >>> for block in np.array_split(x, 7, axis=1):
    ...     acc.update(block)
    >>> f, p = acc.result()
    >>> f0, p0 = welch(x, 100.0, nperseg=256)
    >>> bool(np.allclose(f, f0) and np.allclose(p, p0))
    True
    """

    def __init__(self, channels: int, *, sample_rate: float | None = None, nperseg: int = 4096):
        self.channels = check_int("channels", channels, minimum=1)
        self.nperseg = check_int("nperseg", nperseg, minimum=2)
        self.sample_rate = sample_rate
        self.step = self.nperseg - self.nperseg // 2
        self._window = self._hann(self.nperseg)
        self._sum = np.zeros((self.channels, self.nperseg // 2 + 1))
        self._count = 0  # periodograms summed (segments x batch items)
        self._carry: np.ndarray | None = None  # (N, C, < nperseg + step) samples not yet used

    @staticmethod
    def _hann(n: int) -> np.ndarray:
        from scipy.signal import get_window

        return np.asarray(get_window("hann", n), dtype=np.float64)

    def update(self, block: Any) -> None:
        """Add the next ``(C, n)`` (or batched ``(N, C, n)``) samples."""
        arr = _as_3d(block)
        buf = arr if self._carry is None else np.concatenate([self._carry, arr], axis=-1)
        segments = (buf.shape[-1] - self.nperseg) // self.step + 1
        if segments > 0:
            view = np.lib.stride_tricks.sliding_window_view(buf, self.nperseg, axis=-1)
            self._add(view[..., : segments * self.step : self.step, :], self._window)
            buf = buf[..., segments * self.step :]
        # A copy: a view would keep the whole block alive.
        self._carry = buf.copy()

    def _add(self, seg: np.ndarray, window: np.ndarray) -> None:
        seg = seg - seg.mean(axis=-1, keepdims=True)  # scipy's detrend="constant"
        power = np.abs(np.fft.rfft(seg * window, axis=-1)) ** 2  # (N, C, S, F)
        self._sum += power.sum(axis=(0, 2))
        self._count += seg.shape[0] * seg.shape[2]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(freqs, psd)``: ``(F,)`` in Hz (or cycles/sample) and ``(C, F)`` density.

        Both are empty (``F = 0``) for a signal of fewer than 2 samples.
        """
        total, window, count = self._sum, self._window, self._count
        if count == 0:
            carry = self._carry
            n = 0 if carry is None else carry.shape[-1]
            if n < 2:
                return np.zeros(0), np.zeros((self.channels, 0))
            # Shorter than one segment: one segment of the signal's own length.
            assert carry is not None
            window = self._hann(n)
            saved = self._sum, self._count
            self._sum, self._count = np.zeros((self.channels, n // 2 + 1)), 0
            self._add(carry[..., None, :], window)
            total, count = self._sum, self._count
            self._sum, self._count = saved
        n = window.size
        fs = 1.0 if self.sample_rate is None else float(self.sample_rate)
        psd = total / count / (fs * float(np.sum(window**2)))
        # One-sided: fold the negative frequencies in, except DC and (even n) Nyquist.
        psd[:, 1 : (n + 1) // 2] *= 2
        return np.fft.rfftfreq(n, 1.0 / fs), psd


@dataclass(frozen=True)
class SignalOverview:
    """What a picture of a signal needs, from one streaming pass.

    Attributes
    ----------
    info : SignalInfo
        The reader's header facts.
    sample_rate : float or None
        Hz (the file's or the one given); ``None`` means time in samples and
        frequency in cycles per sample.
    frames : int
        Samples per channel read.
    low, high : ndarray
        ``(C, bins)`` envelope minima and maxima (see :class:`Envelope`).
    bin_width : int
        Samples per envelope bin.
    freqs, psd : ndarray
        ``(F,)`` and ``(C, F)`` Welch estimate (see :class:`WelchSpectrum`).
    nperseg : int
        Welch segment length.
    """

    info: SignalInfo
    sample_rate: float | None
    frames: int
    low: np.ndarray
    high: np.ndarray
    bin_width: int
    freqs: np.ndarray
    psd: np.ndarray
    nperseg: int


class OverviewBuilder:
    """Accumulates a :class:`SignalOverview` from the blocks of one reader.

    For callers that already loop over a reader (``conv1d inspect`` gathers its
    statistics in the same pass, so a pipe is read once).

    Parameters
    ----------
    info : SignalInfo
        The reader's header facts.
    sample_rate : float, optional
        Overrides ``info.sample_rate``.
    columns : int
        Envelope resolution (see :class:`Envelope`).
    nperseg : int, optional
        Welch segment length; default :func:`segment_length` of ``info.frames``.
    """

    def __init__(
        self,
        info: SignalInfo,
        *,
        sample_rate: float | None = None,
        columns: int = COLUMNS,
        nperseg: int | None = None,
    ) -> None:
        self.info = info
        rate = sample_rate if sample_rate is not None else info.sample_rate
        self.sample_rate = None if rate is None else float(rate)
        seg = nperseg if nperseg is not None else segment_length(info.frames)
        if isinstance(seg, bool) or not isinstance(seg, int) or seg < 2:
            raise ConfigError(f"nperseg must be an integer of at least 2, got {seg!r}")
        self._envelope = Envelope(info.channels, columns=columns, frames=info.frames)
        self._welch = WelchSpectrum(info.channels, sample_rate=self.sample_rate, nperseg=seg)

    def update(self, block: Any) -> None:
        """Add the next block, as the reader returns it."""
        self._envelope.update(block)
        self._welch.update(block)

    def result(self) -> SignalOverview:
        """The overview of everything added so far."""
        low, high, width = self._envelope.result()
        freqs, psd = self._welch.result()
        return SignalOverview(
            info=self.info,
            sample_rate=self.sample_rate,
            frames=self._envelope.frames,
            low=low,
            high=high,
            bin_width=width,
            freqs=freqs,
            psd=psd,
            nperseg=self._welch.nperseg,
        )


def signal_overview(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    sample_rate: float | None = None,
    columns: int = COLUMNS,
    nperseg: int | None = None,
    block_frames: int = READ_FRAMES,
) -> SignalOverview:
    """Read a signal once, block by block, into a :class:`SignalOverview`.

    Memory is bounded by ``block_frames`` and the summary sizes, whatever the length.

    Parameters
    ----------
    path, format
        As for :func:`~conv1d_cli.io.inputs.open_reader`.
    sample_rate : float, optional
        Overrides the file's rate (CSV and NPY have none).
    columns : int
        Envelope resolution (see :class:`Envelope`).
    nperseg : int, optional
        Welch segment length; default :func:`segment_length` of the known length.
    block_frames : int
        Frames read at a time; by default what a reader reads when its caller takes
        the whole signal (:data:`conv1d_cli.io.base.READ_FRAMES`). Not the filter's
        streaming block (:func:`conv1d_cli.chain.block_frames`): this pass keeps a
        summary, and a smaller block bounds its memory whatever the channel count.

    Returns
    -------
    SignalOverview

    Raises
    ------
    DataFileError
        Unreadable or malformed input (from the reader).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> workdir = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(workdir.name) / "x.npy"
    >>> np.save(path, np.sin(np.arange(2000.0))[None])  # 100/(2*pi) = 15.9 Hz at 100 Hz
    >>> ov = signal_overview(path, sample_rate=100.0)
    >>> ov.frames, ov.low.shape, ov.nperseg, round(float(ov.freqs[np.argmax(ov.psd[0])]), 1)
    (2000, (1, 1000), 256, 16.0)
    >>> workdir.cleanup()
    """
    block_frames = check_int("block_frames", block_frames, minimum=1)
    with open_reader(path, format) as reader:
        builder = OverviewBuilder(
            reader.info, sample_rate=sample_rate, columns=columns, nperseg=nperseg
        )
        while True:
            block = reader.read(block_frames)
            if block.shape[-1] == 0:
                break
            builder.update(block)
    return builder.result()
