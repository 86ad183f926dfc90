"""Whether a replayed statement can be shown not to depend on its session's default database.

A query event runs in the default database its session had. When every object the statement
names is qualified (``shop.t``), that database plays no part, and a replay restricted to
other databases need not refuse the statement because of it. This module proves that only
for statement forms it can check token by token, and gives up (None) on anything else: a
false "depends" costs a refusal, a false "does not depend" would replay a statement
against the wrong tables.

Proven forms: ``INSERT``/``REPLACE``/``UPDATE``/``DELETE ... FROM`` and ``DROP TABLE``,
``TRUNCATE [TABLE]``, ``RENAME TABLE``, where

- every table position (the verb's table; after ``FROM``, ``JOIN``, ``INTO``, ``USING``,
  ``TABLE``, ``FOR`` (``NEXT VALUE FOR seq``); after a comma in a table list) holds
  ``db.name``, or a parenthesized ``SELECT``;
- no unqualified name is called (``f()``, ```f`()``: a stored function resolves in the
  default database; built-ins such as ``NOW()`` or ``DATABASE()`` give up too), except the
  reserved words listed in :data:`NOT_CALLS`, which the parser never reads as a routine;
- there is one statement (no ``;``), no executable comment (``/*! */``: code the server
  may skip, changing what is adjacent), no ``WITH``, and the session's ``sql_mode`` has
  neither ``ORACLE`` (another grammar) nor ``NO_BACKSLASH_ESCAPES`` with a backslash in the
  text (strings would then end elsewhere than the tokenizer thinks).

``CREATE``/``ALTER TABLE`` (``LIKE``, ``REFERENCES``, ``RENAME TO``, ``UNION=``, ``SELECT``,
index names before parentheses), views, routines, triggers and events are not proven.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datatier.mysql.binlog.sqlrefs import Scan, Token

MODE_ORACLE = 1 << 9
MODE_NO_BACKSLASH_ESCAPES = 1 << 20
IDENTS = ("ident", "qident")
# Reserved words: unquoted, the parser never reads them as a routine name before "(".
NOT_CALLS = {
    "VALUES", "IN", "AND", "OR", "NOT", "XOR", "ON", "WHERE", "SET", "SELECT", "EXISTS",
    "IF", "WHEN", "THEN", "ELSE", "LIKE", "BETWEEN", "IS", "INTERVAL", "DEFAULT", "MOD",
    "LEFT", "RIGHT", "CHAR", "CONVERT", "REPLACE", "INSERT", "AS", "USING", "REGEXP",
}  # fmt: skip
TABLE_WORDS = {"FROM", "JOIN", "STRAIGHT_JOIN", "INTO", "USING", "TABLE", "FOR"}
# Words that end a table list (FROM a, b / UPDATE a, b / USING a, b) at its own depth.
LIST_ENDS = {
    "WHERE", "SET", "GROUP", "HAVING", "ORDER", "LIMIT", "UNION", "VALUES", "VALUE",
    "SELECT", "RETURNING", "WINDOW", "FOR", "LOCK", "INTO", "EXCEPT", "INTERSECT", "DUPLICATE",
}  # fmt: skip
MODIFIERS = {"LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "QUICK", "INTO"}
DDL = {"DROP", "TRUNCATE", "RENAME"}


def qualified_tables(
    found: Scan, sql_mode: int = 0, tables: list[tuple[str, str]] | None = None
) -> set[str] | None:
    """The databases of the statement's tables when it is proven that nothing in it is
    looked up in the default database (see module docstring); None when not proven.
    ``tables``: what :func:`~datatier.mysql.binlog.sqlrefs.statement_tables` gives for a
    table DDL with an empty default database (unqualified names: database "")."""
    tokens = found.tokens
    if not tokens or found.conditional or sql_mode & MODE_ORACLE:
        return None
    if sql_mode & MODE_NO_BACKSLASH_ESCAPES and any("\\" in t[3] for t in tokens):
        return None
    if any(t[0] == "other" and t[3] == ";" for t in tokens):
        return None  # more than one statement: only the first one's verb would be checked
    words = found.words
    if words[:1] == ["DELETE"] or words[:1] in (["INSERT"], ["REPLACE"], ["UPDATE"]):
        return _dml(tokens)
    if words[:1] and words[0] in DDL:
        return _ddl(found, tables)
    return None


def _keyword(token: Token) -> str | None:
    """The upper-cased word of an unquoted identifier token (None for anything else)."""
    return token[3].upper() if token[0] == "ident" else None


def _qualified_at(tokens: list[Token], i: int) -> str | None:
    """The database of a ``db.name`` starting at ``i`` (exactly two parts), else None."""
    if (
        i + 2 < len(tokens)
        and tokens[i][0] in IDENTS
        and tokens[i + 1][0] == "dot"
        and tokens[i + 2][0] in IDENTS
        and (i + 3 >= len(tokens) or tokens[i + 3][0] != "dot")
    ):
        return tokens[i][3]
    return None


def _dml(tokens: list[Token]) -> set[str] | None:
    databases: set[str] = set()
    verb = _keyword(tokens[0])
    i = 1
    while i < len(tokens) and _keyword(tokens[i]) in MODIFIERS:
        i += 1
    if verb == "DELETE":
        if i >= len(tokens) or _keyword(tokens[i]) != "FROM":
            return None  # DELETE t1, t2 FROM ...: the delete list resolves in the default db
    else:
        db = _qualified_at(tokens, i)
        if db is None:
            return None
        databases.add(db)
    depth = 0
    lists = {0} if verb == "UPDATE" else set()  # depths at which a table list is open
    expect_table = False
    for j, (kind, _, _, value) in enumerate(tokens):
        dotted = _preceded_by_dot(tokens, j) or (j + 1 < len(tokens) and tokens[j + 1][0] == "dot")
        word = None if dotted else _keyword(tokens[j])
        if expect_table:
            expect_table = False
            if kind == "other" and value == "(":
                after = tokens[j + 1] if j + 1 < len(tokens) else None
                if after is None or _keyword(after) != "SELECT":
                    return None  # a nested join: its names are not checked here
            else:
                db = _qualified_at(tokens, j)
                if db is None:
                    return None
                databases.add(db)
        if kind == "other" and value == "(":
            if j > 0 and tokens[j - 1][0] in IDENTS:
                if _preceded_by_dot(tokens, j - 1):
                    if j > 2 and not _preceded_by_dot(tokens, j - 3):
                        databases.add(tokens[j - 3][3])  # db.f(...): f is db's routine
                elif _keyword(tokens[j - 1]) not in NOT_CALLS | TABLE_WORDS:
                    return None  # f(...): a routine looked up in the default database
            depth += 1
            lists.discard(depth)
        elif kind == "other" and value == ")":
            lists.discard(depth)
            depth -= 1
        elif kind == "other" and value == "," and depth in lists:
            expect_table = True
        elif word == "WITH":
            return None
        elif word in TABLE_WORDS and j > 0:
            if word == "USING" and _column_list(tokens, j + 1):
                continue  # JOIN ... USING (c1, c2)
            expect_table = True
            if word in ("FROM", "USING"):
                lists.add(depth)
            if word == "FOR" or word == "INTO":
                lists.discard(depth)
        elif word in LIST_ENDS:
            lists.discard(depth)
    if expect_table:
        return None
    return databases


def _preceded_by_dot(tokens: list[Token], i: int) -> bool:
    return i > 0 and tokens[i - 1][0] == "dot"


def _column_list(tokens: list[Token], i: int) -> bool:
    """Whether ``tokens[i:]`` starts with ``(name, name, ...)`` of plain names."""
    if i >= len(tokens) or tokens[i][3] != "(" or tokens[i][0] != "other":
        return False
    j = i + 1
    while j + 1 < len(tokens) and tokens[j][0] in IDENTS and tokens[j + 1][3] in (",", ")"):
        if tokens[j + 1][3] == ")":
            return True
        j += 2
    return False


def _ddl(found: Scan, tables: list[tuple[str, str]] | None) -> set[str] | None:
    """DROP TABLE, TRUNCATE, RENAME TABLE with every table qualified (their only names)."""
    words = found.words
    if words[0] == "DROP" and "TABLE" not in words[:3]:
        return None  # DROP INDEX/VIEW/...: not proven
    if words[0] == "RENAME" and words[1:2] not in (["TABLE"], ["TABLES"]):
        return None
    if not tables or any(not db for db, _ in tables):
        return None
    return {db for db, _ in tables}
