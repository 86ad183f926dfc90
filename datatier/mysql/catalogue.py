"""The server's own catalogue of what a backup must hold: databases, tables, columns, keys,
views, triggers, routines and events, with the exact statements that recreate them.

Read on one connection while DDL is blocked (see :mod:`datatier.mysql.consistent`), so the
definitions match the data snapshot. Every name comes from ``information_schema`` and every
statement from ``SHOW CREATE ...``, never from parsing dump text. A definition the account is
not allowed to read (``SHOW CREATE`` returns NULL) fails loudly: a backup without it would
silently restore less than the source had.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from datatier.backup.names import show
from datatier.errors import OperationFailed
from datatier.log import get_logger
from datatier.mysql.connection import Connection, query_dicts
from datatier.mysql.creator_text import (
    creator_statement,
    decoded,
    read_creator_row,
    show_create,
)
from datatier.mysql.lettercase import apart
from datatier.mysql.long_key_names import MAX_NAME, restorable_create

log = get_logger(__name__)

TRANSACTIONAL_ENGINES = frozenset({"InnoDB", "XtraDB", "ROCKSDB", "TokuDB"})
NO_DATA_ENGINES = frozenset({"MRG_MyISAM", "MRG_MYISAM", "FEDERATED", "BLACKHOLE", "CONNECT"})
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
LOB_TYPES = frozenset(
    {
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
        "tinytext",
        "text",
        "mediumtext",
        "longtext",
        "json",
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    }
)


@dataclass(frozen=True)
class Column:
    """A column as a dump reads it; ``nullable`` is False for a NOT NULL column."""

    name: str
    data_type: str
    charset: str | None
    generated: bool
    collation: str | None = None
    nullable: bool = True


@dataclass(frozen=True)
class Table:
    """A base table (or sequence) with what a dump of its rows needs."""

    database: str
    name: str
    kind: str  # "table" | "sequence"
    engine: str
    create: str
    columns: tuple[Column, ...]
    order_key: tuple[str, ...]  # the clustered key (PK, else first NOT NULL unique); may be ()
    rows_estimate: int = 0
    data_bytes: int = 0
    renamed_keys: tuple[tuple[str, str], ...] = ()
    """Foreign keys ``create`` names otherwise than the server (old, new): names over 64
    characters, which CREATE TABLE refuses (:mod:`datatier.mysql.long_key_names`)."""

    @property
    def dumped_columns(self) -> tuple[Column, ...]:
        """Columns whose values a dump writes (generated columns are recomputed on load)."""
        return tuple(c for c in self.columns if not c.generated)

    @property
    def transactional(self) -> bool:
        return self.engine in TRANSACTIONAL_ENGINES

    @property
    def has_rows(self) -> bool:
        """False for engines whose rows live elsewhere (MERGE, FEDERATED, CONNECT) or nowhere."""
        return self.engine not in NO_DATA_ENGINES

    @property
    def split_column(self) -> Column | None:
        """The integer first key column that ranges can split on, if any (none when the
        key names a column the catalogue did not see: DDL between its reads)."""
        if not self.order_key:
            return None
        first = next((c for c in self.columns if c.name == self.order_key[0]), None)
        return first if first is not None and first.data_type in INTEGER_TYPES else None


@dataclass(frozen=True)
class Definition:
    """A statement recreating a view, trigger, routine or event, and its creation session.
    ``statement`` holds the bytes the server keeps, in ``charset`` (the creator's
    character_set_client), decoded as UTF-8 with surrogateescape (see
    :mod:`datatier.mysql.creator_text`)."""

    database: str
    name: str
    kind: str  # view | trigger | procedure | function | package | package body | event
    statement: str
    sql_mode: str
    collation: str
    table: str | None = None  # triggers: their table
    time_zone: str | None = None  # events
    status: str | None = None  # events: ENABLED, DISABLED or SLAVESIDE_DISABLED
    definer: str | None = None  # events: user@host
    primary_status: str | None = None  # events read on a replica: the status on the primary
    columns: tuple[str, ...] = ()  # views: for the stand-in created before every view
    charset: str = "utf8mb4"  # character_set_client of ``statement``
    converted_from: str | None = None  # the creator's charset, when it could not be kept


@dataclass
class Catalogue:
    """Everything in the included databases, in restore order within each list."""

    databases: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (cs, coll)
    tables: list[Table] = field(default_factory=list)
    views: list[Definition] = field(default_factory=list)
    triggers: list[Definition] = field(default_factory=list)
    routines: list[Definition] = field(default_factory=list)
    events: list[Definition] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # db.table left out by the policy
    excluded_pairs: list[tuple[str, str]] = field(default_factory=list)  # the same, as pairs

    def renamed_keys(self) -> list[dict[str, str]]:
        """Each foreign key the backup names otherwise than the server (``Table.renamed_keys``),
        for the manifest: table (``db.t``), name (the server's) and written (the backup's)."""
        return [
            {"table": f"{t.database}.{t.name}", "name": old, "written": new}
            for t in self.tables
            for old, new in t.renamed_keys
        ]


def read_catalogue(
    conn: Connection,
    include_database: Callable[[str], bool],
    include_table: Callable[[str, str], bool],
) -> Catalogue:
    """The catalogue of every included database and table (``conn``: autocommit, any user
    with SELECT, SHOW VIEW, TRIGGER, EVENT and routine access on them)."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = '', sql_quote_show_create = 1")
    found = Catalogue()
    for row in query_dicts(
        conn,
        "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
        "FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
    ):
        if include_database(row["SCHEMA_NAME"]):
            found.databases[row["SCHEMA_NAME"]] = (
                row["DEFAULT_CHARACTER_SET_NAME"],
                row["DEFAULT_COLLATION_NAME"],
            )
    names = sorted(found.databases)
    if not names:
        return found
    columns = _columns(conn, names)
    keys = _order_keys(conn, names)
    for row in _in_databases(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_ROWS, DATA_LENGTH "
        "FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({}) "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME",
        names,
    ):
        db, name, ttype = row["TABLE_SCHEMA"], row["TABLE_NAME"], row["TABLE_TYPE"]
        if ttype == "TEMPORARY":
            continue
        if not include_table(db, name):
            found.excluded.append(f"{db}.{name}")
            found.excluded_pairs.append((db, name))
            continue
        if ttype == "VIEW":
            found.views.append(_view(conn, db, name, columns.get((db, name), ())))
            continue
        create, renamed = restorable_create(
            show_create(
                conn, "SEQUENCE" if ttype == "SEQUENCE" else "TABLE", db, name, "Create Table"
            )
        )
        if renamed:
            log.warning(
                "backup.foreign_keys_renamed",
                table=f"{db}.{name}",
                renamed={old: new for old, new in renamed},
                note=f"their names (the server's, renamed with the table) are over {MAX_NAME} "
                "characters, which CREATE TABLE refuses: the backup names them so",
            )
        found.tables.append(
            Table(
                database=db,
                name=name,
                kind="sequence" if ttype == "SEQUENCE" else "table",
                engine=row["ENGINE"] or "",
                create=create,
                renamed_keys=tuple(renamed),
                columns=tuple(columns.get((db, name), ())),
                order_key=keys.get((db, name), ()),
                rows_estimate=int(row["TABLE_ROWS"] or 0),
                data_bytes=int(row["DATA_LENGTH"] or 0),
            )
        )
    tables = {(t.database, t.name) for t in found.tables}
    found.triggers = [t for t in _triggers(conn, names) if (t.database, t.table) in tables]
    found.routines = _routines(conn, names)
    found.events = _events(conn, names)
    return found


def _in_databases(conn: Connection, sql: str, names: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of ``sql`` with its ``{}`` the databases ``names``: one query per list of
    :func:`~datatier.mysql.lettercase.apart` (MariaDB took ``IN ('Shop', 'shop')`` for
    ``Shop`` alone: a backup held ``shop`` without its tables)."""
    rows: list[dict[str, Any]] = []
    for batch in apart(names):
        rows += query_dicts(conn, sql.format(",".join(["%s"] * len(batch))), tuple(batch))
    return rows


def _columns(conn: Connection, names: Sequence[str]) -> dict[tuple[str, str], list[Column]]:
    found: dict[tuple[str, str], list[Column]] = {}
    for row in _in_databases(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, "
        "COLLATION_NAME, IS_GENERATED, IS_NULLABLE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA IN ({}) "
        "ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        names,
    ):
        found.setdefault((row["TABLE_SCHEMA"], row["TABLE_NAME"]), []).append(
            Column(
                name=row["COLUMN_NAME"],
                data_type=str(row["DATA_TYPE"]).lower(),
                charset=row["CHARACTER_SET_NAME"],
                generated=row["IS_GENERATED"] == "ALWAYS",
                collation=row["COLLATION_NAME"],
                nullable=row["IS_NULLABLE"] != "NO",
            )
        )
    return found


def _order_keys(conn: Connection, names: Sequence[str]) -> dict[tuple[str, str], tuple[str, ...]]:
    """Per table, the key InnoDB clusters on: the PRIMARY KEY, else the first unique index
    whose columns are all NOT NULL (by name, as InnoDB picks it)."""
    indexes: dict[tuple[str, str], dict[str, list[tuple[int, str, bool]]]] = {}
    for row in _in_databases(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NULLABLE "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA IN ({}) AND NON_UNIQUE = 0",
        names,
    ):
        per_table = indexes.setdefault((row["TABLE_SCHEMA"], row["TABLE_NAME"]), {})
        per_table.setdefault(row["INDEX_NAME"], []).append(
            (int(row["SEQ_IN_INDEX"]), row["COLUMN_NAME"], row["NULLABLE"] == "YES")
        )
    keys: dict[tuple[str, str], tuple[str, ...]] = {}
    for table, by_name in indexes.items():
        candidates = sorted(by_name, key=lambda n: (n != "PRIMARY", n))
        for index in candidates:
            parts = sorted(by_name[index])
            if index == "PRIMARY" or not any(nullable for _, _, nullable in parts):
                keys[table] = tuple(col for _, col, _ in parts)
                break
    return keys


def _view(conn: Connection, db: str, name: str, columns: Iterable[Column]) -> Definition:
    row = read_creator_row(conn, "VIEW", db, name)
    cols = tuple(c.name for c in columns)
    if not row or not row.get("Create View"):
        raise OperationFailed(f"cannot read the definition of view {db}.{name}")
    if not cols:
        entry = show(db, name, always=True)  # as exclude_tables reads it back
        raise OperationFailed(
            f"view {entry} is invalid (it references a table or column that no longer "
            "exists), so no restore could recreate it",
            hint=f"fix or drop it, or add {json.dumps(entry, ensure_ascii=False)} to the "
            "policy's exclude_tables",  # a JSON string is a TOML basic string
        )
    charset = decoded(row["character_set_client"])
    statement, charset, converted = creator_statement(
        conn, "VIEW", db, name, "Create View", charset, row
    )
    return Definition(
        database=db,
        name=name,
        kind="view",
        statement=statement,
        sql_mode="",
        collation=decoded(row["collation_connection"]),
        columns=cols,
        charset=charset,
        converted_from=converted,
    )


def _triggers(conn: Connection, names: Sequence[str]) -> list[Definition]:
    found = []
    for row in _in_databases(
        conn,
        "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE, SQL_MODE, "
        "COLLATION_CONNECTION, CHARACTER_SET_CLIENT FROM information_schema.TRIGGERS "
        "WHERE TRIGGER_SCHEMA IN ({}) "
        "ORDER BY TRIGGER_SCHEMA, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
        "ACTION_ORDER",
        names,
    ):
        db, name = row["TRIGGER_SCHEMA"], row["TRIGGER_NAME"]
        statement, charset, converted = creator_statement(
            conn, "TRIGGER", db, name, "SQL Original Statement", str(row["CHARACTER_SET_CLIENT"])
        )
        found.append(
            Definition(
                database=db,
                name=name,
                kind="trigger",
                statement=statement,
                sql_mode=str(row["SQL_MODE"]),
                collation=str(row["COLLATION_CONNECTION"]),
                table=row["EVENT_OBJECT_TABLE"],
                charset=charset,
                converted_from=converted,
            )
        )
    return found


ROUTINE_ORDER = {"FUNCTION": 0, "PROCEDURE": 1, "PACKAGE": 2, "PACKAGE BODY": 3}


def _routines(conn: Connection, names: Sequence[str]) -> list[Definition]:
    rows = _in_databases(
        conn,
        "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, SQL_MODE, COLLATION_CONNECTION, "
        "CHARACTER_SET_CLIENT FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA IN ({})",
        names,
    )
    rows.sort(
        key=lambda r: (
            r["ROUTINE_SCHEMA"],
            ROUTINE_ORDER.get(r["ROUTINE_TYPE"], 9),
            r["ROUTINE_NAME"],
        )
    )
    found = []
    for row in rows:
        db, name, rtype = row["ROUTINE_SCHEMA"], row["ROUTINE_NAME"], str(row["ROUTINE_TYPE"])
        column = "Create " + rtype.title()
        statement, charset, converted = creator_statement(
            conn, rtype, db, name, column, str(row["CHARACTER_SET_CLIENT"])
        )
        found.append(
            Definition(
                database=db,
                name=name,
                kind=rtype.lower(),
                statement=statement,
                sql_mode=str(row["SQL_MODE"]),
                collation=str(row["COLLATION_CONNECTION"]),
                charset=charset,
                converted_from=converted,
            )
        )
    return found


def _events(conn: Connection, names: Sequence[str]) -> list[Definition]:
    found = []
    for row in _in_databases(
        conn,
        "SELECT EVENT_SCHEMA, EVENT_NAME, SQL_MODE, TIME_ZONE, COLLATION_CONNECTION, STATUS, "
        "DEFINER, CHARACTER_SET_CLIENT FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA IN ({}) "
        "ORDER BY EVENT_SCHEMA, EVENT_NAME",
        names,
    ):
        db, name = row["EVENT_SCHEMA"], row["EVENT_NAME"]
        statement, charset, converted = creator_statement(
            conn, "EVENT", db, name, "Create Event", str(row["CHARACTER_SET_CLIENT"])
        )
        found.append(
            Definition(
                database=db,
                name=name,
                kind="event",
                statement=statement,
                sql_mode=str(row["SQL_MODE"]),
                collation=str(row["COLLATION_CONNECTION"]),
                time_zone=str(row["TIME_ZONE"]),
                status=str(row["STATUS"]),
                definer=str(row["DEFINER"]),
                charset=charset,
                converted_from=converted,
            )
        )
    return found
