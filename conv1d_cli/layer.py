"""``Conv1d``: a layer object shaped like ``torch.nn.Conv1d``, in NumPy."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from conv1d_cli.core import as_real_array, check_dtype, conv1d
from conv1d_cli.errors import ConfigError, ShapeError
from conv1d_cli.io.layerfile import read_layer, save_layer
from conv1d_cli.shapes import (
    LayerSpec,
    Padding,
    check_bias_shape,
    check_int,
    check_parameter_count,
)

if TYPE_CHECKING:
    import numpy.typing as npt  # annotations only: importing it costs start-up time

__all__ = ["Conv1d", "load_layer", "torch_uniform"]


def torch_uniform(
    bit_generator: np.random.MT19937,
    shape: tuple[int, ...],
    low: float,
    high: float,
    dtype: npt.DTypeLike,
) -> np.ndarray:
    """Draw like ``torch.Tensor.uniform_(low, high)`` on PyTorch's CPU generator.

    ``bit_generator`` must be an MT19937 seeded the way ``torch.manual_seed``
    seeds it (``_legacy_seeding``). For float32 the draw is bit-for-bit
    PyTorch's: one 32-bit word per element, 24 random bits, scaled in double.
    float64 follows the 53-bit recipe; it matched PyTorch 2.13 on one build but
    is not promised bit-exact.

    Examples
    --------
    >>> mt = np.random.MT19937()
    >>> mt._legacy_seeding(0)
    >>> torch_uniform(mt, (2,), -1.0, 1.0, np.float32).dtype
    dtype('float32')
    """
    count = math.prod(shape)
    dtype = np.dtype(dtype)
    values: np.ndarray
    if dtype == np.float32:
        words = bit_generator.random_raw(count).astype(np.uint64)
        unit = (words & 0xFFFFFF).astype(np.float64) * 2.0**-24
        lo = np.float32(low)
        width = np.float32(np.float32(high) - lo)
        values = (unit * np.float64(width) + np.float64(lo)).astype(np.float32)
    else:
        words = bit_generator.random_raw(2 * count).astype(np.uint64)
        combined = (words[0::2] << np.uint64(32)) | words[1::2]
        unit = (combined & np.uint64((1 << 53) - 1)).astype(np.float64) * 2.0**-53
        values = unit * (high - low) + low
    return values.reshape(shape)


#: What :meth:`Conv1d.from_torch` reads from a module.
_TORCH_ATTRIBUTES = ("weight", "bias", "stride", "padding", "dilation", "groups", "padding_mode")


def _tensor_to_numpy(name: str, value: Any, what: str) -> np.ndarray:
    """A torch tensor (or array-like) as a NumPy array, without importing torch."""
    try:
        # Parameters carry autograd state and may live on a GPU: .numpy() needs neither.
        for step in ("detach", "cpu", "numpy"):
            method = getattr(value, step, None)
            if callable(method):
                value = method()
    except Exception as e:  # e.g. bfloat16, which NumPy has no dtype for
        raise ShapeError(
            f"from_torch: cannot turn the {what}'s {name} into a NumPy array ({e}); "
            f"convert the module first, e.g. module.float()"
        ) from e
    array = as_real_array(f"from_torch: {name} of the {what}", value)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    return array


def _single(name: str, value: Any) -> Any:
    """PyTorch's ``(2,)`` as ``2``; a longer tuple is another convolution's."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ConfigError(
                f"{name} must be one integer or a 1-tuple as in torch.nn.Conv1d, got "
                f"{tuple(value)!r} (a 2-D or 3-D convolution?)"
            )
        return value[0]
    return value


class Conv1d:
    """A 1-D convolution layer with the interface of ``torch.nn.Conv1d``.

    Parameters
    ----------
    in_channels, out_channels, kernel_size : int
        ``weight`` has shape ``(out_channels, in_channels // groups, kernel_size)``.
    stride, dilation, groups : int
        As in PyTorch.
    padding : int, tuple or str
        Anything :func:`conv1d_cli.conv1d` accepts (PyTorch's ``int``,
        ``'same'``, ``'valid'``; our ``'causal'``, ``'full'``, ``(left, right)``).
    bias : bool
        Whether the layer has a bias.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
    dtype : {'float32', 'float64'}
        Parameter dtype (PyTorch's default is float32).
    seed : int, optional
        With a seed the initial weights (and bias) are bit-for-bit those of
        ``torch.manual_seed(seed); torch.nn.Conv1d(...)`` in float32. Without
        one, a fresh random seed is used.

    Attributes
    ----------
    weight : ndarray
    bias : ndarray or None
    sample_rate : float or None
        The rate a designed filter was made for (layer-file metadata, not
        used by the arithmetic), or an impulse response was recorded at.
    sample_rate_binding : bool
        Whether ``sample_rate`` is a recorded rate that a signal must have
        (an impulse response: ``conv1d apply`` refuses another rate) rather
        than a design rate (another rate is a warning).
    description : str
        Free text kept in the layer file.

    Examples
    --------
    >>> layer = Conv1d(16, 33, 3, stride=2, seed=0)
    >>> layer(np.zeros((20, 16, 50), np.float32)).shape
    (20, 33, 24)
    >>> layer
    Conv1d(16, 33, kernel_size=(3,), stride=(2,))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: Padding = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        dtype: npt.DTypeLike = "float32",
        seed: int | None = None,
    ) -> None:
        spec = LayerSpec(
            kernel_size,
            stride,
            padding,
            dilation,
            padding_mode,
            in_channels=in_channels,
            out_channels=out_channels,
            groups=groups,
            bias=bool(bias),
        )
        resolved = check_dtype(dtype)
        if resolved.name != spec.dtype:
            spec = dataclasses.replace(spec, dtype=resolved.name)
        assert spec.in_channels is not None and spec.out_channels is not None
        in_channels, out_channels = spec.in_channels, spec.out_channels
        kernel_size, groups = spec.kernel_size, spec.groups
        self._spec = spec
        self.description = ""
        shape = (out_channels, in_channels // groups, kernel_size)
        # Before drawing: torch_uniform's temporaries are several times the weight.
        check_parameter_count(shape, resolved.itemsize)
        if seed is None:
            # Here, not at the top: secrets loads OpenSSL (hmac, hashlib), and a run that
            # only loads layers need not pay that start-up time.
            import secrets

            seed = secrets.randbits(32)
        # torch.manual_seed accepts [-2**63, 2**64) and keeps seed mod 2**32.
        seed = check_int("seed", seed, minimum=-(2**63))
        if seed >= 2**64:
            raise ConfigError(f"seed must be below 2**64, got {seed}")
        mt = np.random.MT19937()
        mt._legacy_seeding(seed % 2**32)
        fan_in = in_channels // groups * kernel_size
        # kaiming_uniform_(a=sqrt(5)) computed in double exactly as PyTorch does.
        gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
        bound = math.sqrt(3.0) * (gain / math.sqrt(fan_in))
        self.weight = torch_uniform(mt, shape, -bound, bound, resolved)
        self.bias: np.ndarray | None = None
        if bias:
            bias_bound = 1 / math.sqrt(fan_in)
            self.bias = torch_uniform(mt, (out_channels,), -bias_bound, bias_bound, resolved)

    @classmethod
    def from_weights(
        cls,
        weight: npt.ArrayLike,
        bias: npt.ArrayLike | None = None,
        stride: int = 1,
        padding: Padding = 0,
        dilation: int = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> Conv1d:
        """Build a layer around given arrays.

        Parameters
        ----------
        weight : array_like
            ``(out_channels, in_channels // groups, kernel_size)``, float32 or
            float64 (other real types become float64).
        bias : array_like, optional
            ``(out_channels,)``; cast to the weight's dtype.

        Examples
        --------
        >>> layer = Conv1d.from_weights(np.ones((1, 1, 3)), padding="same")
        >>> layer(np.array([[1.0, 2.0, 3.0]]))
        array([[3., 6., 5.]])
        """
        weight = as_real_array("weight", weight)
        dtype = np.float32 if weight.dtype == np.float32 else np.float64
        check_parameter_count(weight.shape, np.dtype(dtype).itemsize)  # before the copy
        # astype copies: the layer must not change when the caller's array does.
        weight = weight.astype(dtype)
        if weight.ndim != 3 or 0 in weight.shape:
            raise ShapeError(
                f"weight must be 3-D (out_channels, in_channels/groups, kernel_size) "
                f"with no empty dimension, got shape {weight.shape}"
            )
        spec = LayerSpec.for_weight(
            weight.shape,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            padding_mode=padding_mode,
            bias=bias is not None,
            dtype=weight.dtype.name,
        )
        if bias is not None:
            bias = as_real_array("bias", bias)
            check_bias_shape(bias.shape, weight.shape)
            bias = bias.astype(weight.dtype)
        return cls.from_spec(spec, weight, bias)

    @classmethod
    def from_spec(
        cls, spec: LayerSpec, weight: np.ndarray, bias: np.ndarray | None, description: str = ""
    ) -> Conv1d:
        """The layer ``spec`` describes, around arrays already checked against it.

        ``weight`` and ``bias`` are used as they are (not copied): this is how
        :func:`load_layer` and :meth:`from_weights` build a layer once they have
        validated the arrays. The spec's ``sample_rate`` becomes the layer's.

        Examples
        --------
        >>> spec = LayerSpec.for_weight((1, 1, 3), padding="same", bias=False)
        >>> Conv1d.from_spec(spec, np.ones((1, 1, 3), np.float32), None)
        Conv1d(1, 1, kernel_size=(3,), padding='same', bias=False)
        """
        self = cls.__new__(cls)
        self._spec = spec
        self.weight = weight
        self.bias = bias
        self.description = description
        return self

    @classmethod
    def from_torch(cls, module: Any) -> Conv1d:
        """Copy a ``torch.nn.Conv1d`` (or any object shaped like one) into a layer.

        Reads ``weight``, ``bias``, ``stride``, ``padding``, ``dilation``,
        ``groups`` and ``padding_mode`` by duck typing: torch is never imported.
        Tensors are detached and copied to the CPU; PyTorch's 1-tuples
        (``stride=(2,)``) become integers. The dtype is kept (float32 stays
        float32; float16 becomes float32). ``Conv1d.from_torch(conv).save(path)``
        writes a layer file that ``conv1d apply -w`` uses with the module's
        hyperparameters.

        Parameters
        ----------
        module : torch.nn.Conv1d or object
            Anything with those seven attributes. ``bias`` may be ``None``;
            ``padding`` an integer, a 1-tuple or ``'same'``/``'valid'``.

        Returns
        -------
        Conv1d
            A copy: changing ``module`` afterwards does not change it.

        Raises
        ------
        ConfigError
            If an attribute is missing, or a hyperparameter is invalid or not
            that of a 1-D convolution (e.g. ``stride=(2, 2)`` of a Conv2d).
        ShapeError
            If ``weight`` is not 3-D ``(out_channels, in_channels/groups,
            kernel_size)`` real numbers, or ``bias`` does not match it.

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> conv = SimpleNamespace(
        ...     weight=np.ones((2, 1, 3), np.float32), bias=None, stride=(1,),
        ...     padding="same", dilation=(1,), groups=2, padding_mode="zeros")
        >>> layer = Conv1d.from_torch(conv)
        >>> layer
        Conv1d(2, 2, kernel_size=(3,), padding='same', groups=2, bias=False)
        >>> layer(np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], np.float32))
        array([[3., 6., 5.],
               [1., 1., 1.]], dtype=float32)
        """
        what = type(module).__name__
        missing = [name for name in _TORCH_ATTRIBUTES if not hasattr(module, name)]
        if missing:
            raise ConfigError(
                f"from_torch needs a torch.nn.Conv1d (or an object with "
                f"{', '.join(_TORCH_ATTRIBUTES)}); the {what} has no "
                f"{', '.join(map(repr, missing))}"
            )
        weight = _tensor_to_numpy("weight", module.weight, what)
        if weight.ndim != 3:
            raise ShapeError(
                f"from_torch: weight of the {what} must be 3-D (out_channels, "
                f"in_channels/groups, kernel_size) as in torch.nn.Conv1d, got shape "
                f"{weight.shape}"
            )
        raw_bias = module.bias
        bias = None if raw_bias is None else _tensor_to_numpy("bias", raw_bias, what)
        padding = module.padding
        if isinstance(padding, (tuple, list)) and len(padding) == 1:
            padding = padding[0]
        try:
            return cls.from_weights(
                weight,
                bias,
                stride=_single("stride", module.stride),
                padding=padding,
                dilation=_single("dilation", module.dilation),
                groups=module.groups,
                padding_mode=module.padding_mode,
            )
        except (ConfigError, ShapeError) as e:
            raise type(e)(f"from_torch ({what}): {e}") from e

    @property
    def spec(self) -> LayerSpec:
        """The hyperparameters, validated once (a :class:`~conv1d_cli.shapes.LayerSpec`)."""
        return self._spec

    def _replace(self, **changes: Any) -> None:
        # A frozen spec: a changed hyperparameter is validated like a new layer's.
        self._spec = dataclasses.replace(self._spec, **changes)

    @property
    def stride(self) -> int:
        return self._spec.stride

    @stride.setter
    def stride(self, value: int) -> None:
        self._replace(stride=value)

    @property
    def padding(self) -> Padding:
        return self._spec.padding

    @padding.setter
    def padding(self, value: Padding) -> None:
        self._replace(padding=value)

    @property
    def dilation(self) -> int:
        return self._spec.dilation

    @dilation.setter
    def dilation(self, value: int) -> None:
        self._replace(dilation=value)

    @property
    def groups(self) -> int:
        return self._spec.groups

    @groups.setter
    def groups(self, value: int) -> None:
        self._replace(groups=value)

    @property
    def padding_mode(self) -> str:
        return self._spec.padding_mode

    @padding_mode.setter
    def padding_mode(self, value: str) -> None:
        self._replace(padding_mode=value)

    @property
    def sample_rate(self) -> float | None:
        """The rate a designed filter was made for (metadata; not used by the arithmetic)."""
        return self._spec.sample_rate

    @sample_rate.setter
    def sample_rate(self, value: float | None) -> None:
        self._replace(sample_rate=value)

    @property
    def sample_rate_binding(self) -> bool:
        """Whether a signal must have :attr:`sample_rate` (an impulse response's rate).

        Examples
        --------
        >>> layer = Conv1d.from_weights(np.ones((1, 1, 3)))
        >>> layer.sample_rate, layer.sample_rate_binding = 48000, True
        >>> layer.spec.sample_rate_binding
        True
        """
        return self._spec.sample_rate_binding

    @sample_rate_binding.setter
    def sample_rate_binding(self, value: bool) -> None:
        self._replace(sample_rate_binding=value)

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1] * self.groups)

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel_size(self) -> int:
        return int(self.weight.shape[2])

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.weight.dtype

    def resolved_padding(self) -> tuple[int, int]:
        """The ``(left, right)`` padding this layer applies.

        Examples
        --------
        >>> Conv1d(1, 1, 4, padding="same", seed=0).resolved_padding()
        (1, 2)
        """
        return self._spec.resolved_padding()

    def __call__(self, x: Any, *, method: str = "auto") -> Any:
        """Apply the layer to ``(N, C_in, L)`` or ``(C_in, L)`` input.

        A NumPy array (or array-like) gives an ndarray; a Dask array gives a lazy
        Dask array (:func:`conv1d_cli.dask.conv1d`, the optional ``[dask]`` extra).
        """
        # Duck-typed so that this module never imports Dask: only a Dask array
        # (whose class lives in a dask.* module) loads conv1d_cli.dask.
        correlate: Any = conv1d
        if type(x).__module__.startswith("dask.") and hasattr(x, "__dask_graph__"):
            # Only a Dask array loads the Dask path (Dask itself is an optional extra).
            from conv1d_cli import dask as dask_conv

            correlate = dask_conv.conv1d
        return correlate(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.padding_mode,
            method=method,
        )

    def save(self, path: str | os.PathLike[str], overwrite: bool = False) -> None:
        """Write this layer to a pickle-free ``.npz`` layer file (atomically).

        See :func:`conv1d_cli.io.layerfile.save_layer`.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = pathlib.Path(tmp.name) / "layer.npz"
        >>> Conv1d(1, 2, 3, seed=0).save(path)
        >>> Conv1d.load(path).weight.shape
        (2, 1, 3)
        >>> tmp.cleanup()
        """
        save_layer(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], key: str | None = None, **overrides: Any) -> Conv1d:
        """Read a layer file, or a plain ``.npz`` of ``weight`` (+ ``bias``).

        ``overrides`` (``stride``, ``padding``, ``dilation``, ``groups``,
        ``padding_mode``, ``sample_rate``) replace stored values. See
        :func:`load_layer`.
        """
        return load_layer(path, key=key, **overrides)

    def __repr__(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}", f"kernel_size=({self.kernel_size},)"]
        if self.stride != 1:
            parts.append(f"stride=({self.stride},)")
        if isinstance(self.padding, str):
            parts.append(f"padding={self.padding!r}")
        elif isinstance(self.padding, tuple):
            parts.append(f"padding={self.padding}")
        elif self.padding:
            parts.append(f"padding=({self.padding},)")
        if self.dilation != 1:
            parts.append(f"dilation=({self.dilation},)")
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        if self.bias is None:
            parts.append("bias=False")
        if self.padding_mode != "zeros":
            parts.append(f"padding_mode={self.padding_mode!r}")
        return f"Conv1d({', '.join(parts)})"


def load_layer(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    data: bytes | None = None,
    **overrides: Any,
) -> Conv1d:
    """Read a layer file (or a plain/PyTorch-exported ``.npz``) into a :class:`Conv1d`.

    Parameters
    ----------
    path, key, data, **overrides
        As :func:`conv1d_cli.io.layerfile.read_layer`, which reads the file (the
        archive, the key's prefix, a pipe's bytes already read, and the hyperparameters
        that replace the file's values).

    Returns
    -------
    Conv1d

    Raises
    ------
    DataFileError
        For any problem with the file, naming the file and the problem (see
        :func:`conv1d_cli.io.layerfile.read_layer`).
    ConfigError
        For an invalid override value.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "exported.npz"
    >>> np.savez(path, **{"conv.weight": np.ones((1, 1, 3), np.float32)})
    >>> load_layer(path, padding="same")
    Conv1d(1, 1, kernel_size=(3,), padding='same', bias=False)
    >>> tmp.cleanup()
    """
    stored = read_layer(path, key=key, data=data, **overrides)
    return Conv1d.from_spec(stored.spec, stored.weight, stored.bias, stored.description)
