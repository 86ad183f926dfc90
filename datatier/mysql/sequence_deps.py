"""The sequences a backed-up table's column defaults draw from, and the refusal of a restore
whose tables would not find them.

The server writes a default drawing from a sequence as ``nextval(`db`.`s`)`` (``lastval``
for PREVIOUS VALUE FOR) and checks at CREATE TABLE that the sequence exists. Backups strip a
table's own database from its CREATE (:func:`~datatier.mysql.dumpdefs.table_statements`), so
the name follows ``--rename``; older backups keep it, and the server then looks in the
original database. :func:`default_sequences` finds those names in a CREATE, outside string
literals and comments. :func:`check_sequence_bases` refuses (exit 2, before anything
changes) a restore of tables whose sequences neither it nor the target has: their CREATE
would fail half-way. Only objects that mention a sequence function are parsed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.errors import UsageError
from datatier.mysql.binlog.sqlrefs import scan
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.labels import table_label
from datatier.mysql.staged_creates import bundle_creates, mentions, schema_creates
from datatier.mysql.view_deps import TableName, held_to_add

_FUNCTIONS = frozenset({"nextval", "lastval", "setval"})
_OPEN = ("other", "(")
_ENDS = (("other", ")"), ("other", ","))  # setval(`s`,5,1,0) goes on after the name
_CREATE_SEQUENCE = re.compile(rb"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?SEQUENCE\b", re.I | re.M)
_CALLS = re.compile(rb"(?:next|last|set)val\s*\(", re.IGNORECASE)


def default_sequences(create: str) -> set[tuple[str | None, str]]:
    """The sequences ``create`` (a CREATE TABLE) draws defaults from: (database or None for
    the table's own, name); read with the replay's scanner (strings and comments skipped,
    ``/*! */`` bodies read as code)."""
    tokens = [(kind, value) for kind, _, _, value in scan(create).tokens]
    found: set[tuple[str | None, str]] = set()
    for k, (kind, value) in enumerate(tokens):
        if kind != "ident" or value.lower() not in _FUNCTIONS or tokens[k + 1 : k + 2] != [_OPEN]:
            continue
        name = tokens[k + 2 : k + 6]
        if not name or name[0][0] != "qident":
            continue
        if len(name) == 4 and name[1][0] == "dot" and name[2][0] == "qident" and name[3] in _ENDS:
            found.add((name[0][1], name[2][1]))
        elif len(name) >= 2 and name[1] in _ENDS:
            found.add((None, name[0][1]))
    return found


@dataclass
class SchemaFacts:
    """What a restore's schema objects and bundles say about sequences: the CREATE TABLE of
    each table whose text calls a sequence function, and the tables that are sequences
    (source names; told by their objects, as manifests before format 2 name no kinds)."""

    creates: dict[TableName, str] = field(default_factory=dict)
    sequences: set[TableName] = field(default_factory=set)


def read_schema(
    objects: list[ObjectRecord], content: Callable[[str], Iterator[bytes]]
) -> SchemaFacts:
    """:class:`SchemaFacts` of ``objects``: schema objects (whole for the older unframed
    layout) and framed bundles' sections; unframed bundles are not read. A bundle is
    parsed only when its bytes mention a sequence function at all."""
    facts = SchemaFacts()
    for record in objects:
        if record.database is None:
            continue
        if record.kind == "schema" and record.table is not None:
            name = (record.database, record.table)
            text = b"".join(content(record.key))
            if _CREATE_SEQUENCE.search(text):
                facts.sequences.add(name)
            elif _CALLS.search(text):
                facts.creates.update((name, c) for c in schema_creates(text))
        elif record.kind == "bundle" and record.sections and mentions(content(record.key), _CALLS):
            facts.creates.update(bundle_creates(record, content(record.key)))
    return facts


def staged_sequence_refs(facts: SchemaFacts) -> dict[TableName, set[tuple[str | None, str]]]:
    """Per table of ``facts`` (source names), the sequences its defaults draw from: for
    manifests that record no references."""
    found = {name: default_sequences(create) for name, create in facts.creates.items()}
    return {name: refs for name, refs in found.items() if refs}


def check_sequence_bases(
    target: Endpoint,
    manifest: Manifest,
    refs: Mapping[TableName, set[tuple[str | None, str]]],
    sequences: set[TableName],
    restored: set[TableName],
    targets: Mapping[str, str],
) -> None:
    """UsageError (exit 2) naming each ``restored`` table (source names; ``targets`` maps
    their databases) whose defaults draw from a sequence (``refs``: per table, its
    sequences) neither the restore (a restored table of ``sequences``, not a plain table of
    that name) nor ``target`` has, and which of those the backup holds (to add to
    ``--tables``)."""
    needs: dict[TableName, set[tuple[str | None, str]]] = {}
    for (database, table), found in refs.items():
        if (database, table) in restored and found:
            # as the server reads them once the restore renamed their databases
            needs[(targets[database], table)] = {
                (None if db is None else targets.get(db, db), name) for db, name in found
            }
    if not needs:
        return
    have = {(targets[db], t) for db, t in restored & sequences}
    missing = _missing_sequences(target, needs, have)
    if not missing:
        return
    named = sorted({n for lacking in missing.values() for n in lacking})
    addable = held_to_add(manifest, targets, named)
    lines = "; ".join(
        f"table {table_label(db, t)} draws its DEFAULT from "
        f"{', '.join(table_label(d, s) for d, s in lacking)}"
        for (db, t), lacking in missing.items()
    )
    hint = "nothing was changed; "
    if addable:
        hint += (
            f"add {','.join(addable)} to --tables (the backup holds it; with --databases, "
            "its database to --databases), or "
        )
    hint += "restore the table where its sequence exists"
    raise UsageError(
        f"{lines}: neither this restore nor {target.label} has "
        f"{'it' if len(named) == 1 else 'them'} (as a sequence), so the table cannot be "
        "created",
        hint=hint,
    )


def _missing_sequences(
    target: Endpoint,
    needs: Mapping[TableName, set[tuple[str | None, str]]],
    have: set[TableName],
) -> dict[TableName, list[TableName]]:
    """Per table (target names) the sequences it needs that are neither in ``have`` nor a
    SEQUENCE on ``target`` (a plain table or view of that name does not count: the server
    refuses it at CREATE TABLE)."""
    wanted = {
        (db, t): {(ref or db, name) for ref, name in refs} - have for (db, t), refs in needs.items()
    }
    asked = sorted(set().union(*wanted.values()))
    present: set[TableName] = set()
    if asked:
        with connect(target) as conn, conn.cursor() as cur:
            for database in sorted({db for db, _ in asked}):
                cur.execute(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'SEQUENCE'",
                    (database,),
                )
                present |= {(database, str(row[0])) for row in cur.fetchall()}
    return {t: sorted(lacks - present) for t, lacks in sorted(wanted.items()) if lacks - present}
