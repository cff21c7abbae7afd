"""``conv1d apply``: filter audio, CSV and NPY files (and pipes) through a chain of layers."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conv1d_cli.cli._common import (
    PaddingType,
    layer_display_name,
    names_stdout,
    override_options_text,
    refuse_chain_overrides,
    reported_errors,
    require_stdout,
    split_layer_arg,
)
from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError
from conv1d_cli.shapes import MAX_SIZE, PADDING_MODES, check_sample_rate

if TYPE_CHECKING:
    from conv1d_cli.layer import Conv1d
    from conv1d_cli.pipeline import FileReport, FilterOptions, Job

__all__ = ["apply_"]

#: Signals that mean "stop now": kill/timeout/make -k (SIGTERM) and a closed terminal
#: or dropped ssh session (SIGHUP). Both must remove the temp files like an error does.
_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def _signals_exit() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP and Ctrl-C into a clean exit with status 128 + signal.

    SIGTERM and SIGHUP become SystemExit, so every context manager (temp files!)
    unwinds. Ctrl-C (KeyboardInterrupt, which unwinds the same way) exits 130 as
    shells expect, instead of Click's "Aborted!" with status 1, which a Makefile
    cannot tell apart from a failed file.
    """

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous: dict[int, Any] = {}
    try:
        for signum in _STOP_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        pass
    try:
        yield
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            click.echo("\nAborted!", err=True)
        raise SystemExit(128 + signal.SIGINT) from None
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)


def _tune_malloc() -> None:
    """Let glibc keep freed block buffers for reuse instead of unmapping them.

    Every block allocates and frees arrays of a few MiB. With glibc's defaults each
    is a fresh ``mmap`` whose pages fault in again (~0.3 s of system time per ten
    minutes of stereo audio). Raising the mmap and trim thresholds keeps them in the
    heap; memory stays bounded because the same sizes are reused block after block.
    Only the command does this (never the library), and only where glibc is there.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    with contextlib.suppress(Exception):
        mallopt(m_mmap_threshold, 32 << 20)
        mallopt(m_trim_threshold, 64 << 20)


def _load_layers(
    layer_args: tuple[str, ...], key: str | None, overrides: dict[str, Any]
) -> tuple[list[Any], list[str]]:
    """Load every ``-w FILE`` or ``-w FILE:KEY`` (a per-layer key beats --key)."""
    from conv1d_cli.layerfile import load_layer

    layers, names = [], []
    for text in layer_args:
        path, own_key = split_layer_arg(text)
        name = layer_display_name(text, key)
        try:
            layer = load_layer(path, key=own_key if own_key is not None else key, **overrides)
        except ConfigError as e:
            given = override_options_text(overrides)
            if not given:
                raise
            # The override is global, the failure is one layer's: say which, and why.
            raise ConfigError(f"{name}: {e} (from {given})") from e
        except Conv1dError as e:
            message = str(e)
            shown = str(Path(path))
            if name != shown and message.startswith(shown + ":"):
                # Two layers of one model file must be told apart in the message.
                renamed = type(e)(name + message[len(shown) :])
                raise renamed from e
            raise
        layers.append(layer)
        names.append(name)
    return layers, names


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


@click.command("apply", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-w",
    "--weights",
    "layer_paths",
    multiple=True,
    required=True,
    metavar="LAYER[:KEY]",
    help="Layer file (.npz); FILE:KEY picks one layer of a multi-layer .npz "
    "(e.g. model.npz:encoder.conv). Repeat to chain layers in order.",
)
@click.option("-o", "--output", metavar="OUTPUT", help="Output file for one input ('-' = stdout).")
@click.option(
    "-d", "--output-dir", metavar="OUTDIR", help="Output folder for any number of inputs."
)
@click.option(
    "--method",
    type=click.Choice(["auto", "direct", "fft"]),
    default="auto",
    show_default=True,
    help="Correlation algorithm.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float64"]),
    default=None,
    help="Compute dtype [default: float32 if every layer is float32, else float64].",
)
@click.option(
    "--subtype", metavar="SUBTYPE", help="Audio subtype of the output (PCM_16, PCM_24, FLOAT, ...)."
)
@click.option(
    "--input-format",
    metavar="FORMAT",
    help="Input format (wav, flac, csv, npy, ...); needed for '-'.",
)
@click.option(
    "--output-format",
    metavar="FORMAT",
    help="Output format [default: from OUTPUT's extension, else the input's].",
)
@click.option(
    "--on-clip",
    type=click.Choice(["warn", "error", "clip"]),
    default="warn",
    show_default=True,
    help="Integer PCM output out of range: count and warn, fail, or clip silently.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    default=1,
    show_default=True,
    help="Files filtered in parallel (each worker a single-threaded process).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    metavar="N",
    default=None,
    help="Compute threads per file: FFT workers and read/write overlap, capped at the "
    "usable cores; BLAS always 1 [default: FFT 1, overlap on; 1 with --jobs > 1 or "
    "make -j; see README 'Threads'].",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Filter the files on a Dask cluster, one task per file: tcp://HOST:PORT, "
    "local:N (N single-threaded local worker processes), or 'config' (Dask's "
    "scheduler-address / DASK_SCHEDULER_ADDRESS). Paths must be visible to the workers. "
    "Needs pip install 'conv1d-cli[dask]'.",
)
@click.option(
    "--keep-going", is_flag=True, help="Go on after a failed file; report all at the end."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, no warnings.")
@click.option("--allow-nonfinite", is_flag=True, help="Pass NaN/Inf through instead of failing.")
@click.option(
    "--sample-rate",
    type=float,
    metavar="HZ",
    help="Output sample rate [default: input rate / total stride of the chain].",
)
@click.option(
    "--key",
    metavar="KEY",
    help="Layer prefix to load from a multi-layer .npz (e.g. encoder.conv), for every -w "
    "without its own :KEY.",
)
@click.option(
    "--stride",
    type=click.IntRange(1, MAX_SIZE),
    metavar="N",
    help="Override the layer's stride (a single -w only).",
)
@click.option(
    "--padding",
    type=PaddingType(),
    help="Override the padding (a single -w only): N, LEFT,RIGHT, same, valid, causal, full.",
)
@click.option(
    "--dilation",
    type=click.IntRange(1, MAX_SIZE),
    metavar="N",
    help="Override the layer's dilation (a single -w only).",
)
@click.option(
    "--groups",
    type=click.IntRange(1, MAX_SIZE),
    metavar="N",
    help="Override the layer's groups (a single -w only).",
)
@click.option(
    "--padding-mode",
    type=click.Choice(list(PADDING_MODES)),
    help="Override the padding mode (a single -w only).",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    metavar="FRAMES",
    default=None,
    help="Frames per block [default: 2**18 samples / channels, at most 2**17 frames].",
)
def apply_(
    inputs: tuple[str, ...],
    layer_paths: tuple[str, ...],
    output: str | None,
    output_dir: str | None,
    method: str,
    dtype: str | None,
    subtype: str | None,
    input_format: str | None,
    output_format: str | None,
    on_clip: str,
    jobs: int,
    threads: int | None,
    scheduler: str | None,
    keep_going: bool,
    quiet: bool,
    allow_nonfinite: bool,
    sample_rate: float | None,
    key: str | None,
    stride: int | None,
    padding: str | None,
    dilation: int | None,
    groups: int | None,
    padding_mode: str | None,
    block_size: int | None,
) -> None:
    """Filter INPUT files through the layer(s) given with -w.

    Audio (WAV, FLAC, OGG, AIFF, ...), CSV (rows = time, columns = channels)
    and NPY ((C, L) or (N, C, L)) files are streamed block by block in bounded
    memory. Memory grows with the signal only where it cannot be read twice:
    CSV and NPY on stdin are read whole (at most $CONV1D_PIPE_LIMIT bytes,
    default 1G; e.g. CONV1D_PIPE_LIMIT=4G), and circular padding with a left pad
    buffers the whole signal on a pipe or after the first layer. Each output
    is written to a temporary file and renamed into place only on success;
    output to '-' (any format) is spooled to a temporary file in $TMPDIR and
    copied to stdout only on success. '-' is stdin/stdout (give
    --input-format/--output-format).

    \b
    Exit status:
        0    every output written
        1    bad data or a failed run, including what depends on the input:
             a CSV/NPY without a sample rate written as audio, or an input
             rate / total stride that is not a whole number of Hz
        2    wrong invocation: a bad or conflicting option (also a
             --sample-rate that audio cannot store)
        128+N  stopped by signal N (143 SIGTERM, 129 SIGHUP, 130 Ctrl-C);
             nothing partial is left behind

    \b
    Example:
        conv1d apply -w lowpass.npz in.wav -o out.wav
        conv1d apply -w a.npz -w b.npz data/*.csv -d filtered/ --jobs 2
        conv1d apply -w lowpass.npz /shared/in/*.flac -d /shared/out --scheduler tcp://head:8786
        conv1d apply -w model.npz:encoder.conv -w model.npz:decoder.conv x.npy -o y.npy
        cat in.wav | conv1d apply -w lowpass.npz - --input-format wav -o - --output-format wav
    """
    with reported_errors("--input-format / --output-format"), _signals_exit():
        # First, before anything imports NumPy (and with it BLAS, whose thread
        # count is fixed when it loads): conv1d_cli.threads has the rules.
        from conv1d_cli import threads as thread_policy

        if scheduler is not None:
            _check_scheduler_args(scheduler, jobs, inputs, output)
        policy = thread_policy.decide(threads, jobs)
        thread_policy.configure(policy)

        # Imported here, not at the top: the pipeline loads NumPy and soundfile, which
        # `conv1d --help` must not pay for.
        from conv1d_cli import pipeline
        from conv1d_cli.stream import check_chain

        if sample_rate is not None:
            # One rule for every rate (shapes.check_sample_rate); whole Hz is checked
            # per output, since CSV and NPY outputs may take a fractional rate.
            sample_rate = check_sample_rate("--sample-rate", sample_rate)
        overrides = {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "padding_mode": padding_mode,
        }
        refuse_chain_overrides(overrides, layer_paths, key)
        layer_files = tuple(split_layer_arg(text)[0] for text in layer_paths)
        jobs_list = pipeline.plan_jobs(inputs, output, output_dir, output_format, layer_files)
        if any(names_stdout(job.target) for job in jobs_list):
            require_stdout(f"-o {jobs_list[0].target}")
        for text in pipeline.check_output_formats(jobs_list, output_format, subtype):
            if not quiet:
                _warn(text)
        layers, names = _load_layers(layer_paths, key, overrides)
        check_chain(layers, names)
        opts = pipeline.FilterOptions(
            method=method,
            dtype=dtype,
            subtype=subtype,
            input_format=input_format,
            output_format=output_format,
            on_clip=on_clip,
            allow_nonfinite=allow_nonfinite,
            sample_rate=sample_rate,
            block_size=block_size,
            overlap=policy.overlap,
        )
        _tune_malloc()
        if output_dir is not None:
            try:
                Path(output_dir).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise DataFileError(f"-d {output_dir}: cannot create: {e.strerror}") from e
        if scheduler is not None:
            # Workers single-threaded (the parallelism is the files) unless --threads.
            worker_policy = policy if threads is not None else None
            with _cluster(scheduler, worker_policy) as executor:
                if len(jobs_list) == 1 and _array_path(
                    executor, jobs_list[0], layers, names, opts, quiet
                ):
                    return
                _run(
                    jobs_list,
                    layers,
                    names,
                    opts,
                    workers=2,
                    keep_going=keep_going,
                    quiet=quiet,
                    executor=executor,
                )
            return
        _run(jobs_list, layers, names, opts, workers=jobs, keep_going=keep_going, quiet=quiet)


def _array_path(
    executor: Any,
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
    from conv1d_cli import cluster

    if not cluster.wants_array_path(job, opts):
        return False
    executor.check_paths([job])
    report = cluster.filter_npy_array(
        executor.client, job, layers, names, opts, policy=executor.worker_policy()
    )
    if not quiet:
        _report(report, opts.on_clip)
    return True


def _check_scheduler_args(
    scheduler: str, jobs: int, inputs: tuple[str, ...], output: str | None
) -> None:
    """Refuse what cannot go to a cluster, before anything is loaded (exit 2)."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise ConfigError(
            "--scheduler needs Dask, which is not installed: pip install 'conv1d-cli[dask]'"
        )
    if jobs > 1:
        raise ConfigError("give either --jobs or --scheduler, not both (the workers are the jobs)")
    if "-" in inputs or output == "-":
        raise ConfigError("--scheduler filters files: stdin/stdout ('-') cannot go to a cluster")


@contextlib.contextmanager
def _cluster(scheduler: str, policy: Any) -> Iterator[Any]:
    """Connect (or start ``local:N``), yield the executor, always close what was opened."""
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


def _report(report: FileReport, on_clip: str) -> None:
    for text in report.warnings:
        _warn(text)
    if report.clipped and on_clip == "warn":
        target = report.job.target
        shown = "<stdout>" if target == "-" else target
        count = report.clipped
        _warn(f"{shown}: clipped {count} sample{'s' if count != 1 else ''}")


def _progressbar(length: int | None, show: bool, label: str) -> Any:
    if not show or not length:
        return contextlib.nullcontext(None)
    return click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True)


def _run(
    jobs_list: list[Job],
    layers: list[Conv1d],
    names: list[str],
    opts: FilterOptions,
    *,
    workers: int,
    keep_going: bool,
    quiet: bool,
    executor: Any = None,
) -> None:
    """Filter every file, showing progress on a terminal and each file's warnings."""
    from conv1d_cli import pipeline

    show = not quiet and sys.stderr.isatty()
    total = len(jobs_list)
    # Files finished elsewhere (a cluster) are counted as files, even a single one.
    one_by_one = executor is None and (workers == 1 or total == 1)
    length = None
    if total == 1 and show:
        length = pipeline.known_frames(jobs_list[0].source, opts.input_format)
    label = "filtering" if one_by_one else "files"
    with _progressbar(length if one_by_one else total, show, label) as bar:

        def frames_done(job: Job) -> Callable[[int], None]:
            if bar is None or not one_by_one:
                return lambda n: None
            return lambda n: bar.update(n)

        def file_done(index: int, report: FileReport) -> None:
            if not quiet:
                _report(report, opts.on_clip)
            if not show:
                return
            if one_by_one and total > 1:
                click.echo(f"[{index + 1}/{total}] {report.job.target}", err=True)
            elif not one_by_one and bar is not None:
                bar.update(1)

        pipeline.run_jobs(
            jobs_list,
            layers,
            names,
            opts,
            workers=workers,
            keep_going=keep_going,
            on_done=file_done,
            progress=frames_done,
            executor=executor,
        )
