"""conv1d_cli.io.npyfile: NPY shapes, dtypes, headers and the streaming writer."""

from __future__ import annotations

import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from conv1d_cli.errors import DataFileError
from conv1d_cli.io.formats import SignalInfo
from conv1d_cli.io.inputs import open_reader, read_signal
from conv1d_cli.io.outputs import open_writer, write_signal


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261125)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- NPY


@pytest.mark.parametrize(
    ("shape", "batch", "channels"), [((2, 50), None, 2), ((3, 2, 50), 3, 2), ((50,), None, 1)]
)
def test_npy_layouts(tmp_path: Path, rng: np.random.Generator, shape, batch, channels) -> None:
    x = rng.standard_normal(shape)
    np.save(tmp_path / "x.npy", x)
    sig = read_signal(tmp_path / "x.npy")
    assert sig.info == SignalInfo(str(tmp_path / "x.npy"), "npy", None, None, channels, 50, batch)
    np.testing.assert_array_equal(sig.data, x if x.ndim > 1 else x[None])


def test_npy_int_and_float32_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "i.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    np.save(tmp_path / "f.npy", np.ones((1, 3), np.float32) / 3)
    assert read_signal(tmp_path / "i.npy").data.tolist() == [[0, 1, 2], [3, 4, 5]]
    f = read_signal(tmp_path / "f.npy", dtype="float32").data
    assert f.dtype == np.float32 and f[0, 0] == np.float32(1) / 3


def test_npy_reader_is_memory_mapped(tmp_path: Path) -> None:
    np.save(tmp_path / "big.npy", np.ones((2, 1_000_000)))  # 16 MB on disk
    tracemalloc.start()
    try:
        with open_reader(tmp_path / "big.npy") as r:
            assert r.read(1000).shape == (2, 1000)
            assert r.tail(10).shape == (2, 10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "Python objects|object"),
        (lambda p: np.save(p, np.ones((2, 3), complex)), "complex"),
        (lambda p: np.save(p, np.ones((1, 1, 1, 3))), r"shape \(1, 1, 1, 3\)"),
        (lambda p: np.save(p, np.ones((2, 0))), "no samples"),
        (lambda p: np.save(p, np.float64(3.0)), r"shape \(\)"),
        (lambda p: p.write_bytes(b"not an npy file at all"), "not a valid NPY"),
        (lambda p: p.write_bytes(pickle.dumps([1, 2])), "not a valid NPY"),
        (
            lambda p: (
                np.savez(p.with_suffix(".npz"), a=np.ones(3)) or p.with_suffix(".npz").rename(p)
            ),
            "not a valid NPY",
        ),
    ],
)
def test_npy_bad_files(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.npy"
    make(path)
    with pytest.raises(DataFileError, match=message):
        read_signal(path)


def test_npy_truncated(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.ones((2, 100)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-50])
    with pytest.raises(DataFileError, match="t.npy: not a valid NPY"):
        read_signal(tmp_path / "t.npy")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(2, 37), (3, 2, 37)])
def test_npy_streaming_writer(tmp_path: Path, rng: np.random.Generator, shape, dtype) -> None:
    x = rng.standard_normal(shape)
    batch = shape[0] if len(shape) == 3 else None
    with open_writer(tmp_path / "o.npy", format=None, channels=2, batch=batch, dtype=dtype) as w:
        for start in range(0, 37, 10):
            w.write(x[..., start : start + 10])
    y = np.load(tmp_path / "o.npy", allow_pickle=False)
    assert y.shape == shape and y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, x.astype(dtype))
    assert _leftovers(tmp_path) == ["o.npy"]
    with open_reader(tmp_path / "o.npy") as r:  # and our own mmap reader takes it back
        np.testing.assert_array_equal(r.read(100), x.astype(dtype))


def test_npy_writer_with_no_blocks_gives_empty_array(tmp_path: Path) -> None:
    with open_writer(tmp_path / "e.npy", format=None, channels=3):
        pass
    assert np.load(tmp_path / "e.npy").shape == (3, 0)


def test_npy_write_signal_is_c_ordered_and_keeps_float32(tmp_path: Path) -> None:
    x = np.ones((2, 3, 4), np.float32)
    assert write_signal(tmp_path / "w.npy", x, format=None) == 0
    y = np.load(tmp_path / "w.npy")
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == (2, 3, 4)
