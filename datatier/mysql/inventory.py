"""What a server holds and who it is: its databases, a database's tables, its server_id."""

from __future__ import annotations

from datatier.mysql.connection import Connection, query_dicts


def database_names(conn: Connection) -> set[str]:
    """Every database of the server, system ones included."""
    rows = query_dicts(conn, "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA")
    return {str(r["name"]) for r in rows}


def base_tables(conn: Connection, database: str) -> list[str]:
    """The base tables (no views) of ``database``, by name."""
    rows = query_dicts(
        conn,
        "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
        "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        (database,),
    )
    return [str(r["t"]) for r in rows]


def server_id(conn: Connection) -> int:
    return int(query_dicts(conn, "SELECT @@server_id AS id")[0]["id"])
