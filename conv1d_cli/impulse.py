"""Impulse responses from audio files as layers: rooms, speakers, true-stereo reverb.

:func:`read_impulse_response` reads an IR through the signal readers (any audio
format soundfile reads, ``-`` for stdin); :func:`impulse_layer` turns its taps
into a causal :class:`~conv1d_cli.layer.Conv1d` that convolves with them, and
:func:`impulse_response_layer` does both (what ``conv1d init --impulse-response``
calls).

Channels of the IR and the layer
--------------------------------
- 1 channel: the same kernel on each of ``channels`` channels (depthwise,
  weight ``(channels, 1, K)``, ``groups = channels``).
- 2 channels: channel ``i`` of the signal is filtered by IR channel ``i``
  (depthwise, weight ``(2, 1, K)``, ``groups = 2``).
- 4 channels with ``true_stereo=True``: a 2x2 MIMO layer, weight ``(2, 2, K)``.
  The IR channels are, in this order, **LL, LR, RL, RR**, where ``LR`` is the
  path *from input L to output R* (left source recorded by the right
  microphone): the order of Steinberg REVerence, the LV2 ``ir`` plugin
  (``convert4chan``: "L->L, L->R, R->L, R->R") and the Web Audio
  ``ConvolverNode`` 4-channel matrix. So ``out_L = LL * in_L + RL * in_R`` and
  ``out_R = LR * in_L + RR * in_R`` (``*`` is convolution); in PyTorch's layout
  ``weight[o, i]`` is the path from input ``i`` to output ``o``:
  ``weight[0, 0] = LL``, ``weight[1, 0] = LR``, ``weight[0, 1] = RL``,
  ``weight[1, 1] = RR`` (each time-reversed, see below).

Conv1d correlates (as PyTorch does), so the stored weights are the IR reversed
in time: applying the layer convolves with the IR, like ``--coefficients``
taps (:func:`conv1d_cli.filters.kernel_layer`). The padding is ``causal``:
output sample ``n`` depends on inputs ``<= n`` and has the input's length,
i.e. ``out = scipy.signal.oaconvolve(x, h)[:len(x)]``, as FFmpeg ``afir``
outputs it.

Processing order: :func:`trim_tail`, then the gain of :func:`ir_gain`, then
the dry/wet ``mix`` (the dry path a unit impulse at :func:`onset`). NumPy only
at import time.
"""

from __future__ import annotations

import math
import os
from typing import Any, Final, NamedTuple

import numpy as np

from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError, FormatError, shown_path
from conv1d_cli.io.formats import detect_format
from conv1d_cli.io.inputs import read_signal
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import Padding, check_int, check_sample_rate

__all__ = [
    "IR_NORMS",
    "ONSET_DB",
    "ImpulseResponse",
    "impulse_layer",
    "impulse_response_layer",
    "ir_gain",
    "onset",
    "read_impulse_response",
    "trim_tail",
]

#: ``norm`` values of :func:`ir_gain` (``none`` leaves the IR as recorded).
IR_NORMS: Final[tuple[str, ...]] = ("none", "peak", "dc", "energy")

#: The onset of an IR is its first tap within this many dB of the peak.
ONSET_DB: Final = 20.0

#: Audio subtypes whose samples float32 does not hold exactly.
_WIDE_SUBTYPES: Final = frozenset({"PCM_32", "DOUBLE", "ALAC_32"})

#: IR channel counts with a rule, and what each makes.
_LAYOUTS: Final = "1 (mono: every channel), 2 (stereo: channel by channel) or 4 (true stereo)"


class ImpulseResponse(NamedTuple):
    """An impulse response as read from a file."""

    #: Convolution taps, ``(channels, K)`` float64, in file order.
    taps: np.ndarray
    #: The file's sample rate in Hz.
    sample_rate: float
    #: The path as given (``"-"`` for stdin).
    path: str
    #: The dtype that holds every sample of the file exactly: float32 for PCM up to
    #: 24 bits, 32-bit float and lossy codecs; float64 for 32-bit PCM (and ALAC) and doubles.
    dtype: str = "float64"


def read_impulse_response(path: str | os.PathLike[str]) -> ImpulseResponse:
    """Read an impulse response from an audio file (``"-"``: stdin).

    Any format libsndfile reads, told from the file's bytes; on stdin the
    containers that stream from a pipe (WAV, W64, AU, AIFF, OGG). Integer PCM is
    scaled to [-1, 1) as usual, so a 16-bit IR with a full-scale peak has peak 1.

    Raises
    ------
    DataFileError
        A missing, empty or non-audio file (CSV and NPY hold no sample rate: read
        taps with :mod:`conv1d_cli.io.coefficients` instead), non-finite samples,
        or only zeros.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from conv1d_cli.io.outputs import write_signal
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = str(pathlib.Path(tmp.name) / "ir.wav")
    >>> _ = write_signal(path, np.array([[1.0, 0.5, 0.25]]), format="wav", sample_rate=8000,
    ...                  subtype="FLOAT")
    >>> ir = read_impulse_response(path)
    >>> ir.taps, ir.sample_rate
    (array([[1.  , 0.5 , 0.25]]), 8000.0)
    >>> tmp.cleanup()
    """
    text = os.fspath(path)
    try:
        fmt = detect_format(text)
    except FormatError:
        # stdin or an unusual extension: libsndfile tells the container from the bytes,
        # so any audio name will do (it only appears in messages).
        fmt = "wav"
    if fmt in ("csv", "npy"):
        raise DataFileError(
            f"{text}: an impulse response must be an audio file (WAV, FLAC, ...), found "
            f"{fmt.upper()}, which has no sample rate",
            hint="read plain taps with {parameter:coefficients}",
        )
    try:
        signal = read_signal(text, fmt)
    except Conv1dError as e:
        raise e.about(text) from e
    taps = np.asarray(signal.data, dtype=np.float64)
    rate = signal.info.sample_rate
    assert rate is not None  # audio always has one
    _check_taps(taps, text)
    wide = signal.info.subtype in _WIDE_SUBTYPES
    return ImpulseResponse(taps, float(rate), text, "float64" if wide else "float32")


def _check_taps(taps: np.ndarray, source: str | None) -> None:
    if taps.ndim != 2 or 0 in taps.shape:
        raise DataFileError(
            f"an impulse response must be (channels, taps) with at least one tap, "
            f"got shape {taps.shape}",
            path=source,
        )
    if not np.isfinite(taps).all():
        raise DataFileError("the impulse response holds NaN or Inf samples", path=source)
    if not taps.any():
        raise DataFileError("the impulse response is silent (every sample is 0)", path=source)


def ir_gain(taps: Any, norm: str = "none") -> float:
    """The gain that normalises ``taps`` (``(channels, K)`` or ``(K,)``) by ``norm``.

    One gain for all channels, so the balance between channels (and between the
    paths of a true-stereo IR) is kept; ``h_c`` is IR channel ``c``:

    - ``none``: 1
    - ``peak``: ``1 / max_c max_k |h_c[k]|`` (largest tap becomes +-1)
    - ``dc``: ``1 / max_c |sum_k h_c[k]|`` (DC gain 1 in the loudest channel)
    - ``energy``: ``1 / sqrt(max_c sum_k h_c[k]**2)`` (unit energy in the loudest
      channel: white noise keeps its level; pedalboard's normalisation without its
      0.125, afir's ``irnorm=2`` with ``irlink``)

    Raises
    ------
    ConfigError
        An unknown ``norm``; DataFileError when the quantity is zero (``dc`` of an
        IR whose taps sum to 0).

    Examples
    --------
    >>> h = np.array([[0.5, -0.25, 0.25]])
    >>> [round(ir_gain(h, n), 4) for n in IR_NORMS]
    [1.0, 2.0, 2.0, 1.633]
    """
    if norm not in IR_NORMS:
        raise ConfigError(
            f"{{parameter}} must be one of {', '.join(IR_NORMS)}, got {norm!r}",
            parameter="ir_norm",
        )
    h = np.atleast_2d(np.asarray(taps, dtype=np.float64))
    if norm == "none":
        return 1.0
    if norm == "peak":
        size = float(np.abs(h).max())
    elif norm == "dc":
        size = float(np.abs(h.sum(axis=-1)).max())
    else:
        size = math.sqrt(float((h * h).sum(axis=-1).max()))
    if not size > 0:
        raise DataFileError(
            f"the impulse response's taps sum to 0, so {{parameter}} {norm} cannot "
            "scale its DC gain to 1",
            parameter="ir_norm",
        )
    return 1.0 / size


def trim_tail(taps: Any, db: float) -> np.ndarray:
    """``taps`` (``(channels, K)``) cut after the last tap within ``db`` dB of the peak.

    The threshold is ``peak * 10**(-db/20)`` with ``peak`` the largest ``|tap|`` of
    all channels; every channel keeps the taps up to the last one, in any channel,
    at or above it. The start (the pre-delay) is kept.

    Examples
    --------
    >>> trim_tail(np.array([[0.0, 1.0, 0.5, 0.01, 0.001]]), 40)
    array([[0.  , 1.  , 0.5 , 0.01]])
    """
    value = _check_positive_db(db)
    h = np.atleast_2d(np.asarray(taps, dtype=np.float64))
    level = np.abs(h).max(axis=0)
    keep = np.flatnonzero(level >= level.max() * 10.0 ** (-value / 20.0))
    return h[:, : int(keep[-1]) + 1]


def _check_positive_db(db: Any) -> float:
    if isinstance(db, bool) or not isinstance(db, (int, float, np.number)):
        raise ConfigError(f"{{parameter}} must be a number of dB, got {db!r}", parameter="trim")
    value = float(db)
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"{{parameter}} must be a positive number of dB below the peak (e.g. 60), "
            f"got {value:g}",
            parameter="trim",
        )
    return value


def onset(taps: Any) -> int:
    """Index of the first tap (of any channel) within :data:`ONSET_DB` dB of the peak.

    Examples
    --------
    >>> onset(np.array([[0.0, 0.05, 0.2, 1.0, 0.3]]))
    2
    """
    level = np.abs(np.atleast_2d(np.asarray(taps, dtype=np.float64))).max(axis=0)
    return int(np.argmax(level >= level.max() * 10.0 ** (-ONSET_DB / 20.0)))


def _check_mix(mix: Any) -> float:
    if isinstance(mix, bool) or not isinstance(mix, (int, float, np.number)):
        raise ConfigError(
            f"{{parameter}} must be a number from 0 to 1, got {mix!r}", parameter="mix"
        )
    value = float(mix)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ConfigError(
            f"{{parameter}} must be from 0 (dry) to 1 (wet), got {value:g}", parameter="mix"
        )
    return value


def _weight(
    taps: np.ndarray, channels: int | None, true_stereo: bool, source: str | None
) -> tuple[np.ndarray, int]:
    """The correlation weight and groups for ``taps`` (``(C_ir, K)``), by the channel rules."""
    count = taps.shape[0]
    shown = source or "the impulse response"
    if true_stereo:
        if count != 4:
            raise ConfigError(
                f"{{parameter}} needs a 4-channel impulse response (LL, LR, RL, RR), "
                f"but {shown} has {count}",
                parameter="true_stereo",
            )
        if channels not in (None, 2):
            raise ConfigError(
                f"a true-stereo impulse response makes a 2-channel layer, "
                f"got {{parameter}} {channels}",
                parameter="channels",
            )
        ll, lr, rl, rr = taps[:, ::-1]
        # weight[o, i] is the path from input i to output o.
        return np.array([[ll, rl], [lr, rr]]), 1
    if count == 1:
        groups = 1 if channels is None else check_int("channels", channels)
        return np.broadcast_to(taps[:, ::-1], (groups, 1, taps.shape[1])), groups
    if count == 2:
        if channels not in (None, 2):
            raise ConfigError(
                f"a stereo impulse response filters 2 channels (channel i by IR channel i), "
                f"got {{parameter}} {channels}",
                parameter="channels",
            )
        return taps[:, None, ::-1], 2
    if count == 4:
        raise ConfigError(
            f"{shown} has 4 channels: give {{parameter}} to read them as a true-stereo IR "
            f"(LL, LR, RL, RR)",
            parameter="true_stereo",
        )
    raise DataFileError(
        f"an impulse response must have {_LAYOUTS} channels, found {count}", path=source
    )


def impulse_layer(
    taps: Any,
    sample_rate: float,
    *,
    channels: int | None = None,
    true_stereo: bool = False,
    norm: str = "none",
    trim: float | None = None,
    mix: float | None = None,
    padding: Padding | None = None,
    stride: int = 1,
    dilation: int = 1,
    padding_mode: str = "zeros",
    bias: bool = False,
    dtype: Any = "float64",
    source: str | None = None,
) -> Conv1d:
    """A causal layer that convolves with the impulse response ``taps``.

    Parameters
    ----------
    taps : array_like
        ``(channels, K)`` (or ``(K,)``) convolution taps; 1, 2 or (with
        ``true_stereo``) 4 channels, as the module docstring describes.
    sample_rate : float
        The IR's rate, recorded in the layer as binding
        (:attr:`~conv1d_cli.layer.Conv1d.sample_rate_binding`): ``apply`` refuses
        a signal at another rate, naming both (nothing is resampled).
    channels : int, optional
        Channels a mono IR filters (default 1: ``apply`` runs a one-channel layer on
        every channel of an audio file); 2 or None for the others.
    true_stereo : bool
        Read a 4-channel IR as the paths LL, LR, RL, RR of a 2x2 MIMO layer.
    norm : {'none', 'peak', 'dc', 'energy'}
        Scale the IR by :func:`ir_gain` (after ``trim``).
    trim : float, optional
        Cut the tail below ``trim`` dB under the peak (:func:`trim_tail`), > 0.
    mix : float, optional
        Wet share ``WET`` in [0, 1]: the layer is ``WET * IR + (1 - WET) * delta``, the
        dry path a unit impulse at the IR's :func:`onset` (on LL and RR only for a
        true-stereo IR), so one layer is the whole effect and dry and wet line up.
    padding : optional
        Default ``"causal"``: output ``n`` depends on inputs ``<= n``, same length.
    stride, dilation, padding_mode, bias, dtype
        As for :class:`Conv1d`; a bias is zeros. float64 by default, as designs are.
    source : str, optional
        The IR's file, named in messages and the description.

    Examples
    --------
    >>> h = np.array([[1.0, 0.5, 0.25]])
    >>> layer = impulse_layer(h, 8000)
    >>> x = np.array([[1.0, 0.0, 0.0, 2.0]])
    >>> layer(x), np.convolve(x[0], h[0])[:4]
    (array([[1.  , 0.5 , 0.25, 2.  ]]), array([1.  , 0.5 , 0.25, 2.  ]))
    >>> impulse_layer(h, 8000, mix=0.5).weight[0, 0, ::-1]  # 0.5 * h + 0.5 * delta
    array([1.   , 0.25 , 0.125])
    """
    rate = check_sample_rate("sample_rate", sample_rate)
    h = np.atleast_2d(np.asarray(taps))
    if h.dtype.kind not in "iuf":
        raise ConfigError(f"impulse response taps must be real numbers, got dtype {h.dtype}")
    h = h.astype(np.float64)
    _check_taps(h, source)
    notes = []
    if trim is not None:
        kept = h.shape[1]
        h = trim_tail(h, trim)
        notes.append(f"trimmed at -{float(trim):g} dB ({kept} -> {h.shape[1]} taps)")
    gain = ir_gain(h, norm)
    if norm != "none":
        h = h * gain
        notes.append(f"{norm}-normalised (gain {gain:.6g})")
    if mix is not None:
        wet = _check_mix(mix)
        start = onset(h)
        h = h * wet
        direct = (0, 3) if true_stereo and h.shape[0] == 4 else range(h.shape[0])
        for c in direct:
            h[c, start] += 1.0 - wet
        notes.append(f"mix {wet:g} wet (dry impulse at tap {start})")
    weight, groups = _weight(h, channels, true_stereo, source)
    weight = np.asarray(weight, dtype=dtype)
    layer = Conv1d.from_weights(
        weight,
        np.zeros(weight.shape[0], weight.dtype) if bias else None,
        stride=stride,
        padding="causal" if padding is None else padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    layer.sample_rate = rate
    # The taps are samples of a recording: at another rate every delay and
    # resonance moves, so a mismatch is refused, not warned about.
    layer.sample_rate_binding = True
    kind = "true stereo LL LR RL RR" if true_stereo else ("mono", "stereo")[h.shape[0] - 1]
    name = f"impulse response {shown_path(source)}" if source else "impulse response"
    layer.description = ", ".join([f"{name} ({kind}, {h.shape[1]} taps at {rate:g} Hz)", *notes])
    return layer


def impulse_response_layer(
    path: str | os.PathLike[str], *, sample_rate: float | None = None, **options: Any
) -> Conv1d:
    """:func:`read_impulse_response` then :func:`impulse_layer`: ``init --impulse-response``.

    ``sample_rate``, if given, must equal the file's (no resampling here).
    ``options`` are :func:`impulse_layer`'s keywords; ``dtype`` (None or left
    out) is the file's precision, :attr:`ImpulseResponse.dtype`: float32 for an
    IR of up to 24-bit PCM or 32-bit float, whose every tap it holds exactly, as
    FFmpeg's ``afir`` and pedalboard compute. A 96 000-tap stereo IR then
    filters about 1.5x faster than in float64, within ~1e-6 of the peak.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from conv1d_cli.io.outputs import write_signal
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = str(pathlib.Path(tmp.name) / "hall.wav")
    >>> _ = write_signal(path, np.array([[1.0, 0.5], [0.5, 1.0]]), format="wav",
    ...                  sample_rate=48000, subtype="FLOAT")
    >>> layer = impulse_response_layer(path)
    >>> layer.weight.shape, layer.groups, layer.sample_rate, layer.sample_rate_binding
    ((2, 1, 2), 2, 48000.0, True)
    >>> layer.weight.dtype
    dtype('float32')
    >>> tmp.cleanup()
    """
    ir = read_impulse_response(path)
    if options.get("dtype") is None:
        options["dtype"] = ir.dtype
    if sample_rate is not None:
        rate = check_sample_rate("sample_rate", sample_rate)
        if abs(rate - ir.sample_rate) > 1e-9 * ir.sample_rate:
            raise ConfigError(
                f"{ir.path} was recorded at {ir.sample_rate:g} Hz but {{parameter}} is "
                f"{rate:g} Hz; an impulse response is not resampled (resample the file first)",
                parameter="sample_rate",
            )
    try:
        return impulse_layer(ir.taps, ir.sample_rate, source=ir.path, **options)
    except DataFileError as e:  # option errors name their option, not the file
        raise e.about(ir.path) from e
