"""conv1d_cli.io.atomic: atomic publishing, symlinks, devices, FIFOs, directories, umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import drained_fifo

from conv1d_cli.errors import DataFileError, OutputExistsError
from conv1d_cli.io import atomic
from conv1d_cli.io.atomic import atomic_path

REPO = Path(__file__).resolve().parents[1]


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_atomic_path_publishes_on_success(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".txt" and tmp != out
        tmp.write_text("done")
        assert not out.exists()
    assert out.read_text() == "done"
    assert _names(tmp_path) == ["x.txt"]


def test_atomic_path_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("new")
        raise RuntimeError("boom")
    assert out.read_text() == "old"
    assert _names(tmp_path) == ["x.txt"]


def test_atomic_path_writes_through_a_symlink_and_keeps_it(tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to("real.csv")
    with atomic_path(link) as tmp:
        assert tmp.parent == tmp_path
        tmp.write_text("new")
    assert link.is_symlink() and os.readlink(link) == "real.csv"
    assert real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # the real file's mode is kept
    assert _names(tmp_path) == ["link.csv", "real.csv"]


def test_atomic_path_symlink_into_another_directory(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with atomic_path(link) as tmp:
        assert tmp.parent == tmp_path / "data"  # same file system as the real target
        tmp.write_text("new")
    assert link.is_symlink() and real.read_text() == "new"


def test_atomic_path_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.csv"
    link.symlink_to("real.csv")
    with atomic_path(link) as tmp:
        tmp.write_text("new")
    assert link.is_symlink() and (tmp_path / "real.csv").read_text() == "new"


def test_atomic_path_writes_straight_to_a_character_device(tmp_path: Path) -> None:
    with atomic_path("/dev/null") as tmp:
        assert tmp == Path("/dev/null")
        tmp.write_text("ignored")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_atomic_path_writes_into_a_fifo_instead_of_replacing_it(tmp_path: Path) -> None:
    fifo = tmp_path / "out.csv"
    with drained_fifo(fifo) as got:
        with atomic_path(fifo) as tmp:
            assert tmp == fifo
            tmp.write_bytes(b"1,2\n")
    assert got == [b"1,2\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert _names(tmp_path) == ["out.csv"]


@pytest.mark.skipif(sys.platform != "linux", reason="needs /dev/stdout and /proc")
@pytest.mark.parametrize("target", ["/dev/stdout", "LINK"])
def test_atomic_path_to_stdout_device_reaches_the_pipe(tmp_path: Path, target: str) -> None:
    via_link = target == "LINK"
    if via_link:
        (tmp_path / "out.txt").symlink_to("/proc/self/fd/1")
        target = str(tmp_path / "out.txt")
    # the guard keeps a regression from replacing the system's /dev/stdout (root can)
    code = (
        "import os, sys\n"
        "real_replace = os.replace\n"
        "def guard(src, dst):\n"
        "    assert not str(dst).startswith('/dev/'), dst\n"
        "    real_replace(src, dst)\n"
        "os.replace = guard\n"
        "from conv1d_cli.io.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('hello\\n')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, target],
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"hello\n"
    assert _names(tmp_path) == (["out.txt"] if via_link else [])
    if via_link:
        assert (tmp_path / "out.txt").is_symlink()


def test_atomic_path_directory_target_is_refused_before_any_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "emptydir"
    target.mkdir()

    def no_temp(target: Path) -> Path:
        raise AssertionError("a temporary file was created")

    monkeypatch.setattr(atomic, "_create_temp", no_temp)
    with pytest.raises(DataFileError, match=r"emptydir: is a directory"), atomic_path(target):
        pass
    link = tmp_path / "dirlink"
    link.symlink_to("emptydir")
    with pytest.raises(DataFileError, match=r"dirlink: is a directory"), atomic_path(link):
        pass
    assert _names(tmp_path) == ["dirlink", "emptydir"]


def test_atomic_path_never_changes_the_process_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.umask(0) then back is a process-wide window: a --jobs thread creating a file
    # during it would get mode 0666
    def forbidden(mask: int) -> int:
        raise AssertionError("atomic_path changed the process umask")

    current = os.umask(0o022)
    os.umask(current)
    monkeypatch.setattr(os, "umask", forbidden)
    out = tmp_path / "new.txt"
    with atomic_path(out) as tmp:
        tmp.write_text("x")
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~current


def test_umask_read_matches_the_process_with_an_unusual_mask(tmp_path: Path) -> None:
    previous = os.umask(0o027)  # not the usual 022, so a hard-coded value cannot pass
    try:
        assert atomic._read_umask() == 0o027
        with atomic_path(tmp_path / "new.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640


def test_umask_fallback_off_linux_uses_the_import_time_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(atomic, "_proc_umask", lambda: None)
    assert atomic._read_umask() == atomic._UMASK_AT_IMPORT


def test_atomic_path_existing_target_without_overwrite_speaks_python(tmp_path: Path) -> None:
    out = tmp_path / "x.txt"
    out.write_text("old")
    with pytest.raises(OutputExistsError) as info, atomic_path(out, overwrite=False):
        pass
    assert isinstance(info.value, DataFileError)
    assert str(info.value) == f"{out}: already exists (pass overwrite=True)"
    assert "--force" not in str(info.value)
    assert out.read_text() == "old" and _names(tmp_path) == ["x.txt"]
    link = tmp_path / "dangling"
    link.symlink_to("nowhere")
    with pytest.raises(OutputExistsError), atomic_path(link, overwrite=False):
        pass


def test_layer_save_twice_says_overwrite_true(tmp_path: Path) -> None:
    from conv1d_cli.layer import Conv1d

    layer = Conv1d(1, 1, 3)
    layer.save(tmp_path / "layer.npz")
    with pytest.raises(OutputExistsError, match=r"already exists \(pass overwrite=True\)"):
        layer.save(tmp_path / "layer.npz")
    layer.save(tmp_path / "layer.npz", overwrite=True)


@pytest.mark.parametrize(
    "module_name", ["conv1d_cli.io.atomic", "conv1d_cli.io.inputs", "conv1d_cli.io.outputs"]
)
def test_doctests_leave_no_temporary_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module_name: str
) -> None:
    import doctest
    import importlib
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
    assert _names(tmp_path) == []


# -- early writeback -----------------------------------------------------------------------


def test_writeback_hands_each_grown_stretch_to_the_disk_once(tmp_path, monkeypatch):

    calls: list[tuple[int, int, int]] = []
    monkeypatch.setattr(atomic, "_SYNC", [lambda fd, off, n, flags: calls.append((off, n, flags))])
    path = tmp_path / "grow.bin"
    step = atomic.WRITEBACK_BYTES // 2
    with open(path, "wb") as f, atomic.Writeback(path) as writeback:
        for _ in range(5):
            f.write(bytes(step))
            f.flush()
            writeback.poke()
        fd = writeback._fd
    assert calls == [(0, 2 * step, 2), (2 * step, 2 * step, 2)]  # SYNC_FILE_RANGE_WRITE
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with the writeback


def test_writeback_is_a_no_op_without_sync_file_range_or_a_file(tmp_path, monkeypatch):

    monkeypatch.setattr(atomic, "_SYNC", [None])
    writeback = atomic.Writeback(tmp_path / "x.bin")
    writeback.poke()
    assert writeback._fd is None
    calls: list[int] = []
    monkeypatch.setattr(atomic, "_SYNC", [lambda *args: calls.append(1)])
    missing = atomic.Writeback(tmp_path / "missing" / "x.bin")
    missing.poke()  # cannot open: off, the final fsync still writes everything
    missing.poke()
    assert calls == [] and missing._fd is None


def test_writer_pokes_the_writeback_as_the_file_grows(tmp_path, monkeypatch):

    from conv1d_cli.io.outputs import open_writer

    calls: list[int] = []
    monkeypatch.setattr(atomic, "_SYNC", [lambda fd, off, n, flags: calls.append(off + n)])
    out = tmp_path / "out.wav"
    block = np.zeros((2, 1 << 20), np.float32)
    with open_writer(str(out), format="wav", channels=2, sample_rate=48000) as writer:
        for _ in range(6):
            writer.write(block)
    assert len(calls) >= 2 and calls == sorted(calls)
    assert calls[-1] <= out.stat().st_size
    assert sf.info(str(out)).frames == 6 * 2**20
