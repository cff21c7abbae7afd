"""Regression tests for I/O defects: pipes, wide CSV rows, a full $TMPDIR, bounded pipe reads.

Each test failed on the code before its fix. Most run the real CLI in a subprocess,
because the defects live where bytes meet the OS (pipes, FIFOs, /dev/fd, file size limits).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d

ROOT = Path(__file__).resolve().parent.parent
RATE = 8000


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "conv1d_cli", *map(str, args)]


def _identity(path: Path, channels: int) -> Path:
    weight = np.eye(channels)[:, :, None]
    save_layer(Conv1d.from_weights(weight), path, overwrite=True)
    return path


def _assert_one_error_line(stderr: bytes, *parts: str) -> str:
    text = stderr.decode()
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), text
    for part in parts:
        assert part in lines[0], text
    return lines[0]


# -- item 2: a pipe's container is told from its bytes, not from --input-format -----------

ROUTES = ("stdin", "fifo", "dev-fd")


@contextlib.contextmanager
def _piped(route: str, source: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """Yield (input argument, Popen keywords) that deliver ``source`` through ``route``.

    ``cat`` writes the bytes, so conv1d sees a real pipe (or FIFO), never a file.
    """
    if route == "fifo":
        fifo = tmp_path / "in.fifo"
        os.mkfifo(fifo)
        # the shell opens the FIFO for writing: it blocks until conv1d opens it to read
        cat = subprocess.Popen(["sh", "-c", 'exec cat "$1" > "$2"', "sh", source, fifo])
        try:
            yield str(fifo), {}
        finally:
            with contextlib.suppress(OSError):  # unblock a writer nobody opened
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            cat.wait(10)
        return
    with open(source, "rb") as src:
        cat = subprocess.Popen(["cat"], stdin=src, stdout=subprocess.PIPE)
        assert cat.stdout is not None
        try:
            if route == "stdin":
                yield "-", {"stdin": cat.stdout}
            else:
                fd = cat.stdout.fileno()
                yield f"/dev/fd/{fd}", {"pass_fds": (fd,), "stdin": subprocess.DEVNULL}
        finally:
            cat.stdout.close()
            cat.wait(10)


def _apply_via(route: str, source: Path, tmp_path: Path, layer: Path, out: Path, *extra: str):
    with _piped(route, source, tmp_path) as (arg, kw):
        return subprocess.run(
            _cmd("apply", "-w", layer, arg, "--input-format", "wav", "-o", out, *extra),
            capture_output="stdin" not in kw,
            stdout=subprocess.PIPE if "stdin" in kw else None,
            stderr=subprocess.PIPE if "stdin" in kw else None,
            env=_env(),
            timeout=60,
            **kw,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("container", ["RF64", "FLAC", "CAF"])
def test_pipe_refuses_container_that_cannot_stream_whatever_the_declared_format(
    tmp_path: Path, route: str, container: str
) -> None:
    # an RF64 file is usually named .wav: --input-format wav must not let it through
    # (libsndfile drops its first frame on a pipe: 9 of 10 frames, channels shifted)
    x = np.arange(20.0).reshape(10, 2) / 64
    src = tmp_path / "rec.wav"
    subtype = "DOUBLE" if container != "FLAC" else "PCM_16"
    sf.write(src, x, RATE, format=container, subtype=subtype)
    out = tmp_path / "out.wav"
    proc = _apply_via(route, src, tmp_path, _identity(tmp_path / "id.npz", 2), out)
    assert proc.returncode == 1
    line = _assert_one_error_line(proc.stderr, f"{container} cannot be read from a pipe")
    assert f"the data is {container}, not WAV" in line and "save it to a file first" in line
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("container", "subtype", "endian"),
    [
        ("WAV", "DOUBLE", "FILE"),
        ("WAV", "PCM_16", "BIG"),  # RIFX
        ("WAVEX", "FLOAT", "FILE"),
        ("W64", "PCM_24", "FILE"),
        ("AU", "PCM_16", "LITTLE"),  # "dns."
        ("AIFF", "FLOAT", "FILE"),  # AIFC
    ],
)
def test_pipe_streams_readable_containers_exactly(
    tmp_path: Path, route: str, container: str, subtype: str, endian: str
) -> None:
    # the sniffed bytes are replayed to libsndfile: not one byte may go missing
    rng = np.random.default_rng(2)
    x = np.round(rng.uniform(-0.9, 0.9, (1000, 2)) * 256) / 256
    src = tmp_path / "in.bin"
    sf.write(src, x, RATE, format=container, subtype=subtype, endian=endian)
    expected, _ = sf.read(src, always_2d=True)
    out = tmp_path / "out.wav"
    extra = ("--subtype", "DOUBLE")
    proc = _apply_via(route, src, tmp_path, _identity(tmp_path / "id.npz", 2), out, *extra)
    assert proc.returncode == 0, proc.stderr
    got, rate = sf.read(out, always_2d=True)
    assert rate == RATE
    np.testing.assert_array_equal(got, expected)


def test_pipe_refuses_au_subtypes_libsndfile_reads_as_empty(tmp_path: Path) -> None:
    src = tmp_path / "x.au"
    sf.write(src, np.linspace(-0.5, 0.5, 200), RATE, format="AU", subtype="G721_32")
    proc = _apply_via("stdin", src, tmp_path, _identity(tmp_path / "id.npz", 1), tmp_path / "o.wav")
    assert proc.returncode == 1
    _assert_one_error_line(proc.stderr, "AU with G721_32 samples cannot be read from a pipe")
    assert not (tmp_path / "o.wav").exists()


def test_pipe_refuses_bytes_that_are_no_streamable_audio(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("0.5,1\n0.25,2\n")
    proc = _apply_via("stdin", src, tmp_path, _identity(tmp_path / "id.npz", 2), tmp_path / "o.wav")
    assert proc.returncode == 1
    _assert_one_error_line(
        proc.stderr, "<stdin>: expected WAV audio on the pipe", "b'0.5,1\\n0.25,2'"
    )


# -- item 7: $TMPDIR full (here: a file size limit) while spooling -o - --------------------


def _limit_file_size() -> None:
    import resource

    # 1 MiB for every file this process writes: the stdout spool hits it, SIGXFSZ is
    # ignored by Python, so write() fails with EFBIG like on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


@pytest.mark.parametrize("fmt", ["wav", "flac", "csv", "npy"])
def test_stdout_spool_that_cannot_grow_gives_one_error_line(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(7)
    src = tmp_path / "big.wav"
    sf.write(src, rng.uniform(-0.5, 0.5, (300_000, 2)), RATE, subtype="FLOAT")  # 2.4 MB
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    layer = _identity(tmp_path / "id.npz", 2)
    proc = subprocess.run(
        _cmd("apply", "-w", layer, src, "-o", "-", "--output-format", fmt),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_env(TMPDIR=str(spool_dir)),
        preexec_fn=_limit_file_size,
        timeout=120,
    )
    assert proc.returncode == 1
    _assert_one_error_line(
        proc.stderr, "<stdout>: cannot write: ", f"spooling the output in {spool_dir}"
    )
    assert list(spool_dir.iterdir()) == []


def test_file_output_over_the_size_limit_matches_stdout_behaviour(tmp_path: Path) -> None:
    src = tmp_path / "big.wav"
    sf.write(src, np.zeros((300_000, 2)), RATE, subtype="FLOAT")
    layer = _identity(tmp_path / "id.npz", 2)
    proc = subprocess.run(
        _cmd("apply", "-w", layer, src, "-o", tmp_path / "out.wav"),
        stderr=subprocess.PIPE,
        env=_env(),
        preexec_fn=_limit_file_size,
        timeout=120,
    )
    assert proc.returncode == 1
    _assert_one_error_line(proc.stderr, "out.wav: cannot write: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.wav", "id.npz"]


# -- item 5: CSV rows wider than the csv module's 128 KiB field limit ---------------------

WIDE = 20_000  # columns, i.e. channels: a tab-separated row of about 500 KB


def _wide_tsv(path: Path) -> np.ndarray:
    x = np.random.default_rng(5).random((2, WIDE))  # 2 rows (time), 20000 columns
    np.savetxt(path, x, delimiter="\t")
    return x


def _depthwise_identity(path: Path, channels: int) -> Path:
    weight = np.ones((channels, 1, 1))
    save_layer(Conv1d.from_weights(weight, groups=channels), path, overwrite=True)
    return path


def test_wide_csv_rows_are_read_by_inspect_shape_and_apply(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from conv1d_cli.cli import cli

    src = tmp_path / "w.tsv"
    x = _wide_tsv(src)
    layer = _depthwise_identity(tmp_path / "id.npz", WIDE)
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect", str(src)])
    assert result.exit_code == 0, result.output
    assert "channels     20000" in result.stdout
    result = runner.invoke(cli, ["shape", "-w", str(layer), str(src)])
    assert result.exit_code == 0, result.output
    assert "(20000, 2)" in result.stdout
    out = tmp_path / "out.tsv"
    result = runner.invoke(cli, ["apply", "-w", str(layer), str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.loadtxt(out, delimiter="\t", ndmin=2), x)


def test_csv_line_over_the_limit_is_refused_naming_file_line_and_limit(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from conv1d_cli.cli import cli

    src = tmp_path / "junk.csv"
    with open(src, "w") as fh:
        fh.write("a,b\n1,2\n")
        fh.write("7" * (17 << 20) + "\n")  # one 17 MiB "number": no CSV row is that long
    result = CliRunner().invoke(cli, ["inspect", str(src)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {src}: line 3 is longer than 16 MiB, the limit for one CSV row "
        f"(about 600,000 columns); is it a CSV file?\n"
    )


def test_quoted_csv_field_over_the_csv_module_limit_is_a_clean_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from conv1d_cli.cli import cli

    src = tmp_path / "q.csv"
    src.write_text('a,b\n1,2\n"' + "x" * 200_000 + '",3\n')
    result = CliRunner().invoke(cli, ["inspect", str(src)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {src}: line 3") and "Traceback" not in result.output


def test_keep_going_batch_survives_wide_and_overlong_csv_rows(tmp_path: Path) -> None:
    # a real process with two jobs: the bad files fail one by one, the good ones are written
    good = np.arange(20.0).reshape(10, 2)
    for name in ("good1.csv", "good2.csv"):
        np.savetxt(tmp_path / name, good, delimiter=",")
    _wide_tsv(tmp_path / "wide.tsv")  # 20000 channels for a 2-channel layer
    with open(tmp_path / "long.csv", "w") as fh:
        fh.write("1," * (9 << 20) + "1\n")  # 18 MiB line
    layer = _identity(tmp_path / "id.npz", 2)
    out = tmp_path / "out"
    inputs = [tmp_path / n for n in ("good1.csv", "wide.tsv", "long.csv", "good2.csv")]
    proc = subprocess.run(
        _cmd("apply", "-w", layer, *inputs, "-d", out, "--jobs", 2, "--keep-going", "-q"),
        capture_output=True,
        env=_env(),
        timeout=120,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "_csv.Error" not in err
    assert "wide.tsv" in err and "long.csv: line 1 is longer than 16 MiB" in err
    assert "2 of 4 inputs" in err
    assert sorted(p.name for p in out.iterdir()) == ["good1.csv", "good2.csv"]
    for name in ("good1.csv", "good2.csv"):
        np.testing.assert_array_equal(np.loadtxt(out / name, delimiter=","), good)


# -- item 8: pipe inputs are read with a bound; an NPY header is checked first ------------


def _npy_header_only(shape: tuple[int, ...], descr: str = "<f8", version: int = 1) -> bytes:
    import io

    header = {"descr": descr, "fortran_order": False, "shape": shape}
    buf = io.BytesIO()
    if version == 1:
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def _apply_stdin(tmp_path: Path, data: bytes, fmt: str, **env: str):
    layer = _identity(tmp_path / "id.npz", 2)
    return subprocess.run(
        _cmd("apply", "-w", layer, "-", "--input-format", fmt, "-o", tmp_path / f"o.{fmt}"),
        input=data,
        capture_output=True,
        env=_env(**env),
        timeout=120,
    )


def test_npy_header_declaring_a_huge_array_is_refused_before_allocating(tmp_path: Path) -> None:
    data = _npy_header_only((2, 10**12))
    proc = _apply_stdin(tmp_path, data, "npy")
    assert proc.returncode == 1
    _assert_one_error_line(
        proc.stderr,
        "<stdin>: the NPY header declares shape (2, 1000000000000) of float64 "
        "(16000000000000 bytes), more than the 1 GiB a pipe input may hold in memory",
        "CONV1D_PIPE_LIMIT=4G",
    )
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_npy_header_only((2, 10), descr="|O"), "NPY holds object values"),
        (_npy_header_only((2, 3, 4, 5)), "expected (L,), (C, L) or (N, C, L)"),
        (_npy_header_only((2, 10)) + b"\0" * 72, "declares shape (2, 10) of float64 (160 bytes)"),
        (b"\x93NUMPY\x02\x00\xff\xff\xff\xff", "its header is 4294967295 bytes long"),
        (b"\x93NUMPY\x03\x00", "unsupported NPY version (3, 0)"),
    ],
)
def test_npy_pipe_header_is_checked_first(tmp_path: Path, data: bytes, message: str) -> None:
    proc = _apply_stdin(tmp_path, data, "npy")
    assert proc.returncode == 1
    _assert_one_error_line(proc.stderr, "<stdin>: ", message)


def test_dev_zero_as_npy_fails_on_the_magic_at_once(tmp_path: Path) -> None:
    layer = _identity(tmp_path / "id.npz", 2)
    proc = subprocess.run(
        _cmd("apply", "-w", layer, "/dev/zero", "--input-format", "npy", "-o", tmp_path / "o.npy"),
        capture_output=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 1
    _assert_one_error_line(proc.stderr, "/dev/zero: not a valid NPY file (the magic string")


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_endless_pipe_stops_at_the_limit_with_a_clear_error(tmp_path: Path, fmt: str) -> None:
    layer = _identity(tmp_path / "id.npz", 2)
    if fmt == "csv":
        producer = subprocess.Popen(["yes", "1,2"], stdout=subprocess.PIPE)
    else:  # a valid header for more data than the limit, then zeros for ever
        header = tmp_path / "header.npy"
        header.write_bytes(_npy_header_only((2, 10**12)))
        producer = subprocess.Popen(["cat", header, "/dev/zero"], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run(
            _cmd("apply", "-w", layer, "-", "--input-format", fmt, "-o", tmp_path / "o"),
            stdin=producer.stdout,
            capture_output=True,
            env=_env(CONV1D_PIPE_LIMIT="2M"),
            timeout=120,
        )
    finally:
        assert producer.stdout is not None
        producer.stdout.close()
        producer.kill()
        producer.wait()
    assert proc.returncode == 1
    _assert_one_error_line(
        proc.stderr, "<stdin>: ", "more than the 2 MiB a pipe input may hold in memory"
    )


def test_pipe_limit_can_be_raised_and_must_be_a_size(tmp_path: Path) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.arange(20.0).reshape(2, 10))
    proc = _apply_stdin(tmp_path, buf.getvalue(), "npy", CONV1D_PIPE_LIMIT="100")
    assert proc.returncode == 1
    _assert_one_error_line(proc.stderr, "more than the 100 bytes a pipe input may hold")
    proc = _apply_stdin(tmp_path, buf.getvalue(), "npy", CONV1D_PIPE_LIMIT="1K")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), np.arange(20.0).reshape(2, 10))
    proc = _apply_stdin(tmp_path, buf.getvalue(), "npy", CONV1D_PIPE_LIMIT="lots")
    assert proc.returncode == 2
    assert "CONV1D_PIPE_LIMIT='lots': expected a size in bytes such as 500M or 4G" in (
        proc.stderr.decode()
    )
