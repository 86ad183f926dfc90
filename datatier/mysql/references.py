"""What a backup's views and tables need on a target, recorded in its manifest at backup
time, so a restore refuses a selection that cannot load before it fetches anything (a
``--dry-run`` too, and before any Glacier request).

``options["references"]`` of a MySQL manifest (from this release on) holds
``{"views": [[db, view, reads], ...], "sequences": [[db, table, sequences], ...],
"parents": [[db, table, [column, ...]], ...]}``: per view, the tables and views it reads;
per table whose column defaults draw from sequences, those sequences; each entry
``[database or null for the object's own, name]``; and the columns a foreign key of a
backed-up table references, per referenced table (since 2026-12-05: a restore keeps an
index those columns lead in the parent's CREATE TABLE, which a child's CREATE TABLE needs;
without the list it builds every index with the rows). They are
found exactly as a restore finds them in the objects (:func:`~datatier.mysql.view_deps.
definition_reads` on the view object's bytes, :func:`~datatier.mysql.sequence_deps.
default_sequences` on the CREATE TABLE written), so both paths refuse the same restores.
Older manifests have none: the restore then reads the objects after fetching them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from datatier.backup.manifest import Manifest
from datatier.errors import IntegrityFailure
from datatier.mysql.catalogue import Catalogue
from datatier.mysql.dumpdefs import table_statements
from datatier.mysql.referenced import Referenced, referenced_keys
from datatier.mysql.sequence_deps import default_sequences
from datatier.mysql.view_deps import TableName, definition_reads

Refs = dict[TableName, set[tuple[str | None, str]]]


@dataclass(frozen=True)
class References:
    """Per view (source names) what it reads; per table what sequences it draws from."""

    views: Refs
    sequences: Refs
    parents: dict[TableName, frozenset[tuple[str, ...]]] | None = None
    """Per table a foreign key references, the column lists referenced (None: not
    recorded, an older backup)."""


def record_references(catalogue: Catalogue, views: Mapping[TableName, bytes]) -> dict[str, Any]:
    """``options["references"]`` for a backup of ``catalogue`` whose view objects are
    ``views`` (by source name, as written; module docstring)."""
    reads = [[db, v, _pairs(definition_reads(text))] for (db, v), text in sorted(views.items())]
    sequences = []
    parents: set[Referenced] = set()
    for table in catalogue.tables:
        if table.kind == "table":
            found = default_sequences(table_statements(table)[1])
            if found:
                sequences.append([table.database, table.name, _pairs(found)])
            create = table.create.encode("utf-8", "surrogateescape")
            parents |= referenced_keys(create, table.database)
    keys = [
        [db, t, list(cols)]
        for db, t, cols in sorted(parents, key=lambda p: (p[0] or "", p[1], p[2]))
    ]
    return {"views": reads, "sequences": sequences, "parents": keys}


def recorded_references(manifest: Manifest) -> References | None:
    """The references ``manifest`` records; None when it records none (an older backup);
    IntegrityFailure (exit 4) when they are malformed."""
    doc = manifest.options.get("references")
    if doc is None:
        return None
    where = f"manifest of backup {manifest.backup_id}: options.references"
    if not isinstance(doc, Mapping):
        raise IntegrityFailure(f"{where} is not an object")
    parents = doc.get("parents")
    return References(
        _refs(doc.get("views"), where),
        _refs(doc.get("sequences"), where),
        None if parents is None else _keys(parents, f"{where}.parents"),
    )


def _pairs(found: set[tuple[str | None, str]]) -> list[list[str | None]]:
    return [[db, name] for db, name in sorted(found, key=lambda p: (p[0] or "", p[1]))]


def _entries(entries: object, where: str) -> Iterator[tuple[TableName, list[Any]]]:
    """Each ``[db, name, [...]]`` of the list ``entries`` (IntegrityFailure otherwise)."""
    if not isinstance(entries, list):
        raise IntegrityFailure(f"{where}: expected a list, got {entries!r:.80}")
    for entry in entries:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
            and isinstance(entry[2], list)
        ):
            raise IntegrityFailure(f"{where}: malformed entry {entry!r:.120}")
        yield (entry[0], entry[1]), entry[2]


def _keys(entries: object, where: str) -> dict[TableName, frozenset[tuple[str, ...]]]:
    out: dict[TableName, set[tuple[str, ...]]] = {}
    for table, columns in _entries(entries, where):
        if not columns or not all(isinstance(c, str) for c in columns):
            raise IntegrityFailure(f"{where}: malformed columns {columns!r:.120} of {table}")
        out.setdefault(table, set()).add(tuple(columns))
    return {table: frozenset(keys) for table, keys in out.items()}


def _refs(entries: object, where: str) -> Refs:
    out: Refs = {}
    for table, pairs in _entries(entries, where):
        needs: set[tuple[str | None, str]] = set()
        for pair in pairs:
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and (pair[0] is None or isinstance(pair[0], str))
                and isinstance(pair[1], str)
            ):
                raise IntegrityFailure(f"{where}: malformed reference {pair!r:.120}")
            needs.add((pair[0], pair[1]))
        out[table] = needs
    return out
