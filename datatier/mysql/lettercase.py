"""Database and table names as a server compares them.

With ``lower_case_table_names`` 1 (names stored lower-cased) or 2 (stored as given,
compared lower-cased) a server treats ``Shop.Orders`` and ``shop.orders`` as one table;
with 0 (the Linux default) they are two. What datatier matches against a server's names
(objects a restore replaces, tables a point-in-time replay keeps) goes through
:func:`name_key`, with the fold :func:`folds_names` reads from that server; names that
are distinct where they came from but one there are found by :func:`collisions`.

MariaDB (10.11) matches a many-valued ``TABLE_SCHEMA IN (...)`` of information_schema under
its utf8mb3_general_ci collation, where `Shop` = `shop` and `cafe` = `café`, even on a
case-sensitive server where each pair is two databases: ``IN ('Shop', 'shop')`` and
``IN ('cafe', 'café')`` answer for one of the two alone, and ``IN ('shop', 'x')`` lists
`Shop`'s rows too. A single value is looked up exactly, so such queries ask for one
database at a time (:func:`apart`). ``TABLE_NAME IN (...)`` and ``LIKE`` are as blind
(`cafe`, `Cafe`, `café` and `CAFÉ` of one database answer ``IN ('cafe', 'x')``), while
``TABLE_NAME = %s`` is exact: tables are read a whole database at a time, or one by one,
and keyed by the names the server returns (tests/integration/mysql/
test_lookalike_table_names.py).

A folding server lower-cases a name character by character with utf8mb3_general_ci's table
(Unicode 3.0 or so), not as Python's ``str.lower`` does: `İa` becomes `ia` (Python: `i̇a`),
a capital sigma ending a name becomes a small sigma (Python: a final sigma), and case pairs
newer than that table (Georgian `Ⴀ`, `ẞ`, Cherokee...) are kept as they are.
:func:`name_key` folds as the server does (MariaDB 10.11, checked for every character
against the server in tests/integration/mysql/test_restore_case_collisions.py).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from functools import cache
from typing import Any

_KEPT = "0220 03D8 03F4 048A 04C0 04C5 04C9 04CD 0500-050E/2 10A0-10C5 13A0-13F4 2132 2183"
"""Characters of Unicode 3.2 that Python lower-cases and the server keeps (``A-B/2``:
every other one from A to B); the server keeps every character newer than 3.2 too."""


def _kept() -> set[int]:
    found: set[int] = set()
    for part in _KEPT.split():
        span, _, step = part.partition("/")
        first, _, last = span.partition("-")
        found.update(range(int(first, 16), int(last or first, 16) + 1, int(step or 1)))
    return found


@cache
def _fold_table() -> dict[int, str]:
    """``str.translate`` table of the server's lower case (see the module docstring)."""
    kept = _kept()
    table = {0x130: "i"}  # İ: one character there
    for code in range(0x10000):  # identifiers are utf8mb3: no character beyond
        char = chr(code)
        lower = char.lower()
        if (
            lower != char
            and len(lower) == 1
            and code not in kept
            and unicodedata.ucd_3_2_0.category(char) != "Cn"
        ):
            table[code] = lower
    return table


def lower_case_table_names(cur: Any) -> int:
    """The ``lower_case_table_names`` of the server of cursor ``cur`` (0, 1 or 2)."""
    cur.execute("SELECT @@lower_case_table_names")
    row = cur.fetchone()
    return int(row[0]) if row else 0


def folds_names(cur: Any) -> bool:
    """Whether the server of cursor ``cur`` compares database and table names without
    regard to letter case (``lower_case_table_names`` 1 or 2)."""
    return bool(lower_case_table_names(cur))


def name_key(name: str, fold: bool) -> str:
    """``name`` as the server compares it: lower-cased as the server lower-cases names
    (module docstring) when it ``fold``\\ s them."""
    return name.translate(_fold_table()) if fold else name


def collisions(names: Iterable[tuple[str, ...]], fold: bool) -> list[list[tuple[str, ...]]]:
    """The groups (each sorted, in order of their first name) of distinct ``names`` (a
    database as ``(db,)``, a table as ``(db, table)``) that a server folding names or not
    (``fold``) takes for one; empty when there are none."""
    groups: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for name in names:
        groups.setdefault(tuple(name_key(part, fold) for part in name), set()).add(name)
    return sorted(sorted(group) for group in groups.values() if len(group) > 1)


def apart(names: Iterable[str]) -> list[list[str]]:
    """``names`` (each once, in order), one to a list: for information_schema queries on a
    schema column, one query per database (see the module docstring: a list of several may
    lose one of two names it holds, or bring in a database it does not name)."""
    return [[name] for name in dict.fromkeys(names)]
