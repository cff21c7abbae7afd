"""pipeline._pump: how reading, filtering and writing overlap (with fakes for the I/O)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from conv1d_cli import pipeline
from conv1d_cli.errors import DataFileError
from conv1d_cli.jobs import FilterOptions
from conv1d_cli.layer import Conv1d
from conv1d_cli.overlap import Inline
from conv1d_cli.stream import StreamChain


class _Reader:
    """Blocks of a (C, n) signal; ``log`` records each read."""

    finite = True

    def __init__(self, x: np.ndarray, log: list[tuple[str, int]]) -> None:
        self.info = SimpleNamespace(channels=x.shape[0], batch=None, frames=x.shape[-1])
        self._x, self._at, self._log = x, 0, log

    def read(self, frames: int) -> np.ndarray:
        self._log.append(("read", self._at))
        block = self._x[:, self._at : self._at + frames]
        self._at += block.shape[-1]
        return block


class _Chain(StreamChain):
    """A StreamChain that logs each block pushed."""

    def __init__(self, layers: list[Conv1d], log: list[tuple[str, int]]) -> None:
        super().__init__(layers)
        self._log, self.pushed = log, 0

    def push_pieces(self, block: np.ndarray):  # type: ignore[no-untyped-def]
        self._log.append(("push", self.pushed))
        self.pushed += block.shape[-1]
        return super().push_pieces(block)


def _long_layer() -> Conv1d:
    rng = np.random.default_rng(5)
    return Conv1d.from_weights(rng.standard_normal((2, 1, 9_000)), groups=2, padding="causal")


def _pump(reader, writer, chain, overlap, block_size=None):  # type: ignore[no-untyped-def]
    opts = FilterOptions(overlap=overlap, block_size=block_size)
    return pipeline._pump(reader, writer, chain, opts, None, lambda n: None, "x.wav")


class _HereHelper(Inline):
    """A helper 'thread' that runs each task as it is submitted: the order is fixed."""

    def __init__(self, name: str) -> None:
        super().__init__()


def test_pump_reads_a_frame_ahead_whole(monkeypatch):
    # A frame read in several blocks: every block of the next frame is asked for
    # before the filter needs it, not one block at a time behind it.
    monkeypatch.setattr(pipeline, "Helper", _HereHelper)
    log: list[tuple[str, int]] = []
    x = np.random.default_rng(6).standard_normal((2, 200_000))
    chain = _Chain([_long_layer()], log)
    frame = chain.frame(1)
    assert frame is not None
    size = -(-frame // 3)  # three blocks to a frame
    writer = SimpleNamespace(write=lambda out: None)
    assert _pump(_Reader(x, log), writer, chain, overlap=True, block_size=size) == 200_000
    # The helpers run each read as it is submitted: a frame's reads are asked for at
    # once, and the one after each block taken before that block is filtered.
    assert log[:5] == [("read", i * size) for i in range(4)] + [("push", 0)]
    assert log[5:7] == [("read", 4 * size), ("push", size)]
    # Without helper threads (--threads 1, --jobs) one block is read ahead, as before.
    log.clear()
    chain = _Chain([_long_layer()], log)
    assert _pump(_Reader(x, log), writer, chain, overlap=False, block_size=size) == 200_000
    assert log[:4] == [("read", 0), ("read", size), ("push", 0), ("read", 2 * size)]


def test_pump_does_not_wait_on_a_write_for_a_block_that_completes_nothing():
    # The previous output's write runs while blocks that complete no output are
    # filtered: waiting on it at every block kept the writer and the filter in turn.
    log: list[tuple[str, int]] = []
    x = np.random.default_rng(7).standard_normal((2, 300_000))
    chain = _Chain([_long_layer()], log)
    frame = chain.frame(1)
    assert frame is not None
    size = frame // 8
    writes: list[int] = []
    went_on = threading.Event()

    def write(out: np.ndarray) -> None:
        if not writes:
            # Until the filter has taken 3 blocks past the one that completed this
            # output (the first frame: causal padding, so `frame` samples in), which
            # it never does if it waits on this write.
            for _ in range(500):
                if chain.pushed >= frame + 4 * size:
                    went_on.set()
                    break
                threading.Event().wait(0.01)
        writes.append(out.shape[-1])

    writer = SimpleNamespace(write=write)
    assert _pump(_Reader(x, log), writer, chain, overlap=True, block_size=size) == 300_000
    assert went_on.is_set()
    assert writes and writes[0] == frame


def test_pump_names_the_output_sample_that_overflows_from_the_writing_thread():
    # The overflow check runs with the write, in the writer thread; it still names
    # the first bad output sample of the whole signal, and nothing of it is written.
    layer = Conv1d.from_weights(np.full((1, 1, 1), 3e38, np.float32))
    x = np.ones((1, 40), np.float32)
    x[0, 27] = 2.0  # 6e38: past float32
    chain = StreamChain([layer])
    written: list[int] = []
    writer = SimpleNamespace(write=lambda out: written.append(out.shape[-1]))
    with pytest.raises(DataFileError, match=r"overflows float32: inf at channel 0, sample 27 "):
        _pump(_Reader(x, []), writer, chain, overlap=True, block_size=8)
    assert sum(written) <= 24


def test_pump_tells_an_output_overflow_before_a_later_nan_in_the_input():
    # The overflow of block 1's output is found in the writer thread, after the filter
    # may have read block 2: a NaN there must not hide the earlier problem.
    layer = Conv1d.from_weights(np.full((1, 1, 1), 3e38, np.float32))
    x = np.ones((1, 40), np.float32)
    x[0, 10] = 2.0
    x[0, 17] = np.nan
    reader = _Reader(x, [])
    reader.finite = False
    writer = SimpleNamespace(write=lambda out: None)
    with pytest.raises(DataFileError, match=r"overflows float32: inf at channel 0, sample 10 "):
        _pump(reader, writer, StreamChain([layer]), overlap=True, block_size=8)
