"""Mapping files (``schemas/rethinkdb/NAME.toml``): a person's overrides of casts, names, keys.

Contract: :func:`load_mapping` binds a file with :mod:`datatier.typedtoml` (an unknown key,
a misspelt cast or a wrong type raises :class:`~datatier.errors.ConfigError`, exit 2,
naming the file and the dotted key); :func:`check_against` then validates one table's
section against the real table: unknown columns (with the closest name), impossible casts,
key columns, duplicate field names. Nothing is read from or written to a server here.

Layout::

    target_db = "shop"            # default: [rethinkdb] db
    timezone = "+00:00"           # zone of DATETIME/DATE values (they have none in MySQL)

    [tables."shop.orders"]
    target = "orders"             # RethinkDB table name (default: the MySQL name)
    key = ["order_id"]            # key columns (default: the primary key)

    [tables."shop.orders".columns.total]
    cast = "scaled_int"           # one of casts.CASTS, possible for the column's type
    scale = 2                     # scaled_int only (default: the column's scale)
    name = "total_cents"          # field name in the document
    # skip = true                 # leave the column out
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from datatier.errors import ConfigError, UsageError
from datatier.migrate.casts import CASTS, allowed_casts, parse_tz
from datatier.mysql.introspect import TableSchema, split_name
from datatier.typedtoml import Binder, option, read_toml


@dataclass(frozen=True)
class ColumnMapping:
    """``[tables."db.t".columns.NAME]``."""

    cast: str | None = option(None, choices=CASTS)
    name: str | None = None
    scale: int | None = None
    skip: bool = False


@dataclass(frozen=True)
class TableMapping:
    """``[tables."db.t"]``."""

    target: str | None = None
    key: list[str] | None = None
    columns: dict[str, ColumnMapping] = option({})


@dataclass(frozen=True)
class MappingFile:
    """A whole mapping file; ``source`` names it in errors."""

    target_db: str | None = None
    timezone: str = "+00:00"
    tables: dict[str, TableMapping] = option({})
    source: str = "no mapping file"


EMPTY = MappingFile()


def resolve_mapping(text: str, mappings_dir: Path) -> Path:
    """``text`` as a path, else ``mappings_dir/text[.toml]``; UsageError if neither exists."""
    candidates = [Path(text), mappings_dir / text, mappings_dir / f"{text}.toml"]
    for path in candidates:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in candidates)
    raise UsageError(f"mapping file {text!r} not found (tried {tried})")


def load_mapping(path: Path) -> MappingFile:
    """Parse and bind a mapping file (see module docstring)."""
    source = str(path)
    data = read_toml(path, "mapping file")
    if "source" in data:
        raise ConfigError(source, "source", "unknown key")
    bound = Binder(source, path.resolve().parent).bind(MappingFile, data)
    try:
        parse_tz(bound.timezone)
    except ValueError as exc:
        raise ConfigError(source, "timezone", str(exc)) from None
    for name, table in bound.tables.items():
        try:
            split_name(name)
        except UsageError:
            raise ConfigError(
                source, f"tables.{name}", "table names must be written as DB.TABLE"
            ) from None
        for col_name, col in table.columns.items():
            if col.scale is not None and col.cast != "scaled_int":
                raise ConfigError(
                    source,
                    f"tables.{name}.columns.{col_name}.scale",
                    'scale applies only to cast = "scaled_int"',
                )
            if col.scale is not None and not 0 <= col.scale <= 30:
                raise ConfigError(
                    source, f"tables.{name}.columns.{col_name}.scale", "must be 0..30"
                )
    return MappingFile(bound.target_db, bound.timezone, bound.tables, source)


def _closest(name: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}?" if close else f"columns: {', '.join(known)}"


def check_against(mapping: MappingFile, table: TableSchema) -> TableMapping:
    """The table's section, validated against the real table (see module docstring)."""
    tm = mapping.tables.get(table.qualified, TableMapping())
    where = f"tables.{table.qualified}"
    known = [c.name for c in table.columns]
    for col_name, cm in tm.columns.items():
        col = table.column(col_name)
        if col is None:
            raise ConfigError(
                mapping.source,
                f"{where}.columns.{col_name}",
                f"no column {col_name!r} in {table.qualified}",
                hint=_closest(col_name, known),
            )
        if cm.cast is not None and cm.cast not in allowed_casts(col):
            possible = ", ".join(allowed_casts(col)) or "none: skip it"
            raise ConfigError(
                mapping.source,
                f"{where}.columns.{col_name}.cast",
                f"cast {cm.cast!r} is impossible for {col.column_type}",
                hint=f"possible: {possible}",
            )
    for key_col in tm.key or []:
        if table.column(key_col) is None:
            raise ConfigError(
                mapping.source,
                f"{where}.key",
                f"no column {key_col!r} in {table.qualified}",
                hint=_closest(key_col, known),
            )
        if tm.columns.get(key_col, ColumnMapping()).skip:
            raise ConfigError(mapping.source, f"{where}.key", f"key column {key_col!r} is skipped")
    if tm.key is not None and not tm.key:
        raise ConfigError(mapping.source, f"{where}.key", "an empty key")
    return tm
