"""The tables and views a backed-up view reads, and the refusal of a restore whose views
would not find them.

A view's definition is the server's own text (``SHOW CREATE VIEW``): every table it reads
is a backtick-quoted name after ``from`` or ``join``, qualified by its database unless it
is in the view's own (the backup strips that qualifier, so ``--rename`` moves it along).
:func:`view_reads` finds those names; names of common table expressions and the ``from``
of functions (``extract(year from ...)``) are not tables and are left out. A name the
scan misreads can only make it miss a table, never invent one the server would not need
(it reads quoted names only where a table may stand).

:func:`missing_bases` finds, for a restore's views, the tables they read that neither the
restore nor the target has: the restore refuses them (exit 2) before anything changes, since
the view's definition would fail and leave its placeholder behind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.backup.names import held_tables, show
from datatier.errors import UsageError
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.creator_text import CLIENT_CHARSET, python_codec
from datatier.mysql.labels import table_label
from datatier.mysql.sqltext import _ident_end, _string_end, parse_block

TableName = tuple[str, str]

_WORD = re.compile(r"[A-Za-z0-9_$]+")
_SUBQUERY_OPENERS = frozenset(
    {"in", "exists", "as", "from", "join", "on", "select", "where", "and", "or", "not", "any",
     "all", "some", "union", "lateral", "values", "with", "recursive", "having", "when",
     "then", "else", "is", "like", "by", "straight_join"}
)  # fmt: skip
"""Words before ``(`` that open a subquery or a group, not a function call."""


@dataclass(frozen=True)
class _Token:
    kind: str  # ident (backtick-quoted) | word | string | punct
    text: str  # ident: the name unquoted; word: lower-cased


def _tokens(sql: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            end = _string_end(sql, i)
            out.append(_Token("string", sql[i:end]))
            i = end
        elif ch == "`":
            end = _ident_end(sql, i)
            out.append(_Token("ident", sql[i + 1 : end - 1].replace("``", "`")))
            i = end
        elif match := _WORD.match(sql, i):
            out.append(_Token("word", match.group().lower()))
            i = match.end()
        else:
            out.append(_Token("punct", ch))
            i += 1
    return out


def _cte_names(tokens: list[_Token]) -> set[str]:
    """Names defined by ``WITH [RECURSIVE] name [(cols)] AS (``."""
    names = set()
    for i, tok in enumerate(tokens):
        after = tokens[i + 1] if i + 1 < len(tokens) else _Token("punct", "")
        if tok.kind == "word" and tok.text in ("with", "recursive") and after.kind != "punct":
            names.add(after.text)
        if tok.text == "as" and tok.kind == "word" and i + 1 < len(tokens):
            if tokens[i + 1].text != "(" or i == 0:
                continue
            j = i - 1
            if tokens[j].text == ")":  # a column list: skip back to its "("
                while j > 0 and tokens[j].text != "(":
                    j -= 1
                j -= 1
            if j >= 0 and tokens[j].kind in ("ident", "word"):
                names.add(tokens[j].text)
    return names


def view_reads(statement: str) -> set[tuple[str | None, str]]:
    """The (database or None for the view's own, name) of every table or view that the
    ``CREATE VIEW`` ``statement`` reads (module docstring)."""
    tokens = _tokens(statement)
    ctes = _cte_names(tokens)
    found: set[tuple[str | None, str]] = set()
    opened: list[bool] = []  # per open "(": is it a function call's?
    for i, tok in enumerate(tokens):
        if tok.kind == "punct" and tok.text == "(":
            before = tokens[i - 1] if i else None
            opened.append(
                before is not None
                and before.kind == "word"
                and before.text not in _SUBQUERY_OPENERS
            )
        elif tok.kind == "punct" and tok.text == ")":
            if opened:
                opened.pop()
        elif tok.kind == "word" and tok.text in ("from", "join", "straight_join"):
            if opened and opened[-1]:
                continue  # extract(year from x), trim(... from x)
            j = i + 1
            while j < len(tokens) and tokens[j].text == "(" and tokens[j].kind == "punct":
                j += 1
            if j >= len(tokens) or tokens[j].kind != "ident":
                continue
            first = tokens[j].text
            dotted = j + 2 < len(tokens) and tokens[j + 1].text == "."
            if dotted and tokens[j + 2].kind == "ident":
                found.add((first, tokens[j + 2].text))
            elif first not in ctes:
                found.add((None, first))
    return found


def definition_reads(text: bytes) -> set[tuple[str | None, str]]:
    """:func:`view_reads` of the ``CREATE`` statement in a backed-up view object, read in
    the charset its creation session sets (UTF-8 for objects that set none)."""
    statements = parse_block(text) or [text]
    found: set[tuple[str | None, str]] = set()
    codec: str | None = "utf-8"
    for raw in statements:
        charset = CLIENT_CHARSET.match(raw)
        if charset:
            codec = python_codec(charset.group(1).decode())
        statement = raw.decode(codec or "utf-8", "surrogateescape")
        if re.match(r"\s*CREATE\b", statement, re.IGNORECASE):
            found |= view_reads(statement)
    return found


def missing_bases(
    target: Endpoint,
    views: Mapping[TableName, Iterable[tuple[str | None, str]]],
    restored: set[TableName],
) -> dict[TableName, list[TableName]]:
    """Per view (target database, name) of ``views`` (what it reads, None standing for its
    own database), the tables it reads that are neither ``restored`` nor on ``target``."""
    wanted: dict[TableName, set[TableName]] = {}
    for (database, view), reads in views.items():
        needs = {(db or database, name) for db, name in reads}
        wanted[(database, view)] = {t for t in needs if t not in restored}
    asked = sorted(set().union(*wanted.values())) if wanted else []
    present: set[TableName] = set()
    if asked:
        with connect(target) as conn, conn.cursor() as cur:
            for database in sorted({db for db, _ in asked}):
                cur.execute(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                    (database,),
                )
                present |= {(database, str(row[0])) for row in cur.fetchall()}
    return {
        view: sorted(needs - present) for view, needs in sorted(wanted.items()) if needs - present
    }


def held_to_add(
    manifest: Manifest, targets: Mapping[str, str], named: Iterable[TableName]
) -> list[str]:
    """Of ``named`` (target names; ``targets`` maps source databases to them, a database it
    does not map keeps its name), those the backup holds, as ``--tables`` entries."""
    sources = {dst: src for src, dst in targets.items()}
    held = held_tables(manifest)
    return [show(sources.get(db, db), t) for db, t in named if (sources.get(db, db), t) in held]


def staged_view_reads(
    objects: list[ObjectRecord], content: Callable[[str], Iterator[bytes]]
) -> dict[TableName, set[tuple[str | None, str]]]:
    """What each view of ``objects`` reads (source names), from its definition object's
    decompressed bytes (``content`` by key): for manifests that record no references."""
    return {
        (o.database, o.table): definition_reads(b"".join(content(o.key)))
        for o in objects
        if o.kind == "views" and o.database is not None and o.table is not None
    }


def check_view_bases(
    target: Endpoint,
    manifest: Manifest,
    reads: Mapping[TableName, Iterable[tuple[str | None, str]]],
    restored: set[TableName],
    targets: Mapping[str, str],
) -> None:
    """UsageError (exit 2) naming each view of ``reads`` (source names: what each view
    reads) whose tables neither ``restored`` (source names; ``targets`` maps their
    databases) nor ``target`` has, and which of them the backup holds (to add to
    ``--tables``)."""
    views = {(targets[db], v): needs for (db, v), needs in reads.items()}
    if not views:
        return
    have = {(targets[db], t) for db, t in restored} | set(views)
    missing = missing_bases(target, views, have)
    if not missing:
        return
    named = sorted({n for needs in missing.values() for n in needs})
    addable = held_to_add(manifest, targets, named)
    lines = "; ".join(
        f"view {table_label(db, v)} reads {', '.join(table_label(d, t) for d, t in needs)}"
        for (db, v), needs in missing.items()
    )
    hint = "nothing was changed; "
    if addable:
        hint += f"add {','.join(addable)} to --tables (the backup holds them), or "
    hint += "restore the view where the tables it reads exist"
    raise UsageError(
        f"{lines}: neither this restore nor {target.label} has "
        f"{'it' if len(named) == 1 else 'them'}, so the view cannot be created",
        hint=hint,
    )
