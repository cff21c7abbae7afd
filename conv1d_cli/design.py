"""Kernels for ``conv1d init`` and numbers for ``conv1d inspect``.

- FIR design by the window method (:func:`design_fir`, ``scipy.signal.firwin``),
  simple kernels (:func:`moving_average`, :func:`gaussian`, :func:`identity`,
  :func:`delay`), and SoX/CSV coefficient files (:func:`read_coefficients`).
  All of these return **convolution taps** ``h`` (as SoX, SciPy and MATLAB
  use them); :func:`kernel_layer` turns them into a :class:`Conv1d` that
  reproduces ``scipy.signal.convolve(x, h, 'same')`` -- SoX ``fir`` -- sample
  for sample.
- Kernel statistics (:func:`kernel_stats`), frequency responses
  (:func:`frequency_response`, :func:`response_summary`) and overflow-free
  signal statistics (:class:`SignalStats`).

NumPy only at import time; SciPy is imported inside the functions that need it.

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
import os
import re
from pathlib import Path
from typing import Any, Final

import numpy as np

from conv1d_cli import cells, shapes
from conv1d_cli.errors import ConfigError, DataFileError
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import Padding, check_int

__all__ = [
    "FIR_KINDS",
    "MAX_TAPS",
    "aligned_padding",
    "check_sample_rate",
    "delay",
    "design_fir",
    "frequency_response",
    "gaussian",
    "identity",
    "kernel_layer",
    "kernel_stats",
    "moving_average",
    "parse_coefficients",
    "parse_window",
    "read_coefficients",
    "read_npy",
    "response_summary",
    "SignalStats",
]

#: Window-method designs and how many cutoffs each takes.
FIR_KINDS: Final[dict[str, int]] = {"lowpass": 1, "highpass": 1, "bandpass": 2, "bandstop": 2}

_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


#: Longest kernel the designers make (a typo like --sigma 1e9 must not eat the RAM).
MAX_TAPS: Final = 2**24


def _check_taps(taps: Any, name: str = "taps") -> int:
    taps = check_int(name, taps)
    if taps > MAX_TAPS:
        raise ConfigError(f"{name} must be at most {MAX_TAPS}, got {taps}")
    return taps


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
    if kind not in FIR_KINDS:
        raise ConfigError(f"design must be one of {', '.join(FIR_KINDS)}, got {kind!r}")
    rate = check_sample_rate(sample_rate)
    taps = _check_taps(taps)
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
    if kind in ("highpass", "bandstop") and taps % 2 == 0:
        raise ConfigError(
            f"a {kind} needs an odd number of taps, got {taps}: an even-length "
            f"linear-phase (type II) FIR always has a zero at the Nyquist frequency, so it "
            f"cannot pass high frequencies; use --taps {taps + 1}"
        )
    from scipy import signal

    _check_window(window, taps)
    edges = cutoffs if need == 2 else cutoffs[0]
    h = signal.firwin(taps, edges, window=window, pass_zero=kind, fs=rate)
    return np.asarray(h, dtype=np.float64)


def _check_window(window: Any, taps: int) -> None:
    from scipy import signal

    try:
        signal.get_window(window, taps)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"window {window!r} is not usable: {e} (try hamming, hann, blackman, "
            f"boxcar or kaiser,BETA)"
        ) from e


def check_sample_rate(sample_rate: Any) -> float:
    """Return ``sample_rate`` as a float, else raise ConfigError.

    The one rule of :func:`conv1d_cli.shapes.check_sample_rate` (finite, > 0, at
    most :data:`~conv1d_cli.shapes.MAX_SAMPLE_RATE`), naming the value
    ``sample_rate``.

    Examples
    --------
    >>> check_sample_rate(48000)
    48000.0
    >>> check_sample_rate(float("inf"))
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ConfigError: sample_rate must be at most 2147483647 Hz, got inf
    """
    return shapes.check_sample_rate("sample_rate", sample_rate)


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
                f"{MAX_TAPS} (2**{MAX_TAPS.bit_length() - 1}) are made (give a smaller --sigma)"
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
    layer.sample_rate = None if sample_rate is None else check_sample_rate(sample_rate)
    layer.description = description
    return layer


def read_coefficients(path: str | os.PathLike[str]) -> np.ndarray:
    """Read FIR taps from a SoX ``fir`` coefficient file or a one-column CSV.

    Accepted: numbers separated by any whitespace, ``#`` comments to the end
    of a line (SoX), or one number per line with optional commas as in a
    one-column CSV (a trailing empty field is fine); the first line may be
    a single column name (``coefficient``, by the rule of :mod:`conv1d_cli.cells`) in
    a CSV (a ``.csv``/``.tsv`` name, or a quoted or comma-ended name); a SoX file
    has no header, and anything else that is not a decimal number is an error. Blank
    lines are skipped.

    Returns
    -------
    ndarray
        The taps as float64, in file order.

    Raises
    ------
    DataFileError
        Missing/unreadable/binary file, no numbers, a non-numeric token (with
        its line number), several CSV columns, or non-finite values.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "hp.txt"
    >>> _ = path.write_text("# HP filter\\n# freq=10000\\n-0.25 0.5\\n-0.25\\n")
    >>> read_coefficients(path)
    array([-0.25,  0.5 , -0.25])
    >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, expected a coefficient file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror or e}") from e
    return parse_coefficients(data, str(path))


def parse_coefficients(data: bytes | str, source: str = "<stdin>") -> np.ndarray:
    """Parse the text of a coefficient file (see :func:`read_coefficients`).

    ``source`` names the input in error messages.

    Examples
    --------
    >>> parse_coefficients(b"0.5 0.5  # two taps")
    array([0.5, 0.5])
    """
    path = source
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataFileError(
                f"{path}: not a text coefficient file (byte {e.start} is not UTF-8)"
            ) from e
    else:
        text = data.removeprefix("\ufeff")
    values: list[str] = []
    seen_data = False
    header = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "," in line:
            fields = [f.strip().strip('"').strip("'").strip() for f in line.split(",")]
            while fields and fields[-1] == "":
                fields.pop()
            if len(fields) != 1:
                raise DataFileError(
                    f"{path}: line {number}: expected one column of coefficients, found "
                    f"{len(fields)} fields in {raw.strip()!r}"
                )
            tokens = fields
        else:
            tokens = [t.strip('"').strip("'") for t in line.split()]
        bad = [k for k, t in enumerate(tokens) if not _NUMBER.fullmatch(t)]
        if bad:
            # Only a one-column CSV may start with a column name ("coefficient"); a SoX
            # file has none (SoX reads none), so there a mistyped first tap such as
            # "O" or "O.25" is an error, never a header that drops a tap.
            csv_like = Path(path).suffix.lower() in (".csv", ".tsv") or any(
                mark in raw for mark in (",", '"', "'")
            )
            if not seen_data and len(tokens) == 1 and csv_like and cells.is_name(tokens[0]):
                seen_data = True
                header = raw.strip()
                continue
            raise DataFileError(
                f"{path}: line {number}: {tokens[bad[0]]!r} is not a number (field {bad[0] + 1}; "
                f"expected decimal coefficients separated by whitespace or one per CSV line, "
                f"'#' comments, and in a .csv at most a column name on the first line)"
            )
        seen_data = True
        values.extend(tokens)
    if not values:
        extra = f" (only the header line {header!r})" if header else ""
        raise DataFileError(f"{path}: holds no coefficients{extra}")
    taps = np.array([float(v) for v in values])
    if not np.isfinite(taps).all():
        raise DataFileError(f"{path}: coefficients overflow to infinity")
    return taps


def read_npy(path: str | os.PathLike[str], name: str = "array") -> np.ndarray:
    """Load a ``.npy`` array of real numbers (never unpickling), for ``init --weight``.

    Integers become float64; bool, complex and object arrays, empty arrays and
    non-finite values are refused.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "k.npy"
    >>> np.save(path, np.array([1, 2, 1]))
    >>> read_npy(path, "weight")
    array([1., 2., 1.])
    >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such {name} file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, expected a {name} .npy file")
    try:
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if not isinstance(loaded, np.ndarray):
                loaded.close()
                raise DataFileError(
                    f"{path}: is an .npz archive; --{name} takes one .npy array "
                    f"(a layer .npz is used directly by apply/inspect)"
                )
    except DataFileError:
        raise
    except ValueError as e:
        what = "holds pickled objects, which are never loaded" if "pickle" in str(e) else str(e)
        raise DataFileError(f"{path}: not a usable .npy {name}: {what}") from e
    except Exception as e:
        # Truncated or foreign files: numpy raises EOFError, OSError, SyntaxError, ...
        raise DataFileError(f"{path}: cannot read .npy {name}: {e}") from e
    if loaded.dtype.kind not in "iuf":
        raise DataFileError(
            f"{path}: {name} must hold real numbers (float or integer), got dtype {loaded.dtype}"
        )
    if loaded.size == 0:
        raise DataFileError(f"{path}: {name} is empty (shape {loaded.shape})")
    if loaded.dtype.kind != "f":
        loaded = loaded.astype(np.float64)
    if not np.isfinite(loaded).all():
        raise DataFileError(f"{path}: {name} holds non-finite values (NaN or Inf)")
    return loaded


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
    rate = check_sample_rate(sample_rate)
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
