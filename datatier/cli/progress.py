"""Progress on long work: a live line on a terminal, nothing under cron or in pipes."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Counts units (bytes, objects); redraws one stderr line at most 5 times a second.

    Silent when ``stream`` is not a TTY, so cron mail and log files stay clean.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "bytes",
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.done = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._start = time.monotonic()

    def _fmt(self, n: float) -> str:
        return human_bytes(n) if self.unit == "bytes" else f"{int(n)} {self.unit}"

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.enabled and now - self._last >= 0.2:
                self._last = now
                self._draw(now)

    def set(self, done: int, total: int | None = None) -> None:
        with self._lock:
            self.done, self.total = done, total if total is not None else self.total
            if self.enabled:
                self._draw(time.monotonic())

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._start, 1e-6)
        text = f"{self.label}: {self._fmt(self.done)}"
        if self.total:
            text += f" / {self._fmt(self.total)} ({100 * self.done / self.total:.0f}%)"
        if self.unit == "bytes":
            text += f"  {human_bytes(rate)}/s"
        self.stream.write("\r\033[K" + text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
