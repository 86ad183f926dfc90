"""What differs between MariaDB and MySQL 8, in one place.

* Backup locks: MariaDB (10.4+) blocks DDL and then commits with ``BACKUP STAGE`` (readers
  are never blocked); MySQL has only ``FLUSH TABLES WITH READ LOCK`` (:class:`Flavor`).
* GTID positions live in different variables (``@@gtid_binlog_pos`` / ``@@gtid_slave_pos``
  vs ``@@gtid_executed``), are waited for with different functions (``MASTER_GTID_WAIT`` vs
  ``WAIT_FOR_EXECUTED_GTID_SET``, :func:`wait_statement`) and a snapshot's position is read
  differently (:attr:`Flavor.snapshot_position`).
* Accounts and sessions: MariaDB keeps roles in ``mysql.user`` (``is_role``); MySQL 8 prints
  password hashes reloadably only in hex (:attr:`Flavor.accounts_query`,
  :attr:`Flavor.grants_session`); MariaDB's ``COM_RESET_CONNECTION`` keeps the handshake's
  collation (:attr:`Flavor.reset_keeps_collation`).
* Replica status: MariaDB keeps the ``Slave_*`` / ``Master_*`` column names even when asked
  with ``SHOW REPLICA STATUS``; MySQL 8.0.22+ answers ``Replica_*`` / ``Source_*`` (older
  MySQL: ``Slave_*`` / ``Master_*`` plus ``Executed_Gtid_Set``): :data:`STATUS_COLUMNS`,
  :func:`status_flavour`.

Only the MariaDB side is exercised by the test suite (no MySQL 8 server can be installed on
the development machines); the MySQL side follows the MySQL 8 manual. Replication set-up
(``CHANGE MASTER``, ``gtid_slave_pos``: :mod:`datatier.mysql.replicate`) exists for MariaDB
only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

FlavourName = Literal["mariadb", "mysql"]
MARIADB: Final = "mariadb"
MYSQL: Final = "mysql"


@dataclass(frozen=True)
class Flavor:
    """SQL that differs per server family."""

    name: FlavourName
    version: tuple[int, int, int]

    @property
    def is_mariadb(self) -> bool:
        return self.name == MARIADB

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
    def snapshot_position(self) -> tuple[str, ...]:
        """Queries run inside a consistent-snapshot transaction that say where it is:
        MariaDB's binlog file and position of the snapshot (``SHOW STATUS`` rows of
        ``Variable_name``/``Value``) and its ``gtid_current_pos``; MySQL's
        ``gtid_executed`` (one row, one column)."""
        if self.is_mariadb:
            return (
                "SHOW STATUS LIKE 'binlog_snapshot_%'",
                "SELECT @@gtid_current_pos AS gtid_current_pos",
            )
        return ("SELECT @@GLOBAL.gtid_executed AS gtid_executed",)

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

    @property
    def accounts_query(self) -> str:
        """Every account of ``mysql.user`` as ``u`` (user), ``h`` (host) and ``r`` (``Y`` for
        a role: MariaDB keeps roles there; MySQL's roles are locked accounts)."""
        role = "is_role" if self.is_mariadb else "'N'"
        return f"SELECT User AS u, Host AS h, {role} AS r FROM mysql.user ORDER BY User, Host"

    @property
    def grants_session(self) -> tuple[str, ...]:
        """Best-effort session settings before ``SHOW CREATE USER``: MySQL 8 prints password
        hashes in a form that can be loaded again only when asked to (hex)."""
        if self.is_mariadb:
            return ()
        return ("SET SESSION print_identified_with_as_hex = ON",)

    @property
    def reset_keeps_collation(self) -> bool:
        """Whether ``COM_RESET_CONNECTION`` leaves the handshake's collation in place
        (MariaDB does; MySQL resets to the server's default, so ``SET NAMES`` follows)."""
        return self.is_mariadb


def detect(version: str) -> Flavor:
    """The flavor of a server from ``SELECT VERSION()`` (``10.11.6-MariaDB-0+deb12u1-log``)."""
    numbers = version.split("-", 1)[0].split(".")
    parsed = tuple(int(n) if n.isdigit() else 0 for n in [*numbers, "0", "0", "0"][:3])
    name: FlavourName = MARIADB if "mariadb" in version.lower() else MYSQL
    return Flavor(name, (parsed[0], parsed[1], parsed[2]))


GTID_POSITION_VARIABLES: Final = ("gtid_binlog_pos", "gtid_executed")
"""The variable holding a server's executed GTID position, MariaDB's first: ask for each in
turn until the server knows it."""


def wait_statement(flavour: str) -> str:
    """The statement that blocks until a GTID position is applied (0 once it is; MariaDB
    answers -1 and MySQL 1 on timeout). Parameters: the position, the timeout in seconds."""
    function = "MASTER_GTID_WAIT" if flavour == MARIADB else "WAIT_FOR_EXECUTED_GTID_SET"
    return f"SELECT {function}(%s, %s)"


# Each logical replica status field -> the column names that may carry it, newest first.
STATUS_COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "io_running": ("Replica_IO_Running", "Slave_IO_Running"),
    "sql_running": ("Replica_SQL_Running", "Slave_SQL_Running"),
    "io_state": ("Replica_IO_State", "Slave_IO_State"),
    "sql_state": ("Replica_SQL_Running_State", "Slave_SQL_Running_State"),
    "source_host": ("Source_Host", "Master_Host"),
    "source_port": ("Source_Port", "Master_Port"),
    "source_server_id": ("Source_Server_Id", "Master_Server_Id"),
    "seconds_behind": ("Seconds_Behind_Source", "Seconds_Behind_Master"),
    "sql_delay": ("SQL_Delay",),
    "last_io_errno": ("Last_IO_Errno",),
    "last_io_error": ("Last_IO_Error",),
    "last_sql_errno": ("Last_SQL_Errno",),
    "last_sql_error": ("Last_SQL_Error",),
    "source_log_file": ("Source_Log_File", "Master_Log_File"),
    "read_source_log_pos": ("Read_Source_Log_Pos", "Read_Master_Log_Pos"),
    "exec_source_log_pos": ("Exec_Source_Log_Pos", "Exec_Master_Log_Pos"),
    "using_gtid": ("Using_Gtid", "Auto_Position"),
    "gtid_received": ("Gtid_IO_Pos", "Retrieved_Gtid_Set"),
    "gtid_executed": ("Executed_Gtid_Set", "Gtid_Slave_Pos"),
}

STATUS_STATEMENTS: Final = ("SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
"""Replica status, newest syntax first (MySQL 8.0.22+ and MariaDB 10.5+ know the first)."""

MARIADB_APPLIED_POSITION: Final = "SELECT @@GLOBAL.gtid_slave_pos AS pos"
"""MariaDB's replica status has no executed GTID set: this variable is it."""


def status_flavour(row: Mapping[str, Any]) -> FlavourName:
    """``mysql`` for Replica_*/Source_* rows or rows with Executed_Gtid_Set, else
    ``mariadb``."""
    if "Replica_IO_Running" in row or "Executed_Gtid_Set" in row or "Source_UUID" in row:
        return MYSQL
    if "Master_UUID" in row:
        return MYSQL
    return MARIADB
