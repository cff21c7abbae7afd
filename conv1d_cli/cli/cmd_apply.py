"""``conv1d apply``: filter audio, CSV and NPY files (and pipes) through a chain of layers.

Imports click and the standard library only at the top: ``conv1d --help`` loads
this module to list it. The library (NumPy, soundfile, the pipeline) is imported
inside the functions, once the command runs; the run and its report are
:mod:`conv1d_cli.cli._apply_run`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conv1d_cli.cli._common import (
    CountType,
    FiniteFloat,
    FrequencyType,
    PaddingType,
    csv_column_options,
    fail,
    layer_display_name,
    names_stdout,
    override_options_text,
    refuse,
    refuse_chain_overrides,
    reported_errors,
    require_plotting,
    require_stdout,
    signal_note,
    split_layer_arg,
    time_column_arg,
    warning_text,
)
from conv1d_cli.errors import ConfigError, Conv1dError
from conv1d_cli.shapes import MAX_SIZE, PADDING_MODES, Padding, check_sample_rate

if TYPE_CHECKING:
    from conv1d_cli.layer import Conv1d
    from conv1d_cli.pipeline import Job

__all__ = ["JSON_SCHEMA", "apply_"]

#: ``schema`` of ``apply --json``; bumped only for incompatible changes.
JSON_SCHEMA = "conv1d-apply/1"

_EPILOG = f"""\b
Level (after the chain, before rounding; float outputs too):
  --gain DB          multiply by 10**(DB/20)
  --normalize DBFS   scale each output so that its sample peak is at DBFS
                     (-1: peak 0.891). Needs the peak before the first
                     sample is written: the filtered signal is spooled as
                     float NPY in $TMPDIR (disk, not memory) and encoded in a
                     second pass, so this output does not stream. A silent
                     output is left as it is, with a warning.
  --dither tpdf      integer PCM outputs: add +-1 LSB triangular noise
                     before rounding (SoX dithers by default; conv1d rounds
                     exactly unless asked). --seed S makes it repeatable:
                     each file's noise comes from (S, its position among the
                     inputs): the same noise for any --jobs or --block-size
                     (the filtered values themselves may differ by a float
                     rounding between block sizes in float32).
                     Refused (exit 2) for float, CSV and NPY outputs.

\b
--json prints one object on stdout after the run (also when files failed,
then exit 1; never with -o -, where stdout is the data); fields are only
ever added within a schema ("schema": "{JSON_SCHEMA}"):
  schema, ok (bool), seconds (wall clock of the run)
  files[]     one per output written, in input order: input, output,
              frames_in, frames_out, sample_rate_in, sample_rate_out
              (Hz, null for a CSV/NPY without a rate), clipped (samples),
              peak (largest |sample| after the gain, before rounding and
              clipping; null if not finite), peak_dbfs, gain_db (applied:
              --gain, or what --normalize found), seconds, warnings[]
  failures[]  {{input, output, error}} per failed file
  warnings[]  warnings about the run itself (not about one file)
  totals      {{inputs, written, failed, frames_in, frames_out, clipped}}
"""


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
) -> tuple[list[Conv1d], list[str]]:
    """Load every ``-w FILE`` or ``-w FILE:KEY`` (a per-layer key beats --key)."""
    # Here, not at the top: it loads NumPy, which `conv1d --help` must not pay for.
    from conv1d_cli.layer import load_layer

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
            hint = f"from {given}" if e.hint is None else f"{e.hint}; from {given}"
            raise e.replace(path=name, hint=hint) from e
        except Conv1dError as e:
            # Two layers of one model file must be told apart in the message.
            raise e.renamed(str(Path(path)), name) from e
        layers.append(layer)
        names.append(name)
    return layers, names


def _warn(message: str) -> None:
    click.echo(f"warning: {warning_text(message)}", err=True)


@click.command("apply", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
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
@csv_column_options
@click.option(
    "--csv-delimiter",
    type=click.Choice(["comma", "semicolon", "tab", "space", ",", ";"]),
    help="Delimiter of a CSV output [default: the CSV input's, tabs for a .tsv name, "
    "else comma]. Quoting and line ending (CRLF) always follow a CSV input.",
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
@click.option(
    "--gain",
    type=FiniteFloat("dB"),
    metavar="DB",
    default=None,
    help="Gain in dB after the chain, before rounding and clipping (e.g. -6).",
)
@click.option(
    "--normalize",
    type=FiniteFloat("dBFS"),
    metavar="DBFS",
    default=None,
    help="Put each output's sample peak at DBFS (e.g. -1); spools, does not stream.",
)
@click.option(
    "--dither",
    type=click.Choice(["tpdf"]),
    default=None,
    help="Dither integer PCM outputs before rounding (+-1 LSB triangular) [default: none].",
)
@click.option(
    "--seed",
    type=int,
    metavar="SEED",
    default=None,
    help="Seed of --dither: the same bytes on every run (any integer, as init's --seed).",
)
@click.option(
    "--no-clobber",
    is_flag=True,
    help="Refuse to replace an existing output file (checked for all before any work).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON report of the run on stdout (schema below).",
)
@click.option("--allow-nonfinite", is_flag=True, help="Pass NaN/Inf through instead of failing.")
@click.option(
    "--sample-rate",
    type=FrequencyType(),
    help="Output sample rate (48000, 44.1k, 4kHz...) [default: input rate / total "
    "stride of the chain].",
)
@click.option(
    "--key",
    metavar="KEY",
    help="Layer prefix to load from a multi-layer .npz (e.g. encoder.conv), for every -w "
    "without its own :KEY.",
)
@click.option(
    "--stride",
    type=CountType(1, MAX_SIZE),
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
    type=CountType(1, MAX_SIZE),
    metavar="N",
    help="Override the layer's dilation (a single -w only).",
)
@click.option(
    "--groups",
    type=CountType(1, MAX_SIZE),
    metavar="N",
    help="Override the layer's groups (a single -w only).",
)
@click.option(
    "--padding-mode",
    type=click.Choice(list(PADDING_MODES)),
    help="Override the padding mode (a single -w only).",
)
@click.option(
    "--plot-compare",
    metavar="FILE.png",
    help="Draw the input's and the output's spectra and the gain between them (a single "
    "input, files only: both are read again after the run; needs matplotlib).",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=1),
    metavar="FRAMES",
    default=None,
    help="Frames per block, as given (latency on a pipe) [default: 2**18 samples / "
    "channels, 2**12 to 2**17 frames].",
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
    time_column: str,
    columns: tuple[str, ...] | None,
    csv_delimiter: str | None,
    on_clip: str,
    jobs: int,
    threads: int | None,
    scheduler: str | None,
    keep_going: bool,
    quiet: bool,
    gain: float | None,
    normalize: float | None,
    dither: str | None,
    seed: int | None,
    no_clobber: bool,
    as_json: bool,
    allow_nonfinite: bool,
    sample_rate: float | None,
    key: str | None,
    stride: int | None,
    padding: Padding | None,
    dilation: int | None,
    groups: int | None,
    padding_mode: str | None,
    block_size: int | None,
    plot_compare: str | None,
) -> None:
    """Filter INPUT files through the layer(s) given with -w.

    Audio (WAV, FLAC, OGG, AIFF, ...), CSV (rows = time, columns = channels)
    and NPY ((C, L) or (N, C, L)) files are streamed block by block in bounded
    memory. Memory grows with the signal only where it cannot be read twice:
    CSV and NPY on stdin are read whole (at most $CONV1D_PIPE_LIMIT bytes,
    default 1G; e.g. CONV1D_PIPE_LIMIT=4G), and circular padding with a left pad
    buffers the whole signal on a pipe or after the first layer. Each output
    file is written to a temporary file and renamed into place only on
    success. Output to a pipe, FIFO or socket ('-o - | ...') is streamed as
    it is computed (about one block of latency) in CSV, WAV/AU/RAW
    (PCM_16/24/32, FLOAT, DOUBLE), and NPY when the input's length is known;
    a WAV/AU/NPY header then carries the true length, else WAV/AU get the
    unknown-length sizes 0xFFFFFFFF. An error cuts the stream short (exit
    1). Formats that must seek (FLAC, AIFF, OGG, ...), and '-' redirected
    to a file, are spooled to a temporary file in $TMPDIR and copied out
    only on success. '-' is stdin/stdout (give --input-format/--output-format).
    --normalize does not stream (see below).

    On a terminal (never with -q, nothing when stderr is a file or pipe),
    stderr shows one progress line: the run's bar and ETA (measured from the
    first block on), each file under way with how far it has come, for any
    --jobs; and a "[i/N] OUTPUT" line as each file is written.

    A first layer with one input and one output channel (a plain FIR) filters
    every channel of an audio or CSV file, as SoX does, with a notice (NPY
    keeps PyTorch's rule: channel counts must match). A CSV output keeps the
    CSV input's delimiter, quoting and line ending; a time column passes
    through unfiltered (see --time-column).

    \b
    Exit status:
        0    every output written
        1    bad data or a failed run, including what depends on the input:
             a CSV/NPY without a sample rate written as audio, or an input
             rate / total stride that is not a whole number of Hz; an
             existing output with --no-clobber (nothing is written)
        2    wrong invocation: a bad or conflicting option (also a
             --sample-rate that audio cannot store, --dither for an output
             that is not integer PCM, --json with -o -)
        128+N  stopped by signal N (143 SIGTERM, 129 SIGHUP, 130 Ctrl-C),
             with one Error: line; no partial file is left behind
        141  the reader of a pipe output went away (| head): no message

    \b
    Example:
        conv1d apply -w lowpass.npz in.wav -o out.wav
        conv1d apply -w a.npz -w b.npz data/*.csv -d filtered/ --jobs 2
        conv1d apply -w boost.npz in.wav -o out.wav --normalize -1 --subtype PCM_16 --dither tpdf
        conv1d apply -w lowpass.npz /shared/in/*.flac -d /shared/out --scheduler tcp://head:8786
        conv1d apply -w model.npz:encoder.conv -w model.npz:decoder.conv x.npy -o y.npy
        conv1d apply -w lowpass.npz sensors.csv --columns ax,az -o smooth.csv
        cat in.wav | conv1d apply -w lowpass.npz - --input-format wav -o - --output-format wav
    """
    with reported_errors():
        # First, before anything imports NumPy (and with it BLAS, whose thread
        # count is fixed when it loads): conv1d_cli.threads has the rules.
        from conv1d_cli import threads as thread_policy

        if scheduler is not None:
            _check_scheduler_args(jobs, inputs, output)
        policy = thread_policy.decide(threads, jobs)
        thread_policy.configure(policy)
        from conv1d_cli import heap

        heap.keep_buffers()

        # Imported here, not at the top: the pipeline loads NumPy and soundfile, which
        # `conv1d --help` must not pay for.
        from conv1d_cli import pipeline
        from conv1d_cli.cli import _apply_run
        from conv1d_cli.stream import check_chain

        _check_level_options(gain, normalize, dither, seed)
        if sample_rate is not None:
            # One rule for every rate (shapes.check_sample_rate); whole Hz is checked
            # per output, since CSV and NPY outputs may take a fractional rate.
            sample_rate = check_sample_rate("sample_rate", sample_rate)
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
        _check_outputs(jobs_list, layer_files, plot_compare, as_json, no_clobber)
        signal_note(_left_behind(jobs_list))
        run_warnings = pipeline.check_output_formats(jobs_list, output_format, subtype)
        for text in [] if quiet else run_warnings:
            _warn(text)
        layers, names = _load_layers(layer_paths, key, overrides)
        # Once for the run, before any file is opened: a bad chain is one error, even
        # with --keep-going; each file then checks only its input against the start.
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
            gain_db=gain or 0.0,
            normalize_db=normalize,
            dither=dither,
            seed=seed,
            csv_delimiter=csv_delimiter,
            columns=columns,
            time_column=time_column_arg(time_column),
        )
        pipeline.check_dither(jobs_list, opts)
        _tune_malloc()
        _make_output_dir(output_dir)
        _apply_run.filter_files(
            jobs_list,
            layers,
            names,
            opts,
            jobs=jobs,
            scheduler=scheduler,
            # Workers single-threaded (the parallelism is the files) unless --threads.
            worker_policy=policy if threads is not None else None,
            keep_going=keep_going,
            quiet=quiet,
            json_schema=JSON_SCHEMA if as_json else None,
            run_warnings=run_warnings,
        )
        if plot_compare is not None:
            _apply_run.plot_compare(plot_compare, jobs_list[0], layers, names, opts)
            if not quiet:
                click.echo(f"wrote {plot_compare}", err=True)


def _check_scheduler_args(jobs: int, inputs: tuple[str, ...], output: str | None) -> None:
    """Refuse what cannot go to a cluster, before anything is loaded (exit 2)."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        refuse("--scheduler needs Dask, which is not installed: pip install 'conv1d-cli[dask]'")
    if jobs > 1:
        refuse("give either --jobs or --scheduler, not both (the workers are the jobs)")
    if "-" in inputs or output == "-":
        refuse("--scheduler filters files: stdin/stdout ('-') cannot go to a cluster")


def _check_level_options(
    gain: float | None, normalize: float | None, dither: str | None, seed: int | None
) -> None:
    """Refuse level options that cannot work together, before any work (exit 2)."""
    if gain is not None and normalize is not None:
        refuse(
            f"--gain and --normalize both set the output level; give one "
            f"(--normalize {normalize:g} --gain {gain:g} is --normalize {normalize + gain:g})"
        )
    if seed is not None and dither is None:
        refuse("--seed seeds the dither noise; give --dither tpdf too")


def _check_outputs(
    jobs_list: list[Job],
    layer_files: tuple[str, ...],
    plot_compare: str | None,
    as_json: bool,
    no_clobber: bool,
) -> None:
    """Refuse outputs that cannot be written as asked, before anything is filtered."""
    # Here, not at the top: the pipeline loads NumPy and soundfile (see apply_).
    from conv1d_cli.pipeline import existing_outputs

    if plot_compare is not None:
        _check_plot_compare(plot_compare, jobs_list, layer_files)
    if any(names_stdout(job.target) for job in jobs_list):
        if as_json:
            refuse(
                f"--json prints its report on stdout, and -o {jobs_list[0].target} sends "
                f"the data there; write the output to a file, or drop --json"
            )
        require_stdout(f"-o {jobs_list[0].target}")
    if no_clobber:
        _refuse_existing(existing_outputs(jobs_list))


def _check_plot_compare(path: str, jobs_list: list[Job], layer_files: tuple[str, ...]) -> None:
    """Refuse a --plot-compare that cannot be drawn, before anything is filtered."""
    # Here, not at the top: `conv1d --help` imports this module to list the command
    # and needs none of these.
    from conv1d_cli.io.atomic import check_not_same_file
    from conv1d_cli.io.pipes import is_stream

    if path == "-":
        refuse("--plot-compare needs a file name (an image is not written to stdout)")
    if len(jobs_list) != 1:
        refuse(f"--plot-compare draws one file's input and output; got {len(jobs_list)} inputs")
    (job,) = jobs_list
    # Both files are read again after the run: a pipe or device cannot be.
    for what, name in (("input", job.source), ("output", job.target)):
        if is_stream(name) or names_stdout(name):
            shown = "stdin" if name == "-" and what == "input" else name
            shown = "stdout" if name == "-" and what == "output" else shown
            refuse(
                f"--plot-compare reads the {what} again after the run, which a pipe or "
                f"device ({shown}) cannot do; use a file"
            )
    require_plotting("--plot-compare")
    # Here, not at the top: it loads NumPy, which `conv1d --help` must not pay for.
    from conv1d_cli.plots import check_image_path

    check_not_same_file(path, [job.source, job.target, *layer_files])
    check_image_path(path)  # now, not after filtering an hour of audio


def _refuse_existing(existing: list[Job]) -> None:
    """--no-clobber: one ``Error:`` line naming every existing output, exit 1 as in ``init``."""
    if not existing:
        return
    names = ", ".join(job.target for job in existing)
    verb = "exists" if len(existing) == 1 else "exist"
    fail(
        f"{names}: already {verb} (--no-clobber; nothing was written, drop --no-clobber "
        f"to overwrite)"
    )


def _left_behind(jobs_list: list[Job]) -> str:
    """What a signal leaves: a file output nothing, a pipe what it already got."""
    # Here, not at the top: `conv1d --help` imports this module and does not need it.
    from conv1d_cli.io.pipes import is_live_stream

    streams = [job.target for job in jobs_list if is_live_stream(job.target)]
    if streams:
        shown = "stdout" if streams[0] == "-" else streams[0]
        return f"the output on {shown} stops where it was"
    if len(jobs_list) == 1:
        return "nothing was written"
    return "the file being written was removed (finished ones are kept)"


def _make_output_dir(output_dir: str | None) -> None:
    """``-d OUTDIR``, made with its parents before the first file is written."""
    if output_dir is None:
        return
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"-d {output_dir}: cannot create: {e.strerror}")
