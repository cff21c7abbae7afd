"""Layer files: a :class:`~conv1d_cli.shapes.LayerSpec` and its arrays as a pickle-free ``.npz``.

This module reads and writes specs and arrays; :mod:`conv1d_cli.layer` builds a
``Conv1d`` from them (``Conv1d.load``, :func:`conv1d_cli.layer.load_layer`).

Format (version 1)
------------------
An ordinary NumPy ``.npz`` archive holding

``weight``
    ``(out_channels, in_channels / groups, kernel_size)``, a real floating-point
    dtype: float32 or float64 (float16 is read as float32, wider floats as float64).
``bias`` (optional)
    ``(out_channels,)``, same dtype as ``weight``.
``conv1d_config`` (optional)
    A 0-d unicode array holding one JSON object::

        {"format": "conv1d-layer", "version": 1, "stride": 1, "padding": [2, 1],
         "dilation": 1, "groups": 1, "padding_mode": "zeros",
         "sample_rate": 48000.0, "description": "..."}

    ``padding`` is an integer, one of ``"same"``, ``"valid"``, ``"causal"``,
    ``"full"``, or a ``[left, right]`` pair; ``sample_rate`` may be ``null``.
    An impulse response's layer also holds ``"sample_rate_binding": true``:
    ``sample_rate`` is the rate its taps were recorded at, which a signal must
    have (``apply`` refuses another; a design rate only warns). The field is
    written only when true, so every other layer file reads as it always has.

A plain ``.npz`` with just ``weight`` (and ``bias``) -- what
``numpy.savez("layer.npz", **{k: v.numpy() for k, v in conv.state_dict().items()})``
writes -- loads too, with PyTorch's default hyperparameters. Keys may carry a
module prefix (``encoder.conv.weight``); the prefix is found when it is
unambiguous and chosen with ``key=`` otherwise. Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import sys
import zipfile
from pathlib import Path
from typing import Any, Final, NamedTuple, Protocol

import numpy as np

from conv1d_cli.errors import ConfigError, DataFileError, ShapeError
from conv1d_cli.io.atomic import atomic_path
from conv1d_cli.io.sniff import is_pickle, starts_like_layer
from conv1d_cli.shapes import (
    MAX_ARRAY_BYTES,
    MAX_PARAMETERS,
    MAX_SIZE,
    LayerSpec,
    Padding,
    check_bias_shape,
    check_int,
    check_padding,
    check_padding_mode,
    check_stored_rate,
)

__all__ = [
    "CONFIG_KEY",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SavedLayer",
    "StoredLayer",
    "read_layer",
    "save_layer",
]

#: Name of the JSON entry in the archive.
CONFIG_KEY: Final = "conv1d_config"
#: ``format`` field of the JSON entry.
FORMAT_NAME: Final = "conv1d-layer"
#: Highest format version this code reads and the one it writes.
FORMAT_VERSION: Final = 1
#: Largest JSON config read, in bytes as stored (4 per character): ours are a few
#: hundred. A bigger one is refused before it is decompressed or parsed, since a
#: small compressed file can hold gigabytes of JSON that parse into far more.
MAX_CONFIG_BYTES: Final = 1 << 20

_CONFIG_FIELDS: Final = (
    "format",
    "version",
    "stride",
    "padding",
    "dilation",
    "groups",
    "padding_mode",
    "sample_rate",
    "sample_rate_binding",
    "description",
)
_OVERRIDES: Final = ("stride", "padding", "dilation", "groups", "padding_mode", "sample_rate")


class SavedLayer(Protocol):
    """What :func:`save_layer` writes: a :class:`~conv1d_cli.layer.Conv1d`, or any
    object with its ``spec``, arrays and ``description``."""

    @property
    def spec(self) -> LayerSpec: ...

    weight: np.ndarray
    bias: np.ndarray | None
    description: str


class StoredLayer(NamedTuple):
    """What :func:`read_layer` found: the validated spec, the arrays and the free text."""

    spec: LayerSpec
    weight: np.ndarray
    bias: np.ndarray | None
    description: str


def _padding_to_json(padding: Padding) -> int | str | list[int]:
    if isinstance(padding, (tuple, list)):
        return [int(p) for p in padding]
    if isinstance(padding, str):
        return padding
    return int(padding)


def save_layer(layer: SavedLayer, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Write ``layer`` to ``path`` as a version-1 layer file, atomically.

    Parameters
    ----------
    layer : Conv1d
        The layer; its ``sample_rate`` (and whether it is binding) and
        ``description`` are stored too.
    path : path-like
        Target file. The name is used as given (no ``.npz`` is appended).
    overwrite : bool
        Replace an existing file. Without it an existing ``path`` is an error.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is false (a :class:`DataFileError`).
    DataFileError
        If ``path`` cannot be written. Nothing is left at ``path`` on failure.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "layer.npz"
    >>> from conv1d_cli.layer import Conv1d
    >>> save_layer(Conv1d(2, 4, 3, padding="same", seed=0), path)
    >>> read_layer(path).spec.padding
    'same'
    >>> tmp.cleanup()
    """
    spec = layer.spec
    config = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "stride": spec.stride,
        "padding": _padding_to_json(spec.padding),
        "dilation": spec.dilation,
        "groups": spec.groups,
        "padding_mode": spec.padding_mode,
        "sample_rate": spec.sample_rate,
        "description": str(layer.description or ""),
    }
    if spec.sample_rate_binding:
        # Only when true: a file without it is read exactly as before the field existed.
        config["sample_rate_binding"] = True
    arrays: dict[str, np.ndarray] = {
        "weight": np.ascontiguousarray(layer.weight),
        CONFIG_KEY: np.array(json.dumps(config, sort_keys=True)),
    }
    if layer.bias is not None:
        arrays["bias"] = np.ascontiguousarray(layer.bias)
    with atomic_path(path, overwrite=overwrite) as tmp:
        # An open file object: np.savez would append ".npz" to a bare name.
        try:
            with open(tmp, "wb") as f:
                if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    np.savez(f, **arrays)  # type: ignore[arg-type]  # stubs type the kwargs as allow_pickle
                else:
                    # A device or FIFO (/dev/null, /dev/stdout): zipfile seeks back to
                    # write its directory, which such a file cannot do, so build the
                    # archive in memory and write it through once.
                    buffer = io.BytesIO()
                    np.savez(buffer, **arrays)  # type: ignore[arg-type]
                    f.write(buffer.getbuffer())
        except OSError as e:
            raise DataFileError(f"{path}: cannot write layer file: {e}") from e


#: How to get a layer out of PyTorch without conv1d unpickling anything.
_TORCH_EXPORT: Final = (
    'export the weights instead: numpy.savez("model.npz", **{k: v.cpu().numpy() for k, v '
    "in model.state_dict().items()}), then use model.npz:KEY; or save one layer with "
    'conv1d_cli.Conv1d.from_torch(model.conv).save("layer.npz")'
)


def _holds_torch_pickle(f: Any) -> bool:
    """Whether the zip archive ``f`` is a ``torch.save`` file (a ``data.pkl`` member)."""
    try:
        with zipfile.ZipFile(f) as archive:  # closes only what it opened, not f
            names = archive.namelist()
    except Exception:
        return False  # a broken archive: np.load reports it
    finally:
        f.seek(0)
    return any(name == "data.pkl" or name.endswith("/data.pkl") for name in names)


#: Most bytes read from a pipe given as a layer: the largest entry plus its config.
MAX_PIPED_LAYER_BYTES: Final = MAX_ARRAY_BYTES + MAX_CONFIG_BYTES + (1 << 20)


def read_piped_layer(f: Any, path: str | os.PathLike[str]) -> bytes:
    """Read a layer arriving on a pipe (``-w <(...)``, a FIFO) whole, with a bound.

    The first bytes are checked before anything else is read: ``/dev/zero`` or an
    endless text producer is refused at once instead of filling the memory, and an
    archive is read to at most :data:`MAX_PIPED_LAYER_BYTES`.

    Raises
    ------
    DataFileError
        Not the start of a layer archive, or longer than the bound.
    """
    head = f.read(4)
    if not starts_like_layer(head):
        raise DataFileError(
            f"{path}: not a layer file (it starts with {head!r}; a layer .npz starts with 'PK')"
        )
    chunks = [head]
    total = len(head)
    while chunk := f.read(min(1 << 20, MAX_PIPED_LAYER_BYTES + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_PIPED_LAYER_BYTES:
            raise DataFileError(
                f"{path}: a layer given as a pipe may hold at most "
                f"{_gib(MAX_PIPED_LAYER_BYTES)}; save it to a file"
            )
    return b"".join(chunks)


def _open_npz(path: Path, stack: contextlib.ExitStack, data: bytes | None = None) -> Any:
    """Open ``path`` (or its bytes ``data``) as an npz archive whose handle ``stack`` closes."""
    if data is not None:  # a pipe the caller has already read (to sniff it)
        return _load_npz(io.BytesIO(data), data[:6], path, stack)
    if str(path) == "-":
        raise DataFileError("reading a layer file from stdin ('-') is not supported")
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, expected a layer .npz file")
    try:
        f: Any = stack.enter_context(open(path, "rb"))
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            # A pipe (-w <(...), a FIFO): zip needs to seek, so read it whole; layers are small.
            f = io.BytesIO(read_piped_layer(f, path))
        magic = f.read(6)
        f.seek(0)
    except OSError as e:
        raise DataFileError(f"{path}: cannot read layer file: {e.strerror or e}") from e
    return _load_npz(f, magic, path, stack)


def _load_npz(f: Any, magic: bytes, path: Path, stack: contextlib.ExitStack) -> Any:
    if magic == b"\x93NUMPY":
        raise DataFileError(
            f"{path}: is a single .npy array, not a layer .npz archive "
            f"(make one with: conv1d init LAYER.npz --weight {path})"
        )
    if is_pickle(magic):  # torch.save(..., _use_new_zipfile_serialization=False)
        raise DataFileError(
            f"{path}: not a layer file but a Python pickle (an old-style torch.save file?), "
            f"which conv1d never loads; {_TORCH_EXPORT}"
        )
    if magic.startswith(b"PK") and _holds_torch_pickle(f):
        raise DataFileError(
            f"{path}: not a layer file but a PyTorch torch.save file (a zip around a pickled "
            f"data.pkl), which conv1d never unpickles; {_TORCH_EXPORT}"
        )
    if not magic.startswith(b"PK"):
        raise DataFileError(
            f"{path}: not a layer file: expected a NumPy .npz (zip) archive, "
            f"the file starts with {magic!r}"
        )
    try:
        # Our own file object: np.load leaks its handle when the zip is bad.
        return stack.enter_context(np.load(f, allow_pickle=False))
    except Exception as e:
        # BadZipFile, EOFError, OSError, ... for truncated or corrupt archives.
        raise DataFileError(f"{path}: cannot read layer file: {e}") from e


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.1f} GiB"


def _check_member_size(npz: Any, key: str, path: Path) -> None:
    """Refuse an entry whose declared size is over the limits, before decompressing it.

    A compressed ``.npz`` is a zip bomb in waiting: 1.5 MB of deflated zeros can
    declare a 3 GB weight, which ``npz[key]`` would allocate and inflate before any
    shape check runs. The ``.npy`` header (shape and dtype) is read from the member's
    stream, which costs a few hundred bytes, and checked against
    :data:`~conv1d_cli.shapes.MAX_PARAMETERS` / :data:`~conv1d_cli.shapes.MAX_ARRAY_BYTES`
    (:data:`MAX_CONFIG_BYTES` for the JSON config); the zip directory's uncompressed
    size must hold what the header declares.
    """
    names = npz.zip.namelist()
    member = key + ".npy" if key + ".npy" in names else key
    info = npz.zip.getinfo(member)
    limit = MAX_CONFIG_BYTES if key.endswith(CONFIG_KEY) else MAX_ARRAY_BYTES
    with npz.zip.open(member) as f:
        if f.read(6) != np.lib.format.MAGIC_PREFIX:
            # Not an .npy: numpy hands back the raw bytes, whose size the zip declares.
            if info.file_size > limit:
                raise DataFileError(
                    f"{path}: entry {key!r} is {_gib(info.file_size)} uncompressed; "
                    f"at most {_gib(limit)} is read"
                )
            return
        version = (f.read(1)[0], f.read(1)[0])
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            # 3.0 only differs for structured dtypes with non-Latin-1 names: never a layer.
            raise DataFileError(
                f"{path}: entry {key!r} is a .npy of format version {version[0]}.{version[1]}; "
                f"layer arrays are version 1.0 or 2.0"
            )
        header_end = f.tell()
    count = 1
    for n in shape:
        count *= int(n)
    nbytes = count * dtype.itemsize
    shown = f"shape {tuple(int(n) for n in shape)} {dtype}"
    if limit == MAX_CONFIG_BYTES and nbytes > limit:
        raise DataFileError(
            f"{path}: entry {key!r} declares {shown}, {nbytes} bytes; a layer's JSON "
            f"config may be at most {MAX_CONFIG_BYTES} bytes (1 MiB)"
        )
    if count > MAX_PARAMETERS or nbytes > MAX_ARRAY_BYTES:
        raise DataFileError(
            f"{path}: entry {key!r} declares {shown}: {count} values, {_gib(nbytes)}; a "
            f"layer file entry may hold at most {MAX_PARAMETERS} (2**28) values and "
            f"{_gib(MAX_ARRAY_BYTES)}"
        )
    if dtype.kind != "O" and info.file_size < header_end + nbytes:
        raise DataFileError(
            f"{path}: entry {key!r} is truncated: its header declares {shown} "
            f"({nbytes} bytes of data) but the archive holds "
            f"{max(0, info.file_size - header_end)}"
        )


def _read_array(npz: Any, key: str, path: Path) -> np.ndarray:
    try:
        _check_member_size(npz, key, path)
        return np.asarray(npz[key])
    except DataFileError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise DataFileError(
                f"{path}: entry {key!r} holds pickled objects, which are never loaded"
            ) from e
        raise DataFileError(f"{path}: entry {key!r} is malformed: {e}") from e
    except Exception as e:
        # numpy's header parser raises whatever a corrupt byte makes it hit
        # (BadZipFile, zlib.error, EOFError, tokenize.TokenError, ...).
        raise DataFileError(f"{path}: entry {key!r} is unreadable (truncated file?): {e}") from e


def _choose_prefix(names: list[str], npz: Any, path: Path, key: str | None) -> str:
    """Return the key prefix ('' or 'encoder.conv.') of the layer to load."""
    prefixes = sorted(
        name[: -len("weight")] for name in names if name == "weight" or name.endswith(".weight")
    )
    if key is not None:
        wanted = key
        if wanted.endswith("weight"):
            wanted = wanted[: -len("weight")]
        if wanted and not wanted.endswith("."):
            wanted += "."
        if wanted not in prefixes:
            raise DataFileError(
                f"{path}: no weight for key {key!r}; layers in the file: "
                f"{_describe(prefixes, names)}"
            )
        return wanted
    if "" in prefixes:
        return ""
    if not prefixes:
        raise DataFileError(
            f"{path}: no 'weight' entry (found {_describe_names(names)}); a layer file "
            f"needs 'weight' (out_channels, in_channels/groups, kernel_size)"
        )
    if len(prefixes) > 1:
        # A state_dict may hold norm layers etc.: only 3-D weights are convolutions.
        conv = [p for p in prefixes if _read_array(npz, p + "weight", path).ndim == 3]
        if len(conv) == 1:
            return conv[0]
        raise DataFileError(
            f"{path}: holds several layers, choose one with {{parameter}}: "
            f"{_describe(conv or prefixes, names)}",
            parameter="key",
        )
    return prefixes[0]


def _describe(prefixes: list[str], names: list[str]) -> str:
    if not prefixes:
        return f"none (entries: {_describe_names(names)})"
    return ", ".join(repr(p[:-1]) if p else "'' (unprefixed)" for p in prefixes)


def _describe_names(names: list[str]) -> str:
    return ", ".join(map(repr, names)) if names else "no entries at all"


def _check_float_array(name: str, array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype.kind != "f":
        kind = {
            "c": "complex",
            "i": "integer",
            "u": "unsigned integer",
            "b": "boolean",
            "O": "object",
        }.get(array.dtype.kind, "non-numeric")
        raise DataFileError(
            f"{path}: {name} must have a real floating-point dtype (float16/32/64; "
            f"float16 is read as float32), got {kind} dtype {array.dtype}"
        )
    if array.dtype.itemsize < 4:
        array = array.astype(np.float32)
    elif array.dtype.itemsize > 8:
        array = array.astype(np.float64)
    if array.size and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise DataFileError(f"{path}: {name} holds {bad} non-finite value(s) (NaN or Inf)")
    return array


def _read_config(npz: Any, names: list[str], prefix: str, path: Path) -> dict[str, Any]:
    key = prefix + CONFIG_KEY
    if key not in names:
        return {}
    raw = _read_array(npz, key, path)
    if raw.shape != () or raw.dtype.kind != "U":
        raise DataFileError(
            f"{path}: {key!r} must be a 0-d unicode string holding JSON, got dtype "
            f"{raw.dtype} shape {raw.shape}"
        )
    try:
        config = json.loads(str(raw))
    except RecursionError as e:
        raise DataFileError(
            f"{path}: {key!r} is nested too deeply to read (a layer config is one flat JSON object)"
        ) from e
    except json.JSONDecodeError as e:
        raise DataFileError(f"{path}: {key!r} is not valid JSON: {e}") from e
    except ValueError as e:
        # An integer literal longer than Python converts (sys.get_int_max_str_digits()).
        raise DataFileError(
            f"{path}: {key!r} holds an integer of more than {sys.get_int_max_str_digits()} "
            f"digits; no hyperparameter may exceed {MAX_SIZE} (2**31 - 1)"
        ) from e
    if not isinstance(config, dict):
        raise DataFileError(f"{path}: {key!r} must be a JSON object, got {type(config).__name__}")
    unknown = sorted(set(config) - set(_CONFIG_FIELDS))
    if unknown:
        raise DataFileError(
            f"{path}: {key!r} has unknown field(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(_CONFIG_FIELDS)}"
        )
    if config.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise DataFileError(
            f"{path}: {key!r} format must be {FORMAT_NAME!r}, got {config['format']!r}"
        )
    version = config.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DataFileError(f"{path}: {key!r} version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise DataFileError(
            f"{path}: layer file format version {version} is newer than this conv1d "
            f"reads (up to {FORMAT_VERSION}); upgrade conv1d-cli"
        )
    out: dict[str, Any] = {}
    try:
        for name in ("stride", "dilation", "groups"):
            if name in config:
                out[name] = check_int(name, config[name], maximum=MAX_SIZE)
        if "padding" in config:
            out["padding"] = check_padding(config["padding"], notation="json")
        if "padding_mode" in config:
            out["padding_mode"] = check_padding_mode(config["padding_mode"])
        if "sample_rate" in config:
            out["sample_rate"] = check_stored_rate(config["sample_rate"])
    except ConfigError as e:
        raise DataFileError(f"{path}: {key!r}: {e}") from e
    binding = config.get("sample_rate_binding", False)
    if not isinstance(binding, bool):
        raise DataFileError(
            f"{path}: {key!r} sample_rate_binding must be true or false, got {binding!r}"
        )
    if binding and out.get("sample_rate") is None:
        raise DataFileError(f"{path}: {key!r} sample_rate_binding is true but no sample_rate")
    out["sample_rate_binding"] = binding
    description = config.get("description", "")
    if not isinstance(description, str):
        raise DataFileError(
            f"{path}: {key!r} description must be a string, got {type(description).__name__}"
        )
    out["description"] = description
    return out


def _checked_arrays(
    weight: np.ndarray,
    bias: np.ndarray | None,
    prefix: str,
    config: dict[str, Any],
    path: Path,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The weight and bias as the layer will hold them, or a DataFileError naming the file."""
    shown = f"{prefix}weight"
    weight = _check_float_array(shown, weight, path)
    if weight.ndim != 3 or 0 in weight.shape:
        raise DataFileError(
            f"{path}: {shown} must be 3-D (out_channels, in_channels/groups, kernel_size) "
            f"with no empty dimension, got shape {weight.shape}"
        )
    if bias is not None:
        bias = _check_float_array(f"{prefix}bias", bias, path)
        try:
            check_bias_shape(bias.shape, weight.shape, name=f"{prefix}bias", weight_name=shown)
        except ShapeError as e:
            raise DataFileError(f"{path}: {e}") from e
        bias = bias.astype(weight.dtype)
    if "groups" in config and weight.shape[0] % config["groups"]:
        raise DataFileError(
            f"{path}: groups={config['groups']} in the config does not divide the "
            f"{weight.shape[0]} output channels of {shown} {weight.shape}"
        )
    return weight, bias


def read_layer(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    data: bytes | None = None,
    **overrides: Any,
) -> StoredLayer:
    """Read a layer file (or a plain/PyTorch-exported ``.npz``): its spec and arrays.

    Parameters
    ----------
    path : path-like
        The ``.npz`` file. Loaded with ``allow_pickle=False``, always.
    key : str, optional
        Module prefix of the layer to load when the archive holds several
        (``"encoder.conv"`` selects ``encoder.conv.weight`` and
        ``encoder.conv.bias``).
    data : bytes, optional
        The file's content, already read: a pipe can be read only once, so a caller
        that sniffed one passes its bytes here; ``path`` then only names it.
    **overrides
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``,
        ``sample_rate``: replace the file's values (or PyTorch's defaults for a
        plain ``.npz``). ``None`` means "not given".

    Returns
    -------
    StoredLayer

    Raises
    ------
    DataFileError
        For any problem with the file, naming the file and the problem:
        missing, a directory, not a zip archive, truncated, pickled entries,
        no or ambiguous ``weight``, wrong rank or dtype, non-finite values, a
        bias of the wrong length, or a JSON config that is malformed or
        contradicts the arrays.
    ConfigError
        For an invalid override value.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "exported.npz"
    >>> np.savez(path, **{"conv.weight": np.ones((1, 1, 3), np.float32)})
    >>> stored = read_layer(path, padding="same")
    >>> stored.spec.kernel_size, stored.spec.padding, stored.bias is None
    (3, 'same', True)
    >>> tmp.cleanup()
    """
    unknown = sorted(set(overrides) - set(_OVERRIDES))
    if unknown:
        raise TypeError(f"load_layer() got unexpected keyword argument(s) {', '.join(unknown)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    path = Path(path)
    with contextlib.ExitStack() as stack:
        npz = _open_npz(path, stack, data)
        names = list(npz.files)
        prefix = _choose_prefix(names, npz, path, key)
        weight = _read_array(npz, prefix + "weight", path)
        bias = _read_array(npz, prefix + "bias", path) if prefix + "bias" in names else None
        config = _read_config(npz, names, prefix, path)
    weight, bias = _checked_arrays(weight, bias, prefix, config, path)
    if "sample_rate" in given:
        given["sample_rate"] = check_stored_rate(given["sample_rate"])
    if "padding_mode" in given:
        check_padding_mode(given["padding_mode"])
    settings = {k: config[k] for k in _OVERRIDES if k in config} | given
    try:
        spec = LayerSpec.for_weight(
            weight.shape,
            stride=settings.get("stride", 1),
            padding=settings.get("padding", 0),
            dilation=settings.get("dilation", 1),
            groups=settings.get("groups", 1),
            padding_mode=settings.get("padding_mode", "zeros"),
            bias=bias is not None,
            dtype=weight.dtype.name,
            sample_rate=settings.get("sample_rate"),
            sample_rate_binding=config.get("sample_rate_binding", False),
        )
    except ConfigError as e:
        if any(k in given for k in ("stride", "padding", "dilation", "groups")):
            raise  # the user's override is what does not fit
        raise DataFileError(f"{path}: the config contradicts the arrays: {e}") from e
    return StoredLayer(spec, weight, bias, config.get("description", ""))
