"""conv1d_cli.io.outputs: atomic output and write failures (a full disk)."""

from __future__ import annotations

import errno
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import soundfile as sf

from conv1d_cli.errors import ConfigError, DataFileError, ShapeError
from conv1d_cli.io.formats import Signal
from conv1d_cli.io.inputs import read_signal
from conv1d_cli.io.outputs import open_writer, write_signal

REPO = Path(__file__).resolve().parents[1]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- atomic output


@pytest.mark.parametrize("fmt", ["wav", "flac", "csv", "npy"])
def test_writer_exception_mid_write_leaves_nothing(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"out.{fmt}"
    with pytest.raises(KeyboardInterrupt):
        with open_writer(target, format=None, channels=1, sample_rate=8000) as w:
            w.write(np.zeros((1, 1000)))
            assert len(_leftovers(tmp_path)) == 1  # the temporary sibling, not the target
            assert not target.exists()
            raise KeyboardInterrupt
    assert _leftovers(tmp_path) == []


def test_writer_shape_error_aborts(tmp_path: Path) -> None:
    with pytest.raises(ShapeError, match=r"block of shape \(3, 10\).*C = 2"):
        with open_writer(tmp_path / "o.wav", format=None, channels=2, sample_rate=8000) as w:
            w.write(np.zeros((3, 10)))
    assert _leftovers(tmp_path) == []


def test_writer_abort_and_close_are_idempotent(tmp_path: Path) -> None:
    w = open_writer(tmp_path / "o.csv", format=None, channels=1)
    w.write(np.ones((1, 2)))
    w.abort()
    w.abort()
    w.close()
    assert _leftovers(tmp_path) == []
    w2 = open_writer(tmp_path / "o.csv", format=None, channels=1)
    w2.close()
    w2.close()
    assert _leftovers(tmp_path) == ["o.csv"]
    with pytest.raises(ValueError, match="closed"):
        w2.write(np.ones((1, 2)))


def test_writer_output_directory_missing(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="output directory .* does not exist"):
        open_writer(tmp_path / "nope" / "o.wav", format=None, channels=1, sample_rate=8000)


def test_writer_output_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(DataFileError, match="is a directory"):
        write_signal(tmp_path / "d.wav", np.zeros((1, 3)), format=None, sample_rate=8000)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_writer_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(DataFileError, match="cannot write"):
            write_signal(ro / "o.csv", np.zeros((1, 3)), format=None)
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "wav", "channels": 1}, "needs a sample rate"),
        ({"format": "wav", "channels": 1, "sample_rate": 44100.5}, "whole number of Hz"),
        (
            {"format": "flac", "channels": 1, "sample_rate": 8000, "subtype": "FLOAT"},
            "subtype 'FLOAT' is not valid for FLAC",
        ),
        ({"format": "wav", "channels": 1, "sample_rate": 8000, "on_clip": "wrap"}, "on_clip"),
        ({"format": "wav", "channels": 0, "sample_rate": 8000}, "channels must be"),
        ({"format": "wav", "channels": 2, "sample_rate": 8000, "batch": 3}, "only be written"),
        ({"format": "npy", "channels": 2, "dtype": "int8"}, "dtype must be"),
    ],
)
def test_writer_bad_options(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_writer(tmp_path / "o.x", **kwargs)
    assert _leftovers(tmp_path) == []


def test_write_signal_accepts_mono_vector_and_signal(tmp_path: Path) -> None:
    write_signal(tmp_path / "m.csv", np.array([1.0, 2.0]), format=None)
    sig = read_signal(tmp_path / "m.csv")
    assert sig.data.shape == (1, 2)
    write_signal(tmp_path / "n.npy", Signal(sig.data, sig.info), format=None)
    assert np.load(tmp_path / "n.npy").tolist() == [[1.0, 2.0]]
    with pytest.raises(ShapeError, match="cannot write an array of shape"):
        write_signal(tmp_path / "x.npy", np.zeros((1, 1, 1, 1)), format=None)


# ---- a full disk: one clear error, no traceback, no temp file left


class _FullDisk(io.RawIOBase):
    """Wraps a writer's file; every write after the first ``allow`` bytes fails (ENOSPC)."""

    def __init__(self, inner: IO[bytes], allow: int = 0) -> None:
        self.inner = inner
        self.allow = allow

    def write(self, data: Any) -> int:
        if len(data) > self.allow:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.allow -= len(data)
        return int(self.inner.write(data))

    def seek(self, *args: Any) -> int:
        return int(self.inner.seek(*args))

    def tell(self) -> int:
        return int(self.inner.tell())

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
        super().close()


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_writer_full_disk_while_writing(tmp_path: Path, fmt: str) -> None:
    writer = open_writer(tmp_path / f"o.{fmt}", format=None, channels=2)
    writer._fh = _FullDisk(writer._fh)  # type: ignore[attr-defined]
    with pytest.raises(DataFileError) as info:
        writer.write(np.ones((2, 10)))
    assert str(info.value) == f"{tmp_path / f'o.{fmt}'}: cannot write: No space left on device"
    assert isinstance(info.value.__cause__, OSError)
    assert _leftovers(tmp_path) == []


def test_writer_full_disk_while_closing_npy(tmp_path: Path) -> None:
    # the NPY header is rewritten at close: the failure comes from close()
    writer = open_writer(tmp_path / "o.npy", format=None, channels=2)
    writer.write(np.ones((2, 10)))
    writer._fh = _FullDisk(writer._fh)  # type: ignore[attr-defined]
    with pytest.raises(DataFileError, match=r"o\.npy: cannot write: No space left on device"):
        writer.close()
    assert _leftovers(tmp_path) == []


def test_writer_full_disk_while_publishing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DataFileError, match=r"o\.csv: cannot write: No space left on device"):
        write_signal(tmp_path / "o.csv", np.ones((1, 3)), format=None)
    assert _leftovers(tmp_path) == []


def test_writer_libsndfile_error_while_writing_wav(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = open_writer(tmp_path / "o.wav", format=None, channels=1, sample_rate=8000)

    def broken(data: Any) -> None:
        raise sf.LibsndfileError(1, "Error writing: ")  # libsndfile's system error code

    monkeypatch.setattr(writer._sf, "write", broken)  # type: ignore[attr-defined]
    with pytest.raises(DataFileError, match=r"o\.wav: cannot write: "):
        writer.write(np.zeros((1, 5)))
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_writer_to_dev_full_path() -> None:
    with pytest.raises(DataFileError, match=r"^/dev/full: cannot write: No space left on device$"):
        write_signal("/dev/full", np.zeros((1, 10)), format="csv")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_copy_to_dev_full(tmp_path: Path) -> None:
    code = (
        "import numpy as np\n"
        "from conv1d_cli.errors import DataFileError\n"
        "from conv1d_cli.io.outputs import write_signal\n"
        "try:\n"
        "    write_signal('-', np.zeros((1, 10)), format='csv')\n"
        "except DataFileError as e:\n"
        "    raise SystemExit(f'caught: {e}')\n"
    )
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE, cwd=REPO, timeout=60
        )
    assert result.stderr.decode() == "caught: <stdout>: cannot write: No space left on device\n"


@pytest.mark.skipif(sys.platform != "linux", reason="needs RLIMIT_FSIZE and SIGXFSZ")
@pytest.mark.parametrize("fmt", ["csv", "npy", "wav", "flac"])
def test_writer_real_write_failure_via_file_size_limit(tmp_path: Path, fmt: str) -> None:
    # a real failing write(2) (EFBIG past RLIMIT_FSIZE) through every encoder, libsndfile too
    code = (
        "import resource, signal, sys, numpy as np\n"
        "from conv1d_cli.errors import DataFileError\n"
        "from conv1d_cli.io.outputs import write_signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
        "x = np.random.default_rng(1).uniform(-0.9, 0.9, (2, 100000))\n"
        "try:\n"
        "    write_signal(sys.argv[1], x, format=None, sample_rate=8000)\n"
        "except DataFileError as e:\n"
        "    raise SystemExit(f'caught: {e}')\n"
    )
    target = tmp_path / f"big.{fmt}"
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"caught: {target}: cannot write: "), result.stderr
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0}, "channels must be positive, got 0"),
        ({"channels": True}, "channels must be an integer, got True"),
        ({"channels": 2.0}, "channels must be an integer, got 2.0"),
        ({"channels": 2, "batch": 0}, "batch must be positive, got 0"),
        ({"channels": 2, "batch": "3"}, "batch must be an integer, got '3'"),
    ],
)
def test_writer_counts_use_the_shared_integer_check(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    # same wording as every other count in the library (shapes.check_int)
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        open_writer(tmp_path / "o.npy", format=None, **kwargs)
    with open_writer(tmp_path / "o.npy", format=None, channels=np.int64(2), batch=np.int32(1)):
        pass
    assert _leftovers(tmp_path) == ["o.npy"]


@pytest.mark.parametrize(
    ("rate", "match"),
    [(1e12, "at most 2147483647"), (44100.5, "whole number"), (0, "positive"), (-1, "positive")],
)
def test_audio_writer_sample_rate_checked_before_soundfile(tmp_path: Path, rate, match) -> None:
    with pytest.raises(ConfigError, match=match):
        write_signal(tmp_path / "x.wav", np.zeros((1, 4)), format=None, sample_rate=rate)
    assert list(tmp_path.iterdir()) == []
