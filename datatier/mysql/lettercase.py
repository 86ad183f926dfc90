"""Database and table names as a server compares them.

With ``lower_case_table_names`` 1 (names stored lower-cased) or 2 (stored as given,
compared lower-cased) a server treats ``Shop.Orders`` and ``shop.orders`` as one table;
with 0 (the Linux default) they are two. What datatier matches against a server's names
(objects a restore replaces, tables a point-in-time replay keeps) goes through
:func:`name_key`, with the fold :func:`folds_names` reads from that server.
"""

from __future__ import annotations

from typing import Any


def folds_names(cur: Any) -> bool:
    """Whether the server of cursor ``cur`` compares database and table names without
    regard to letter case (``lower_case_table_names`` 1 or 2)."""
    cur.execute("SELECT @@lower_case_table_names")
    row = cur.fetchone()
    return bool(row and int(row[0]))


def name_key(name: str, fold: bool) -> str:
    """``name`` as the server compares it: lower-cased when it ``fold``\\ s names."""
    return name.lower() if fold else name
