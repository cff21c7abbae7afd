"""FIR taps and weight arrays from files: SoX/CSV coefficient files and ``.npy`` arrays.

:func:`read_coefficients` / :func:`parse_coefficients` read what ``conv1d init
--coefficients`` takes (the taps go to :func:`conv1d_cli.filters.kernel_layer`);
:func:`read_npy` reads ``init --weight`` / ``--bias-file`` arrays without ever
unpickling. Every failure is a :class:`~conv1d_cli.errors.DataFileError` naming the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

import numpy as np

from conv1d_cli import cells
from conv1d_cli.errors import DataFileError

__all__ = ["parse_coefficients", "read_coefficients", "read_npy"]

#: A decimal number as SoX's ``fir`` reads it (no ``nan``/``inf``, no ``_`` separators).
_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def read_coefficients(path: str | os.PathLike[str]) -> np.ndarray:
    """Read FIR taps from a SoX ``fir`` coefficient file or a one-column CSV.

    Accepted: numbers separated by any whitespace, ``#`` comments to the end
    of a line (SoX), or one number per line with optional commas as in a
    one-column CSV (a trailing empty field is fine); the first line may be
    a single column name (``coefficient``, by the rule of :mod:`conv1d_cli.cells`) in
    a CSV (a ``.csv``/``.tsv`` name, or a quoted or comma-ended name); a SoX file
    has no header, and anything else that is not a decimal number is an error. Blank
    lines are skipped.

    Returns
    -------
    ndarray
        The taps as float64, in file order.

    Raises
    ------
    DataFileError
        Missing/unreadable/binary file, no numbers, a non-numeric token (with
        its line number), several CSV columns, or non-finite values.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "hp.txt"
    >>> _ = path.write_text("# HP filter\\n# freq=10000\\n-0.25 0.5\\n-0.25\\n")
    >>> read_coefficients(path)
    array([-0.25,  0.5 , -0.25])
    >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, expected a coefficient file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataFileError(f"{path}: cannot read: {e.strerror or e}") from e
    return parse_coefficients(data, str(path))


def parse_coefficients(data: bytes | str, source: str = "<stdin>") -> np.ndarray:
    """Parse the text of a coefficient file (see :func:`read_coefficients`).

    ``source`` names the input in error messages.

    Examples
    --------
    >>> parse_coefficients(b"0.5 0.5  # two taps")
    array([0.5, 0.5])
    """
    path = source
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataFileError(
                f"{path}: not a text coefficient file (byte {e.start} is not UTF-8)"
            ) from e
    else:
        text = data.removeprefix("\ufeff")
    values: list[str] = []
    seen_data = False
    header = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "," in line:
            fields = [f.strip().strip('"').strip("'").strip() for f in line.split(",")]
            while fields and fields[-1] == "":
                fields.pop()
            if len(fields) != 1:
                raise DataFileError(
                    f"{path}: line {number}: expected one column of coefficients, found "
                    f"{len(fields)} fields in {raw.strip()!r}"
                )
            tokens = fields
        else:
            tokens = [t.strip('"').strip("'") for t in line.split()]
        bad = [k for k, t in enumerate(tokens) if not _NUMBER.fullmatch(t)]
        if bad:
            # Only a one-column CSV may start with a column name ("coefficient"); a SoX
            # file has none (SoX reads none), so there a mistyped first tap such as
            # "O" or "O.25" is an error, never a header that drops a tap.
            csv_like = Path(path).suffix.lower() in (".csv", ".tsv") or any(
                mark in raw for mark in (",", '"', "'")
            )
            if not seen_data and len(tokens) == 1 and csv_like and cells.is_name(tokens[0]):
                seen_data = True
                header = raw.strip()
                continue
            raise DataFileError(
                f"{path}: line {number}: {tokens[bad[0]]!r} is not a number (field {bad[0] + 1}; "
                f"expected decimal coefficients separated by whitespace or one per CSV line, "
                f"'#' comments, and in a .csv at most a column name on the first line)"
            )
        seen_data = True
        values.extend(tokens)
    if not values:
        extra = f" (only the header line {header!r})" if header else ""
        raise DataFileError(f"{path}: holds no coefficients{extra}")
    taps = np.array([float(v) for v in values])
    if not np.isfinite(taps).all():
        raise DataFileError(f"{path}: coefficients overflow to infinity")
    return taps


def read_npy(path: str | os.PathLike[str], name: str = "array") -> np.ndarray:
    """Load a ``.npy`` array of real numbers (never unpickling), for ``init --weight``.

    Integers become float64; bool, complex and object arrays, empty arrays and
    non-finite values are refused.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "k.npy"
    >>> np.save(path, np.array([1, 2, 1]))
    >>> read_npy(path, "weight")
    array([1., 2., 1.])
    >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such {name} file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, expected a {name} .npy file")
    try:
        with open(path, "rb") as f:
            loaded = np.load(f, allow_pickle=False)
            if not isinstance(loaded, np.ndarray):
                loaded.close()
                raise DataFileError(
                    f"{path}: is an .npz archive; {{parameter}} takes one .npy array "
                    f"(a layer .npz is used directly by apply/inspect)",
                    parameter=name,
                )
    except DataFileError:
        raise
    except ValueError as e:
        what = "holds pickled objects, which are never loaded" if "pickle" in str(e) else str(e)
        raise DataFileError(f"{path}: not a usable .npy {name}: {what}") from e
    except Exception as e:
        # Truncated or foreign files: numpy raises EOFError, OSError, SyntaxError, ...
        raise DataFileError(f"{path}: cannot read .npy {name}: {e}") from e
    if loaded.dtype.kind not in "iuf":
        raise DataFileError(
            f"{path}: {name} must hold real numbers (float or integer), got dtype {loaded.dtype}"
        )
    if loaded.size == 0:
        raise DataFileError(f"{path}: {name} is empty (shape {loaded.shape})")
    if loaded.dtype.kind != "f":
        loaded = loaded.astype(np.float64)
    if not np.isfinite(loaded).all():
        raise DataFileError(f"{path}: {name} holds non-finite values (NaN or Inf)")
    return loaded
