"""What every subcommand shares: option types, and the one route from a failure to an exit code.

Every failure leaves a command through this module. A library error goes through
:func:`reported_errors` (its parameters shown as flags by :func:`error_text`); what
only the command can see, options that clash or a stdout that is closed, goes
through :func:`refuse` (a wrong invocation, exit 2) or :func:`fail` (exit 1).
Single values are checked by the option types here, while Click parses.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from conv1d_cli.errors import (
    BatchError,
    ConfigError,
    Conv1dError,
    Notice,
    OutputExistsError,
    PipeClosedError,
)
from conv1d_cli.io.sniff import is_layer_archive
from conv1d_cli.shapes import (
    FREQUENCY_FORMS,
    MAX_SIZE,
    Padding,
    parse_frequency,
    parse_padding,
)

if TYPE_CHECKING:
    # Click 8.4 types a ParamType by the value it converts to; the Clicks this
    # project supports (>= 8.2) cannot subscript it at run time.
    _IntType = click.ParamType[int]
    _FloatType = click.ParamType[float]
    _FrequencyValue = click.ParamType[float | tuple[float, ...]]
    _PaddingValue = click.ParamType[Padding]
else:
    _IntType = _FloatType = _FrequencyValue = _PaddingValue = click.ParamType

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "CountType",
    "FiniteFloat",
    "FrequencyType",
    "csv_column_options",
    "time_column_arg",
    "PaddingType",
    "error_text",
    "warning_text",
    "fail",
    "flag_label",
    "refuse",
    "is_layer_archive",
    "layer_display_name",
    "override_options_text",
    "refuse_chain_overrides",
    "guard_closed_streams",
    "names_stdout",
    "reader_gone",
    "reported_errors",
    "require_plotting",
    "require_stdout",
    "signal_note",
    "signals_exit",
    "split_layer_arg",
    "write_stdout",
]


class PaddingType(_PaddingValue):
    """``--padding``: whatever :func:`conv1d_cli.shapes.parse_padding` accepts.

    A bad value is a usage error (exit 2) naming the option.
    """

    name = "padding"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "INT|LEFT,RIGHT|same|valid|causal|full"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Padding:
        if not isinstance(value, str):
            return value  # type: ignore[no-any-return]  # a default, already parsed
        try:
            return parse_padding(value)
        except ConfigError as e:
            self.fail(str(e), param, ctx)


class FrequencyType(_FrequencyValue):
    """Every frequency option (``--sample-rate``, ``--cutoff``): ``48000``, ``44.1k``, ``4kHz``.

    The syntax is :func:`conv1d_cli.shapes.parse_frequency`'s; a bad value is a
    usage error (exit 2) naming the option and the accepted forms. With
    ``several=True`` a value may be a ``LOW,HIGH`` list and converts to a tuple.
    The option's range (positive, at most 2**31 - 1 Hz, ...) is checked by the
    command, with the same rule wherever the value came from.
    """

    name = "frequency"

    def __init__(self, several: bool = False) -> None:
        self.several = several

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "HZ[,HZ]" if self.several else "HZ"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | tuple[float, ...]:
        if not isinstance(value, str):
            return value  # type: ignore[no-any-return]  # a default, already parsed
        parts = value.split(",") if self.several else [value]
        try:
            found = tuple(parse_frequency(part, "value") for part in parts)
        except ConfigError:
            self.fail(f"expected a frequency such as {FREQUENCY_FORMS}; got {value!r}", param, ctx)
        return found if self.several else found[0]


class CountType(_IntType):
    """An integer in ``[minimum, maximum]``, with a message that says what was wrong.

    Every command's hyperparameters (``--stride``, ``--dilation``, ``--groups``,
    channel counts, ``--kernel-size``) take ``maximum=MAX_SIZE``, the limit the
    library enforces; ``shape``'s lengths are arithmetic only and have none.
    """

    name = "integer"

    def __init__(self, minimum: int = 1, maximum: int | None = None, metavar: str = "N") -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.metavar = metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            # int() would also take "1_000" and Unicode digits; a count is plain ASCII digits.
            if not re.fullmatch(r"[+-]?[0-9]+", text):
                self.fail(f"expected an integer, got {value!r}", param, ctx)
            try:
                number = int(text)
            except ValueError:  # more digits than Python converts (4300 by default)
                self.fail(f"expected an integer, got one of {len(text)} digits", param, ctx)
        if self.maximum is not None and number > self.maximum:
            limit = f"{MAX_SIZE} (2**31 - 1)" if self.maximum == MAX_SIZE else str(self.maximum)
            self.fail(f"expected at most {limit}, got {number}", param, ctx)
        if number < self.minimum:
            qualifier = (
                "a positive integer" if self.minimum == 1 else f"an integer >= {self.minimum}"
            )
            self.fail(f"expected {qualifier}, got {number}", param, ctx)
        return number


class FiniteFloat(_FloatType):
    """A float option that must be finite (``--gain``, ``--normalize``), in ``unit``.

    Click's float type takes ``inf`` and ``nan``; a level of infinite dB is no level.
    """

    name = "float"

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = float(click.FLOAT.convert(value, param, ctx))
        if not math.isfinite(number):
            # Named as typed, unquoted, as the command's own checks name options.
            hint = max(param.opts, key=len) if param is not None and param.opts else None
            raise click.BadParameter(
                f"expected a finite number of {self.unit}, got {number!r}", ctx, param, hint
            )
        return number


#: Library parameters whose flag is not ``--`` plus the name with dashes.
FLAG_OVERRIDES = {
    "output": "-o/--output",
    "output_dir": "-d/--output-dir",
    "gain_db": "--gain",
    "normalize_db": "--normalize",
    "layer_paths": "-w/--weights",
}


def flag_label(parameter: str) -> str:
    """The command-line flag that sets a library parameter: ``sample_rate`` -> ``--sample-rate``.

    Examples
    --------
    >>> flag_label("csv_delimiter"), flag_label("output")
    ('--csv-delimiter', '-o/--output')
    """
    return FLAG_OVERRIDES.get(parameter, "--" + parameter.replace("_", "-"))


def error_text(error: Conv1dError) -> str:
    """An error's message as the CLI shows it: parameters named by their flags."""
    return error.render(flag_label)


def warning_text(text: str) -> str:
    """A library warning as the CLI shows it: a :class:`~conv1d_cli.errors.Notice`'s
    parameters named by their flags, as :func:`error_text` names an error's.

    Examples
    --------
    >>> warning_text(Notice("{parameter:normalize_db} left its level")), warning_text("plain")
    ('--normalize left its level', 'plain')
    """
    return text.render(flag_label) if isinstance(text, Notice) else text


def refuse(message: str) -> NoReturn:
    """A wrong invocation the command sees itself (options that clash): exit 2.

    Shown as Click shows its own usage errors: the usage line, the ``--help`` hint,
    then ``Error: message``.
    """
    raise click.UsageError(message)


def fail(message: str) -> NoReturn:
    """A failure the command sees itself, not the library (stdout closed): exit 1."""
    raise click.ClickException(message)


@contextlib.contextmanager
def reported_errors(*, overwrite: str | None = None) -> Iterator[None]:
    """The one translation of library errors into exit codes and ``Error:`` lines.

    A :class:`~conv1d_cli.errors.ConfigError` (a bad option, also a
    :class:`~conv1d_cli.errors.FormatError`) is exit 2, any other
    :class:`~conv1d_cli.errors.Conv1dError` (bad data or a failed run) exit 1, each
    with the parameters it names shown as flags (:func:`error_text`). A
    :class:`~conv1d_cli.errors.BatchError` (``--keep-going``) prints one ``Error:``
    line per failed file, in input order, then its summary; a reader that went away
    is status 141 without a message (:func:`reader_gone`). ``overwrite`` is how this
    command replaces an existing output (``"use --force to overwrite"``), said by an
    :class:`~conv1d_cli.errors.OutputExistsError` instead of the library's keyword.
    Anything else is a bug and propagates as a traceback.
    """
    try:
        yield
    except PipeClosedError:
        reader_gone()
    except BatchError as e:
        if all(isinstance(error, PipeClosedError) for _source, error in e.failures):
            reader_gone()  # --keep-going changes nothing: there is no reader left
        for _source, error in e.failures:
            with contextlib.suppress(OSError, ValueError):
                click.echo(f"Error: {error_text(error)}", err=True)
        _leave_with(e)
    except OutputExistsError as e:
        _leave_with(e if overwrite is None else e.replace(hint=overwrite))
    except Conv1dError as e:
        _leave_with(e)


def _leave_with(error: Conv1dError) -> NoReturn:
    """Leave the command for a library error: exit 2 for a bad option, else 1."""
    if isinstance(error, ConfigError):
        raise click.UsageError(error_text(error)) from error
    raise click.ClickException(error_text(error)) from error


def split_layer_arg(text: str) -> tuple[str, str | None]:
    """Split ``-w FILE:KEY`` into ``(FILE, KEY)``; ``(text, None)`` when there is no key.

    Splits on the LAST ``':'``, and only when the part before it is an existing
    file and the whole string is not, so a file name holding ``':'`` still works.
    """
    import os

    head, sep, tail = text.rpartition(":")
    if sep and head and tail and os.path.isfile(head) and not os.path.exists(text):
        return head, tail
    return text, None


def layer_display_name(text: str, key: str | None) -> str:
    """How messages call the layer of ``-w text``: ``model.npz:encoder.conv`` when keyed.

    A key in ``text`` itself is shown as typed; otherwise ``--key`` is appended.
    """
    _, own_key = split_layer_arg(text)
    return text if own_key is not None or key is None else f"{text}:{key}"


def override_options_text(overrides: dict[str, Any]) -> str:
    """The override options as typed: ``--stride 2 --padding same`` (``None`` = not given)."""
    shown = []
    for option, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(map(str, value))
        shown.append(f"--{option.replace('_', '-')} {value}")
    return " ".join(shown)


def refuse_chain_overrides(
    overrides: dict[str, Any], layer_args: tuple[str, ...], key: str | None
) -> None:
    """Refuse ``--stride``/``--padding``/... with more than one ``-w`` (exit 2).

    The options apply to every layer they are given for, and the layers of a chain
    almost never share them (an encoder's stride 2 halves the decoder's output too),
    so a chain would run, silently wrong. The message shows the fix: write the layer
    that needs other values to its own file once with ``conv1d init --weight``.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given or len(layer_args) < 2:
        return
    names = ", ".join("--" + k.replace("_", "-") for k in given)
    first = layer_display_name(layer_args[0], key)
    rest = " ".join(f"-w {layer_display_name(text, key)}" for text in layer_args[1:])
    refuse(
        f"{names} can override only a single -w layer file, not every layer of a chain "
        f"of {len(layer_args)}; write a layer with its own values to a file once, e.g. "
        f"'conv1d init layer1.npz --weight {first} {override_options_text(given)}', "
        f"then chain the files: -w layer1.npz {rest}"
    )


def guard_closed_streams() -> None:
    """Put ``/dev/null`` on a closed fd 1 or 2 (``>&-``, ``2>&-``) before any work.

    Python starts with ``sys.stdout`` / ``sys.stderr`` set to ``None`` when the fd
    is closed, and Click then writes its error messages to *stdout* (its
    ``get_text_stderr`` falls back), while ``sys.stderr.isatty()`` raises
    ``AttributeError``. A free fd 1 or 2 is also a trap: the next file opened (an
    input, a temporary output) takes it, and whatever writes to "stdout" or
    "stderr" then writes into that file.

    - stderr closed: messages have nowhere to go, so they go to ``/dev/null`` and
      the command runs normally; its exit status still tells what happened.
    - stdout closed: the fd is filled too, but ``sys.stdout`` stays ``None``: that
      is how :func:`require_stdout` tells a command with nowhere to write its data.
    """
    import os
    import sys

    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
            if name == "stderr" and sys.stderr is None:
                # Lives until exit, like the sys.stderr Python would have made.
                sys.stderr = open(fd, "w", closefd=False)


def names_stdout(target: str) -> bool:
    """True when an output name means fd 1: ``-``, ``/dev/stdout``, ``/dev/fd/1``, ...

    Examples
    --------
    >>> names_stdout("-"), names_stdout("/dev/stdout"), names_stdout("out.wav")
    (True, True, False)
    """
    import os

    if target == "-":
        return True
    path = os.path.normpath(os.path.abspath(target))
    return path in ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1", f"/proc/{os.getpid()}/fd/1")


def require_stdout(what: str = "") -> None:
    """Refuse to start a command whose data goes to a closed stdout (``>&-``): exit 1.

    Called before any work, so nothing is read or computed for output that cannot
    be written. ``what`` names the option that sends data there (``-o -``).
    """
    import sys

    if sys.stdout is None:
        where = f"{what}: " if what else ""
        hint = " (give a file name instead)" if what else ""
        fail(f"{where}stdout is closed; nothing to write to{hint}")


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout in one piece and flush it; a failed write is exit 1.

    A full disk (``> /dev/full``) or a reader that has gone away (a closed pipe)
    raises ``OSError`` from the write: that becomes one ``Error: cannot write to
    stdout: ...`` line instead of a traceback. stdout is then pointed at
    ``/dev/null`` so that Python's own flush at exit does not fail a second time.
    One write also means ``| head -1`` reads a complete answer before it closes.
    """
    import sys

    require_stdout()
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        reader_gone()
    except OSError as e:
        _stdout_to_devnull()
        fail(f"cannot write to stdout: {e.strerror or e}")


def csv_column_options(command: F) -> F:
    """``--columns`` and ``--time-column``: the same two options in ``apply`` and ``shape``."""
    command = click.option(
        "--time-column",
        metavar="NAME|N|none",
        default="auto",
        help="CSV: the column of time stamps (header name or 1-based number), passed "
        "through unfiltered, first, one value per output sample (the input's time at "
        "index j*S for output j and total stride S) [default: a header named time, "
        "timestamp or t, with a notice; 'none': every column is a channel].",
    )(command)
    return click.option(
        "--columns",
        metavar="A,B,...",
        callback=_split_columns,
        help="CSV: the columns to filter (header names or 1-based numbers), in this "
        "order; the other columns are dropped (the time column is kept) [default: all].",
    )(command)


def _split_columns(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    if value is None:
        return None
    parts = tuple(p.strip() for p in value.split(","))
    if not all(parts):
        raise click.BadParameter(f"expected names or numbers separated by commas, got {value!r}")
    return parts


def time_column_arg(value: str) -> str | None:
    """``--time-column`` as the library takes it: ``none`` turns the detection off."""
    return None if value.strip().casefold() == "none" else value


def require_plotting(option: str) -> None:
    """Fail with one clear line, before any work, when ``option`` cannot draw.

    matplotlib is an optional extra; without it the command would otherwise read
    (or filter) everything and only then find it cannot draw.
    """
    # Here, not at the top: plots loads NumPy, which start-up must not pay for.
    from conv1d_cli.plots import MatplotlibMissingError, require_matplotlib

    try:
        require_matplotlib()
    except MatplotlibMissingError:
        fail(
            f"{option} needs matplotlib, which is not installed; "
            "install it with: pip install 'conv1d-cli[plot]'"
        )


def _stdout_to_devnull() -> None:
    """Point fd 1 at ``/dev/null``, so that Python's own flush at exit cannot fail again."""
    import os
    import sys

    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def reader_gone() -> NoReturn:
    """Exit as a Unix filter killed by SIGPIPE does: status 141, no message.

    The reader of stdout (or of a pipe output) went away (``| head -1``): that is how
    a pipeline says "enough", not an error, so nothing is printed. Handled here,
    where the ``EPIPE`` surfaces as an exception, rather than by restoring SIGPIPE's
    default action: the exception unwinds every ``with`` block (temporary files,
    helper threads, ``--jobs`` workers are stopped and cleaned up), while a SIGPIPE
    death would also strike the internal pipes (the stdin relay, the worker pool's)
    and end a run silently where an ``Error:`` line is owed.
    """
    _stdout_to_devnull()
    raise SystemExit(128 + signal.SIGPIPE)


#: Signals that mean "stop now": kill/timeout/make -k (SIGTERM) and a closed terminal
#: or dropped ssh session (SIGHUP); SIGINT arrives as KeyboardInterrupt.
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_SIGNAL_VERBS = {"SIGINT": "interrupted", "SIGTERM": "terminated", "SIGHUP": "hung up"}
#: What the running command says was left behind when a signal stops it.
_signal_note: list[str | None] = [None]


class _Stopped(SystemExit):
    """SIGTERM/SIGHUP as an exception: every ``with`` block (temp files!) unwinds.

    A SystemExit with status 128 + N, so even code that lets it escape exits right.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def signal_note(text: str | None) -> None:
    """Say what a signal leaves behind, for the ``Error:`` line of :func:`signals_exit`.

    E.g. ``"nothing was written"`` for a file output (atomic: the temp file goes).
    """
    _signal_note[0] = text


@contextlib.contextmanager
def signals_exit() -> Iterator[None]:
    """Turn Ctrl-C, SIGTERM and SIGHUP into one ``Error:`` line and status 128 + N.

    Every command runs inside it (the group's ``invoke``). The line names the signal
    and, where the command said so with :func:`signal_note`, what was left:
    ``Error: interrupted (SIGINT); nothing was written``. Without it Click prints a
    blank line and ``Aborted!`` with status 1, which a Makefile cannot tell from a
    failed file, and SIGTERM ends the process without a word or any cleanup.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stopped(signum)

    previous: dict[int, Any] = {}  # whatever signal.signal returned
    signal_note(None)
    try:
        for signum in _STOP_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass
    wakeup = _unblock_reads_on_signal() if previous else None
    try:
        yield
    except (KeyboardInterrupt, _Stopped) as e:
        signum = e.signum if isinstance(e, _Stopped) else signal.SIGINT
        name = signal.Signals(signum).name
        note = _signal_note[0]
        with contextlib.suppress(OSError, ValueError, AttributeError):
            click.echo(
                f"Error: {_SIGNAL_VERBS.get(name, 'stopped')} ({name})"
                + (f"; {note}" if note else ""),
                err=True,
            )
        raise SystemExit(128 + signum) from None
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)
        if wakeup is not None:
            old_fd, own_fd = wakeup
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(old_fd)
            with contextlib.suppress(OSError):
                os.close(own_fd)  # the watcher sees EOF and closes its end


def _unblock_reads_on_signal() -> tuple[int, int] | None:
    """On any signal, end the audio reads blocked on a pipe.

    Returns the previous wakeup fd and the write end installed instead (closed by
    the caller when the command is over, which ends the watcher thread), or None.

    A Python signal handler runs only when the main thread gets back to Python code,
    and the main thread (or the reader thread it waits for) may sit in libsndfile
    waiting for a pipe that a producer holds open: Ctrl-C would do nothing. Python's
    C-level handler writes to the wakeup fd at once, whatever the threads are doing;
    a daemon thread waiting on it ends those reads
    (:func:`conv1d_cli.io.pipes.interrupt_inputs`), and the handler's exception then
    unwinds as usual. The pipes module is looked up, never imported: without it
    loaded, no audio is being read.
    """
    import sys
    import threading

    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    os.set_blocking(write_end, False)
    try:
        old = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        os.close(read_end)
        os.close(write_end)
        return None

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(read_end, 64):
                module = sys.modules.get("conv1d_cli.io.pipes")
                if module is not None:
                    module.interrupt_inputs()
        os.close(read_end)

    threading.Thread(target=watch, name="conv1d-signals", daemon=True).start()
    return old, write_end
