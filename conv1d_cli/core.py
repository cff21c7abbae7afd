"""NumPy implementation of ``torch.nn.functional.conv1d`` (plus ``padding_mode``).

Imports only NumPy and the project's pure-Python shape rules; no click, no
soundfile, no printing. The operation is cross-correlation (the kernel is not
flipped), exactly as in PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from conv1d_cli.errors import ConfigError, ShapeError
from conv1d_cli.shapes import (
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

__all__ = ["METHODS", "Correlator", "conv1d", "pad1d"]

#: Accepted values of ``method``.
METHODS: Final[tuple[str, ...]] = ("auto", "direct", "fft")

# im2col buffers are built in chunks of about this many bytes, so memory stays
# bounded whatever the signal length.
_IM2COL_CHUNK_BYTES: Final = 16 * 2**20
# Up to this many (input channel, tap) pairs per group the im2col + one matmul
# path wins; above it, per-tap GEMM accumulation needs no buffer and is as fast.
_IM2COL_MAX_DEPTH: Final = 256


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


def _compute_dtype(*arrays: np.ndarray) -> np.dtype[Any]:
    """float32 only if every operand is float32 (or narrower); else float64."""
    for a in arrays:
        if a.dtype.kind not in "biuf":
            raise ShapeError(f"expected a real numeric array, got dtype {a.dtype}")
    # Not np.result_type: it maps int8/int16/uint8 + float32 to float32, but
    # integer input is documented to compute in float64.
    if all(a.dtype.kind == "f" and a.dtype.itemsize <= 4 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _as_real_array(name: str, value: Any) -> np.ndarray:
    """``np.asarray`` that names the argument when it is ragged or not real numbers."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ShapeError(f"{name} must be a rectangular numeric array: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise ShapeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    return array


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
    stride = check_size("stride", stride)
    dilation = check_size("dilation", dilation)
    groups = check_int("groups", groups)
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
    field = receptive_field(kernel_size, dilation)
    if length == 0 and x.ndim == 3 and x.shape[0] == 0 and padding_mode == "zeros":
        # PyTorch accepts an empty batch of empty signals when zero padding
        # alone fits the kernel, and returns an empty (0, C_out, L_out) result.
        if left + right < field:
            output_length(length, kernel_size, stride, (left, right), dilation)  # raises
        length_out = (left + right - field) // stride + 1
    else:
        length_out = output_length(length, kernel_size, stride, (left, right), dilation)
    check_pad_limits(length, left, right, padding_mode)
    dtypes = (x, weight) if bias is None else (x, weight, bias)
    return _Plan(
        batched=x.ndim == 3,
        left=left,
        right=right,
        stride=stride,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
        length_out=length_out,
        dtype=_compute_dtype(*dtypes),
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
    left = check_int("left", left, minimum=0)
    right = check_int("right", right, minimum=0)
    mode = check_padding_mode(padding_mode)
    if left == right == 0:
        return x
    if x.shape[-1] == 0 and mode != "zeros":
        raise ShapeError(f"cannot {mode}-pad an empty signal")
    check_pad_limits(x.shape[-1], left, right, mode)
    widths = [(0, 0)] * (x.ndim - 1) + [(left, right)]
    return np.pad(x, widths, mode=PADDING_MODES[mode])  # type: ignore[call-overload]


def _direct(
    xp: np.ndarray, weight: np.ndarray, stride: int, dilation: int, groups: int, length_out: int
) -> np.ndarray:
    """Valid cross-correlation of padded ``xp`` by GEMMs; returns (N, C_out, L_out)."""
    n, c_in, padded = xp.shape
    c_out, c_in_group, kernel_size = weight.shape
    c_out_group = c_out // groups
    xg = xp.reshape(n, groups, c_in_group, padded)
    wg = weight.reshape(groups, c_out_group, c_in_group, kernel_size)
    out = np.empty((n, groups, c_out_group, length_out), xp.dtype)
    depth = c_in_group * kernel_size
    if depth <= _IM2COL_MAX_DEPTH:
        # im2col: cols[n, g, c, k, t] = xp[n, g, c, t*stride + k*dilation], then
        # one batched GEMM per chunk of output positions.
        w2 = wg.reshape(groups, c_out_group, depth)
        per_step = max(1, n * groups * depth * xp.itemsize)
        chunk = max(1, _IM2COL_CHUNK_BYTES // per_step)
        for t0 in range(0, length_out, chunk):
            t1 = min(length_out, t0 + chunk)
            steps = t1 - t0
            cols = np.empty((n, groups, c_in_group, kernel_size, steps), xp.dtype)
            for k in range(kernel_size):
                start = t0 * stride + k * dilation
                cols[:, :, :, k, :] = xg[..., start : start + (steps - 1) * stride + 1 : stride]
            np.matmul(w2, cols.reshape(n, groups, depth, steps), out=out[..., t0:t1])
    else:
        # Per-tap GEMM accumulation: no buffer larger than one strided view.
        span = (length_out - 1) * stride + 1
        for k in range(kernel_size):
            start = k * dilation
            term = np.matmul(wg[..., k], xg[..., start : start + span : stride])
            if k == 0:
                out[...] = term
            else:
                out += term
    return out.reshape(n, c_out, length_out)


def _fft(
    xp: np.ndarray, weight: np.ndarray, stride: int, dilation: int, groups: int, length_out: int
) -> np.ndarray:
    """Valid cross-correlation of padded ``xp`` through one FFT of the whole signal."""
    n, c_in, padded = xp.shape
    c_out, c_in_group, kernel_size = weight.shape
    c_out_group = c_out // groups
    field = dilation * (kernel_size - 1) + 1
    dilated = np.zeros((c_out, c_in_group, field), weight.dtype)
    dilated[..., ::dilation] = weight
    nfft = 1 << int(padded + field - 2).bit_length()
    spectrum_x = np.fft.rfft(xp, nfft).reshape(n, groups, c_in_group, -1)
    # Correlation is convolution with the reversed kernel.
    spectrum_w = np.fft.rfft(dilated[..., ::-1], nfft).reshape(groups, c_out_group, c_in_group, -1)
    mixed = np.einsum("ngcf,gocf->ngof", spectrum_x, spectrum_w)
    full = np.fft.irfft(mixed, nfft)
    span = (length_out - 1) * stride + 1
    out = full[..., field - 1 : field - 1 + span : stride]
    return np.ascontiguousarray(out, dtype=xp.dtype).reshape(n, c_out, length_out)


def _choose_method(kernel_size: int, c_in_group: int, length_out: int) -> str:
    if kernel_size >= 64 and length_out >= 4 * kernel_size:
        return "fft"
    return "direct"


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
        Algorithm. ``'auto'`` picks by kernel and signal length; all give the
        same result within floating-point tolerance.

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
    xb = x if plan.batched else x[None]
    xb = xb.astype(plan.dtype, copy=False)
    weight = weight.astype(plan.dtype, copy=False)
    correlator = Correlator(
        weight,
        None if bias is None else bias.astype(plan.dtype, copy=False),
        plan.stride,
        plan.dilation,
        plan.groups,
        method,
    )
    out = correlator(pad1d(xb, plan.left, plan.right, plan.padding_mode))
    return out if plan.batched else out[0]


class Correlator:
    """Valid cross-correlation with fixed weights, reusable across blocks.

    The streaming engine pads and slices signals itself and calls this on each
    block; whatever can be prepared once (reshaped weights, kernel spectra) is
    kept between calls.

    Parameters
    ----------
    weight : ndarray
        ``(C_out, C_in / groups, K)``, already in the compute dtype.
    bias : ndarray, optional
        ``(C_out,)``.
    stride, dilation, groups : int
        Validated hyperparameters.
    method : {'auto', 'direct', 'fft'}

    Examples
    --------
    >>> corr = Correlator(np.array([[[1.0, 2.0, 3.0]]]))
    >>> corr(np.arange(1.0, 7.0)[None, None])
    array([[[14., 20., 26., 32.]]])
    >>> corr.output_length(6)
    4
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

    def output_length(self, padded_length: int) -> int:
        """Outputs produced from ``padded_length`` input samples (0 if too short)."""
        if padded_length < self.field:
            return 0
        return (padded_length - self.field) // self.stride + 1

    def __call__(self, xp: np.ndarray) -> np.ndarray:
        """Correlate a padded ``(N, C_in, Lp)`` block; returns ``(N, C_out, L_out)``."""
        length_out = self.output_length(xp.shape[-1])
        method = self.method
        if method == "auto":
            method = _choose_method(self.weight.shape[2], self.weight.shape[1], length_out)
        if xp.shape[0] == 0 or length_out == 0:
            out = np.zeros((xp.shape[0], self.weight.shape[0], length_out), xp.dtype)
        elif method == "fft":
            out = _fft(xp, self.weight, self.stride, self.dilation, self.groups, length_out)
        else:
            out = _direct(xp, self.weight, self.stride, self.dilation, self.groups, length_out)
        if self.bias is not None:
            out += self.bias[:, None]
        return out
