"""``conv1d apply``'s run and report: progress, per-file warnings, ``--json``.

The command (:mod:`conv1d_cli.cli.cmd_apply`) checks the options and plans the
jobs; this module runs them here or on a Dask cluster and prints what happened.
Imported only once the command runs, with NumPy already loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conv1d_cli import pipeline
from conv1d_cli.cli._common import error_text, warning_text, write_stdout
from conv1d_cli.errors import BatchError, Conv1dError
from conv1d_cli.io.inputs import probe
from conv1d_cli.shapes import rate_warnings

if TYPE_CHECKING:
    from conv1d_cli import cluster
    from conv1d_cli.layer import Conv1d
    from conv1d_cli.pipeline import FileReport, FilterOptions, Job, JobProgress
    from conv1d_cli.threads import Policy

__all__ = ["filter_files", "plot_compare"]


def filter_files(
    jobs_list: list[Job],
    layers: list[Conv1d],
    names: list[str],
    opts: FilterOptions,
    *,
    jobs: int,
    scheduler: str | None,
    worker_policy: Policy | None,
    keep_going: bool,
    quiet: bool,
    json_schema: str | None,
    run_warnings: list[str],
) -> None:
    """Filter every job: in ``jobs`` local processes, or on the cluster at ``scheduler``.

    ``worker_policy`` is the cluster workers' threads (None: single-threaded, as the
    parallelism is the files). ``json_schema`` is that of the ``--json`` report printed
    after the run (None: no report).
    """
    as_json = json_schema is not None
    reporting = _Reporting(quiet=quiet, json_schema=json_schema, run_warnings=run_warnings)
    if scheduler is None:
        _run(jobs_list, layers, names, opts, workers=jobs, keep_going=keep_going, how=reporting)
        return
    with _cluster(scheduler, worker_policy) as executor:
        # One NPY as one Dask array; --json reports files, so it goes by file.
        as_array = len(jobs_list) == 1 and not as_json
        if as_array and _array_path(executor, jobs_list[0], layers, names, opts, quiet):
            return
        _run(
            jobs_list,
            layers,
            names,
            opts,
            workers=2,
            keep_going=keep_going,
            how=reporting,
            executor=executor,
        )


@dataclasses.dataclass(frozen=True)
class _Reporting:
    """What the run prints besides progress: warnings (unless quiet), a ``--json`` report."""

    quiet: bool
    json_schema: str | None
    run_warnings: list[str]


@contextlib.contextmanager
def _cluster(scheduler: str, policy: Policy | None) -> Iterator[cluster.DaskFiles]:
    """Connect (or start ``local:N``), yield the executor, always close what was opened."""
    # Here, not at the top: only --scheduler needs it, and every run pays for imports.
    from conv1d_cli import cluster

    client, local_cluster = cluster.connect(scheduler)
    try:
        yield cluster.DaskFiles(client, policy)
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if local_cluster is not None:
            with contextlib.suppress(Exception):
                local_cluster.close()


def _array_path(
    executor: cluster.DaskFiles,
    job: Job,
    layers: list[Conv1d],
    names: list[str],
    opts: FilterOptions,
    quiet: bool,
) -> bool:
    """One NPY into one NPY on a cluster: as a Dask array split across the workers.

    A file task would need the whole file's worth of time on one worker; as an
    array, every worker filters chunks of it in bounded memory.
    """
    # Only an NPY-to-NPY --scheduler run loads the array path (start-up).
    from conv1d_cli import npyarray

    if not npyarray.wants_array_path(job, opts):
        return False
    executor.check_paths([job])
    report = npyarray.filter_npy_array(
        executor.client, job, layers, names, opts, policy=executor.worker_policy()
    )
    if not quiet:
        for line in _report_lines(report, opts.on_clip):
            click.echo(line, err=True)
    return True


def plot_compare(
    path: str, job: Job, layers: list[Conv1d], names: list[str], opts: FilterOptions
) -> None:
    """Draw the input's and output's spectra from a second read of both files."""
    # Here, not at the top: matplotlib is loaded only to draw.
    from conv1d_cli import overview, plots

    strides = [layer.stride for layer in layers]
    stride = math.prod(strides)
    source = probe(job.source, opts.input_format)
    in_rate = source.sample_rate
    out_rate = probe(job.target, opts.output_format).sample_rate
    if in_rate is None:
        # The rate the run itself took for a CSV/NPY input: the output's, else the
        # one the chain's design rates imply.
        design_rates = [layer.sample_rate for layer in layers]
        binding = [layer.sample_rate_binding for layer in layers]
        implied, _ = rate_warnings(design_rates, strides, names, None, job.source, binding)
        in_rate = out_rate * stride if out_rate else implied
    if out_rate is None and in_rate is not None:
        out_rate = opts.sample_rate or in_rate / stride
    # One segment length for both, so equal rates give equal grids (and a gain curve).
    nperseg = overview.segment_length(source.frames)
    before = overview.signal_overview(
        job.source, opts.input_format, sample_rate=in_rate, nperseg=nperseg
    )
    after = overview.signal_overview(
        job.target, opts.output_format, sample_rate=out_rate, nperseg=nperseg
    )
    label = None
    if in_rate is None and stride > 1:
        # No rate anywhere: measure the output in cycles per input sample too, so a
        # strided output's band lines up with the input's.
        after = dataclasses.replace(after, freqs=after.freqs / stride)
        label = "frequency (cycles per input sample)"
    name_in, name_out = Path(job.source).name, Path(job.target).name
    fig = plots.compare_figure(
        before,
        after,
        labels=(f"input {name_in}", f"output {name_out}"),
        freq_label=label,
    )
    plots.save_figure(fig, path)


def _clip_hint(report: FileReport) -> str:
    """What to do about clipping: the gain that fits the peak, or a normalisation."""
    peak = report.peak
    if peak is not None and peak > 1.0:
        # Rounded up to 0.1 dB, so the suggested gain really fits.
        needed = math.ceil(20.0 * math.log10(peak) * 10.0) / 10.0
        level = f" (peak {peak:.4g}, {20.0 * math.log10(peak):+.1f} dBFS)"
        return f"{level}; lower the level with --gain -{needed:g} or --normalize -1"
    return "; lower the level with --gain (e.g. --gain -6) or --normalize -1"


def _report_lines(report: FileReport, on_clip: str) -> list[str]:
    lines = [f"warning: {warning_text(text)}" for text in report.warnings]
    if report.clipped and on_clip == "warn":
        target = report.job.target
        shown = "<stdout>" if target == "-" else target
        count = report.clipped
        lines.append(
            f"warning: {shown}: clipped {count} sample{'s' if count != 1 else ''}"
            f"{_clip_hint(report)}"
        )
    return lines


def _rate(rate: float | None) -> float | int | None:
    """48000, not 48000.0: one type for whole rates whichever way they were found."""
    return int(rate) if rate is not None and float(rate).is_integer() else rate


def _peak_dbfs(peak: float | None) -> float | None:
    if peak is None or peak == 0.0:
        return None
    return 20.0 * math.log10(peak)


def _json_report(
    jobs_list: list[Job],
    reports: dict[int, FileReport],
    failures: dict[int, str],
    run_warnings: list[str],
    seconds: float,
) -> dict[str, Any]:
    """The ``--json`` document but its schema (in the epilog; keys pinned by the tests)."""
    files = []
    for index in sorted(reports):
        r = reports[index]
        files.append(
            {
                "input": r.job.source,
                "output": r.job.target,
                "frames_in": r.frames_in,
                "frames_out": r.frames_out,
                "sample_rate_in": _rate(r.sample_rate_in),
                "sample_rate_out": _rate(r.sample_rate_out),
                "clipped": r.clipped,
                "peak": r.peak,
                "peak_dbfs": _peak_dbfs(r.peak),
                "gain_db": r.gain_db,
                "seconds": round(r.seconds, 6),
                "warnings": [warning_text(text) for text in r.warnings],
            }
        )
    failed = [
        # index -1: a failure no file owns (a worker process died)
        {
            "input": jobs_list[i].source if i >= 0 else None,
            "output": jobs_list[i].target if i >= 0 else None,
            "error": message,
        }
        for i, message in sorted(failures.items())
    ]
    return {
        "ok": not failed,
        "seconds": round(seconds, 6),
        "files": files,
        "failures": failed,
        "warnings": [warning_text(text) for text in run_warnings],
        "totals": {
            "inputs": len(jobs_list),
            "written": len(files),
            "failed": len(failed),
            "frames_in": sum(r.frames_in for r in reports.values()),
            "frames_out": sum(r.frames_out for r in reports.values()),
            "clipped": sum(r.clipped for r in reports.values()),
        },
    }


def _run(
    jobs_list: list[Job],
    layers: list[Conv1d],
    names: list[str],
    opts: FilterOptions,
    *,
    workers: int,
    keep_going: bool,
    how: _Reporting,
    executor: cluster.DaskFiles | None = None,
) -> None:
    """Filter every file, showing progress on a terminal and each file's warnings."""
    quiet, schema, run_warnings = how.quiet, how.json_schema, how.run_warnings
    as_json = schema is not None
    show = not quiet and sys.stderr.isatty()
    total = len(jobs_list)
    # Files finished elsewhere (a cluster) are counted as files, even a single one.
    display = None
    if show:
        # Here, not at the top: -q and redirected runs draw nothing (start-up time).
        from conv1d_cli.cli._progress import Display

        display = Display(jobs_list, sys.stderr)
    reports: dict[int, FileReport] = {}
    failed: set[int] = set()
    started = time.perf_counter()

    def say(text: str) -> None:
        if display is not None:
            display.message(text)
        else:
            click.echo(text, err=True)

    def file_done(index: int, report: FileReport) -> None:
        reports[index] = report
        if display is not None and total > 1:
            say(f"[{index + 1}/{total}] {report.job.target}")
        if not quiet:
            for line in _report_lines(report, opts.on_clip):
                say(line)

    def progress(event: JobProgress) -> None:
        if event.failed:
            failed.add(event.index)
        if display is not None:
            display.update(event)

    try:
        pipeline.run_jobs(
            jobs_list,
            layers,
            names,
            opts,
            workers=workers,
            keep_going=keep_going,
            on_done=file_done,
            on_progress=progress if (display is not None or as_json) else None,
            executor=executor,
            chain_checked=True,  # by the command, before any file was opened
        )
    except Conv1dError as e:
        if display is not None:
            display.close()
        if as_json:
            if isinstance(e, BatchError):
                by_source = {job.source: i for i, job in enumerate(jobs_list)}
                failures = {by_source[source]: error_text(err) for source, err in e.failures}
            else:
                failures = {i: error_text(e) for i in sorted(failed)[:1]} or {-1: error_text(e)}
            _emit_json(schema, jobs_list, reports, failures, run_warnings, started)
        raise
    if display is not None:
        display.close()
    if as_json:
        _emit_json(schema, jobs_list, reports, {}, run_warnings, started)


def _emit_json(
    schema: str | None,
    jobs_list: list[Job],
    reports: dict[int, FileReport],
    failures: dict[int, str],
    run_warnings: list[str],
    started: float,
) -> None:
    seconds = time.perf_counter() - started
    doc = _json_report(jobs_list, reports, failures, run_warnings, seconds)
    write_stdout(json.dumps({"schema": schema, **doc}, indent=2, allow_nan=False) + "\n")
