"""What a field of a text file is: a number, a column name, or neither.

One rule for every text reader (CSV signals in :mod:`conv1d_cli.io.csvfile`, coefficient
files in :mod:`conv1d_cli.io.coefficients`), so that "is the first line a header?" has a single
answer. The rule is strict on purpose: a mistyped number (``−0.5`` with a Unicode minus,
``O.25`` with a letter O, ``0.25.``, ``0x1p-2``) must never be taken as a column name,
because that silently drops a sample or a tap.

- A **number** is what Python's ``float`` reads, without ``_`` digit separators (which
  ``np.loadtxt`` refuses), after surrounding whitespace and double quotes are removed.
  ``nan`` and ``inf`` are numbers: non-finite values are the finite checks' business.
- A **name** is one or more words joined by spaces, ``-``, ``.``, ``,``, ``/`` or ``:``,
  each word starting with a letter or ``_`` and going on with letters, digits and ``_``
  (``ax``, ``ch0``, ``accel_x``, ``left channel``), optionally followed by a unit in
  parentheses or brackets (``time (s)``, ``a [m/s^2]``). So ``O.25`` is not a name (its
  second word starts with a digit), nor is anything starting with a digit or a sign.
- A **header** is a first line whose fields are all names; one whose fields are all
  numbers, or that holds any number, is data (a bad field there is reported by the
  data parser); anything else is neither, and :func:`is_header` says which field.

This module is pure standard library and imports nothing from the project.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

__all__ = ["FieldError", "describe", "is_header", "is_name", "is_number"]

_WORD: Final = r"[^\W\d]\w*"  # a letter or "_", then letters, digits, "_"
_UNIT: Final = r"\s*(?:\([^()]*\)|\[[^\[\]]*\])"
_NAME: Final = re.compile(rf"{_WORD}(?:[ \-.,/:]+{_WORD})*(?:{_UNIT})?")


class FieldError(ValueError):
    """A first-line field that is neither a number nor a column name.

    ``column`` is 1-based; ``text`` is the field as found (stripped). Readers add the
    file and the line number.
    """

    def __init__(self, column: int, text: str) -> None:
        self.column = column
        self.text = text
        super().__init__(
            f"column {column}: expected a number (or a column name on a header line), "
            f"found {describe(text)}"
        )


def _bare(field: str) -> str:
    return field.strip().strip('"').strip()


def describe(field: str) -> str:
    """How an error message shows a field: ``an empty cell`` or its repr.

    Examples
    --------
    >>> describe("  "), describe(" O.25")
    ('an empty cell', "'O.25'")
    """
    text = field.strip()
    return "an empty cell" if not text else repr(text)


def is_number(field: str) -> bool:
    """True if ``field`` is a number (see the module notes).

    Examples
    --------
    >>> [is_number(s) for s in ["1e-3", " -0.5", "+.5", '"2"', "nan", "1_0", "−1", "0x1p-2"]]
    [True, True, True, True, True, False, False, False]
    """
    text = _bare(field)
    if not text or "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_name(field: str) -> bool:
    """True if ``field`` can be a column name (see the module notes).

    Examples
    --------
    >>> [is_name(s) for s in ["ax", '"ch0"', "time (s)", "b,c", "O.25", "x1", "1x", "−0.5", ""]]
    [True, True, True, True, False, True, False, False, False]
    """
    text = _bare(field)
    return not is_number(text) and _NAME.fullmatch(text) is not None


def is_header(fields: Sequence[str]) -> bool:
    """Decide whether the first content line of a text file (split into fields) is a header.

    Returns
    -------
    bool
        True if every field is a name; False if any field is a number (data: the data
        parser reports any bad field on it).

    Raises
    ------
    FieldError
        No field is a number and some field is not a name: the first such field.

    Examples
    --------
    >>> is_header(["time", "x"]), is_header(["0.5", "1"]), is_header(["nan"])
    (True, False, False)
    >>> is_header(["−0.5"])
    Traceback (most recent call last):
    ...
    conv1d_cli.cells.FieldError: column 1: expected a number (or a column name on a header line), found '−0.5'
    """  # noqa: E501
    if any(is_number(f) for f in fields):
        return False
    for column, field in enumerate(fields, 1):
        if not is_name(field):
            raise FieldError(column, field.strip())
    return True
