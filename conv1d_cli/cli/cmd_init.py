"""``conv1d init``: make a layer file (random like PyTorch, designed, or from coefficients).

Imports click and the standard library only; NumPy, SciPy and the numeric
modules are imported inside the command, through the layer makers of
:mod:`conv1d_cli.cli._init_make`.
"""

from __future__ import annotations

import click

from conv1d_cli.cli._common import (
    CountType,
    FrequencyType,
    PaddingType,
    is_layer_archive,
    refuse,
    reported_errors,
    signal_note,
    split_layer_arg,
)
from conv1d_cli.shapes import MAX_SIZE, PADDING_MODES, Padding, check_sample_rate

__all__ = ["init"]

_FIR = ("lowpass", "highpass", "bandpass", "bandstop")
_DESIGNS = (*_FIR, "moving-average", "gaussian", "identity", "delay")

# Options every source accepts; the rest belong to one source (checked below).
_COMMON = {
    "layer",
    "stride",
    "padding",
    "dilation",
    "padding_mode",
    "bias",
    "dtype",
    "sample_rate",
    "description",
    "force",
    "quiet",
}
_ALLOWED: dict[str, set[str]] = {
    "random": {"in_channels", "out_channels", "kernel_size", "groups", "seed"},
    "fir": {"design", "cutoff", "taps", "window", "channels", "transition", "attenuation", "phase"},
    "moving-average": {"design", "taps", "channels", "phase"},
    "gaussian": {"design", "sigma", "taps", "channels", "phase"},
    "identity": {"design", "taps", "channels"},
    "delay": {"design", "delay", "channels"},
    "coefficients": {"coefficients", "correlation", "channels", "phase"},
    "weight": {"weight", "key", "bias_file", "groups", "channels"},
    "impulse-response": {"impulse_response", "true_stereo", "ir_norm", "trim", "mix", "channels"},
}

_EPILOG = """\b
Sources (exactly one):
  random        --in-channels --out-channels --kernel-size [--groups --seed]:
                PyTorch's init; with --seed S in float32 the weights and bias
                are bit-for-bit torch.manual_seed(S); torch.nn.Conv1d(...).
                Defaults as PyTorch: padding 0, bias on, float32.
  --design lowpass|highpass|bandpass|bandstop --cutoff HZ [--cutoff HZ]
                --sample-rate FS --taps K [--window NAME]: window-method FIR
                (scipy.signal.firwin, gain 1 in the passband). A cutoff is the
                -6 dB point. highpass/bandstop need odd K (an even-length
                linear-phase FIR has a zero at Nyquist).
  --design lowpass|highpass|bandpass|bandstop --cutoff HZ [--cutoff HZ]
                --sample-rate FS --transition HZ --attenuation DB: design by
                specification, like SoX 'sinc -a DB -t HZ'. The bands end at
                cutoff +- transition/2; the stopband gain is at most
                delta = 10**(-DB/20) and the passband gain within 1 +- delta
                (Kaiser's method gives both bands the same ripple). The taps
                and Kaiser beta start from scipy.signal.kaiserord; taps are
                added until the response measured on a dense grid meets the
                spec (odd for highpass/bandstop). More than 65536 taps are
                refused, naming the count. The spec is kept in the
                description; 'conv1d inspect' measures the layer against it.
  --design moving-average --taps K | gaussian --sigma S [--taps K] |
           identity [--taps K] | delay --delay D (D samples late; D < 0 early)
  --phase minimum (FIR designs, moving-average, gaussian, --coefficients):
                the minimum-phase filter with the same magnitude response
                (scipy.signal.minimum_phase, homomorphic, half=False; an
                even length gets a zero tap first), causal padding by
                default: the output lags the input by the group delay that
                'conv1d inspect' reports as latency, much less than a
                linear-phase filter's (K-1)/2.
  --coefficients FILE: SoX 'fir' file (numbers separated by whitespace,
                '#' comments) or one-column CSV (header allowed). These are
                CONVOLUTION taps: applying the layer reproduces
                'sox in.wav out.wav fir FILE' sample for sample (odd and even
                K). --correlation keeps them as PyTorch correlation weights.
  --weight W.npy [--bias-file B.npy]: PyTorch weights, (C_out, C_in/groups, K)
                or one 1-D kernel; used as they are (no flip), padding 0.
  --impulse-response FILE (an audio file soundfile reads; '-' = stdin):
                a room, speaker or microphone IR as a causal layer that
                convolves with it: output sample n depends on inputs <= n,
                same length (scipy.signal.oaconvolve(x, h)[:len(x)], as FFmpeg
                afir). A mono IR filters each of --channels C channels (default
                1: apply runs it on every channel); a stereo IR filters channel
                i by IR channel i; a 4-channel IR with --true-stereo is a 2x2
                MIMO layer Conv1d(2, 2, K), IR channels in the order LL, LR,
                RL, RR, where LR is the path from input L to output R (left
                source, right microphone: REVerence, LV2 ir, Web Audio), so
                out_L = LL*in_L + RL*in_R and out_R = LR*in_L + RR*in_R. The
                IR's sample rate is stored as binding: 'conv1d apply' and
                'conv1d shape' refuse a signal at another rate, naming both
                (nothing is resampled). In this order:
                --trim DB cuts the tail after the last tap within DB dB of the
                peak; --ir-norm scales the IR; --mix WET makes the layer
                WET*IR + (1-WET)*delta, the dry delta at the IR's onset (its
                first tap within 20 dB of the peak; on LL and RR for true
                stereo), so one layer is the whole effect.
  --weight MODEL.npz:KEY (or --weight MODEL.npz --key KEY): one layer of a
                state_dict export (numpy.savez(**state_dict)) or of a layer
                file: weight, and bias from KEY.bias when there is one
                (--no-bias drops it, --bias-file replaces it, --bias adds
                zeros when there is none). Hyperparameters are the layer
                file's (PyTorch's defaults for an export) unless --stride,
                --padding, --dilation, --groups or --padding-mode say
                otherwise; the dtype is kept unless --dtype. This is how one
                layer of a chain gets its own stride or padding:
                  conv1d init enc.npz --weight model.npz:encoder.conv \\
                      --stride 2 --padding 4
                A torch.save file (.pt/.pth) is refused (conv1d never
                unpickles): export with numpy.savez or Conv1d.from_torch.

\b
Designed kernels and coefficients make a depthwise layer: --channels C gives
weight (C, 1, K), groups = C, the same kernel on every channel; no bias
(--bias adds a zero bias); float64 unless --dtype. Their default padding
aligns output with input: (K//2, (K-1)//2) for convolution taps, so a
symmetric filter of odd length has zero delay. With an even length the
centre falls between two samples and the output is half a sample late
(as with SoX and scipy.signal.convolve 'same'); no integer padding avoids it.
With --correlation the default is PyTorch's 'same' split (T//2, T - T//2).
--padding overrides any default.

\b
The file is written atomically; an existing file is kept unless --force.
Without --description a summary of the source is stored (with the seed used
for random layers), shown by 'conv1d inspect'.
"""


def _cutoffs(
    ctx: click.Context, param: click.Parameter, value: tuple[tuple[float, ...], ...]
) -> tuple[float, ...]:
    # FrequencyType(several=True) gives a tuple per --cutoff (LOW,HIGH); flatten them.
    return tuple(f for group in value for f in group)


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source != click.core.ParameterSource.DEFAULT


def _option_name(ctx: click.Context, name: str) -> str:
    for param in ctx.command.params:
        if param.name == name and param.opts:
            return max(param.opts, key=len)
    return name


def _source(ctx: click.Context, design: str | None) -> str:
    sources = [
        opt
        for opt, name in (
            ("--design", "design"),
            ("--coefficients", "coefficients"),
            ("--weight", "weight"),
            ("--impulse-response", "impulse_response"),
        )
        if _given(ctx, name)
    ]
    if len(sources) > 1:
        refuse(f"{' and '.join(sources)} are alternatives; give only one")
    if not sources:
        return "random"
    if design is not None:
        return "fir" if design in _FIR else design
    return sources[0].lstrip("-")


def _check_applicable(ctx: click.Context, source: str) -> None:
    allowed = _COMMON | _ALLOWED[source]
    stray = [
        _option_name(ctx, p.name)
        for p in ctx.command.params
        if p.name and p.name not in allowed and _given(ctx, p.name)
    ]
    if stray:
        what = {
            "random": "a random layer (no --design/--coefficients/--weight)",
            "fir": f"--design {ctx.params['design']}",
            "coefficients": "--coefficients",
            "weight": "--weight",
            "impulse-response": "--impulse-response",
        }.get(source, f"--design {source}")
        refuse(f"{', '.join(stray)} cannot be used with {what}")


def _require(ctx: click.Context, names: list[str], what: str) -> None:
    missing = [_option_name(ctx, n) for n in names if ctx.params.get(n) in (None, ())]
    if missing:
        refuse(f"{what} needs {', '.join(missing)}")


@click.command("init", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("layer", metavar="LAYER.npz")
@click.option("--in-channels", type=CountType(1, MAX_SIZE, metavar="C"), help="Random layer: C_in.")
@click.option("--out-channels", type=CountType(1, MAX_SIZE, metavar="C"), help="Random: C_out.")
@click.option("--kernel-size", type=CountType(1, MAX_SIZE, metavar="K"), help="Random: K.")
@click.option("--stride", type=CountType(1, MAX_SIZE), metavar="N", default=1, show_default=True)
@click.option(
    "--padding",
    type=PaddingType(),
    help="Padding [default: 0; aligned for designed kernels and coefficients].",
)
@click.option("--dilation", type=CountType(1, MAX_SIZE), metavar="N", default=1, show_default=True)
@click.option(
    "--groups",
    type=CountType(1, MAX_SIZE),
    metavar="N",
    help="Random or --weight layer [default: 1].",
)
@click.option(
    "--bias/--no-bias",
    default=None,
    help="Add a bias [default: on for random layers (PyTorch), the file's for an .npz "
    "--weight, off otherwise (zeros if on)].",
)
@click.option(
    "--padding-mode", type=click.Choice(list(PADDING_MODES)), default="zeros", show_default=True
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "float64"]),
    help="Parameter dtype [default: float32 random, float64 designed, the file's for "
    "--weight; for --impulse-response the IR's: float32 up to 24-bit PCM and float WAV, "
    "float64 for 32-bit PCM or ALAC and doubles].",
)
@click.option(
    "--seed",
    type=int,
    metavar="SEED",
    help="Random layer: seed (as torch.manual_seed) [default: fresh].",
)
@click.option("--design", type=click.Choice(_DESIGNS), help="Designed kernel (see below).")
@click.option(
    "--cutoff",
    multiple=True,
    type=FrequencyType(several=True),
    callback=_cutoffs,
    help="Cutoff (1000, 4k, 4kHz, ...); band filters take two (repeat, or LOW,HIGH).",
)
@click.option(
    "--sample-rate",
    type=FrequencyType(),
    help="Sample rate (48000, 44.1k, ...), stored in the layer.",
)
@click.option("--taps", type=CountType(1, MAX_SIZE, metavar="K"), help="Kernel length.")
@click.option(
    "--window",
    default="hamming",
    show_default=True,
    metavar="NAME",
    help="FIR window (scipy.signal.get_window name; 'kaiser,BETA' for parameters).",
)
@click.option(
    "--transition",
    type=FrequencyType(),
    help="Spec design: width of each transition band (500, 1k, ...).",
)
@click.option(
    "--attenuation",
    type=float,
    metavar="DB",
    help="Spec design: stopband attenuation in dB (e.g. 80).",
)
@click.option(
    "--phase",
    type=click.Choice(["linear", "minimum"]),
    default="linear",
    show_default=True,
    help="minimum: same magnitude, minimum phase, causal padding.",
)
@click.option("--sigma", type=float, metavar="SAMPLES", help="Gaussian width (standard deviation).")
@click.option(
    "--delay", type=int, metavar="SAMPLES", help="Delay kernel: shift (negative = advance)."
)
@click.option(
    "--channels",
    type=CountType(1, MAX_SIZE, metavar="C"),
    help="Channels filtered [default: 1; apply and shape run a 1-channel layer on "
    "every channel of an audio or CSV file].",
)
@click.option(
    "--coefficients",
    metavar="FILE",
    help="SoX fir / one-column CSV convolution taps ('-' = stdin).",
)
@click.option("--correlation", is_flag=True, help="Coefficients are correlation weights (no flip).")
@click.option(
    "--weight",
    metavar="FILE.npy|MODEL.npz[:KEY]",
    help="Weight array (PyTorch layout), or one layer of an .npz (see below).",
)
@click.option(
    "--key",
    metavar="KEY",
    help="Layer prefix in an .npz --weight (e.g. encoder.conv), as apply's --key.",
)
@click.option("--bias-file", metavar="FILE.npy", help="Bias array (C_out,) for --weight.")
@click.option(
    "--impulse-response",
    metavar="FILE",
    help="Impulse response, an audio file ('-' = stdin): a causal layer (see below).",
)
@click.option(
    "--true-stereo",
    is_flag=True,
    help="IR: read a 4-channel IR as LL, LR, RL, RR (LR = input L to output R).",
)
@click.option(
    "--ir-norm",
    type=click.Choice(["none", "peak", "dc", "energy"]),
    default="none",
    show_default=True,
    help="IR: scale by g, one gain for all IR channels c: peak g = 1/max_c,k|h_c[k]|; "
    "dc g = 1/max_c|sum_k h_c[k]|; energy g = 1/sqrt(max_c sum_k h_c[k]^2).",
)
@click.option(
    "--trim",
    type=float,
    metavar="DB",
    help="IR: cut the tail after the last tap within DB dB of the peak (DB > 0).",
)
@click.option(
    "--mix",
    type=float,
    metavar="WET",
    help="IR: WET*IR + (1-WET)*delta at the IR's onset, 0 <= WET <= 1 [default: 1].",
)
@click.option("--description", metavar="TEXT", help="Free text stored in the layer.")
@click.option("--force", is_flag=True, help="Overwrite an existing LAYER file.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.pass_context
def init(
    ctx: click.Context,
    /,
    layer: str,
    in_channels: int | None,
    out_channels: int | None,
    kernel_size: int | None,
    stride: int,
    padding: Padding | None,
    dilation: int,
    groups: int | None,
    bias: bool | None,
    padding_mode: str,
    dtype: str | None,
    seed: int | None,
    design: str | None,
    cutoff: tuple[float, ...],
    sample_rate: float | None,
    taps: int | None,
    window: str,
    transition: float | None,
    attenuation: float | None,
    phase: str,
    sigma: float | None,
    delay: int | None,
    channels: int | None,
    coefficients: str | None,
    correlation: bool,
    weight: str | None,
    key: str | None,
    bias_file: str | None,
    impulse_response: str | None,
    true_stereo: bool,
    ir_norm: str,
    trim: float | None,
    mix: float | None,
    description: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Make a layer file: random like PyTorch, a designed filter, or given taps.

    \b
    Example:
        conv1d init lp.npz --design lowpass --cutoff 1000 --sample-rate 48000 --taps 101 \\
            --channels 2
        conv1d init lp4k.npz --design lowpass --cutoff 4k --transition 500 \\
            --attenuation 80 --sample-rate 48k --phase minimum
        conv1d init fir.npz --coefficients taps.txt --channels 2
        conv1d init room.npz --impulse-response hall.wav --mix 0.3
        conv1d init conv.npz --in-channels 16 --out-channels 33 --kernel-size 3 --seed 0
    """
    source = _source(ctx, design)
    _check_invocation(ctx, source, layer)
    if source == "weight":
        assert weight is not None
        _check_weight_clashes(weight, key, channels)
    # Here, not at the top: `conv1d --help` imports this module to list the command,
    # and the layer makers are needed only when it runs.
    from conv1d_cli.cli import _init_make

    opts = _init_make.Options(
        source=source,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernel_size,
        padding=padding,
        groups=groups,
        bias=bias,
        dtype=dtype,
        seed=seed,
        design=design,
        cutoff=cutoff,
        sample_rate=sample_rate,
        taps=taps,
        window=window,
        transition=transition,
        attenuation=attenuation,
        phase=phase,
        sigma=sigma,
        delay=delay,
        channels=channels,
        coefficients=coefficients,
        correlation=correlation,
        weight=weight,
        key=key,
        bias_file=bias_file,
        impulse_response=impulse_response,
        true_stereo=true_stereo,
        ir_norm=ir_norm,
        trim=trim,
        mix=mix,
        # Only what was typed overrides a layer read from an .npz (not init's defaults).
        explicit={
            name: value
            for name, value in (
                ("stride", stride),
                ("padding", padding),
                ("dilation", dilation),
                ("groups", groups),
                ("padding_mode", padding_mode),
            )
            if _given(ctx, name)
        },
        common={"stride": stride, "dilation": dilation, "padding_mode": padding_mode},
    )
    signal_note("nothing was written")  # the layer file is written atomically
    with reported_errors(overwrite="use --force to overwrite"):
        if sample_rate is not None:
            # One rule for every sample rate (shapes.check_sample_rate), exit 2.
            opts.sample_rate = check_sample_rate("sample_rate", sample_rate)
        # Here, not at the top: the layer file loads NumPy, which `conv1d --help`
        # must not pay for.
        from conv1d_cli.io.atomic import check_not_same_file
        from conv1d_cli.io.layerfile import save_layer

        weight_file = None if weight is None else split_layer_arg(weight)[0]
        sources = (coefficients, weight_file, bias_file, impulse_response)
        check_not_same_file(layer, [p for p in sources if p])
        made = _init_make.build(opts)
        if description is not None:
            made.description = description
        # save_layer refuses an existing file itself (no separate check to race with).
        save_layer(made, layer, overwrite=force)
    if not quiet:
        extra = f" ({made.description})" if made.description else ""
        click.echo(f"wrote {layer}: {made!r}{extra}", err=True)


def _check_invocation(ctx: click.Context, source: str, layer: str) -> None:
    """Refuse options that do not fit the source, clash, or are missing (exit 2)."""
    _check_applicable(ctx, source)
    if layer == "-":
        refuse("LAYER must be a file name; layers are not written to stdout")
    if ctx.params["bias_file"] is not None and ctx.params["bias"] is False:
        refuse("--bias-file and --no-bias contradict each other")
    spec = ["transition", "attenuation"]
    by_spec = source == "fir" and any(_given(ctx, name) for name in spec)
    if by_spec and (_given(ctx, "taps") or _given(ctx, "window")):
        refuse(
            "--taps and --window cannot be used with --transition/--attenuation "
            "(the spec picks the taps and the Kaiser window)"
        )
    required = {
        "random": ["in_channels", "out_channels", "kernel_size"],
        "fir": ["cutoff", "sample_rate", *(spec if by_spec else ["taps"])],
        "moving-average": ["taps"],
        "gaussian": ["sigma"],
        "delay": ["delay"],
    }.get(source, [])
    what = "a random layer" if source == "random" else f"--design {ctx.params['design']}"
    _require(ctx, required, what)


def _check_weight_clashes(weight: str, key: str | None, channels: int | None) -> None:
    """Refuse --key and --channels where the --weight they go with cannot take them."""
    path, own_key = split_layer_arg(weight)
    if own_key is not None or key is not None or is_layer_archive(path):
        if key is not None and path.lower().endswith(".npy"):
            refuse(f"--key applies to an .npz --weight; {path} holds one array")
        if channels is not None:
            refuse(
                "--channels applies to a 1-D .npy --weight; a layer from an .npz has its "
                "channels (--groups sets its groups)"
            )
