"""The definitions objects of a MySQL dump, and where every object of a dump lives.

Each definitions object is the :data:`~datatier.mysql.sqltext.PRELUDE` and its statements
in one ``DELIMITER`` block (:func:`~datatier.mysql.sqltext.block`): a database's CREATE, a
table's DROP/CREATE (``schema``), a table's triggers, a database's routines and events, a
view's placeholder (``viewstub``, so views over views load in any order) and its real
definition, each definition in the session it was created in. Keys, under ``data/``::

    DB/_database.sql.zst   DB/_routines.sql.zst   DB/_events.sql.zst
    DB/tables/TABLE/{schema,data-00001,...,triggers}.sql.zst
    DB/views/VIEW/{viewstub,view}.sql.zst
    @users/grants.sql.zst
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datatier.backup.objects import ObjectWriter
from datatier.log import get_logger
from datatier.mysql.catalogue import Catalogue, Definition, Table
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.creator_text import in_charset
from datatier.mysql.event_status import status_statement
from datatier.mysql.grants import dump_grants
from datatier.mysql.package_drops import drop_statements
from datatier.mysql.sqltext import (
    PRELUDE,
    UTF8_CLIENT,
    block,
    creation_session,
    ident,
    key_segment,
    strip_qualifier,
)

log = get_logger(__name__)

GRANTS_KEY = "@users/grants.sql.zst"
"""Accounts, roles and grants (``@`` is percent-encoded in database names, so no database
can collide with it)."""


def table_path(database: str, table: str, leaf: str) -> str:
    return f"{key_segment(database)}/tables/{key_segment(table)}/{leaf}"


def view_path(database: str, view: str, leaf: str) -> str:
    return f"{key_segment(database)}/views/{key_segment(view)}/{leaf}"


def database_path(database: str, leaf: str) -> str:
    return f"{key_segment(database)}/{leaf}"


def table_statements(table: Table) -> list[str]:
    """DROP TABLE IF EXISTS and the CREATE TABLE of ``table``, its own database's qualifier
    removed (the server writes a sequence default as ``nextval(`db`.`s`)``: kept, a table
    restored under ``--rename`` would draw its keys from the original database's
    sequence)."""
    return [
        f"DROP TABLE IF EXISTS {ident(table.name)}",
        strip_qualifier(table.create, table.database),
    ]


def put_definitions(
    writer: ObjectWriter,
    key: str,
    kind: str,
    database: str,
    name: str | None,
    *statements: str,
) -> None:
    """A definitions object: the prelude and ``statements`` in one DELIMITER block."""
    obj = writer.open(key, kind, database, name)
    obj.write(PRELUDE + block(list(statements)).encode("utf-8", "surrogateescape"))
    writer.close(obj)


def view_object(view: Definition) -> bytes:
    """The bytes of ``view``'s definition object (what a restore reads its references
    from, :mod:`datatier.mysql.references`)."""
    return PRELUDE + block(_definition_statements(view)).encode("utf-8", "surrogateescape")


def put_schema(writer: ObjectWriter, table: Table) -> None:
    """``table``'s own schema object (a bundled table's DROP/CREATE is in its bundle)."""
    key = table_path(table.database, table.name, "schema.sql.zst")
    put_definitions(writer, key, "schema", table.database, table.name, *table_statements(table))


def write_definitions(
    catalogue: Catalogue, writer: ObjectWriter, bundled: Callable[[Table], bool]
) -> dict[tuple[str, str], bytes]:
    """Every definitions object of ``catalogue``: schema objects for the tables not
    ``bundled``, triggers, routines, events and views; returns each view's definition
    object by (database, view), as written."""
    for db, (charset, collation) in catalogue.databases.items():
        put_definitions(
            writer,
            database_path(db, "_database.sql.zst"),
            "database",
            db,
            None,
            f"CREATE DATABASE /*!32312 IF NOT EXISTS*/ {ident(db)} "
            f"/*!40100 DEFAULT CHARACTER SET {charset} COLLATE {collation} */",
        )
    for table in catalogue.tables:
        if table.kind == "table" and not bundled(table):
            put_schema(writer, table)
    by_table: dict[tuple[str, str | None], list[Definition]] = {}
    for trigger in catalogue.triggers:
        by_table.setdefault((trigger.database, trigger.table), []).append(trigger)
    for (db, table_name), triggers in by_table.items():
        assert table_name is not None
        statements = [s for t in triggers for s in _definition_statements(t)]
        key = table_path(db, table_name, "triggers.sql.zst")
        put_definitions(writer, key, "triggers", db, table_name, *statements)
    _per_database(catalogue.routines, "_routines.sql.zst", "routines", writer)
    _per_database(catalogue.events, "_events.sql.zst", "events", writer)
    written: dict[tuple[str, str], bytes] = {}
    for view in catalogue.views:
        stub = ", ".join(f"1 AS {ident(c)}" for c in view.columns)
        put_definitions(
            writer,
            view_path(view.database, view.name, "viewstub.sql.zst"),
            "viewstubs",
            view.database,
            view.name,
            f"DROP VIEW IF EXISTS {ident(view.name)}",
            f"CREATE VIEW {ident(view.name)} AS SELECT {stub}",
        )
        obj = writer.open(
            view_path(view.database, view.name, "view.sql.zst"), "views", view.database, view.name
        )
        written[(view.database, view.name)] = text = view_object(view)
        obj.write(text)
        writer.close(obj)
    return written


def put_grants(source: Endpoint, writer: ObjectWriter) -> dict[str, Any]:
    """Accounts, roles and grants of ``source`` as one object, :data:`GRANTS_KEY`; read
    after the data: accounts are not part of the snapshot (they are not transactional)."""
    with connect(source) as conn:
        text, skipped = dump_grants(conn)
    obj = writer.open(GRANTS_KEY, "grants", None, None)
    obj.write(text.encode())
    writer.close(obj)
    if skipped:
        log.warning(
            "backup.accounts_skipped",
            accounts=skipped,
            note="the server cannot describe them (e.g. host names with skip_name_resolve)",
        )
    return {"accounts": text.count("\nCREATE "), "skipped": skipped}


def _per_database(
    definitions: list[Definition], leaf: str, kind: str, writer: ObjectWriter
) -> None:
    by_db: dict[str, list[Definition]] = {}
    for definition in definitions:
        by_db.setdefault(definition.database, []).append(definition)
    for db, items in by_db.items():
        statements = [s for d in items for s in _definition_statements(d)]
        put_definitions(writer, database_path(db, leaf), kind, db, None, *statements)


def _definition_statements(d: Definition) -> list[str]:
    """DROP ... IF EXISTS (a package's in its sql_mode: :mod:`datatier.mysql.package_drops`),
    the creation session and the CREATE of a definition (its text as its creator's bytes,
    :mod:`datatier.mysql.creator_text`), then UTF-8 again."""
    if d.converted_from is not None:
        log.warning(
            "backup.definition_charset",
            object=f"{d.kind} {d.database}.{d.name}",
            character_set_client=d.converted_from,
            note="it cannot be written as it is in the charset it was created in: written in "
            "utf8mb4, so the bytes of literals with an introducer (_binary'...') may change",
        )
    statement = d.statement
    if d.kind == "view":
        own = in_charset(d.database, d.charset)  # how the view's text holds its database
        statement = strip_qualifier(statement, own if own is not None else d.database)
    # an event read on a replica: its status on the primary, set in the creation session
    # (ALTER EVENT records the session's sql_mode and charset), so in the creator's bytes
    status = status_statement(d)
    if status is not None and d.charset != "utf8mb4":
        status = in_charset(status, d.charset)
        if status is None:
            log.warning(
                "backup.event_status_unknown",
                events=[f"{d.database}.{d.name}"],
                note="its name or definer does not fit its charset: it is restored disabled",
            )
    statements = [
        *drop_statements(d.kind, d.name, d.sql_mode),
        *creation_session(d.sql_mode, d.collation, d.time_zone, d.charset),
        statement,
        *([status] if status else []),
    ]
    if d.charset != "utf8mb4":
        statements.append(UTF8_CLIENT)
    return statements
