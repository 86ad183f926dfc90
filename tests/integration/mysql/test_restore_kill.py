"""SIGKILL of ``datatier restore`` while a batch of small tables' data objects is in flight,
one statement waiting on a lock (:mod:`datatier.mysql.load`), on the sandbox's real servers.

The stock client runs whatever it has read when its input ends, even a statement cut off
mid-way (``test_the_stock_client_runs_a_statement_cut_off_at_eof``). A client that outlived
a killed restore therefore kept loading: the rest of its batch, and a truncated statement
if the kill cut one, possibly after the next restore had replaced the table. Clients (still
used for objects of older backups) die with the thread that feeds them; framed data objects
and bundles (``test_mysql_bundles_kill.py``) start none, their statements come from the
restore process itself. Either way a second restore refuses the partly loaded target (exit
2) and, with ``--force``, gives back exactly the source (``CHECKSUM TABLE`` and row counts
of every table).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.backup.manifest import Manifest
from datatier.mysql.load import BUNDLE_OBJECTS
from tests.integration.conftest import SandboxHandle, q, wait_for
from tests.integration.mysql.conftest import back_up

SRC = "rk src`;数据"
DST = "rk dst`;数据"
ANCHOR = "anchor"
SUFFIXES = [" `x`", ";--", "\n)", "数据", "'q'", '"d"', "),(", "..", "a~b", "$$", "/*", "\\n"]
VALUES = [
    "'); DROP TABLE t; --",
    "back\\slash",
    "nul\0byte",
    "line\nbreak\r\n",
    "),(",
    "*/ /*",
    "DELIMITER ;;",
    "数据 ✓ 😀",
    None,
    "",
]
TABLES = [f"t{i:03d}{SUFFIXES[i % len(SUFFIXES)]}" for i in range(2 * BUNDLE_OBJECTS + 12)]


@pytest.fixture(scope="module")
def source(sandbox: SandboxHandle) -> Iterator[Manifest]:
    """The source database (on the primary) and a backup of it (from replica1)."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
        cur.execute(f"CREATE DATABASE {q(SRC)}")
        # The anchor's definition and data are the largest: created first, and first in
        # the first bundle, so a lock on it holds that bundle's client.
        comment = "anchor " * 200
        cur.execute(
            f"CREATE TABLE {q(SRC)}.{ANCHOR} (id INT PRIMARY KEY, v VARCHAR(200)) "
            f"COMMENT '{comment}'"
        )
        cur.executemany(
            f"INSERT INTO {q(SRC)}.{ANCHOR} VALUES (%s, %s)", [(i, "a" * 100) for i in range(40)]
        )
        for n, name in enumerate(TABLES):
            cur.execute(
                f"CREATE TABLE {q(SRC)}.{q(name)} (id INT PRIMARY KEY, v TEXT, b VARBINARY(16))"
            )
            rows = [
                (i, VALUES[(n + i) % len(VALUES)], bytes([n % 256, 0, 39, 92, 10, i]))
                for i in range(1 + n % 5)
            ]
            cur.executemany(f"INSERT INTO {q(SRC)}.{q(name)} VALUES (%s, %s, %s)", rows)
    # One object per table: a batch of small data objects is what this kills
    # (bundle objects: tests/integration/mysql/test_mysql_bundles_kill.py).
    yield back_up(sandbox, "restore-kill", [SRC], "bundle_tables = false\n")
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def state(sandbox: SandboxHandle, database: str) -> dict[str, tuple[int, int | None]]:
    """Every base table of ``database``: (row count, CHECKSUM TABLE)."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE'",
            (database,),
        )
        found = {}
        for (table,) in cur.fetchall():
            cur.execute(f"SELECT COUNT(*) FROM {q(database)}.{q(table)}")
            count = cur.fetchone()[0]
            cur.execute(f"CHECKSUM TABLE {q(database)}.{q(table)}")
            found[table] = (count, cur.fetchone()[1])
    return found


def restore(sandbox: SandboxHandle, backup_id: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "datatier", "--config", str(sandbox.config_path),
        "restore", backup_id, "--rename", f"{SRC}={DST}", "--jobs", "2", *extra,
    ]  # fmt: skip


def waiting_on_anchor(sandbox: SandboxHandle) -> bool:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE DB=%s AND STATE LIKE 'Waiting for table metadata lock%%'",
            (DST,),
        )
        return bool(cur.fetchone()[0])


def anchor_created(sandbox: SandboxHandle) -> bool:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
            "AND TABLE_NAME=%s",
            (DST, ANCHOR),
        )
        return bool(cur.fetchone()[0])


def kill_restore(
    proc: subprocess.Popen[bytes], victim: str, clients: list[int], *, with_clients: bool = True
) -> None:
    """SIGKILL the restore ``proc`` alone or with its process group (``victim`` ``group``)
    while its clients run (their pids added to ``clients``, for clean-up), and check that
    none outlives it: an orphan would load the rest of its input (and a statement the kill
    cut off) once it is no longer blocked, even into tables a second restore has replaced.
    ``with_clients=False``: the work in flight is framed data objects or bundles, which
    start none."""
    clients.extend(children(proc.pid))
    if with_clients:
        assert clients, "the object's client is a child of the restore"
    else:
        assert clients == [], "framed objects load without a client process"
    if victim == "group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: not any(alive(pid) for pid in clients), timeout=5)


@pytest.mark.parametrize("victim", ["restore", "group"])
def test_sigkill_mid_bundle_then_restore_again_gives_the_source(
    sandbox: SandboxHandle, source: Manifest, victim: str
) -> None:
    """``restore``: only the restore process is killed (the OOM killer's way); ``group``:
    its whole process group (``kill -9 -PGID``, a container or cgroup stop)."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(DST)}")
    proc = subprocess.Popen(
        restore(sandbox, source.backup_id),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    lock = sandbox.connect()
    clients: list[int] = []
    try:
        wait_for(lambda: anchor_created(sandbox), timeout=60, step=0.002)
        with lock.cursor() as cur:
            cur.execute(f"LOCK TABLES {q(DST)}.{ANCHOR} WRITE")
        wait_for(lambda: waiting_on_anchor(sandbox), timeout=60)  # its batch is in flight
        kill_restore(proc, victim, clients, with_clients=False)
    finally:
        with lock.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        lock.close()
        for pid in clients:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)  # a blocked statement the server already had runs now, whole
    partial = state(sandbox, DST)
    want = state(sandbox, SRC)
    assert partial != want, "the kill left the target partly loaded"

    again = subprocess.run(restore(sandbox, source.backup_id), capture_output=True, text=True)
    assert again.returncode == 2, again.stderr
    assert "is not empty" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert state(sandbox, DST) == partial, "a refused restore changes nothing"

    forced = subprocess.run(
        restore(sandbox, source.backup_id, "--force"), capture_output=True, text=True
    )
    assert forced.returncode == 0, forced.stderr
    assert state(sandbox, DST) == want
    assert len(want) == len(TABLES) + 1


def test_the_stock_client_runs_a_statement_cut_off_at_eof(sandbox: SandboxHandle) -> None:
    """Why the client must die with its restore rather than see its input end: it runs
    the text it has, so an INSERT cut after a row's ``)`` loads only the rows before."""
    config = sandbox.config.mysql
    node = config.nodes["primary"]
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(DST)}")
        cur.execute(f"CREATE DATABASE {q(DST)}")
        cur.execute(f"CREATE TABLE {q(DST)}.cut (id INT PRIMARY KEY)")
    argv = [
        "mariadb", "--no-defaults", "--batch", "--binary-mode", "-h", node.host,
        "-P", str(node.port), "-u", config.user, f"--database={DST}",
    ]  # fmt: skip
    env = {**os.environ, "MYSQL_PWD": config.password.reveal()}
    cut = b"INSERT INTO cut VALUES\n(1),\n(2),\n(3)"  # the rest: ",\n(4);\n" never came
    done = subprocess.run(argv, input=cut, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {q(DST)}.cut")
        assert cur.fetchone()[0] == 3
        cur.execute(f"DROP DATABASE {q(DST)}")
