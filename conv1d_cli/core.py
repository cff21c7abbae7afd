"""NumPy implementation of ``torch.nn.functional.conv1d`` (plus ``padding_mode``).

Imports only NumPy and the project's pure-Python shape rules; no click, no
soundfile, no printing. The operation is cross-correlation (the kernel is not
flipped), exactly as in PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from conv1d_cli.errors import ConfigError, ShapeError
from conv1d_cli.kernels import (
    _SMALL_ELEMENTS,
    _SPECTRA_KEPT,
    LONG_FRAME_NFFT,
    _banded,
    _banded_matrix,
    _choose_method,
    _im2col,
    _kernel_spectrum,
    _nonfinite,
    _overlap_save,
    _per_tap,
    _repair_nonfinite,
    long_frames_per_call,
)
from conv1d_cli.shapes import (
    MAX_SIZE,
    PADDING_MODES,
    Padding,
    check_bias_shape,
    check_dtype_name,
    check_int,
    check_pad_limits,
    check_padding_mode,
    check_size,
    output_length,
    receptive_field,
    resolve_padding,
)

if TYPE_CHECKING:
    import numpy.typing as npt  # annotations only: importing it costs start-up time

__all__ = [
    "METHODS",
    "Correlator",
    "as_real_array",
    "check_dtype",
    "check_method",
    "conv1d",
    "pad1d",
    "result_dtype",
]

#: Accepted values of ``method``.
METHODS: Final[tuple[str, ...]] = ("auto", "direct", "fft")


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


# "A long signal" for the choice of a stream's frame: the FFT length the cost
# model prefers per output once the signal no longer limits it.
_LONG_SIGNAL: Final = 2**24

_FLOAT32: Final = np.dtype(np.float32)
_FLOAT64: Final = np.dtype(np.float64)


def result_dtype(*dtypes: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype a computation on these operands runs in: the one rule for it.

    float32 only if every operand is a float of at most 32 bits; anything else
    (float64, integers) computes in float64.

    Examples
    --------
    >>> result_dtype(np.dtype("float32"), np.dtype("float16"))
    dtype('float32')
    >>> result_dtype(np.dtype("float32"), np.dtype("int16"))
    dtype('float64')
    """
    # Not np.result_type: it maps int8/int16/uint8 + float32 to float32, but
    # integer input is documented to compute in float64.
    if all(d.kind == "f" and d.itemsize <= 4 for d in dtypes):
        return _FLOAT32
    return _FLOAT64


def check_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    """``dtype`` as a NumPy dtype if it names float32 or float64 (a layer's parameter dtypes).

    Accepts whatever ``numpy.dtype`` does (``"float32"``, ``np.float64``, ``"f4"``);
    the names themselves are :data:`conv1d_cli.shapes.DTYPES`.

    Raises
    ------
    ConfigError
        Any other dtype.

    Examples
    --------
    >>> check_dtype("f4"), check_dtype(np.float64)
    (dtype('float32'), dtype('float64'))
    >>> check_dtype("float16")
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: dtype must be 'float32' or 'float64', got 'float16'
    """
    try:
        name: str | None = np.dtype(dtype).name
    except TypeError:
        name = None
    return np.dtype(check_dtype_name(name, dtype))


def check_method(method: object) -> str:
    """Return ``method`` if it is one of :data:`METHODS`.

    Examples
    --------
    >>> check_method("fft")
    'fft'
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return str(method)


def as_real_array(name: str, value: npt.ArrayLike) -> np.ndarray:
    """``np.asarray`` that names the argument when it is ragged or not real numbers.

    Examples
    --------
    >>> as_real_array("weight", [[1, 2]]).shape
    (1, 2)
    >>> as_real_array("bias", ["a"])
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ShapeError: bias must be a real numeric array, got dtype <U1
    """
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
# does) and hand anything else to the shapes.py checker, which owns the rule
# and its messages.
def _size_arg(name: str, value: Any) -> int:
    if type(value) is int and 1 <= value <= MAX_SIZE:
        return value  # type: ignore[no-any-return]
    return check_size(name, value)


def _length_out(
    x: np.ndarray,
    kernel_size: int,
    stride: int,
    dilation: int,
    left: int,
    right: int,
    padding_mode: str,
) -> int:
    """Output length for validated ints: the formula inline, ``output_length`` to raise."""
    length = x.shape[-1]
    field = dilation * (kernel_size - 1) + 1
    if field > MAX_SIZE:
        receptive_field(kernel_size, dilation)  # raises, naming the limit
    padded = length + left + right
    if length == 0 and x.ndim == 3 and x.shape[0] == 0 and padding_mode == "zeros":
        # PyTorch accepts an empty batch of empty signals when zero padding
        # alone fits the kernel, and returns an empty (0, C_out, L_out) result.
        if padded < field:
            output_length(length, kernel_size, stride, (left, right), dilation)  # raises
        return (padded - field) // stride + 1
    if length >= 1 and padded >= field:
        return (padded - field) // stride + 1
    output_length(length, kernel_size, stride, (left, right), dilation)  # raises
    raise AssertionError("unreachable")  # pragma: no cover


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
        check_bias_shape(bias.shape, weight.shape)
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
    length_out = _length_out(x, kernel_size, stride, dilation, left, right, padding_mode)
    if padding_mode != "zeros":
        check_pad_limits(length, left, right, padding_mode)
    dtype = x.dtype
    if not (
        (dtype == _FLOAT32 or dtype == _FLOAT64)
        and weight.dtype == dtype
        and (bias is None or bias.dtype == dtype)
    ):
        dtype = result_dtype(
            *((x.dtype, weight.dtype) if bias is None else (x.dtype, weight.dtype, bias.dtype))
        )
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


def conv1d(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
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
    check_method(method)
    x = as_real_array("input", x)
    weight = as_real_array("weight", weight)
    bias = None if bias is None else as_real_array("bias", bias)
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
        self.method = check_method(method)
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.dilation = dilation
        self.groups = groups
        self.field = dilation * (weight.shape[2] - 1) + 1
        # Prepared operands, built on first use: ("im2col",) -> (G, O, C*K),
        # ("per-tap",) -> (K, G, O, C), ("banded", P) -> band, ("fft", nfft) -> spectrum.
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._bias_column = None if bias is None else bias[:, None]
        self._choices: dict[tuple[int, int], tuple[str, int]] = {}

    def _operands(
        self,
    ) -> tuple[np.ndarray, np.ndarray | None, int, int, int]:
        """What the non-finite repair recomputes with: weight, bias, stride, dilation, groups."""
        return self.weight, self.bias, self.stride, self.dilation, self.groups

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
            self.weight.dtype.itemsize,
        )
        return found

    def frame_outputs(self, n: int, budget: int | None = None) -> int | None:
        """Outputs per call of whole FFT frames when long blocks go through big transforms.

        A stream that calls with this many outputs' input wastes none of a
        transform: a 96 000-tap IR in 131 072-frame blocks would pay for a
        2**18-point frame per block, 131 072 outputs each, where a 3 * 2**17-point
        frame yields 297 217 (float32; the frame length is ``_fft_size``'s). A call
        is :func:`~conv1d_cli.kernels.long_frames_per_call` frames, so that
        each transform call fills pocketfft's SIMD lanes (four frames of each
        channel of a stereo IR), fewer where a call's input would pass ``budget``
        samples per row; None if one frame's would. Decided by shapes only
        (stride 1, an FFT of at least :data:`~conv1d_cli.kernels.LONG_FRAME_NFFT`
        points for a long signal), never by threads. None for shorter frames:
        they are many to a block anyway.

        Examples
        --------
        >>> corr = Correlator(np.ones((2, 1, 96000), np.float32), groups=2)
        >>> corr.frame_outputs(1), corr.frame_outputs(1, budget=500_000)
        (1188868, 297217)
        >>> Correlator(np.ones((2, 1, 101), np.float32), groups=2).frame_outputs(1) is None
        True
        """
        long = self._long_frames(n)
        if long is None:
            return None
        step, per = long
        if budget is not None:
            per = min(per, (budget - self.field + 1) // step)
        return per * step if per > 0 else None

    def _long_frames(self, n: int) -> tuple[int, int] | None:
        """(outputs per frame, frames per call) of a long kernel's frames, else None."""
        if self.stride != 1:
            return None
        name, nfft = self._choose(n, _LONG_SIGNAL + self.field - 1)
        if name != "fft" or nfft < LONG_FRAME_NFFT:
            return None
        c_in = self.weight.shape[1] * self.groups
        per = long_frames_per_call(n, c_in, self.weight.shape[0], self.groups)
        return nfft - self.field + 1, per

    def piece_outputs(self, n: int, budget: int) -> int:
        """Outputs per call for a caller cutting a long stretch into pieces of ``budget``.

        A long kernel gets whole calls of whole frames (:meth:`frame_outputs`),
        fewer frames to a call where a call would pass the budget, one frame at
        least: a piece cut elsewhere would pay for a frame mostly made of the
        previous piece's samples. Otherwise ``budget`` (at least 1).

        Examples
        --------
        >>> corr = Correlator(np.ones((2, 1, 96000), np.float32), groups=2)
        >>> [corr.piece_outputs(1, budget) for budget in (131072, 700_000, 10**7)]
        [297217, 594434, 9510944]
        >>> Correlator(np.ones((2, 1, 101), np.float32), groups=2).piece_outputs(1, 131072)
        131072
        """
        long = self._long_frames(n)
        if long is None:
            return max(1, budget)
        step, per = long
        call = min(per, max(1, budget // step)) * step
        return max(1, budget // call) * call

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

    def __call__(self, xp: np.ndarray, finite: bool = False) -> np.ndarray:
        """Correlate a padded ``(N, C_in, Lp)`` block; returns ``(N, C_out, L_out)``.

        ``finite``: the caller knows ``xp`` holds no NaN/Inf (a checked stream),
        so it is not scanned for the ones whose outputs need the direct sum.
        """
        weight = self.weight
        c_out, c_in_group, kernel_size = weight.shape
        if xp.ndim != 3 or xp.shape[1] != c_in_group * self.groups:
            raise ShapeError(
                f"block must be (N, {c_in_group * self.groups}, L) for weight {weight.shape} "
                f"with groups={self.groups}, got shape {xp.shape}"
            )
        bad = None if finite else _nonfinite(xp)
        if bad is not None:
            out = self(np.where(bad, 0, xp))
            _repair_nonfinite(out, xp, bad, *self._operands())
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
            _repair_nonfinite(
                out, pad1d(x, left, right), pad1d(bad, left, right), *self._operands()
            )
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
