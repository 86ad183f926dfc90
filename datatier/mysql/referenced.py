"""What a CREATE TABLE's foreign keys reference, read from its text.

Contract: the statement is read as ``SHOW CREATE TABLE`` writes it (every name quoted with
backquotes, ``REFERENCES `db`.`t` (`a`,`b`)`` or ``REFERENCES `t` (...)`` for the table's own
database). It errs only toward more: text inside a comment or a string that looks like
``REFERENCES `x``` counts too, which its callers can afford (a restore then drops one more
table first, or builds one more index with the rows).
"""

from __future__ import annotations

import re

_NAME = rb"`(?:[^`]|``)+`"
# one reading per text: a name's backquotes cannot start a separator (no backtracking
# blow-up on a comment that looks like an unfinished list)
_REFERENCES = re.compile(
    rb"REFERENCES ("
    + _NAME
    + rb")(?:\.("
    + _NAME
    + rb"))? \(("
    + _NAME
    + rb"(?:, ?"
    + _NAME
    + rb")*)\)"
)
_COLUMN = re.compile(_NAME)

Referenced = tuple[str | None, str, tuple[str, ...]]
"""(database, table, the columns referenced, in order)."""


def referenced_keys(create: bytes, database: str | None) -> set[Referenced]:
    """Each FOREIGN KEY of ``create``'s (database, table, columns) referenced; an
    unqualified table is ``database``'s."""
    found: set[Referenced] = set()
    for first, second, columns in _REFERENCES.findall(create):
        names = [_unquote(n) for n in (first, second) if n]
        table = (names[0], names[1]) if len(names) == 2 else (database, names[0])
        found.add((*table, tuple(_unquote(c) for c in _COLUMN.findall(columns))))
    return found


def referenced_tables(create: bytes, database: str | None) -> set[tuple[str | None, str]]:
    """The (database, table) each FOREIGN KEY of ``create`` references."""
    return {(db, table) for db, table, _ in referenced_keys(create, database)}


def _unquote(name: bytes) -> str:
    return name[1:-1].replace(b"``", b"`").decode("utf-8", "surrogateescape")
