"""``conv1d apply``: filter audio, CSV and NPY files (and pipes) through a chain of layers."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from conv1d_cli.cli._common import (
    PaddingType,
    layer_display_name,
    reported_errors,
    split_layer_arg,
)
from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError, ShapeError
from conv1d_cli.shapes import PADDING_MODES, check_sample_rate

__all__ = ["apply_"]


@dataclass(frozen=True)
class _Options:
    method: str
    dtype: Any
    subtype: str | None
    input_format: str | None
    output_format: str | None
    on_clip: str
    quiet: bool
    allow_nonfinite: bool
    sample_rate: float | None
    block_size: int | None


@dataclass(frozen=True)
class _Job:
    source: str
    target: str


class _Cancelled(Exception):
    """Another file failed or the user interrupted: stop this one (cleanly)."""


def _named(error: Conv1dError, source: str, target: str) -> Conv1dError:
    """Make sure the message names the file it is about (input, else output)."""
    text = str(error)
    if source in text or (source == "-" and "stdin" in text):
        return error
    if (target != "-" and target in text) or (target == "-" and "stdout" in text):
        return error
    shown = "<stdin>" if source == "-" else source
    text = text.replace("the input", shown, 1) if text.startswith("the input") else text
    if not text.startswith(shown):
        text = f"{shown}: {text}"
    named = type(error)(text)
    named.__cause__ = error
    return named


def _extension(fmt: str) -> str:
    return "." + fmt.lower()


def _output_rate(
    in_rate: float | None, total_stride: int, forced: float | None, source: str
) -> float | int | None:
    if forced is not None:
        return int(forced) if float(forced).is_integer() else forced
    if in_rate is None:
        return None
    rate = in_rate / total_stride
    if total_stride > 1 and not float(rate).is_integer():
        raise ShapeError(
            f"{source}: output sample rate {in_rate:g} Hz / total stride {total_stride} = "
            f"{rate:g} Hz is not an integer; set the output rate with --sample-rate"
        )
    return int(rate) if float(rate).is_integer() else rate


def _check_audio_rate(rate: float, forced: bool, source: str) -> None:
    """An audio file stores a whole number of Hz that fits a C int (libsndfile).

    A bad --sample-rate is the invocation's fault (exit 2); a rate derived from
    the input or a layer's design rate is the data's (exit 1).
    """
    if forced:
        check_sample_rate("--sample-rate", rate, integer=True)
        return
    try:
        check_sample_rate(f"{source}: output sample rate", rate, integer=True)
    except ConfigError as e:
        raise ShapeError(f"{e}; set the output rate with --sample-rate") from e


def _filter_file(
    job: _Job,
    layers: list[Any],
    names: list[str],
    opts: _Options,
    cancel: threading.Event,
    progress: Callable[[int], None],
) -> tuple[int, list[str]]:
    """Stream one input through the chain into its output; returns (clip count, warnings)."""
    from conv1d_cli import signal_io
    from conv1d_cli.stream import StreamChain, chain_output_length, check_chain

    src = job.source
    shown = "<stdin>" if src == "-" else src
    dtype = opts.dtype
    try:
        with signal_io.open_reader(src, format=opts.input_format, dtype=dtype.name) as reader:
            info = reader.info
            check_chain(layers, names, info.channels, source=shown)
            if info.frames is not None:
                chain_output_length(layers, info.frames, names, shown)
            last = layers[-1]
            total_stride = 1
            for layer in layers:
                total_stride *= layer.stride
            # A CSV or NPY has no rate of its own: a designed layer's rate stands in.
            in_rate = info.sample_rate if info.sample_rate is not None else layers[0].sample_rate
            rate = _output_rate(in_rate, total_stride, opts.sample_rate, shown)
            warnings = _rate_warnings(layers, names, info.sample_rate, shown)
            if opts.output_format is not None:
                out_format = opts.output_format
            elif signal_io.is_stream(job.target) or signal_io.names_open_file(job.target):
                # '-', /dev/stdout, a FIFO: no extension to go by, keep the input's format
                out_format = info.format
            else:
                out_format = signal_io.detect_format(job.target)
            subtype = opts.subtype
            if subtype is not None:
                _check_subtype(subtype, out_format)
            if subtype is None:
                # The input's subtype where the output format has it (PCM_16 WAV -> FLAC
                # stays PCM_16), else the format's best (FLOAT, or PCM_24 for FLAC).
                subtype = signal_io.output_subtype(out_format, info.subtype)
            if rate is None and signal_io.output_subtype(out_format) is not None:
                # Exit 1, like a non-integer rate: the same command works with a WAV
                # input, so it is this input that lacks something, not the invocation.
                raise DataFileError(
                    f"{shown}: has no sample rate and the layers record none, but audio "
                    f"output needs one; give it with --sample-rate"
                )
            if rate is not None and signal_io.output_subtype(out_format) is not None:
                _check_audio_rate(rate, opts.sample_rate is not None, shown)
            columns = None
            if info.column_names is not None:
                # A headed CSV keeps its names when channels map one to one, else ch0...
                columns = info.column_names
                if last.out_channels != info.channels:
                    columns = tuple(f"ch{i}" for i in range(last.out_channels))
            prefix = None
            left = StreamChain.prefix_length(layers)
            if left and reader.seekable and info.frames is not None and info.frames >= left:
                # Circular padding starts with the END of the signal: read it first.
                prefix = reader.tail(left)
            chain = StreamChain(layers, method=opts.method, dtype=dtype, names=names, prefix=prefix)
            with signal_io.open_writer(
                job.target,
                format=out_format,
                channels=last.out_channels,
                sample_rate=rate,
                subtype=subtype,
                on_clip=opts.on_clip,
                column_names=columns,
                batch=info.batch,
                dtype=dtype.name,
            ) as writer:
                offset = _pump(reader, writer, chain, opts, cancel, progress, shown)
                if offset == 0:
                    raise DataFileError(f"{shown}: the signal is empty (0 samples)")
                if info.frames is None:
                    chain_output_length(layers, offset, names, shown)
                writer.write(chain.finish())
            return int(writer.clipped or 0), warnings
    except Conv1dError as e:
        raise _named(e, src, job.target) from e


def _pump(
    reader: Any,
    writer: Any,
    chain: Any,
    opts: _Options,
    cancel: threading.Event,
    progress: Callable[[int], None],
    shown: str,
) -> int:
    """Read -> filter -> write every block; returns the frames read.

    Reading the next block and writing the previous one run in two helper threads
    while this one filters (libsndfile and NumPy release the GIL), so decoding,
    encoding and the FFTs overlap on two cores. At most one block waits on each
    side, so memory stays bounded.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    from conv1d_cli.stream import block_frames, check_finite

    reads = ThreadPoolExecutor(1, thread_name_prefix="conv1d-read")
    writes = ThreadPoolExecutor(1, thread_name_prefix="conv1d-write")
    pending_write: Future[None] | None = None
    frames = block_frames(reader.info.channels, reader.info.batch, opts.block_size)
    next_block = reads.submit(reader.read, frames)
    offset = 0
    try:
        while True:
            if cancel.is_set():
                raise _Cancelled
            block = next_block.result()
            n = block.shape[-1]
            if n == 0:
                break
            next_block = reads.submit(reader.read, frames)
            if not (opts.allow_nonfinite or reader.finite):  # integer PCM is always finite
                check_finite(block if block.ndim == 3 else block[None], offset, shown)
            out = chain.push(block)
            if pending_write is not None:
                pending_write.result()
                pending_write = None
            if out.shape[-1]:
                pending_write = writes.submit(writer.write, out)
            offset += n
            progress(n)
        if pending_write is not None:
            pending_write.result()
            pending_write = None
    finally:
        # Never leave a helper thread touching the reader or writer after we return
        # (on an error the writer is aborted next and its temp file removed).
        reads.shutdown(wait=True, cancel_futures=True)
        writes.shutdown(wait=True, cancel_futures=True)
    return offset


def _plan_jobs(
    inputs: tuple[str, ...],
    output: str | None,
    output_dir: str | None,
    output_format: str | None,
    layer_paths: tuple[str, ...] = (),
) -> list[_Job]:
    """Map inputs to outputs and refuse every invocation mistake before any work.

    An output may be neither an input nor a layer file: ``-o lowpass.npz
    --output-format npy`` would otherwise replace the filter with its output.
    """
    from conv1d_cli.atomic import check_not_same_file

    def check_target(target: str) -> None:
        check_not_same_file(target, list(inputs))
        for layer in layer_paths:
            try:
                check_not_same_file(target, [layer])
            except ConfigError as e:
                raise ConfigError(
                    f"output {target!r} is the same file as layer {layer!r} (-w); "
                    f"refusing to overwrite a layer"
                ) from e

    if output is not None and output_dir is not None:
        raise ConfigError("give either -o/--output or -d/--output-dir, not both")
    if output is None and output_dir is None:
        raise ConfigError("missing an output: -o OUTPUT (one input) or -d OUTDIR (any number)")
    if inputs.count("-") > 1:
        raise ConfigError("stdin ('-') can be read only once")
    if output is not None:
        if len(inputs) > 1:
            raise ConfigError(
                f"-o/--output takes one input, got {len(inputs)}; use -d/--output-dir "
                f"for several inputs"
            )
        if output != "-" and Path(output).is_dir():
            raise ConfigError(f"-o {output!r} is a directory; use -d/--output-dir for a folder")
        check_target(output)
        return [_Job(inputs[0], output)]
    assert output_dir is not None
    directory = Path(output_dir)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"-d {output_dir!r} is not a directory")
    if "-" in inputs:
        raise ConfigError("stdin ('-') needs -o OUTPUT (an output directory needs file names)")
    jobs: list[_Job] = []
    seen: dict[str, str] = {}
    for source in inputs:
        src = Path(source)
        suffix = _extension(output_format) if output_format else src.suffix
        target = str(directory / (src.stem + suffix))
        if target in seen:
            raise ConfigError(
                f"inputs {seen[target]!r} and {source!r} would both be written to {target!r}"
            )
        seen[target] = source
        check_target(target)
        jobs.append(_Job(source, target))
    return jobs


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


def _given_overrides(overrides: dict[str, Any]) -> str:
    """The override options as typed: ``--stride 2 --padding same``."""
    shown = []
    for option, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(map(str, value))
        shown.append(f"--{option.replace('_', '-')} {value}")
    return " ".join(shown)


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
            given = _given_overrides(overrides)
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


def _check_output_formats(
    jobs_list: list[_Job], output_format: str | None, subtype: str | None
) -> list[str]:
    """Refuse --subtype for non-audio outputs; warn when --output-format contradicts a name.

    Only what the command line tells: a '-' output without --output-format takes
    the input's format, which :func:`_filter_file` checks once it is known.
    """
    from conv1d_cli import signal_io

    warnings = []
    explicit = None if output_format is None else signal_io.detect_format("-", output_format)
    for job in jobs_list:
        by_name = None
        if not (signal_io.is_stream(job.target) or signal_io.names_open_file(job.target)):
            with contextlib.suppress(Conv1dError):  # no/unknown extension: nothing to compare
                by_name = signal_io.detect_format(job.target)
        fmt = explicit or by_name
        if subtype is not None and fmt is not None:
            _check_subtype(subtype, fmt)
        if explicit is not None and by_name is not None and explicit != by_name:
            # Not refused: a user may mean it (a WAV under a legacy name), but it is
            # usually a typo that a file browser or the next tool will trip over.
            warnings.append(
                f"{job.target}: writing {explicit.upper()} (--output-format {output_format}) "
                f"into a file named like {by_name.upper()}"
            )
    return warnings


def _check_subtype(subtype: str, fmt: str) -> None:
    from conv1d_cli import signal_io

    if signal_io.output_subtype(fmt) is None:
        raise ConfigError(
            f"--subtype applies to audio outputs only; the output format is {fmt.upper()}"
        )


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
    help="Files filtered in parallel.",
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
    "--stride", type=click.IntRange(min=1), metavar="N", help="Override every layer's stride."
)
@click.option(
    "--padding",
    type=PaddingType(),
    help="Override padding: N, LEFT,RIGHT, same, valid, causal or full.",
)
@click.option(
    "--dilation", type=click.IntRange(min=1), metavar="N", help="Override every layer's dilation."
)
@click.option(
    "--groups", type=click.IntRange(min=1), metavar="N", help="Override every layer's groups."
)
@click.option(
    "--padding-mode", type=click.Choice(list(PADDING_MODES)), help="Override the padding mode."
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
    on_clip: str,
    jobs: int,
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
    CSV and NPY on stdin are read whole, and circular padding with a left pad
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
        conv1d apply -w model.npz:encoder.conv -w model.npz:decoder.conv x.npy -o y.npy
        cat in.wav | conv1d apply -w lowpass.npz - --input-format wav -o - --output-format wav
    """
    with reported_errors("--input-format / --output-format"), _signals_exit():
        from conv1d_cli.stream import check_chain, compute_dtype

        if sample_rate is not None:
            # One rule for every rate (shapes.check_sample_rate); whole Hz is checked
            # per output, since CSV and NPY outputs may take a fractional rate.
            sample_rate = check_sample_rate("--sample-rate", sample_rate)
        layer_files = tuple(split_layer_arg(text)[0] for text in layer_paths)
        jobs_list = _plan_jobs(inputs, output, output_dir, output_format, layer_files)
        for text in _check_output_formats(jobs_list, output_format, subtype):
            if not quiet:
                _warn(text)
        overrides = {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "padding_mode": padding_mode,
        }
        layers, names = _load_layers(layer_paths, key, overrides)
        check_chain(layers, names)
        opts = _Options(
            method=method,
            dtype=compute_dtype(layers, dtype),
            subtype=subtype,
            input_format=input_format,
            output_format=output_format,
            on_clip=on_clip,
            quiet=quiet,
            allow_nonfinite=allow_nonfinite,
            sample_rate=sample_rate,
            block_size=block_size,
        )
        _tune_malloc()
        if output_dir is not None:
            try:
                Path(output_dir).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise DataFileError(f"-d {output_dir}: cannot create: {e.strerror}") from e
        _run(jobs_list, layers, names, opts, jobs=jobs, keep_going=keep_going)


def _rate_warnings(
    layers: list[Any], names: list[str], in_rate: float | None, source: str
) -> list[str]:
    """A layer designed for another sample rate filters the wrong frequencies: say so."""
    found = []
    rate = in_rate
    for layer, name in zip(layers, names, strict=True):
        if rate is not None and layer.sample_rate is not None and layer.sample_rate != rate:
            found.append(
                f"{name} was designed for {layer.sample_rate:g} Hz but gets {rate:g} Hz "
                f"from {source}"
            )
        rate = None if rate is None else rate / layer.stride
    return found


def _report(job: _Job, result: tuple[int, list[str]], opts: _Options) -> None:
    clipped, warnings = result
    if opts.quiet:
        return
    for text in warnings:
        _warn(text)
    if clipped and opts.on_clip == "warn":
        shown = "<stdout>" if job.target == "-" else job.target
        _warn(f"{shown}: clipped {clipped} sample{'s' if clipped != 1 else ''}")


def _progressbar(length: int | None, show: bool, label: str) -> Any:
    if not show or not length:
        return contextlib.nullcontext(None)
    return click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True)


def _run(
    jobs_list: list[_Job],
    layers: list[Any],
    names: list[str],
    opts: _Options,
    *,
    jobs: int,
    keep_going: bool,
) -> None:
    stderr = sys.stderr
    show = not opts.quiet and stderr.isatty()
    cancel = threading.Event()
    failures: list[tuple[_Job, Conv1dError]] = []

    def fail(job: _Job, error: Conv1dError) -> None:
        if not keep_going:
            raise error
        failures.append((job, error))

    if jobs == 1 or len(jobs_list) == 1:
        length = None
        if len(jobs_list) == 1 and show:
            length = _known_frames(jobs_list[0].source, opts)
        with _progressbar(length, show, "filtering") as bar:
            for i, job in enumerate(jobs_list):
                tick = (lambda n: bar.update(n)) if bar is not None else (lambda n: None)
                try:
                    result = _filter_file(job, layers, names, opts, cancel, tick)
                except Conv1dError as e:
                    fail(job, e)
                    continue
                _report(job, result, opts)
                if show and len(jobs_list) > 1:
                    click.echo(f"[{i + 1}/{len(jobs_list)}] {job.target}", err=True)
    else:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        # NumPy releases the GIL in BLAS and FFT, so threads overlap the heavy work.
        pool = ThreadPoolExecutor(max_workers=jobs)
        try:
            futures = {
                pool.submit(_filter_file, job, layers, names, opts, cancel, lambda n: None): job
                for job in jobs_list
            }
            pending = set(futures)
            with _progressbar(len(jobs_list), show, "files") as bar:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = futures[future]
                        try:
                            result = future.result()
                        except _Cancelled:
                            continue
                        except Conv1dError as e:
                            fail(job, e)
                            continue
                        _report(job, result, opts)
                        if bar is not None:
                            bar.update(1)
        finally:
            # On an error, Ctrl-C or SIGTERM: stop the others and let them clean up
            # their temporary files before we exit.
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        for _job, error in failures:
            click.echo(f"Error: {error}", err=True)
        raise DataFileError(
            f"{len(failures)} of {len(jobs_list)} input{'s' if len(jobs_list) != 1 else ''} "
            f"failed: {', '.join(job.source for job, _ in failures)}"
        )


def _known_frames(source: str, opts: _Options) -> int | None:
    """Frame count for the progress bar (None for pipes and unknown lengths)."""
    from conv1d_cli import signal_io

    if signal_io.is_stream(source):  # probing a pipe would consume it
        return None
    try:
        frames = signal_io.probe(source, format=opts.input_format).frames
    except Conv1dError:
        return None  # the real read reports the problem
    return frames
