"""Uniformly partitioned convolution (issue 14 item 5): the one-shot result, one block late."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conv1d_cli import Conv1d, threads
from conv1d_cli.core import Correlator, conv1d
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.partition import PartitionedCorrelator, partition_plan
from conv1d_cli.stream import LayerStage, StreamChain

ROOT = Path(__file__).resolve().parents[1]


def _pieces(x: np.ndarray, rng: np.random.Generator, most: int) -> list[np.ndarray]:
    cuts, pos = [], 0
    while pos < x.shape[-1]:
        step = int(rng.integers(1, most + 1))
        cuts.append(x[..., pos : pos + step])
        pos += step
    return cuts


def _close(got: np.ndarray, want: np.ndarray, tol: float = 1e-6) -> None:
    assert got.shape == want.shape
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)])
    peak = np.abs(want[finite]).max()
    assert np.abs(got[finite] - want[finite]).max() <= tol * peak


@pytest.mark.parametrize("seed", range(24))
def test_partitioned_equals_the_one_shot_correlator(seed):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if seed % 2 else np.float64
    groups, c_in_group, c_out_group = (int(v) for v in rng.integers(1, 4, 3))
    kernel = int(rng.integers(1, 700))
    dilation = int(rng.integers(1, 4))
    batch = int(rng.integers(1, 3))
    weight = rng.standard_normal((groups * c_out_group, c_in_group, kernel)).astype(dtype)
    bias = rng.standard_normal(groups * c_out_group).astype(dtype) if seed % 3 else None
    field = dilation * (kernel - 1) + 1
    x = rng.standard_normal((batch, groups * c_in_group, field + int(rng.integers(0, 3000))))
    x = x.astype(dtype)
    if seed % 4 == 0:  # NaN/Inf reach exactly the outputs whose windows hold them
        x[0, 0, int(rng.integers(x.shape[-1]))] = np.nan
        x[-1, -1, int(rng.integers(x.shape[-1]))] = -np.inf
    want = Correlator(weight, bias, 1, dilation, groups, "fft")(x)
    block = int(rng.integers(1, 600))
    # Uniform partitions (nfft 2*block), or one partition of the field in longer frames.
    nfft = None if seed % 3 else field + block
    corr = PartitionedCorrelator(
        weight, bias, dilation, groups, block=block, nfft=nfft, lead=int(rng.integers(0, block))
    )
    outs = [corr.push(piece) for piece in _pieces(x, rng, 900)] + [corr.flush()]
    _close(np.concatenate(outs, axis=-1), want)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", [None, 256, 1000])
def test_stream_with_partitions_equals_conv1d(mode, dtype, block):
    # block None: a file (partitioned when channels mix); else a live pipe's blocks.
    rng = np.random.default_rng(7)
    weight = (rng.standard_normal((2, 2, 20_000)) * np.exp(-np.arange(20_000) / 3000)).astype(dtype)
    for groups, w, padding in [(1, weight, "causal"), (2, weight[:, :1], (300, 17))]:
        if mode != "zeros" and padding == "causal":
            padding = (500, 0)
        layer = Conv1d.from_weights(w, groups=groups, padding=padding, padding_mode=mode)
        x = rng.standard_normal((2, 45_000)).astype(dtype)
        chain = StreamChain([layer], live_block=block)
        if chain.stages[0]._part is None:  # per-channel kernels on a file: the one-shot path
            assert block is None and groups == 2
            continue
        step = block or 8192
        outs = [chain.push(x[:, i : i + step]) for i in range(0, x.shape[-1], step)]
        got = np.concatenate([*outs, chain.finish()], axis=-1)
        want = conv1d(x, w, padding=padding, groups=groups, padding_mode=mode, method="fft")
        _close(got, want)


def test_each_block_pushed_completes_its_outputs():
    # Latency: a causal 96 000-tap layer fed 1024 frames a time gives 1024 a time.
    layer = Conv1d.from_weights(np.ones((2, 1, 96_000)) / 96_000, groups=2, padding="causal")
    stage = LayerStage(layer, live_block=1024)
    assert stage._part is not None and stage._part.block == 1024
    x = np.random.default_rng(1).standard_normal((1, 2, 5 * 1024))
    sizes = [stage.push(x[..., i : i + 1024]).shape[-1] for i in range(0, 5 * 1024, 1024)]
    assert sizes == [1024] * 5
    assert stage.finish().shape[-1] == 0


def test_partition_plan_depends_on_shapes_and_options_only():
    assert partition_plan(96_000, 1, mixing=True) == (32_768, 65_536)  # true stereo on a file
    assert partition_plan(96_000, 1) is None  # a stereo IR on a file: the one-shot frames
    assert partition_plan(96_000, 1, live_block=1024) == (1024, 2048)
    assert partition_plan(96_000, 1, "direct") is None
    assert partition_plan(96_000, 3) is None  # strided layers stay one-shot
    assert partition_plan(1025, 1) is None  # short kernels: the cost model's plan
    assert partition_plan(4000, 1, live_block=4096) is None  # block longer than the kernel
    layer = Conv1d.from_weights(np.ones((2, 2, 50_000)), padding="causal")
    with threads.limit(1):
        one = LayerStage(layer)._part
    two = LayerStage(layer)._part
    assert one is not None and two is not None
    assert (one.block, one.nfft) == (two.block, two.nfft)


def test_partition_of_a_long_pad_comes_in_pieces():
    layer = Conv1d.from_weights(np.ones((1, 1, 20_000)), padding=(400_000, 30))
    stage = LayerStage(layer, live_block=4096)
    x = np.ones((1, 1, 5000))
    pieces = list(stage.push_pieces(x))
    assert len(pieces) > 1
    got = np.concatenate([*pieces, *stage.finish_pieces()], axis=-1)
    _close(got, conv1d(x, layer.weight, padding=(400_000, 30), method="fft"))


# -- latency on a real pipe ------------------------------------------------------------


def _read_some(stream, want: int, timeout: float) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    while len(got) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            got += chunk
    return got


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_live_pipe_gets_the_first_block_before_more_input(tmp_path):
    """A writer that holds the pipe open after ONE block of input gets that block's output."""
    rng = np.random.default_rng(5)
    ir = rng.standard_normal((2, 1, 96_000)) * np.exp(-np.arange(96_000) / 9000) / 50
    save_layer(Conv1d.from_weights(ir, groups=2, padding="causal"), tmp_path / "room.npz")
    x = (0.3 * rng.standard_normal((4096, 2))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 48_000, subtype="PCM_16", format="WAV")
    data = buf.getvalue()
    head, tail = data[: 44 + 4 * 1024], data[44 + 4 * 1024 :]  # header + one block
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    release, finished = threading.Event(), threading.Event()

    def feed() -> None:
        try:
            with open(fifo, "wb") as fh:
                fh.write(head)
                fh.flush()
                release.wait(120)
                fh.write(tail)
        except BrokenPipeError:
            pass
        finally:
            finished.set()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = ["apply", "-q", "-w", tmp_path / "room.npz", fifo, "--input-format", "wav"]
    args += ["-o", "-", "--output-format", "wav", "--block-size", "1024"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "conv1d_cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        want = 44 + 4 * 1024  # the header and the first block's 1024 frames
        first = _read_some(proc.stdout, want, timeout=60)
        assert len(first) >= want, proc.stderr.read() if proc.poll() is not None else ""
        assert not finished.is_set()  # the writer still holds the pipe: live output
        release.set()
        rest, err = proc.communicate(timeout=120)
    finally:
        release.set()
        writer.join(10)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    got, _ = sf.read(io.BytesIO(first + rest), dtype="float64")
    want_y = conv1d(x.T.astype(np.float64), ir, padding="causal", groups=2)
    ref = np.round(np.clip(want_y.T, -1, 1 - 2**-15) * 32768) / 32768
    assert np.abs(got - ref).max() <= 1.5 / 32768
