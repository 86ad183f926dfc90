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
database at a time (:func:`apart`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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
    """``name`` as the server compares it: lower-cased when it ``fold``\\ s names."""
    return name.lower() if fold else name


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
