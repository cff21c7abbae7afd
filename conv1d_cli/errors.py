"""Typed errors raised by the conv1d library.

Every error is a ``ValueError`` subclass so that callers who already catch
``ValueError`` keep working. An error carries what a front end needs besides its
text, in fields: the ``path`` of the file it is about, the library ``parameter``
at fault (a Python keyword such as ``"output_format"``) and a ``hint``. The library
never names a command-line flag; the CLI renders the parameter as its flag and
turns errors into ``Error: ...`` lines and exit codes in one place
(``conv1d_cli.cli._common``): :class:`ConfigError` is a wrong invocation (exit 2),
the others are bad data or a failed run (exit 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "Conv1dError",
    "ConfigError",
    "ShapeError",
    "DataFileError",
    "FormatError",
    "OutputExistsError",
    "BatchError",
    "PipeClosedError",
    "Notice",
    "shown_path",
]

#: Placeholders a message may hold; :meth:`Conv1dError.render` fills them.
PARAMETER = "{parameter}"
PATH = "{path}"
#: ``{parameter:NAME}``: another parameter a message mentions (``"uses {parameter:groups}"``);
#: ``{parameter:NAME:short}``: its short spelling, where a value follows (``-o 'x'``).
_OTHER_PARAMETER = re.compile(r"\{parameter:([A-Za-z_][A-Za-z0-9_]*)(:short)?\}")


def fill_parameters(text: str, label: Callable[[str], str] | None = None) -> str:
    """``text`` with each ``{parameter:NAME}`` shown as ``label(NAME)``.

    ``label`` is how a front end names a parameter (the CLI: its flag); by default
    the Python keyword. ``{parameter:NAME:short}`` takes the first of the label's
    ``/``-separated spellings: ``-o`` of ``-o/--output``, for a message that shows
    the value after it.

    Examples
    --------
    >>> fill_parameters("give {parameter:output} or {parameter:output_dir:short} DIR")
    'give output or output_dir DIR'
    >>> fill_parameters("{parameter:output:short} 'x'", lambda name: "-o/--" + name)
    "-o 'x'"
    """
    name_of = label if label is not None else str

    def shown(match: re.Match[str]) -> str:
        name = name_of(match.group(1))
        return name.split("/")[0] if match.group(2) else name

    return _OTHER_PARAMETER.sub(shown, text)


def shown_path(path: str, *, output: bool = False) -> str:
    """How a path appears in messages: ``-`` is ``<stdin>`` (or ``<stdout>``).

    Examples
    --------
    >>> shown_path("-"), shown_path("-", output=True), shown_path("a.wav")
    ('<stdin>', '<stdout>', 'a.wav')
    """
    if path == "-":
        return "<stdout>" if output else "<stdin>"
    return path


class Conv1dError(ValueError):
    """Base class of every error conv1d raises on purpose.

    Parameters
    ----------
    message : str
        The text. It may hold ``{parameter}`` where the parameter's name belongs
        (``"{parameter} must be one of ..."``), ``{parameter:NAME}`` where another
        parameter's name belongs, and ``{path}`` where the file's; without
        ``{parameter}``, a set ``parameter`` leads as ``"name: message"``.
    path : str, optional
        The file the error is about (``"-"`` for stdin/stdout). Without ``{path}``
        in the message, the rendered text starts with it unless it already names it.
    parameter : str, optional
        The library parameter at fault, as the Python keyword (``"sample_rate"``).
    hint : str, optional
        A way out, appended in parentheses; it may name parameters as
        ``{parameter:NAME}``.
    output : bool
        ``path`` is an output (``-`` shows as ``<stdout>``).

    Examples
    --------
    >>> e = ConfigError("{parameter} must be positive, got -1", parameter="sample_rate")
    >>> str(e)
    'sample_rate must be positive, got -1'
    >>> e.render(lambda name: "--" + name.replace("_", "-"))
    '--sample-rate must be positive, got -1'
    >>> str(DataFileError("input is empty", path="-"))
    '<stdin>: input is empty'
    >>> e = ConfigError("{parameter} needs {parameter:weight}", parameter="key")
    >>> str(e), e.render(lambda name: "--" + name)
    ('key needs weight', '--key needs --weight')
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        parameter: str | None = None,
        hint: str | None = None,
        output: bool = False,
    ) -> None:
        self.message = message
        self.path = path
        self.parameter = parameter
        self.hint = hint
        self.output = output
        super().__init__(self.render())

    def render(self, label: Callable[[str], str] | None = None) -> str:
        """The message, with the parameter shown as ``label(parameter)``.

        ``label`` is how a front end names a parameter (the CLI: its flag); by
        default the Python keyword itself.
        """
        name_of = label if label is not None else str
        text = fill_parameters(self.message, label)
        if self.parameter is not None and not self._names_own_parameter():
            text = self._place_parameter(text, name_of(self.parameter), label is not None)
        if self.path is not None:
            shown = shown_path(self.path, output=self.output)
            if PATH in text:
                text = text.replace(PATH, shown)
            elif not _names(text, self.path):
                text = f"{shown}: {text}"
        elif PATH in text:
            text = text.replace(PATH, "the output" if self.output else "the input")
        if self.hint:
            text = f"{text} ({fill_parameters(self.hint, label)})"
        return text

    def _names_own_parameter(self) -> bool:
        # Spelled out as {parameter:NAME:short} (``-o 'x' is a directory``): placed already.
        return PARAMETER not in self.message and any(
            m.group(1) == self.parameter for m in _OTHER_PARAMETER.finditer(self.message)
        )

    def _place_parameter(self, text: str, name: str, front_end: bool) -> str:
        # Where the parameter's name goes: its placeholder, else leading the text.
        return text.replace(PARAMETER, name) if PARAMETER in text else f"{name}: {text}"

    def about(self, path: str, *, output: bool = False) -> Conv1dError:
        """This error, naming ``path`` if it names no file yet (a copy; chained)."""
        if self.path is not None or _names(self.message, path):
            return self
        named = self.replace(path=path, output=output)
        named.__cause__ = self
        return named

    def renamed(self, path: str, name: str) -> Conv1dError:
        """This error, calling the file ``path`` by ``name`` instead (a copy; chained).

        For a front end that knows the file by another name than the library does
        (``model.npz:encoder`` for one layer of ``model.npz``). A message that names
        the file as its leading ``"path: "`` is read as naming it in the ``path``
        field, which is how :meth:`render` writes that field.

        Examples
        --------
        >>> str(DataFileError("m.npz: no key 'enc'").renamed("m.npz", "m.npz:enc"))
        "m.npz:enc: no key 'enc'"
        >>> str(DataFileError("truncated", path="m.npz").renamed("m.npz", "m.npz:enc"))
        'm.npz:enc: truncated'
        """
        if self.path == path:
            named = self.replace(path=name)
        elif self.path is None and self.message.startswith(f"{path}: "):
            named = self.replace(message=self.message[len(path) + 2 :], path=name)
        else:
            return self
        named.__cause__ = self
        return named

    def replace(self, **fields: object) -> Conv1dError:
        """A copy of this error (same class and attributes) with some fields changed.

        ``fields`` are among ``message``, ``path``, ``parameter``, ``hint`` and
        ``output``, as in the constructor.

        Examples
        --------
        >>> e = ConfigError("{parameter} must be positive", parameter="stride")
        >>> str(e.replace(hint="got 0"))
        'stride must be positive (got 0)'
        """
        current = self._fields()
        unknown = set(fields) - set(current)
        if unknown:
            raise TypeError(f"replace() got unexpected field(s) {', '.join(sorted(unknown))}")
        current.update(fields)
        return _rebuilt(type(self), current, self._extra())

    def _fields(self) -> dict[str, object]:
        return {
            "message": self.message,
            "path": self.path,
            "parameter": self.parameter,
            "hint": self.hint,
            "output": self.output,
        }

    def _extra(self) -> dict[str, object]:
        # What a subclass keeps besides the fields (BatchError's failures and total).
        fields = self._fields()
        return {k: v for k, v in self.__dict__.items() if k not in fields}

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as class, fields and extra attributes, whatever the class's own
        constructor (:class:`BatchError`'s): a worker process's error arrives whole."""
        return (_rebuilt, (type(self), self._fields(), self._extra()))


def _rebuilt(
    kind: type[Conv1dError], fields: dict[str, object], extra: dict[str, object]
) -> Conv1dError:
    """An error of class ``kind`` from its fields, bypassing a subclass's own ``__init__``."""
    error = Conv1dError.__new__(kind)
    Conv1dError.__init__(error, **fields)  # type: ignore[arg-type]
    error.__dict__.update(extra)
    return error


def _names(text: str, path: str) -> bool:
    if path == "-":
        return "<stdin>" in text or "<stdout>" in text
    return path in text


class ConfigError(Conv1dError):
    """A hyperparameter or option value is invalid on its own."""


class ShapeError(Conv1dError):
    """An array or signal does not fit the layer (channels, length, padding limits)."""


class DataFileError(Conv1dError):
    """A file could not be read or written, or it holds malformed data."""


class OutputExistsError(DataFileError):
    """An output file already exists and overwriting was not allowed (``overwrite=False``).

    A separate class so a front end can name its own way to overwrite in the message.
    """


class PipeClosedError(DataFileError):
    """The reader of a pipe output went away (``... -o - | head -c 100``).

    Not a failure of the data: a Unix filter whose reader stops early is killed by
    SIGPIPE, and the CLI exits the same way (status 141, no message). Only what the
    reader took was written.
    """


class FormatError(ConfigError, DataFileError):
    """The format of a path cannot be told (unknown extension, or ``-`` without a format).

    It is both a :class:`ConfigError` (the fix is an explicit format, so the CLI exits 2)
    and a :class:`DataFileError` (the file name is what cannot be used). The message says
    "give the format explicitly"; its ``parameter`` says which format was meant
    (``"input_format"`` or ``"output_format"``). ``str()`` leaves it out (a caller of
    the library passes the format by its own name); a front end's :meth:`render` ends
    with it in parentheses, as the option to give.

    Examples
    --------
    >>> e = FormatError("give the format explicitly", parameter="input_format")
    >>> str(e), e.render(lambda name: "--" + name.replace("_", "-"))
    ('give the format explicitly', 'give the format explicitly (--input-format)')
    """

    def _place_parameter(self, text: str, name: str, front_end: bool) -> str:
        return f"{text} ({name})" if front_end else text


class BatchError(DataFileError):
    """Some files of a batch failed (``keep_going=True``); the others were written.

    Attributes
    ----------
    failures : list of (str, Conv1dError)
        Each failed input and its error, in input order.
    total : int
        How many inputs the batch had.
    """

    def __init__(self, failures: list[tuple[str, Conv1dError]], total: int) -> None:
        self.failures = failures
        self.total = total
        names = ", ".join(source for source, _ in failures)
        super().__init__(
            f"{len(failures)} of {total} input{'s' if total != 1 else ''} failed: {names}"
        )


class Notice(str):
    """A warning's text: a ``str`` naming Python keywords, which a front end may re-word.

    Warnings are returned, not raised (``FileReport.warnings``); one that names a
    parameter holds ``{parameter:NAME}`` as an error message does, and
    :meth:`render` shows it with the front end's names (the CLI: its flags), by the
    same rule as :meth:`Conv1dError.render`; a front end shows a plain ``str`` as it is.

    Examples
    --------
    >>> note = Notice("silent output: {parameter:normalize_db} left its level")
    >>> note, note.render(lambda name: "--normalize")
    ('silent output: normalize_db left its level', 'silent output: --normalize left its level')
    """

    message: str

    def __new__(cls, message: str) -> Notice:
        text = super().__new__(cls, fill_parameters(message))
        text.message = message
        return text

    def __reduce__(self) -> tuple[object, ...]:
        return (Notice, (self.message,))

    def render(self, label: Callable[[str], str] | None = None) -> str:
        """The text with each parameter shown as ``label(parameter)``."""
        return fill_parameters(self.message, label)
