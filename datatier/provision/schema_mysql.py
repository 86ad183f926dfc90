"""MySQL schema migrations: ``schemas/mysql/*.sql`` applied in order on the primary.

Contract. Files apply in name order (``001_heartbeat.sql``, ``002_orders.sql``...), each
with the stock ``mariadb`` client (so ``DELIMITER`` works), and are recorded in
``datatier.schema_migrations`` (version = file name, SHA-256 of its bytes, when, by whom).
The table lives on the primary and replicates like any other write. A file changed after it
was applied is an integrity error (exit 4): write a new migration instead. A pending file
that sorts before an applied one is refused (exit 2): migrations never apply out of order.
A user without the privileges gets exit 3 before anything is changed (the migrations table
is created, and a row inserted and rolled back, before each file runs). One apply at a time:
``GET_LOCK('datatier.schema_migrations')`` is held on the primary from the staleness check
to the last file; a second apply waits 10 s, then exits 5 having changed nothing. DDL is not
transactional: a file that fails half-way is not recorded and its first statements stay;
fix the file and apply again (write migrations with ``IF NOT EXISTS`` so a re-run is
harmless). A file that ran but could not be recorded is reported as such (exit 1) with the
INSERT that records it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatier.config import MySQLSettings
from datatier.errors import (
    IntegrityFailure,
    NotReadyYet,
    OperationFailed,
    ServiceUnavailable,
    UsageError,
)
from datatier.mysql import schema_ledger as ledger
from datatier.mysql.connection import Endpoint, MySQLError, connect, primary_endpoint
from datatier.provision.plan import Change, Provisioner


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path
    checksum: str


def mysql_migrations(directory: Path) -> list[Migration]:
    """The ``*.sql`` files of ``directory`` in name order (empty if it does not exist)."""
    if not directory.is_dir():
        return []
    return [
        Migration(p.name, p, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(directory.glob("*.sql"))
    ]


def record_statement(migration: Migration) -> str:
    """The SQL a person runs to record a migration that ran but was not recorded."""
    return ledger.record_statement(migration.version, migration.checksum)


class MySQLSchemas(Provisioner):
    """The primary's applied migrations versus the files (see module docstring)."""

    kind = "mysql"
    LOCK_WAIT = 10  # seconds a second apply waits for the migrations lock

    def __init__(self, settings: MySQLSettings, migrations: list[Migration]) -> None:
        self.target: Endpoint = primary_endpoint(settings, hint="schemas apply on the primary")
        self.migrations = migrations

    @property
    def resource(self) -> str:
        return f"mysql {self.target.name}"

    def observe(self) -> dict[str, Any]:
        try:
            with connect(self.target) as conn:
                return {"applied": ledger.applied_versions(conn)}
        except MySQLError as exc:
            raise self._error("read datatier.schema_migrations", exc) from None

    def diff(self, observed: dict[str, Any]) -> list[Change]:
        applied: dict[str, str] = observed.get("applied", {})
        changes = []
        last_applied = max(applied, default="")
        for m in self.migrations:
            if m.version in applied:
                if applied[m.version] != m.checksum:
                    raise IntegrityFailure(
                        f"{m.path} changed after it was applied on {self.target.label} "
                        f"(applied {applied[m.version][:12]}, file now {m.checksum[:12]})",
                        hint="restore the file and add a new migration instead",
                    )
                continue
            if m.version < last_applied:
                raise UsageError(
                    f"{m.path.name} is pending but {last_applied} is already applied on "
                    f"{self.target.label}: migrations apply in order",
                    hint=f"rename it to sort after {last_applied}",
                )
            changes.append(
                Change(
                    self.resource,
                    f"migration {m.version}",
                    "apply",
                    None,
                    {"file": str(m.path), "checksum": m.checksum},
                )
            )
        return changes

    @contextmanager
    def applying(self) -> Iterator[None]:
        """Hold ``GET_LOCK('datatier.schema_migrations')`` on the primary for the whole apply:
        a second apply waits :attr:`LOCK_WAIT` seconds, then gets NotReadyYet (exit 5)."""
        with connect(self.target) as conn:
            try:
                locked = ledger.acquire_lock(conn, self.LOCK_WAIT)
            except MySQLError as exc:
                raise self._error("lock datatier.schema_migrations", exc) from None
            if not locked:
                raise NotReadyYet(
                    f"another `datatier provision apply` holds the migrations lock on "
                    f"{self.target.label} ({ledger.LOCK_NAME!r}, waited {self.LOCK_WAIT} s)",
                    hint="run again when it has finished; nothing was changed",
                )
            try:
                yield
            finally:
                ledger.release_lock(conn)

    def apply_change(self, change: Change) -> None:
        version = change.item.removeprefix("migration ")
        found = [m for m in self.migrations if m.version == version]
        if not found:
            raise UsageError(f"the plan applies {version}, which is no longer a file")
        migration = found[0]
        if migration.checksum != change.after["checksum"]:
            raise UsageError(
                f"{migration.path} changed since the plan was made",
                hint="run `datatier provision plan` again",
            )
        try:
            # The privilege to record it is checked before the file runs.
            with connect(self.target) as conn:
                ledger.check_recordable(conn, migration.version, migration.checksum)
        except MySQLError as exc:
            raise self._error(f"apply {migration.version}", exc) from None
        self._run_file(migration)
        try:
            self._record(migration)
        except (MySQLError, ServiceUnavailable) as exc:
            reason = exc.message if isinstance(exc, ServiceUnavailable) else exc.args[-1]
            raise OperationFailed(
                f"{migration.version} ran on {self.target.label} but is NOT recorded in "
                f"datatier.schema_migrations ({reason}); the next apply would run it again",
                hint="record it with: " + record_statement(migration),
            ) from None

    def _record(self, migration: Migration) -> None:
        """Insert the row of a migration that ran (a fresh connection: the file may have
        run for longer than the server keeps an idle one)."""
        with connect(self.target) as conn:
            ledger.record(conn, migration.version, migration.checksum)

    def _run_file(self, migration: Migration) -> None:
        code, said = ledger.run_sql_file(self.target, migration.path)
        if code != 0:
            detail = said or f"exit code {code}"
            kind = ServiceUnavailable if "denied" in detail.lower() else OperationFailed
            raise kind(f"{migration.path.name} failed on {self.target.label}: {detail}")

    def _error(self, action: str, exc: MySQLError) -> Exception:
        reason = exc.args[1] if len(exc.args) > 1 else str(exc)
        if ledger.access_denied(exc):
            return ServiceUnavailable(
                f"MySQL {self.target.label} denied {self.target.user} the privileges to "
                f"{action}: {reason}",
                hint="the schema user needs CREATE, ALTER, INSERT... on the schemas and on "
                "`datatier`; nothing was changed by this step",
            )
        return OperationFailed(f"could not {action} on {self.target.label}: {reason}")
