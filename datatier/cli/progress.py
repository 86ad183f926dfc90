"""Progress on long work: a live line on a terminal, nothing under cron or in pipes.

The line shows what is done, the total and percentage when the total is known, the rate,
and then an ETA (from the average rate so far). It is drawn through the log handler's
:class:`~datatier.log.TerminalLine`, so a log line written meanwhile appears on a line of
its own above it, never glued to it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from datatier import log


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def human_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counts units (bytes, objects); redraws one stderr line at most 5 times a second.

    Silent when ``stream`` is not a TTY, so cron mail and log files stay clean. The ETA
    appears once there is a total and a second of history to take a rate from.
    """

    MIN_ETA_HISTORY = 1.0

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "bytes",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._last = 0.0
        self._start = self._clock()
        self._line = log.terminal_line()

    def _fmt(self, n: float) -> str:
        return human_bytes(n) if self.unit == "bytes" else f"{int(n)} {self.unit}"

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = self._clock()
            if self.enabled and now - self._last >= 0.2:
                self._last = now
                self._draw(now)

    def set(self, done: int, total: int | None = None) -> None:
        with self._lock:
            self.done, self.total = done, total if total is not None else self.total
            if self.enabled:
                self._draw(self._clock())

    def text(self, now: float) -> str:
        """The line as it would be drawn at ``now``."""
        elapsed = max(now - self._start, 1e-6)
        rate = self.done / elapsed
        text = f"{self.label}: {self._fmt(self.done)}"
        if self.total:
            text += f" / {self._fmt(self.total)} ({100 * self.done / self.total:.0f}%)"
        text += f"  {human_bytes(rate)}/s" if self.unit == "bytes" else f"  {rate:.0f}/s"
        if self.total and self.done < self.total and rate > 0:
            if elapsed >= self.MIN_ETA_HISTORY:
                text += f"  ETA {human_seconds((self.total - self.done) / rate)}"
        elif self.total and self.done >= self.total:
            text += f"  done in {human_seconds(elapsed)}"
        return text

    def _draw(self, now: float) -> None:
        self._line.show(self.stream, self.text(now))

    def close(self) -> None:
        if self.enabled:
            with self._lock:
                self._draw(self._clock())
                self._line.finish()
