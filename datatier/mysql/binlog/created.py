"""The objects a replayed DDL creates, by name: what a forced restore must not find on the
target before the replay runs (see :mod:`datatier.mysql.window_objects`).

A point-in-time restore with ``--force`` into a database that still holds an object the
replay window creates (a table created after the base, in place) met it during the replay:
``CREATE TABLE IF NOT EXISTS`` kept the target's table with its rows of after the target
moment, and a plain ``CREATE`` failed after the base was loaded. :func:`created_objects`
reads, from a statement scanned by :func:`~datatier.mysql.binlog.sqlrefs.scan`, the
(kind, database, name) of each object it brings into being under a name.
"""

from __future__ import annotations

from datatier.mysql.binlog.sqlrefs import IDENTS, OPTIONS, Scan, Token, statement_tables

CreatedObject = tuple[str, str, str]
"""(kind, database, name): kind is ``table`` (base tables), ``view``, ``sequence``,
``trigger``, ``procedure``, ``function``, ``package``, ``package body`` or ``event``."""

KINDS = {"VIEW", "SEQUENCE", "TRIGGER", "PROCEDURE", "FUNCTION", "PACKAGE", "EVENT"}
# words that may stand between CREATE and the kind (DEFINER's account is skipped apart)
_PREFIX = {
    "OR", "REPLACE", "ALGORITHM", "=", "UNDEFINED", "MERGE", "TEMPTABLE", "SQL", "SECURITY",
    "INVOKER", "DEFINER", "AGGREGATE", "EDITIONABLE", "NONEDITIONABLE",
}  # fmt: skip


def created_objects(found: Scan, default: str) -> list[CreatedObject]:
    """The objects a statement creates under a name, unqualified names in ``default``:
    ``CREATE TABLE`` (not ``TEMPORARY``: a session's table is no object of the database),
    the new names of ``RENAME TABLE`` and ``ALTER TABLE ... RENAME``, and ``CREATE`` of a
    view, sequence, trigger, routine, package or event. Empty for anything else. Executable
    comments are read as code (as the server runs them)."""
    words = found.words
    if len(words) < 2:
        return []
    kind = next((w for w in words[1:] if w not in OPTIONS), "")
    if words[0] == "RENAME" and kind in ("TABLE", "TABLES"):
        named = statement_tables(found, default) or []
        return [("table", db, t) for db, t in named[1::2]]
    if words[0] == "ALTER" and kind == "TABLE":
        named = statement_tables(found, default) or []
        return [("table", db, t) for db, t in named[1:]]
    if words[0] != "CREATE":
        return []
    if kind == "TABLE":
        if "TEMPORARY" in words[1 : words.index("TABLE")]:
            return []
        named = statement_tables(found, default) or []
        return [("table", db, t) for db, t in named[:1]]
    return _routine_like(found.tokens, default)


def _routine_like(tokens: list[Token], default: str) -> list[CreatedObject]:
    """``CREATE [OR REPLACE] [ALGORITHM=...] [DEFINER=account] [SQL SECURITY ...]
    [AGGREGATE] kind [IF NOT EXISTS] [db.]name``."""
    i = 1
    while i < len(tokens):
        kind, _, _, value = tokens[i]
        word = value.upper() if kind == "ident" else value
        if kind == "ident" and word in KINDS:
            break
        if word == "DEFINER" and i + 1 < len(tokens) and tokens[i + 1][3] == "=":
            i = _after_account(tokens, i + 2)
            continue
        if word not in _PREFIX:
            return []
        i += 1
    else:
        return []
    kind_word = tokens[i][3].upper()
    i += 1
    if kind_word == "PACKAGE" and _word(tokens, i) == "BODY":
        kind_word, i = "PACKAGE BODY", i + 1
    if [_word(tokens, j) for j in range(i, i + 3)] == ["IF", "NOT", "EXISTS"]:
        i += 3
    if i >= len(tokens) or tokens[i][0] not in IDENTS:
        return []
    database, name = default, tokens[i][3]
    if i + 2 < len(tokens) and tokens[i + 1][0] == "dot" and tokens[i + 2][0] in IDENTS:
        database, name = name, tokens[i + 2][3]
    return [(kind_word.lower(), database, name)]


def _word(tokens: list[Token], i: int) -> str | None:
    return tokens[i][3].upper() if i < len(tokens) and tokens[i][0] == "ident" else None


def _after_account(tokens: list[Token], i: int) -> int:
    """The index after the account at ``i`` (``user``, ``user@host``, quoted or not,
    ``CURRENT_USER[()]``, ``CURRENT_ROLE``)."""
    if _word(tokens, i) in ("CURRENT_USER", "CURRENT_ROLE"):
        i += 1
        if i + 1 < len(tokens) and tokens[i][3] == "(" and tokens[i + 1][3] == ")":
            i += 2
        return i
    i += 1  # the user: a word, a quoted name or a string
    if i < len(tokens) and tokens[i][3] == "@":
        i += 2  # the host
    return i
