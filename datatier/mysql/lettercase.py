"""Database and table names as a server compares them.

With ``lower_case_table_names`` 1 (names stored lower-cased) or 2 (stored as given,
compared lower-cased) a server treats ``Shop.Orders`` and ``shop.orders`` as one table;
with 0 (the Linux default) they are two. What datatier matches against a server's names
(objects a restore replaces, tables a point-in-time replay keeps) goes through
:func:`name_key`, with the fold :func:`folds_names` reads from that server; names that
are distinct where they came from but one there are found by :func:`collisions`.

MariaDB answers an information_schema query ``WHERE TABLE_SCHEMA IN ('Shop', 'shop')`` (every
value one name compared case-insensitively) for ``'Shop'`` alone, even on a case-sensitive
server where both exist: such lists are split with :func:`apart` first.
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
    """``names`` (each once, in order) in lists of which none holds two differing only by
    letter case: one list unless some do. For information_schema ``IN (...)`` lists (see
    the module docstring): one query per list."""
    batches: list[tuple[set[str], list[str]]] = []
    for name in dict.fromkeys(names):
        key = name.lower()
        batch = next((b for b in batches if key not in b[0]), None)
        if batch is None:
            batch = (set(), [])
            batches.append(batch)
        batch[0].add(key)
        batch[1].append(name)
    return [listed for _, listed in batches]
