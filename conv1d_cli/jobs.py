"""What a run of ``conv1d apply`` is made of, and how many files run at once.

The pieces :mod:`conv1d_cli.pipeline` puts together, each usable on its own:
the options (:class:`FilterOptions`), the jobs and their planning
(:func:`plan_jobs`, :func:`existing_outputs`, :func:`check_output_formats`),
what a file's run reports (:class:`FileReport`, :class:`JobProgress`), and the
book of a run's outcomes (:class:`Book`); the worker processes that filter several
files at once are :mod:`conv1d_cli.workers`. Never imports click; never prints.
Import these from :mod:`conv1d_cli.pipeline`, which re-exports them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from conv1d_cli.errors import BatchError, ConfigError, Conv1dError, Notice
from conv1d_cli.io import formats, inputs, pipes
from conv1d_cli.io.atomic import check_not_same_file

if TYPE_CHECKING:
    pass

__all__ = [
    "DITHERS",
    "PROGRESS_POLL",
    "Book",
    "Cancelled",
    "FileReport",
    "FilterOptions",
    "Job",
    "JobProgress",
    "Progress",
    "StopFlag",
    "check_output_formats",
    "existing_outputs",
    "known_frames",
    "no_progress",
    "plan_jobs",
]

Progress = Callable[[int], None]
#: How often the parent of worker processes looks at their progress counters (seconds).
PROGRESS_POLL: Final = 0.1
#: The dither kinds ``FilterOptions.dither`` takes.
DITHERS: Final = ("tpdf",)


class StopFlag(Protocol):
    """What :func:`~conv1d_cli.pipeline.filter_file` polls between blocks: a threading or
    multiprocessing Event."""

    def is_set(self) -> bool: ...


def no_progress(frames: int) -> None:
    """The default progress callback: nothing to show."""


#: Largest level change in dB: its factor 10**(dB/20) must be a finite, non-zero float64.
MAX_LEVEL_DB = 6000.0


def _check_level(parameter: str, value: float, unit: str) -> None:
    """Refuse a level whose linear factor float64 cannot hold (``10**(8000/20)`` overflows)."""
    if not math.isfinite(value):
        raise ConfigError(
            f"{{parameter}} must be a finite number of {unit}, not {value!r}", parameter=parameter
        )
    if abs(value) > MAX_LEVEL_DB:
        raise ConfigError(
            f"{{parameter}} must be between -{MAX_LEVEL_DB:g} and {MAX_LEVEL_DB:g} {unit}, "
            f"got {value:g}",
            parameter=parameter,
        )


@dataclass(frozen=True)
class FilterOptions:
    """How a file is filtered and written (the options of ``conv1d apply``).

    Attributes
    ----------
    method : {'auto', 'direct', 'fft'}
        Correlation algorithm.
    dtype : {'float32', 'float64'} or None
        Compute dtype; ``None`` is float32 when every layer is float32, else float64.
    subtype : str or None
        Audio subtype of the output (default: the input's where the format has it).
    input_format, output_format : str or None
        Explicit formats (needed for ``"-"``); default from the extensions.
    on_clip : {'warn', 'error', 'clip'}
        Integer PCM output out of range: count it, fail, or clip silently.
    allow_nonfinite : bool
        Pass NaN/Inf through instead of failing at the first one.
    sample_rate : float or None
        Forced output rate; default input rate / total stride.
    block_size : int or None
        Frames per block; default :func:`conv1d_cli.stream.block_frames`.
    overlap : bool
        Read and write in helper threads while filtering (``threads.Policy.overlap``);
        off, every step runs in the calling thread (one thread per file).
    gain_db : float
        Gain applied to the chain's output before it is rounded or written (0 = none);
        float outputs get it too.
    normalize_db : float or None
        Scale each output so that its sample peak is at this many dBFS (``-1`` puts the
        peak at 10**(-1/20)). Needs the peak before the first sample is written, so the
        filtered signal is spooled to a float NPY file in ``$TMPDIR`` (disk, not
        memory) and encoded from there: this output does not stream. A silent output
        (peak 0) is left as it is, with a warning. Exclusive with ``gain_db``.
    dither : {'tpdf'} or None
        Integer PCM outputs only: add triangular dither of +-1 LSB (the sum of two
        uniform values in [-0.5, 0.5) LSB) before rounding. ``None`` rounds exactly.
    seed : int or None
        Seed of the dither: each file's noise comes from ``(seed, file index)``, so the
        bytes do not depend on the block size or on the number of worker processes.
        ``None`` draws fresh noise every run.
    csv_delimiter : str or None
        Delimiter of a CSV output (a key of :data:`conv1d_cli.io.formats.CSV_DELIMITERS`);
        default: a CSV input's (quoting and line ending always follow a CSV input).
    columns : tuple of str or None
        CSV inputs: the columns filtered, by header name or 1-based number; the others
        are dropped (the time column is passed through). Default: all.
    time_column : str or None
        CSV inputs: a column of time stamps (name or 1-based number), written to a CSV
        output unfiltered, first, one value per output sample: ``t[j * S]`` for output
        sample ``j`` and the chain's total stride ``S`` (see
        :class:`conv1d_cli.io.csvfile.TimeTrack`). ``"auto"`` recognises a header named
        ``time``, ``timestamp`` or ``t``. Default: none (every column is a channel).
    """

    method: str = "auto"
    dtype: str | None = None
    subtype: str | None = None
    input_format: str | None = None
    output_format: str | None = None
    on_clip: str = "warn"
    allow_nonfinite: bool = False
    sample_rate: float | None = None
    block_size: int | None = None
    overlap: bool = True
    gain_db: float = 0.0
    normalize_db: float | None = None
    dither: str | None = None
    seed: int | None = None
    csv_delimiter: str | None = None
    columns: tuple[str, ...] | None = None
    time_column: str | None = None

    def __post_init__(self) -> None:
        _check_level("gain_db", self.gain_db, "dB")
        if self.normalize_db is not None:
            _check_level("normalize_db", self.normalize_db, "dBFS")
            if self.gain_db:
                # Both set the level: a gain after normalising is a different target.
                raise ConfigError(
                    "gain_db and normalize_db both set the output level; give one "
                    "(normalize_db=T with gain_db=G is normalize_db=T+G)"
                )
        if self.dither is not None and self.dither not in DITHERS:
            raise ConfigError(f"dither must be one of {list(DITHERS)!r}, not {self.dither!r}")
        if self.seed is not None and self.dither is None:
            raise ConfigError("seed applies to dither only; give dither='tpdf' too")
        if self.block_size is not None and (
            isinstance(self.block_size, bool)
            or not isinstance(self.block_size, int)
            or self.block_size < 1
        ):
            raise ConfigError(f"block_size must be a positive integer, got {self.block_size!r}")


@dataclass(frozen=True)
class Job:
    """One input and the output it is filtered into (``"-"`` is stdin / stdout)."""

    source: str
    target: str

    def about(self, error: Conv1dError) -> Conv1dError:
        """``error``, naming the file it is about: as it is if it names one, else the input.

        Examples
        --------
        >>> job = Job("in.wav", "out.wav")
        >>> str(job.about(ConfigError("too short")))
        'in.wav: too short'
        >>> str(job.about(ConfigError("out.wav: disk full")))
        'out.wav: disk full'
        """
        if error.about(self.target, output=True) is error:
            return error  # names a file already (the output's own messages do)
        return error.about(self.source)


@dataclass(frozen=True)
class FileReport:
    """What happened to one file.

    Attributes
    ----------
    job : Job
    frames_in : int
        Frames read from the input.
    clipped : int
        Integer PCM samples clipped (``on_clip`` 'warn' or 'clip').
    warnings : list of str
        Things the user should know (a layer designed for another rate, ...).
    frames_out : int
        Frames written.
    sample_rate_in, sample_rate_out : float or None
        The input's rate (a CSV's or NPY's: the design rate standing in, else None) and
        the output's.
    peak : float or None
        Largest ``|sample|`` written, after the gain and before dither, rounding and
        clipping (so a value over 1 tells how much PCM was clipped); None if not finite.
    gain_db : float
        Gain applied: ``gain_db``, or what ``normalize_db`` found (0 for a silent output).
    seconds : float
        Wall-clock time of this file.
    """

    job: Job
    frames_in: int
    clipped: int
    warnings: list[str] = field(default_factory=list)
    frames_out: int = 0
    sample_rate_in: float | None = None
    sample_rate_out: float | None = None
    peak: float | None = None
    gain_db: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class JobProgress:
    """How far one file of :func:`run_jobs` has come: one event for a progress display.

    Events come in the calling thread: when a file starts (``frames == 0``), after
    blocks are read (every block in this process; with worker processes, what the
    parent sees each :data:`PROGRESS_POLL` seconds) and when it ends.

    Attributes
    ----------
    index : int
        The job's position in ``jobs``.
    frames : int
        Input frames read so far.
    total : int or None
        Input frames of the file; None when its header does not say (a pipe).
    finished : bool
        The file is done: written, failed or cancelled.
    failed : bool
        It ended with an error (the one :func:`run_jobs` raises, or lists in its
        :class:`~conv1d_cli.errors.BatchError`).
    """

    index: int
    frames: int
    total: int | None
    finished: bool = False
    failed: bool = False


class Cancelled(Exception):
    """Another file failed or the user interrupted: this one stopped (cleanly)."""


def plan_jobs(
    inputs: Sequence[str],
    output: str | None,
    output_dir: str | None,
    output_format: str | None = None,
    layer_paths: Sequence[str] = (),
) -> list[Job]:
    """Map inputs to outputs and refuse every invocation mistake before any work.

    An output may be neither an input nor a layer file: ``-o lowpass.npz
    --output-format npy`` would otherwise replace the filter with its output.

    Raises
    ------
    ConfigError
        Both or neither of ``output``/``output_dir``; ``output`` with several inputs or
        naming a directory; stdin twice or into a directory; two inputs onto one output;
        an output that is an input or a layer file.

    Examples
    --------
    >>> plan_jobs(["a.wav", "b/c.csv"], None, "out", "npy")
    [Job(source='a.wav', target='out/a.npy'), Job(source='b/c.csv', target='out/c.npy')]
    """

    def check_target(target: str) -> None:
        check_not_same_file(target, list(inputs))
        for layer in layer_paths:
            try:
                check_not_same_file(target, [layer])
            except ConfigError as e:
                raise ConfigError(
                    f"output {target!r} is the same file as layer {layer!r} "
                    f"({{parameter:layer_paths:short}}); refusing to overwrite a layer"
                ) from e

    if output is not None and output_dir is not None:
        raise ConfigError(
            "give either {parameter} or {parameter:output_dir}, not both", parameter="output"
        )
    if output is None and output_dir is None:
        raise ConfigError(
            "missing an output: {parameter:output:short} OUTPUT (one input) or "
            "{parameter:output_dir:short} OUTDIR (any number)",
            parameter="output",
        )
    if list(inputs).count("-") > 1:
        raise ConfigError("stdin ('-') can be read only once")
    if output is not None:
        if len(inputs) > 1:
            raise ConfigError(
                f"{{parameter}} takes one input, got {len(inputs)}; use "
                f"{{parameter:output_dir}} for several inputs",
                parameter="output",
            )
        if output != "-" and Path(output).is_dir():
            raise ConfigError(
                f"{{parameter:output:short}} {output!r} is a directory; use "
                f"{{parameter:output_dir}} for a folder",
                parameter="output",
            )
        check_target(output)
        return [Job(inputs[0], output)]
    assert output_dir is not None
    directory = Path(output_dir)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"{{parameter:output_dir:short}} {output_dir!r} is not a directory",
            parameter="output_dir",
        )
    if "-" in inputs:
        raise ConfigError(
            "stdin ('-') needs {parameter:output:short} OUTPUT (an output directory needs "
            "file names)",
            parameter="output",
        )
    jobs: list[Job] = []
    seen: dict[str, str] = {}
    for source in inputs:
        src = Path(source)
        suffix = "." + output_format.lower() if output_format else src.suffix
        target = str(directory / (src.stem + suffix))
        if target in seen:
            raise ConfigError(
                f"inputs {seen[target]!r} and {source!r} would both be written to {target!r}"
            )
        seen[target] = source
        check_target(target)
        jobs.append(Job(source, target))
    return jobs


def check_output_formats(
    jobs_list: Sequence[Job], output_format: str | None, subtype: str | None
) -> list[str]:
    """Refuse a subtype for non-audio outputs; warn when ``output_format`` contradicts a name.

    Only what the command line tells: a '-' output without --output-format takes
    the input's format, which :func:`filter_file` checks once it is known.
    """
    warnings: list[str] = []
    explicit = (
        None
        if output_format is None
        else formats.detect_format("-", output_format, parameter="output_format")
    )
    for job in jobs_list:
        by_name = None
        if not (pipes.is_stream(job.target) or pipes.names_open_file(job.target)):
            with contextlib.suppress(Conv1dError):  # no/unknown extension: nothing to compare
                by_name = formats.detect_format(job.target, parameter="output_format")
        fmt = explicit or by_name
        if subtype is not None and fmt is not None:
            formats.check_output_subtype(subtype, fmt)
        if explicit is not None and by_name is not None and explicit != by_name:
            # Not refused: a user may mean it (a WAV under a legacy name), but it is
            # usually a typo that a file browser or the next tool will trip over.
            warnings.append(
                Notice(
                    f"{job.target}: writing {explicit.upper()} "
                    f"({{parameter:output_format}} {output_format}) "
                    f"into a file named like {by_name.upper()}"
                )
            )
    return warnings


def existing_outputs(jobs_list: Sequence[Job]) -> list[Job]:
    """The jobs whose output file exists already (for a no-clobber run), in input order.

    Only names that would be created or replaced count: stdout and what is not a
    regular file or a link (``/dev/null``, a FIFO) is written through, never replaced.

    Examples
    --------
    >>> existing_outputs([Job("in.wav", "-"), Job("in.wav", "/dev/null")])
    []
    """
    found = []
    for job in jobs_list:
        if pipes.is_stream(job.target) or pipes.names_open_file(job.target):
            continue
        path = Path(job.target)
        if path.is_symlink() or path.exists():
            found.append(job)
    return found


def known_frames(source: str, input_format: str | None = None) -> int | None:
    """Frame count of a file for a progress display (None for pipes and unknown lengths).

    Examples
    --------
    >>> known_frames("-") is None
    True
    """
    if pipes.is_stream(source):  # probing a pipe would consume it
        return None
    try:
        return inputs.probe(source, format=input_format).frames
    except Conv1dError:
        return None  # the real read reports the problem


class Book:
    """A run's outcomes (:func:`conv1d_cli.pipeline.run_jobs`), in input order.

    A failure is raised at once, or kept for the end with ``keep_going``.
    """

    def __init__(self, keep_going: bool, on_done: Callable[[int, FileReport], None] | None) -> None:
        self.keep_going = keep_going
        self.on_done = on_done
        self.reports: dict[int, FileReport] = {}
        self.failures: list[tuple[int, Conv1dError]] = []
        self.settled: set[int] = set()
        self.next_reported = 0

    def settle(self, index: int, report: FileReport | None) -> None:
        """File ``index`` is done (``report`` None: failed or cancelled)."""
        self.settled.add(index)
        if report is not None:
            self.reports[index] = report
        while self.next_reported in self.settled:
            if self.on_done is not None and self.next_reported in self.reports:
                self.on_done(self.next_reported, self.reports[self.next_reported])
            self.next_reported += 1

    def failed(self, index: int, error: Conv1dError) -> None:
        """File ``index`` failed: raise at once, or keep it for the end (``keep_going``)."""
        if not self.keep_going:
            raise error
        self.failures.append((index, error))
        self.settle(index, None)

    def result(self, jobs: Sequence[Job]) -> list[FileReport]:
        """The reports in input order, or one BatchError listing every failure."""
        if self.failures:
            # Input order, whatever order the workers finished in: messages are deterministic.
            self.failures.sort(key=lambda failure: failure[0])
            raise BatchError([(jobs[i].source, e) for i, e in self.failures], len(jobs))
        return [self.reports[i] for i in sorted(self.reports)]
