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
*i + 1*). The checks made before any data is read (:func:`check_chain`,
:func:`chain_output_length`, ...) live in :mod:`conv1d_cli.chain` and are
re-exported here. NumPy only: no click, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np

from conv1d_cli.chain import (
    BLOCK_FRAMES,
    BLOCK_SAMPLES,
    block_frames,
    broadcast_first_layer,
    chain_min_length,
    chain_output_length,
    chain_shapes,
    check_chain,
    check_finite,
    check_stage_memory,
    compute_dtype,
    label,
)
from conv1d_cli.core import Correlator, check_method, pad1d
from conv1d_cli.errors import ShapeError
from conv1d_cli.layer import Conv1d
from conv1d_cli.partition import PartitionedCorrelator, partition_plan
from conv1d_cli.threads import serial

if TYPE_CHECKING:
    import numpy.typing as npt  # annotations only: importing it costs start-up time

# The chain checks live in conv1d_cli.chain; callers find them here too.
__all__ = [
    "BLOCK_FRAMES",
    "BLOCK_SAMPLES",
    "broadcast_first_layer",
    "label",
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

#: A stage computes whole FFT frames (:meth:`LayerStage.frame`) only while one frame's
#: input for every row fits this many samples (16 MiB of float32).
FRAME_STORE_SAMPLES: Final = 1 << 22


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
    live_block : int, optional
        Frames per block pushed when the output is read as it is written (a
        live pipe, whose latency is one block). A kernel longer than it is then
        computed by uniformly partitioned convolution at exactly that block
        (:mod:`conv1d_cli.partition`), so each block pushed completes its
        outputs. Without it a long kernel that mixes channels (a true-stereo
        IR) is partitioned too, for speed (:func:`~conv1d_cli.partition.partition_plan`).
    finite : bool
        Every block pushed (and the prefix) is known to hold no NaN/Inf: the
        correlator need not scan for them.

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
        dtype: npt.DTypeLike = np.float64,
        prefix: np.ndarray | None = None,
        label: str = "layer",
        live_block: int | None = None,
        finite: bool = False,
    ) -> None:
        check_method(method)
        self.layer = layer
        self._finite = finite
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
                    f"{layer.spec.min_input_length} samples"
                )
        # A long FFT kernel on a file computes whole frames, a call's worth at a
        # time (Correlator.frame_outputs), from a store of one call's input,
        # decided at the first block, when the batch is known. A live output
        # (live_block) gets every block's outputs at once instead.
        self._framed = live_block is not None
        self._store: np.ndarray | None = None  # (N, C_in, a call's input)
        self._filled = 0
        self._part: PartitionedCorrelator | None = None
        mixing = layer.in_channels > layer.groups
        plan = partition_plan(self.field, self.stride, method, live_block, mixing)
        if plan is not None and not self.whole:
            # Block edges where the left pad ends: a block pushed completes its outputs.
            self._part = PartitionedCorrelator(
                self._corr.weight,
                bias,
                layer.dilation,
                layer.groups,
                block=plan[0],
                nfft=plan[1],
                lead=-self.left % plan[0],
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
            yield self._feed(pad[..., i : i + piece])

    def _feed(self, piece: np.ndarray) -> np.ndarray:
        """Append ``piece`` of the padded stream; return the outputs it completes."""
        if self._part is not None:
            out = self._part.push(piece)
            self.samples_out += out.shape[-1]
            return out
        if not self._framed:
            assert self._batch is not None
            frame = self.frame(self._batch)
            self._framed = True
            if frame is not None:
                shape = (self._batch, self.in_channels, frame + self.field - 1)
                self._store = np.empty(shape, self.dtype)
        if self._store is not None:
            return self._feed_frames(piece)
        assert self._buf is not None
        self._buf = np.concatenate([self._buf, piece], axis=-1)
        return self._drain()

    def frame(self, batch: int) -> int | None:
        """Outputs per call when this stage computes whole FFT frames, else None.

        A long FFT kernel (:meth:`~conv1d_cli.core.Correlator.frame_outputs`)
        on a file: not on a live output, nor partitioned, nor buffered whole,
        and a call's input for every row within :data:`FRAME_STORE_SAMPLES`
        (64 channels through a 600 000-tap kernel would otherwise hold 512 MiB).
        """
        if self._part is not None or self.whole or self._framed and self._store is None:
            return None
        return self._corr.frame_outputs(batch, FRAME_STORE_SAMPLES // (batch * self.in_channels))

    def _feed_frames(self, piece: np.ndarray) -> np.ndarray:
        """Copy ``piece`` into the frame store; return the outputs of each store it fills.

        Each sample is copied in once and the ``field - 1`` samples of history
        once per frame, where appending to a growing buffer would copy it again
        at every block.
        """
        store = self._store
        assert store is not None
        size = store.shape[-1]
        keep = self.field - 1
        outs = []
        i, n = 0, piece.shape[-1]
        while i < n:
            take = min(n - i, size - self._filled)
            store[..., self._filled : self._filled + take] = piece[..., i : i + take]
            self._filled += take
            i += take
            if self._filled == size:
                with serial():  # the read and write threads have the other cores
                    outs.append(self._corr(store, self._finite))
                store[..., :keep] = store[..., size - keep :]
                self._filled = keep
        if not outs:
            return self._empty()
        out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
        self.samples_out += out.shape[-1]
        return out

    def _flush_frames(self) -> np.ndarray:
        """The outputs of the partly filled last store."""
        assert self._store is not None
        filled = self._store[..., : self._filled]
        if self._corr.output_length(self._filled) == 0:
            return self._empty()
        with serial():
            out = self._corr(np.ascontiguousarray(filled), self._finite)
        self.samples_out += out.shape[-1]
        return out

    def _start(self, data: np.ndarray) -> Iterator[np.ndarray]:
        self._started = True
        pad = self._left_pad(data)
        self._buf = data[..., :0]
        if pad.shape[-1] <= self._pad_piece() and self._part is None:
            yield self._feed(np.concatenate([pad, data], axis=-1))
            return
        yield from self._pad_in(pad)
        yield self._feed(data)

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
        out = self._corr(np.ascontiguousarray(buf[..., :used]), self._finite)
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
        yield self._feed(block)

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
        need = self.layer.spec.min_input_length
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
            out = self._corr(pad1d(x, self.left, self.right, self.mode), self._finite)
            self.samples_out += out.shape[-1]
            yield out
            return
        if not self._started:
            data = np.concatenate(self._pending, axis=-1)
            self._pending = []
            yield from self._start(data)
        pad = self._right_pad()
        if pad.shape[-1] <= self._pad_piece():
            yield self._feed(pad)
        else:
            yield from self._pad_in(pad)
        if self._part is not None:
            out = self._part.flush()
            self.samples_out += out.shape[-1]
            yield out
        elif self._store is not None:
            yield self._flush_frames()
            self._store = None
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
    checked : bool
        The caller has run :func:`check_chain` on these layers already (the
        pipeline does, against the input's channel count): not again.
    live_block : int, optional
        Frames per block pushed when the output is read as it is written (a
        live pipe); see :class:`LayerStage`. A stage after strided layers gets
        the block divided by their strides.
    finite : bool
        The caller vouches that every block pushed holds no NaN/Inf (it checked
        them, or they are integer PCM): the first layer does not scan for them.

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
        dtype: npt.DTypeLike | None = None,
        names: Sequence[str] | None = None,
        prefix: np.ndarray | None = None,
        checked: bool = False,
        live_block: int | None = None,
        finite: bool = False,
    ) -> None:
        if not checked:
            check_chain(layers, names)
        blocks: list[int | None] = []
        for layer in layers:
            blocks.append(live_block)
            if live_block is not None:
                live_block = max(1, live_block // layer.stride)
        self.layers = list(layers)
        self.names = names
        self.dtype = compute_dtype(layers, dtype)
        self.stages = [
            LayerStage(
                layer,
                method=method,
                dtype=self.dtype,
                prefix=prefix if i == 0 else None,
                label=label(i, names),
                live_block=blocks[i],
                # A later layer's input is an output, not checked: it may overflow.
                finite=finite and i == 0,
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

    def frame(self, batch: int) -> int | None:
        """Input frames per call of the first stage, if it computes whole FFT frames.

        Blocks of this many frames keep reading, filtering and writing in step
        (:func:`~conv1d_cli.chain.block_frames`).
        """
        return self.stages[0].frame(batch) if self.stages else None

    @property
    def total_stride(self) -> int:
        """Product of the strides: output rate = input rate / total_stride."""
        return math.prod(layer.stride for layer in self.layers)

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
        chain_output_length(self.layers, self.stages[0].samples_in, self.names)
        for i, stage in enumerate(self.stages):
            for piece in stage.finish_pieces():
                for out in self._through(i + 1, piece):
                    yield self._out(out)


def stream_filter(
    layers: Sequence[Conv1d],
    blocks: Iterable[np.ndarray],
    *,
    method: str = "auto",
    dtype: npt.DTypeLike | None = None,
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
