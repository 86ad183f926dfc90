"""The sequences a backed-up table's column defaults draw from, and the refusal of a restore
whose tables would not find them.

The server writes a default drawing from a sequence as ``nextval(`db`.`s`)`` (``lastval``
for PREVIOUS VALUE FOR) and checks at CREATE TABLE that the sequence exists. Backups strip a
table's own database from its CREATE (:func:`~datatier.mysql.dumpdefs.table_statements`), so
the name follows ``--rename``; older backups keep it, and the server then looks in the
original database. :func:`default_sequences` finds those names in a CREATE, outside string
literals and comments' quoted text (a name the scan misses can only let the restore fail
later, never refuse a good one). :func:`check_sequence_bases` refuses (exit 2, before
anything changes) a restore of tables whose sequences neither it nor the target has: their
CREATE would fail half-way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.backup.names import held_tables, show
from datatier.errors import UsageError
from datatier.mysql.bundle_frames import BUNDLE_HEAD_BYTES, BundleStatements, is_framed_bundle
from datatier.mysql.connection import Endpoint
from datatier.mysql.frames import FrameError
from datatier.mysql.labels import table_label
from datatier.mysql.sqltext import _ident_end, _string_end, parse_block
from datatier.mysql.view_deps import TableName, missing_bases

_FUNCTIONS = frozenset({"nextval", "lastval"})
_WORD = re.compile(r"[A-Za-z0-9_$]+")
_CREATE_TABLE = re.compile(rb"\s*CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\b", re.IGNORECASE)


def default_sequences(create: str) -> set[tuple[str | None, str]]:
    """The sequences ``create`` (a CREATE TABLE) draws defaults from: (database or None for
    the table's own, name)."""
    tokens: list[tuple[str, str]] = []  # (kind, text): ident unquoted, word lower-cased
    i, n = 0, len(create)
    while i < n:
        ch = create[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            i = _string_end(create, i)
            tokens.append(("string", ""))
        elif ch == "`":
            end = _ident_end(create, i)
            tokens.append(("ident", create[i + 1 : end - 1].replace("``", "`")))
            i = end
        elif match := _WORD.match(create, i):
            tokens.append(("word", match.group().lower()))
            i = match.end()
        else:
            tokens.append(("punct", ch))
            i += 1
    found: set[tuple[str | None, str]] = set()
    for k, (kind, text) in enumerate(tokens):
        if kind != "word" or text not in _FUNCTIONS or tokens[k + 1 : k + 2] != [("punct", "(")]:
            continue
        name = tokens[k + 2 : k + 6]
        if (
            len(name) >= 4
            and name[0][0] == "ident"
            and name[1] == ("punct", ".")
            and (name[2][0] == "ident" and name[3] == ("punct", ")"))
        ):
            found.add((name[0][1], name[2][1]))
        elif len(name) >= 2 and name[0][0] == "ident" and name[1] == ("punct", ")"):
            found.add((None, name[0][1]))
    return found


def table_creates(
    objects: list[ObjectRecord], content: Callable[[str], Iterator[bytes]]
) -> Iterator[tuple[TableName, str]]:
    """(source database, table) and its CREATE TABLE, for the tables of ``objects`` (their
    schema objects and the sections of framed bundles; older bundles are not read)."""
    for record in objects:
        if record.database is None:
            continue
        if record.kind == "schema" and record.table is not None:
            for statement in parse_block(b"".join(content(record.key))) or []:
                if _CREATE_TABLE.match(statement):
                    yield (record.database, record.table), _text(statement)
        elif record.kind == "bundle" and record.sections:
            yield from _bundle_creates(record, content)


def _bundle_creates(
    record: ObjectRecord, content: Callable[[str], Iterator[bytes]]
) -> Iterator[tuple[TableName, str]]:
    assert record.database is not None
    chunks = list(content(record.key))
    if not is_framed_bundle(b"".join(chunks)[:BUNDLE_HEAD_BYTES]):
        return
    statements = BundleStatements(chunks, [s.start for s in record.sections])
    try:
        for statement in statements:
            if statements.section >= 0 and _CREATE_TABLE.match(statement):
                table = record.sections[statements.section].table
                yield (record.database, table), _text(statement)
    except FrameError:  # the section check refuses the bundle, naming what is wrong
        return


def _text(statement: bytes) -> str:
    return statement.decode("utf-8", "surrogateescape")


def check_sequence_bases(
    target: Endpoint,
    manifest: Manifest,
    objects: list[ObjectRecord],
    restored: set[TableName],
    targets: Mapping[str, str],
    content: Callable[[str], Iterator[bytes]],
) -> None:
    """UsageError (exit 2) naming each ``restored`` table (source names; ``targets`` maps
    their databases) whose defaults draw from a sequence neither the restore nor ``target``
    has, and which of those the backup holds (to add to ``--tables``)."""
    needs: dict[TableName, set[tuple[str | None, str]]] = {}
    for (database, table), create in table_creates(objects, content):
        if (database, table) in restored and (found := default_sequences(create)):
            # as the server reads them once the restore renamed their databases
            needs[(targets[database], table)] = {
                (None if db is None else targets.get(db, db), name) for db, name in found
            }
    if not needs:
        return
    have = {(targets[db], t) for db, t in restored}
    missing = missing_bases(target, needs, have)
    if not missing:
        return
    sources = {dst: src for src, dst in targets.items()}
    held = held_tables(manifest)
    named = sorted({n for lacking in missing.values() for n in lacking})
    addable = [show(sources[db], s) for db, s in named if (sources.get(db), s) in held]
    lines = "; ".join(
        f"table {table_label(db, t)} draws its DEFAULT from "
        f"{', '.join(table_label(d, s) for d, s in lacking)}"
        for (db, t), lacking in missing.items()
    )
    hint = "nothing was changed; "
    if addable:
        hint += f"add {','.join(addable)} to --tables (the backup holds it), or "
    hint += "restore the table where its sequence exists"
    raise UsageError(
        f"{lines}: neither this restore nor {target.label} has "
        f"{'it' if len(named) == 1 else 'them'}, so the table cannot be created",
        hint=hint,
    )
