"""Logging: JSON lines for Logstash, a readable console format for people, secrets redacted.

Log with :func:`get_logger` and name an *event* plus structured fields::

    log = get_logger(__name__)
    log.info("backup.object_uploaded", key=key, bytes=n)

A JSON line is ``{"ts", "level", "event", "logger", ...fields}``; ``ts`` is UTC ISO-8601 with
milliseconds. :func:`configure` installs one stderr handler whose filter replaces every known
secret value with ``***`` in the event and in every field, whatever the format.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

ROOT_LOGGER = "datatier"
REDACTED = "***"


class EventLogger:
    """A thin wrapper over :class:`logging.Logger` that takes an event name and fields."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, fields: dict[str, Any], exc: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, *, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields, exc_info)


def get_logger(name: str) -> EventLogger:
    """An event logger under the ``datatier`` hierarchy."""
    return EventLogger(name if name.startswith(ROOT_LOGGER) else f"{ROOT_LOGGER}.{name}")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class RedactSecrets(logging.Filter):
    """Replaces each known secret (6+ characters) in event and fields with ``***``.

    Shorter values are not scrubbed: they would mangle ordinary words in every line.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self._scrub(str(value))

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self._scrub(record.getMessage())
            record.args = None
            record.fields = self._scrub(_fields(record))
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self._scrub(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, logger, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        doc: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key, value in _fields(record).items():
            doc.setdefault(key, value)
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["traceback"] = record.exc_text
        return json.dumps(doc, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS level  event key=value ...`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        parts = [f"{k}={v}" for k, v in _fields(record).items()]
        line = f"{ts} {record.levelname.lower():<7} {record.getMessage()} {' '.join(parts)}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line.rstrip()


CLEAR_LINE = "\r\033[K"


class TerminalLine:
    """The one live status line (progress) on a terminal, shared with the log handler so the
    two never interleave: a log line first erases the status line, is written on a line of
    its own, and the status line is drawn again below it."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.text = ""
        self.stream: TextIO | None = None

    def show(self, stream: TextIO, text: str) -> None:
        """Draw ``text`` as the status line on ``stream``."""
        with self.lock:
            stream.write(CLEAR_LINE + text)
            stream.flush()
            self.stream, self.text = stream, text

    def finish(self) -> None:
        """Keep the current status line on screen (end it with a newline) and forget it."""
        with self.lock:
            if self.stream is not None and self.text:
                self.stream.write("\n")
                self.stream.flush()
            self.stream, self.text = None, ""

    @contextlib.contextmanager
    def suspended(self, stream: TextIO) -> Iterator[None]:
        """Erase the status line while a log line is written to ``stream``, then redraw it."""
        with self.lock:
            shown = self.text and self.stream is stream
            if shown:
                stream.write(CLEAR_LINE)
            yield
            if shown:
                stream.write(self.text)
                stream.flush()


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``stream``, or to whatever ``sys.stderr`` is at emit time (it may be
    swapped, e.g. by tests); a live :class:`TerminalLine` is kept off the log lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self._fixed = stream is not None
        self.line = TerminalLine()

    def emit(self, record: logging.LogRecord) -> None:
        if not self._fixed:
            self.stream = sys.stderr
        with self.line.suspended(self.stream):
            super().emit(record)


def terminal_line() -> TerminalLine:
    """The status line of datatier's log handler (a private one if none is installed)."""
    for handler in logging.getLogger(ROOT_LOGGER).handlers:
        if isinstance(handler, StderrHandler):
            return handler.line
    return TerminalLine()


def use_json(requested: bool | None, fmt: str, stream: TextIO) -> bool:
    """JSON when asked (flag or ``format = "json"``), or when ``stream`` is not a terminal."""
    if requested:
        return True
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    return not stream.isatty()


def json_enabled() -> bool:
    """Whether datatier's log handler writes JSON lines (so nothing plain should follow)."""
    handlers = logging.getLogger(ROOT_LOGGER).handlers
    return any(isinstance(h.formatter, JsonFormatter) for h in handlers)


def configure(
    *,
    level: str = "info",
    json_lines: bool | None = None,
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Install (or replace) datatier's single stderr handler."""
    out = stream if stream is not None else sys.stderr
    handler = StderrHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json(json_lines, fmt, out) else ConsoleFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger(ROOT_LOGGER)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
