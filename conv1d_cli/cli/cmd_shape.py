"""``conv1d shape``: output shapes, padding, receptive field and minimum length.

Pure arithmetic from :mod:`conv1d_cli.shapes`. In numbers mode this module
imports nothing heavier than click and the standard library (no NumPy), so the
command answers instantly; layer files and input files are read only when
given, with the imports inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from conv1d_cli.cli._common import (
    CountType,
    FrequencyType,
    PaddingType,
    csv_column_options,
    fail,
    layer_display_name,
    refuse,
    refuse_chain_overrides,
    reported_errors,
    require_stdout,
    split_layer_arg,
    time_column_arg,
    warning_text,
    write_stdout,
)
from conv1d_cli.shapes import (
    MAX_SIZE,
    PADDING_MODES,
    ChainShape,
    LayerSpec,
    Padding,
    TargetPadding,
    broadcast_first_spec,
    check_sample_rate,
    paddings_for_target,
    rate_warnings,
    walk_chain,
)

__all__ = ["JSON_SCHEMA", "shape"]

#: ``schema`` field of ``--json`` output; bumped only for incompatible changes.
JSON_SCHEMA = "conv1d-shape/1"

_EPILOG = f"""\b
Padding: an integer (both sides), LEFT,RIGHT, or same | valid | causal | full
('same' needs stride 1; causal = dilation*(K-1) on the left, full = on both sides).
--target-length T lists every padding giving output length T: any LEFT,RIGHT
whose total LEFT+RIGHT lies in the range shown (each side at most the shown
maximum for reflect/circular), the symmetric integer paddings (what PyTorch
accepts) and the padding words. With several layers it is about the last one.
With a single -w, --stride/--padding/--dilation/--padding-mode/--groups
override the layer file's values. INPUT_FILE '-' is stdin (--input-format);
a stream whose header has no length (a pipe) is read to count its frames.
Text output: the first line is the answer (the output length, or shapes; with
-w the output shape), then the details. When the input does not fit, stdout
stays empty and the error (and any --target-length hint) goes to stderr.
Exit status: 0 ok; 1 the input does not fit the layer/chain, or no padding
reaches the target; 2 wrong invocation.

\b
--json prints one object (schema "{JSON_SCHEMA}"; fields are only ever added):
  schema              "{JSON_SCHEMA}"
  input               {{file, shape, batch, channels, length, sample_rate}}
  layers[]            one per layer the input got through:
    index, file, kernel_size, stride, dilation, groups, in_channels,
    out_channels, padding (as given: int, word or [left, right]),
    padding_mode, design_sample_rate, input_shape, padding_resolved
    [left, right], output_shape, output_length, cumulative_stride,
    receptive_field (cumulative, in input samples), sample_rate (after
    this layer), min_input_length (this layer alone)
  output              {{shape, length, sample_rate}}, null if the chain broke
  receptive_field, cumulative_stride, min_input_length   whole chain
  error               null, or {{layer, file, message}} (exit 1)
  target              null, or {{length, layer, input_length, possible,
                      total_padding [lo, hi], symmetric_padding [lo, hi],
                      max_side, padding_words, reason}}
Shapes are lists: [L] when channels are unknown, [C, L] for an unbatched
file, else [N, C, L]. Unknown values are null.
"""


_POSITIVE = CountType(1)
_SIZE = CountType(1, MAX_SIZE)
_CHANNELS = CountType(1, MAX_SIZE, metavar="C")


@click.command(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument(
    "input_file", required=False, metavar="[INPUT_FILE]", type=click.Path(path_type=Path)
)
@click.option("-L", "--length", type=_POSITIVE, help="Input length in samples.")
@click.option(
    "-k",
    "--kernel-size",
    type=CountType(1, MAX_SIZE, metavar="K"),
    help="Kernel size K (numbers mode).",
)
@click.option("-s", "--stride", type=_SIZE, help="Stride [default: 1].")
@click.option("-p", "--padding", type=PaddingType(), help="Padding [default: 0].")
@click.option("--dilation", type=_SIZE, help="Dilation [default: 1].")
@click.option(
    "--padding-mode",
    type=click.Choice(list(PADDING_MODES)),
    help="How padded samples are made [default: zeros].",
)
@click.option(
    "--in-channels",
    type=_CHANNELS,
    help="Input channels [default: the first layer's; in numbers mode, groups].",
)
@click.option("--out-channels", type=_CHANNELS, help="Output channels [default: in-channels].")
@click.option("-g", "--groups", type=_SIZE, help="Channel groups [default: 1].")
@click.option("-N", "--batch", type=CountType(0), help="Batch size [default: 1].")
@click.option(
    "-w",
    "--weights",
    "layers",
    multiple=True,
    metavar="LAYER[:KEY]",
    help="Layer file (FILE:KEY picks one layer of a multi-layer .npz); repeat to chain.",
)
@click.option(
    "--key",
    metavar="KEY",
    help="Layer prefix to load from a multi-layer .npz (e.g. encoder.conv), for every -w.",
)
@click.option(
    "--sample-rate",
    type=FrequencyType(),
    help="Input sample rate (48000, 44.1k, 4kHz...) for inputs that have none.",
)
@click.option(
    "--input-format",
    metavar="FORMAT",
    help="Format of INPUT_FILE when its extension does not say (wav, csv, npy…).",
)
@click.option(
    "-t", "--target-length", type=_POSITIVE, help="Report the paddings giving this output length."
)
@csv_column_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (schema below).")
def shape(
    input_file: Path | None,
    length: int | None,
    kernel_size: int | None,
    stride: int | None,
    padding: Padding | None,
    dilation: int | None,
    padding_mode: str | None,
    in_channels: int | None,
    out_channels: int | None,
    groups: int | None,
    batch: int | None,
    layers: tuple[str, ...],
    key: str | None,
    sample_rate: float | None,
    input_format: str | None,
    target_length: int | None,
    time_column: str,
    columns: tuple[str, ...] | None,
    as_json: bool,
) -> None:
    """Output shape, padding, receptive field and minimum input length of a
    Conv1d layer or a chain of layer files, without touching any data.

    \b
    Example:
        conv1d shape --length 16000 --kernel-size 9 --stride 2
        conv1d shape -L 16000 -k 4 --padding same --in-channels 2 --out-channels 8
        conv1d shape -L 100 -k 5 --stride 2 --target-length 50
        conv1d shape -w lowpass.npz -w decimate.npz speech.wav
    """
    require_stdout()  # the answer goes there: fail before reading anything
    hyper = {
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "padding_mode": padding_mode,
        "groups": groups,
    }
    with reported_errors():
        if sample_rate is not None:
            sample_rate = check_sample_rate("sample_rate", sample_rate)
    _check_clashes(
        input_file, length, batch, input_format, columns, layers, key, kernel_size, out_channels
    )
    if layers:
        refuse_chain_overrides(hyper, layers, key)
    with reported_errors():
        specs = [_load_spec(text, key, hyper) for text in layers]
        source = None
        if input_file is not None:
            source = _read_input(input_file, input_format, columns, time_column_arg(time_column))
        given = _Given(length, kernel_size, in_channels, out_channels, batch, sample_rate)
        specs, start = _chain_input(specs, source, given, hyper, input_file)
        chain = walk_chain(
            specs, start.length, channels=start.channels, batch=start.batch, sample_rate=start.rate
        )
        target = _target(chain, target_length)
    report = _report(chain, target, None if input_file is None else str(input_file))
    if as_json:
        import json

        write_stdout(json.dumps(report, indent=2) + "\n")
    elif chain.ok:
        lines: list[str] = []
        _print_text(chain, target, report, lines.append, numbers_mode=not layers)
        write_stdout("".join(line + "\n" for line in lines))
    elif target is not None:
        # Nothing on stdout when the input does not fit (`| head -1` must not read a
        # partial answer); how to pad for the target still helps, as a message.
        _print_target(report["target"], _to_stderr, numbers_mode=not layers)
    for text in start.warnings:
        click.echo(f"warning: {warning_text(text)}", err=True)
    _exit_status(chain, target, numbers_mode=not layers)


def _check_clashes(
    input_file: Path | None,
    length: int | None,
    batch: int | None,
    input_format: str | None,
    columns: tuple[str, ...] | None,
    layers: tuple[str, ...],
    key: str | None,
    kernel_size: int | None,
    out_channels: int | None,
) -> None:
    """Refuse options that do not go together, before anything is read (exit 2)."""
    if input_file is not None and length is not None:
        refuse("give either --length or INPUT_FILE, not both")
    if input_file is None and length is None:
        refuse("give the input length with --length, or an INPUT_FILE")
    if input_file is not None and batch is not None:
        refuse("--batch cannot be used with INPUT_FILE (the file has one)")
    if input_format is not None and input_file is None:
        refuse("--input-format needs an INPUT_FILE")
    if layers:
        for name, flag in (("--kernel-size", kernel_size), ("--out-channels", out_channels)):
            if flag is not None:
                refuse(f"{name} cannot be used with -w (the layer file has it)")
    else:
        if key is not None:
            refuse("--key needs a layer file (-w)")
        if kernel_size is None:
            refuse("give --kernel-size (numbers mode) or a layer file with -w")
    if input_file is None and columns is not None:
        refuse("--columns needs an INPUT_FILE")


@dataclasses.dataclass(frozen=True)
class _Given:
    """The numbers typed on the command line that describe the input and the layer."""

    length: int | None
    kernel_size: int | None
    in_channels: int | None
    out_channels: int | None
    batch: int | None
    sample_rate: float | None


@dataclasses.dataclass
class _Start:
    """What goes into the chain: the input's shape and rate, and the warnings about it.

    ``warnings``: the layers given another rate than they were designed for, then
    the notices of the input and of a one-channel filter applied to every channel.
    """

    length: int
    channels: int | None
    batch: int | None
    rate: float | None
    warnings: list[str]


def _chain_input(
    specs: list[LayerSpec],
    source: dict[str, Any] | None,
    given: _Given,
    hyper: dict[str, Any],
    input_file: Path | None,
) -> tuple[list[LayerSpec], _Start]:
    """The chain to walk and its input, from the layer files (or numbers) and the input."""
    notices: list[str] = [] if source is None else list(source["notices"])
    rate = _input_rate(source, given.sample_rate)
    from_file = source is not None and source["sample_rate"] is not None
    if rate is None:
        rate_source = str(input_file or "the input")
    else:
        rate_source = str(input_file) if from_file else "--sample-rate"
    if source is not None:
        in_length, channels, in_batch = source["length"], source["channels"], source["batch"]
        if given.in_channels is not None and channels is not None and given.in_channels != channels:
            fail(f"{input_file}: has {channels} channels, but --in-channels is {given.in_channels}")
    else:
        assert given.length is not None
        in_length, channels, in_batch = given.length, given.in_channels, given.batch
    if not specs:
        assert given.kernel_size is not None
        groups = hyper["groups"]
        full = source is not None or any(
            v is not None for v in (given.in_channels, given.out_channels, groups, given.batch)
        )
        c_in = c_out = None
        if full:
            c_in = channels if channels is not None else (groups or 1)
            c_out = given.out_channels if given.out_channels is not None else c_in
            if source is None and in_batch is None:
                in_batch = 1
        padding = hyper["padding"]
        specs = [
            LayerSpec(
                given.kernel_size,
                hyper["stride"] or 1,
                0 if padding is None else padding,
                hyper["dilation"] or 1,
                hyper["padding_mode"] or "zeros",
                in_channels=c_in,
                out_channels=c_out,
                groups=groups or 1,
            )
        ]
        channels = c_in
    else:
        if source is None and in_batch is None:
            in_batch = 1
        # The rule apply follows (shapes.mono_broadcast): a one-channel FIR first
        # on an audio or CSV file with C channels filters each of them.
        specs, notice = broadcast_first_spec(
            specs, channels, None if source is None else source["format"], str(input_file)
        )
        if notice is not None:
            notices.append(notice)
    # As in apply (shapes.rate_warnings): an input without a rate gets the one the
    # first designed layer implies, and the later layers are checked against it.
    rate, mismatches = rate_warnings(
        [s.sample_rate for s in specs],
        [s.stride for s in specs],
        [f"layer {i} ({s.name})" for i, s in enumerate(specs, 1)],
        rate,
        rate_source,
        [s.sample_rate_binding for s in specs],
    )
    return specs, _Start(in_length, channels, in_batch, rate, mismatches + notices)


def _exit_status(
    chain: ChainShape, target: tuple[int, TargetPadding] | None, *, numbers_mode: bool
) -> None:
    """Exit 1 when the input does not fit, or no padding reaches the target."""
    if not chain.ok:
        if numbers_mode:  # there is only the one layer
            fail(str(chain.error))
        assert chain.failed_layer is not None
        name = chain.specs[chain.failed_layer - 1].name
        whole = ""
        needed = chain.min_input_length
        if len(chain.specs) > 1 and needed is not None and chain.length < needed:
            whole = f" (the chain needs an input of at least {needed} samples)"
        fail(f"layer {chain.failed_layer} ({name}): {chain.error}{whole}")
    if target is not None and not target[1].possible:
        fail(f"no padding gives output length {target[1].target}: {target[1].reason}")


def _load_spec(text: str, key: str | None, hyper: dict[str, Any]) -> LayerSpec:
    """The layer of ``-w text`` (``FILE`` or ``FILE:KEY``; a per-layer key beats --key)."""
    # Here, not at the top: a layer file needs NumPy, which numbers mode never loads.
    from conv1d_cli.layer import load_layer

    path, own_key = split_layer_arg(text)
    chosen = own_key if own_key is not None else key
    layer = load_layer(path, key=chosen, **{k: v for k, v in hyper.items() if v is not None})
    name = layer_display_name(text, key)
    return LayerSpec.from_layer(layer, name=name)


def _read_input(
    path: Path,
    input_format: str | None,
    columns: tuple[str, ...] | None = None,
    time_column: str | None = None,
) -> dict[str, Any]:
    """Length, channels, batch, sample rate and format of an input file (and notices).

    Headers only when they give the length; a stream that does not say (stdin,
    a WAV piped from sox) is read to its end in blocks, keeping none of them. A
    CSV's time column and ``--columns`` are applied as ``apply`` applies them.
    """
    # Here, not at the top: NumPy and soundfile load only for an input file.
    from conv1d_cli.io.inputs import open_reader

    with open_reader(
        path, input_format, "float32", columns=columns, time_column=time_column
    ) as reader:
        info = reader.info
        frames = info.frames
        if frames is None:
            frames = sum(block.shape[-1] for block in reader)
    if frames < 1:
        fail(f"{path}: holds no samples")
    return {
        "length": int(frames),
        "channels": None if info.channels is None else int(info.channels),
        "batch": None if info.batch is None else int(info.batch),
        "sample_rate": None if info.sample_rate is None else float(info.sample_rate),
        "format": info.format,
        "notices": (
            [
                f"{path}: column {info.time_column!r} is read as time, not as a channel "
                f"(--time-column none counts it too)"
            ]
            if info.time_detected
            else []
        ),
    }


def _input_rate(source: dict[str, Any] | None, sample_rate: float | None) -> float | None:
    file_rate = None if source is None else source["sample_rate"]
    if file_rate is not None and sample_rate is not None and file_rate != sample_rate:
        refuse(f"--sample-rate {_hz(sample_rate)} contradicts the input file's {_hz(file_rate)} Hz")
    return file_rate if file_rate is not None else sample_rate


def _target(chain: ChainShape, target_length: int | None) -> tuple[int, TargetPadding] | None:
    """Paddings of the last layer that give ``target_length``, if its input length is known."""
    if target_length is None or not chain.specs:
        return None
    last = len(chain.specs)
    if len(chain.layers) < last - 1:
        return None  # the chain broke before the last layer: its input length is unknown
    in_length = chain.layers[last - 2].output_length if last > 1 else chain.length
    spec = chain.specs[-1]
    answer = paddings_for_target(
        in_length, target_length, spec.kernel_size, spec.stride, spec.dilation, spec.padding_mode
    )
    return last, answer


def _padding_json(padding: Padding) -> Any:
    return list(padding) if isinstance(padding, tuple) else padding


def _layer_rows(chain: ChainShape) -> list[dict[str, Any]]:
    """``layers[]`` of the ``--json`` document: one per layer the input got through."""
    rows = []
    for row in chain.layers:
        spec = row.spec
        rows.append(
            {
                "index": row.index,
                "file": spec.name or None,
                "kernel_size": spec.kernel_size,
                "stride": spec.stride,
                "dilation": spec.dilation,
                "groups": spec.groups,
                "in_channels": spec.in_channels,
                "out_channels": spec.out_channels,
                "padding": _padding_json(spec.padding),
                "padding_mode": spec.padding_mode,
                "design_sample_rate": spec.sample_rate,
                "input_shape": list(row.input_shape),
                "padding_resolved": list(row.padding),
                "output_shape": list(row.output_shape),
                "output_length": row.output_length,
                "cumulative_stride": row.cumulative_stride,
                "receptive_field": row.receptive_field,
                "sample_rate": row.sample_rate,
                "min_input_length": spec.min_input_length,
            }
        )
    return rows


def _report(
    chain: ChainShape, target: tuple[int, TargetPadding] | None, file: str | None
) -> dict[str, Any]:
    """The ``--json`` document (also the source of the text output)."""
    rows = _layer_rows(chain)
    output = None
    if chain.ok:
        if chain.layers:
            last = chain.layers[-1]
            output = {
                "shape": list(last.output_shape),
                "length": last.output_length,
                "sample_rate": last.sample_rate,
            }
        else:  # pragma: no cover - the CLI always has a layer
            output = {
                "shape": list(chain.input_shape),
                "length": chain.length,
                "sample_rate": chain.sample_rate,
            }
    error = None
    if not chain.ok:
        assert chain.failed_layer is not None
        error = {
            "layer": chain.failed_layer,
            "file": chain.specs[chain.failed_layer - 1].name or None,
            "message": chain.error,
        }
    target_doc = None
    if target is not None:
        index, answer = target
        target_doc = {
            "length": answer.target,
            "layer": index,
            "input_length": answer.length,
            "possible": answer.possible,
            "total_padding": None if answer.total is None else list(answer.total),
            "symmetric_padding": None if answer.symmetric is None else list(answer.symmetric),
            "max_side": answer.max_side,
            "padding_words": list(answer.words),
            "reason": answer.reason,
        }
    return {
        "schema": JSON_SCHEMA,
        "input": {
            "file": file,
            "shape": list(chain.input_shape),
            "batch": chain.batch if chain.channels is not None else None,
            "channels": chain.channels,
            "length": chain.length,
            "sample_rate": chain.sample_rate,
        },
        "layers": rows,
        "output": output,
        "receptive_field": chain.receptive_field,
        "cumulative_stride": chain.cumulative_stride,
        "min_input_length": chain.min_input_length,
        "error": error,
        "target": target_doc,
    }


def _hz(rate: float) -> str:
    return f"{rate:.10g}"


def _shape_text(shape: list[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _range_text(pair: list[int]) -> str:
    lo, hi = pair
    return str(lo) if lo == hi else f"{lo}..{hi}"


def _print_text(
    chain: ChainShape,
    target: tuple[int, TargetPadding] | None,
    report: dict[str, Any],
    echo: Callable[[str], Any],
    *,
    numbers_mode: bool,
) -> None:
    """The text answer of a chain that fits, line by line; the first line is the answer."""
    inp = report["input"]
    if numbers_mode:
        row = report["layers"][0]
        if inp["channels"] is None:
            echo(str(row["output_length"]))
        else:
            echo(f"{_shape_text(row['input_shape'])} -> {_shape_text(row['output_shape'])}")
        echo(
            f"  padding (left, right): ({row['padding_resolved'][0]}, {row['padding_resolved'][1]})"
        )
        echo(f"  receptive field: {row['receptive_field']} samples")
        if inp["sample_rate"] is not None:
            echo(f"  sample rate: {_hz(inp['sample_rate'])} Hz -> {_hz(row['sample_rate'])} Hz")
    else:
        # First line: the answer, as in numbers mode (Makefiles read it with `head -1`).
        echo(_shape_text(report["output"]["shape"]))
        source = f" from {inp['file']}" if inp["file"] else ""
        rate = f", {_hz(inp['sample_rate'])} Hz" if inp["sample_rate"] is not None else ""
        echo(f"input: {_shape_text(inp['shape'])}{source}{rate}")
        header = ["layer", "file", "input", "padding", "output", "stride", "field"]
        with_rate = inp["sample_rate"] is not None
        if with_rate:
            header.append("rate (Hz)")
        table = [header]
        for row in report["layers"]:
            cells = [
                str(row["index"]),
                row["file"] or "-",
                _shape_text(row["input_shape"]),
                f"({row['padding_resolved'][0]}, {row['padding_resolved'][1]})",
                _shape_text(row["output_shape"]),
                str(row["cumulative_stride"]),
                str(row["receptive_field"]),
            ]
            if with_rate:
                cells.append(_hz(row["sample_rate"]))
            table.append(cells)
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        numeric = {0, 5, 6, 7}
        for cells in table:
            parts = [
                c.rjust(w) if i in numeric else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            echo("  ".join(parts).rstrip())
        echo(
            f"output: {_shape_text(report['output']['shape'])}, "
            f"receptive field {report['receptive_field']} samples, "
            f"total stride {report['cumulative_stride']}"
        )
    indent = "  " if numbers_mode else ""
    echo(f"{indent}minimum input length: {report['min_input_length']}")
    if target is not None:
        _print_target(report["target"], echo, numbers_mode=numbers_mode)


def _to_stderr(line: str) -> None:
    click.echo(line, err=True)


def _print_target(doc: dict[str, Any], echo: Callable[[str], Any], *, numbers_mode: bool) -> None:
    indent = "  " if numbers_mode else ""
    where = "" if numbers_mode else f" of layer {doc['layer']}"
    echo(
        f"{indent}target output length {doc['length']}{where} "
        f"from input length {doc['input_length']}:"
    )
    if not doc["possible"]:
        echo(f"{indent}  impossible: {doc['reason']}")
        return
    totals = _range_text(doc["total_padding"])
    side = f", each side at most {doc['max_side']}" if doc["max_side"] is not None else ""
    echo(f"{indent}  padding: any LEFT,RIGHT with LEFT+RIGHT = {totals}{side}")
    sym = doc["symmetric_padding"]
    echo(f"{indent}  symmetric --padding: {_range_text(sym) if sym else 'none'}")
    words = doc["padding_words"]
    echo(f"{indent}  padding words: {', '.join(words) if words else 'none'}")
