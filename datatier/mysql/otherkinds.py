"""``restore --force`` over a target object of another kind: the target's table, sequence or
view named like one the restore creates, but not of its kind.

A backup's objects drop what they replace with their own kind's ``DROP ... IF EXISTS``
(``DROP TABLE`` in a table's, ``DROP SEQUENCE`` in a sequence's, ``DROP VIEW`` in a view's
placeholder), which leaves an object of another kind in place, and the CREATE then fails
half-way ("Table 'x' already exists"). :func:`other_kinds` finds those objects (reads
only: called for the plan's report and again just before loading), :func:`drop_conflicts`
drops them; nothing the restore does not create is touched. Already-written backups need no
change.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.labels import table_label
from datatier.mysql.lettercase import apart, folds_names, name_key
from datatier.mysql.sqltext import ident

TableName = tuple[str, str]

KIND_TYPES = {
    "table": ("BASE TABLE", "SYSTEM VERSIONED"),
    "sequence": ("SEQUENCE",),
    "view": ("VIEW",),
}
"""The ``information_schema.TABLES.TABLE_TYPE`` values each kind a restore creates takes
over with its own ``DROP ... IF EXISTS`` (``DROP TABLE`` drops a sequence or a
system-versioned table too, but a sequence is dropped as what it is)."""

_DROP = {"BASE TABLE": "TABLE", "SYSTEM VERSIONED": "TABLE", "SEQUENCE": "SEQUENCE", "VIEW": "VIEW"}
_SHOWN = {"BASE TABLE": "table", "SYSTEM VERSIONED": "system-versioned table",
          "SEQUENCE": "sequence", "VIEW": "view"}  # fmt: skip


@dataclass(frozen=True)
class Conflict:
    """The target's object ``name`` of ``database`` (target names), of TABLE_TYPE
    ``present``, where the restore creates a ``kind`` (table, sequence, view)."""

    database: str
    name: str
    present: str
    kind: str

    def __str__(self) -> str:
        shown = table_label(self.database, self.name)
        return f"{_SHOWN[self.present]} {shown} (the backup has a {self.kind})"

    def to_json(self) -> dict[str, str]:
        return {"database": self.database, "name": self.name,
                "present": _SHOWN[self.present], "restored": self.kind}  # fmt: skip


def created_kinds(
    tables: Iterable[TableName],
    sequences: Collection[TableName],
    views: Iterable[TableName],
    targets: Mapping[str, str],
) -> dict[TableName, str]:
    """(target database, name) -> the kind a restore creates there, from the ``tables`` it
    restores (source names; ``sequences`` among them are sequences) and its ``views``;
    ``targets`` maps source databases to target ones."""
    kinds = {(targets[db], t): "sequence" if (db, t) in sequences else "table" for db, t in tables}
    kinds |= {(targets[db], v): "view" for db, v in views}
    return kinds


def other_kinds(target: Endpoint, creates: Mapping[TableName, str]) -> list[Conflict]:
    """Of ``creates`` (:func:`created_kinds`), those ``target`` holds as an object of another
    kind; names matched as the server matches them (folded when ``lower_case_table_names``
    is set). Reads only."""
    databases = sorted({db for db, _ in creates})
    if not databases:
        return []
    with connect(target) as conn, conn.cursor() as cur:
        fold = folds_names(cur)
        databases = sorted({name_key(db, fold) for db in databases})
        present = []
        for batch in apart(databases):  # IN ('Shop', 'shop') would ask for Shop alone
            marks = ",".join(["%s"] * len(batch))
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA IN ({marks})",
                tuple(batch),
            )
            present += [(str(db), str(name), str(kind)) for db, name, kind in cur.fetchall()]

    def key(database: str, name: str) -> TableName:
        return name_key(database, fold), name_key(name, fold)

    wanted = {key(db, name): kind for (db, name), kind in creates.items()}
    found = []
    for database, name, present_type in present:
        kind = wanted.get(key(database, name))
        if kind is not None and present_type not in KIND_TYPES[kind] and present_type in _DROP:
            found.append(Conflict(database, name, present_type, kind))
    return sorted(found, key=lambda c: (c.database, c.name))


def drop_conflicts(
    target: Endpoint, conflicts: list[Conflict], *, binlog: bool, dropped: list[Conflict]
) -> None:
    """``DROP {TABLE|SEQUENCE|VIEW} IF EXISTS`` each of ``conflicts``, as the kind it is on
    the target (without binlogging unless ``binlog``; foreign keys to a dropped table are
    not checked, as for a backup's own DROP TABLE); each is appended to ``dropped`` once
    gone, so a caller knows what a failure part-way left."""
    if not conflicts:
        return
    with connect(target) as conn, conn.cursor() as cur:
        if not binlog:
            cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("SET SESSION foreign_key_checks = 0")
        for c in conflicts:
            cur.execute(f"DROP {_DROP[c.present]} IF EXISTS {ident(c.database)}.{ident(c.name)}")
            dropped.append(c)
