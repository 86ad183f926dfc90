"""The objects a replayed DDL creates or names: what a forced restore must not find on the
target before the replay runs (see :mod:`datatier.mysql.window_objects`).

A point-in-time restore with ``--force`` into a database that still holds an object the
replay window creates (a table created after the base, in place) met it during the replay:
``CREATE TABLE IF NOT EXISTS`` kept the target's table with its rows of after the target
moment, and a plain ``CREATE`` failed after the base was loaded. One the window names
without creating it (``DROP TABLE IF EXISTS later``, a no-op on the source then, ``later``
created after the target moment) was dropped or renamed by the replay. :func:`named_objects`
reads, from a statement scanned by :func:`~datatier.mysql.binlog.sqlrefs.scan`, the
(kind, database, name) of each object it creates, drops, renames or alters by name.
"""

from __future__ import annotations

from datatier.mysql.binlog.sqlrefs import IDENTS, OPTIONS, Scan, Token, statement_tables

CreatedObject = tuple[str, str, str]
"""(kind, database, name): kind is ``table`` (base tables), ``view``, ``sequence``,
``trigger``, ``procedure``, ``function``, ``package``, ``package body`` or ``event``; or
``foreign key`` (its name) or ``generated foreign key`` (the table declaring one without a
name: the server names it ``<table>_ibfk_<n>``), of the table DDL declaring it."""

KINDS = {"VIEW", "SEQUENCE", "TRIGGER", "PROCEDURE", "FUNCTION", "PACKAGE", "EVENT"}
# words that may stand between CREATE and the kind (DEFINER's account is skipped apart)
_PREFIX = {
    "OR", "REPLACE", "ALGORITHM", "=", "UNDEFINED", "MERGE", "TEMPTABLE", "SQL", "SECURITY",
    "INVOKER", "DEFINER", "AGGREGATE", "EDITIONABLE", "NONEDITIONABLE",
}  # fmt: skip


def named_objects(found: Scan, default: str) -> list[CreatedObject]:
    """The objects a DDL creates, drops, renames or alters by name, unqualified names in
    ``default``: the tables of a table DDL (``CREATE``/``ALTER``/``DROP``/``TRUNCATE
    TABLE``, both names of ``RENAME TABLE``, ``ALTER TABLE ... RENAME``, a partition
    converted to or from a table, an index's or trigger's table) but not of ``TEMPORARY``
    ones (a session's table is no object of the database); ``CREATE`` and ``DROP`` of a
    view, sequence, trigger, routine, package or event; ``ALTER EVENT ... RENAME TO``;
    the foreign keys a ``CREATE`` or ``ALTER TABLE`` declares. Empty for anything else.
    Executable comments are read as code (as the server runs them)."""
    words = found.words
    if len(words) < 2 or "TEMPORARY" in words[1:4]:
        return []
    found_objects = [("table", db, t) for db, t in statement_tables(found, default) or []]
    kind = next((w for w in words[1:] if w not in OPTIONS), "")
    if kind == "TABLE" and words[0] in ("CREATE", "ALTER") and found_objects:
        database, table = found_objects[0][1:]
        names, unnamed = declared_foreign_keys(found.tokens)
        found_objects += [("foreign key", database, name) for name in sorted(names)]
        if unnamed:
            found_objects.append(("generated foreign key", database, table))
    if words[0] == "ALTER" and kind == "TABLE":
        found_objects += _converted(found.tokens, default)
    elif words[0] == "ALTER" and kind in ("EVENT", "DEFINER"):
        found_objects += _event_renamed(found.tokens, default)
    elif words[0] == "CREATE" and kind != "TABLE":
        found_objects += _routine_like(found.tokens, default)
    elif words[0] == "DROP" and kind in KINDS:
        found_objects += _dropped(found.tokens, default, kind)
    return found_objects


def _qualified(tokens: list[Token], i: int, default: str) -> tuple[str, str, int] | None:
    """(database, name, the index after it) of the name at ``i``; None if none is there."""
    if i >= len(tokens) or tokens[i][0] not in IDENTS:
        return None
    if i + 2 < len(tokens) and tokens[i + 1][0] == "dot" and tokens[i + 2][0] in IDENTS:
        return tokens[i][3], tokens[i + 2][3], i + 3
    return default, tokens[i][3], i + 1


def _converted(tokens: list[Token], default: str) -> list[CreatedObject]:
    """``ALTER TABLE t CONVERT PARTITION p TO TABLE x`` (x created) and ``ALTER TABLE t
    CONVERT TABLE x TO PARTITION p ...`` (x consumed)."""
    out = []
    for i in range(len(tokens) - 1):
        if _word(tokens, i) != "CONVERT":
            continue
        if _word(tokens, i + 1) == "TABLE":
            at = i + 2
        elif _word(tokens, i + 1) == "PARTITION" and [_word(tokens, j) for j in (i + 3, i + 4)] == [
            "TO",
            "TABLE",
        ]:
            at = i + 5
        else:
            continue
        if (name := _qualified(tokens, at, default)) is not None:
            out.append(("table", name[0], name[1]))
    return out


def _event_renamed(tokens: list[Token], default: str) -> list[CreatedObject]:
    """``ALTER [DEFINER=...] EVENT e ... RENAME TO e2``: e and e2."""
    i = 1
    if _word(tokens, i) == "DEFINER" and i + 1 < len(tokens) and tokens[i + 1][3] == "=":
        i = _after_account(tokens, i + 2)
    named = _qualified(tokens, i + 1, default) if _word(tokens, i) == "EVENT" else None
    if named is None:
        return []
    out = [("event", named[0], named[1])]
    for j in range(named[2], len(tokens) - 1):
        renamed = _word(tokens, j) == "RENAME" and _word(tokens, j + 1) == "TO"
        if renamed and (new := _qualified(tokens, j + 2, default)) is not None:
            out.append(("event", new[0], new[1]))
    return out


def _dropped(tokens: list[Token], default: str, kind: str) -> list[CreatedObject]:
    """``DROP kind [IF EXISTS] name[, name...]`` (several for views and sequences)."""
    i = 2
    what = kind.lower()
    if kind == "PACKAGE" and _word(tokens, i) == "BODY":
        what, i = "package body", i + 1
    if [_word(tokens, j) for j in (i, i + 1)] == ["IF", "EXISTS"]:
        i += 2
    out = []
    while (named := _qualified(tokens, i, default)) is not None:
        out.append((what, named[0], named[1]))
        i = named[2]
        if i < len(tokens) and tokens[i][3] == "," and kind in ("VIEW", "SEQUENCE"):
            i += 1
            continue
        break
    return out


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


def declared_foreign_keys(tokens: list[Token]) -> tuple[set[str], bool]:
    """The names of the foreign keys a statement scanned as ``tokens``
    (:func:`~datatier.mysql.binlog.sqlrefs.scan`) declares (``CONSTRAINT name FOREIGN
    KEY``, ``FOREIGN KEY [IF NOT EXISTS] name (``), and whether it declares one without a
    name (a ``FOREIGN KEY (`` or a column's ``REFERENCES`` the server names)."""
    names: set[str] = set()
    references = 0
    for k, (kind, _, _, value) in enumerate(tokens):
        if kind == "ident" and value.upper() == "REFERENCES":
            references += 1
        if not (_is(tokens, k, "FOREIGN") and _is(tokens, k + 1, "KEY")):
            continue
        name = _symbol(tokens, k) or _index_name(tokens, k + 2)
        if name is not None:
            names.add(name)
    return names, references > len(names)


def _is(tokens: list[Token], i: int, word: str) -> bool:
    return i >= 0 and _word(tokens, i) == word


def _symbol(tokens: list[Token], foreign: int) -> str | None:
    """The name of ``CONSTRAINT name [IF NOT EXISTS]`` just before ``FOREIGN`` at
    ``foreign``, if there is one."""
    i = foreign - 1
    if i < 0 or tokens[i][0] not in IDENTS or _is(tokens, i, "CONSTRAINT"):
        return None
    name, i = tokens[i][3], i - 1
    while any(_is(tokens, i, w) for w in ("EXISTS", "NOT", "IF")):
        i -= 1
    return name if _is(tokens, i, "CONSTRAINT") else None


def _index_name(tokens: list[Token], i: int) -> str | None:
    """The index name after ``FOREIGN KEY [IF NOT EXISTS]`` (``i``: just after KEY)."""
    if [_word(tokens, j) for j in range(i, i + 3)] == ["IF", "NOT", "EXISTS"]:
        i += 3
    if i < len(tokens) and tokens[i][0] in IDENTS:
        return tokens[i][3]
    return None


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
