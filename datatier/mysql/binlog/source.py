"""What the archiver asks a server about its binary logs (SQL), and which node to follow.

A node is a binlog source when ``log_bin`` is on; the *writable* node (``read_only`` off) is
the primary. After a failover the promoted replica is the one writable node; with
``log_slave_updates`` its binlog holds the old primary's transactions under their original
GTIDs, so the archive continues from the same GTID position.
"""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from datatier.errors import ConfigError, DatatierError, ServiceUnavailable
from datatier.mysql.binlog.positions import Position
from datatier.mysql.connection import Endpoint, connect, query_dicts
from datatier.mysql.flavor import detect
from datatier.mysql.lettercase import folds_names


@dataclass(frozen=True)
class NodeFacts:
    """A server's binlog settings and position, read in one round trip."""

    endpoint: Endpoint
    server_id: int
    version: str
    read_only: bool
    log_bin: bool
    binlog_format: str
    checksum: str
    gtid_binlog_pos: Position

    @property
    def is_mariadb(self) -> bool:
        return detect(self.version).is_mariadb


def node_facts(ep: Endpoint) -> NodeFacts:
    """Read ``ep``'s binlog facts (ServiceUnavailable if it cannot be reached)."""
    with connect(ep) as conn:
        try:
            row = query_dicts(
                conn,
                "SELECT @@server_id AS server_id, VERSION() AS version, "
                "@@global.read_only AS read_only, @@log_bin AS log_bin, "
                "@@global.binlog_format AS binlog_format, "
                "@@global.binlog_checksum AS checksum, @@global.gtid_binlog_pos AS pos",
            )[0]
        except pymysql.MySQLError as exc:
            raise ServiceUnavailable(
                f"cannot read binlog settings of {ep.label}: {ep.scrub(str(exc.args[-1]))}"
            ) from None
    return NodeFacts(
        endpoint=ep,
        server_id=int(row["server_id"]),
        version=str(row["version"]),
        read_only=bool(int(row["read_only"])),
        log_bin=bool(int(row["log_bin"])),
        binlog_format=str(row["binlog_format"]),
        checksum=str(row["checksum"]),
        gtid_binlog_pos=Position.parse(str(row["pos"] or "")),
    )


def binary_logs(ep: Endpoint) -> list[tuple[str, int]]:
    """The server's binlog files, oldest first: (name, size)."""
    with connect(ep) as conn, conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [(str(r[0]), int(r[1])) for r in cur.fetchall()]


def binlog_expiry_seconds(ep: Endpoint) -> float:
    """How long ``ep`` keeps a binlog file before purging it (0: never purges)."""
    with connect(ep) as conn, conn.cursor() as cur:
        try:
            cur.execute("SELECT @@global.binlog_expire_logs_seconds")
            row = cur.fetchone()
            return float(row[0] or 0) if row else 0.0
        except pymysql.MySQLError:  # before MariaDB 10.6: days only
            cur.execute("SELECT @@global.expire_logs_days")
            row = cur.fetchone()
            return float(row[0] or 0) * 86400 if row else 0.0


def file_start_position(ep: Endpoint, file: str) -> Position:
    """The GTID state at the start of binlog ``file`` (its GTID list)."""
    with connect(ep) as conn, conn.cursor() as cur:
        cur.execute("SELECT BINLOG_GTID_POS(%s, 4)", (file,))
        row = cur.fetchone()
    return Position.parse(str(row[0] or "")) if row else Position()


def writable_node(endpoints: list[Endpoint]) -> NodeFacts:
    """The one reachable node with ``read_only`` off and the binlog on (the primary).
    ServiceUnavailable naming each node's state when there is none, or several."""
    found: list[NodeFacts] = []
    states: list[str] = []
    for ep in endpoints:
        try:
            facts = node_facts(ep)
        except DatatierError as exc:
            states.append(f"{ep.name}: {exc}")
            continue
        states.append(f"{ep.name}: read_only={int(facts.read_only)} log_bin={int(facts.log_bin)}")
        if not facts.read_only and facts.log_bin:
            found.append(facts)
    if len(found) == 1:
        return found[0]
    what = "no writable node with the binlog on" if not found else "several writable nodes"
    raise ServiceUnavailable(f"{what} to archive from ({'; '.join(states)})")


def check_source(facts: NodeFacts) -> None:
    """ConfigError unless ``facts`` describe a server the archiver can follow."""
    where = f"mysql.nodes.{facts.endpoint.name}"
    if not facts.is_mariadb:
        raise ConfigError(
            "config", where, f"{facts.version} is not MariaDB: binlog archiving needs MariaDB"
        )
    if not facts.log_bin:
        raise ConfigError("config", where, "the binary log is off (start it with --log-bin)")


def database_names(ep: Endpoint) -> set[str]:
    """Every database on ``ep``."""
    with connect(ep) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        return {str(r[0]) for r in cur.fetchall()}


def charset_names(ep: Endpoint) -> dict[int, str]:
    """Collation ID -> character set name, as ``ep`` knows them."""
    with connect(ep) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID IS NOT NULL"
        )
        return {int(r[0]): str(r[1]) for r in cur.fetchall()}


def folds_table_names(ep: Endpoint) -> bool:
    """Whether ``ep`` compares database and table names case-insensitively."""
    with connect(ep) as conn, conn.cursor() as cur:
        return folds_names(cur)


def max_allowed_packet(ep: Endpoint) -> int:
    with connect(ep) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.max_allowed_packet")
        row = cur.fetchone()
    return int(row[0]) if row else 0
