"""What differs between MariaDB and MySQL 8 for backups, in one place.

MariaDB (10.4+) blocks DDL and then commits with ``BACKUP STAGE`` (readers are never
blocked); MySQL has only ``FLUSH TABLES WITH READ LOCK``. GTID positions live in different
variables. Only the MariaDB side is exercised by the test suite (no MySQL 8 server can be
installed on the development machines); the MySQL side follows the MySQL 8 manual.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flavor:
    """SQL that differs per server family."""

    name: str  # "mariadb" | "mysql"
    version: tuple[int, int, int]

    @property
    def is_mariadb(self) -> bool:
        return self.name == "mariadb"

    @property
    def block_ddl(self) -> tuple[str, ...]:
        """Statements after which DDL waits (and, on MySQL, writes too)."""
        if self.is_mariadb and self.version >= (10, 4, 1):
            return ("BACKUP STAGE START", "BACKUP STAGE BLOCK_DDL")
        return ("FLUSH TABLES WITH READ LOCK",)

    @property
    def block_commit(self) -> tuple[str, ...]:
        """Statements after which no transaction commits (run after :attr:`block_ddl`)."""
        if self.is_mariadb and self.version >= (10, 4, 1):
            return ("BACKUP STAGE BLOCK_COMMIT",)
        return ()  # FLUSH TABLES WITH READ LOCK already blocks commits

    @property
    def unlock(self) -> str:
        if self.is_mariadb and self.version >= (10, 4, 1):
            return "BACKUP STAGE END"
        return "UNLOCK TABLES"

    @property
    def gtid_query(self) -> str:
        """One row: ``gtid_pos`` (the server's GTID state, which a new replica of the same
        primary starts from), ``log_bin`` and the server's UTC time (``snapshot_at``, for
        point-in-time restores). Meaningful while commits are blocked."""
        if self.is_mariadb:
            return (
                "SELECT IF(@@log_bin, @@gtid_binlog_pos, @@gtid_current_pos) AS gtid_pos, "
                "@@gtid_slave_pos AS gtid_slave_pos, @@log_bin AS log_bin, "
                "UTC_TIMESTAMP(6) AS snapshot_at"
            )
        return (
            "SELECT @@gtid_executed AS gtid_pos, '' AS gtid_slave_pos, @@log_bin AS log_bin, "
            "UTC_TIMESTAMP(6) AS snapshot_at"
        )

    @property
    def start_snapshot(self) -> str:
        return "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"

    @property
    def session_setup(self) -> tuple[str, ...]:
        """Session settings of a dump connection: UTC, no surprises from the global sql_mode,
        no statement time limit, patience with a reader slowed by uploads."""
        common = (
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "SET SESSION time_zone = '+00:00'",
            "SET SESSION sql_mode = ''",
            "SET SESSION net_write_timeout = 3600",
            "SET SESSION wait_timeout = 86400",
        )
        if self.is_mariadb:
            return (*common, "SET SESSION max_statement_time = 0")
        return (*common, "SET SESSION max_execution_time = 0")


def detect(version: str) -> Flavor:
    """The flavor of a server from ``SELECT VERSION()`` (``10.11.6-MariaDB-0+deb12u1-log``)."""
    numbers = version.split("-", 1)[0].split(".")
    parsed = tuple(int(n) if n.isdigit() else 0 for n in [*numbers, "0", "0", "0"][:3])
    name = "mariadb" if "mariadb" in version.lower() else "mysql"
    return Flavor(name, (parsed[0], parsed[1], parsed[2]))
