"""Streaming a chain of Conv1d layers over a signal in blocks, in bounded memory.

Each layer becomes a :class:`LayerStage`: ``push(block)`` takes the next
``(N, C_in, n)`` samples and returns every output that is complete so far,
``finish()`` returns the rest. A stage keeps only ``field - 1`` samples of
history (``field = dilation*(K-1) + 1``) plus the stride phase, so memory does
not grow with the signal, and the concatenated outputs equal the whole-signal
:func:`conv1d_cli.core.conv1d` result for every padding mode -- every output
sees exactly the same input samples; the sums agree to rounding (with
``method='direct'`` the BLAS products may group terms differently for a
different block width, observed at most 1 ulp; FFT within ~1e-7 of the peak in
float32):

- ``zeros``: ``left`` zeros before the first sample, ``right`` after the last.
  Like every pad longer than ~1 MiB of samples, they are fed to the layer a
  piece at a time (``push_pieces`` / ``finish_pieces`` yield the outputs as
  they come), so ``padding=10**7`` costs no more memory than a short pad.
- ``reflect`` / ``replicate``: the left pad is made from the first samples (the
  stage waits until it has ``left + 1`` / 1 of them); the right pad from the
  last samples, which the stage keeps as it goes.
- ``circular``: the right pad is the first ``right`` samples (kept); the left
  pad needs the *last* ``left`` samples of the signal before anything can be
  computed. Pass them as ``prefix`` (a seekable file can read its tail
  first). Without them -- a later layer of a chain or a pipe -- that stage
  falls back to whole-signal processing: it buffers its whole input and
  computes at :meth:`LayerStage.finish`. This is the one case whose memory
  grows with the signal.

:class:`StreamChain` runs stages in order (the output of stage *i* feeds stage
*i + 1*). :func:`check_chain` and :func:`chain_output_length` check channel
counts and lengths before any data is read. NumPy only: no click, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import numpy as np

from conv1d_cli.core import METHODS, Correlator, pad1d
from conv1d_cli.errors import ConfigError, DataFileError, ShapeError
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import (
    MAX_ARRAY_BYTES,
    LayerSpec,
    broadcast_notice,
    chain_min_input_length,
    channels_hint,
    min_input_length,
    mono_broadcast,
    output_length,
)

__all__ = [
    "BLOCK_FRAMES",
    "BLOCK_SAMPLES",
    "broadcast_first_layer",
    "LayerStage",
    "StreamChain",
    "chain_min_length",
    "chain_output_length",
    "block_frames",
    "chain_shapes",
    "check_chain",
    "check_finite",
    "check_stage_memory",
    "compute_dtype",
    "stream_filter",
]

# Padding longer than this many bytes of samples is fed to the correlator a
# piece at a time, like a signal read block by block: a pad of 10**7 zeros is
# no reason to allocate 10**7 samples (or their outputs) at once.
_PAD_PIECE_BYTES: Final = 2**20
#: Samples (frames x channels x batch) per block when the caller does not choose:
#: 1 MiB of float32. Measured on one core, filtering 10 minutes of stereo 48 kHz
#: through 31 to 4097 taps, against 2**17 frames per block: 2**18 +5-10%, 2**16
#: +0-25%, 2**15 +2-60%, 2**14 +15-150% (longer kernels suffer more: the FFT
#: frames and the per-block work stop being amortised); decoding and encoding
#: do not care from 2**16 on.
BLOCK_SAMPLES: Final = 1 << 18
#: Frames per block are kept within these bounds (whatever the channel count).
BLOCK_FRAMES: Final = (1 << 12, 1 << 17)


def block_frames(channels: int, batch: int | None = None, requested: int | None = None) -> int:
    """Frames to read per block: ``requested`` as it is, else a fixed sample budget.

    The one place that sizes streaming blocks. A block size the user asked
    for is latency on a pipe, so it is never enlarged; the default keeps a
    block at :data:`BLOCK_SAMPLES` samples whatever the channel count, so
    memory does not grow with it.

    Examples
    --------
    >>> block_frames(2), block_frames(64), block_frames(2, requested=100)
    (131072, 4096, 100)
    """
    if requested is not None:
        return requested
    per_frame = max(1, channels * (batch or 1))
    return max(BLOCK_FRAMES[0], min(BLOCK_FRAMES[1], BLOCK_SAMPLES // per_frame))


def _label(index: int, names: Sequence[str] | None) -> str:
    """``layer 2 (b.npz)`` -- 1-based, as a user counts ``-w`` options."""
    if names is not None and index < len(names) and names[index]:
        return f"layer {index + 1} ({names[index]})"
    return f"layer {index + 1}"


def _short(index: int, names: Sequence[str] | None) -> str:
    if names is not None and index < len(names) and names[index]:
        return str(names[index])
    return f"layer {index + 1}"


def chain_shapes(layers: Sequence[Conv1d], names: Sequence[str] | None = None) -> str:
    """The chain's channel flow as text, e.g. ``2 -> [a.npz] -> 4 -> [b.npz] -> 1``.

    Examples
    --------
    >>> a = Conv1d.from_weights(np.ones((4, 2, 3)))
    >>> b = Conv1d.from_weights(np.ones((1, 4, 5)))
    >>> chain_shapes([a, b], ["a.npz", "b.npz"])
    '2 -> [a.npz] -> 4 -> [b.npz] -> 1'
    """
    parts = [str(layers[0].in_channels)] if layers else []
    for i, layer in enumerate(layers):
        parts.append(f"[{_short(i, names)}]")
        parts.append(str(layer.out_channels))
    return " -> ".join(parts)


def check_chain(
    layers: Sequence[Conv1d],
    names: Sequence[str] | None = None,
    in_channels: int | None = None,
    source: str = "the input",
) -> None:
    """Refuse a chain whose channel counts do not line up (before reading any data).

    Parameters
    ----------
    layers : sequence of Conv1d
        In application order.
    names : sequence of str, optional
        Shown in messages (usually the layer file names).
    in_channels : int, optional
        Channels of the signal, if known; checked against the first layer.
    source : str
        How to call the signal in the message (e.g. its file name).

    Raises
    ------
    ConfigError
        Empty chain.
    ShapeError
        A layer's ``in_channels`` differs from what feeds it.

    Examples
    --------
    >>> a = Conv1d.from_weights(np.ones((2, 1, 3)))
    >>> b = Conv1d.from_weights(np.ones((1, 4, 3)))
    >>> check_chain([a, b], ["a.npz", "b.npz"])  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ShapeError: layer 2 (b.npz) expects 4 input channels but
    layer 1 (a.npz) produces 2: 1 -> [a.npz] -> 2 -> [b.npz] expects 4
    """
    if not layers:
        raise ConfigError("no layer given (use -w LAYER at least once)")
    if in_channels is not None and in_channels != layers[0].in_channels:
        raise ShapeError(
            f"{source} has {in_channels} channel{'s' if in_channels != 1 else ''} but "
            f"{_label(0, names)} expects {layers[0].in_channels} input channels "
            f"(weight {tuple(layers[0].weight.shape)}, groups={layers[0].groups})"
            f"{channels_hint(in_channels)}"
        )
    for i in range(1, len(layers)):
        want, have = layers[i].in_channels, layers[i - 1].out_channels
        if want != have:
            flow = chain_shapes(layers[:i], names)
            raise ShapeError(
                f"{_label(i, names)} expects {want} input channels but "
                f"{_label(i - 1, names)} produces {have}: "
                f"{flow} -> [{_short(i, names)}] expects {want}"
            )


def broadcast_first_layer(
    layers: Sequence[Conv1d],
    in_channels: int | None,
    format: str | None,
    names: Sequence[str] | None = None,
    source: str = "the input",
) -> tuple[list[Conv1d], str | None]:
    """``apply``'s side of :func:`conv1d_cli.shapes.mono_broadcast`.

    When the rule applies, the first layer (weight ``(1, 1, K)``, groups 1) is
    replaced by the depthwise layer ``(C, 1, K)`` with ``groups=C`` holding the same
    kernel (and bias) for every channel: each channel gets exactly the result it
    would get alone. Returns the chain and the one-line notice (None if unchanged).

    Examples
    --------
    >>> fir = Conv1d.from_weights(np.array([[[0.25, 0.5, 0.25]]]), padding="same")
    >>> chain, notice = broadcast_first_layer([fir], 2, "wav", ["lp.npz"], "a.wav")
    >>> chain[0].weight.shape, chain[0].groups
    ((2, 1, 3), 2)
    >>> chain[0](np.array([[0.0, 4.0, 0.0], [4.0, 0.0, 0.0]]))
    array([[1., 2., 1.],
           [2., 1., 0.]])
    >>> broadcast_first_layer([fir], 2, "npy")[1] is None
    True
    """
    layers = list(layers)
    if not layers or not mono_broadcast(layers[0], in_channels, format):
        return layers, None
    assert in_channels is not None
    first = layers[0]
    wide = Conv1d.from_weights(
        np.repeat(first.weight, in_channels, axis=0),
        None if first.bias is None else np.repeat(first.bias, in_channels),
        stride=first.stride,
        padding=first.padding,
        dilation=first.dilation,
        groups=in_channels,
        padding_mode=first.padding_mode,
    )
    wide.sample_rate = first.sample_rate
    wide.description = first.description
    layers[0] = wide
    return layers, broadcast_notice(_label(0, names), in_channels, source)


def check_stage_memory(
    layers: Sequence[Conv1d],
    names: Sequence[str] | None = None,
    batch: int | None = None,
    dtype: Any = np.float64,
) -> None:
    """Refuse a layer whose receptive field alone is too big to hold.

    Every hyperparameter is at most :data:`~conv1d_cli.shapes.MAX_SIZE`, but a
    stage still holds ``field`` samples of history plus a piece of at least one
    receptive field for every row (batch x channel), and the FFT path a copy of
    the dilated kernel (``field`` taps, float64) per kernel. Each of those must fit
    in :data:`~conv1d_cli.shapes.MAX_ARRAY_BYTES` -- the same bound as a layer
    file's largest entry -- so a dilation of 2**30 is refused here instead of
    failing in NumPy with a ``MemoryError`` (or swapping) once data flows. Padding
    does not count: zero and replicate pads are fed a piece at a time, and reflect
    and circular pads are bounded by the signal.

    Raises
    ------
    ShapeError
        Naming the layer, what it would hold and the limit.

    Examples
    --------
    >>> layer = Conv1d.from_weights(np.ones((1, 1, 3)), dilation=2**29)
    >>> check_stage_memory([layer], ["big.npz"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ShapeError: layer 1 (big.npz): receptive field 1073741825 needs ...
    >>> check_stage_memory([Conv1d.from_weights(np.ones((1, 1, 3)), padding=2**30)])
    """
    itemsize = np.dtype(dtype).itemsize
    rows = batch or 1
    for i, layer in enumerate(layers):
        field = layer.dilation * (layer.kernel_size - 1) + 1
        buffered = 2 * field * rows * layer.in_channels * itemsize
        kernels = field * layer.out_channels * (layer.in_channels // layer.groups) * 8
        if max(buffered, kernels) > MAX_ARRAY_BYTES:
            raise ShapeError(
                f"{_label(i, names)}: receptive field {field} "
                f"needs {max(buffered, kernels) / 2**30:,.1f} GiB of buffers "
                f"({rows * layer.in_channels} row(s) of {np.dtype(dtype).name}); at most "
                f"{MAX_ARRAY_BYTES / 2**30:,.1f} GiB are allowed"
            )


def _layer_min_length(layer: Conv1d) -> int:
    return min_input_length(
        layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.padding_mode
    )


def chain_min_length(layers: Sequence[Conv1d]) -> int:
    """Smallest signal length the whole chain accepts.

    The arithmetic is :func:`conv1d_cli.shapes.chain_min_input_length`, shared
    with ``conv1d shape``.

    Examples
    --------
    >>> a = Conv1d.from_weights(np.ones((1, 1, 5)), stride=2)
    >>> b = Conv1d.from_weights(np.ones((1, 1, 3)))
    >>> chain_min_length([a, b])
    9
    """
    return chain_min_input_length(
        [
            LayerSpec(
                layer.kernel_size,
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                padding_mode=layer.padding_mode,
            )
            for layer in layers
        ]
    )


def chain_output_length(
    layers: Sequence[Conv1d],
    length: int,
    names: Sequence[str] | None = None,
    source: str = "the input",
) -> int:
    """Length of the chain's output for ``length`` input samples, or a clear error.

    Raises
    ------
    ShapeError
        If the signal is empty, shorter than a layer's kernel allows, or too
        short for its reflect/circular padding; the message names the layer
        and the minimum input length of the whole chain.

    Examples
    --------
    >>> a = Conv1d.from_weights(np.ones((1, 1, 5)))
    >>> chain_output_length([a], 12)
    8
    >>> chain_output_length([a], 3, ["lp.npz"], "x.wav")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.ShapeError: x.wav: 3 samples is too short for layer 1 (lp.npz)
    (kernel_size 5, dilation 1, padding (0, 0), padding_mode 'zeros'): it needs at
    least 5 input samples
    """
    if length < 1:
        raise ShapeError(f"{source}: the signal is empty (0 samples)")
    current = length
    for i, layer in enumerate(layers):
        need = _layer_min_length(layer)
        if current < need:
            left, right = layer.resolved_padding()
            mode = layer.padding_mode
            detail = (
                f"kernel_size {layer.kernel_size}, dilation {layer.dilation}, "
                f"padding ({left}, {right}), padding_mode {mode!r}"
            )
            if mode == "reflect" and max(left, right) >= current:
                detail += "; reflect padding must be smaller than the signal"
            elif mode == "circular" and max(left, right) > current:
                detail += "; circular padding cannot wrap around more than once"
            overall = chain_min_length(layers)
            if i == 0:
                text = (
                    f"{source}: {length} samples is too short for {_label(i, names)} "
                    f"({detail}): it needs at least {need} input samples"
                )
                if overall != need:
                    text += f"; the whole chain needs at least {overall}"
            else:
                text = (
                    f"{source}: {length} samples is too short for the chain: "
                    f"{_label(i, names)} gets {current} samples but needs at least {need} "
                    f"({detail}); the input needs at least {overall} samples"
                )
            raise ShapeError(text)
        current = output_length(
            current, layer.kernel_size, layer.stride, layer.padding, layer.dilation
        )
    return current


def compute_dtype(layers: Sequence[Conv1d], dtype: Any = None) -> np.dtype[Any]:
    """float32 if asked or if every layer is float32 (and none asked), else float64.

    Examples
    --------
    >>> compute_dtype([Conv1d.from_weights(np.ones((1, 1, 3), np.float32))])
    dtype('float32')
    """
    if dtype is not None:
        resolved = np.dtype(dtype)
        if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
        return resolved
    if layers and all(layer.weight.dtype == np.float32 for layer in layers):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_finite(
    block: np.ndarray,
    offset: int = 0,
    source: str = "the input",
    *,
    anyway: str = "filter non-finite values anyway",
) -> None:
    """Raise ``DataFileError`` naming the first NaN/Inf in a ``(N, C, n)`` block.

    ``offset`` is the block's first sample index in the whole signal; ``anyway`` ends
    the hint "pass --allow-nonfinite to ...".

    Examples
    --------
    >>> x = np.array([[[0.0, 1.0], [np.inf, 2.0]]])
    >>> check_finite(x, offset=10, source="x.csv")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.DataFileError: x.csv: inf at channel 1, sample 10 (0-based);
    pass --allow-nonfinite to filter non-finite values anyway
    """
    # One SIMD reduction is much cheaper than a boolean mask per block; NaN and Inf
    # propagate through the sum. A finite signal whose sum overflows just takes
    # the exact path below and passes.
    with np.errstate(over="ignore", invalid="ignore"):  # a sum of 1e308s, or Inf - Inf
        total = np.add.reduce(block, axis=None, dtype=np.float64)
    if np.isfinite(total):
        return
    finite = np.isfinite(block)
    if finite.all():
        return
    # First bad sample in time order, then channel.
    bad = np.argwhere(~finite.transpose(2, 0, 1))[0]
    sample, item, channel = (int(v) for v in bad)
    value = block[item, channel, sample]
    where = f"channel {channel}, sample {offset + sample}"
    if block.shape[0] > 1:
        where = f"batch item {item}, {where}"
    raise DataFileError(
        f"{source}: {value} at {where} (0-based); pass --allow-nonfinite to {anyway}"
    )


def _joined(pieces: Iterator[np.ndarray]) -> np.ndarray:
    """The pieces of a ``*_pieces`` iterator as one array (there is always one at least)."""
    parts = list(pieces)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


class LayerStage:
    """One layer as a streaming stage.

    Parameters
    ----------
    layer : Conv1d
    method : {'auto', 'direct', 'fft'}
    dtype : numpy dtype
        Compute dtype (weights and blocks are cast to it).
    prefix : ndarray, optional
        ``(N, C_in, left)``: the last ``left`` samples of the signal, needed
        up front by circular padding. Without it a circular stage with
        ``left > 0`` buffers its whole input (see the module notes).
    label : str
        Name used in error messages.

    Examples
    --------
    >>> layer = Conv1d.from_weights(np.ones((1, 1, 3)), padding=1, padding_mode="reflect")
    >>> stage = LayerStage(layer, dtype=np.float64)
    >>> x = np.arange(6.0)[None, None]
    >>> parts = [stage.push(x[..., :2]), stage.push(x[..., 2:]), stage.finish()]
    >>> np.concatenate(parts, axis=-1)
    array([[[ 2.,  3.,  6.,  9., 12., 13.]]])
    >>> layer(x)
    array([[[ 2.,  3.,  6.,  9., 12., 13.]]])
    """

    def __init__(
        self,
        layer: Conv1d,
        *,
        method: str = "auto",
        dtype: Any = np.float64,
        prefix: np.ndarray | None = None,
        label: str = "layer",
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.layer = layer
        self.label = label
        self.dtype = np.dtype(dtype)
        bias = None if layer.bias is None else layer.bias.astype(self.dtype)
        self._corr = Correlator(
            layer.weight.astype(self.dtype),
            bias,
            layer.stride,
            layer.dilation,
            layer.groups,
            method,
        )
        self.field = self._corr.field
        self.stride = layer.stride
        self.left, self.right = layer.resolved_padding()
        self.mode = layer.padding_mode
        self.in_channels = layer.in_channels
        self.out_channels = layer.out_channels
        self._prefix = None if prefix is None else np.asarray(prefix, dtype=self.dtype)
        # Circular left padding needs the end of the signal: without it, buffer all.
        self.whole = self.mode == "circular" and self.left > 0 and prefix is None
        if self.mode == "circular" and self.left > 0 and self._prefix is not None:
            if self._prefix.shape[-1] != self.left:
                raise ShapeError(
                    f"{label}: circular padding needs the last {self.left} samples but got "
                    f"{self._prefix.shape[-1]}; the input needs at least "
                    f"{_layer_min_length(layer)} samples"
                )
        # Samples needed before the left pad can be made.
        self._need = 0
        if self.left > 0:
            self._need = {"reflect": self.left + 1, "replicate": 1}.get(self.mode, 0)
        self._pending: list[np.ndarray] = []
        self._pending_len = 0
        self._started = False
        self._buf: np.ndarray | None = None  # padded stream from the next output's start
        self._skip = 0  # padded samples to drop before the next output starts
        self._head: np.ndarray | None = None  # first `right` samples (circular)
        self._tail: np.ndarray | None = None  # last right+1 (reflect) / 1 (replicate)
        self._batch: int | None = None
        self.samples_in = 0
        self.samples_out = 0
        self._finished = False

    # -- helpers -----------------------------------------------------------
    def _empty(self) -> np.ndarray:
        return np.zeros((self._batch or 0, self.out_channels, 0), self.dtype)

    def _remember_edges(self, block: np.ndarray) -> None:
        n = block.shape[-1]
        if self.right > 0 and self.mode == "circular":
            have = 0 if self._head is None else self._head.shape[-1]
            if have < self.right:
                piece = block[..., : self.right - have]
                self._head = (
                    piece.copy()
                    if self._head is None
                    else np.concatenate([self._head, piece], axis=-1)
                )
        if self.right > 0 and self.mode in ("reflect", "replicate"):
            keep = self.right + 1 if self.mode == "reflect" else 1
            if n >= keep or self._tail is None:
                self._tail = block[..., -keep:].copy()
            else:
                self._tail = np.concatenate([self._tail, block], axis=-1)[..., -keep:]

    def _zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        # A read-only view: only the pieces fed to the correlator are ever copied.
        return np.broadcast_to(np.zeros((), self.dtype), shape)

    def _left_pad(self, data: np.ndarray) -> np.ndarray:
        shape = (*data.shape[:2], self.left)
        if self.left == 0 or self.mode == "zeros":
            return self._zeros(shape)
        if self.mode == "replicate":
            return np.broadcast_to(data[..., :1], shape)
        if self.mode == "reflect":
            return data[..., self.left : 0 : -1]
        assert self._prefix is not None
        return np.broadcast_to(self._prefix, shape)

    def _right_pad(self) -> np.ndarray:
        assert self._batch is not None
        shape = (self._batch, self.in_channels, self.right)
        if self.right == 0 or self.mode == "zeros":
            return self._zeros(shape)
        if self.mode == "replicate":
            assert self._tail is not None
            return np.broadcast_to(self._tail[..., -1:], shape)
        if self.mode == "reflect":
            assert self._tail is not None
            return self._tail[..., -2::-1]
        assert self._head is not None
        return self._head

    def _pad_piece(self) -> int:
        """Padding samples per correlator call: ~_PAD_PIECE_BYTES, and at least the field."""
        assert self._batch is not None
        per_frame = max(1, self._batch * self.in_channels * self.dtype.itemsize)
        return max(self.field, _PAD_PIECE_BYTES // per_frame)

    def _pad_in(self, pad: np.ndarray) -> Iterator[np.ndarray]:
        """Append a long pad to the buffer a piece at a time, yielding the outputs of each."""
        assert self._buf is not None
        piece = self._pad_piece()
        for i in range(0, pad.shape[-1], piece):
            self._buf = np.concatenate([self._buf, pad[..., i : i + piece]], axis=-1)
            yield self._drain()

    def _start(self, data: np.ndarray) -> Iterator[np.ndarray]:
        self._started = True
        pad = self._left_pad(data)
        if pad.shape[-1] <= self._pad_piece():
            self._buf = np.concatenate([pad, data], axis=-1)
        else:
            self._buf = data[..., :0]
            yield from self._pad_in(pad)
            self._buf = np.concatenate([self._buf, data], axis=-1)
        yield self._drain()

    def _drain(self) -> np.ndarray:
        buf = self._buf
        assert buf is not None
        if self._skip:
            drop = min(self._skip, buf.shape[-1])
            buf = buf[..., drop:]
            self._skip -= drop
        n_out = self._corr.output_length(buf.shape[-1])
        if n_out == 0:
            self._buf = buf
            return self._empty()
        used = (n_out - 1) * self.stride + self.field
        out = self._corr(np.ascontiguousarray(buf[..., :used]))
        consumed = n_out * self.stride
        if consumed <= buf.shape[-1]:
            # Copy so the (large) block this view came from can be freed.
            self._buf = buf[..., consumed:].copy()
        else:
            self._skip = consumed - buf.shape[-1]
            self._buf = buf[..., :0]
        self.samples_out += n_out
        return out

    def _check_block(self, block: np.ndarray) -> np.ndarray:
        if self._finished:
            raise RuntimeError("push() after finish()")
        block = np.asarray(block)
        if block.ndim != 3:
            raise ShapeError(f"{self.label}: blocks must be (N, C, n), got shape {block.shape}")
        if block.shape[1] != self.in_channels:
            raise ShapeError(
                f"{self.label}: block has {block.shape[1]} channels, the layer expects "
                f"{self.in_channels}"
            )
        if self._batch is None:
            self._batch = block.shape[0]
            if self._prefix is not None and self._prefix.ndim == 2:
                self._prefix = self._prefix[None]
        elif block.shape[0] != self._batch:
            raise ShapeError(
                f"{self.label}: batch size changed from {self._batch} to {block.shape[0]}"
            )
        return block.astype(self.dtype, copy=False)

    # -- public ------------------------------------------------------------
    def push(self, block: np.ndarray) -> np.ndarray:
        """Feed the next ``(N, C_in, n)`` samples; return the outputs now complete."""
        return _joined(self.push_pieces(block))

    def push_pieces(self, block: np.ndarray) -> Iterator[np.ndarray]:
        """:meth:`push`, its outputs yielded in pieces of bounded size.

        The first block of a stage with a long left pad completes a pad's
        worth of outputs; they come a piece at a time, computed as they are
        consumed. Exhaust the iterator before the next call.
        """
        block = self._check_block(block)
        n = block.shape[-1]
        if n == 0:
            yield self._empty()
            return
        self.samples_in += n
        self._remember_edges(block)
        if self.whole:
            self._pending.append(block)
            yield self._empty()
            return
        if not self._started:
            self._pending.append(block)
            self._pending_len += n
            if self._pending_len < self._need:
                yield self._empty()
                return
            data = np.concatenate(self._pending, axis=-1)
            self._pending = []
            yield from self._start(data)
            return
        assert self._buf is not None
        self._buf = np.concatenate([self._buf, block], axis=-1)
        yield self._drain()

    def finish(self) -> np.ndarray:
        """Return the last outputs (right padding included); the stage is then spent.

        Raises
        ------
        ShapeError
            If the signal was empty or too short for the layer.
        """
        return _joined(self.finish_pieces())

    def finish_pieces(self) -> Iterator[np.ndarray]:
        """:meth:`finish`, its outputs yielded in pieces of bounded size (a long right pad)."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        need = _layer_min_length(self.layer)
        if self.samples_in < need:
            raise ShapeError(
                f"{self.label}: input too short: {self.samples_in} samples, the layer needs "
                f"at least {need} (kernel_size {self.layer.kernel_size}, dilation "
                f"{self.layer.dilation}, padding ({self.left}, {self.right}), "
                f"padding_mode {self.mode!r})"
            )
        if self.whole:
            # Circular: both pads are at most the signal, which is buffered anyway.
            x = np.concatenate(self._pending, axis=-1)
            self._pending = []
            out = self._corr(pad1d(x, self.left, self.right, self.mode))
            self.samples_out += out.shape[-1]
            yield out
            return
        if not self._started:
            data = np.concatenate(self._pending, axis=-1)
            self._pending = []
            yield from self._start(data)
        assert self._buf is not None
        pad = self._right_pad()
        if pad.shape[-1] <= self._pad_piece():
            self._buf = np.concatenate([self._buf, pad], axis=-1)
            yield self._drain()
        else:
            yield from self._pad_in(pad)
        self._buf = None


class StreamChain:
    """Layers applied in order to a signal fed in blocks.

    Parameters
    ----------
    layers : sequence of Conv1d
        Channel counts must line up (checked here, see :func:`check_chain`).
    method : {'auto', 'direct', 'fft'}
    dtype : {'float32', 'float64'}, optional
        Compute dtype; default float32 if every layer is float32, else float64.
    names : sequence of str, optional
        Layer names for messages.
    prefix : ndarray, optional
        The last ``left`` samples of the signal (``(C, left)`` or
        ``(N, C, left)``) for a first layer with circular padding; see
        :attr:`prefix_length`.

    Examples
    --------
    >>> layer = Conv1d.from_weights(np.ones((1, 2, 4)), padding="same")
    >>> chain = StreamChain([layer])
    >>> x = np.arange(20.0).reshape(2, 10)
    >>> y = np.concatenate([chain.push(x[:, :3]), chain.push(x[:, 3:]), chain.finish()], axis=-1)
    >>> np.allclose(y, layer(x, method="direct"), rtol=0, atol=1e-12)
    True
    """

    def __init__(
        self,
        layers: Sequence[Conv1d],
        *,
        method: str = "auto",
        dtype: Any = None,
        names: Sequence[str] | None = None,
        prefix: np.ndarray | None = None,
    ) -> None:
        check_chain(layers, names)
        self.layers = list(layers)
        self.names = names
        self.dtype = compute_dtype(layers, dtype)
        self.stages = [
            LayerStage(
                layer,
                method=method,
                dtype=self.dtype,
                prefix=prefix if i == 0 else None,
                label=_label(i, names),
            )
            for i, layer in enumerate(layers)
        ]
        self._ndim: int | None = None

    @staticmethod
    def prefix_length(layers: Sequence[Conv1d]) -> int:
        """Samples from the END of the signal the first layer needs first (circular only).

        Examples
        --------
        >>> StreamChain.prefix_length([Conv1d.from_weights(np.ones((1, 1, 3)), padding=1,
        ...                                                padding_mode="circular")])
        1
        """
        if layers and layers[0].padding_mode == "circular":
            return layers[0].resolved_padding()[0]
        return 0

    @property
    def total_stride(self) -> int:
        """Product of the strides: output rate = input rate / total_stride."""
        total = 1
        for layer in self.layers:
            total *= layer.stride
        return total

    @property
    def whole_signal(self) -> bool:
        """True if some stage buffers its whole input (circular without a prefix)."""
        return any(stage.whole for stage in self.stages)

    def _in(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block)
        if self._ndim is None:
            if block.ndim not in (2, 3):
                raise ShapeError(f"blocks must be (C, n) or (N, C, n), got shape {block.shape}")
            self._ndim = block.ndim
        elif block.ndim != self._ndim:
            raise ShapeError(f"block dimensions changed from {self._ndim} to {block.ndim}")
        return block[None] if block.ndim == 2 else block

    def _out(self, block: np.ndarray) -> np.ndarray:
        return block[0] if self._ndim == 2 else block

    def push(self, block: np.ndarray) -> np.ndarray:
        """Feed ``(C, n)`` or ``(N, C, n)`` samples; returns what the chain completed."""
        return _joined(self.push_pieces(block))

    def push_pieces(self, block: np.ndarray) -> Iterator[np.ndarray]:
        """:meth:`push`, the outputs yielded in pieces of bounded size.

        See :meth:`LayerStage.push_pieces`; exhaust it before the next call.
        """
        for out in self._through(0, self._in(block)):
            yield self._out(out)

    def _through(self, first: int, block: np.ndarray) -> Iterator[np.ndarray]:
        """Push ``block`` into stage ``first`` and each piece it yields on down the chain."""
        if first == len(self.stages):
            yield block
            return
        for piece in self.stages[first].push_pieces(block):
            yield from self._through(first + 1, piece)

    def finish(self) -> np.ndarray:
        """Flush every stage in order; returns the chain's last outputs."""
        return _joined(self.finish_pieces())

    def finish_pieces(self) -> Iterator[np.ndarray]:
        """:meth:`finish`, the outputs yielded in pieces of bounded size."""
        if self._ndim is None:
            raise ShapeError("the signal is empty (0 samples)")
        # One check of the whole chain gives the clearest message (layer + minimum).
        chain_output_length(self.layers, self.stages[0].samples_in, self.names, "the input")
        for i, stage in enumerate(self.stages):
            for piece in stage.finish_pieces():
                for out in self._through(i + 1, piece):
                    yield self._out(out)


def stream_filter(
    layers: Sequence[Conv1d],
    blocks: Iterable[np.ndarray],
    *,
    method: str = "auto",
    dtype: Any = None,
    prefix: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Yield the chain's output blocks for an iterable of input blocks.

    Examples
    --------
    >>> layer = Conv1d.from_weights(np.ones((1, 1, 2)))
    >>> x = np.arange(8.0)[None]
    >>> np.concatenate(list(stream_filter([layer], np.array_split(x, 3, axis=-1))), axis=-1)
    array([[ 1.,  3.,  5.,  7.,  9., 11., 13.]])
    """
    chain = StreamChain(layers, method=method, dtype=dtype, prefix=prefix)
    for block in blocks:
        for out in chain.push_pieces(block):
            if out.shape[-1]:
                yield out
    yield from chain.finish_pieces()
