"""Split one ``mariadb-dump`` stream into per-table pieces, in bulk, without parsing rows.

The dump is read in blocks of whole lines; Python looks only for section titles (the
``--\\n-- Title\\n--`` comment blocks mariadb-dump writes), so the cost per byte stays in C
(``bytes.find``/``count``). Each section is reported to a :class:`SectionSink`:

* ``database`` (CREATE DATABASE; ``USE`` lines dropped: the loader chooses the database),
* ``schema`` (DROP/CREATE TABLE), ``data`` (INSERT statements), ``triggers`` (after data),
* ``viewstubs`` / ``views`` (temporary and final view structures), ``events``, ``routines``.

The header's session settings (charset, time zone, sql_mode, checks off) are returned as the
*prelude*, which the caller prepends to every object so each one loads on its own.
Contract: the stream must end with the footer and ``-- Dump completed``; otherwise
:class:`TruncatedDump` is raised (a dump cut short never becomes a backup).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import BinaryIO, Protocol

from datatier.errors import OperationFailed

BLOCK = 1 << 20
FOOTER = b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;"
COMPLETED = b"-- Dump completed"
TITLES: list[tuple[re.Pattern[bytes], str]] = [
    (re.compile(rb"^Current Database: `(.*)`$"), "database"),
    (re.compile(rb"^Table structure for table `(.*)`$"), "schema"),
    (re.compile(rb"^Dumping data for table `(.*)`$"), "data"),
    (re.compile(rb"^Temporary table structure for view `(.*)`$"), "viewstubs"),
    (re.compile(rb"^Final view structure for view `(.*)`$"), "views"),
    (re.compile(rb"^Dumping events for database '(.*)'$"), "events"),
    (re.compile(rb"^Dumping routines for database '(.*)'$"), "routines"),
]
PER_TABLE = {"schema", "data", "viewstubs", "views", "triggers"}


class TruncatedDump(OperationFailed):
    """The dump stream ended before mariadb-dump's completion line."""


class SectionSink(Protocol):
    """Receives the sections of a dump in order."""

    def begin(self, kind: str, database: str, name: str | None) -> None:
        """A new section starts (``name`` is the table or view; None for per-db kinds)."""

    def write(self, data: bytes, rows: int) -> None:
        """Bytes of the current section (whole lines); ``rows`` = data rows among them."""

    def end(self) -> None:
        """The current section is complete."""


def unquote_identifier(raw: bytes) -> str:
    """An identifier from a section title: backticks in names are doubled by mariadb-dump."""
    return raw.decode("utf-8", errors="surrogateescape").replace("``", "`")


class DumpSplitter:
    """Feed it the dump's bytes in order (:meth:`feed`), then :meth:`finish`."""

    def __init__(self, sink: SectionSink, on_prelude: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._on_prelude = on_prelude
        self._carry = b""
        self._prelude: list[bytes] | None = []
        self._header: list[bytes] = []
        self._recent = b""
        self._kind: str | None = None
        self._database: str | None = None
        self._name: str | None = None
        self._seen_databases: set[str] = set()
        self._footer = False
        self._completed = False

    @property
    def completed(self) -> bool:
        return self._completed

    @property
    def trailer(self) -> bytes:
        """The last 4 KiB before the footer (mariadb-dump puts the GTID position there)."""
        return self._recent

    @property
    def header(self) -> bytes:
        """The comment lines before the first section (server, binlog/GTID coordinates)."""
        return b"".join(self._header)

    def feed(self, data: bytes) -> None:
        """Process more bytes; only whole lines are handled, the rest is carried over."""
        data = self._carry + data
        cut = data.rfind(b"\n") + 1
        # Carry trailing comment lines: they may be part of a title block ("--", "-- Title",
        # "--") whose other lines are still to come.
        while cut > 0:
            start = data.rfind(b"\n", 0, cut - 1) + 1
            if not data.startswith(b"--", start):
                break
            cut = start
        self._carry = data[cut:]
        if cut > 0:
            self._lines(data[:cut])

    def finish(self) -> None:
        """End of stream: flush, and raise TruncatedDump unless the dump completed."""
        if self._carry:
            self._lines(self._carry + (b"" if self._carry.endswith(b"\n") else b"\n"))
            self._carry = b""
        self._close_section()
        if not self._completed:
            raise TruncatedDump("the dump ended before mariadb-dump's completion line")

    # --- internals -------------------------------------------------------------------------

    def _lines(self, block: bytes) -> None:
        pos = 0
        while pos < len(block):
            if self._footer:
                if COMPLETED in block[pos:]:
                    self._completed = True
                return
            nxt = _find_title(block, pos)
            if nxt is None:
                self._content(block[pos:])
                return
            start, title_end, kind, raw_name = nxt
            self._content(block[pos:start])
            self._open(kind, raw_name)
            pos = title_end

    def _content(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._prelude is not None:
            for line in chunk.split(b"\n"):
                if line.startswith(b"--"):
                    self._header.append(line + b"\n")
                elif line:
                    self._prelude.append(line + b"\n")
            return
        footer_at, trigger_at = self._markers(chunk)
        if footer_at >= 0:
            self._content(chunk[:footer_at])
            self._close_section()
            self._footer = True
            if COMPLETED in chunk[footer_at:]:
                self._completed = True
            return
        if trigger_at >= 0:
            self._content(chunk[:trigger_at])
            self._sink.end()
            self._kind = "triggers"
            assert self._database is not None
            self._sink.begin("triggers", self._database, self._name)
            self._content(chunk[trigger_at:])
            return
        self._recent = (self._recent + chunk[-4096:])[-4096:]
        if self._kind == "database":
            chunk = b"".join(
                line + b"\n"
                for line in chunk.split(b"\n")
                if line.strip() and not line.startswith(b"USE ")
            )
            if not chunk:
                return
        self._write(chunk)

    def _markers(self, chunk: bytes) -> tuple[int, int]:
        """(footer offset, trigger offset) in ``chunk``, -1 when absent. One scan for
        ``/*!`` at line starts covers both (data rows never start with it)."""
        at = _line_start_find(chunk, b"/*!")
        while at >= 0:
            if chunk.startswith(FOOTER, at):
                return at, -1
            if self._kind == "data" and chunk.startswith(b"/*!50003 ", at):
                return -1, at
            nxt = chunk.find(b"\n/*!", at)
            at = nxt + 1 if nxt >= 0 else -1
        return -1, -1

    def _write(self, chunk: bytes) -> None:
        if not chunk or self._kind is None:
            return
        rows = 0
        if self._kind == "data":
            rows = chunk.count(b"\n(") + (1 if chunk.startswith(b"(") else 0)
        self._sink.write(chunk, rows)

    def _open(self, kind: str, raw_name: bytes) -> None:
        if self._prelude is not None:
            self._on_prelude(b"".join(self._prelude))
            self._prelude = None
        self._close_section()
        name = unquote_identifier(raw_name)
        if kind == "database":
            self._database = name
            if name in self._seen_databases:
                return  # the second pass (views) only switches database
            self._seen_databases.add(name)
            self._kind, self._name = kind, None
        elif kind in ("events", "routines"):
            self._kind, self._name = kind, None
        else:
            self._kind, self._name = kind, name
        if self._database is None:
            raise OperationFailed(f"dump section {kind!r} before any database")
        self._sink.begin(self._kind, self._database, self._name)

    def _close_section(self) -> None:
        if self._kind is not None:
            self._sink.end()
        self._kind = None


def _line_start_find(block: bytes, needle: bytes) -> int:
    if block.startswith(needle):
        return 0
    at = block.find(b"\n" + needle)
    return at + 1 if at >= 0 else -1


def _find_title(block: bytes, pos: int) -> tuple[int, int, str, bytes] | None:
    """Next known title block at a line start: (start, end after block, kind, raw name)."""
    search = pos
    while True:
        at = block.find(b"--\n-- ", search)
        if at < 0:
            return None
        if at == 0 or block[at - 1] == 0x0A:
            eol = block.find(b"\n", at + 3)
            if eol < 0:
                return None
            title = block[at + 6 : eol]
            for pattern, kind in TITLES:
                match = pattern.match(title)
                if match:
                    end = eol + 1
                    if block.startswith(b"--\n", end):
                        end += 3
                    return at, end, kind, match.group(1)
        search = at + 1


def split_stream(
    stream: BinaryIO, sink: SectionSink, on_prelude: Callable[[bytes], None]
) -> DumpSplitter:
    """Split everything ``stream`` yields into ``sink``; returns the finished splitter."""
    splitter = DumpSplitter(sink, on_prelude)
    # read1: take what the pipe has now (read() would wait for a full block).
    read = getattr(stream, "read1", stream.read)
    while True:
        block = read(BLOCK)
        if not block:
            break
        splitter.feed(block)
    splitter.finish()
    return splitter
