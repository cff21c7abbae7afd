"""Regenerate the PyTorch golden fixtures in this directory.

Run from the repository root with PyTorch installed (the fixtures were made with 2.13.0, CPU):

    python tests/golden/make_golden.py

Each case is one small ``<name>.npz`` holding ``x``, ``weight``, ``y`` (PyTorch's output) and,
when the case has one, ``bias``; ``index.json`` maps the name to the hyperparameters. The
cases are a spread rather than a full product: every padding mode x 'same' with odd and even
kernels (and odd/even dilation) x stride / dilation / groups / depthwise, each (config, mode)
in one dtype, alternating float32/float64 and batched/unbatched so every mode sees all four.
tests/test_golden.py discovers the ``.npz`` files by listing this directory; it needs no PyTorch.
"""

from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
MODES = ("zeros", "reflect", "replicate", "circular")
DTYPES = ("float32", "float64")

# name: (C_in, C_out, K, stride, padding, dilation, groups, L)
BASE = {
    "same_k3": (2, 3, 3, 1, "same", 1, 1, 9),
    "same_k4": (2, 3, 4, 1, "same", 1, 1, 9),
    "same_k4_d3": (2, 2, 4, 1, "same", 3, 1, 9),  # pads (4, 5): extra one on the right
    "same_k2_d2": (1, 2, 2, 1, "same", 2, 1, 9),
    "same_k7_short": (1, 2, 7, 1, "same", 1, 1, 6),  # kernel longer than the input
    "stride2_pad2_k5": (3, 2, 5, 2, 2, 1, 1, 10),
    "stride3_pad1_d2": (2, 2, 3, 3, 1, 2, 1, 11),
    "groups2": (4, 6, 3, 1, 1, 1, 2, 9),
    "depthwise_mult2": (3, 6, 5, 1, 2, 1, 3, 9),
    "depthwise_valid_stride2": (2, 2, 3, 2, "valid", 1, 2, 9),
    "stride_beyond_length": (2, 2, 1, 20, 0, 1, 1, 8),
}


def torch_forward(x, weight, bias, stride, padding, dilation, groups, mode, dtype):
    """PyTorch's answer: F.conv1d for zeros mode, nn.Conv1d (weights copied) otherwise."""
    # Imported here: pytest --doctest-modules imports this file, also where torch is absent.
    import torch
    import torch.nn.functional as F

    tx, tw = torch.from_numpy(x), torch.from_numpy(weight)
    tb = None if bias is None else torch.from_numpy(bias)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the once-per-process 'same' even-kernel warning
        if mode == "zeros":
            return F.conv1d(tx, tw, tb, stride, padding, dilation, groups).numpy()
        c_out, c_in_group, k = weight.shape
        layer = torch.nn.Conv1d(
            c_in_group * groups,
            c_out,
            k,
            stride,
            padding,
            dilation,
            groups,
            bias=bias is not None,
            padding_mode=mode,
            dtype=getattr(torch, dtype),
        )
        layer.weight.copy_(tw)
        if bias is not None:
            layer.bias.copy_(tb)
        return layer(tx).numpy()


def cases():
    for b, (base, config) in enumerate(BASE.items()):
        for m, mode in enumerate(MODES):
            # One dtype per (config, mode), alternating so that every mode and every 'same'
            # kernel sees both dtypes, and batched/unbatched varies independently of dtype.
            dtype = DTYPES[(b + m) % 2]
            batched = (b // 2 + m) % 2 == 0
            with_bias = b % 3 != m % 3
            yield f"{base}_{mode}_{dtype[-2:]}", config, mode, dtype, batched, with_bias
    # PyTorch accepts an empty batch; keep one such case.
    yield "empty_batch_zeros_64", (2, 3, 3, 1, 1, 1, 1, 5), "zeros", "float64", None, True


def main() -> None:
    import torch

    torch.use_deterministic_algorithms(True)
    for old in HERE.glob("*.npz"):
        old.unlink()
    index = {}
    for name, config, mode, dtype, batched, with_bias in cases():
        c_in, c_out, k, stride, padding, dilation, groups, length = config
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        shape = (c_in, length) if batched is False else (0 if batched is None else 2, c_in, length)
        x = rng.standard_normal(shape).astype(dtype)
        weight = rng.standard_normal((c_out, c_in // groups, k)).astype(dtype)
        bias = rng.standard_normal(c_out).astype(dtype) if with_bias else None
        y = torch_forward(x, weight, bias, stride, padding, dilation, groups, mode, dtype)
        arrays = {"x": x, "weight": weight, "y": y}
        if bias is not None:
            arrays["bias"] = bias
        np.savez_compressed(HERE / f"{name}.npz", **arrays)
        index[name] = {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "padding_mode": mode,
            "dtype": dtype,
        }
    meta = {"torch_version": torch.__version__, "cases": index}
    (HERE / "index.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(index)} cases with torch {torch.__version__}")


if __name__ == "__main__":
    main()
