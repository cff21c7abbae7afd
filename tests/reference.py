"""A naive, obviously correct conv1d: the oracle for small cases and for our extensions.

Nested Python loops straight from the definition (SPEC-conv1d.md §1, §2, §8),
written independently of conv1d_cli (no shapes.py, no numpy.pad) so that a
shared mistake cannot hide. Accumulates exactly with math.fsum in float64.
Only valid arguments are supported; it asserts rather than validates.
"""

from __future__ import annotations

import math

import numpy as np


def reference_padding(padding, kernel_size, dilation=1, stride=1):
    """(left, right) for any padding spec, from the definitions."""
    total = dilation * (kernel_size - 1)
    if padding == "valid":
        return 0, 0
    if padding == "same":
        assert stride == 1
        left = total // 2  # PyTorch puts the odd extra sample on the right
        return left, total - left
    if padding == "causal":
        return total, 0
    if padding == "full":
        return total, total
    if isinstance(padding, (tuple, list)):
        if len(padding) == 1:
            return int(padding[0]), int(padding[0])
        return int(padding[0]), int(padding[1])
    return int(padding), int(padding)


def _source_index(i, length, mode):
    """Index into the unpadded signal for padded position i (relative to x[0]), or None for 0."""
    if 0 <= i < length:
        return i
    if mode == "zeros":
        return None
    if mode == "replicate":
        return 0 if i < 0 else length - 1
    if mode == "reflect":  # edge sample not repeated; PyTorch needs pad < length
        j = -i if i < 0 else 2 * (length - 1) - i
        assert 0 <= j < length, "reflect pad too large"
        return j
    if mode == "circular":  # PyTorch wraps at most once
        assert -length <= i < 2 * length, "circular pad too large"
        return i % length
    raise AssertionError(mode)


def _exact_sum(terms):
    """math.fsum, except that Inf + -Inf is NaN (IEEE) where fsum raises."""
    try:
        return math.fsum(terms)
    except ValueError:  # "-inf + inf in fsum"
        return math.nan


def reference_conv1d(
    x,
    weight,
    bias=None,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
):
    """Cross-correlation by the definition; returns float64 of the input's rank."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
    n_batch, c_in, length = x.shape
    c_out, c_in_group, kernel_size = weight.shape
    assert c_in == c_in_group * groups and c_out % groups == 0
    c_out_group = c_out // groups
    left, right = reference_padding(padding, kernel_size, dilation, stride)
    padded_length = length + left + right
    field = dilation * (kernel_size - 1) + 1
    assert padded_length >= field
    length_out = (padded_length - field) // stride + 1

    y = np.zeros((n_batch, c_out, length_out))
    for n in range(n_batch):
        for o in range(c_out):
            g = o // c_out_group
            for t in range(length_out):
                terms = [0.0 if bias is None else float(bias[o])]
                for c in range(c_in_group):
                    channel = g * c_in_group + c
                    for k in range(kernel_size):
                        j = _source_index(t * stride + k * dilation - left, length, padding_mode)
                        if j is not None:
                            # Python floats: IEEE Inf*0 = NaN, without NumPy's warning.
                            terms.append(float(weight[o, c, k]) * float(x[n, channel, j]))
                y[n, o, t] = _exact_sum(terms)
    return y[0] if unbatched else y


def reference_pad(x, left, right, mode):
    """Pad the last axis of a 1-D signal by the definition (for pad1d tests)."""
    x = np.asarray(x)
    length = x.shape[-1]
    out = []
    for i in range(-left, length + right):
        j = _source_index(i, length, mode)
        out.append(0 if j is None else x[j])
    return np.array(out, dtype=x.dtype)
