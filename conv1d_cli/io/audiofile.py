"""Audio files through soundfile: the reader, the writers, and audio on pipes.

This is the only module that knows soundfile's ``(frames, channels)`` layout; what
it hands out or takes is ``(C, L)``.

- Reading: headerless RAW cannot be read (ConfigError). A file whose data chunk is
  cut short yields the frames that are there (libsndfile's behaviour); a cut header
  or a corrupt FLAC frame raises DataFileError. Zero-frame files raise DataFileError.
- stdin and other pipes: WAV, WAVEX, W64, AU, AIFF and OGG stream from a pipe (frame
  count unknown, ``info.frames is None``, not seekable); FLAC, RF64, CAF and the
  other audio formats cannot be read from a pipe and raise DataFileError. The
  container is told from the first bytes (:func:`conv1d_cli.io.sniff.sniff_container`),
  not from the format given: an RF64 recording named ``.wav`` is refused.
- Integer PCM output is rounded (to nearest, exact ties upwards as SoX does; not
  NumPy's ties-to-even) and clipped here, then handed to soundfile as int16/int32 so
  libsndfile's ``floor`` never applies; a value that rounds past the largest code
  (``1.0`` in PCM_16) counts as clipped; NaN is written as 0. Other non-float
  subtypes (ULAW, VORBIS, ...) are clipped to [-1, 1] here and quantised by
  libsndfile. FLOAT/DOUBLE are written as they are.
- WAV, AU and RAW in PCM_16/24/32, FLOAT or DOUBLE go to a pipe block by block
  (:class:`_LiveAudioWriter`). Their headers are written here, never by libsndfile
  (which writes corrupt WAV on a pipe): with the true sizes when the output length
  is known in advance (as SoX does), else the unknown-length sizes FFmpeg writes
  (``0xFFFFFFFF``).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import IO, Any, ClassVar, Final

import numpy as np
import soundfile as sf

from conv1d_cli.errors import ConfigError, Conv1dError, DataFileError, shown_path
from conv1d_cli.io.base import SignalReader, SignalWriter, _check_input_path, _sf_message
from conv1d_cli.io.formats import (
    _FLOAT_SUBTYPES,
    _FORMAT_FAMILY,
    _INT_PCM,
    _LIVE_SUBTYPES,
    SignalInfo,
    output_subtype,
)
from conv1d_cli.io.pipes import (
    _is_seekable,
    _open_stream,
    _read_bounded,
    _read_head,
    _Relay,
    is_stream,
)
from conv1d_cli.io.sniff import SNIFF_BYTES, sniff_container
from conv1d_cli.shapes import check_sample_rate

__all__ = ["ClipError"]

# audio containers libsndfile reads correctly from a pipe (checked with libsndfile 1.2.2
# for every subtype: FLAC loses sync, CAF reads 0 frames, RF64 drops frames, SDS hangs)
_PIPE_READABLE: Final = frozenset({"wav", "wavex", "w64", "au", "aiff", "ogg"})

# ... except these subtypes, which libsndfile reads as 0 frames from a pipe, silently
_PIPE_UNREADABLE_SUBTYPES: Final = frozenset(
    {("AU", "G721_32"), ("AU", "G723_24"), ("AU", "G723_40")}
)

_PIPE_FORMATS_TEXT: Final = "pipe WAV, AU or AIFF instead"

_ENCODE_CHUNK_SAMPLES: Final = 1 << 16  # PCM encoding: temporaries of 256-512 KiB


class ClipError(Conv1dError):
    """Integer PCM output would clip and ``on_clip="error"`` was asked for (exit 1)."""


def _check_pipe_container(path: str, fmt: str, head: bytes) -> None:
    """Refuse, by what the bytes are, a stream libsndfile cannot decode from a pipe."""
    where = shown_path(path)
    if not head:
        raise DataFileError(f"{where}: input is empty")
    found = sniff_container(head)
    if found in _PIPE_READABLE:
        return
    if found is None or found == "npy":
        looks = " (it is an NPY array)" if found == "npy" else ""
        raise DataFileError(
            f"{where}: expected {fmt.upper()} audio on the pipe, found data starting with "
            f"{head!r}{looks}, which is not WAV, W64, AU, AIFF or OGG (the audio that can be "
            f"read from a pipe); save it to a file first"
        )
    declared = _FORMAT_FAMILY.get(fmt, fmt)
    note = "" if found == declared else f" (the data is {found.upper()}, not {fmt.upper()})"
    raise DataFileError(
        f"{where}: {found.upper()} cannot be read from a pipe{note}; save it to a file "
        f"first (or {_PIPE_FORMATS_TEXT})"
    )


def _open_soundfile(path: str, fmt: str) -> tuple[sf.SoundFile, bool, IO[bytes] | _Relay | None]:
    """Open an audio source; return (SoundFile, seekable, what the caller must close)."""
    if fmt == "raw":
        raise ConfigError(
            f"{shown_path(path)}: headerless RAW input is not supported (it has no sample rate, "
            f"channel count or sample type); convert it to WAV first"
        )
    source: Any
    owned: IO[bytes] | _Relay | None = None
    relay: _Relay | None = None
    if is_stream(path):
        stream, must_close = _open_stream(path)
        owned = stream if must_close else None
        try:
            if _is_seekable(stream):
                source = stream  # stdin redirected from a file, or an in-memory buffer
            else:
                try:
                    fd = stream.fileno()
                except (AttributeError, OSError, io.UnsupportedOperation):
                    # a non-seekable Python stream without a descriptor: buffer it, and
                    # take the same containers as from any other pipe
                    data = _read_bounded(stream, path)
                    _check_pipe_container(path, fmt, data[:SNIFF_BYTES])
                    source = io.BytesIO(data)
                else:
                    try:
                        head = _read_head(fd, SNIFF_BYTES)
                    except OSError as e:
                        raise DataFileError(f"{shown_path(path)}: cannot read: {e.strerror}") from e
                    _check_pipe_container(path, fmt, head)
                    relay = owned = _Relay(head, fd, owned)
                    source = relay.fd
        except BaseException:
            if owned is not None:
                owned.close()
            raise
    else:
        _check_input_path(path)
        source = path
    try:
        f = sf.SoundFile(source, "r", closefd=False) if isinstance(source, int) else None
        if f is None:
            f = sf.SoundFile(source, "r")
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as e:
        if owned is not None:
            owned.close()
        raise DataFileError(
            f"{shown_path(path)}: not a readable {fmt.upper()} audio file ({_sf_message(e)})"
        ) from e
    if relay is not None and (str(f.format), str(f.subtype)) in _PIPE_UNREADABLE_SUBTYPES:
        f.close()
        relay.close()
        raise DataFileError(
            f"{shown_path(path)}: {f.format} with {f.subtype} samples cannot be read from a pipe "
            f"(libsndfile finds no samples); save it to a file first (or {_PIPE_FORMATS_TEXT})"
        )
    seekable = not isinstance(source, int) and bool(f.seekable())
    return f, seekable, owned


def _audio_info(path: str, f: sf.SoundFile, seekable: bool) -> SignalInfo:
    frames = int(f.frames) if seekable else None
    if frames == 0:
        f.close()
        raise DataFileError(f"{shown_path(path)}: audio file has no samples")
    return SignalInfo(
        path=path,
        format=_FORMAT_FAMILY.get(str(f.format).lower(), str(f.format).lower()),
        subtype=str(f.subtype),
        sample_rate=float(f.samplerate),
        channels=int(f.channels),
        frames=frames,
    )


class _AudioReader(SignalReader):
    def __init__(self, path: str, fmt: str, dtype: np.dtype[Any]) -> None:
        f, seekable, owned = _open_soundfile(path, fmt)
        try:
            info = _audio_info(path, f, seekable)
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        super().__init__(info, dtype, seekable)
        self._f = f
        self._owned = owned
        # Integer PCM is read as its integer codes and scaled here: libsndfile's own
        # float conversion of 16-bit WAV costs three times the integer read, and
        # the result is the same to the bit (code * 2**-15 or 2**-31; PCM_32 in
        # float32 rounds the code to float32 first, as libsndfile does).
        self._codes: np.ndarray | None = None
        pcm = _INT_PCM.get(info.subtype or "")
        self.finite = pcm is not None
        self._code_type = None if pcm is None else pcm[1]
        self._code_scale = 0.0 if pcm is None else 2.0 ** (1 - 8 * np.dtype(pcm[1]).itemsize)

    def _block(self, frames: int) -> np.ndarray:
        try:
            if self._code_type is None:
                data = self._f.read(frames, dtype=self._dtype.name, always_2d=True)
            else:
                if self._codes is None or len(self._codes) < frames:
                    self._codes = np.empty((frames, self.info.channels), self._code_type)
                data = self._f.read(out=self._codes[:frames])
        except (sf.SoundFileError, RuntimeError) as e:
            raise DataFileError(
                f"{shown_path(self.info.path)}: error reading audio ({_sf_message(e)})"
            ) from e
        relay = self._owned if isinstance(self._owned, _Relay) else None
        if relay is not None and relay.error is not None and len(data) < frames:
            # the relay ended the stream because the source failed: not the real end
            raise DataFileError(
                f"{shown_path(self.info.path)}: cannot read: {relay.error.strerror}"
            ) from relay.error
        if self._code_type is None:
            return np.ascontiguousarray(data.T)
        # One pass: convert, scale (exact, a power of two) and transpose to (C, n).
        block = np.empty((self.info.channels, len(data)), self._dtype)
        np.multiply(data.T, self._code_scale, out=block, dtype=self._dtype)
        return block

    def _read(self, frames: int) -> np.ndarray:
        return self._block(frames)

    def _head(self, frames: int) -> np.ndarray:
        pos = self._f.tell()
        self._f.seek(0)
        try:
            return self._block(frames)
        finally:
            self._f.seek(pos)

    def _tail(self, frames: int) -> np.ndarray:
        pos = self._f.tell()
        total = self.info.frames or 0
        self._f.seek(max(0, total - frames))
        try:
            return self._block(frames)
        finally:
            self._f.seek(pos)

    def _close(self) -> None:
        self._f.close()
        if self._owned is not None:
            self._owned.close()


class _AudioWriter(SignalWriter):
    write_errors: ClassVar[tuple[type[Exception], ...]] = (OSError, sf.SoundFileError)

    def __init__(
        self,
        path: str,
        fmt: str,
        channels: int,
        sample_rate: float | None,
        subtype: str | None,
        on_clip: str,
        declared: int | None = None,
    ) -> None:
        upper = fmt.upper()
        if sample_rate is None:
            raise ConfigError(f"{shown_path(path, output=True)}: audio output needs a sample rate")
        try:
            rate = check_sample_rate("sample_rate", sample_rate, integer=True)
        except ConfigError as e:
            raise e.replace(path=path, output=True) from None
        if subtype is None:
            chosen = output_subtype(fmt)
        else:
            chosen = str(subtype).upper()
            if not sf.check_format(upper, chosen):
                valid = ", ".join(sf.available_subtypes(upper))
                raise ConfigError(
                    f"{shown_path(path, output=True)}: subtype {subtype!r} is not valid for "
                    f"{upper}; expected one of {valid}"
                )
        assert chosen is not None
        self.subtype = chosen
        super().__init__(path, fmt, channels, None, on_clip, **self._live_args(fmt, declared))
        self._open_encoder(int(rate))

    def _live_args(self, fmt: str, declared: int | None) -> dict[str, Any]:
        """How :class:`~conv1d_cli.io.base.SignalWriter` opens the target.

        A file writer is never live.
        """
        return {}

    def _open_encoder(self, rate: int) -> None:
        upper, chosen, path, channels = self.format.upper(), self.subtype, self.path, self.channels
        # The stdout spool goes to libsndfile as a descriptor, as a file output goes as a
        # path: through a Python file object (soundfile's virtual I/O) a failed write, e.g.
        # $TMPDIR full, is only printed from a cffi callback and ends in an AssertionError.
        target: str | int = (
            str(self.target) if isinstance(self.target, Path) else self.target.fileno()
        )
        try:
            self._sf = sf.SoundFile(
                target,
                "w",
                samplerate=rate,
                channels=channels,
                format=upper,
                subtype=chosen,
                closefd=False,
            )
        except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as e:
            self.abort()
            raise DataFileError(
                f"{shown_path(path, output=True)}: cannot write {upper} {chosen} with "
                f"{channels} channels at {rate} Hz ({_sf_message(e)})"
            ) from e

    def _clip_report(
        self,
        x: np.ndarray,
        over: np.ndarray,
        codes: tuple[np.ndarray, int, int] | None = None,
        offset: int = 0,
    ) -> None:
        """Count the samples flagged in ``over``; with ``on_clip="error"`` name the first.

        ``x`` holds the block's columns from ``offset``. ``codes`` is ``(rounded,
        lowest, highest)`` for integer PCM: a sample such as 0.99999 lies inside
        [-1, 1) yet rounds past the largest code, so the message gives the code it
        rounds to, not a range the value is inside of.
        """
        count = int(np.count_nonzero(over))
        if not count:
            return
        if self.on_clip == "error":
            t = int(np.argmax(over.any(axis=0)))
            c = int(np.argmax(over[:, t]))
            value = float(x[c, t])  # repr below: the shortest text that is this value
            found = f"is {value!r}, outside the {self.subtype} range [-1, 1]"
            if codes is not None:
                rounded, lowest, highest = codes
                code = float(rounded[c, t])
                if np.isfinite(code):
                    found = (
                        f"is {value!r}, which rounds to {self.subtype} code {int(code)}, "
                        f"outside the codes [{lowest}, {highest}]"
                    )
                else:
                    found = f"is {value!r}, outside the {self.subtype} codes [{lowest}, {highest}]"
            outcome = "the output stops here" if self.live else "no output was written"
            raise ClipError(
                f"{shown_path(self.path, output=True)}: sample {self.frames + offset + t} of "
                f"channel {c} {found} ({{parameter}} error); {outcome}",
                parameter="on_clip",
            )
        self.clipped += count

    def _write(self, arr: np.ndarray) -> None:
        self._sf.write(self._samples(arr))

    def _samples(self, arr: np.ndarray) -> np.ndarray:
        """``(C, n)`` values -> the ``(n, C)`` samples to encode, rounded and clipped.

        The one rounding and clipping rule of every audio output, file or pipe: integer
        PCM as int16/int32 codes (:meth:`_to_int`), FLOAT/DOUBLE as they are, other
        subtypes clipped to [-1, 1] for libsndfile to quantise.
        """
        if self.subtype in _INT_PCM:
            return self._to_int(arr)
        if self.subtype in _FLOAT_SUBTYPES:
            x = arr if arr.dtype.kind == "f" else arr.astype(np.float64)
            return np.ascontiguousarray(x.T)
        x = arr.astype(np.float64, copy=False)
        with np.errstate(invalid="ignore"):
            over = (x > 1.0) | (x < -1.0)
        self._clip_report(x, over)
        return np.ascontiguousarray(np.clip(x, -1.0, 1.0).T)

    def _to_int(self, arr: np.ndarray) -> np.ndarray:
        """Round to the subtype's grid, clip (counting), return (n, C) int16/int32 codes.

        Rounding is to the nearest code, exact ties upwards (``100.5 -> 101``,
        ``-100.5 -> -100``), as SoX does; not NumPy's ties-to-even ``rint``.
        A value that rounds past the largest code counts as clipped.
        """
        bits, int_type, shift = _INT_PCM[self.subtype]
        # float32 holds every code up to 24 bits exactly (the scale is a power of two);
        # PCM_32 needs float64, as 2**31 - 1 is not a float32
        work = np.float32 if arr.dtype == np.float32 and bits <= 24 else np.float64
        scale = float(1 << (bits - 1))
        hi = scale - 1
        channels, frames = arr.shape
        out = np.empty((frames, channels), int_type)
        # A chunk of frames at a time: bounded temporaries, reused from one to the next.
        chunk = max(256, _ENCODE_CHUNK_SAMPLES // max(1, channels))
        buf = np.empty((channels, min(chunk, frames)), work)
        for t0 in range(0, frames, chunk):
            x = arr[:, t0 : t0 + chunk]
            q = buf[:, : x.shape[1]]
            # A float32 near its largest value scales to inf: that is clipped below, like
            # any other overflow, so NumPy's overflow warning would only be noise.
            with np.errstate(over="ignore"):
                np.multiply(x, scale, out=q, dtype=work)
            _round_half_up(q)
            if not (q.max() <= hi and q.min() >= -scale):  # clipping or NaN: slow path
                with np.errstate(invalid="ignore"):
                    over = (q > hi) | (q < -scale)
                self._clip_report(x, over, (q, -int(scale), int(hi)), t0)
                np.clip(q, -scale, hi, out=q)
                q[np.isnan(q)] = 0.0  # NaN has no integer code; the CLI refuses NaN by default
            # Channel by channel: a copy into the interleaved (n, C) codes as one
            # transposed copy runs an inner loop of C elements, four times slower.
            for c in range(channels):
                np.copyto(out[t0 : t0 + q.shape[1], c], q[c], casting="unsafe")
        if shift:
            out <<= shift  # libsndfile takes the top bits of int16/int32 for 8/24-bit files
        return out

    def _finish(self) -> None:
        self._sf.close()

    def _discard(self) -> None:
        self._sf.close()


def _round_half_up(q: np.ndarray) -> None:
    """Round ``q`` in place to integers, exact ties upwards (towards +inf), as SoX does.

    So ``conv1d apply`` and ``sox -D`` (no dither) write the same PCM codes, except
    within about 1e-5 of a tie, where SoX's own float error decides (one code apart).
    ``floor(q + 0.5)`` would be wrong just below a tie (``0.49999997 + 0.5`` rounds up to
    ``1.0`` in float32); ``q - floor(q)`` is exact, so the tie test is too.

    Examples
    --------
    >>> q = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.4, -2.6, np.nan])
    >>> _round_half_up(q)
    >>> q
    array([ 1.,  2.,  3.,  0., -2.,  2., -3., nan])
    """
    whole = np.floor(q)
    with np.errstate(invalid="ignore"):  # inf - inf: the inf stays inf below
        up = (q - whole) >= 0.5
    np.add(whole, up, out=q, casting="unsafe")


#: What a WAV or AU header says when the length is not known: FFmpeg's sizes, which
#: libsndfile (and SoX with --ignore-length) read as "until the data ends".
_UNKNOWN_SIZE: Final = 0xFFFFFFFF

#: KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT without their first two bytes (the format tag).
_WAVEX_GUID_TAIL: Final = bytes.fromhex("000000001000800000aa00389b71")


def _wav_header(channels: int, rate: int, subtype: str, frames: int | None) -> bytes:
    """A WAV header for a pipe: RIFF, ``fmt `` and the ``data`` chunk's header.

    WAVE_FORMAT_EXTENSIBLE for more than two channels or more than 16 bits, as
    Microsoft asks and SoX and FFmpeg write on a pipe (libsndfile's WAV writer keeps
    the plain tag), with speaker positions for mono and stereo only (0 = none
    assigned, rather than guess a layout). The RIFF and data sizes are the true ones
    when ``frames`` is known and fits 32 bits, else ``0xFFFFFFFF``.

    Examples
    --------
    >>> len(_wav_header(2, 8000, "PCM_16", 10)), len(_wav_header(2, 8000, "PCM_24", None))
    (44, 68)
    """
    bits, tag, _ = _LIVE_SUBTYPES[subtype]
    align = channels * bits // 8
    extensible = channels > 2 or bits > 16
    fmt = struct.pack(
        "<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * align, align, bits
    )
    if extensible:
        mask = {1: 0x4, 2: 0x3}.get(channels, 0)
        guid = struct.pack("<H", tag) + _WAVEX_GUID_TAIL
        fmt += struct.pack("<HHI", 22, bits, mask) + guid
    chunks = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
    data = None if frames is None else frames * align
    if data is None or 4 + len(chunks) + data > _UNKNOWN_SIZE - 1:
        riff = data_size = _UNKNOWN_SIZE
    else:
        riff, data_size = len(chunks) + 4 + data, data
    return b"RIFF" + struct.pack("<I", riff) + chunks + struct.pack("<I", data_size)


def _au_header(channels: int, rate: int, subtype: str, frames: int | None) -> bytes:
    """A Sun/NeXT AU header (big-endian); data size ``0xFFFFFFFF`` when not known."""
    bits, _, encoding = _LIVE_SUBTYPES[subtype]
    size = _UNKNOWN_SIZE if frames is None else frames * channels * bits // 8
    if size >= _UNKNOWN_SIZE:
        size = _UNKNOWN_SIZE
    return b".snd" + struct.pack(">IIIII", 24, size, encoding, rate, channels)


class _LiveAudioWriter(_AudioWriter):
    """WAV, AU or RAW straight to a pipe, a block at a time.

    libsndfile cannot write WAV to a pipe (it seeks back to fix the header), so the
    header is written here, once, up front; the samples come out of the file writer's
    own :meth:`_AudioWriter._samples` (same rounding and clipping) and are only laid out
    as bytes here: little-endian (WAV, RAW, as libsndfile writes them), big-endian (AU).
    """

    def _live_args(self, fmt: str, declared: int | None) -> dict[str, Any]:
        # With a header that states the length, a short run must fail at close; RAW
        # has no header, so nothing was promised.
        return {"live": True, "declared": declared if fmt != "raw" else None}

    def _open_encoder(self, rate: int) -> None:
        bits = _LIVE_SUBTYPES[self.subtype][0]
        order = ">" if self.format == "au" else "<"
        # PCM_24 leaves _to_int as the top 3 bytes of an int32: see _write
        kind = "f" if self.subtype in _FLOAT_SUBTYPES else "i"
        self._dtype = np.dtype(f"{order}{kind}{2 if bits == 16 else max(4, bits // 8)}")
        if self.format == "wav":
            self._header = _wav_header(self.channels, rate, self.subtype, self._declared)
        elif self.format == "au":
            self._header = _au_header(self.channels, rate, self.subtype, self._declared)

    def _write(self, arr: np.ndarray) -> None:
        samples = self._samples(arr)
        if self.subtype == "PCM_24":
            # _to_int hands libsndfile the code in the top 24 bits of an int32; on the
            # wire it is 3 bytes: the high three of little-endian, or the first three of
            # big-endian
            wide = np.ascontiguousarray(samples, dtype=self._dtype).view(np.uint8)
            wide = wide.reshape(-1, 4)
            data = (wide[:, :3] if self.format == "au" else wide[:, 1:]).tobytes()
        else:
            data = np.ascontiguousarray(samples, dtype=self._dtype).tobytes()
        assert self._stream is not None
        self._stream.write(data)

    def _finish(self) -> None:
        """Nothing to finish: the header went first, the base class flushes."""

    def _discard(self) -> None:
        """Nothing to take back from a pipe."""
