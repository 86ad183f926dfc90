"""What ``--rename`` does to definitions: a CREATE TABLE's references to renamed databases
follow the rename (:func:`rename_references`); a trigger, routine or event naming its own
database explicitly cannot, and is reported (:func:`warn_qualified`)."""

from __future__ import annotations

import re
from collections.abc import Callable

from datatier.backup.manifest import ObjectRecord
from datatier.log import get_logger
from datatier.mysql.binlog.sqlrefs import rewrite, scan
from datatier.mysql.creator_text import CLIENT_CHARSET, as_bytes, in_charset

log = get_logger(__name__)


def requalify(statement: str, names: dict[str, str]) -> str:
    """``statement`` with each `` `db`. `` qualifier of a database ``names`` maps given its
    new name, outside string literals and comments (the replay's scanner,
    :mod:`datatier.mysql.binlog.sqlrefs`: ``REFERENCES `db`.`t``` and ``nextval(`db`.`s`)``
    in a CREATE TABLE)."""
    return rewrite(statement, scan(statement), names, set(names))


def rename_references(targets: dict[str, str]) -> Callable[[bytes], bytes]:
    """A CREATE TABLE's references to databases ``targets`` renames, renamed (a foreign key
    to another restored database, a default drawing from a sequence in one)."""
    moved = {src: dst for src, dst in targets.items() if src != dst}

    def rewrite(statement: bytes) -> bytes:
        text = statement.decode("utf-8", "surrogateescape")
        return requalify(text, moved).encode("utf-8", "surrogateescape")

    return rewrite


def warn_qualified(record: ObjectRecord, text: bytes, moved: dict[str, str] | None = None) -> None:
    """Log a warning when a trigger/routine/event/view of a renamed database names a
    renamed database explicitly, its own or another one ``moved`` (old -> new names)
    renames: after ``--rename`` that reference still points at the original database
    (views are written without their own database's qualifier)."""
    assert record.database is not None
    charsets = {c.decode() for c in CLIENT_CHARSET.findall(text)}  # each definition's own

    def named(database: str) -> bool:
        names = {database.encode()} | {
            as_bytes(held) for c in charsets if (held := in_charset(database, c)) is not None
        }
        return any(_names_itself(name, text) for name in names)

    if named(record.database):
        log.warning(
            "restore.qualified_reference",
            object=record.key,
            database=record.database,
            note="the definition names its database explicitly; after --rename it still "
            "refers to the original database",
        )
    for other, new in sorted((moved or {}).items()):
        if other != record.database and other != new and named(other):
            log.warning(
                "restore.qualified_reference",
                object=record.key,
                database=other,
                renamed_to=new,
                note=f"the definition names database {other}, which this restore renames to "
                f"{new}; the copy still refers to {other}",
            )


def _names_itself(name: bytes, text: bytes) -> bool:
    quoted = b"`" + name.replace(b"`", b"``") + b"`."
    return quoted in text or re.search(rb"(?<![\w`])" + re.escape(name) + rb"\.", text) is not None
