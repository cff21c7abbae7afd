"""The progress line of ``conv1d apply``: drawn from :class:`~conv1d_cli.pipeline.JobProgress`.

One line on stderr, redrawn in place: the whole run's bar, the file(s) being
filtered with how far each has come, and an ETA. It exists only when stderr is a
terminal and ``-q`` is not given (the caller decides); lines printed while it is
shown (``[2/5] out/b.wav``, warnings) go above it through :meth:`Display.message`.

The ETA is measured from the first block on, not from the start: the first block
pays for imports, worker start-up and FFT planning, and an estimate that counted
them said 31 s for a file that took 8.6 s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from conv1d_cli.pipeline import Job, JobProgress

__all__ = ["Display"]

#: Redraws at most this often (seconds), except when files start or end.
_REDRAW: Final = 0.1
_BAR_WIDTH: Final = 20
_CLEAR: Final = "\r\x1b[K"


@dataclass
class _File:
    name: str
    frames: int = 0
    total: int | None = None
    started: bool = False
    finished: bool = False

    def fraction(self) -> float | None:
        if self.finished:
            return 1.0
        if not self.total:
            return None
        return min(1.0, self.frames / self.total)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _count(frames: int) -> str:
    """``1234567`` -> ``1.23M``: a frame count that fits the line."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if frames >= size:
            return f"{frames / size:.3g}{unit}"
    return str(frames)


class Display:
    """The progress line for a run of ``jobs``, fed with :class:`JobProgress` events.

    Parameters
    ----------
    jobs : sequence of Job
    stream : text stream
        A terminal (stderr).
    """

    def __init__(self, jobs: Sequence[Job], stream: TextIO) -> None:
        self.stream = stream
        # Base names: the line has room for a few; "[i/N] path" lines give the rest.
        self.files = [_File("<stdin>" if j.source == "-" else Path(j.source).name) for j in jobs]
        self.shown = False
        self._last = 0.0
        self._first: tuple[float, float] | None = None  # (time, fraction) at the first block

    # -- events
    def update(self, event: JobProgress) -> None:
        """Take one event; redraw when a file starts or ends, else at most every 0.1 s."""
        entry = self.files[event.index]
        changed = not entry.started or (event.finished and not entry.finished)
        entry.started = True
        entry.frames = event.frames
        if event.total is not None:
            entry.total = event.total
        entry.finished = entry.finished or event.finished
        now = time.monotonic()
        if self._first is None and event.frames > 0:
            self._first = (now, self._fraction())
        if changed or now - self._last >= _REDRAW:
            self._draw(now)

    def message(self, text: str) -> None:
        """Print ``text`` on its own line above the progress line."""
        if self.shown:
            self.stream.write(_CLEAR)
        self.stream.write(text + "\n")
        if self.shown:
            self._draw(time.monotonic())
        self.stream.flush()

    def close(self) -> None:
        """Leave the last state on screen and move to the next line."""
        if self.shown:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False

    # -- drawing
    def _fraction(self) -> float:
        """The run's progress: each file counts as one part, filled as it advances."""
        parts = [f.fraction() for f in self.files]
        return sum(p or 0.0 for p in parts) / max(1, len(self.files))

    def _eta(self, now: float, fraction: float) -> str:
        if self._first is None or fraction >= 1.0:
            return ""
        start, first = self._first
        elapsed, gained = now - start, fraction - first
        # Two readings and a little time apart, else the rate is noise.
        if elapsed < 0.5 or gained <= 0:
            return ""
        return f"  ETA {_duration((1.0 - fraction) * elapsed / gained)}"

    def _line(self, now: float) -> str:
        fraction = self._fraction()
        single = len(self.files) == 1
        active = [f for f in self.files if f.started and not f.finished]
        known = all(f.total is not None or f.finished for f in self.files if f.started)
        if single:
            head = "filtering"
        else:
            done = sum(f.finished for f in self.files)
            head = f"files {done}/{len(self.files)}"
        if known or not single:
            filled = int(fraction * _BAR_WIDTH)
            bar = f" [{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {int(fraction * 100):3d}%"
        else:
            bar = ""  # a pipe of unknown length: frames only
        parts = []
        for entry in active if not single else self.files:
            share = entry.fraction()
            if share is not None and not single:
                parts.append(f"{entry.name} {int(share * 100)}%")
            elif entry.total is not None:
                parts.append(f"{entry.name} {_count(entry.frames)}/{_count(entry.total)} frames")
            else:
                parts.append(f"{entry.name} {_count(entry.frames)} frames")
        files = ("  " + " | ".join(parts)) if parts else ""
        return f"{head}{bar}{self._eta(now, fraction)}{files}"

    def _draw(self, now: float) -> None:
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            width = 0
        width = width or 80  # a terminal that does not know its size says 0
        line = self._line(now)[: max(10, width - 1)]  # a wrapped line cannot be redrawn
        self.stream.write(_CLEAR + line)
        self.stream.flush()
        self.shown = True
        self._last = now
