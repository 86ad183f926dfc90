"""What the ``migrate`` commands call: source node, mapping, plans, target, run, verify.

Contract: :func:`make_plans` introspects every requested table before sampling any (an
unknown table or a bad mapping stops with exit 2 before rows are read) and never writes.
The source is ``--source NODE`` or, by default, the first replica by name (the primary if
there is none), so rehearsals do not load the primary.
"""

from __future__ import annotations

import random
from pathlib import Path

from datatier.backup.names import parse_tables
from datatier.config import LoadedConfig
from datatier.errors import UsageError
from datatier.migrate.documents import DocumentBuilder
from datatier.migrate.mapping import EMPTY, MappingFile, load_mapping, resolve_mapping
from datatier.migrate.plan import TablePlan, build_plan
from datatier.migrate.reader import TableReader
from datatier.migrate.sampler import analyse
from datatier.migrate.target import MigrationTarget, connect_rethinkdb
from datatier.mysql.connection import Connection, connect, endpoint
from datatier.mysql.introspect import introspect, split_name

EXACT_COUNT_BELOW = 200_000
"""Tables estimated below this many rows are counted exactly (COUNT(*) is cheap there)."""


def source_node(loaded: LoadedConfig, explicit: str | None) -> str:
    """``explicit`` if given, else the first replica by name, else the primary."""
    mysql = loaded.config.mysql
    if explicit:
        endpoint(mysql, explicit)  # ConfigError naming the known nodes
        return explicit
    replicas = sorted(mysql.replicas())
    if replicas:
        return replicas[0]
    primary = mysql.primary()
    if primary is None:
        raise UsageError("no MySQL nodes configured (mysql.nodes)")
    return primary[0]


def open_source(loaded: LoadedConfig, node: str) -> Connection:
    return connect(endpoint(loaded.config.mysql, node))


def mappings_dir(loaded: LoadedConfig) -> Path:
    return loaded.resolve(loaded.config.rethinkdb.mappings_dir)


def mapping_for(loaded: LoadedConfig, text: str | None) -> MappingFile:
    if not text:
        return EMPTY
    return load_mapping(resolve_mapping(text, mappings_dir(loaded)))


def table_names(tables: str | None, mapping: MappingFile) -> list[str]:
    """``--tables`` as ``db.table`` names, in order, once each, or without it the tables
    the mapping file names. ``--tables`` takes ``restore --tables``'s grammar (backtick
    quoting); a value naming no table (``''``, ``,``: an empty shell variable) is refused,
    never read as "every table", and so is a name with a dot, which migration's
    ``db.table`` names cannot hold."""
    if tables is None:
        names = list(mapping.tables)
        if not names:
            raise UsageError("no tables: give --tables DB.TABLE[,DB.TABLE...] or a --mapping file")
    else:
        names = []
        for entry in parse_tables([tables]):
            if len(entry.readings) != 1 or any("." in part for part in entry.readings[0]):
                raise UsageError(
                    f"--tables {entry.text!r}: migration takes DB.TABLE names with no dot "
                    "inside a database or table name"
                )
            names.append(".".join(entry.readings[0]))
    for name in names:
        split_name(name)
    return list(dict.fromkeys(names))


def make_plans(
    conn: Connection,
    loaded: LoadedConfig,
    names: list[str],
    mapping: MappingFile,
    *,
    sample: int = 1000,
    full: bool = False,
    seed: int | None = None,
    sampled: bool = True,
) -> list[TablePlan]:
    """Plans with sampling results (see module docstring)."""
    schemas = [introspect(conn, name) for name in names]
    plans = [build_plan(s, mapping, loaded.config.rethinkdb.db) for s in schemas]
    rng = random.Random(seed)  # noqa: S311 (sampling)
    for plan in plans if sampled else []:
        builder = DocumentBuilder(plan)
        reader = TableReader(plan, builder.select_columns)
        if full:
            found = analyse(builder, reader.stream(conn), "all rows")
            plan.apply_sample(found, found["rows"])
            continue
        rows, method = reader.sample(conn, sample, rng)
        exact = reader.count(conn) if plan.schema.rows_estimate < EXACT_COUNT_BELOW else None
        plan.apply_sample(analyse(builder, rows, method), exact)
    return plans


def open_target(loaded: LoadedConfig, db: str | None = None) -> MigrationTarget:
    """The configured RethinkDB server (exit 3 if unreachable)."""
    target = connect_rethinkdb(loaded.config.rethinkdb)
    if db:
        target.db = db
    return target
