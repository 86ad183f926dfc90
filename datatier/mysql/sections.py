"""A bundle object's bytes checked against the sections its manifest record claims, and
the sections a restore of chosen tables passes on (:func:`sections_only`).

The manifest's layout check (:mod:`datatier.backup.completeness`) sees only numbers; a
restore holds the decompressed bytes, so before anything is applied it confirms that the
bundle is as long as recorded and that every section starts with its own table's
definition block (``DELIMITER d`` then ``DROP TABLE IF EXISTS `table` d``), as
:meth:`~datatier.mysql.dumptasks.TaskDumper._dump_bundle` writes it. A range moved
inside the object would otherwise feed the client a cut statement (or another table) after
earlier sections were loaded.

When the stock client fails inside a bundle it gives only its line number;
:class:`SectionLines`, fed the bytes as they go to the client, says which table's section
that line falls in (:func:`section_at_line`). Sections are byte ranges of the stream fed
(:func:`fed_sections` for a restore of chosen tables).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence

from datatier.backup.manifest import ObjectRecord, Section
from datatier.mysql.labels import name_label
from datatier.mysql.sqltext import ident

HEAD_SLACK = 128
"""Bytes of a section's head beyond its table's quoted name: ``DELIMITER d\\n``, the frame
of a format-1 bundle (:mod:`datatier.mysql.bundle_frames`), ``DROP TABLE IF EXISTS ``, the
delimiter again and a newline (delimiters are at most 20 bytes)."""
_FRAMED = rb"(?:-- next statement: [1-9][0-9]{0,11} bytes\n)?"
"""The DROP's frame: in format-1 bundles only (whose restore checks every frame)."""


def section_problem(record: ObjectRecord, chunks: Iterable[bytes]) -> str | None:
    """Why the decompressed bytes ``chunks`` of bundle ``record`` do not match its sections
    (one line), or None when they do."""
    heads = {s.start: (s.table, bytearray()) for s in record.sections}
    width = {s.start: HEAD_SLACK + len(_quoted(s.table)) for s in record.sections}
    pos = 0
    for chunk in chunks:
        end = pos + len(chunk)
        for start, (_, got) in heads.items():
            at = start + len(got)
            if len(got) < width[start] and pos <= at < end:
                got += chunk[at - pos : at - pos + width[start] - len(got)]
        pos = end
    if pos != record.raw_size:
        return f"bundle {record.key} holds {pos} bytes, its manifest says {record.raw_size}"
    for table, got in heads.values():
        pattern = rb"DELIMITER ([^\s]+)\n" + _FRAMED + rb"DROP TABLE IF EXISTS "
        pattern += re.escape(_quoted(table))
        if not re.match(pattern + rb"\1\n", bytes(got)):
            return f"bundle {record.key}: the section of {table} does not start with its table"
    return None


def sections_only(chunks: Iterator[bytes], keep: list[tuple[int, int]]) -> Iterator[bytes]:
    """The bytes of ``chunks`` (a stream) within the ranges ``keep`` (sorted, disjoint)."""
    pos = 0
    for chunk in chunks:
        end = pos + len(chunk)
        for start, stop in keep:
            low, high = max(start, pos), min(stop, end)
            if low < high:
                yield chunk[low - pos : high - pos]
        pos = end


def fed_sections(record: ObjectRecord, kept: Sequence[Section]) -> tuple[Section, ...]:
    """The sections ``kept`` of bundle ``record`` where :func:`sections_only` puts them: after
    the prelude (the bytes before the first section), one after another."""
    start = record.sections[0].start if record.sections else 0
    out = []
    for section in kept:
        end = start + section.end - section.start
        out.append(Section(section.table, start, end, section.rows))
        start = end
    return tuple(out)


def section_at_line(
    tables: Sequence[str], before: Sequence[int], line: int
) -> tuple[str, int] | None:
    """The table whose section holds ``line`` (1-based) of a stream and the line's number
    within that section, where section ``i`` (table ``tables[i]``) starts after
    ``before[i]`` newlines (``before`` ascending; shorter than ``tables`` when the stream
    ended early). None for a line before the first section (the prelude)."""
    i = bisect.bisect_left(before, line) - 1
    if i < 0:
        return None
    return tables[i], line - before[i]


class SectionLines:
    """Counts the newlines before each section's start in a bundle's stream, fed chunk by
    chunk as it goes to the client (``bytes.count`` on slices; no per-line work), so that
    the client's ``at line N`` can name the table (:meth:`where`)."""

    def __init__(self, sections: Sequence[Section]) -> None:
        self._tables = [s.table for s in sections]
        self._starts = [s.start for s in sections]
        self._before: list[int] = []  # newlines before each start the stream has reached
        self._lines = 0
        self._pos = 0

    def feed(self, chunk: bytes) -> None:
        end = self._pos + len(chunk)
        cut = 0
        while len(self._before) < len(self._starts) and self._starts[len(self._before)] < end:
            at = max(0, self._starts[len(self._before)] - self._pos)
            self._lines += chunk.count(b"\n", cut, at)
            cut = at
            self._before.append(self._lines)
        self._lines += chunk.count(b"\n", cut)
        self._pos = end

    def where(self, line: int) -> tuple[str, int] | None:
        """The table and its own line number for ``line`` of the stream fed so far."""
        return section_at_line(self._tables, self._before, line)


def table_label(table: str) -> str:
    """``table`` quoted, on one line, control characters escaped (for error messages)."""
    return name_label(table)


def _quoted(table: str) -> bytes:
    return ident(table).encode("utf-8", "surrogateescape")
