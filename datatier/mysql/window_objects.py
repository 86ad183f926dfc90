"""``restore --force`` over a target holding what the replay window creates or names, and
what a forced restore leaves as it is.

The base restore replaces what the backup holds; an object created after the base (a
table, view, routine...) may still be on the target, in its state of after the target
moment. The replay then meets it: ``CREATE TABLE IF NOT EXISTS`` keeps it with its later
rows and the replayed rows are added, a plain ``CREATE`` fails after the base was loaded,
``DROP TABLE IF EXISTS`` (a no-op on the source then) drops a table of after the target.
:func:`present_objects` finds, of the objects the replay creates or names
(:func:`~datatier.mysql.binlog.created.named_objects`), those the target holds (reads
only); :func:`drop_present` drops them, so the replay recreates them as at the target.
:func:`tables_left` lists the tables, views and sequences a forced restore leaves as they
are (for the plan), :func:`definitions_left` the routines and events. Nothing else on the
target is touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.labels import table_label
from datatier.mysql.lettercase import folds_names, name_key
from datatier.mysql.name_weights import DEFINITIONS, weigh
from datatier.mysql.package_drops import DROP_MODE, PACKAGE_KINDS
from datatier.mysql.sqltext import ident

_TABLE_TYPES = {"BASE TABLE": "table", "SYSTEM VERSIONED": "table", "SEQUENCE": "sequence",
                "VIEW": "view"}  # fmt: skip


@dataclass(frozen=True)
class Present:
    """The target's ``kind`` (table, view, sequence, trigger, procedure, function, package,
    package body, event) ``name`` in ``database`` (target names, as the target spells them)."""

    kind: str
    database: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {table_label(self.database, self.name)}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "database": self.database, "name": self.name}


def present_objects(
    target: Endpoint,
    created: Iterable[tuple[str, str, str]],
    databases: Mapping[str, str],
    *,
    names_folded: bool,
) -> list[Present]:
    """Of ``created`` ((kind, database, name): database and name as the replay compares
    them, lower-cased when ``names_folded``: what the replay creates or names), the objects
    ``target`` holds under one of those names; ``databases`` maps the replay's database
    names to the target's. A table, view or sequence is matched whatever its kind (one
    namespace), as the target compares table names; routines and events as the server
    compares them (case- and accent-blind); triggers as spelled (folded when
    ``names_folded``). Reads only."""
    wanted: dict[str, set[tuple[str, str]]] = {}
    for kind, database, name in created:
        if database in databases:
            wanted.setdefault(databases[database], set()).add((kind, name))
    found: set[Present] = set()
    if not wanted:
        return []
    with connect(target) as conn, conn.cursor() as cur:
        fold = folds_names(cur)
        for database, objects in sorted(wanted.items()):
            kinds = {k for k, _ in objects}
            for group, sql, how in _LOOKUPS:
                if not kinds & group:
                    continue
                if how == "others":  # the server compares these names: ask it, one each
                    for k, n in sorted(objects):
                        if k in group:
                            found |= {
                                Present(kind, database, name)
                                for kind, name in _rows(cur, sql, database, fold, n)
                                if kind == k
                            }
                    continue
                folding = fold if how == "tables" else names_folded
                names = {(_kind(k, how), name_key(n, folding)) for k, n in objects if k in group}
                for kind, name in _rows(cur, sql, database, fold):
                    if kind in group and (_kind(kind, how), name_key(name, folding)) in names:
                        found.add(Present(kind, database, name))
    return sorted(found, key=lambda p: (p.database, p.kind, p.name))


def tables_left(
    target: Endpoint, databases: Mapping[str, str], accounted: Iterable[tuple[str, str]]
) -> list[Present]:
    """The tables, views and sequences of the target databases (``databases``: the
    replay's names -> the target's) that are not ``accounted`` for ((database, name) as the
    replay compares them: what the base and the replay create, what the backup left out):
    a forced restore leaves them as they are, and at the target moment they did not exist
    (created after it). Compared as :func:`present_objects` compares tables. Reads only."""
    known: dict[str, set[str]] = {}
    for database, name in accounted:
        if database in databases:
            known.setdefault(databases[database], set()).add(name)
    found = []
    sql = _LOOKUPS[0][1]
    with connect(target) as conn, conn.cursor() as cur:
        fold = folds_names(cur)
        for database in sorted(set(databases.values())):
            names = {name_key(n, fold) for n in known.get(database, ())}
            for kind, name in _rows(cur, sql, database, fold):
                if kind in _LOOKUPS[0][0] and name_key(name, fold) not in names:
                    found.append(Present(kind, database, name))
    return sorted(found, key=lambda p: (p.database, p.name))


def definitions_left(
    target: Endpoint, databases: Iterable[str], accounted: Iterable[tuple[str, str, str]]
) -> list[Present]:
    """The procedures, functions, packages and events of the target ``databases`` that are
    not ``accounted`` for ((kind, target database, name): what the restore defines or
    names; a package's body goes with it): a forced restore leaves them as they are.
    Names compared as the server compares them (utf8mb3_general_ci weights,
    :mod:`datatier.mysql.name_weights`). Reads only."""
    accounted = list(accounted)
    # DROP PACKAGE drops the body too: a package defined or named replaces its body
    accounted += [("package body", d, n) for k, d, n in accounted if k == "package"]
    with connect(target) as conn, conn.cursor() as cur:
        fold = folds_names(cur)
        there = [
            Present(kind, database, name)
            for database in sorted(set(databases))
            for sql in _DEFINITIONS
            for kind, name in _rows(cur, sql, database, fold)
        ]
        if not there:
            return []
        weights = weigh(cur, [p.name for p in there] + [n for _, _, n in accounted], DEFINITIONS)
    known = {(k, name_key(d, fold), weights[n]) for k, d, n in accounted}
    left = [p for p in there if (p.kind, name_key(p.database, fold), weights[p.name]) not in known]
    return sorted(left, key=lambda p: (p.database, p.kind, p.name))


_DEFINITIONS = [
    "SELECT ROUTINE_SCHEMA, LOWER(ROUTINE_TYPE), ROUTINE_NAME FROM information_schema.ROUTINES "
    "WHERE ROUTINE_SCHEMA = %s",
    "SELECT EVENT_SCHEMA, 'event', EVENT_NAME FROM information_schema.EVENTS "
    "WHERE EVENT_SCHEMA = %s",
]


_LOOKUPS = [
    (
        {"table", "view", "sequence"},
        "SELECT TABLE_SCHEMA, TABLE_TYPE, TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s",
        "tables",
    ),
    (
        {"trigger"},
        "SELECT TRIGGER_SCHEMA, 'trigger', TRIGGER_NAME FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA = %s",
        "triggers",
    ),
    (
        {"procedure", "function", "package", "package body"},
        "SELECT ROUTINE_SCHEMA, LOWER(ROUTINE_TYPE), ROUTINE_NAME "
        "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s AND ROUTINE_NAME = %s",
        "others",
    ),
    (
        {"event"},
        "SELECT EVENT_SCHEMA, 'event', EVENT_NAME FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA = %s AND EVENT_NAME = %s",
        "others",
    ),
]
"""(kinds, the query of the target's objects of those kinds: schema, kind, name; how
names compare: as the target compares table names, as the replay spells triggers, or as
the server compares routine and event names, case- and accent-blind (utf8mb3_general_ci:
`cafe` and `CAFÉ` are one procedure, checked on MariaDB 10.11), asked of it by name)."""


def _kind(kind: str, how: str) -> str:
    """A kind as compared: tables, views and sequences share one namespace."""
    return "table" if how == "tables" else kind


def _rows(
    cur: Any, sql: str, database: str, fold: bool, name: str | None = None
) -> list[tuple[str, str]]:
    """(kind, name) of the objects ``sql`` finds in ``database`` (and by ``name``, when
    given; its first column, the schema, compared here as the server compares database
    names, ``fold``: information_schema may compare as its collation does); a table's
    kind as restored."""
    cur.execute(sql, (database,) if name is None else (database, name))
    key = name_key(database, fold)
    return [
        (_TABLE_TYPES.get(str(kind), str(kind)), str(name))
        for schema, kind, name in cur.fetchall()
        if name_key(str(schema), fold) == key
    ]


def drop_present(
    target: Endpoint, present: list[Present], *, binlog: bool, dropped: list[Present]
) -> None:
    """``DROP <kind> IF EXISTS`` each of ``present`` (triggers first, packages last, in
    :data:`~datatier.mysql.package_drops.DROP_MODE`, where the server parses their DROP;
    without binlogging unless ``binlog``; foreign keys to a dropped table not checked, as
    for a backup's own ``DROP TABLE``); each is appended to ``dropped`` once gone, so a
    caller knows what a failure part-way left."""
    if not present:
        return
    order = sorted(
        present, key=lambda p: (p.kind != "trigger", p.kind in PACKAGE_KINDS, p.database, p.name)
    )
    with connect(target) as conn, conn.cursor() as cur:
        if not binlog:
            cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("SET SESSION foreign_key_checks = 0")
        packages = False
        for p in order:
            what = p.kind.upper()
            if p.kind in PACKAGE_KINDS and not packages:
                cur.execute("SET SESSION sql_mode = %s", (DROP_MODE,))
                packages = True
            cur.execute(f"DROP {what} IF EXISTS {ident(p.database)}.{ident(p.name)}")
            dropped.append(p)
