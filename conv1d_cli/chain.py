"""A chain of Conv1d layers checked against a signal before any sample is read.

The questions :mod:`conv1d_cli.stream` and the pipeline ask once per file: do
the channel counts line up (:func:`check_chain`), how long is the output and
what is the shortest input (:func:`chain_output_length`,
:func:`chain_min_length`, both answered by :func:`conv1d_cli.shapes.walk_chain`
on the layers' specs), does a one-channel filter apply to every channel
(:func:`broadcast_first_layer`), can the stages' buffers be held
(:func:`check_stage_memory`), which dtype computes (:func:`compute_dtype`), how
many frames a block holds (:func:`block_frames`), and is a block finite
(:func:`check_finite`). NumPy only: no click, no I/O. :mod:`conv1d_cli.stream`
re-exports all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from conv1d_cli.core import check_dtype, result_dtype
from conv1d_cli.errors import ConfigError, DataFileError, ShapeError
from conv1d_cli.layer import Conv1d
from conv1d_cli.shapes import (
    MAX_ARRAY_BYTES,
    broadcast_notice,
    chain_min_input_length,
    channels_hint,
    mono_broadcast,
    walk_chain,
)

if TYPE_CHECKING:
    import numpy.typing as npt  # annotations only: importing it costs start-up time

__all__ = [
    "BLOCK_FRAMES",
    "FRAME_BLOCK_SAMPLES",
    "BLOCK_SAMPLES",
    "block_frames",
    "broadcast_first_layer",
    "chain_min_length",
    "chain_output_length",
    "chain_shapes",
    "check_chain",
    "check_finite",
    "check_stage_memory",
    "compute_dtype",
    "label",
]

#: Samples (frames x channels x batch) per block when the caller does not choose:
#: 1 MiB of float32. Measured on one core, filtering 10 minutes of stereo 48 kHz
#: through 31 to 4097 taps, against 2**17 frames per block: 2**18 +5-10%, 2**16
#: +0-25%, 2**15 +2-60%, 2**14 +15-150% (longer kernels suffer more: the FFT
#: frames and the per-block work stop being amortised); decoding and encoding
#: do not care from 2**16 on.
BLOCK_SAMPLES: Final = 1 << 18
#: Frames per block are kept within these bounds (whatever the channel count).
BLOCK_FRAMES: Final = (1 << 12, 1 << 17)
#: At most this many samples per block read for a long FFT frame (block_frames):
#: 4 MiB of float32.
FRAME_BLOCK_SAMPLES: Final = 1 << 20


def block_frames(
    channels: int,
    batch: int | None = None,
    requested: int | None = None,
    frame: int | None = None,
) -> int:
    """Frames to read per block: ``requested`` as it is, else a fixed sample budget.

    The one place that sizes streaming blocks. A block size the user asked
    for is latency on a pipe, so it is never enlarged; the default keeps a
    block at :data:`BLOCK_SAMPLES` samples whatever the channel count, so
    memory does not grow with it. A chain whose first layer computes whole
    FFT frames (``frame``: :meth:`conv1d_cli.stream.StreamChain.frame`, a long
    impulse response) reads a frame in as few equal blocks as
    :data:`FRAME_BLOCK_SAMPLES` allows, so reading, filtering and writing go
    frame by frame and overlap (with 131 072-frame blocks a 428 289-frame
    frame left the filter waiting on the reader for 3 blocks in 4).

    Examples
    --------
    >>> block_frames(2), block_frames(64), block_frames(2, requested=100)
    (131072, 4096, 100)
    >>> block_frames(2, frame=594434), block_frames(8, frame=594434)
    (297217, 118887)
    """
    if requested is not None:
        return requested
    per_frame = max(1, channels * (batch or 1))
    if frame is not None:
        blocks = -(-frame * per_frame // FRAME_BLOCK_SAMPLES)
        return max(-(-frame // blocks), BLOCK_FRAMES[0])
    return max(BLOCK_FRAMES[0], min(BLOCK_FRAMES[1], BLOCK_SAMPLES // per_frame))


def label(index: int, names: Sequence[str] | None) -> str:
    """``layer 2 (b.npz)``: how messages call layer ``index`` (0-based), counting from 1.

    Examples
    --------
    >>> label(1, ["a.npz", "b.npz"]), label(0, None)
    ('layer 2 (b.npz)', 'layer 1')
    """
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
    source: str = "{path}",
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
        How to call the signal in the message (e.g. its file name); by default the
        error's ``{path}``, "the input" until :meth:`~conv1d_cli.errors.Conv1dError.about`
        names a file.

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
        raise ConfigError("no layer given (use {parameter:layer_paths:short} LAYER at least once)")
    if in_channels is not None and in_channels != layers[0].in_channels:
        raise ShapeError(
            f"{source} has {in_channels} channel{'s' if in_channels != 1 else ''} but "
            f"{label(0, names)} expects {layers[0].in_channels} input channels "
            f"(weight {tuple(layers[0].weight.shape)}, groups={layers[0].groups})"
            f"{channels_hint(in_channels)}"
        )
    for i in range(1, len(layers)):
        want, have = layers[i].in_channels, layers[i - 1].out_channels
        if want != have:
            flow = chain_shapes(layers[:i], names)
            raise ShapeError(
                f"{label(i, names)} expects {want} input channels but "
                f"{label(i - 1, names)} produces {have}: "
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
    wide.sample_rate_binding = first.sample_rate_binding
    wide.description = first.description
    layers[0] = wide
    return layers, broadcast_notice(label(0, names), in_channels, source)


def check_stage_memory(
    layers: Sequence[Conv1d],
    names: Sequence[str] | None = None,
    batch: int | None = None,
    dtype: npt.DTypeLike = np.float64,
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
        field = layer.spec.receptive_field
        buffered = 2 * field * rows * layer.in_channels * itemsize
        kernels = field * layer.out_channels * (layer.in_channels // layer.groups) * 8
        if max(buffered, kernels) > MAX_ARRAY_BYTES:
            raise ShapeError(
                f"{label(i, names)}: receptive field {field} "
                f"needs {max(buffered, kernels) / 2**30:,.1f} GiB of buffers "
                f"({rows * layer.in_channels} row(s) of {np.dtype(dtype).name}); at most "
                f"{MAX_ARRAY_BYTES / 2**30:,.1f} GiB are allowed"
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
    return chain_min_input_length([layer.spec for layer in layers])


def chain_output_length(
    layers: Sequence[Conv1d],
    length: int,
    names: Sequence[str] | None = None,
    source: str = "{path}",
) -> int:
    """Length of the chain's output for ``length`` input samples, or a clear error.

    :func:`conv1d_cli.shapes.walk_chain` walks the layers' specs; this only says
    which layer stops the signal, and what the whole chain needs, in words.

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
    walked = walk_chain([layer.spec for layer in layers], length)
    if walked.ok:
        return walked.layers[-1].output_length if walked.layers else length
    assert walked.failed_layer is not None and walked.error is not None
    i = walked.failed_layer - 1
    current = walked.layers[i - 1].output_length if i else length
    spec = walked.specs[i]
    need = spec.min_input_length
    if current >= need:  # not a length problem (channels): walk_chain's own words
        raise ShapeError(walked.error)
    left, right = spec.resolved_padding()
    mode = spec.padding_mode
    detail = (
        f"kernel_size {spec.kernel_size}, dilation {spec.dilation}, "
        f"padding ({left}, {right}), padding_mode {mode!r}"
    )
    if mode == "reflect" and max(left, right) >= current:
        detail += "; reflect padding must be smaller than the signal"
    elif mode == "circular" and max(left, right) > current:
        detail += "; circular padding cannot wrap around more than once"
    overall = walked.min_input_length
    if i == 0:
        text = (
            f"{source}: {length} samples is too short for {label(i, names)} "
            f"({detail}): it needs at least {need} input samples"
        )
        if overall != need:
            text += f"; the whole chain needs at least {overall}"
    else:
        text = (
            f"{source}: {length} samples is too short for the chain: "
            f"{label(i, names)} gets {current} samples but needs at least {need} "
            f"({detail}); the input needs at least {overall} samples"
        )
    raise ShapeError(text)


def compute_dtype(layers: Sequence[Conv1d], dtype: Any = None) -> np.dtype[Any]:
    """float32 if asked or if every layer is float32 (and none asked), else float64.

    The rules are the core's: :func:`conv1d_cli.core.check_dtype` for the one asked
    for, :func:`conv1d_cli.core.result_dtype` for the layers'.

    Examples
    --------
    >>> compute_dtype([Conv1d.from_weights(np.ones((1, 1, 3), np.float32))])
    dtype('float32')
    """
    if dtype is not None:
        return check_dtype(dtype)
    if not layers:
        return np.dtype(np.float64)
    return result_dtype(*(layer.weight.dtype for layer in layers))


def check_finite(
    block: np.ndarray,
    offset: int = 0,
    source: str = "{path}",
    *,
    anyway: str = "filter non-finite values anyway",
) -> None:
    """Raise ``DataFileError`` naming the first NaN/Inf in a ``(N, C, n)`` block.

    ``offset`` is the block's first sample index in the whole signal; ``anyway`` ends
    the hint "pass allow_nonfinite to ..." (the CLI names its option).

    Examples
    --------
    >>> x = np.array([[[0.0, 1.0], [np.inf, 2.0]]])
    >>> check_finite(x, offset=10, source="x.csv")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    conv1d_cli.errors.DataFileError: x.csv: inf at channel 1, sample 10 (0-based);
    pass allow_nonfinite to filter non-finite values anyway
    """
    # The block's largest and smallest values are much cheaper than a boolean mask
    # (and ~5x cheaper than a float64 sum of a float32 block, without BLAS, whose
    # threads would wake): NaN propagates through both, +Inf is the largest, -Inf
    # the smallest, and no finite block overflows them.
    if block.size == 0 or (np.isfinite(block.max()) and np.isfinite(block.min())):
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
        f"{source}: {value} at {where} (0-based); pass {{parameter}} to {anyway}",
        parameter="allow_nonfinite",
    )
