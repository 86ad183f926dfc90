"""The ``CREATE TABLE`` statements of a restore's staged objects, for the checks made before
anything is applied (sequences a table draws from, foreign-key names it declares), and the
routines, events and triggers it defines (:func:`staged_definitions`).

A table's definition is in its schema object (whole for the older unframed layout) or in a
framed bundle's section; unframed bundles are not read. Only objects whose bytes match a
caller's ``mentions`` pattern are parsed: the checks look for rare things, and a restore's
bundles may be large.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from datatier.backup.manifest import ObjectRecord
from datatier.mysql.bundle_frames import BUNDLE_HEAD_BYTES, BundleStatements, is_framed_bundle
from datatier.mysql.frames import FrameError, peek
from datatier.mysql.sqltext import parse_block
from datatier.mysql.view_deps import TableName

CREATE_TABLE = re.compile(rb"\s*CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\b", re.IGNORECASE)


def schema_creates(text: bytes) -> list[str]:
    """The CREATE TABLE statements of a schema object's bytes ``text`` (all of it when it
    is not a statement block)."""
    statements = parse_block(text)
    if statements is None:
        return [as_text(text)]
    return [as_text(st) for st in statements if CREATE_TABLE.match(st)]


def mentions(chunks: Iterator[bytes], pattern: re.Pattern[bytes], reach: int = 64) -> bool:
    """Whether the streamed ``chunks`` hold ``pattern`` anywhere (a C-speed scan; a match
    cut between two chunks is found when it is at most ``reach`` bytes long)."""
    tail = b""
    for chunk in chunks:
        if pattern.search(tail + chunk[:reach]) or pattern.search(chunk):
            return True
        tail = chunk[-reach:]
    return False


def bundle_creates(
    record: ObjectRecord, chunks: Iterator[bytes]
) -> Iterator[tuple[TableName, str]]:
    """(table, its CREATE TABLE) of each section of the framed bundle ``record`` (bytes
    ``chunks``); nothing for an unframed one or one whose frames are broken (the section
    check refuses it, naming what is wrong)."""
    assert record.database is not None
    head, rest = peek(chunks, BUNDLE_HEAD_BYTES)
    if not is_framed_bundle(head):
        return
    statements = BundleStatements(rest, [s.start for s in record.sections])
    try:
        for statement in statements:
            if statements.section >= 0 and CREATE_TABLE.match(statement):
                table = record.sections[statements.section].table
                yield (record.database, table), as_text(statement)
    except FrameError:
        return


def staged_creates(
    objects: list[ObjectRecord],
    content: Callable[[str], Iterator[bytes]],
    pattern: re.Pattern[bytes],
) -> dict[TableName, str]:
    """(source database, table) -> CREATE TABLE of the tables of ``objects`` (their bytes
    from ``content``) whose definition object holds ``pattern``."""
    found: dict[TableName, str] = {}
    for record in objects:
        if record.database is None:
            continue
        if record.kind == "schema" and record.table is not None:
            text = b"".join(content(record.key))
            if pattern.search(text):
                for create in schema_creates(text):
                    found[(record.database, record.table)] = create
        elif record.kind == "bundle" and record.sections and mentions(content(record.key), pattern):
            found.update(bundle_creates(record, content(record.key)))
    return found


def as_text(statement: bytes) -> str:
    """A statement's bytes as text (UTF-8; any other byte kept as a surrogate)."""
    return statement.decode("utf-8", "surrogateescape")


_DROPPED = re.compile(
    rb"DROP (PROCEDURE|FUNCTION|PACKAGE BODY|PACKAGE|EVENT|TRIGGER) IF EXISTS `(.*)`\Z", re.S
)


def staged_definitions(
    objects: list[ObjectRecord], content: Callable[[str], Iterator[bytes]]
) -> set[tuple[str, str, str]]:
    """(kind, source database, name) of each routine, package, event and trigger the
    ``routines``, ``events`` and ``triggers`` objects of ``objects`` (bytes from
    ``content``) define: each definition
    there starts with its own ``DROP <kind> IF EXISTS `name```
    (:mod:`datatier.mysql.dumpdefs`). Objects of older layouts are not read."""
    found: set[tuple[str, str, str]] = set()
    for record in objects:
        if record.kind not in ("routines", "events", "triggers") or record.database is None:
            continue
        for statement in parse_block(b"".join(content(record.key))) or []:
            if matched := _DROPPED.match(statement):
                name = as_text(matched.group(2)).replace("``", "`")
                found.add((matched.group(1).decode().lower(), record.database, name))
    return found
