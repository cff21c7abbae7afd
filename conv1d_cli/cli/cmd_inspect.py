"""``conv1d inspect``: what a layer file or a signal file holds.

Imports click and the standard library only; NumPy, the layer-file reader,
``conv1d_cli.io`` readers and ``plots`` (matplotlib) are imported inside the command.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conv1d_cli.cli._common import (
    CountType,
    FrequencyType,
    PaddingType,
    is_layer_archive,
    refuse,
    reported_errors,
    require_plotting,
    require_stdout,
    signal_note,
    write_stdout,
)
from conv1d_cli.errors import DataFileError
from conv1d_cli.shapes import MAX_SIZE, PADDING_MODES, Padding, check_sample_rate, receptive_field

if TYPE_CHECKING:
    import numpy as np

    from conv1d_cli.analysis import FilterSpec
    from conv1d_cli.layer import Conv1d

__all__ = ["LAYER_SCHEMA", "SIGNAL_SCHEMA", "inspect_"]

#: ``schema`` of ``--json`` for a layer file; bumped only for incompatible changes.
LAYER_SCHEMA = "conv1d-inspect-layer/1"
#: ``schema`` of ``--json`` for a signal file.
SIGNAL_SCHEMA = "conv1d-inspect-signal/1"

_EPILOG = f"""\b
FILE is read as a layer when it ends in .npz or is a zip archive, else as a
signal (WAV/FLAC/OGG/AIFF/..., CSV, NPY; '-' = stdin with --input-format). A
torch.save file (.pt/.pth, a pickle) is refused, saying how to export it.

\b
Layer: shapes, every hyperparameter, parameter count, receptive field, the
padding it resolves to, and per kernel (output channel <- input channel) the
DC gain (sum of taps), L1 and L2 norms, peak |tap| and whether it is
symmetric or antisymmetric (linear phase). With a sample rate (stored by
'init' for designed filters, or --sample-rate) also a frequency-response
summary: gain at DC and at Nyquist, peak gain, the -3 dB points (where the
gain crosses 3 dB below the kernel's peak), the stopband (below -3 dB, after
each transition band, which ends at the first response minimum) and its
level (highest gain in it, the worst sidelobe). Gains are dB re unity (0 dB =
gain 1). --plot FILE.png draws each kernel's gain (dB) with its -3 dB points
and the design's cutoffs (as 'init --design' records them in the
description), and its group delay in samples as applied (left padding
included: 0 = in step with the input; drawn where the gain is within 40 dB
of the peak); identical kernels are drawn once, at most 16 curves, legend
beside the plot.

\b
Signal: format, subtype, sample rate, channels, frames, duration, and per
channel peak |x|, RMS and DC (mean), computed block by block. --plot FILE.png
draws per channel (at most 16) the waveform as a min/max envelope (every
sample lies in the band) and the Welch power spectrum (Hann segments of up to
4096 samples, 50% overlap), both gathered in the same single pass, so a
signal of any length (or a pipe) takes bounded memory.

\b
--plot needs matplotlib (pip install 'conv1d-cli[plot]'); the image format
comes from the extension (.png, .svg, .pdf, ...); an existing image is
replaced, atomically.

\b
--json prints one object; fields are only ever added within a schema.
Layer ("schema": "{LAYER_SCHEMA}"):
  file, key (the --key given, else null), weight_shape [C_out, C_in/g, K],
  bias_shape ([C_out] or null), dtype, in_channels, out_channels,
  kernel_size, stride, padding (as stored: int, word or [left, right]),
  padding_resolved [left, right], dilation, groups, padding_mode, bias
  (bool), parameters, receptive_field (samples), sample_rate (Hz or null),
  sample_rate_binding (true for an impulse response: the rate it was recorded
  at, which apply requires of a signal; false for a design rate, which it
  only warns about), description, kernels_total, kernels[] (the first
  --max-kernels, in weight order): {{out_channel, in_channel, dc_gain,
  l1_norm, l2_norm, peak, linear_phase ("symmetric" | "antisymmetric" |
  null), afir_gain, pedalboard_gain, response}}; afir_gain = 1/L1 and
  pedalboard_gain = 0.125/L2 are the gains FFmpeg afir (irnorm=1) and
  pedalboard would apply to this kernel on their own (null when undefined);
  conv1d never rescales; response is null without a sample rate, else
  {{dc_db, nyquist_db, peak_db, peak_hz, minus3db_hz [..], stopband_hz
  [[lo, hi], ..], stopband_db (null if no stopband)}}; latency_samples (group
  delay at DC as applied, left padding included; at the peak-gain frequency
  latency_at_hz when the DC gain is 20 dB below the peak), latency_ms and
  latency_at_hz (null without a sample rate); spec_check (null unless the
  description holds an 'init --transition/--attenuation' spec and the rate is
  known): {{passband_ripple (max ||H|-1|), passband_ripple_db,
  stopband_attenuation_db, met}}. spec (layer): null or {{kind, cutoff_hz
  [..], transition_hz, attenuation_db, ripple_target (10**(-dB/20))}}. Any
  number that is not finite (a gain of exactly 0 = -inf dB, a norm
  overflowing float64) is null.
Signal ("schema": "{SIGNAL_SCHEMA}"):
  file, format, subtype (null for CSV/NPY), sample_rate (null if unknown),
  channels, frames, duration_s (null without a sample rate), batch (N of a
  batched NPY, else null), column_names (CSV header or null),
  channel_stats[]: {{channel, name, peak, rms, dc}} (a batched NPY: frames
  is per item, the statistics cover all items).

\b
Exit status: 0 ok; 1 unreadable or malformed file; 2 wrong invocation.
"""


def _read_piped_layer(path: str) -> bytes | None:
    """The bytes of a layer archive given as a pipe with no extension (``<(cat l.npz)``).

    A pipe can be read only once, so its first bytes are sniffed here and, for a zip,
    the rest read (bounded, by the layer reader's rule); those bytes then make the
    layer. Without an extension a signal on a pipe needs --input-format, so nothing a
    signal reader could use is lost; a pipe named like ``x.wav`` or ``x.npz`` goes by
    its extension instead.
    """
    # Here, not at the top: it loads NumPy, which `conv1d --help` must not pay for.
    from conv1d_cli.io.layerfile import read_piped_layer
    from conv1d_cli.io.pipes import is_stream

    if path == "-" or Path(path).suffix or not is_stream(path):
        return None
    try:
        with open(path, "rb") as f:
            return read_piped_layer(f, path)
    except (OSError, DataFileError):
        return None  # the signal reader names the failure


@click.command("inspect", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schemas below) instead of text.")
@click.option(
    "--sample-rate",
    type=FrequencyType(),
    help="Sample rate (48000, 44.1k, ...) [default: the file's]; enables a layer's "
    "response summary.",
)
@click.option(
    "--plot",
    metavar="FILE.png",
    help="Draw a picture: a layer's response and delay, or a signal's waveform and spectrum.",
)
@click.option("--key", metavar="KEY", help="Layer: which layer of a multi-layer .npz.")
@click.option(
    "--max-kernels",
    type=click.IntRange(min=0),
    default=64,
    show_default=True,
    metavar="N",
    help="Layer: kernels listed and plotted (identical ones drawn once, at most 16 "
    "curves); 0 = all.",
)
@click.option("--stride", type=CountType(1, MAX_SIZE), metavar="N", help="Layer: override.")
@click.option(
    "--padding",
    type=PaddingType(),
    help="Layer: override.",
)
@click.option("--dilation", type=CountType(1, MAX_SIZE), metavar="N", help="Layer: override.")
@click.option("--groups", type=CountType(1, MAX_SIZE), metavar="N", help="Layer: override.")
@click.option("--padding-mode", type=click.Choice(list(PADDING_MODES)), help="Layer: override.")
@click.option(
    "--input-format", metavar="FORMAT", help="Signal: format (wav, csv, npy, ...; needed for '-')."
)
def inspect_(
    file: str,
    as_json: bool,
    sample_rate: float | None,
    plot: str | None,
    key: str | None,
    max_kernels: int,
    stride: int | None,
    padding: Padding | None,
    dilation: int | None,
    groups: int | None,
    padding_mode: str | None,
    input_format: str | None,
) -> None:
    """Describe a layer file (.npz) or a signal file.

    \b
    Example:
        conv1d inspect lowpass.npz
        conv1d inspect lowpass.npz --plot response.png
        conv1d inspect take1.wav --json
        conv1d inspect take1.wav --plot take1.png
    """
    require_stdout()  # the report goes there: fail before reading anything
    opts = _Options(
        sample_rate=sample_rate,
        plot=plot,
        key=key,
        max_kernels=max_kernels,
        overrides={
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
            "padding_mode": padding_mode,
        },
        input_format=input_format,
    )
    if sample_rate is not None:
        with reported_errors():  # one rule for every sample rate: exit 2 naming the option
            opts.sample_rate = check_sample_rate("sample_rate", sample_rate)
    if plot == "-":
        refuse("--plot needs a file name (an image is not written to stdout)")
    if plot is not None:
        require_plotting("--plot")
        signal_note("no plot was written")  # the image is written atomically
    opts.data = _read_piped_layer(file) if input_format is None else None
    layer_file = opts.data is not None or is_layer_archive(file)
    if not layer_file:
        layer_only = {"key": key, **opts.overrides}
        stray = [name for name, value in layer_only.items() if value is not None]
        if stray:
            names = ", ".join("--" + n.replace("_", "-") for n in stray)
            refuse(f"{names} only apply to layer files; {file} is read as a signal")
    elif input_format is not None:
        refuse("--input-format only applies to signal files")
    with reported_errors():
        if plot is not None:
            # Here, not at the top: plots loads NumPy, which `conv1d --help` must not pay for.
            from conv1d_cli.io.atomic import check_not_same_file
            from conv1d_cli.plots import check_image_path

            check_not_same_file(plot, [file])
            check_image_path(plot)  # before reading an hour of audio
        if layer_file:
            layer = _load(file, opts)
            report = _layer_report(file, opts, layer)
            if plot is not None:
                _plot_layer(file, plot, opts, layer)
        else:
            report = _signal_report(file, opts)
    if as_json:
        write_stdout(json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n")
    else:
        write_stdout(_layer_text(report) if layer_file else _signal_text(report))
    if plot is not None:
        click.echo(f"wrote {plot}", err=True)


@dataclasses.dataclass
class _Options:
    """What the report needs of the command line, checked."""

    sample_rate: float | None
    plot: str | None
    key: str | None
    max_kernels: int
    #: --stride, --padding, ...: None where not given (the layer file's value).
    overrides: dict[str, Any]
    input_format: str | None
    #: The bytes of a layer read from a pipe (read once, by the sniffing).
    data: bytes | None = None


def _json_safe(value: Any) -> Any:
    """Non-finite floats (an exact zero gain in dB, a norm overflowing float64) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# ---- layers --------------------------------------------------------------------------


def _load(file: str, opts: _Options) -> Conv1d:
    # Here, not at the top: it loads NumPy, which `conv1d --help` must not pay for.
    from conv1d_cli.layer import load_layer

    return load_layer(
        file,
        key=opts.key,
        data=opts.data,
        sample_rate=opts.sample_rate,
        **opts.overrides,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _ratio(numerator: float, norm: float, smallest: float) -> float | None:
    # The gain FFmpeg afir (irnorm=1: 1/L1) or pedalboard (0.125/L2, skipped when the
    # energy L2**2 is below 1e-8) would apply on its own; conv1d never does.
    gain = numerator / norm if norm > smallest else math.inf
    return gain if math.isfinite(gain) else None


def _kernel_entries(
    layer: Conv1d,
    stats: dict[str, np.ndarray],
    start: int,
    stop: int,
    left: int,
    spec: FilterSpec | None = None,
) -> list[dict[str, Any]]:
    """Report entries of kernels ``start:stop`` (flattened (out, in) order)."""
    # Here, not at the top: NumPy loads only once the command runs.
    import numpy as np

    from conv1d_cli import analysis

    weight = layer.weight
    c_out, c_in_group, _ = weight.shape
    per_group_out = c_out // layer.groups
    rate = layer.sample_rate
    kernels: list[dict[str, Any]] = []
    flat = np.arange(start, stop)
    outs, ins = np.divmod(flat, c_in_group)
    responses = None
    if rate is not None:
        # Each kernel over its peak: taps near 1e308 would make the FFT overflow.
        picked = weight[outs, ins].astype(np.float64)
        scales = np.abs(picked).max(axis=-1)
        scales[scales == 0] = 1.0
        freqs, responses = analysis.frequency_response(
            (picked / scales[:, None])[:, None, :], dilation=layer.dilation, left=left
        )
    for i, (o, c) in enumerate(zip(outs.tolist(), ins.tolist(), strict=True)):
        entry: dict[str, Any] = {
            "out_channel": o,
            "in_channel": (o // per_group_out) * c_in_group + c,
            "dc_gain": float(stats["dc_gain"][o, c]),
            "l1_norm": float(stats["l1_norm"][o, c]),
            "l2_norm": float(stats["l2_norm"][o, c]),
            "peak": float(stats["peak"][o, c]),
            "linear_phase": stats["linear_phase"][o, c],
            "afir_gain": _ratio(1.0, float(stats["l1_norm"][o, c]), 0.0),
            "pedalboard_gain": _ratio(0.125, float(stats["l2_norm"][o, c]), 1e-4),
            "response": None,
        }
        if responses is not None and rate is not None:
            summary = analysis.response_summary(
                freqs, responses[i, 0], rate, scale=float(scales[i])
            )
            for name in ("dc_db", "nyquist_db", "peak_db", "stopband_db"):
                if summary[name] is not None:
                    summary[name] = _finite(summary[name])
            entry["response"] = summary
        entry.update(_delay_and_spec(weight[o, c], layer, left, spec))
        kernels.append(entry)
    return kernels


def _delay_and_spec(
    taps: np.ndarray, layer: Conv1d, left: int, spec: FilterSpec | None
) -> dict[str, Any]:
    """Latency (group delay) of one kernel, and how it meets the layer's stored spec."""
    # Here, not at the top: it loads NumPy, which `conv1d --help` must not pay for.
    from conv1d_cli import analysis

    rate = layer.sample_rate
    delay, at = analysis.latency(taps, dilation=layer.dilation, left=left)
    delay = round(delay, 9) + 0.0  # rounding noise of an in-step filter is 0
    checked = None
    if spec is not None and rate is not None:
        checked = analysis.measure_spec(taps, spec, rate, dilation=layer.dilation)
    return {
        "latency_samples": _finite(delay),
        "latency_ms": None if rate is None else _finite(delay / rate * 1000),
        "latency_at_hz": None if rate is None else at * rate,
        "spec_check": checked,
    }


def _layer_report(file: str, opts: _Options, layer: Conv1d) -> dict[str, Any]:
    # Here, not at the top: NumPy loads only once the command runs.
    import numpy as np

    from conv1d_cli import analysis

    weight = layer.weight
    c_out, c_in_group, _ = weight.shape
    left, right = layer.resolved_padding()
    stats = analysis.kernel_stats(weight)
    spec = analysis.FilterSpec.from_description(layer.description)
    total = c_out * c_in_group
    limit = total if opts.max_kernels == 0 else min(total, opts.max_kernels)
    rate = layer.sample_rate
    kernels: list[dict[str, Any]] = []
    chunk = 16  # kernels per FFT batch: bounded memory for long kernels
    with np.errstate(over="ignore", invalid="ignore"):  # taps near 1e308: inf, quietly
        for start in range(0, limit, chunk):
            kernels += _kernel_entries(layer, stats, start, min(start + chunk, limit), left, spec)
    padding = layer.padding
    return {
        "schema": LAYER_SCHEMA,
        "file": file,
        "key": opts.key,
        "weight_shape": list(weight.shape),
        "bias_shape": None if layer.bias is None else list(layer.bias.shape),
        "dtype": weight.dtype.name,
        "in_channels": layer.in_channels,
        "out_channels": layer.out_channels,
        "kernel_size": layer.kernel_size,
        "stride": layer.stride,
        "padding": list(padding) if isinstance(padding, tuple) else padding,
        "padding_resolved": [left, right],
        "dilation": layer.dilation,
        "groups": layer.groups,
        "padding_mode": layer.padding_mode,
        "bias": layer.bias is not None,
        "parameters": int(weight.size + (0 if layer.bias is None else layer.bias.size)),
        "receptive_field": receptive_field(layer.kernel_size, layer.dilation),
        "sample_rate": rate,
        "sample_rate_binding": layer.sample_rate_binding,
        "description": layer.description,
        "spec": None
        if spec is None
        else {
            "kind": spec.kind,
            "cutoff_hz": list(spec.cutoffs),
            "transition_hz": spec.transition,
            "attenuation_db": spec.attenuation,
            "ripple_target": spec.ripple_target,
        },
        "kernels_total": total,
        "kernels": kernels,
    }


def _first_few(items: list[str], shown: int = 8) -> str:
    """A readable line: a dilated comb has thousands of edges (--json lists them all)."""
    more = f", ... ({len(items) - shown} more)" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _db(value: float | None) -> str:
    return "-inf dB" if value is None else f"{round(value, 2) + 0.0:+.2f} dB"


def _layer_text(r: dict[str, Any]) -> str:
    depthwise = r["groups"] == r["in_channels"] and r["groups"] > 1
    rate = r["sample_rate"]
    field = f"{r['receptive_field']} samples"
    if rate:
        field += f" ({r['receptive_field'] / rate * 1000:.4g} ms)"
    padding = r["padding"]
    shown_padding = repr(tuple(padding) if isinstance(padding, list) else padding)
    lines = [
        f"{r['file']}: conv1d layer" + (f" (key {r['key']!r})" if r["key"] else ""),
        f"  weight         {tuple(r['weight_shape'])} {r['dtype']}",
        f"  bias           {tuple(r['bias_shape']) if r['bias'] else 'none'}",
        f"  in_channels    {r['in_channels']}",
        f"  out_channels   {r['out_channels']}",
        f"  kernel_size    {r['kernel_size']}",
        f"  stride         {r['stride']}",
        f"  padding        {shown_padding} -> (left, right) = {tuple(r['padding_resolved'])}",
        f"  dilation       {r['dilation']}",
        f"  groups         {r['groups']}" + (" (depthwise)" if depthwise else ""),
        f"  padding_mode   {r['padding_mode']}",
        f"  parameters     {r['parameters']}",
        f"  receptive      {field}",
        f"  sample_rate    {'unknown' if rate is None else f'{rate:g} Hz'}"
        + (" (recorded: a signal at another rate is refused)" if r["sample_rate_binding"] else ""),
        f"  description    {r['description'] or '-'}",
        "",
        "kernel (out <- in)   dc_gain      l1_norm      l2_norm      peak         linear_phase",
    ]
    for k in r["kernels"]:
        lines.append(
            f"  {k['out_channel']:>4} <- {k['in_channel']:<4}       "
            f"{k['dc_gain']:<12.6g} {k['l1_norm']:<12.6g} {k['l2_norm']:<12.6g} "
            f"{k['peak']:<12.6g} {k['linear_phase'] or 'no'}"
        )
    gains = [
        f"{k['out_channel']} <- {k['in_channel']}: x{k['afir_gain']:.4g}"
        + (f" / x{k['pedalboard_gain']:.4g}" if k["pedalboard_gain"] is not None else "")
        for k in r["kernels"][:4]
        if k["afir_gain"] is not None
    ]
    hidden = r["kernels_total"] - len(r["kernels"])
    if hidden:
        lines.append(f"  ... {hidden} more kernels (--max-kernels 0 lists all)")
    if gains:
        more = ", ..." if len(r["kernels"]) > 4 else ""
        lines.append(
            "  (not applied here) FFmpeg afir irnorm=1 / pedalboard would rescale by "
            + "; ".join(gains)
            + more
        )
    if rate is None:
        lines.append("")
        lines.append("no sample rate: give --sample-rate FS for a frequency-response summary")
    else:
        lines += ["", f"frequency response at {rate:g} Hz (dB re gain 1)"]
        for k in r["kernels"]:
            s = k["response"]
            edges = _first_few([f"{f:.5g}" for f in s["minus3db_hz"]]) or "none"
            stop = "none"
            if s["stopband_db"] is not None:
                ranges = _first_few([f"{lo:.5g}-{hi:.5g}" for lo, hi in s["stopband_hz"]])
                stop = f"{_db(s['stopband_db'])} in {ranges} Hz"
            lines.append(
                f"  {k['out_channel']:>4} <- {k['in_channel']:<4} DC {_db(s['dc_db'])}, "
                f"Nyquist {_db(s['nyquist_db'])}, peak {_db(s['peak_db'])} at "
                f"{s['peak_hz']:.5g} Hz; -3 dB at {edges} Hz; stopband {stop}"
            )
    return "\n".join(lines + _latency_and_spec_text(r)) + "\n"


def _latency_and_spec_text(r: dict[str, Any]) -> list[str]:
    lines = ["", "latency (group delay as applied; 0 = in step with the input)"]
    for k in r["kernels"]:
        delay = k["latency_samples"]
        text = "undefined" if delay is None else f"{round(delay, 3) + 0.0:g} samples"
        if k["latency_ms"] is not None:
            text += f" ({k['latency_ms']:.4g} ms)"
        if k["latency_at_hz"]:
            text += f" at {k['latency_at_hz']:.5g} Hz (the DC gain is 20 dB below the peak)"
        lines.append(f"  {k['out_channel']:>4} <- {k['in_channel']:<4} {text}")
    spec = r["spec"]
    if spec is None:
        return lines
    cut = " - ".join(f"{c:g}" for c in spec["cutoff_hz"])
    target_db = 20 * math.log10(1 + spec["ripple_target"])
    lines += [
        "",
        f"spec (from the description): {spec['kind']} {cut} Hz, transition "
        f"{spec['transition_hz']:g} Hz, attenuation {spec['attenuation_db']:g} dB, "
        f"passband within +-{target_db:.3g} dB",
    ]
    for k in r["kernels"]:
        c = k["spec_check"]
        if c is None:
            lines.append("  no sample rate: give --sample-rate FS to measure the layer against it")
            break
        lines.append(
            f"  {k['out_channel']:>4} <- {k['in_channel']:<4} passband ripple "
            f"{c['passband_ripple_db']:.3g} dB, stopband attenuation "
            f"{c['stopband_attenuation_db']:.4g} dB: {'met' if c['met'] else 'NOT met'}"
        )
    return lines


def _plot_layer(file: str, plot: str, opts: _Options, layer: Conv1d) -> None:
    # Here, not at the top: plots loads NumPy, which `conv1d --help` must not pay for.
    from conv1d_cli import plots

    title = os.path.basename(file) + (f": {layer.description}" if layer.description else "")
    fig = plots.layer_figure(layer, max_kernels=opts.max_kernels, title=title)
    plots.save_figure(fig, plot)


# ---- signals -------------------------------------------------------------------------


def _signal_report(file: str, opts: _Options) -> dict[str, Any]:
    # Here, not at the top: NumPy and soundfile load only once the command runs.
    from conv1d_cli.analysis import SignalStats
    from conv1d_cli.io.inputs import open_reader

    with open_reader(file, opts.input_format) as reader:
        info = reader.info
        channels = info.channels
        acc = SignalStats(channels)
        picture = None
        if opts.plot is not None:
            # Here, not with the imports above: only --plot builds the overview.
            from conv1d_cli.overview import OverviewBuilder

            # The same pass as the statistics: a pipe can be read only once.
            picture = OverviewBuilder(info, sample_rate=opts.sample_rate)
        frames = 0
        for block in reader:
            acc.update(block)
            if picture is not None:
                picture.update(block)
            frames += block.shape[-1]
    if picture is not None and opts.plot is not None:
        # Here, not at the top: plots loads NumPy, which `conv1d --help` must not pay for.
        from conv1d_cli import plots

        fig = plots.signal_figure(picture.result(), title=os.path.basename(file))
        plots.save_figure(fig, opts.plot)
    rate = opts.sample_rate if opts.sample_rate is not None else info.sample_rate
    names = list(info.column_names) if info.column_names else None
    peak, rms, dc = acc.peak.tolist(), acc.rms().tolist(), acc.dc().tolist()
    stats = [
        {
            "channel": c,
            "name": names[c] if names and c < len(names) else None,
            "peak": peak[c],
            "rms": rms[c],
            "dc": dc[c],
        }
        for c in range(channels)
    ]
    return {
        "schema": SIGNAL_SCHEMA,
        "file": file,
        "format": info.format,
        "subtype": info.subtype,
        "sample_rate": None if rate is None else float(rate),
        "channels": channels,
        "frames": frames,
        "duration_s": frames / rate if rate else None,
        "batch": info.batch,
        "column_names": names,
        "channel_stats": stats,
    }


def _dbfs(value: float) -> str:
    return "-inf" if value <= 0 else f"{20 * math.log10(value):+.2f}"


def _signal_text(r: dict[str, Any]) -> str:
    rate = r["sample_rate"]
    duration = "unknown" if r["duration_s"] is None else f"{r['duration_s']:.6g} s"
    lines = [
        f"{r['file']}: signal",
        f"  format       {r['format']}" + (f" ({r['subtype']})" if r["subtype"] else ""),
        f"  sample_rate  {'unknown' if rate is None else f'{rate:g} Hz'}",
        f"  channels     {r['channels']}",
        f"  frames       {r['frames']}" + (f" x batch {r['batch']}" if r["batch"] else ""),
        f"  duration     {duration}",
        "",
        "channel      peak         peak_dBFS  rms          rms_dBFS   dc",
    ]
    for s in r["channel_stats"]:
        name = f"{s['channel']}" + (f" {s['name']}" if s["name"] else "")
        lines.append(
            f"  {name:<10} {s['peak']:<12.6g} {_dbfs(s['peak']):<10} {s['rms']:<12.6g} "
            f"{_dbfs(s['rms']):<10} {s['dc']:.6g}"
        )
    return "\n".join(lines) + "\n"
