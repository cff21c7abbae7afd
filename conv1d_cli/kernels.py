"""The correlation kernels behind :class:`conv1d_cli.core.Correlator`, and how one is chosen.

Four ways to compute a valid cross-correlation of a padded block, each the
best one for some shapes: im2col (one GEMM over gathered windows), per-tap
GEMMs (deep channel counts), a banded Toeplitz GEMM (one input channel per
group: FIR filters, depthwise layers) and FFT overlap-save (long kernels).
:func:`_choose_method` prices them with a cost model measured by
``benchmarks/calibrate.py``. The non-finite repair lives here too, because it
must reproduce the direct sum whatever kernel ran. NumPy only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, Final

import numpy as np

from conv1d_cli.threads import fft_workers, split_map

# --- Algorithm tuning. The cost model prices ONE core (threads only divide
# the work, and under make -j / --jobs each run gets one thread); its constants
# are measured by benchmarks/calibrate.py with one BLAS thread and one FFT
# worker (2-core AMD EPYC, Zen 4, numpy 2.4 on OpenBLAS with
# OPENBLAS_CORETYPE=Haswell; see _choose_method for the model). -------------
# im2col buffers are built in chunks of about this many bytes, so memory stays
# bounded whatever the signal length (no K-fold copy of a long signal).
_IM2COL_CHUNK_BYTES: Final = 4 * 2**20
# From this many input channels per group, one tap's GEMM is deep enough on its
# own: per-tap GEMMs accumulate into cache-sized output blocks and skip
# im2col's copy (measured ~5-10% faster at 512-1024 channels, slower below).
_PER_TAP_MIN_CHANNELS: Final = 512
# Overlapping-window buffers of the banded (Toeplitz) GEMM, per chunk.
_BANDED_CHUNK_BYTES: Final = 2**20
# Input frames transformed per FFT call (bytes of real input).
_FFT_CHUNK_BYTES: Final = 2 * 2**20
#: From this FFT length on, frames are long: a stream hands the correlator whole
#: frames (``core.Correlator.frame_outputs``), transformed VECTOR_ROWS rows per
#: call (``long_frames_per_call``), the calls side by side in threads.
LONG_FRAME_NFFT: Final = 2**15
#: Rows one transform call should hold: NumPy's and SciPy's pocketfft run this
#: many rows of a call in the lanes of one SIMD loop (float32 on the wheels'
#: SSE2 baseline; float64 takes two). Measured, float32, 2**19 points: 2.4 ms
#: per row alone, 1.0 ms per row four at a time; eight are no faster than four.
VECTOR_ROWS: Final = 4
#: Long frames grow to 3/4 new samples up to this many bytes per row (_fft_size).
_LONG_FRAME_BYTES: Final = 3 * 2**19
# numpy.fft takes out= from NumPy 2.0 (the project supports 1.26 too).
_FFT_OUT: Final = np.lib.NumpyVersion(np.__version__) >= "2.0.0"
# Buffers of long frames' transforms up to this size are kept per thread (_scratch).
_SCRATCH_BYTES: Final = 16 * 2**20
# Up to this many im2col elements, a call is one GEMM with the batch folded in.
_SMALL_ELEMENTS: Final = 2**18
# Kernel spectra kept per Correlator (one per FFT size met).
_SPECTRA_KEPT: Final = 4

# Cost model, seconds per unit on one core (see _choose_method).
_GEMM_FLOP_S: Final = 1 / 100e9  # im2col GEMM (80-130 GFLOP/s measured on one core)
_BANDED_FLOP_S: Final = 1 / 100e9  # the banded GEMM (long M, narrow N)
_COPY_S: Final = 0.07e-9  # one element copied into an im2col buffer
_FFT_S: Final = 0.09e-9  # one real sample x log2(nfft), per transform (float32)
_MIX_S: Final = 0.2e-9  # one complex multiply-add per frequency bin
_CALL_S: Final = 8e-6  # fixed cost of one chunk (Python + BLAS/FFT dispatch)


def _im2col(
    xp: np.ndarray,
    w2: np.ndarray,
    kernel_size: int,
    stride: int,
    dilation: int,
    out: np.ndarray,
    left: int | None = None,
) -> None:
    """im2col + one GEMM per chunk of output positions, into ``out``.

    ``xp`` is (N, G, C, Lp), ``w2`` is (G, O, C*K) and ``out`` (N, G, O, L_out).
    cols[n, g, c, k, t] = xp[n, g, c, t*stride + k*dilation]. A small problem
    is one batched matmul; a large one goes batch item by batch item in column
    chunks of ~_IM2COL_CHUNK_BYTES, so each GEMM is wide and the buffer stays
    in cache (a chunk spanning batch items would make many narrow GEMMs).

    With ``left`` given, ``xp`` is the UNPADDED signal and it is read as if
    zero-padded by ``left`` before it and by as many as ``out`` needs after
    it: the columns of each tap that fall into the padding are zeroed in the
    buffer instead of copying the whole signal into a padded array first.
    """
    n, groups, c_in_group, length = xp.shape
    length_out = out.shape[-1]
    depth = c_in_group * kernel_size
    per_step = groups * depth * xp.itemsize
    if n * per_step * length_out <= _IM2COL_CHUNK_BYTES:
        items, chunk = [slice(None)], length_out
    else:
        items = [slice(i, i + 1) for i in range(n)]
        chunk = max(256, _IM2COL_CHUNK_BYTES // per_step)
        if chunk >= length_out:
            chunk = length_out
        else:
            # Equal chunks: no short last GEMM.
            chunk = -(-length_out // -(-length_out // chunk))
    rows = n if len(items) == 1 else 1
    cols = np.empty((rows, groups, c_in_group, kernel_size, chunk), xp.dtype)
    field = dilation * (kernel_size - 1) + 1
    taps = np.arange(kernel_size)[:, None] * dilation
    for item in items:
        xi = xp[item]
        oi = out[item]
        s_n, s_g, s_c, s_t = xi.strides
        for t0 in range(0, length_out, chunk):
            steps = min(chunk, length_out - t0)
            c = cols if steps == chunk else np.empty((*cols.shape[:-1], steps), cols.dtype)
            # Column j reads xi[..., base + j*stride + k*dilation] for every tap k at
            # once through one strided view (a Python loop over taps costs ~1 us a
            # tap, which dominates a call of a few outputs: a tiny streaming block).
            # With ``left`` given, columns lo <= j < hi read real samples only; the
            # others reach into the padding and are gathered with a mask.
            base = t0 * stride - (left or 0)
            lo, hi = 0, steps
            if left is not None:
                lo = min(steps, max(0, -(base // stride)))
                hi = max(lo, min(steps, (length - field - base) // stride + 1))
            if hi > lo:
                view = np.lib.stride_tricks.as_strided(
                    xi[..., base + lo * stride :],
                    (rows, groups, c_in_group, kernel_size, hi - lo),
                    (s_n, s_g, s_c, dilation * s_t, stride * s_t),
                    writeable=False,
                )
                np.copyto(c[..., lo:hi], view)
            if lo > 0 or hi < steps:
                edge = np.r_[0:lo, hi:steps]
                idx = base + edge * stride + taps  # (K, columns)
                inside = (idx >= 0) & (idx < length)
                c[..., edge] = np.where(inside, xi[..., idx.clip(0, length - 1)], 0)
            np.matmul(w2, c.reshape(rows, groups, depth, steps), out=oi[..., t0 : t0 + steps])


def _per_tap(
    xp: np.ndarray,
    wk: np.ndarray,
    stride: int,
    dilation: int,
    out: np.ndarray,
    left: int | None = None,
) -> None:
    """Per-tap GEMM accumulation into cache-sized blocks of ``out``.

    ``wk`` is (K, G, O, C): one (O, C) matrix per tap; no im2col buffer.
    With ``left`` given, ``xp`` is the unpadded signal read as if zero-padded
    (as in :func:`_im2col`): each tap multiplies only the columns that see
    real samples; padding columns contribute nothing.
    """
    n, groups, c_out_group, length_out = out.shape
    length = xp.shape[-1]
    kernel_size = wk.shape[0]
    per_step = n * groups * c_out_group * out.itemsize
    chunk = max(256, _IM2COL_CHUNK_BYTES // 4 // per_step)
    tmp = np.empty((n, groups, c_out_group, min(chunk, length_out)), out.dtype)
    for t0 in range(0, length_out, chunk):
        steps = min(chunk, length_out - t0)
        o = out[..., t0 : t0 + steps]
        t = tmp[..., :steps]
        for k in range(kernel_size):
            if left is None:
                start = t0 * stride + k * dilation
                view = xp[..., start : start + (steps - 1) * stride + 1 : stride]
                if k == 0:
                    np.matmul(wk[0], view, out=o)
                else:
                    np.matmul(wk[k], view, out=t)
                    o += t
                continue
            start = t0 * stride + k * dilation - left
            j0 = 0 if start >= 0 else min(steps, (stride - 1 - start) // stride)
            j1 = max(j0, min(steps, (length - 1 - start) // stride + 1))
            if k == 0:
                o[..., :j0] = 0
                o[..., j1:] = 0
            if j1 == j0:
                continue
            first = start + j0 * stride
            view = xp[..., first : first + (j1 - j0 - 1) * stride + 1 : stride]
            if k == 0:
                np.matmul(wk[0], view, out=o[..., j0:j1])
            else:
                np.matmul(wk[k], view, out=t[..., j0:j1])
                o[..., j0:j1] += t[..., j0:j1]


def _banded_matrix(weight: np.ndarray, rows: int, stride: int, dilation: int) -> np.ndarray:
    """Toeplitz band T (G, W, O*P) with T[g, j*stride + k*dilation, o*P + j] = w[g*O+o, 0, k].

    ``rows`` is P, the outputs per window; W = (P-1)*stride + field.
    """
    c_out, _, kernel_size = weight.shape
    field = dilation * (kernel_size - 1) + 1
    width = (rows - 1) * stride + field
    # Built for one group layout (G, O) by the caller's reshape.
    band = np.zeros((c_out, width, rows), weight.dtype)
    j = np.arange(rows)
    for k in range(kernel_size):
        band[:, j * stride + k * dilation, j] = weight[:, 0, k, None]
    return band


def _banded(
    xp: np.ndarray,
    band: np.ndarray,
    rows: int,
    stride: int,
    out: np.ndarray,
) -> int:
    """Banded-GEMM correlation for one input channel per group; returns outputs done.

    Output block b (P = ``rows`` outputs) of channel (n, g) is the window
    xp[n, g, b*P*stride : b*P*stride + W] times the band T[g] (W, O*P). Windows
    overlap, so each chunk of them is copied to a contiguous buffer (W/(P*stride)
    elements per output, not K as im2col would) and multiplied in one GEMM per
    group, the batch folded into its rows (many channels must not mean many tiny
    GEMMs). Only whole blocks are done here; the caller finishes the last few.
    """
    n, groups, padded = xp.shape
    _, width, opr = band.shape
    c_out_group = opr // rows
    length_out = out.shape[-1]
    blocks = length_out // rows
    if blocks == 0:
        return 0
    # Enough rows per GEMM to amortise its call (~256), else ~1 MiB of windows.
    chunk = max(-(-256 // n), _BANDED_CHUNK_BYTES // (n * groups * width * xp.itemsize), 1)
    if chunk < blocks:
        chunk = -(-blocks // -(-blocks // chunk))
    chunk = min(chunk, blocks)
    s_n, s_g, s_t = xp.strides
    hop = rows * stride
    buf = np.empty((groups, n, chunk, width), xp.dtype)
    direct_out = n == 1 and c_out_group == 1
    res = None if direct_out else np.empty((groups, n * chunk, opr), xp.dtype)
    out5 = out.reshape(n, groups, c_out_group, length_out)
    for b0 in range(0, blocks, chunk):
        nb = min(chunk, blocks - b0)
        windows = np.lib.stride_tricks.as_strided(
            xp[..., b0 * hop :], (groups, n, nb, width), (s_g, s_n, hop * s_t, s_t), writeable=False
        )
        b = buf if nb == chunk else buf[:, :, :nb]
        np.copyto(b, windows)
        lhs = b.reshape(groups, n * nb, width)
        target = out5[..., b0 * rows : (b0 + nb) * rows]
        if direct_out:
            np.matmul(lhs, band, out=target.reshape(groups, nb, rows))
        else:
            assert res is not None
            r = res[:, : n * nb]
            np.matmul(lhs, band, out=r)
            target.reshape(n, groups, c_out_group, nb, rows)[...] = r.reshape(
                groups, n, nb, c_out_group, rows
            ).transpose(1, 0, 3, 2, 4)
    return blocks * rows


def _fft_module() -> Any:
    """scipy.fft, imported on first multi-threaded FFT only (it costs ~0.1 s to import)."""
    global _SCIPY_FFT
    if _SCIPY_FFT is None:
        import scipy.fft  # type: ignore[import-untyped,unused-ignore]

        _SCIPY_FFT = scipy.fft
    return _SCIPY_FFT


_SCIPY_FFT: Any = None


def _transforms(workers: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(rfft, irfft) along the last axis, forward-normalised and backward-normalised.

    ``rfft`` divides by ``nfft`` and ``irfft`` divides by ``nfft`` again, so
    :func:`_kernel_spectrum` multiplies the kernel's spectrum by ``nfft``
    (for powers of two every scaling is exact, the result bit for bit that of
    unnormalised transforms; long frames of 3 * 2**k or 5 * 2**k points
    round the scalings, ~1 ulp). Why this pairing: NumPy 2.x's pocketfft runs a
    several times slower loop whenever its scale factor is the integer 1
    (``rfft`` with norm "backward", ``irfft`` with norm "forward"), and the
    other norms are as fast as scipy.fft on one thread. One thread needs no
    scipy.fft, whose import (~0.1 s) is a fifth of a short run; several
    threads (``workers``) need scipy.fft. With one worker both take ``out=``
    (NumPy 1.x has none: there they return new arrays, which callers use).
    """
    if workers <= 1:
        if not _FFT_OUT:
            return (
                lambda a, n, out=None: np.fft.rfft(a, n, axis=-1, norm="forward"),
                lambda a, n, out=None: np.fft.irfft(a, n, axis=-1),
            )
        return (
            lambda a, n, out=None: np.fft.rfft(a, n, axis=-1, norm="forward", out=out),
            lambda a, n, out=None: np.fft.irfft(a, n, axis=-1, out=out),
        )
    sfft = _fft_module()
    return (
        lambda a, n: sfft.rfft(a, n, axis=-1, norm="forward", workers=workers),
        lambda a, n: sfft.irfft(a, n, axis=-1, workers=workers, overwrite_x=True),
    )


def _kernel_spectrum(weight: np.ndarray, groups: int, dilation: int, nfft: int) -> np.ndarray:
    """Spectrum of the dilated, reversed kernels (correlation = convolution with them).

    Returns (G, O, 1, F) when there is one input channel per group (broadcast
    against frames), else (G, F, O, C) ready for a per-bin matmul.
    """
    c_out, c_in_group, kernel_size = weight.shape
    field = dilation * (kernel_size - 1) + 1
    taps = np.zeros((c_out, c_in_group, field), np.float64)
    taps[..., ::dilation] = weight
    # float64: exact enough to cast; times nfft for the normalisation of _transforms.
    spectrum = np.fft.rfft(taps[..., ::-1], nfft)
    spectrum *= nfft
    cdtype = np.result_type(weight.dtype, np.complex64)
    spectrum = spectrum.astype(cdtype).reshape(groups, c_out // groups, c_in_group, -1)
    if c_in_group == 1:
        return spectrum
    return np.ascontiguousarray(spectrum.transpose(0, 3, 1, 2))


def long_frames_per_call(n: int, c_in: int, c_out: int, groups: int) -> int:
    """Long frames transformed per call: enough for :data:`VECTOR_ROWS` rows a transform.

    One channel per group each way (a filter per channel: an impulse response)
    takes that many frames: each channel's frames are then transformed as they
    lie, one stride apart (:func:`_frames`). Otherwise the frames of all rows
    are copied together, as few as give that many rows.

    Examples
    --------
    >>> long_frames_per_call(1, 2, 2, 2), long_frames_per_call(1, 2, 2, 1)
    (4, 2)
    >>> long_frames_per_call(4, 2, 4, 1), long_frames_per_call(1, 1, 1, 1)
    (1, 4)
    """
    if c_in == groups and c_out == groups:
        return VECTOR_ROWS
    return -(-VECTOR_ROWS // (n * min(c_in, c_out)))


def _overlap_save(
    xp: np.ndarray,
    spectrum: np.ndarray,
    nfft: int,
    field: int,
    stride: int,
    groups: int,
    out: np.ndarray,
) -> None:
    """FFT overlap-save correlation of padded ``xp`` (N, C_in, Lp) into ``out``.

    Frame f holds xp[f*step : f*step + nfft] with step = nfft - field + 1 and
    yields the stride-1 outputs f*step ... f*step + step - 1; strided calls keep
    every stride-th. Frames are transformed a chunk at a time, so memory stays
    a few MiB above the output whatever the length (and the buffers a thread
    keeps for long frames, :func:`_scratch`).

    From :data:`LONG_FRAME_NFFT` points on, frames go :func:`long_frames_per_call`
    at a time, each such part (and, for a filter per channel, each (item,
    channel) row of it) a call of its own, in as many threads as ``threads.split_workers()``
    allows: the calls are the same whatever the thread count, so is the output.
    """
    if nfft >= LONG_FRAME_NFFT:
        step = nfft - field + 1
        n, c_in = xp.shape[:2]
        c_out, length_out = out.shape[1:]
        frames = -(-((length_out - 1) * stride + 1) // step)
        per = long_frames_per_call(n, c_in, c_out, groups)
        starts = range(0, frames, per)

        def call(f0: int, x: np.ndarray, y: np.ndarray, kernel: np.ndarray, kernels: int) -> None:
            # The outputs whose stride-1 positions fall in frames f0 .. f0 + per - 1.
            t0 = -(-(f0 * step) // stride)
            t1 = min(length_out, -(-((f0 + per) * step) // stride))
            _frames(x[..., t0 * stride :], kernel, nfft, field, stride, kernels, y[..., t0:t1], 1)

        def row(unit: tuple[int, int, int]) -> None:
            f0, i, g = unit
            at = (slice(i, i + 1), slice(g, g + 1))
            call(f0, xp[at], out[at], spectrum[g : g + 1], 1)

        if c_in == c_out == groups:
            # A filter per channel: each (item, channel) row of a part is a call of its own.
            split_map(row, [(f0, i, g) for f0 in starts for i in range(n) for g in range(c_in)])
        else:
            split_map(lambda f0: call(f0, xp, out, spectrum, groups), starts)
        return
    # Read per call: the command line's thread policy, or threads.limit(), may
    # change it after import (threads.py decides; never more than usable cores).
    _frames(xp, spectrum, nfft, field, stride, groups, out, fft_workers())


def _frames(
    xp: np.ndarray,
    spectrum: np.ndarray,
    nfft: int,
    field: int,
    stride: int,
    groups: int,
    out: np.ndarray,
    workers: int,
) -> None:
    """:func:`_overlap_save`'s frames, transformed with ``workers`` FFT threads."""
    rfft, irfft = _transforms(workers)
    n, c_in, padded = xp.shape
    c_out, length_out = out.shape[1:]
    c_in_group = c_in // groups
    c_out_group = c_out // groups
    step = nfft - field + 1
    span = (length_out - 1) * stride + 1  # stride-1 positions needed
    frames = -(-span // step)
    full = 0 if padded < nfft else min(frames, (padded - nfft) // step + 1)
    if nfft >= LONG_FRAME_NFFT:
        chunk = long_frames_per_call(n, c_in, c_out, groups)
    else:
        chunk = max(1, _FFT_CHUNK_BYTES // (n * max(c_in, c_out) * nfft * xp.itemsize))
    chunk = min(chunk, frames)
    if chunk < frames:
        chunk = -(-frames // -(-frames // chunk))
    tail = None
    if full < frames:
        # The last frames run past the block: copy them into a zeroed buffer.
        start = full * step
        tail = np.zeros((n, c_in, (frames - full - 1) * step + nfft), xp.dtype)
        have = min(padded - start, tail.shape[-1])
        tail[..., :have] = xp[..., start : start + have]
    f1 = 0
    while f1 < frames:
        f0, f1 = f1, min(frames, f1 + chunk)
        # Chunks never straddle the full/tail border.
        if f0 < full < f1:
            f1 = full
        src, base = (xp, f0 * step) if f1 <= full else (tail, (f0 - full) * step)
        assert src is not None
        s_n, s_c, s_t = src.strides
        view = np.lib.stride_tricks.as_strided(
            src[..., base:], (n, c_in, f1 - f0, nfft), (s_n, s_c, step * s_t, s_t), writeable=False
        )
        nf = f1 - f0
        bins = nfft // 2 + 1
        long = nfft >= LONG_FRAME_NFFT and workers <= 1
        cdtype = np.result_type(xp.dtype, np.complex64)
        if long and c_in_group == 1 and c_out_group == 1 and nf >= VECTOR_ROWS:
            # A filter per channel: a channel's frames lie one stride apart, which
            # pocketfft takes into its SIMD lanes as they are (8% faster than
            # copying the frames of all channels together first).
            spec_x = _fft_out("spectra", (nf, bins), cdtype)
            y = _fft_out("signals", (nf, nfft), xp.dtype)
            for i in range(n):
                for g in range(c_in):
                    spec_x = rfft(view[i, g], nfft, out=spec_x)
                    spec_x *= spectrum[g, 0]
                    y = irfft(spec_x, nfft, out=y)
                    _place(out[i, g], y[:, field - 1 :], f0 * step, stride)
            continue
        if long:
            # Overlapping frames of several channels are no single stride apart:
            # pocketfft would then transform them one by one (2.4 ms a row at
            # 2**19 points, against 1.0 for a contiguous copy, made in 0.1 ms).
            rows = _scratch("frames", view.shape, xp.dtype)
            if rows is None:
                rows = np.ascontiguousarray(view)
            else:
                np.copyto(rows, view)
            spec_x = rfft(rows, nfft, out=_fft_out("spectra", (n, c_in, nf, bins), cdtype))
        else:
            spec_x = rfft(view, nfft)
        if c_in_group == 1:
            spec_x = spec_x.reshape(n, groups, 1, nf, bins)
            if c_out_group == 1:
                spec_x *= spectrum
                spec_y = spec_x
            else:
                spec_y = spec_x * spectrum
        else:
            # Channel mixing: one (O, C) @ (C, N*frames) product per bin.
            stacked = spec_x.reshape(n, groups, c_in_group, nf, bins).transpose(1, 4, 2, 0, 3)
            stacked = stacked.reshape(groups, bins, c_in_group, n * nf)
            mixed = np.matmul(spectrum, stacked)
            spec_y = mixed.reshape(groups, bins, c_out_group, n, nf).transpose(3, 0, 2, 4, 1)
        if long:
            y = irfft(spec_y, nfft, out=_fft_out("signals", (*spec_y.shape[:-1], nfft), xp.dtype))
        else:
            y = irfft(spec_y, nfft)
        _place(out, y.reshape(n, c_out, nf, nfft)[..., field - 1 :], f0 * step, stride)


def _place(out: np.ndarray, valid: np.ndarray, p0: int, stride: int) -> None:
    """Frames' ``valid`` outputs (..., frames, step), stride-1 positions from ``p0``, into ``out``.

    Strided outputs keep every stride-th position; positions past ``out`` are dropped.
    """
    nf, step = valid.shape[-2:]
    lead = valid.shape[:-2]
    length_out = out.shape[-1]
    if stride == 1:
        t1 = min(length_out, p0 + nf * step)
        if t1 - p0 == nf * step:
            out[..., p0:t1].reshape(*lead, nf, step)[...] = valid
        else:
            out[..., p0:t1] = valid.reshape(*lead, nf * step)[..., : t1 - p0]
        return
    t0 = -(-p0 // stride)
    t1 = min(length_out, -(-(p0 + nf * step) // stride))
    if t1 > t0:
        flat = valid.reshape(*lead, nf * step)
        out[..., t0:t1] = flat[..., t0 * stride - p0 : (t1 - 1) * stride - p0 + 1 : stride]


def _fft_slowdown(nfft: int) -> float:
    """Transforms get dearer per sample as frames outgrow the caches.

    Measured (float32, one core, benchmarks/calibrate.py): x1.03 at 2**13,
    x1.15 at 2**14, x1.45 at 2**15, x2.6 at 2**16.
    """
    return 1 + 0.45 * (nfft / 2**15) ** 2


def _fft_size(field: int, stride: int, length_out: int, itemsize: int = 4) -> int:
    """FFT length minimising the modelled cost per output for this kernel.

    Where two sizes cost within 2% of each other the larger wins: measured,
    such near-ties went to the larger size or were even (255 taps on 8
    channels: 4096 ~10% faster than 2048, on a stereo stream equal).

    Long frames (from :data:`LONG_FRAME_NFFT`) are at least 3/4 new samples
    where a row of ``itemsize`` bytes per point stays within
    :data:`_LONG_FRAME_BYTES`, in the first length of :func:`_fast_length`
    that allows it. Measured four float32 rows per call (as
    :func:`_overlap_save` transforms long frames), rfft + irfft, 96 000 taps:
    5.5 ns per output at 2**18 points (63% new), 4.8 at 5 * 2**16 (71%), 4.6
    at 3 * 2**17 (76%), 4.9 at 2**19 (82%). The quadratic slowdown above,
    calibrated up to 2**16, would always take the shortest frame the kernel
    allows.
    """
    span = (length_out - 1) * stride + 1
    whole = 1 << max(4, (span + field - 2).bit_length())  # one frame does it all
    best, best_cost = whole, math.inf
    nfft = 1 << max(4, (2 * field - 1).bit_length())
    while nfft <= whole:
        step = nfft - field + 1
        frames = -(-span // step)
        # Both transforms, the product with the kernel's spectrum and the
        # frame's own overhead (~80 ns, matters for short frames).
        transforms = 2 * nfft * math.log2(nfft) * _FFT_S * _fft_slowdown(nfft)
        cost = frames * (transforms + nfft / 2 * _MIX_S + _CALL_S / 100)
        if cost <= best_cost * 1.02:
            best, best_cost = nfft, cost
        nfft *= 2
    if best >= LONG_FRAME_NFFT:
        quarter = _fast_length(4 * (field - 1))  # frames 3/4 new samples
        best = max(best, min(quarter, whole, _LONG_FRAME_BYTES // itemsize))
    return best


def _scratch(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
    """This thread's buffer ``name``, kept from call to call, viewed as ``shape``; None if large.

    For long frames' transforms (``out=``): a fresh 6 MiB array per call is
    page-faulted in anew once the allocator has handed the last one back, and
    two threads doing so ran at half speed (a call of four 3 * 2**17-point rows:
    6.8 ms fresh, 5.7 with kept buffers; two threads at once 11.5 and 6.0 ms
    each). The buffer grows to the largest size asked, so a smaller last call
    reuses it; at most :data:`_SCRATCH_BYTES` a buffer stays, per thread.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    if size * dtype.itemsize > _SCRATCH_BYTES:
        return None
    kept = _SCRATCH.__dict__
    buffer = kept.get(name)
    if buffer is None or buffer.size < size or buffer.dtype != dtype:
        kept[name] = buffer = np.empty(size, dtype)
    return buffer[:size].reshape(shape)


_SCRATCH = threading.local()


def _fft_out(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
    """:func:`_scratch` for a transform's ``out=``; None where numpy.fft has none (1.x)."""
    return _scratch(name, shape, dtype) if _FFT_OUT else None


def _fast_length(n: int) -> int:
    """The least of ``2**k``, ``3 * 2**k`` and ``5 * 2**k`` that is at least ``n``.

    Lengths pocketfft transforms fast, finer-grained than powers of two: a
    frame can hold 3/4 new samples without going to the next power.

    Examples
    --------
    >>> _fast_length(383996), _fast_length(65536), _fast_length(81920)
    (393216, 65536, 81920)
    """
    return min(f << (-(-n // f) - 1).bit_length() for f in (1, 3, 5))


def _banded_rows(field: int) -> int:
    """Outputs per band window: measured best ~32 up to fields of ~200, then 64."""
    return 32 if field <= 200 else 64


def _choose_method(
    n: int,
    c_in: int,
    c_out: int,
    c_in_group: int,
    kernel_size: int,
    field: int,
    stride: int,
    length_out: int,
    allowed: str = "auto",
    itemsize: int = 4,
) -> tuple[str, int]:
    """Pick the cheapest algorithm by a cost model; returns (name, parameter).

    Names: ``"im2col"``, ``"per-tap"`` and ``"banded"`` (parameter: outputs per
    window) are the direct methods, ``"fft"`` (parameter: FFT length) the
    other. ``allowed`` restricts the choice to ``"direct"`` or ``"fft"``;
    ``itemsize`` (bytes per sample computed) bounds long FFT frames.

    The model, in seconds of one core (constants at the top of this module,
    measured by ``benchmarks/calibrate.py`` with one BLAS thread and one FFT
    worker; more threads divide every method's work alike):

    - im2col (per-tap GEMMs instead from ``_PER_TAP_MIN_CHANNELS`` input
      channels per group): ``2*N*C_out*(C_in/G)*K*L_out`` flops at
      ``_GEMM_FLOP_S`` plus ``N*C_in*K*L_out`` copied elements at ``_COPY_S``.
    - banded (one input channel per group only): GEMM flops
      ``2*N*C_out*L_out*W`` with window ``W = (P-1)*stride + field`` at
      ``_BANDED_FLOP_S``, plus ``W/(P*stride)`` copied elements per output.
    - fft: ``frames*(C_in + C_out)*nfft*log2(nfft)`` at ``_FFT_S`` (each
      frame yields ``(nfft - field + 1)/stride`` outputs), plus per-bin mixing
      ``N*frames*bins*C_out*(C_in/G)`` complex multiply-adds at ``_MIX_S``,
      plus writing the outputs.

    Every chunk also costs ``_CALL_S``. With one input channel per group the
    direct method is banded from a receptive field of 12 on, or from 5 on
    for long signals (measured: im2col's matrix-vector products win below,
    and for many short channels up to ~K=9, where the band's extra flops
    don't pay).
    Stride is paid in full by the FFT (it computes every stride-1 output),
    which is why strided layers stay direct. For a per-channel FIR (plain or
    depthwise, e.g. stereo audio in 2**17-frame blocks) the model puts the
    crossover from the banded GEMM to FFT at a receptive field of ~90, where
    calibrate.py measures it (81: both equal; 101: FFT 13% faster), and its
    FFT sizes come within 6% of the best measured one from 9 to 8193 taps.
    """
    if c_in_group == 1 and (field >= 12 or (field >= 5 and length_out >= 8192)):
        rows = _banded_rows(field)
        direct = ("banded", rows)
    else:
        direct = ("im2col" if c_in_group < _PER_TAP_MIN_CHANNELS else "per-tap", 0)
    if allowed == "direct" or (allowed == "auto" and (field < 16 or length_out < 8)):
        return direct
    out_elems = n * c_out * length_out
    if direct[0] == "banded":
        width = (rows - 1) * stride + field
        copied = n * c_in * length_out * width / rows
        chunks = copied * 4 / _BANDED_CHUNK_BYTES + 1
        cost = 2.0 * out_elems * width * _BANDED_FLOP_S + copied * _COPY_S + chunks * _CALL_S
    else:
        copied = n * c_in * kernel_size * length_out
        chunks = copied * 4 / _IM2COL_CHUNK_BYTES + 1
        flops = 2.0 * out_elems * c_in_group * kernel_size
        cost = flops * _GEMM_FLOP_S + copied * _COPY_S + chunks * _CALL_S
    nfft = _fft_size(field, stride, length_out, itemsize)
    step = nfft - field + 1
    frames = -(-((length_out - 1) * stride + 1) // step)
    bins = nfft // 2 + 1
    transforms = (c_in + c_out) * nfft * math.log2(nfft) * _FFT_S * _fft_slowdown(nfft)
    mixing = bins * c_out * c_in_group * _MIX_S * (1 if c_in_group == 1 else 0.25)
    fft_cost = n * frames * (transforms + mixing)
    fft_cost += out_elems * _COPY_S * stride + (frames // 8 + 1) * _CALL_S
    if allowed == "fft" or fft_cost < cost:
        return "fft", nfft
    return direct


# Elements per np.isfinite pass (bounds the boolean temporary on long signals)
# and per gathered window buffer when non-finite samples are repaired.
_FINITE_CHUNK: Final = 2**20
_REPAIR_CHUNK: Final = 2**18


def _nonfinite(x: np.ndarray) -> np.ndarray | None:
    """Mask of the NaN/Inf samples of ``x``, or None (the common case) when all are finite."""
    if x.dtype.kind != "f" or x.size == 0:
        return None
    # isfinite + all is cheaper than a sum (and raises no overflow warning);
    # long signals are checked a slice at a time, stopping at the first bad one.
    length = x.shape[-1]
    step = max(1, _FINITE_CHUNK // max(1, x.size // length))
    if all(np.isfinite(x[..., i : i + step]).all() for i in range(0, length, step)):
        return None
    return ~np.isfinite(x)


def _repair_nonfinite(
    out: np.ndarray,
    xp: np.ndarray,
    bad: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: int,
    dilation: int,
    groups: int,
) -> None:
    """Overwrite the outputs that non-finite samples reach with their exact direct sums.

    ``out`` (N, C_out, L_out) was computed from the padded block ``xp`` with
    its ``bad`` samples zeroed, so every output whose window misses them is
    already what the chosen method gives without them. An FFT (or a banded
    GEMM's zero band entries, 0*Inf = NaN) would spread one Inf over whole
    frames, hence the zeroing. Each reached output, for every output channel
    of the bad sample's group, is recomputed here as the direct sum over its
    window of the ORIGINAL samples, so IEEE arithmetic decides between +-Inf
    and NaN (Inf*0, Inf-Inf) as it does in the definition. Padding copies of
    a bad sample (reflect/replicate/circular) are bad samples of ``xp`` too.
    """
    n, c_in, padded = xp.shape
    c_out, c_in_group, kernel_size = weight.shape
    c_out_group = c_out // groups
    length_out = out.shape[-1]
    # Bad samples per window by running sums along each residue class mod
    # dilation: csum[i + d] = sum of hits[j] for j <= i, j = i (mod d), so the
    # window starting at s holds csum[s + K*d] - csum[s] of them.
    hits = bad.reshape(n, groups, c_in_group, padded).any(axis=2)
    rows_d = -(-padded // dilation) + 1
    csum = np.zeros((n, groups, rows_d * dilation), np.intp)
    csum[..., dilation : dilation + padded] = hits
    csum = csum.reshape(n, groups, rows_d, dilation).cumsum(axis=2).reshape(n, groups, -1)
    starts = np.arange(length_out) * stride
    reach = csum[..., starts + kernel_size * dilation] > csum[..., starts]
    r_item, r_group, r_t = np.nonzero(reach)
    dtype = out.dtype
    wg = weight.astype(dtype, copy=False).reshape(groups, c_out_group, c_in_group * kernel_size)
    bias = None if bias is None else bias.astype(dtype, copy=False)
    s_n, s_c, s_t = xp.strides
    windows = np.lib.stride_tricks.as_strided(
        xp,
        (n, groups, c_in_group, length_out, kernel_size),
        (s_n, c_in_group * s_c, s_c, stride * s_t, dilation * s_t),
        writeable=False,
    )
    per = max(1, _REPAIR_CHUNK // (c_in_group * kernel_size))
    for r0 in range(0, r_t.size, per):
        ni, gi, ti = r_item[r0 : r0 + per], r_group[r0 : r0 + per], r_t[r0 : r0 + per]
        # (r, C_in/G, K): advanced indices around a slice put their axis first.
        win = windows[ni, gi, :, ti, :].astype(dtype, copy=False).reshape(ti.size, -1)
        res = np.empty((ti.size, c_out_group), dtype)
        # einsum's own loops, not BLAS: no zero-skipping shortcut may hide an Inf*0.
        with np.errstate(invalid="ignore", over="ignore"):
            for g in np.unique(gi):
                sel = gi == g
                res[sel] = np.einsum("rd,od->ro", win[sel], wg[g])
            cols = gi[:, None] * c_out_group + np.arange(c_out_group)
            if bias is not None:
                res += bias[cols]
        out[ni[:, None], cols, ti[:, None]] = res
