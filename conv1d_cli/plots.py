"""Pictures: a layer's frequency response, a signal's overview, input vs output spectra.

Each ``*_figure`` function builds and returns a matplotlib ``Figure`` (so tests can
look at it without saving); :func:`save_figure` writes one atomically. The numbers
come from :mod:`conv1d_cli.analysis` (responses) and :mod:`conv1d_cli.overview`
(streaming envelopes and Welch spectra); this module only draws them.

matplotlib is optional (``pip install 'conv1d-cli[plot]'``) and imported inside the
functions that draw, so importing this module costs nothing; without it they raise
:class:`MatplotlibMissingError`. Figures use the Agg canvas directly, never pyplot:
no GUI backend, no global figure registry.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from conv1d_cli import analysis
from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError
from conv1d_cli.io.atomic import atomic_path

if TYPE_CHECKING:
    from conv1d_cli.layer import Conv1d
    from conv1d_cli.overview import SignalOverview

__all__ = [
    "MAX_LINES",
    "MatplotlibMissingError",
    "check_image_path",
    "compare_figure",
    "design_cutoffs",
    "kernel_groups",
    "layer_figure",
    "require_matplotlib",
    "save_figure",
    "signal_figure",
]

#: Most kernel lines or channel panels drawn; more are unreadable (the rest are named).
MAX_LINES: Final = 16
#: Gains this far below a kernel's peak are left out of its delay curve: the delay of
#: what a stopband lets through matters little, its phase nears rounding noise (and
#: is undefined at exact zeros), and the sidelobes' fragments only clutter the panel.
_DELAY_FLOOR_DB: Final = 40.0
#: Characters per line of a layer picture's title (the axes' width at 10 pt).
_TITLE_WIDTH: Final = 80
#: Lowest level drawn below a spectrum's peak, in dB (numerical noise lies below).
_SPECTRUM_RANGE_DB: Final = 140.0

_NUMBER: Final = r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)"
# What `conv1d init --design` writes ("lowpass 4000 Hz, 101 taps, ...", "bandpass
# 300 - 3400 Hz, ...") and the usual prose ("cutoff 4 kHz", "cutoffs 1-2 kHz").
_INIT_DESIGN: Final = re.compile(
    rf"\b(?:lowpass|highpass|bandpass|bandstop) {_NUMBER}(?: - {_NUMBER})? (k?Hz)\b"
)
_PROSE_CUTOFF: Final = re.compile(rf"\bcutoffs? (?:at )?{_NUMBER}(?: ?- ?{_NUMBER})? ?(k?Hz)\b")


class MatplotlibMissingError(Conv1dError):
    """matplotlib is not installed, so no picture can be drawn."""


def require_matplotlib() -> None:
    """Raise :class:`MatplotlibMissingError` unless matplotlib can be imported.

    Callers check first so that a missing extra is reported before any work.
    """
    try:
        for name in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
            importlib.import_module(name)
    except ImportError:
        raise MatplotlibMissingError(
            "matplotlib is not installed; install it with: pip install 'conv1d-cli[plot]'"
        ) from None


def _new_figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def check_image_path(path: str | os.PathLike[str]) -> None:
    """Refuse an image name :func:`save_figure` could not write, before any work.

    For callers that draw after a long run (``apply --plot-compare``): the name is
    checked before an hour of audio is filtered, not after.

    Raises
    ------
    ConfigError
        An empty name, or an extension that names no format matplotlib writes.
    DataFileError
        A directory, or a name in a folder that does not exist.
    """
    text = os.fspath(path)
    if not text:
        raise ConfigError("an image needs a file name, got ''")
    if os.path.isdir(text):
        raise DataFileError(f"{text}: is a directory, expected an image file name")
    folder = os.path.dirname(text) or "."
    if not os.path.isdir(folder):
        raise DataFileError(f"{text}: folder {folder} does not exist")
    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(text).suffix.lower().lstrip(".") or "png"
    known = FigureCanvasBase.get_supported_filetypes()
    if fmt not in known:
        raise ConfigError(
            f"{text}: Format {fmt!r} is not supported (supported formats: "
            f"{', '.join(sorted(known))})"
        )


def save_figure(fig: Any, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` to ``path`` atomically; the format comes from the extension.

    An existing file is replaced: a picture is regenerated output, like
    ``apply``'s ``-o``.

    Raises
    ------
    ConfigError
        The extension names no format matplotlib can write (nothing is written).
    DataFileError
        ``path`` cannot be written.
    """
    fmt = Path(path).suffix.lower().lstrip(".") or "png"
    # overwrite=True explicitly, so that a change of atomic_path's default cannot
    # turn a re-run into an error.
    with atomic_path(path, overwrite=True) as tmp:
        try:
            # No "Software" stamp: the same picture gives the same bytes across versions.
            fig.savefig(tmp, format=fmt, metadata={"Software": None} if fmt == "png" else None)
        except ValueError as e:
            raise ConfigError(f"{os.fspath(path)}: {e}") from e


# ---- layers ---------------------------------------------------------------------------


def design_cutoffs(description: str | None) -> list[float]:
    """Cutoff frequencies (Hz) named in a layer's description, in order; ``[]`` if none.

    Recognises what ``conv1d init --design`` stores (``"lowpass 4000 Hz, 101 taps,
    hamming window"``, ``"bandpass 300 - 3400 Hz, ..."``) and the phrase ``"cutoff 4
    kHz"``. A layer file keeps no other record of its design.

    Examples
    --------
    >>> design_cutoffs("bandpass 300 - 3400 Hz, 101 taps, hamming window")
    [300.0, 3400.0]
    >>> design_cutoffs("101-tap Hamming-window lowpass, cutoff 4 kHz at 48 kHz")
    [4000.0]
    >>> design_cutoffs("random init like torch.nn.Conv1d, seed 3")
    []
    """
    if not description:
        return []
    for pattern in (_INIT_DESIGN, _PROSE_CUTOFF):
        match = pattern.search(description)
        if match:
            unit = 1000.0 if match.group(3) == "kHz" else 1.0
            return [float(v) * unit for v in match.group(1, 2) if v is not None]
    return []


def kernel_groups(weight: np.ndarray, count: int) -> list[list[int]]:
    """Indices (flattened ``(out, in)`` order) of the first ``count`` kernels, grouped
    by identical taps, each group in order of its first member.

    Examples
    --------
    >>> kernel_groups(np.array([[[1.0, 2]], [[3, 4]], [[1, 2]]]), 3)
    [[0, 2], [1]]
    """
    flat = np.asarray(weight).reshape(-1, weight.shape[-1])[:count]
    groups: dict[bytes, list[int]] = {}
    for i, row in enumerate(np.ascontiguousarray(flat)):
        # Exact bytes: kernels that differ in the last bit draw different curves.
        groups.setdefault(row.tobytes(), []).append(i)
    return list(groups.values())


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    parts: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def _kernel_label(members: list[int], c_in_group: int, per_group_out: int) -> str:
    # Flattened index i is kernel (out o, in-group c); its input channel is c plus the
    # first input channel of o's group.
    outs = [i // c_in_group for i in members]
    ins = [
        (o // per_group_out) * c_in_group + i % c_in_group
        for o, i in zip(outs, members, strict=True)
    ]
    if len(members) == 1:
        return f"out {outs[0]} <- in {ins[0]}"
    pairs = f"out {_ranges(sorted(set(outs)))} <- in {_ranges(sorted(set(ins)))}"
    return f"kernels {_ranges(members)} ({len(members)} identical): {pairs}"


def _legend_outside(fig: Any, handles: list[Any]) -> Any:
    # Right of every panel, top-aligned; constrained layout narrows the panels to
    # make room, so the legend never covers a curve or spills into another panel.
    return fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False)


def _colors(count: int) -> list[Any]:
    # The default cycle repeats after 10; tab20 keeps up to 20 lines apart.
    if count <= 10:
        return [f"C{i}" for i in range(count)]
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = [*range(0, 20, 2), *range(1, 20, 2)]  # the strong shades first
    return [cmap(order[i % 20]) for i in range(count)]


def layer_figure(layer: Conv1d, *, max_kernels: int = MAX_LINES, title: str | None = None) -> Any:
    """Magnitude (dB) and group delay of a layer's kernels, as one figure.

    Kernels with identical taps are drawn once, labelled with every member. Each
    curve's -3 dB points (from :func:`~conv1d_cli.analysis.response_summary`) are
    marked, and so are the cutoffs named in the layer's description
    (:func:`design_cutoffs`), when the sample rate is known. The lower panel is the
    group delay in samples of the layer as applied, its left padding included: 0
    means the output is in step with the input at that frequency (an aligned
    linear-phase design is 0 everywhere); it is left out where the gain is more
    than 40 dB below the kernel's peak (a stopband's delay matters little and its
    phase approaches noise).

    Parameters
    ----------
    layer : Conv1d
        The layer; its ``sample_rate`` (if any) sets the frequency axis in Hz.
    max_kernels : int
        Kernels considered (the first ones in ``(out, in)`` order; 0 = all). At most
        :data:`MAX_LINES` distinct curves are drawn; the legend counts the rest.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    weight = np.asarray(layer.weight)
    c_out, c_in_group, taps = weight.shape
    total = c_out * c_in_group
    count = total if max_kernels <= 0 else min(total, max_kernels)
    groups = kernel_groups(weight, count)
    drawn, hidden = groups[:MAX_LINES], groups[MAX_LINES:]
    freqs, h, g, scales, lags = _kernel_responses(layer, [members[0] for members in drawn])
    rate = layer.sample_rate
    x = freqs * rate if rate else freqs

    fig = _new_figure(9.0, 5.6)
    ax_mag, ax_delay = fig.subplots(2, 1, sharex=True)
    per_group_out = c_out // layer.groups
    floor_db = math.inf
    top_db = -math.inf
    handles = []
    colors = _colors(len(drawn))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mag = np.abs(h)
        db = 20 * np.log10(mag) + 20 * np.log10(scales)[:, None]
        delay = -np.real(g / h)
    for i, members in enumerate(drawn):
        label = _kernel_label(members, c_in_group, per_group_out)
        finite = db[i][np.isfinite(db[i])]
        peak = float(finite.max()) if finite.size else 0.0
        top_db = max(top_db, peak)
        floor_db = min(floor_db, float(finite.min()) if finite.size else peak)
        (line,) = ax_mag.plot(x, db[i], linewidth=1, label=label, color=colors[i])
        handles.append(line)
        summary = analysis.response_summary(freqs, h[i], rate or 1.0, scale=float(scales[i]))
        edges = np.asarray(summary["minus3db_hz"][:50])  # a comb has thousands; dots suffice
        if edges.size:
            ax_mag.plot(
                edges, np.full(edges.size, peak - 3.0), "o",
                color=line.get_color(), markersize=4, markerfacecolor="none",
            )  # fmt: skip
        shown = np.where(db[i] >= peak - _DELAY_FLOOR_DB, delay[i], np.nan)
        ax_delay.plot(x, shown, linewidth=1, color=line.get_color())
    if not math.isfinite(top_db):
        top_db = 0.0
    low = max(floor_db, top_db - 150.0) if math.isfinite(floor_db) else top_db - 150.0
    ax_mag.set_ylim(low - 5, top_db + 5)
    cutoffs = design_cutoffs(layer.description) if rate else []
    for f in cutoffs:
        ax_mag.axvline(f, color="0.35", linestyle="--", linewidth=0.8)
        ax_delay.axvline(f, color="0.35", linestyle="--", linewidth=0.8)
    not_drawn = sum(len(members) for members in hidden)
    handles += _legend_notes(cutoffs, not_drawn, count, total)
    _legend_outside(fig, handles)
    ax_mag.set_ylabel("gain (dB)")
    # The delay axis spans the taps' own lags: a spike at a near-zero of the
    # response may leave it, a meaningful delay cannot.
    lo_lag, hi_lag = -int(lags.max()), -int(lags.min())
    margin = max(1.0, 0.1 * (hi_lag - lo_lag))
    ax_delay.set_ylim(lo_lag - margin, hi_lag + margin)
    ax_delay.axhline(0.0, color="0.6", linewidth=0.6)
    ax_delay.set_ylabel("delay (samples)")
    ax_delay.set_title(
        "group delay as applied (padding included), where the gain is within "
        f"{_DELAY_FLOOR_DB:g} dB of its peak; 0 = in step with the input",
        fontsize=8, loc="left",
    )  # fmt: skip
    ax_delay.set_xlabel("frequency (Hz)" if rate else "frequency (cycles/sample)")
    for ax in (ax_mag, ax_delay):
        ax.grid(True, alpha=0.3)
        ax.set_xlim(float(x[0]), float(x[-1]))
    if title:
        # Two lines at most, each within the axes: the legend sits right of them.
        lines = textwrap.wrap(title, _TITLE_WIDTH)
        if len(lines) > 2:
            lines = [
                lines[0],
                textwrap.shorten(" ".join(lines[1:]), _TITLE_WIDTH, placeholder=" ..."),
            ]
        ax_mag.set_title("\n".join(lines), fontsize=10, loc="left")
    return fig


def _kernel_responses(
    layer: Conv1d, rows: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The responses :func:`layer_figure` draws, for kernels ``rows`` of ``(out*in, K)``.

    Returns the frequencies (cycles/sample), each kernel's response ``H`` over its
    peak, the response ``G`` of its taps weighted by their lags (group delay
    ``tau = -Re(G/H)``), the peaks, and the lags ``k*d - left`` as applied.
    """
    weight = np.asarray(layer.weight)
    taps = weight.shape[-1]
    picked = weight.reshape(-1, taps)[np.array(rows, dtype=np.intp)].astype(np.float64)
    # Each kernel over its peak: taps near 1e308 would make the FFT overflow.
    scales = np.abs(picked).max(axis=-1)
    scales[scales == 0] = 1.0
    unit = picked / scales[:, None]
    left = layer.resolved_padding()[0]
    dilation = layer.dilation
    freqs, response = analysis.frequency_response(unit[:, None, :], dilation=dilation, left=left)
    # Group delay tau = -dphi/dw = -Re(G/H), with G the response of w[k] * (k*d - left).
    lags = np.arange(taps) * dilation - left
    _, weighted = analysis.frequency_response(
        (unit * lags)[:, None, :], dilation=dilation, left=left
    )
    return freqs, response[:, 0], weighted[:, 0], scales, lags


def _legend_notes(cutoffs: list[float], not_drawn: int, count: int, total: int) -> list[Any]:
    """Legend entries of :func:`layer_figure` besides its curves: what the marks mean."""
    # Here, not at the top: matplotlib is loaded only to draw.
    from matplotlib.lines import Line2D

    notes = [
        Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", color="0.3",
               markersize=4, label="-3 dB points (re each peak)")
    ]  # fmt: skip
    if cutoffs:
        notes.append(
            Line2D([], [], color="0.35", linestyle="--", linewidth=0.8,
                   label="design cutoff" + ("s " if len(cutoffs) > 1 else " ")
                   + ", ".join(f"{c:g}" for c in cutoffs) + " Hz")
        )  # fmt: skip
    if not_drawn:
        notes.append(
            Line2D([], [], linestyle="none", label=f"({not_drawn} more kernels not drawn)")
        )
    if count < total:
        notes.append(Line2D([], [], linestyle="none", label=f"(first {count} of {total} kernels)"))
    return notes


# ---- signals --------------------------------------------------------------------------


def _channel_name(ov: SignalOverview, c: int) -> str:
    names = ov.info.column_names
    return f"ch {c}" + (f" {names[c]}" if names and c < len(names) else "")


def _psd_db(psd: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 10 * np.log10(psd)


def _spectrum_limits(*psds: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([_psd_db(p).ravel() for p in psds])
    values = values[np.isfinite(values)]
    if not values.size:
        return -100.0, 0.0
    top = float(values.max())
    return max(float(values.min()), top - _SPECTRUM_RANGE_DB) - 3, top + 5


def _psd_label(rate: float | None) -> str:
    return "PSD (dB/Hz)" if rate else "PSD (dB per cycle/sample)"


def _describe(ov: SignalOverview) -> str:
    info = ov.info
    parts = [info.format.upper() + (f" {info.subtype}" if info.subtype else "")]
    rate = ov.sample_rate
    parts.append("no sample rate" if rate is None else f"{rate:g} Hz")
    parts.append(f"{info.channels} channel{'s' if info.channels != 1 else ''}")
    length = f"{ov.frames} frame{'s' if ov.frames != 1 else ''}"
    parts.append(length + (f" ({ov.frames / rate:.4g} s)" if rate else ""))
    if info.batch:
        parts.append(f"a batch of {info.batch}, drawn together")
    return ", ".join(parts)


def _waveform_limits(low: np.ndarray, high: np.ndarray) -> tuple[float, float]:
    """Each channel its own range (a sensor's 9.8 m/s² offset would flatten the
    others), centred on zero when the signal crosses it, as audio does."""
    finite_lo, finite_hi = low[np.isfinite(low)], high[np.isfinite(high)]
    if not finite_lo.size or not finite_hi.size:
        return -1.0, 1.0
    lo, hi = float(finite_lo.min()), float(finite_hi.max())
    if lo < 0 < hi:
        lo, hi = -max(-lo, hi), max(-lo, hi)
    pad = 0.08 * (hi - lo) or max(abs(hi), 1.0) * 0.08
    return lo - pad, hi + pad


def signal_figure(ov: SignalOverview, *, title: str | None = None) -> Any:
    """Waveform overview and Welch spectrum of each channel, one row per channel.

    The waveform is the min/max envelope (:class:`~conv1d_cli.overview.Envelope`):
    every sample lies in the shaded band, so a single click or clipped peak is as
    visible as in the samples themselves. The spectrum is the Welch power spectral
    density in dB. Rows share their axes; at most :data:`MAX_LINES` channels are
    drawn (the title says so when there are more).

    Parameters
    ----------
    ov : SignalOverview
        From :func:`~conv1d_cli.overview.signal_overview` or an ``OverviewBuilder``.
    title : str, optional
        Figure title (a description of the signal is added below it).

    Returns
    -------
    matplotlib.figure.Figure
    """
    channels = ov.info.channels
    rows = min(channels, MAX_LINES)
    # Rows shrink a little as they multiply: 8 channels still fit a screen.
    fig = _new_figure(11.0, max(3.2, (1.05 if rows <= 4 else 0.85) * rows + 1.4))
    axes = fig.subplots(rows, 2, squeeze=False, sharex="col", width_ratios=[3, 2])
    rate = ov.sample_rate
    bins = ov.low.shape[1]
    centers = (np.arange(bins) + 0.5) * ov.bin_width
    centers = np.minimum(centers, max(ov.frames - 1, 0))
    t = centers / rate if rate else centers
    bottom, top = _spectrum_limits(ov.psd[:rows])
    for c in range(rows):
        color = f"C{c % 10}"
        ax_w, ax_s = axes[c]
        if bins > 1:
            # A band from min to max per bin, outlined so a flat stretch still shows.
            ax_w.fill_between(t, ov.low[c], ov.high[c], color=color, linewidth=0.6)
        elif bins:
            ax_w.plot(t, ov.low[c], "o", color=color)  # one sample: a band has no width
        ax_w.set_ylabel(_channel_name(ov, c), fontsize=8)
        ax_w.set_ylim(*_waveform_limits(ov.low[c], ov.high[c]))
        if ov.freqs.size:
            ax_s.plot(ov.freqs, _psd_db(ov.psd[c]), color=color, linewidth=0.8)
            ax_s.set_xlim(float(ov.freqs[0]), float(ov.freqs[-1]))
            ax_s.set_ylim(bottom, top)
        else:
            ax_s.text(0.5, 0.5, "too short for a spectrum", transform=ax_s.transAxes,
                      ha="center", va="center", fontsize=8, color="0.4")  # fmt: skip
        for ax in (ax_w, ax_s):
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=7)
    if bins:
        end = max(ov.frames - 1, 1)  # one sample still gets an axis of some width
        axes[0, 0].set_xlim(0.0, end / rate if rate else end)
    axes[-1, 0].set_xlabel("time (s)" if rate else "time (samples)")
    axes[-1, 1].set_xlabel("frequency (Hz)" if rate else "frequency (cycles/sample)")
    axes[0, 0].set_title("waveform (min/max envelope)", fontsize=9, loc="left")
    axes[0, 1].set_title(
        f"spectrum: Welch, {ov.nperseg}-sample Hann segments\n{_psd_label(rate)}",
        fontsize=9, loc="left",
    )  # fmt: skip
    heading = (title + "\n" if title else "") + _describe(ov)
    if rows < channels:
        heading += f"; channels 0-{rows - 1} of {channels} drawn"
    fig.suptitle(heading, fontsize=10, x=0.01, horizontalalignment="left")
    return fig


def compare_figure(
    before: SignalOverview,
    after: SignalOverview,
    *,
    title: str | None = None,
    labels: tuple[str, str] = ("input", "output"),
    freq_label: str | None = None,
) -> Any:
    """Input and output spectra of a filtered file, one row per channel.

    Row ``c`` overlays the Welch spectra of input channel ``c`` and output channel
    ``c`` (either may be missing when the layer changes the channel count). When
    both sides have the same channels and frequency grid, a right-hand column shows
    the ratio output/input in dB: the gain the filter applied, as measured on this
    signal (where the input has no energy the ratio is noise).

    Parameters
    ----------
    before, after : SignalOverview
        The input's and the output's overviews (same Welch segment length and,
        for the gain column, the same sample rate).
    title : str, optional
        Figure title.
    labels : (str, str)
        Legend entries of the input and the output.
    freq_label : str, optional
        The frequency axis' label [default: in Hz when both rates are known, else
        in cycles per sample].

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.lines import Line2D

    c_in, c_out = before.info.channels, after.info.channels
    channels = max(c_in, c_out)
    rows = min(channels, MAX_LINES)
    same_grid = (
        c_in == c_out
        and before.freqs.shape == after.freqs.shape
        and bool(np.allclose(before.freqs, after.freqs))
        and before.freqs.size > 0
    )
    fig = _new_figure(11.0 if same_grid else 9.0, max(3.2, 1.15 * rows + 1.4))
    axes = fig.subplots(
        rows, 2 if same_grid else 1, squeeze=False, sharex="col",
        **({"width_ratios": [3, 2]} if same_grid else {}),
    )  # fmt: skip
    bottom, top = _spectrum_limits(before.psd[:rows], after.psd[:rows])
    for c in range(rows):
        ax = axes[c, 0]
        if c < c_in and before.freqs.size:
            ax.plot(before.freqs, _psd_db(before.psd[c]), color="0.55", linewidth=0.8,
                    label=labels[0])  # fmt: skip
        if c < c_out and after.freqs.size:
            ax.plot(after.freqs, _psd_db(after.psd[c]), color="C0", linewidth=0.9,
                    label=labels[1])  # fmt: skip
        ax.set_ylim(bottom, top)
        ax.set_ylabel(_channel_name(before if c < c_in else after, c), fontsize=8)
        if same_grid:
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = _psd_db(after.psd[c]) - _psd_db(before.psd[c])
            axes[c, 1].plot(after.freqs, gain, color="C3", linewidth=0.8)
            axes[c, 1].axhline(0.0, color="0.6", linewidth=0.6)
            finite = gain[np.isfinite(gain)]
            if finite.size:
                axes[c, 1].set_ylim(max(float(finite.min()), -120.0) - 5, float(finite.max()) + 5)
    rates = [r for r in (before.sample_rate, after.sample_rate) if r]
    x_label = freq_label or ("frequency (Hz)" if len(rates) == 2 else "frequency (cycles/sample)")
    upper = max((float(ov.freqs[-1]) for ov in (before, after) if ov.freqs.size), default=0.5)
    for ax in axes.ravel():
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes[:, 0]:
        ax.set_xlim(0.0, upper)
    axes[-1, 0].set_xlabel(x_label)
    axes[0, 0].set_title(
        f"spectra: Welch, {before.nperseg}-sample Hann segments\n{_psd_label(before.sample_rate)}",
        fontsize=9, loc="left",
    )  # fmt: skip
    if same_grid:
        axes[-1, 1].set_xlabel(x_label)
        axes[0, 1].set_title("gain applied: output / input (dB)", fontsize=9, loc="left")
        axes[0, 1].set_xlim(0.0, float(after.freqs[-1]))
    # One legend for every row (the rows share it).
    _legend_outside(
        fig,
        [Line2D([], [], color="0.55", linewidth=0.8, label=labels[0]),
         Line2D([], [], color="C0", linewidth=0.9, label=labels[1])],
    )  # fmt: skip
    heading = (title + "\n" if title else "") + f"{labels[0]}: {_describe(before)}\n"
    heading += f"{labels[1]}: {_describe(after)}"
    if rows < channels:
        heading += f"; channels 0-{rows - 1} of {channels} drawn"
    fig.suptitle(heading, fontsize=9, x=0.01, horizontalalignment="left")
    return fig
