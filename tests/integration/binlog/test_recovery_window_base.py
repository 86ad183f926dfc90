"""``recovery_window_days`` keeps "the newest backup at or before the window's start, the
base a restore to the window's first moment needs". Retention dates a backup by when it
*started*; a point-in-time restore takes as base a backup whose *snapshot*
(``consistency.snapshot_at``) is at or before the target. A backup that started before the
window's start and took its snapshot after it (here: 5 s waiting for the backup lock, then
the one-transaction fallback) was kept as that base, and the older backup, the real base,
was deleted: a restore to the window's start, fine before the prune, is refused after it
(tester's regression test, sandbox's real MariaDB and S3 server). Retention now dates
backups by their snapshot, as the restore does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from datatier.backup.service import run_backup
from datatier.cli import main
from tests.integration.binlog_support import pitr_window
from tests.integration.conftest import SandboxHandle

DB = "t5win_db"
LOCKED = "t5win_lock"
TARGET = "t5win_r"
POLICY = "t5win"


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def late_snapshot(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, datetime]]:
    """B1; then B2, whose snapshot comes ~5 s after its start (a LOCK TABLES on the source
    replica holds off the backup lock); archived past both."""
    sandbox = use_sandbox_config
    with pitr_window(sandbox, POLICY, DB, TARGET, LOCKED, monkeypatch=monkeypatch) as window:
        window.sql(
            f"CREATE DATABASE {LOCKED}",
            f"CREATE TABLE {LOCKED}.l (id INT)",
            f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)",
            f"INSERT INTO {DB}.t VALUES (1)",
        )
        first = window.backup()
        window.sql(f"INSERT INTO {DB}.t VALUES (2)")
        sandbox.wait_replicated(60)
        locked = threading.Event()

        def hold() -> None:
            with sandbox.connect("replica1") as conn, conn.cursor() as cur:
                cur.execute(f"LOCK TABLES {LOCKED}.l WRITE")
                locked.set()
                time.sleep(8)
                cur.execute("UNLOCK TABLES")

        holder = threading.Thread(target=hold)
        holder.start()
        assert locked.wait(10)
        second = run_backup(window.loaded, window.policy)  # held off by the lock
        holder.join()
        window.sql(f"INSERT INTO {DB}.t VALUES (3)")
        time.sleep(1.1)
        window.archive()
        yield {
            "first_snapshot": moment(first.consistency["snapshot_at"]),
            "started": moment(second.started_at),
            "snapshot": moment(second.consistency["snapshot_at"]),
        }


def test_the_recovery_window_keeps_the_base_a_restore_to_its_start_needs(
    late_snapshot: dict[str, datetime], use_sandbox_config: SandboxHandle
) -> None:
    sandbox = use_sandbox_config
    started, snapshot = late_snapshot["started"], late_snapshot["snapshot"]
    assert snapshot - started > timedelta(seconds=4), "the backup lock did not hold B2 off"
    start = (started + timedelta(seconds=2)).replace(microsecond=0)  # the window's start
    assert late_snapshot["first_snapshot"] < start < snapshot
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    window = (now - start) / timedelta(days=1)
    sandbox.write_policy(
        POLICY,
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
        f"[retention]\nkeep_last = 1\nmin_age_days = 0\nrecovery_window_days = {window!r}\n",
    )
    until = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    restore = ["restore", "--policy", POLICY, "--until", until, "--rename", f"{DB}={TARGET}"]
    assert main([*restore, "--dry-run"]) == 0  # restorable before the prune
    prune = ["backups", "prune", POLICY, "--now", now.isoformat(), "--grace-hours", "0"]
    assert main([*prune, "--execute"]) == 0
    assert main([*restore, "--dry-run"]) == 0, "the window's start is no longer restorable"
