"""NumPy implementation of ``torch.nn.functional.conv1d`` (plus ``padding_mode``).

Imports only NumPy and the project's pure-Python shape rules; no click, no
soundfile, no printing. The operation is cross-correlation (the kernel is not
flipped), exactly as in PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from conv1d_cli.errors import ConfigError, ShapeError
from conv1d_cli.shapes import (
    MAX_SIZE,
    PADDING_MODES,
    Padding,
    check_int,
    check_pad_limits,
    check_padding_mode,
    check_size,
    output_length,
    receptive_field,
    resolve_padding,
)
from conv1d_cli.threads import fft_workers

__all__ = ["METHODS", "Correlator", "conv1d", "pad1d"]

#: Accepted values of ``method``.
METHODS: Final[tuple[str, ...]] = ("auto", "direct", "fft")

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


@dataclass(frozen=True)
class _Plan:
    """Validated arguments of one call, shapes resolved."""

    batched: bool
    left: int
    right: int
    stride: int
    dilation: int
    groups: int
    padding_mode: str
    length_out: int
    dtype: np.dtype[Any]


_FLOAT32: Final = np.dtype(np.float32)
_FLOAT64: Final = np.dtype(np.float64)


def _compute_dtype(*arrays: np.ndarray) -> np.dtype[Any]:
    """float32 only if every operand is float32 (or narrower); else float64."""
    for a in arrays:
        if a.dtype.kind not in "biuf":
            raise ShapeError(f"expected a real numeric array, got dtype {a.dtype}")
    # Not np.result_type: it maps int8/int16/uint8 + float32 to float32, but
    # integer input is documented to compute in float64.
    if all(a.dtype.kind == "f" and a.dtype.itemsize <= 4 for a in arrays):
        return _FLOAT32
    return _FLOAT64


def _as_real_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray`` that names the argument when it is ragged or not real numbers."""
    if type(value) is np.ndarray:
        array = value
    else:
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ShapeError(f"{name} must be a rectangular numeric array: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise ShapeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    return array


# The tiny-layer call costs tens of microseconds, so the checks below take a
# fast path for plain ints (``type(v) is int`` excludes bool, as check_int
# does) and hand anything else to the shapes.py checker, which then accepts
# or raises exactly as before: same checks, same order, same messages.
def _size_arg(name: str, value: Any) -> int:
    if type(value) is int and 1 <= value <= MAX_SIZE:
        return value  # type: ignore[no-any-return]
    return check_size(name, value)


def _plan(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: int,
    padding: Padding,
    dilation: int,
    groups: int,
    padding_mode: str,
) -> _Plan:
    stride = _size_arg("stride", stride)
    dilation = _size_arg("dilation", dilation)
    if type(groups) is not int or not 1 <= groups <= MAX_SIZE:
        groups = check_int("groups", groups, maximum=MAX_SIZE)
    if type(padding_mode) is not str or padding_mode not in PADDING_MODES:
        padding_mode = check_padding_mode(padding_mode)
    if weight.ndim != 3:
        raise ShapeError(
            f"weight must be 3-D (out_channels, in_channels/groups, kernel_size), "
            f"got shape {weight.shape}"
        )
    c_out, c_in_group, kernel_size = weight.shape
    if c_out == 0 or c_in_group == 0 or kernel_size == 0:
        raise ShapeError(f"weight must have no zero-sized dimension, got shape {weight.shape}")
    if c_out % groups:
        raise ShapeError(
            f"out_channels must be divisible by groups: weight has {c_out} output "
            f"channels, groups={groups}"
        )
    if bias is not None and bias.shape != (c_out,):
        raise ShapeError(
            f"bias must have shape ({c_out},) to match weight {weight.shape}, "
            f"got shape {bias.shape}"
        )
    if type(padding) is int and 0 <= padding <= MAX_SIZE:  # type: ignore[operator]
        left = right = padding  # type: ignore[assignment]
    else:
        left, right = resolve_padding(padding, kernel_size, dilation, stride)
    if x.ndim not in (2, 3):
        raise ShapeError(
            f"input must be 2-D (channels, length) or 3-D (batch, channels, length), "
            f"got shape {x.shape}"
        )
    c_in, length = x.shape[-2:]
    if c_in != c_in_group * groups:
        raise ShapeError(
            f"input has {c_in} channels but the weight {weight.shape} with "
            f"groups={groups} expects {c_in_group * groups}"
        )
    # Everything is a validated int by now: receptive_field/output_length's
    # formula directly; output_length itself only to raise its errors.
    field = dilation * (kernel_size - 1) + 1
    if field > MAX_SIZE:
        receptive_field(kernel_size, dilation)  # raises, naming the limit
    padded = length + left + right
    if length == 0 and x.ndim == 3 and x.shape[0] == 0 and padding_mode == "zeros":
        # PyTorch accepts an empty batch of empty signals when zero padding
        # alone fits the kernel, and returns an empty (0, C_out, L_out) result.
        if padded < field:
            output_length(length, kernel_size, stride, (left, right), dilation)  # raises
        length_out = (padded - field) // stride + 1
    elif length >= 1 and padded >= field:
        length_out = (padded - field) // stride + 1
    else:
        output_length(length, kernel_size, stride, (left, right), dilation)  # raises
        raise AssertionError("unreachable")  # pragma: no cover
    if padding_mode != "zeros":
        check_pad_limits(length, left, right, padding_mode)
    dtype = x.dtype
    if not (
        (dtype == _FLOAT32 or dtype == _FLOAT64)
        and weight.dtype == dtype
        and (bias is None or bias.dtype == dtype)
    ):
        dtype = _compute_dtype(*((x, weight) if bias is None else (x, weight, bias)))
    return _Plan(
        batched=x.ndim == 3,
        left=left,
        right=right,
        stride=stride,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        length_out=length_out,
        dtype=dtype,
    )


def pad1d(x: np.ndarray, left: int, right: int, padding_mode: str = "zeros") -> np.ndarray:
    """Pad the last axis of ``x`` the way ``torch.nn.Conv1d`` does.

    Parameters
    ----------
    x : ndarray
        Array whose last axis is time.
    left, right : int
        Samples to add on each side (non-negative).
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        torch names; they are ``numpy.pad`` modes ``constant``, ``reflect``,
        ``edge`` and ``wrap``. Limits are PyTorch's (see
        :func:`conv1d_cli.shapes.check_pad_limits`).

    Returns
    -------
    ndarray
        ``x`` itself when nothing is added, else a padded copy.

    Examples
    --------
    >>> pad1d(np.arange(1, 6), 2, 1, "reflect")
    array([3, 2, 1, 2, 3, 4, 5, 4])
    """
    if type(left) is not int or not 0 <= left <= MAX_SIZE:
        left = check_int("left", left, minimum=0, maximum=MAX_SIZE)
    if type(right) is not int or not 0 <= right <= MAX_SIZE:
        right = check_int("right", right, minimum=0, maximum=MAX_SIZE)
    mode = padding_mode
    if type(mode) is not str or mode not in PADDING_MODES:
        mode = check_padding_mode(padding_mode)
    if left == right == 0:
        return x
    if x.shape[-1] == 0 and mode != "zeros":
        raise ShapeError(f"cannot {mode}-pad an empty signal")
    check_pad_limits(x.shape[-1], left, right, mode)
    if mode == "zeros":
        # np.pad's generic machinery costs ~20 us even on a tiny array.
        length = x.shape[-1]
        padded = np.empty((*x.shape[:-1], left + length + right), x.dtype)
        padded[..., :left] = 0
        padded[..., left + length :] = 0
        padded[..., left : left + length] = x
        return padded
    widths = [(0, 0)] * (x.ndim - 1) + [(left, right)]
    return np.pad(x, widths, mode=PADDING_MODES[mode])  # type: ignore[call-overload]


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
    (powers of two: every scaling is exact, the result bit for bit that of
    unnormalised transforms). Why this pairing: NumPy 2.x's pocketfft runs a
    several times slower loop whenever its scale factor is the integer 1
    (``rfft`` with norm "backward", ``irfft`` with norm "forward"), and the
    other norms are as fast as scipy.fft on one thread. One thread needs no
    scipy.fft, whose import (~0.1 s) is a fifth of a short run; several
    threads (``workers``) need scipy.fft.
    """
    if workers <= 1:
        return (
            lambda a, n: np.fft.rfft(a, n, axis=-1, norm="forward"),
            lambda a, n: np.fft.irfft(a, n, axis=-1),
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
    a few MiB above the output whatever the length.
    """
    # Read per call: the command line's thread policy, or threads.limit(), may
    # change it after import (threads.py decides; never more than usable cores).
    workers = fft_workers()
    rfft, irfft = _transforms(workers)
    n, c_in, padded = xp.shape
    c_out, length_out = out.shape[1:]
    c_in_group = c_in // groups
    c_out_group = c_out // groups
    step = nfft - field + 1
    span = (length_out - 1) * stride + 1  # stride-1 positions needed
    frames = -(-span // step)
    full = 0 if padded < nfft else min(frames, (padded - nfft) // step + 1)
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
        spec_x = rfft(view, nfft)
        nf = f1 - f0
        bins = spec_x.shape[-1]
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
        y = irfft(spec_y, nfft)
        valid = y.reshape(n, c_out, nf, nfft)[..., field - 1 :]
        p0 = f0 * step
        if stride == 1:
            t1 = min(length_out, p0 + nf * step)
            if t1 - p0 == nf * step:
                out[..., p0:t1].reshape(n, c_out, nf, step)[...] = valid
            else:
                out[..., p0:t1] = valid.reshape(n, c_out, nf * step)[..., : t1 - p0]
        else:
            t0 = -(-p0 // stride)
            t1 = min(length_out, -(-(p0 + nf * step) // stride))
            if t1 > t0:
                flat = valid.reshape(n, c_out, nf * step)
                out[..., t0:t1] = flat[..., t0 * stride - p0 : (t1 - 1) * stride - p0 + 1 : stride]


def _fft_slowdown(nfft: int) -> float:
    """Transforms get dearer per sample as frames outgrow the caches.

    Measured (float32, one core, benchmarks/calibrate.py): x1.03 at 2**13,
    x1.15 at 2**14, x1.45 at 2**15, x2.6 at 2**16.
    """
    return 1 + 0.45 * (nfft / 2**15) ** 2


def _fft_size(field: int, stride: int, length_out: int) -> int:
    """FFT length minimising the modelled cost per output for this kernel.

    Where two sizes cost within 2% of each other the larger wins: measured,
    such near-ties went to the larger size or were even (255 taps on 8
    channels: 4096 ~10% faster than 2048, on a stereo stream equal).
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
    return best


def _banded_rows(field: int, stride: int) -> int:
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
) -> tuple[str, int]:
    """Pick the cheapest algorithm by a cost model; returns (name, parameter).

    Names: ``"im2col"``, ``"per-tap"`` and ``"banded"`` (parameter: outputs per
    window) are the direct methods, ``"fft"`` (parameter: FFT length) the
    other. ``allowed`` restricts the choice to ``"direct"`` or ``"fft"``.

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
        rows = _banded_rows(field, stride)
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
    nfft = _fft_size(field, stride, length_out)
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


def conv1d(
    x: Any,
    weight: Any,
    bias: Any = None,
    stride: int = 1,
    padding: Padding = 0,
    dilation: int = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    *,
    method: str = "auto",
) -> np.ndarray:
    """1-D cross-correlation with PyTorch's ``conv1d`` semantics.

    Parameters
    ----------
    x : array_like
        Input of shape ``(N, C_in, L)`` or unbatched ``(C_in, L)``.
    weight : array_like
        Kernels of shape ``(C_out, C_in / groups, K)``.
    bias : array_like, optional
        Shape ``(C_out,)``.
    stride, dilation : int
        Positive integers.
    padding : int, tuple or str
        ``int`` / 1-tuple (both sides), ``'valid'`` (0), ``'same'`` (stride 1
        only; the odd extra sample goes on the right, as in PyTorch). Beyond
        PyTorch: ``'causal'`` (``dilation*(K-1)`` on the left), ``'full'``
        (that on both sides) and a ``(left, right)`` pair.
    groups : int
        Splits channels into independent blocks; ``groups == C_in`` is
        depthwise.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        How padded samples are made, as ``torch.nn.Conv1d(padding_mode=...)``.
    method : {'auto', 'direct', 'fft'}
        Algorithm. ``'direct'`` is GEMM-based (im2col, or a banded Toeplitz
        GEMM for depthwise/FIR kernels); ``'fft'`` is overlap-save FFT;
        ``'auto'`` picks the cheaper by a cost model of the shapes (long
        kernels go to FFT). All give the same result within floating-point
        tolerance (~1e-6 relative in float32).

    Returns
    -------
    ndarray
        Shape ``(N, C_out, L_out)`` (or ``(C_out, L_out)`` for unbatched input)
        with ``L_out = (L + left + right - dilation*(K-1) - 1) // stride + 1``.
        float32 when every operand is float32, else float64.

    Raises
    ------
    ConfigError
        Invalid hyperparameter (stride, padding, groups, ...).
    ShapeError
        Arrays that do not fit together or an input too short for the kernel.

    Notes
    -----
    This is cross-correlation, ``y[t] = sum_k w[k] x[t*stride + k*dilation]``:
    the kernel is not flipped (``scipy.signal.convolve`` and SoX's ``fir``
    flip it). Where PyTorch refuses mixed dtypes, this promotes to float64.

    A NaN or Inf input sample (padding copies included) reaches exactly the
    outputs whose window holds it, whatever the method: those follow the
    IEEE arithmetic of the direct sum (+-Inf, or NaN from Inf*0 or Inf-Inf),
    every other output is what the method gives with the sample zeroed.
    Non-finite weights or bias are not special-cased: they spoil only the
    output channels that use them (each of whose outputs may then be NaN or
    Inf, as in PyTorch), and NumPy may warn about the invalid products.

    Examples
    --------
    >>> conv1d(np.arange(1.0, 7.0)[None], np.array([[[1.0, 2.0, 3.0]]]))
    array([[14., 20., 26., 32.]])
    >>> conv1d(np.zeros((20, 16, 50)), np.zeros((33, 16, 3)), stride=2).shape
    (20, 33, 24)
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    x = _as_real_array("input", x)
    weight = _as_real_array("weight", weight)
    bias = None if bias is None else _as_real_array("bias", bias)
    plan = _plan(x, weight, bias, stride, padding, dilation, groups, padding_mode)
    dtype = plan.dtype
    xb = x if plan.batched else x[None]
    if xb.dtype != dtype:
        xb = xb.astype(dtype)
    if weight.dtype != dtype:
        weight = weight.astype(dtype)
    if bias is not None and bias.dtype != dtype:
        bias = bias.astype(dtype)
    correlator = Correlator(
        weight,
        bias,
        plan.stride,
        plan.dilation,
        plan.groups,
        method,
    )
    if plan.padding_mode == "zeros" and (plan.left or plan.right):
        out = correlator._zero_padded(xb, plan.left, plan.right)
    else:
        out = correlator(pad1d(xb, plan.left, plan.right, plan.padding_mode))
    return out if plan.batched else out[0]


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


def _repair_nonfinite(out: np.ndarray, xp: np.ndarray, bad: np.ndarray, corr: Correlator) -> None:
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
    weight = corr.weight
    c_out, c_in_group, kernel_size = weight.shape
    groups, stride, dilation = corr.groups, corr.stride, corr.dilation
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
    bias = None if corr.bias is None else corr.bias.astype(dtype, copy=False)
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


class Correlator:
    """Valid cross-correlation with fixed weights, reusable across blocks.

    The streaming engine pads and slices signals itself and calls this on each
    block; whatever can be prepared once (reshaped weights, Toeplitz bands,
    kernel spectra per FFT length) is kept between calls, so block-wise use
    costs no more per sample than one call on the whole signal.

    Parameters
    ----------
    weight : ndarray
        ``(C_out, C_in / groups, K)``, already in the compute dtype.
    bias : ndarray, optional
        ``(C_out,)``.
    stride, dilation, groups : int
        Validated hyperparameters.
    method : {'auto', 'direct', 'fft'}
        ``'auto'`` picks per call from a cost model (see ``_choose_method``).

    Examples
    --------
    >>> corr = Correlator(np.array([[[1.0, 2.0, 3.0]]]))
    >>> corr(np.arange(1.0, 7.0)[None, None])
    array([[[14., 20., 26., 32.]]])
    >>> corr.output_length(6)
    4
    >>> Correlator(np.ones((2, 1, 1025), np.float32), groups=2).describe(1, 2_881_024)
    'fft(nfft=8192)'
    """

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        method: str = "auto",
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.method = method
        self.field = dilation * (weight.shape[2] - 1) + 1
        # Prepared operands, built on first use: ("im2col",) -> (G, O, C*K),
        # ("per-tap",) -> (K, G, O, C), ("banded", P) -> band, ("fft", nfft) -> spectrum.
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._bias_column = None if bias is None else bias[:, None]
        self._choices: dict[tuple[int, int], tuple[str, int]] = {}

    def output_length(self, padded_length: int) -> int:
        """Outputs produced from ``padded_length`` input samples (0 if too short)."""
        if padded_length < self.field:
            return 0
        return (padded_length - self.field) // self.stride + 1

    def _choose(self, n: int, padded_length: int) -> tuple[str, int]:
        # Streaming calls repeat the same block shape: remember the choice.
        key = (n, padded_length)
        found = self._choices.get(key)
        if found is not None:
            return found
        if len(self._choices) >= 64:
            self._choices.clear()
        c_out, c_in_group, kernel_size = self.weight.shape
        found = self._choices[key] = _choose_method(
            n,
            c_in_group * self.groups,
            c_out,
            c_in_group,
            kernel_size,
            self.field,
            self.stride,
            self.output_length(padded_length),
            self.method,
        )
        return found

    def describe(self, n: int, padded_length: int) -> str:
        """The algorithm a call on an ``(n, C_in, padded_length)`` block would use."""
        name, param = self._choose(n, padded_length)
        if name == "fft":
            return f"fft(nfft={param})"
        if name == "banded":
            return f"banded(P={param})"
        return name

    def _prepared(self, key: tuple[str, int]) -> np.ndarray:
        found = self._cache.get(key)
        if found is not None:
            return found
        weight, groups = self.weight, self.groups
        c_out, c_in_group, kernel_size = weight.shape
        c_out_group = c_out // groups
        name, param = key
        value: np.ndarray
        if name == "im2col":
            value = weight.reshape(groups, c_out_group, c_in_group * kernel_size)
        elif name == "im2col+bias":
            assert self.bias is not None
            value = np.concatenate(
                [
                    weight.reshape(groups, c_out_group, c_in_group * kernel_size),
                    self.bias.reshape(groups, c_out_group, 1).astype(weight.dtype),
                ],
                axis=2,
            )
        elif name == "per-tap":
            value = weight.reshape(groups, c_out_group, c_in_group, kernel_size)
            value = np.ascontiguousarray(value.transpose(3, 0, 1, 2))
        elif name == "banded":
            band = _banded_matrix(weight, param, self.stride, self.dilation)
            width = band.shape[1]
            band = band.reshape(groups, c_out_group, width, param).transpose(0, 2, 1, 3)
            value = np.ascontiguousarray(band).reshape(groups, width, c_out_group * param)
        else:
            spectra = [k for k in self._cache if k[0] == "fft"]
            if len(spectra) >= _SPECTRA_KEPT:
                del self._cache[spectra[0]]
            value = _kernel_spectrum(weight, groups, self.dilation, param)
        self._cache[key] = value
        return value

    def __call__(self, xp: np.ndarray) -> np.ndarray:
        """Correlate a padded ``(N, C_in, Lp)`` block; returns ``(N, C_out, L_out)``."""
        weight = self.weight
        c_out, c_in_group, kernel_size = weight.shape
        if xp.ndim != 3 or xp.shape[1] != c_in_group * self.groups:
            raise ShapeError(
                f"block must be (N, {c_in_group * self.groups}, L) for weight {weight.shape} "
                f"with groups={self.groups}, got shape {xp.shape}"
            )
        bad = _nonfinite(xp)
        if bad is not None:
            out = self(np.where(bad, 0, xp))
            _repair_nonfinite(out, xp, bad, self)
            return out
        n, c_in, padded = xp.shape
        length_out = self.output_length(padded)
        dtype = xp.dtype if xp.dtype == weight.dtype else np.result_type(xp.dtype, weight.dtype)
        if n == 0 or length_out == 0:
            out = np.zeros((n, c_out, length_out), dtype)
        else:
            name, param = self._choose(n, padded)
            if name == "im2col" and n * c_in * kernel_size * length_out <= _SMALL_ELEMENTS:
                return self._small(xp, length_out)
            out = np.empty((n, c_out, length_out), dtype)
            self._run(name, param, xp, out)
        if self._bias_column is not None:
            out += self._bias_column
        return out

    def _zero_padded(self, x: np.ndarray, left: int, right: int) -> np.ndarray:
        """``self(pad1d(x, left, right))``, without the padded copy on the GEMM paths.

        ``x`` is (N, C_in, L) in the weight's dtype, ``left``/``right`` validated.
        The large-problem im2col path reads the unpadded signal and zeroes the
        buffer columns that fall into the padding, per-tap GEMMs multiply only
        the columns that see real samples (a padded copy of a long
        multi-channel signal costs as much as a tenth of the GEMM); every other
        path pads first.
        """
        bad = _nonfinite(x)
        if bad is not None:
            out = self._zero_padded(np.where(bad, 0, x), left, right)
            # The windows are read from a padded copy: rare path, simple indexing.
            _repair_nonfinite(out, pad1d(x, left, right), pad1d(bad, left, right), self)
            return out
        n, c_in, length = x.shape
        padded = length + left + right
        length_out = self.output_length(padded)
        c_out, c_in_group, kernel_size = self.weight.shape
        if (
            n == 0
            or length_out == 0
            or c_in != c_in_group * self.groups
            or x.dtype != self.weight.dtype
            or n * c_in * kernel_size * length_out <= _SMALL_ELEMENTS
            or self._choose(n, padded)[0] not in ("im2col", "per-tap")
        ):
            return self(pad1d(x, left, right))
        out = np.empty((n, c_out, length_out), x.dtype)
        groups, stride, dilation = self.groups, self.stride, self.dilation
        xg = x.reshape(n, groups, c_in_group, length)
        og = out.reshape(n, groups, c_out // groups, length_out)
        if self._choose(n, padded)[0] == "per-tap":
            _per_tap(xg, self._prepared(("per-tap", 0)), stride, dilation, og, left)
        else:
            w2 = self._prepared(("im2col", 0))
            _im2col(xg, w2, kernel_size, stride, dilation, og, left)
        if self._bias_column is not None:
            out += self._bias_column
        return out

    def _small(self, xp: np.ndarray, length_out: int) -> np.ndarray:
        """A whole small problem as ONE GEMM, batch folded into columns, bias folded in.

        Per-call overhead matters here (a tiny layer costs tens of microseconds):
        one strided copy builds cols[g, (c, k), (n, t)], a row of ones carries
        the bias, and one transposing copy lays the result out as (N, C_out, L).
        """
        n, c_in, _ = xp.shape
        groups, kernel_size = self.groups, self.weight.shape[2]
        c_in_group = c_in // groups
        w2 = self._prepared(("im2col+bias" if self.bias is not None else "im2col", 0))
        c_out_group, depth = w2.shape[1], c_in_group * kernel_size
        dtype = xp.dtype if xp.dtype == w2.dtype else np.result_type(xp.dtype, w2.dtype)
        cols = np.empty((groups, w2.shape[2], n, length_out), dtype)
        shape = (groups, c_in_group, kernel_size, n, length_out)
        if w2.shape[2] > depth:
            cols[:, depth] = 1.0
            target = cols[:, :depth].reshape(shape)
        else:
            target = cols.reshape(shape)
        s_n, s_c, s_t = xp.strides
        strides = (s_c * c_in_group, s_c, s_t * self.dilation, s_n, s_t * self.stride)
        if xp.flags.c_contiguous:  # ~6x cheaper than as_strided
            view = np.ndarray(shape, xp.dtype, xp, 0, strides)
        else:
            view = np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)
        np.copyto(target, view)
        res = np.matmul(w2, cols.reshape(groups, w2.shape[2], n * length_out))
        out = np.empty((n, groups * c_out_group, length_out), dtype)
        if groups == 1:
            np.copyto(out, res.reshape(c_out_group, n, length_out).transpose(1, 0, 2))
        else:
            np.copyto(
                out.reshape(n, groups, c_out_group, length_out),
                res.reshape(groups, c_out_group, n, length_out).transpose(2, 0, 1, 3),
            )
        return out

    def _run(self, name: str, param: int, xp: np.ndarray, out: np.ndarray) -> None:
        groups, stride, dilation = self.groups, self.stride, self.dilation
        n, c_in, padded = xp.shape
        c_out, c_in_group, kernel_size = self.weight.shape
        length_out = out.shape[-1]
        if name == "fft":
            spectrum = self._prepared(("fft", param))
            _overlap_save(xp, spectrum, param, self.field, stride, groups, out)
            return
        done = 0
        if name == "banded":
            done = _banded(xp, self._prepared(("banded", param)), param, stride, out)
            if done == length_out:
                return
            name = "im2col"
        xg = xp[..., done * stride :].reshape(n, groups, c_in_group, -1)
        og = out[..., done:].reshape(n, groups, c_out // groups, length_out - done)
        if name == "per-tap":
            _per_tap(xg, self._prepared(("per-tap", 0)), stride, dilation, og)
        else:
            _im2col(xg, self._prepared(("im2col", 0)), kernel_size, stride, dilation, og)
