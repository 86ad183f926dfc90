"""Several connections that read one consistent snapshot, and the binlog/GTID point it is.

InnoDB cannot share a read view between connections, so the snapshots are opened while no
transaction can commit (the mydumper idea). On MariaDB 10.4+ the sequence is:

1. ``BACKUP STAGE START`` + ``BLOCK_DDL`` on the coordinator: DDL waits, writes go on; the
   catalogue is read now, so definitions match the data;
2. ``BACKUP STAGE BLOCK_COMMIT``: commits wait (for milliseconds): every worker runs
   ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` and the coordinator reads the binlog file,
   position and GTID state, which therefore describe exactly what the snapshots contain;
3. ``BACKUP STAGE END`` once tables without transactions (MyISAM, Aria) are read.

MySQL uses ``FLUSH TABLES WITH READ LOCK`` for steps 1-2. Without the RELOAD privilege, or
when the lock is not granted within ``lock_wait_seconds`` (a session holding ``LOCK TABLES``
blocks ``BACKUP STAGE``; waiting longer would hold up other sessions), the group falls back
to one worker in one ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` whose position MariaDB
reports itself (``binlog_snapshot_*``, as ``mariadb-dump --single-transaction`` does); a DDL
racing that start is caught by reading the catalogue again inside the snapshot. Locks die
with their connection: a killed backup blocks nothing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pymysql

from datatier.errors import OperationFailed, ServiceUnavailable
from datatier.log import get_logger
from datatier.mysql.connection import Connection, Endpoint, connect, query_dicts
from datatier.mysql.fastreader import RawConnection
from datatier.mysql.flavor import Flavor, FlavourName, detect

log = get_logger(__name__)

NO_PRIVILEGE = (1044, 1045, 1227, 1142)
LOCK_TIMEOUT = 1205


@dataclass(frozen=True)
class SnapshotPoint:
    """What the snapshot contains, as the source's own coordinates."""

    method: str
    binlog_file: str | None
    binlog_pos: int | None
    gtid_pos: str
    gtid_slave_pos: str
    commit_block_seconds: float
    ddl_block_seconds: float = 0.0
    snapshot_at: str = ""  # the source server's UTC time at the snapshot (ISO-8601)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


SINGLE_SNAPSHOT = "one consistent-snapshot transaction (no RELOAD privilege)"
"""The method of a group that could not block DDL (see the module docstring)."""


def lock_method(flavor: Flavor, jobs: int) -> str:
    """The method of a group that blocked DDL and commits, as the manifest records it."""
    method = "BACKUP STAGE" if flavor.block_commit else "FLUSH TABLES WITH READ LOCK"
    return f"{method}, {jobs} snapshot(s)"


def _iso(moment: object) -> str:
    """A server's naive UTC datetime as ISO-8601 with ``Z`` ('' if it is not one)."""
    if not isinstance(moment, datetime):
        return ""
    return moment.isoformat(timespec="microseconds") + "Z"


class SnapshotGroup:
    """A coordinator (pymysql) and ``jobs`` workers (mysqlclient) on ``ep``.

    Use as a context manager; after :meth:`open`, ``workers`` all see the same snapshot
    and :meth:`release` lets the server commit and run DDL again (also done on exit).
    """

    def __init__(self, ep: Endpoint, jobs: int, *, lock_wait_seconds: int = 5) -> None:
        self.ep = ep
        self.jobs = max(1, jobs)
        self.lock_wait_seconds = lock_wait_seconds
        self.coordinator: Connection | None = None
        self.workers: list[RawConnection] = []
        self.flavor: Flavor | None = None
        self.locked = False
        self._ddl_since = 0.0

    def __enter__(self) -> SnapshotGroup:
        self.coordinator = connect(self.ep)
        version = query_dicts(self.coordinator, "SELECT VERSION() AS v")[0]["v"]
        self.flavor = detect(str(version))
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        for worker in self.workers:
            worker.close()
        self.workers = []
        if self.coordinator is not None:
            self.coordinator.close()
            self.coordinator = None

    # -- step 1 ---------------------------------------------------------------------------

    def block_ddl(self) -> bool:
        """Block DDL (MariaDB) or everything (MySQL). False, with one worker from now on,
        when the account lacks the RELOAD privilege."""
        conn, flavor = self._ready()
        with conn.cursor() as cur:
            cur.execute(f"SET SESSION lock_wait_timeout = {int(self.lock_wait_seconds)}")
            try:
                for statement in flavor.block_ddl:
                    cur.execute(statement)
            except pymysql.MySQLError as exc:
                code = exc.args[0] if exc.args else 0
                self._unlock_quietly()
                if code not in (*NO_PRIVILEGE, LOCK_TIMEOUT):
                    raise self._lock_error(exc, "block DDL") from None
                log.warning(
                    "backup.no_backup_lock",
                    node=self.ep.name,
                    reason=self.ep.scrub(str(exc.args[-1])),
                    note="dumping with one connection in one snapshot"
                    + ("; grant RELOAD for a parallel dump" if code != LOCK_TIMEOUT else ""),
                )
                self.jobs = 1
                return False
        self.locked = True
        self._ddl_since = time.monotonic()
        return True

    # -- step 2 ---------------------------------------------------------------------------

    def open(self) -> SnapshotPoint:
        """Open the workers' snapshots and read the point they stand for."""
        conn, flavor = self._ready()
        self.workers = [self._worker(flavor) for _ in range(self.jobs)]
        if not self.locked:
            return self._single_transaction(flavor)
        started = time.monotonic()
        with conn.cursor() as cur:
            try:
                for statement in flavor.block_commit:
                    cur.execute(statement)
            except pymysql.MySQLError as exc:
                raise self._lock_error(exc, "block commits") from None
        for worker in self.workers:
            worker.execute(flavor.start_snapshot)
        status = query_dicts(conn, "SHOW MASTER STATUS")
        gtid = query_dicts(conn, flavor.gtid_query)[0]
        blocked = time.monotonic() - started
        self._savepoints()
        return SnapshotPoint(
            method=lock_method(flavor, self.jobs),
            binlog_file=status[0]["File"] if status else None,
            binlog_pos=int(status[0]["Position"]) if status else None,
            gtid_pos=str(gtid["gtid_pos"] or ""),
            gtid_slave_pos=str(gtid["gtid_slave_pos"] or ""),
            commit_block_seconds=round(blocked, 4),
            snapshot_at=_iso(gtid["snapshot_at"]),
        )

    def _single_transaction(self, flavor: Flavor) -> SnapshotPoint:
        worker = self.workers[0]
        worker.execute(flavor.start_snapshot)
        rows = worker.rows("SHOW STATUS LIKE 'binlog_snapshot_%'")
        values = {(k or b"").decode(): (v or b"").decode() for k, v in rows}
        file, pos = (
            values.get("Binlog_snapshot_file") or None,
            values.get("Binlog_snapshot_position"),
        )
        gtid = ""
        moment = query_dicts(self._ready()[0], "SELECT UTC_TIMESTAMP(6) AS t")[0]["t"]
        if file and pos:
            found = query_dicts(
                self._ready()[0], "SELECT BINLOG_GTID_POS(%s, %s) AS g", (file, int(pos))
            )
            gtid = str(found[0]["g"] or "")
        self._savepoints()
        return SnapshotPoint(
            method=SINGLE_SNAPSHOT,
            binlog_file=file,
            binlog_pos=int(pos) if pos else None,
            gtid_pos=gtid,
            gtid_slave_pos="",
            commit_block_seconds=0.0,
            snapshot_at=_iso(moment),
        )

    # -- step 3 ---------------------------------------------------------------------------

    def release(self) -> float:
        """Let DDL and commits run again; returns how long DDL was blocked (0 if it was not)."""
        if not self.locked or self.coordinator is None or self.flavor is None:
            return 0.0
        self._unlock_quietly()
        self.locked = False
        return round(time.monotonic() - self._ddl_since, 4)

    # -- internals ------------------------------------------------------------------------

    def _ready(self) -> tuple[Connection, Flavor]:
        if self.coordinator is None or self.flavor is None:
            raise RuntimeError("SnapshotGroup used outside its with-block")
        return self.coordinator, self.flavor

    def _worker(self, flavor: Flavor) -> RawConnection:
        conn = RawConnection(self.ep)
        for statement in flavor.session_setup:
            conn.execute(statement)
        return conn

    def _savepoints(self) -> None:
        """Each worker marks the start of its snapshot: rolling back to ``datatier`` after a
        table releases that table's metadata lock (DDL on it need not wait for the dump)."""
        for worker in self.workers:
            worker.execute("SAVEPOINT datatier")

    def _unlock_quietly(self) -> None:
        if self.coordinator is None or self.flavor is None:
            return
        try:
            with self.coordinator.cursor() as cur:
                cur.execute(self.flavor.unlock)
        except pymysql.MySQLError:
            pass  # a dead connection holds no lock

    def _lock_error(self, exc: pymysql.MySQLError, what: str) -> Exception:
        code = exc.args[0] if exc.args else 0
        reason = self.ep.scrub(str(exc.args[-1] if exc.args else exc))
        if code == LOCK_TIMEOUT:
            return OperationFailed(
                f"could not {what} on {self.ep.label} within {self.lock_wait_seconds} s: {reason}",
                hint="a long ALTER TABLE, LOCK TABLES or transaction holds it; retry later",
            )
        if isinstance(exc, pymysql.OperationalError) and code >= 2000:
            return ServiceUnavailable(f"lost MySQL {self.ep.label} while locking: {reason}")
        return OperationFailed(f"could not {what} on {self.ep.label}: {reason}")


def server_flavour(conn: Connection) -> FlavourName:
    """``mariadb`` or ``mysql``, from the server's version string."""
    return detect(str(query_dicts(conn, "SELECT VERSION() AS version")[0]["version"])).name


def open_snapshot(conn: Connection) -> dict[str, Any]:
    """Start one REPEATABLE READ, read-only consistent snapshot on ``conn`` and say where it
    is, for the server's flavour: MariaDB's ``binlog_snapshot_*`` status (exact for the
    snapshot) and ``gtid_current_pos``; MySQL's ``gtid_executed``, read right after the
    snapshot started (MySQL has no exact equivalent without BACKUP_ADMIN, so it may be a
    little ahead). The transaction stays open: roll back on ``conn`` to end it."""
    flavour = server_flavour(conn)
    flavor = Flavor(flavour, (0, 0, 0))
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute(flavor.start_snapshot)
    info: dict[str, Any] = {"flavour": flavour}
    if flavor.is_mariadb:
        status, gtid = flavor.snapshot_position
        info.update({str(r["Variable_name"]): r["Value"] for r in query_dicts(conn, status)})
        info.update(query_dicts(conn, gtid)[0])
    else:
        (gtid,) = flavor.snapshot_position
        row = query_dicts(conn, gtid)[0]
        info["gtid_executed"] = " ".join(str(row["gtid_executed"] or "").split())
    return info
