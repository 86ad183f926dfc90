"""A bundle object's bytes checked against the sections its manifest record claims, and
the sections a restore of chosen tables passes on (:func:`sections_only`).

The manifest's layout check (:mod:`datatier.backup.completeness`) sees only numbers; a
restore holds the decompressed bytes, so before anything is applied it confirms that the
bundle is as long as recorded and that every section starts with its own table's
definition block (``DELIMITER d`` then ``DROP TABLE IF EXISTS `table` d``), as
:meth:`~datatier.mysql.pdump.ParallelDumpEngine._dump_bundle` writes it. A range moved
inside the object would otherwise feed the client a cut statement (or another table) after
earlier sections were loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from datatier.backup.manifest import ObjectRecord
from datatier.mysql.sqltext import ident

HEAD_SLACK = 64
"""Bytes of a section's head beyond its table's quoted name: ``DELIMITER d\\n``, ``DROP TABLE
IF EXISTS ``, the delimiter again and a newline (delimiters are at most 4 bytes)."""


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
        pattern = rb"DELIMITER ([^\s]+)\nDROP TABLE IF EXISTS " + re.escape(_quoted(table))
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


def _quoted(table: str) -> bytes:
    return ident(table).encode("utf-8", "surrogateescape")
