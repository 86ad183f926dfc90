"""The SQL a restore runs against its target before loading: is it safe, is it empty, and
creating the databases.

Contract: :func:`check_not_replica` refuses (UsageError, exit 2) a server that is
read-only or replicates from a source, since a restore there (the account's privileges
bypass ``read_only``) writes transactions of the replica's own and breaks replication:
with ``gtid_strict_mode`` the SQL thread stops at the next event. Nothing is written by
these checks. :func:`create_databases` validates the character set and collation names a
manifest gives before they reach SQL (they cannot be bound as parameters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datatier.errors import IntegrityFailure, OperationFailed, UsageError
from datatier.log import get_logger
from datatier.mysql.connection import Connection, Endpoint, MySQLError, connect, query_dicts
from datatier.mysql.lettercase import apart, folds_names, name_key
from datatier.mysql.replica_status import read_replica_status
from datatier.mysql.sqltext import ident

log = get_logger(__name__)

CHARSET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
"""MariaDB/MySQL character set and collation names: letters, digits, underscores."""


@dataclass(frozen=True)
class TargetRole:
    """What a restore target is: ``read_only`` and, if it replicates, from where."""

    read_only: bool
    replicates_from: str | None

    @property
    def is_replica(self) -> bool:
        return self.read_only or self.replicates_from is not None


def target_role(conn: Connection) -> TargetRole:
    """``@@read_only`` and the replication source (if any) of ``conn``'s server."""
    row = query_dicts(conn, "SELECT @@GLOBAL.read_only AS ro")[0]
    status = read_replica_status(conn)
    source = None
    if status is not None and (status.source_host or status.io_running != "No"):
        source = f"{status.source_host}:{status.source_port}"
    return TargetRole(bool(int(row["ro"])), source)


def check_not_replica(target: Endpoint, configured_role: str | None, *, allow: bool) -> bool:
    """Refuse a read-only or replica target unless ``allow``; True when it is one (the
    caller then loads without binlogging). ``configured_role`` is the node's role in the
    config, if the target is a configured node."""
    with connect(target) as conn:
        role = target_role(conn)
    reasons = []
    if configured_role == "replica":
        reasons.append("it is a replica in [mysql.nodes]")
    if role.replicates_from:
        reasons.append(f"it replicates from {role.replicates_from}")
    if role.read_only:
        reasons.append("read_only is ON")
    if reasons and not allow:
        raise UsageError(
            f"refusing to restore into {target.label}: {'; '.join(reasons)}. Writing there "
            "creates transactions of its own (errant GTIDs) and stops its replication",
            hint="restore into the primary, or pass --allow-replica-target to restore there "
            "anyway (without binlogging)",
        )
    return bool(reasons)


BUSY_KINDS = (
    ("tables", "information_schema.TABLES", "TABLE_SCHEMA"),  # views and sequences too
    ("routines", "information_schema.ROUTINES", "ROUTINE_SCHEMA"),
    ("events", "information_schema.EVENTS", "EVENT_SCHEMA"),
)
"""What makes a database non-empty: every kind of object a restore creates and would replace
(a trigger belongs to a table)."""


def busy_databases(target: Endpoint, databases: list[str]) -> dict[str, dict[str, int]]:
    """Of ``databases``, those that already hold objects on ``target`` (tables, views,
    sequences, routines, events), with their count by kind (``{"tables": 2, ...}``)."""
    found: dict[str, dict[str, int]] = {}
    if not databases:
        return found
    with connect(target) as conn, conn.cursor() as cur:
        for batch in apart(databases):  # IN ('Shop', 'shop') would ask for Shop alone
            marks = ",".join(["%s"] * len(batch))
            for kind, view, column in BUSY_KINDS:
                cur.execute(
                    f"SELECT {column}, COUNT(*) FROM {view} "
                    f"WHERE {column} IN ({marks}) GROUP BY {column}",
                    tuple(batch),
                )
                for database, count in cur.fetchall():
                    found.setdefault(database, {})[kind] = int(count)
    return found


def database_clause(charset: Mapping[str, Any], where: str) -> str:
    """`` CHARACTER SET x COLLATE y`` from a manifest's database record (empty when it has
    none); IntegrityFailure naming ``where`` for a name that is not an identifier."""
    clause = ""
    for keyword, key in (("CHARACTER SET", "charset"), ("COLLATE", "collation")):
        value = charset.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not CHARSET_NAME.match(value):
            raise IntegrityFailure(f"{where}: {key} {value!r} is not a valid name")
        clause += f" {keyword} {value}"
    return clause


def changed_defaults(
    target: Endpoint, names: Mapping[str, str], charsets: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """The target databases of ``names`` (source -> target) that exist with a default
    character set or collation other than the source's in ``charsets``: (target database,
    its defaults now, the backup's), as ``charset/collation``. What :func:`create_databases`
    with ``defaults`` alters (the plan tells it). Reads only."""
    wanted = {dst: charsets.get(src, {}) for src, dst in names.items()}
    if not wanted:
        return []
    present: dict[str, tuple[str, str]] = {}
    with connect(target) as conn, conn.cursor() as cur:
        fold = folds_names(cur)
        for batch in apart(wanted):  # IN ('Shop', 'shop') would answer for one of them
            cur.execute(
                "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
                "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                tuple(batch),
            )
            present |= {
                name_key(str(name), fold): (str(charset), str(collation))
                for name, charset, collation in cur.fetchall()
                if name_key(str(name), fold) == name_key(batch[0], fold)
            }
    found = []
    for dst, record in sorted(wanted.items()):
        now = present.get(name_key(dst, fold))
        if now is None:
            continue
        backup = (record.get("charset") or now[0], record.get("collation") or now[1])
        if now != backup:
            found.append((dst, "/".join(now), "/".join(map(str, backup))))
    return found


def create_databases(
    target: Endpoint,
    names: Mapping[str, str],
    charsets: Mapping[str, Mapping[str, Any]],
    *,
    binlog: bool,
    defaults: bool = False,
    changed: list[str] | None = None,
) -> None:
    """``CREATE DATABASE IF NOT EXISTS`` each target of ``names`` (source -> target) with
    the source's character set and collation from ``charsets``; with ``defaults``, an
    existing one is given them too (``ALTER DATABASE``: its defaults only, its tables are
    not converted). Every clause is validated before the first statement runs. Those
    created or altered are appended to ``changed`` as they are (so a caller knows what a
    failure part-way left)."""
    statements = [
        (
            ident(dst),
            dst,
            database_clause(charsets.get(src, {}), f"manifest record of database {src!r}"),
        )
        for src, dst in names.items()
    ]
    with connect(target) as conn, conn.cursor() as cur:
        if not binlog:
            cur.execute("SET SESSION sql_log_bin = 0")
        for quoted, dst, clause in statements:
            doing = "create database"
            try:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {quoted}{clause}")
                if not cur.rowcount and defaults and clause:  # 0 rows: it existed already
                    doing = "set the default character set of database"
                    cur.execute(f"ALTER DATABASE {quoted}{clause}")
                    log.info("restore.database_defaults", database=dst, defaults=clause.strip())
                elif not cur.rowcount:
                    continue
                if changed is not None:
                    changed.append(dst)
            except MySQLError as exc:  # a name the server or its file system refuses
                reason = exc.args[-1] if exc.args else exc
                raise OperationFailed(
                    f"target {target.label} cannot {doing} {dst!r}: {reason}",
                    hint="restore it under another name (--rename SRC=DST)",
                ) from None


def check_packet_size(target: Endpoint, needed: int) -> None:
    """UsageError when the target's ``max_allowed_packet`` is smaller than ``needed`` (the
    backup's largest INSERT statement: a row with large values), so the load would fail
    midway; 0 means unknown (older backups) and passes."""
    if not needed:
        return
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.max_allowed_packet")
        row = cur.fetchone()
    allowed = int(row[0]) if row else 0
    if allowed < needed + 1024:
        mib = -(-(needed + 1024) // (1 << 20))
        raise UsageError(
            f"target {target.label} has max_allowed_packet = {allowed} bytes, but the backup "
            f"holds a statement of {needed} bytes (a row with large values)",
            hint=f"SET GLOBAL max_allowed_packet = {mib}*1024*1024 on the target, then retry",
        )


def bad_database_name(name: str) -> str | None:
    """Why MariaDB would refuse ``name`` for a new database (``Incorrect database name``),
    None when it takes it: at most 64 characters, no trailing space, no NUL."""
    if not name:
        return "it is empty"
    if len(name) > 64:
        return f"{len(name)} characters, MariaDB takes at most 64"
    if name.endswith(" "):
        return "it ends with a space"
    if "\0" in name:
        return "it holds a NUL byte"
    return None


def drop_views(target: Endpoint, views: list[tuple[str, str]], *, binlog: bool) -> None:
    """``DROP VIEW IF EXISTS`` each (database, view) of ``views`` on ``target`` (a failed
    restore's placeholders, which would otherwise answer queries with constants)."""
    with connect(target) as conn, conn.cursor() as cur:
        if not binlog:
            cur.execute("SET SESSION sql_log_bin = 0")
        for database, view in views:
            quoted = ".".join("`" + n.replace("`", "``") + "`" for n in (database, view))
            cur.execute(f"DROP VIEW IF EXISTS {quoted}")
