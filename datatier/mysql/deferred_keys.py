"""Secondary indexes built after the data, the way myloader's ``--innodb-optimize-keys`` does.

Inserting into a table that already has secondary indexes updates each of them row by row;
building them once the rows are in sorts each index in one pass, which is much faster for
large tables. :func:`defer_secondary_keys` splits a ``SHOW CREATE TABLE`` statement into the
table without its plain secondary indexes and the ``ALTER TABLE`` that adds them back.

Only plain ``KEY``/``INDEX`` entries move. Primary and unique keys stay (foreign keys of other
tables may reference them), as do FULLTEXT and SPATIAL indexes, and a plain key led by the
``AUTO_INCREMENT`` column (InnoDB refuses a table whose counter column leads no index) or by
the first of columns another table's foreign key references (``referenced``: the child's
CREATE TABLE needs an index they lead, the primary key's columns InnoDB appends to it
counting); a table with a foreign key
or a constraint is left whole, as is any table not on InnoDB (other engines copy the whole
table for an ALTER), with system versioning (which refuses most ALTERs) or with a FULLTEXT
or SPATIAL index (an index added later must not change the order in which SHOW CREATE
TABLE lists them). The statement is parsed by its tokens (quoted strings, identifiers and
parentheses), never by lines, so names and comments holding commas, quotes, newlines or
``KEY`` cannot confuse it; anything unexpected leaves the statement unchanged.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

DEFERRABLE = ("KEY ", "INDEX ")
KEEPS_TABLE_WHOLE = ("CONSTRAINT ", "FOREIGN KEY", "FULLTEXT ", "SPATIAL ")


@dataclass(frozen=True)
class Deferred:
    """``create`` without the deferred indexes, and ``alter`` adding them (None: nothing)."""

    create: str
    alter: str | None


def defer_secondary_keys(
    create: str, table_ident: str, referenced: Collection[tuple[str, ...]] = ()
) -> Deferred:
    """Split ``create`` (a CREATE TABLE from the server); ``table_ident`` is the quoted name
    the ALTER uses; ``referenced``: the column lists foreign keys reference in this table.
    Returns ``create`` unchanged when there is nothing to defer."""
    if not create.startswith("CREATE TABLE "):
        return Deferred(create, None)
    bounds = _body_bounds(create)
    if bounds is None:
        return Deferred(create, None)
    start, end = bounds
    options = create[end:]
    if "ENGINE=InnoDB" not in options or "WITH SYSTEM VERSIONING" in options:
        return Deferred(create, None)
    elements = _split_top_level(create[start + 1 : end])
    if elements is None:
        return Deferred(create, None)
    stripped = [e.strip() for e in elements]
    if any(e.startswith(KEEPS_TABLE_WHOLE) for e in stripped):
        return Deferred(create, None)
    # A key InnoDB may pick for a foreign key starts with the first referenced column (its
    # hidden primary-key columns may complete the list), as a key serving the counter
    # starts with it: every plain key led by one of those columns stays.
    leads = {cols[0].lower() for cols in referenced if cols}
    auto = _auto_increment_column(stripped)
    if auto is not None:
        leads.add(auto.lower())

    def deferred(element: str) -> bool:
        if not element.startswith(DEFERRABLE):
            return False
        if not leads:
            return True
        columns = _key_columns(element)
        return columns is not None and columns[0].lower() not in leads

    keep = [e for e, s in zip(elements, stripped, strict=True) if not deferred(s)]
    moved = [s for s in stripped if deferred(s)]
    if not moved or len(keep) == 0:
        return Deferred(create, None)
    body = ",".join(keep)
    if not body.endswith("\n"):
        body += "\n"
    adds = ", ".join(f"ADD {index}" for index in moved)
    return Deferred(create[: start + 1] + body + create[end:], f"ALTER TABLE {table_ident} {adds}")


def table_options(create: str) -> str | None:
    """What follows a CREATE TABLE's column list (``) ENGINE=InnoDB ...``); None when the
    statement is not of that shape."""
    bounds = _body_bounds(create) if create.startswith("CREATE TABLE ") else None
    return None if bounds is None else create[bounds[1] :]


def _auto_increment_column(elements: list[str]) -> str | None:
    """The name of the column whose definition (outside quotes) says AUTO_INCREMENT."""
    for element in elements:
        if element.startswith("`") and "AUTO_INCREMENT" in _unquoted(element).split():
            end = _skip_quoted(element, 0)
            return element[1 : end - 1].replace("``", "`")
    return None


def _key_columns(key: str) -> list[str] | None:
    """The columns a ``KEY `name` (`a`,`b`(10) DESC)`` entry indexes, in order; None if
    it is not of that shape."""
    i = key.find(" ") + 1
    if key.startswith("`", i):
        i = _skip_quoted(key, i)
    while i < len(key) and key[i] == " ":
        i += 1
    if not key.startswith("(", i):
        return None
    columns, i = [], i + 1
    while True:
        if not key.startswith("`", i):
            return None
        end = _skip_quoted(key, i)
        columns.append(key[i + 1 : end - 1].replace("``", "`"))
        i, depth = end, 0
        while i < len(key) and (depth or key[i] not in ",)"):  # a prefix length, DESC
            depth += {"(": 1, ")": -1}.get(key[i], 0)
            i += 1
        if i >= len(key):
            return None
        if key[i] == ")":
            return columns
        i += 1
        while i < len(key) and key[i] == " ":
            i += 1


def _unquoted(text: str) -> str:
    """``text`` with each quoted token (names, strings) replaced by a space."""
    out, i = [], 0
    while i < len(text):
        if text[i] in "'\"`":
            i = _skip_quoted(text, i)
            out.append(" ")
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _body_bounds(text: str) -> tuple[int, int] | None:
    """Offsets of the parentheses around the column and index list."""
    i = len("CREATE TABLE ")
    if not text.startswith("`", i):
        return None
    i = _skip_quoted(text, i)
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text) or text[i] != "(":
        return None
    depth, j = 0, i
    while j < len(text):
        ch = text[j]
        if ch in "'\"`":
            j = _skip_quoted(text, j)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i, j
        j += 1
    return None


def _split_top_level(body: str) -> list[str] | None:
    """``body`` split at commas outside quotes and parentheses."""
    parts, depth, last, j = [], 0, 0, 0
    while j < len(body):
        ch = body[j]
        if ch in "'\"`":
            j = _skip_quoted(body, j)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return None
        elif ch == "," and depth == 0:
            parts.append(body[last:j])
            last = j + 1
        j += 1
    if depth != 0:
        return None
    parts.append(body[last:])
    return parts


def _skip_quoted(text: str, start: int) -> int:
    """Index after the quoted token opening at ``start`` (doubled quotes; backslashes in
    strings)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)
