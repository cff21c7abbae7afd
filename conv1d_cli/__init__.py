"""conv1d: PyTorch-exact 1-D convolution in NumPy, and a CLI to filter signals with it.

Public API (imported lazily, so ``import conv1d_cli`` and ``conv1d shape`` stay
fast and never pull in NumPy until it is needed):

- :func:`conv1d` -- ``torch.nn.functional.conv1d`` plus ``padding_mode``
- :class:`Conv1d` -- a layer like ``torch.nn.Conv1d``
- :func:`output_length`, :func:`resolve_padding` -- shape arithmetic
- :class:`Conv1dError` and its subclasses -- every deliberate error

Examples
--------
>>> import numpy as np
>>> from conv1d_cli import conv1d
>>> conv1d(np.arange(1.0, 7.0)[None], np.array([[[1.0, 2.0, 3.0]]]))
array([[14., 20., 26., 32.]])
"""

from __future__ import annotations

import importlib
from typing import Any

from conv1d_cli._version import __version__
from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError, ShapeError
from conv1d_cli.shapes import min_input_length, output_length, resolve_padding

__all__ = [
    "ConfigError",
    "Conv1d",
    "Conv1dError",
    "DataFileError",
    "ShapeError",
    "__version__",
    "conv1d",
    "min_input_length",
    "output_length",
    "pad1d",
    "resolve_padding",
]

# name -> module that defines it; these need NumPy, so load them on first use.
_LAZY = {"conv1d": "conv1d_cli.core", "pad1d": "conv1d_cli.core", "Conv1d": "conv1d_cli.layer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'conv1d_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
