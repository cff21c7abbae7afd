"""Layers made from weight arrays in files: a ``.npy`` weight, or one layer of an ``.npz``.

What ``conv1d init --weight`` builds, for scripts too: PyTorch's weight layout
``(C_out, C_in/groups, K)`` or one 1-D kernel, an optional bias array, and values
narrowed to the layer's dtype only where they fit it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conv1d_cli.errors import ConfigError, DataFileError, ShapeError
from conv1d_cli.io.coefficients import read_npy
from conv1d_cli.layer import Conv1d, load_layer
from conv1d_cli.shapes import Padding, check_bias_shape

__all__ = ["layer_from_archive", "layer_from_npy", "narrowed"]


def layer_from_npy(
    weight: str,
    *,
    bias_file: str | None = None,
    bias: bool = False,
    channels: int | None = None,
    groups: int | None = None,
    dtype: str | None = None,
    stride: int = 1,
    padding: Padding | None = None,
    dilation: int = 1,
    padding_mode: str = "zeros",
    sample_rate: float | None = None,
) -> Conv1d:
    """A layer around the weight array in a ``.npy`` file, used as it is (no flip).

    Parameters
    ----------
    weight : str
        The ``.npy`` file: a 3-D weight ``(C_out, C_in/groups, K)``, or one 1-D kernel
        made depthwise over ``channels`` channels (weight ``(C, 1, K)``, groups ``C``).
    bias_file : str, optional
        A ``.npy`` bias of shape ``(C_out,)``.
    bias : bool
        Without ``bias_file``: add a zero bias.
    channels : int, optional
        The channels a 1-D kernel filters (default 1); not for a 3-D weight.
    groups : int, optional
        The groups of a 3-D weight (default 1); not for a 1-D kernel.
    dtype : {"float32", "float64"}, optional
        Default: the array's own float dtype, float64 for integers.
    stride, padding, dilation, padding_mode
        As :class:`~conv1d_cli.layer.Conv1d` (``padding`` None is 0).
    sample_rate : float, optional
        Stored in the layer (already checked by the caller).

    Returns
    -------
    Conv1d
        Its ``description`` says where the arrays came from.

    Raises
    ------
    ConfigError
        ``channels`` with a 3-D weight, or ``groups`` with a 1-D kernel.
    DataFileError
        An unreadable file, a weight that is not 1-D or 3-D, a bias of the wrong
        shape, or values too large for ``dtype``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = str(pathlib.Path(tmp.name) / "k.npy")
    >>> np.save(path, np.array([0.25, 0.5, 0.25]))
    >>> layer = layer_from_npy(path, channels=2)
    >>> layer.weight.shape, layer.groups, layer.description == f"weight from {path}"
    ((2, 1, 3), 2, True)
    >>> tmp.cleanup()
    """
    array = read_npy(weight, "weight")
    if array.ndim == 1:
        if groups is not None:
            raise ConfigError(
                "{parameter} applies to a 3-D {parameter:weight}; a 1-D kernel uses "
                "{parameter:channels}",
                parameter="groups",
            )
        array = np.broadcast_to(array, (channels or 1, 1, array.size))
        groups = channels or 1
    elif array.ndim == 3:
        if channels is not None:
            raise ConfigError(
                "{parameter} applies to a 1-D {parameter:weight}; a 3-D weight uses "
                "{parameter:groups}",
                parameter="channels",
            )
        groups = groups or 1
    else:
        raise DataFileError(
            f"{weight}: weight must be 1-D (one kernel) or 3-D "
            f"(out_channels, in_channels/groups, kernel_size), got shape {array.shape}"
        )
    dtype = dtype or (array.dtype.name if array.dtype.kind == "f" else "float64")
    array = narrowed(array, dtype, weight)
    bias_array = None
    if bias_file is not None:
        bias_array = narrowed(read_npy(bias_file, "bias"), dtype, bias_file)
        _check_bias_file(bias_file, bias_array.shape, array.shape, "weight")
    elif bias:
        bias_array = np.zeros(array.shape[0], dtype)
    layer = Conv1d.from_weights(
        array,
        bias_array,
        stride=stride,
        padding=0 if padding is None else padding,
        dilation=dilation,
        groups=groups,
        padding_mode=padding_mode,
    )
    layer.sample_rate = sample_rate
    layer.description = f"weight from {weight}" + (f", bias from {bias_file}" if bias_file else "")
    return layer


def layer_from_archive(
    path: str,
    *,
    key: str | None = None,
    name: str | None = None,
    bias_file: str | None = None,
    bias: bool | None = None,
    dtype: str | None = None,
    sample_rate: float | None = None,
    **overrides: Any,
) -> Conv1d:
    """One layer of an ``.npz`` (a layer file or a ``state_dict`` export), copied.

    :func:`~conv1d_cli.layer.load_layer` does the reading (prefixed keys, the
    candidates listed when the choice is ambiguous, ``torch.save`` files refused), so
    an export means the same here as everywhere else.

    Parameters
    ----------
    path : str
        The archive.
    key : str, optional
        The layer's prefix in the archive (``"encoder.conv"``).
    name : str, optional
        How messages and the description call the layer (default ``path``).
    bias_file : str, optional
        A ``.npy`` bias of shape ``(C_out,)`` replacing the layer's.
    bias : bool, optional
        False drops the layer's bias; True adds a zero bias where it has none.
    dtype : {"float32", "float64"}, optional
        Default: the layer's.
    sample_rate : float, optional
        Replaces the stored rate.
    **overrides
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``: replace
        the stored values.

    Returns
    -------
    Conv1d
        With the layer file's description, else one saying where it came from.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = str(pathlib.Path(tmp.name) / "model.npz")
    >>> np.savez(path, **{"enc.weight": np.ones((2, 1, 3)), "enc.bias": np.zeros(2)})
    >>> layer = layer_from_archive(path, key="enc", bias=False, stride=2)
    >>> layer.weight.shape, layer.bias, layer.stride, layer.description == f"layer from {path}"
    ((2, 1, 3), None, 2, True)
    >>> tmp.cleanup()
    """
    shown = name or path
    loaded = load_layer(path, key=key, sample_rate=sample_rate, **overrides)
    dtype = dtype or loaded.dtype.name
    weight = narrowed(loaded.weight, dtype, shown)
    bias_array = loaded.bias
    if bias_file is not None:
        bias_array = read_npy(bias_file, "bias")
        _check_bias_file(bias_file, bias_array.shape, weight.shape, f"{shown} weight")
    elif bias is False:
        bias_array = None
    elif bias and bias_array is None:
        bias_array = np.zeros(weight.shape[0], dtype)
    layer = Conv1d.from_weights(
        weight,
        None if bias_array is None else narrowed(bias_array, dtype, bias_file or shown),
        stride=loaded.stride,
        padding=loaded.padding,
        dilation=loaded.dilation,
        groups=loaded.groups,
        padding_mode=loaded.padding_mode,
    )
    layer.sample_rate = loaded.sample_rate
    layer.sample_rate_binding = loaded.sample_rate_binding  # a copied IR stays one
    # A layer file's own description says more than where it was copied from.
    layer.description = loaded.description or f"layer from {shown}"
    if bias_file is not None:
        layer.description += f", bias from {bias_file}"
    return layer


def narrowed(array: Any, dtype: str, source: str) -> np.ndarray:
    """``array`` as ``dtype``; a value too large for it (1e308 as float32) is an error.

    NumPy would turn it into inf with a RuntimeWarning, and the layer would then hold
    a non-finite weight that no layer file accepts.

    Examples
    --------
    >>> narrowed(np.array([1.0, 2.0]), "float32", "w.npy").dtype
    dtype('float32')
    >>> try:
    ...     narrowed(np.array([1e300]), "float32", "w.npy")
    ... except DataFileError as e:
    ...     print(e)
    w.npy: values up to 1e+300 do not fit float32 (largest 3.4e+38); give dtype float64
    """
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(array, dtype=dtype)
    if not np.isfinite(out).all() and np.isfinite(array).all():
        raise DataFileError(
            f"{source}: values up to {float(np.max(np.abs(array))):.3g} do not fit {dtype} "
            f"(largest {float(np.finfo(dtype).max):.3g}); give {{parameter}} float64",
            parameter="dtype",
        )
    return out


def _check_bias_file(
    path: str, shape: tuple[int, ...], weight_shape: tuple[int, ...], weight_name: str
) -> None:
    """The one bias-shape rule (:func:`conv1d_cli.shapes.check_bias_shape`) for a bias
    file: a wrong shape is the file's fault, so a :class:`DataFileError` naming it."""
    try:
        check_bias_shape(shape, weight_shape, weight_name=weight_name)
    except ShapeError as e:
        raise DataFileError(f"{{path}}: {e.message}", path=path) from None
