"""The views a view DDL names, and the tables a new table or view is made from.

A replay restoring only some tables (``--tables``, a policy's table selection) replays a
view's DDL when the view is restored, like a table's. A ``CREATE TABLE`` or view DDL it
replays must then find what it reads on the target: ``CREATE TABLE t LIKE s`` copies
``s``, ``CREATE TABLE t SELECT ...`` (statement format) and ``CREATE VIEW v AS SELECT ...``
read the tables of their ``FROM``/``JOIN`` lists. :func:`read_tables` finds those token by
token: a name it takes for a table that is none costs a refusal; a table it cannot see (a
stored function's) fails the replay, as before.
"""

from __future__ import annotations

from datatier.mysql.binlog.qualified import LIST_ENDS
from datatier.mysql.binlog.sqlrefs import (
    IDENTS,
    LEADING,
    OPTIONS,
    Scan,
    Token,
    _all_tables,
    _table_at,
)

VIEW_VERBS = {"CREATE", "ALTER", "DROP"}
SUBQUERY_WORDS = {"SELECT", "WITH", "VALUES"}  # after "(" in a table position: no join


def _keyword(tokens: list[Token], i: int) -> str | None:
    return tokens[i][3].upper() if i < len(tokens) and tokens[i][0] == "ident" else None


def _value(tokens: list[Token], i: int) -> str | None:
    return tokens[i][3] if i < len(tokens) and tokens[i][0] == "other" else None


def _after_user(tokens: list[Token], i: int) -> int:
    """The token after a ``DEFINER=`` user at ``i`` (``CURRENT_USER[()]``, ``u@h``)."""
    if _keyword(tokens, i) == "CURRENT_USER":
        return i + 3 if _value(tokens, i + 1) == "(" and _value(tokens, i + 2) == ")" else i + 1
    return i + 3 if _value(tokens, i + 1) == "@" else i + 1


def _view_at(tokens: list[Token]) -> int | None:
    """The token of the (first) view a ``CREATE [OR REPLACE] [ALGORITHM=..] [DEFINER=..]
    [SQL SECURITY ..] VIEW [IF NOT EXISTS] v``, ``ALTER ... VIEW v`` or ``DROP VIEW [IF
    EXISTS] v, ...`` names; None for any other statement."""
    verb = _keyword(tokens, 0)
    if verb not in VIEW_VERBS:
        return None
    i = 1
    while True:
        word = _keyword(tokens, i)
        if verb == "CREATE" and word == "OR" and _keyword(tokens, i + 1) == "REPLACE":
            i += 2
        elif word == "ALGORITHM" and _value(tokens, i + 1) == "=":
            i += 3
        elif word == "DEFINER" and _value(tokens, i + 1) == "=":
            i = _after_user(tokens, i + 2)
        elif word == "SQL" and _keyword(tokens, i + 1) == "SECURITY":
            i += 3
        else:
            break
    if _keyword(tokens, i) != "VIEW":
        return None
    i += 1
    while _keyword(tokens, i) in ("IF", "NOT", "EXISTS"):
        i += 1
    return i if i < len(tokens) and tokens[i][0] in IDENTS else None


def _name_index(found: Scan, token: int) -> int:
    """The index in ``found.names`` of the identifier token ``token``."""
    start = found.tokens[token][1]
    return next(i for i, n in enumerate(found.names) if n.start == start)


def view_names(found: Scan, default: str) -> list[tuple[str, str]] | None:
    """The views a view DDL (see :func:`_view_at`) acts on as (database, view),
    unqualified names in ``default``; None when the statement is no view DDL."""
    at = _view_at(found.tokens)
    if at is None:
        return None
    i = _name_index(found, at)
    if found.words[0] == "DROP":
        return _all_tables(found, i, default)
    return [_table_at(found, i, default)[0]]


def read_tables(found: Scan, default: str) -> list[tuple[str, str]]:
    """The tables (or views) a ``CREATE TABLE`` or ``CREATE``/``ALTER VIEW`` reads, as
    (database, name), unqualified names in ``default``: ``LIKE``'s table, and those of the
    ``FROM``/``JOIN`` lists of its query (not the names of its ``WITH`` queries); empty for
    any other statement."""
    tokens, words = found.tokens, found.words
    if words[:1] != ["DROP"] and (at := _view_at(tokens)) is not None:
        return _from_tables(tokens, at + 1, default)
    kind = next((w for w in words[1:] if w not in OPTIONS), "")
    if words[:1] != ["CREATE"] or kind != "TABLE":
        return []
    names = found.names
    i = next((i for i, n in enumerate(names) if n.quoted or n.value.upper() not in LEADING), None)
    if i is None:
        return []
    read = []
    _, after = _table_at(found, i, default)
    if after + 1 < len(names) and not names[after].quoted and names[after].value.upper() == "LIKE":
        read.append(_table_at(found, after + 1, default)[0])
    return read + _from_tables(tokens, 0, default)


def _from_tables(tokens: list[Token], start: int, default: str) -> list[tuple[str, str]]:
    """The table names of every ``FROM``/``JOIN`` list (any depth) from token ``start``."""
    found: list[tuple[str, str]] = []
    ctes = _with_names(tokens)
    depth = 0
    lists: set[int] = set()  # depths at which a FROM list is open
    expect = False  # the next token is a table position
    for j in range(start, len(tokens)):
        kind, _, _, value = tokens[j]
        dotted = any(0 <= k < len(tokens) and tokens[k][0] == "dot" for k in (j - 1, j + 1))
        word = None if dotted else _keyword(tokens, j)
        if expect and kind in IDENTS:
            expect = False
            if _value(tokens, j + 1) == "(" or word == "DUAL":
                continue  # JSON_TABLE(...), FROM DUAL: no table
            if j + 2 < len(tokens) and tokens[j + 1][0] == "dot" and tokens[j + 2][0] in IDENTS:
                found.append((tokens[j][3], tokens[j + 2][3]))
            elif value not in ctes:
                found.append((default, value))
            continue
        if kind == "other" and value == "(":
            depth += 1
            lists.discard(depth)
            # (a JOIN b), (a, b): a nested join, whose names are table positions too
            expect = expect and _keyword(tokens, j + 1) not in SUBQUERY_WORDS
            if expect:
                lists.add(depth)
        elif kind == "other" and value == ")":
            lists.discard(depth)
            depth -= 1
        elif kind == "other" and value == "," and depth in lists:
            expect = True
        elif word in ("FROM", "JOIN") or (word == "STRAIGHT_JOIN" and depth in lists):
            expect = True
            if word == "FROM":
                lists.add(depth)
        elif word in LIST_ENDS:
            lists.discard(depth)
    return found


def _with_names(tokens: list[Token]) -> set[str]:
    """The names a ``WITH`` clause gives its queries: ``name [(columns)] AS (``."""
    names = set()
    for j, (kind, _, _, value) in enumerate(tokens):
        if kind not in IDENTS:
            continue
        k = j + 1
        if _value(tokens, k) == "(":
            while k < len(tokens) and _value(tokens, k) != ")":
                k += 1
            k += 1
        if _keyword(tokens, k) == "AS" and _value(tokens, k + 1) == "(":
            names.add(value)
    return names
