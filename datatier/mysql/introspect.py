"""Read a MySQL/MariaDB table's shape from information_schema.

Contract: :func:`introspect` returns a :class:`TableSchema` for ``db.table`` or raises
:class:`~datatier.errors.UsageError` (exit 2) naming the table, with close matches, when it
does not exist. MariaDB's JSON columns are LONGTEXT with a ``json_valid()`` check: they are
reported with ``data_type == "json"`` like MySQL 8's.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from datatier.errors import UsageError
from datatier.mysql.connection import Connection, query_dicts

INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
"""``DATA_TYPE`` values of integer columns."""


@dataclass(frozen=True)
class Column:
    """One column as information_schema describes it."""

    name: str
    data_type: str  # lower-case DATA_TYPE; "json" for MariaDB's json_valid LONGTEXT
    column_type: str  # e.g. "decimal(12,2) unsigned"
    nullable: bool
    precision: int | None = None
    scale: int | None = None
    datetime_precision: int | None = None
    max_chars: int | None = None
    collation: str | None = None

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type

    @property
    def bits(self) -> int:
        """BIT(n): n; 0 for other types."""
        return int(self.precision or 0) if self.data_type == "bit" else 0


@dataclass(frozen=True)
class Index:
    """One index: its columns in order; ``kind`` is BTREE, FULLTEXT, SPATIAL, HASH..."""

    name: str
    columns: tuple[str, ...]
    unique: bool
    kind: str = "BTREE"
    prefixed: bool = False  # some column indexed by a prefix (SUB_PART)

    @property
    def primary(self) -> bool:
        return self.name == "PRIMARY"


@dataclass(frozen=True)
class TableSchema:
    """A table's columns (in order), indexes and size estimates."""

    db: str
    name: str
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...]
    rows_estimate: int
    data_bytes: int

    @property
    def qualified(self) -> str:
        return f"{self.db}.{self.name}"

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def primary_key(self) -> Index | None:
        return next((i for i in self.indexes if i.primary), None)


def split_name(text: str) -> tuple[str, str]:
    """``db.table`` -> (db, table); UsageError for anything else."""
    db, sep, table = text.strip().partition(".")
    if not sep or not db or not table or "." in table:
        raise UsageError(f"table {text!r} must be written as DB.TABLE")
    return db, table


def introspect(conn: Connection, qualified: str) -> TableSchema:
    """The schema of ``db.table`` (see module docstring)."""
    db, table = split_name(qualified)
    found = query_dicts(
        conn,
        "SELECT TABLE_TYPE, TABLE_ROWS, DATA_LENGTH FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (db, table),
    )
    if not found or found[0]["TABLE_TYPE"] != "BASE TABLE":
        raise UsageError(f"unknown table {qualified}", hint=_suggest(conn, db, table))
    cols = query_dicts(
        conn,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, "
        "NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_MAXIMUM_LENGTH, COLLATION_NAME "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    json_cols = _json_columns(conn, db, table)
    columns = tuple(
        Column(
            name=c["COLUMN_NAME"],
            data_type="json" if c["COLUMN_NAME"] in json_cols else str(c["DATA_TYPE"]).lower(),
            column_type=str(c["COLUMN_TYPE"]).lower(),
            nullable=c["IS_NULLABLE"] == "YES",
            precision=_int(c["NUMERIC_PRECISION"]),
            scale=_int(c["NUMERIC_SCALE"]),
            datetime_precision=_int(c["DATETIME_PRECISION"]),
            max_chars=_int(c["CHARACTER_MAXIMUM_LENGTH"]),
            collation=c["COLLATION_NAME"],
        )
        for c in cols
    )
    stats = query_dicts(
        conn,
        "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE, INDEX_TYPE, SUB_PART "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
        "ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
        (db, table),
    )
    by_name: dict[str, list[dict[str, object]]] = {}
    for row in stats:
        by_name.setdefault(str(row["INDEX_NAME"]), []).append(row)
    indexes = tuple(
        Index(
            name=name,
            columns=tuple(str(r["COLUMN_NAME"]) for r in rows),
            unique=not int(str(rows[0]["NON_UNIQUE"])),
            kind=str(rows[0]["INDEX_TYPE"]),
            prefixed=any(r["SUB_PART"] is not None for r in rows),
        )
        for name, rows in by_name.items()
    )
    return TableSchema(
        db=db,
        name=table,
        columns=columns,
        indexes=indexes,
        rows_estimate=int(found[0]["TABLE_ROWS"] or 0),
        data_bytes=int(found[0]["DATA_LENGTH"] or 0),
    )


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _json_columns(conn: Connection, db: str, table: str) -> set[str]:
    """MariaDB: columns whose check constraint is exactly ``json_valid(`col`)``."""
    try:
        rows = query_dicts(
            conn,
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s",
            (db, table),
        )
    except Exception:  # MySQL < 8.0.16 has no CHECK_CONSTRAINTS table
        return set()
    found = set()
    for row in rows:
        clause = str(row["CHECK_CLAUSE"]).strip()
        if clause.startswith("json_valid(`") and clause.endswith("`)"):
            found.add(clause[len("json_valid(`") : -2].replace("``", "`"))
    return found


_SYSTEM = frozenset({"mysql", "information_schema", "performance_schema", "sys"})


def _suggest(conn: Connection, db: str, table: str) -> str:
    """A "did you mean" hint for an unknown ``db.table``. System schemas are left out in
    Python: a ``NOT IN`` list compares under a collation-blind rule (see
    :mod:`~datatier.mysql.lettercase`) and would hide a user's `Sys` too."""
    rows = query_dicts(
        conn,
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
        "WHERE TABLE_TYPE = 'BASE TABLE'",
    )
    names = [
        f"{r['TABLE_SCHEMA']}.{r['TABLE_NAME']}" for r in rows if r["TABLE_SCHEMA"] not in _SYSTEM
    ]
    close = difflib.get_close_matches(f"{db}.{table}", names, n=3)
    if close:
        return "did you mean " + ", ".join(close) + "?"
    if not any(n.startswith(f"{db}.") for n in names):
        return f"no database {db!r} with tables on this server"
    return "no similar table"
