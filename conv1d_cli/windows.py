"""A stretch of a chain's output from just the input samples it needs.

The outputs ``[a, b)`` of a chain of layers depend on a window of the input
around ``[a, b)`` (each layer's receptive field, stride and padding), plus, at
the two ends of the signal, the samples a reflect or replicate pad is made
from. :func:`plan` finds, layer by layer, which samples those are;
:func:`compute` filters them. A task of the Dask array path
(:mod:`conv1d_cli.npyarray`) thus reads its own halo from the file, depends on
no other task and moves no data between workers. Circular padding needs the
far end of a later layer's input, which no window holds: :func:`plan` refuses
it (the caller takes the general path, :mod:`conv1d_cli.dask`).

NumPy only: no Dask, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from conv1d_cli.core import Correlator, pad1d

if TYPE_CHECKING:
    from conv1d_cli.layer import Conv1d

__all__ = ["Window", "compute", "lengths", "plan", "windowable"]

#: Frames per correlator call within a window, at most: a streamed run's block budget
#: (``stream.BLOCK_SAMPLES`` samples), so a long window is filtered in cache-sized pieces.
_PIECE_SAMPLES = 1 << 18


class Window(NamedTuple):
    """What one layer computes for a stretch of the chain's output.

    The layer's padded input over ``[lo, hi)`` (positions of its unpadded input;
    below 0 and from its length on are the pads) gives its outputs ``[a, b)``;
    the real samples used are ``[p, q)``, the outputs ``[p, q)`` of the layer
    before (or the chain's input).
    """

    lo: int
    hi: int
    p: int
    q: int
    a: int
    b: int


def windowable(layers: Sequence[Conv1d]) -> bool:
    """Whether every layer's pad is made from samples near its own end (not circular)."""
    return all(layer.padding_mode != "circular" for layer in layers)


def lengths(layers: Sequence[Conv1d], length: int) -> list[int]:
    """The input length of each layer, then the chain's output length.

    Raises ``ShapeError`` (:meth:`~conv1d_cli.shapes.LayerSpec.output_length`) when
    the signal is too short for a layer.
    """
    out = [length]
    for layer in layers:
        out.append(layer.spec.output_length(out[-1]))
    return out


def plan(layers: Sequence[Conv1d], length: int, a: int, b: int) -> list[Window]:
    """Per layer, the window that the chain's outputs ``[a, b)`` need.

    Examples
    --------
    >>> from conv1d_cli.layer import Conv1d
    >>> layer = Conv1d.from_weights(np.ones((1, 1, 5)), padding=2, padding_mode="reflect")
    >>> plan([layer], 100, 0, 10)  # the left pad reflects samples 1-2
    [Window(lo=-2, hi=12, p=0, q=12, a=0, b=10)]
    >>> plan([layer], 100, 40, 50)
    [Window(lo=38, hi=52, p=38, q=52, a=40, b=50)]
    """
    if not windowable(layers):
        raise ValueError("circular padding needs the whole signal: no window holds it")
    sizes = lengths(layers, length)
    windows: list[Window] = []
    out_a, out_b = a, b
    for i in reversed(range(len(layers))):
        layer, size = layers[i], sizes[i]
        if out_b <= out_a:
            windows.append(Window(0, 0, 0, 0, out_a, out_a))
            continue  # nothing needed from the layers before either
        left, _ = layer.resolved_padding()
        lo = out_a * layer.stride - left
        hi = (out_b - 1) * layer.stride - left + layer.spec.receptive_field
        p, q = max(0, lo), min(size, hi)
        if layer.padding_mode == "reflect":
            if lo < 0:  # the left pad mirrors samples 1 ... -lo
                q = max(q, min(size, 1 - lo))
            if hi > size:  # the right pad mirrors samples size - 1 - (hi - size) ...
                p = min(p, max(0, size - 1 - (hi - size)))
        elif layer.padding_mode == "replicate":
            if lo < 0:
                q = max(q, 1)
            if hi > size:
                p = min(p, size - 1)
        if q <= p:  # the window lies in a zero pad
            p = q = 0 if hi <= 0 else size
        windows.append(Window(lo, hi, p, q, out_a, out_b))
        out_a, out_b = p, q
    windows.reverse()
    # windows[0].p, .q: the chain's input samples to read (the Window of layer 0).
    return windows


def compute(
    layers: Sequence[Conv1d],
    length: int,
    windows: Sequence[Window],
    x: np.ndarray,
    dtype: np.dtype[np.floating] | type[np.floating],
    method: str = "auto",
    check: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """The chain's outputs ``[windows[-1].a, windows[-1].b)`` from ``x``.

    ``x`` is ``(N, C, q - p)``: the chain's input samples ``[p, q)`` of
    ``windows[0]`` (see :func:`plan`), in any real dtype; every layer computes
    in ``dtype``. ``check(offset, block)`` (optional) sees each layer's output
    as it is made, ``offset`` its first sample's index, e.g. to refuse non-finite
    values.

    Examples
    --------
    >>> from conv1d_cli.layer import Conv1d
    >>> x = np.random.default_rng(0).standard_normal((1, 1, 100))
    >>> layer = Conv1d.from_weights(np.ones((1, 1, 5)), padding=2, padding_mode="reflect")
    >>> w = plan([layer], 100, 0, 10)
    >>> y = compute([layer], 100, w, x[..., w[0].p : w[0].q], np.float64)
    >>> bool(np.allclose(y, layer(x)[..., :10]))
    True
    """
    sizes = lengths(layers, length)
    data = np.asarray(x, dtype)
    for layer, size, window in zip(layers, sizes[:-1], windows, strict=True):
        n = window.b - window.a
        if n <= 0:
            data = np.zeros((data.shape[0], layer.out_channels, 0), dtype)
            continue
        lp, rp = max(0, -window.lo), max(0, window.hi - size)
        padded = pad1d(data, lp, rp, layer.padding_mode) if lp or rp else data
        start = window.lo - (window.p - lp)
        bias = None if layer.bias is None else layer.bias.astype(dtype)
        correlate = Correlator(
            layer.weight.astype(dtype), bias, layer.stride, layer.dilation, layer.groups, method
        )
        field = correlate.field
        out = np.empty((data.shape[0], layer.out_channels, n), dtype)
        budget = _PIECE_SAMPLES // max(1, data.shape[0] * data.shape[1]) // layer.stride
        step = correlate.piece_outputs(data.shape[0], budget)
        for s in range(0, n, step):
            e = min(n, s + step)
            first = start + s * layer.stride
            piece = padded[..., first : first + (e - s - 1) * layer.stride + field]
            out[..., s:e] = correlate(np.ascontiguousarray(piece))
        if check is not None:
            check(window.a, out)
        data = out
    return data
