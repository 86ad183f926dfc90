"""The tables a CREATE TABLE's foreign keys reference, read from its text.

Contract: :func:`referenced_tables` takes the statement as ``SHOW CREATE TABLE`` writes it
(every name quoted with backquotes, ``REFERENCES `db`.`t``` or ``REFERENCES `t``` for the
table's own database). It errs only toward more: text inside a comment or a string that
looks like ``REFERENCES `x``` counts too, which its callers can afford (a restore then
drops one more table first, or builds one more table's indexes with its rows).
"""

from __future__ import annotations

import re

_REFERENCES = re.compile(rb"REFERENCES (`(?:[^`]|``)+`)(?:\.(`(?:[^`]|``)+`))?")


def referenced_tables(create: bytes, database: str | None) -> set[tuple[str | None, str]]:
    """The (database, table) each FOREIGN KEY of the CREATE TABLE statement ``create``
    references; an unqualified name is ``database``'s."""
    found: set[tuple[str | None, str]] = set()
    for first, second in _REFERENCES.findall(create):
        names = [_unquote(n) for n in (first, second) if n]
        found.add((names[0], names[1]) if len(names) == 2 else (database, names[0]))
    return found


def _unquote(name: bytes) -> str:
    return name[1:-1].replace(b"``", b"`").decode("utf-8", "surrogateescape")
