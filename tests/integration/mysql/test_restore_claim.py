"""Two restores into one database at once (:mod:`datatier.mysql.claim`), on the real
sandbox: the second is refused with exit 5 before it changes anything, the first still
restores every row, a restore that is killed leaves no claim behind, and one whose lock
session is killed mid-load stops before its next write (exit 1).

The first restore is held in place, claim taken, by the test's open transaction on
``DST.block``: its ``DROP TABLE IF EXISTS block`` waits on that metadata lock (for an hour:
the lock wait timeouts are raised) until the test lets it go. Both restores run with
``--force`` (a nightly refresh of a staging copy, say), which skips the "target not empty"
refusal that would otherwise catch a second restore that started late enough.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from datatier.backup.manifest import Manifest
from datatier.mysql.claim import lock_name
from datatier.mysql.connection import Connection
from tests.integration.conftest import SandboxHandle, q, wait_for
from tests.integration.mysql.conftest import back_up
from tests.integration.mysql.test_restore_stop import long_lock_waits  # noqa: F401 (fixture)

SRC = "rclaim src`;数据"
DST = "rclaim dst`;数据"
ROWS = 500


@pytest.fixture(scope="module")
def source(sandbox: SandboxHandle) -> Iterator[Manifest]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
        cur.execute(f"CREATE DATABASE {q(SRC)}")
        for table in ("block", "keyless"):
            key = "PRIMARY KEY" if table == "block" else ""
            cur.execute(f"CREATE TABLE {q(SRC)}.{table} (id INT {key}, v VARCHAR(20))")
            cur.executemany(
                f"INSERT INTO {q(SRC)}.{table} VALUES (%s, %s)",
                [(i, f"v{i}") for i in range(ROWS)],
            )
    yield back_up(sandbox, "restore-claim", [SRC], "bundle_tables = false\n")
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")


@pytest.fixture
def target(sandbox: SandboxHandle, long_lock_waits: None) -> Iterator[None]:  # noqa: F811
    """``DST`` holding an older ``block`` and ``keyless`` (one row each)."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(DST)}")
        cur.execute(f"CREATE DATABASE {q(DST)}")
        for table in ("block", "keyless"):
            cur.execute(f"CREATE TABLE {q(DST)}.{table} (id INT, old INT)")
            cur.execute(f"INSERT INTO {q(DST)}.{table} VALUES (-1, -1)")
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(DST)}")


def restore(sandbox: SandboxHandle, backup_id: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), "restore",
        backup_id, "--rename", f"{SRC}={DST}", "--force", *extra,
    ]  # fmt: skip


def claimed(sandbox: SandboxHandle) -> bool:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name(DST),))
        row = cur.fetchone()
    return row is not None and row[0] is not None


def waiting_drops(sandbox: SandboxHandle) -> int:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE DB = %s AND INFO LIKE 'DROP TABLE%%'",
            (DST,),
        )
        row = cur.fetchone()
    return int(row[0]) if row else 0


def contents(sandbox: SandboxHandle, database: str) -> dict[str, list[tuple[object, ...]]]:
    found = {}
    with sandbox.connect() as conn, conn.cursor() as cur:
        for table in ("block", "keyless"):
            cur.execute(f"SELECT * FROM {q(database)}.{table} ORDER BY id")
            found[table] = list(cur.fetchall())
    return found


@dataclass
class Blocked:
    """The held restore, and the test's transaction holding it."""

    proc: subprocess.Popen[str]
    holder: Connection

    def release(self) -> None:
        self.holder.rollback()


@pytest.fixture
def blocked_restore(sandbox: SandboxHandle, source: Manifest, target: None) -> Iterator[Blocked]:
    """A restore into ``DST`` with its claim taken, waiting on the test's metadata lock on
    ``DST.block``; the lock is let go when the test ends (or calls ``release``)."""
    holder = sandbox.connect()
    with holder.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"SELECT * FROM {q(DST)}.block")
    proc = subprocess.Popen(
        restore(sandbox, source.backup_id, "--jobs", "1"), stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: waiting_drops(sandbox) > 0, timeout=60, step=0.1)
        assert claimed(sandbox), "a restore holds its target's claim while it loads"
        yield Blocked(proc, holder)
    finally:
        holder.rollback()
        holder.close()
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_second_restore_into_the_same_database_is_refused_and_the_first_completes(
    sandbox: SandboxHandle, source: Manifest, blocked_restore: Blocked
) -> None:
    second = subprocess.run(
        restore(sandbox, source.backup_id, "--jobs", "2"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 5, second.stderr
    (doc,) = [json.loads(line) for line in second.stderr.splitlines() if '"error"' in line]
    assert doc["error"].startswith(f"another restore into {DST!r}")
    assert "--rename" in doc["hint"]
    blocked_restore.release()
    _, err = blocked_restore.proc.communicate(timeout=120)
    assert blocked_restore.proc.returncode == 0, err
    assert contents(sandbox, DST) == contents(sandbox, SRC), "every row once, none of the old"
    assert not claimed(sandbox), "the claim ends with the restore"


def test_a_killed_restore_leaves_no_claim_behind(
    sandbox: SandboxHandle, source: Manifest, blocked_restore: Blocked
) -> None:
    blocked_restore.proc.send_signal(signal.SIGKILL)
    blocked_restore.proc.wait(timeout=30)
    wait_for(lambda: not claimed(sandbox), timeout=30, step=0.1)
    blocked_restore.release()
    wait_for(lambda: waiting_drops(sandbox) == 0, timeout=30, step=0.1)
    again = subprocess.run(
        restore(sandbox, source.backup_id), capture_output=True, text=True, timeout=180
    )
    assert again.returncode == 0, again.stderr
    assert contents(sandbox, DST) == contents(sandbox, SRC)


def test_a_dry_run_takes_no_claim_and_a_held_claim_changes_nothing(
    sandbox: SandboxHandle, source: Manifest, target: None
) -> None:
    before = contents(sandbox, DST)
    with sandbox.connect() as other, other.cursor() as cur:  # as another restore would
        cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(DST),))
        dry = subprocess.run(
            restore(sandbox, source.backup_id, "--dry-run"), capture_output=True, text=True
        )
        assert dry.returncode == 0, dry.stderr
        real = subprocess.run(restore(sandbox, source.backup_id), capture_output=True, text=True)
        assert real.returncode == 5, real.stderr
        assert "another restore into" in real.stderr
    assert contents(sandbox, DST) == before, "nothing changed"


def test_a_restore_whose_lock_session_is_killed_stops_before_writing_and_exits_1(
    sandbox: SandboxHandle, source: Manifest, blocked_restore: Blocked
) -> None:
    """Found by helper mongoclaim (it wrote beside the next claimant and exited 0).

    The restore lock lives as long as the restore's lock session, which an operator's
    ``KILL`` (pt-kill of long sessions) or a proxy's reset may end mid-load; the server then
    frees the lock for another restore. The restore now sees it at once (its watcher,
    :mod:`datatier.mysql.claim`), kills its own statements (the DROP waiting on the test's
    metadata lock) and exits 1 saying so, without having written: the target is as the test
    left it, and the next claimant keeps its lock."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name(DST),))
        row = cur.fetchone()
        assert row is not None and row[0] is not None
        cur.execute(f"KILL {int(row[0])}")  # the restore's lock session
    with sandbox.connect() as other, other.cursor() as cur:  # the next restore's claim
        wait_for(lambda: not claimed(sandbox), timeout=30, step=0.1)
        cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(DST),))
        assert cur.fetchone() == (1,), "the lock is free: another restore can take it"
        # the test's metadata lock is still held: only the restore's own stop ends its DROP
        _, err = blocked_restore.proc.communicate(timeout=60)
        assert blocked_restore.proc.returncode == 1, err
        (doc,) = [json.loads(line) for line in err.splitlines() if '"exit_code"' in line]
        assert doc["error"].startswith(f"the restore lock of {DST!r}"), doc
        assert "was lost" in doc["error"]
        assert "may be partly loaded" in doc["error"], "what it may have left is said"
        assert "no other restore" in doc["hint"]
        assert waiting_drops(sandbox) == 0, "its DROP was killed, not left waiting"
        blocked_restore.release()  # (a read before this would queue behind a pending DROP)
        after = contents(sandbox, DST)
        assert after["block"] == [(-1, -1)], "its DROP never ran"
        assert after["keyless"] in ([], [(-1, -1)]), "no row loaded (created empty, at most)"
        cur.execute("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (lock_name(DST),))
        assert cur.fetchone() == (1,), "the next claimant still holds it"


def test_a_killed_query_on_the_lock_session_does_not_lose_the_claim(
    sandbox: SandboxHandle, source: Manifest, blocked_restore: Blocked
) -> None:
    """``KILL QUERY`` (pt-kill's default) ends the watcher's SLEEP, not the session: the
    locks stay, and the restore completes."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name(DST),))
        row = cur.fetchone()
        assert row is not None and row[0] is not None
        for _ in range(3):
            cur.execute(f"KILL QUERY {int(row[0])}")
    assert claimed(sandbox)
    blocked_restore.release()
    _, err = blocked_restore.proc.communicate(timeout=120)
    assert blocked_restore.proc.returncode == 0, err
    assert contents(sandbox, DST) == contents(sandbox, SRC)
    assert not claimed(sandbox)
