"""Uniformly partitioned convolution: long kernels streamed with a latency of one block.

A stream stage (:class:`conv1d_cli.stream.LayerStage`) with a kernel much longer
than its block would otherwise transform the kernel's whole history with every
block: a 96 000-tap room response fed 1024 frames at a time means a
131 072-point FFT per 1024 outputs. Uniformly partitioned overlap-save (UPOLS)
cuts the reversed kernel into ``P = ceil(field / B)`` partitions of ``B`` taps
and keeps the spectra of the last ``P`` input blocks in a frequency-domain
delay line; each block of ``B`` new samples then costs one ``2B``-point
transform per input channel, a per-bin sum over partitions and input channels
(the MIMO mixing folded into the same sum), and one inverse transform per
output channel. Outputs leave as soon as their block is complete, so a live
pipe gets them one block after the input, whatever the kernel's length.

:func:`partition_size` decides, from shapes and options only (never from the
thread count), when a stage uses it and with which ``B``. NumPy only.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from conv1d_cli.kernels import _nonfinite, _repair_nonfinite, _transforms
from conv1d_cli.threads import fft_workers

__all__ = ["PartitionedCorrelator", "partition_plan"]

#: Receptive fields from this long, mixing input channels (a true-stereo IR), are
#: partitioned on a file too: the one-shot path's per-bin channel mixing over
#: 2**17 bins per frame is transposes and tiny matmuls, the partitions' one
#: broadcast product per block measured ~1.2-1.6x faster (96 000 taps, 2x2,
#: float64/float32). Per-channel kernels (a stereo IR) measured even, in
#: frames of 2**18 or 2**19 points too (and those cost 70 MiB more), so they
#: keep the cost model of :mod:`conv1d_cli.kernels`, as shorter kernels do.
PARTITION_MIN_FIELD: Final = 16384
#: On a live output, kernels from this long and longer than the block are
#: partitioned at the block: below it the one-shot frames are small anyway.
_LIVE_MIN_FIELD: Final = 2048
# Partitions on a file: about a quarter of the field, a power of two within these
# bounds (measured best: 2**15 for 96 000 taps; larger ones run out of cache,
# smaller ones pay the per-bin sum once each).
_PARTITION_BOUNDS: Final = (1 << 13, 1 << 16)
# Bytes of the temporary per-bin products (partitions x rows x bins) per step.
_MIX_CHUNK_BYTES: Final = 4 * 2**20


def partition_plan(
    field: int,
    stride: int,
    method: str = "auto",
    live_block: int | None = None,
    mixing: bool = False,
) -> tuple[int, int] | None:
    """``(block, nfft)`` for a stream stage's :class:`PartitionedCorrelator`, or None.

    Shapes and options decide, never the thread count. None keeps the one-shot
    path (:class:`conv1d_cli.core.Correlator` on each block).

    Parameters
    ----------
    field : int
        Receptive field ``dilation*(K-1) + 1``.
    stride : int
        Only stride 1 is partitioned (every stride-1 output is computed).
    method : {'auto', 'direct', 'fft'}
        ``'direct'`` never is.
    live_block : int, optional
        Frames per block of an output read as it is written (a live pipe): a
        kernel longer than it is cut into partitions of exactly that block, so
        each block read completes its outputs.
    mixing : bool
        The layer mixes input channels (more than one per group): on a file, a
        kernel from :data:`PARTITION_MIN_FIELD` taps is partitioned for speed.

    Examples
    --------
    >>> partition_plan(96000, 1, mixing=True), partition_plan(96000, 1, live_block=1024)
    ((32768, 65536), (1024, 2048))
    >>> partition_plan(96000, 1) is None, partition_plan(96000, 2, mixing=True) is None
    (True, True)
    """
    if stride != 1 or method == "direct":
        return None
    if live_block is not None:
        if field >= _LIVE_MIN_FIELD and field > live_block:
            return live_block, 2 * live_block
        return None
    if field < PARTITION_MIN_FIELD or not mixing:
        return None
    low, high = _PARTITION_BOUNDS
    block = min(high, max(low, 1 << max(0, (field // 4 - 1).bit_length())))
    return block, 2 * block


class PartitionedCorrelator:
    """Stream correlation with fixed weights by uniformly partitioned overlap-save.

    Fed the padded signal in pieces of any length (:meth:`push`), it returns
    the valid cross-correlation outputs (stride 1) as their ``B``-sample
    blocks complete; :meth:`flush` returns the rest. The concatenated outputs
    equal :class:`conv1d_cli.core.Correlator` on the whole padded signal to
    rounding (~1e-7 of the peak in float32, ~1e-15 in float64), and NaN/Inf
    input samples reach exactly the outputs whose windows hold them, as there.

    Parameters
    ----------
    weight : ndarray
        ``(C_out, C_in / groups, K)`` in the compute dtype.
    bias : ndarray, optional
        ``(C_out,)``.
    dilation, groups : int
        Validated hyperparameters.
    block : int
        New samples per frame: the outputs each transform completes.
    nfft : int, optional
        Frame length, ``2*block`` by default. The kernel is cut into partitions
        of ``nfft - block`` taps, which must be ``block`` when there are several.
    lead : int
        Zeros imagined before the signal, so that block edges fall where the
        caller's pieces end (e.g. ``-left % B`` after a left pad of ``left``).

    Examples
    --------
    >>> corr = PartitionedCorrelator(np.array([[[1.0, 2.0, 3.0]]]), block=2)
    >>> x = np.arange(1.0, 7.0)[None, None]
    >>> np.concatenate([corr.push(x[..., :3]), corr.push(x[..., 3:]), corr.flush()], axis=-1)
    array([[[14., 20., 26., 32.]]])
    """

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        dilation: int = 1,
        groups: int = 1,
        *,
        block: int,
        nfft: int | None = None,
        lead: int = 0,
    ) -> None:
        c_out, c_in_group, kernel_size = weight.shape
        self.weight, self.bias = weight, bias
        self.dilation, self.groups = dilation, groups
        self.field = field = dilation * (kernel_size - 1) + 1
        self.block = b = block
        self.nfft = nfft = 2 * block if nfft is None else nfft
        self._taps = m = nfft - b  # taps per partition
        self.partitions = p = -(-field // m)
        if m < 1 or (p > 1 and m != b):
            raise ValueError(f"nfft {nfft} does not fit block {b} and field {field}")
        self.dtype = weight.dtype
        self._c_in = c_in_group * groups
        self._shape = (groups, c_out // groups, c_in_group)
        # Convolution with the reversed, dilated kernel, cut into P partitions of
        # M taps; each one's nfft-point spectrum, times nfft for _transforms' norms.
        taps = np.zeros((c_out, c_in_group, p * m), np.float64)
        taps[..., field - 1 :: -dilation] = weight
        spectra = np.fft.rfft(taps.reshape(c_out, c_in_group, p, m), nfft) * nfft
        bins = nfft // 2 + 1
        spectra = spectra.reshape(*self._shape, p, bins).transpose(3, 0, 1, 2, 4)
        cdtype = np.result_type(self.dtype, np.complex64)
        self._spectra = np.ascontiguousarray(spectra, cdtype)  # (P, G, O, C, F)
        self._lead = lead
        # Blocks transformed so far and samples of the current one: the lead's
        # zeros count as received (the frame and the delay line start at zero).
        self._blocks, self._fill = divmod(lead, b)
        self._frame: np.ndarray | None = None  # (N, C_in, nfft): history | current block
        self._delay: np.ndarray | None = None  # (2P, N, G, C, F): each spectrum twice
        self._head = 0
        # The original samples from a field and a block before the newest piece, for
        # the non-finite repair: (first position, piece) pairs.
        self._history: list[tuple[int, np.ndarray]] = []
        self._received = lead  # stream position of the next sample
        self._last_bad = -1

    def _start(self, n: int) -> None:
        groups, _, c_in_group = self._shape
        p = self.partitions
        bins = self.nfft // 2 + 1
        self._frame = np.zeros((n, self._c_in, self.nfft), self.dtype)
        self._delay = np.zeros((2 * p, n, groups, c_in_group, bins), self._spectra.dtype)

    def _transform(self) -> np.ndarray:
        """The current (complete) block's B outputs of the full convolution."""
        frame, delay = self._frame, self._delay
        assert frame is not None and delay is not None
        rfft, irfft = _transforms(fft_workers())
        p, m, nfft = self.partitions, self._taps, self.nfft
        bins = nfft // 2 + 1
        n = frame.shape[0]
        groups, c_out_group, c_in_group = self._shape
        spectrum = rfft(frame, nfft).reshape(n, groups, c_in_group, bins)
        # Newest first at head; the second copy makes the P newest one slice.
        self._head = (self._head - 1) % p
        delay[self._head] = spectrum
        delay[self._head + p] = spectrum
        ring = delay[self._head : self._head + p]
        mixed = np.zeros((n, groups, c_out_group, bins), delay.dtype)
        row = n * groups * c_out_group * c_in_group * bins * delay.itemsize
        step = max(1, _MIX_CHUNK_BYTES // row)
        for p0 in range(0, p, step):
            part = self._spectra[p0 : p0 + step, None] * ring[p0 : p0 + step, :, :, None]
            mixed += part.sum(axis=(0, 4))
        frame[..., :m] = frame[..., nfft - m :]
        self._blocks += 1
        out: np.ndarray = irfft(mixed.reshape(n, groups * c_out_group, bins), nfft)
        return out[..., m:].astype(self.dtype, copy=False)

    def _valid(self, y: np.ndarray, first: int) -> np.ndarray:
        """``y`` (convolution outputs from position ``first``) less those before the field."""
        skip = self._lead + self.field - 1 - first
        return y[..., skip:] if skip > 0 else y

    def push(self, x: np.ndarray) -> np.ndarray:
        """Feed the next ``(N, C_in, n)`` padded samples; return the outputs now complete."""
        if self._frame is None:
            self._start(x.shape[0])
        frame = self._frame
        assert frame is not None
        b = self.block
        first = self._blocks * b
        source = x
        # One SIMD sum finds the rare NaN/Inf (a sum that overflows only costs the mask).
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.add.reduce(x, axis=None)
        bad = None if np.isfinite(total) else _nonfinite(x)
        if bad is not None:
            self._last_bad = self._received + int(np.nonzero(bad.any(axis=(0, 1)))[0][-1])
            x = np.where(bad, 0, x)
        # Copied: the caller may reuse its buffer; bounded by _trim_history.
        self._history.append((self._received, np.array(source, self.dtype)))
        self._trim_history()
        self._received += source.shape[-1]
        outs = []
        pos, n = 0, x.shape[-1]
        while pos < n:
            take = min(b - self._fill, n - pos)
            at = self._taps + self._fill
            frame[..., at : at + take] = x[..., pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == b:
                outs.append(self._transform())
                self._fill = 0
        if not outs:
            return np.zeros((*frame.shape[:1], self.weight.shape[0], 0), self.dtype)
        return self._finished(np.concatenate(outs, axis=-1) if len(outs) > 1 else outs[0], first)

    def flush(self) -> np.ndarray:
        """The outputs whose windows end in the last, incomplete block; the stream is then spent."""
        frame = self._frame
        if frame is None or self._fill == 0:
            n = 0 if frame is None else frame.shape[0]
            return np.zeros((n, self.weight.shape[0], 0), self.dtype)
        b, fill = self.block, self._fill
        first = self._blocks * b
        frame[..., self._taps + fill :] = 0
        self._fill = 0
        return self._finished(self._transform()[..., :fill], first)

    def _finished(self, y: np.ndarray, first: int) -> np.ndarray:
        """Drop the outputs before the field, add the bias, repair what NaN/Inf reach."""
        out = self._valid(y, first)
        if self.bias is not None:
            out += self.bias[:, None]
        start = max(first, self._lead + self.field - 1)
        if out.shape[-1] and self._last_bad >= 0 and start - self.field + 1 <= self._last_bad:
            self._repair(out, start)
        return out

    def _trim_history(self) -> None:
        # The newest piece's outputs may start a block before it, and reach a field back.
        oldest = self._history[-1][0] - self.field - self.block
        while len(self._history) > 1 and self._history[1][0] <= oldest:
            self._history.pop(0)

    def _repair(self, out: np.ndarray, start: int) -> None:
        """Recompute, as direct sums, the outputs from position ``start`` that bad samples reach."""
        lo = start - self.field + 1
        first = self._history[0][0]
        samples = np.concatenate([piece for _, piece in self._history], axis=-1)
        if first > lo:  # the lead's zeros, before any sample arrived
            zeros = np.zeros((*samples.shape[:2], first - lo), samples.dtype)
            samples, first = np.concatenate([zeros, samples], axis=-1), lo
        width = out.shape[-1] + self.field - 1
        xp = np.ascontiguousarray(samples[..., lo - first : lo - first + width], self.dtype)
        if xp.shape[-1] < width:  # the flushed block's zero tail
            xp = np.concatenate(
                [xp, np.zeros((*xp.shape[:2], width - xp.shape[-1]), self.dtype)], axis=-1
            )
        bad = ~np.isfinite(xp)
        if bad.any():
            _repair_nonfinite(out, xp, bad, self.weight, self.bias, 1, self.dilation, self.groups)
