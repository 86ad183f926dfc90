"""SIGKILL of a ``--force`` restore while a bundle's statement waits on a lock (bundle
objects, :mod:`datatier.mysql.pdump`, run on the restore's own connection; batches of
per-table objects are tests/integration/mysql/test_restore_kill.py), on the real sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle, q, wait_for
from tests.integration.mysql.test_mysql_bundles_hostile import tables_of
from tests.integration.mysql.test_restore_kill import alive, kill_restore

KILL_SRC, KILL_DST = "bh_kill_src", "bh_kill_dst"
KILL_TABLES = [f"k{i:02d}" for i in range(20)]


def kill_state(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        found = {}
        for table in tables_of(sandbox, database):
            cur.execute(f"CHECKSUM TABLE {q(database)}.{q(table)}")
            found[table] = cur.fetchone()[1]
    return found


@pytest.mark.parametrize("victim", ["restore", "group"])
def test_sigkill_while_a_bundle_waits_then_force_gives_the_source(
    use_sandbox_config: SandboxHandle, victim: str
) -> None:
    """A ``--force`` restore whose bundle waits on a lock (its ``DROP TABLE`` of a table
    another session holds) is SIGKILLed: no client process runs it (format-1 bundles load
    on the restore's own connection, which dies with it), so once the lock goes the held
    table is untouched; a second ``--force`` gives back the source. (A ``LOCK TABLES``
    would hold the restore's ``CREATE DATABASE IF NOT EXISTS`` instead.)"""
    sandbox = use_sandbox_config
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (KILL_SRC, KILL_DST):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {KILL_SRC}")
        for table in KILL_TABLES:
            cur.execute(f"CREATE TABLE {KILL_SRC}.{table} (id INT PRIMARY KEY, v TEXT)")
            cur.executemany(
                f"INSERT INTO {KILL_SRC}.{table} VALUES (%s, %s)",
                [(i, f"{table} {i} ';\n") for i in range(30)],
            )
    sandbox.wait_replicated()
    sandbox.write_policy(
        "bundles-kill",
        f'engine = "mysql"\njobs = 2\n[source]\nnode = "replica1"\ndatabases = ["{KILL_SRC}"]\n',
    )
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "bundles-kill"))
    bundled = [o for o in manifest.objects if o.kind == "bundle"]
    assert bundled and not [o for o in manifest.objects if o.kind in ("schema", "data")]
    held = bundled[0].sections[len(bundled[0].sections) // 2].table
    argv = [
        sys.executable, "-m", "datatier", "--config", str(sandbox.config_path),
        "restore", manifest.backup_id, "--rename", f"{KILL_SRC}={KILL_DST}", "--force",
    ]  # fmt: skip
    assert subprocess.run(argv, capture_output=True).returncode == 0
    with sandbox.connect() as conn, conn.cursor() as cur:
        for table in KILL_TABLES:
            cur.execute(f"INSERT INTO {KILL_DST}.{table} VALUES (1000, 'mine')")
    before = kill_state(sandbox, KILL_DST)
    lock = sandbox.connect()
    clients: list[int] = []
    try:
        with lock.cursor() as cur:
            cur.execute("START TRANSACTION")  # its read holds the table (not the schema)
            cur.execute(f"SELECT COUNT(*) FROM {KILL_DST}.{held}")
            cur.fetchall()
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

        def waiting() -> bool:
            with sandbox.connect() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB=%s "
                    "AND STATE LIKE 'Waiting for table metadata lock%%'",
                    (KILL_DST,),
                )
                return bool(cur.fetchone()[0])

        wait_for(waiting, timeout=60)
        kill_restore(proc, victim, clients, with_clients=False)
    finally:
        with lock.cursor() as cur:
            cur.execute("ROLLBACK")
        lock.close()
        for pid in clients:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)  # a statement the server already had (the DROP) may run now
    after = kill_state(sandbox, KILL_DST)
    assert held not in after or after[held] == before[held], "no orphan reloaded it"
    assert main(["restore", manifest.backup_id, "--rename", f"{KILL_SRC}={KILL_DST}"]) == 2
    assert subprocess.run(argv, capture_output=True).returncode == 0
    assert kill_state(sandbox, KILL_DST) == kill_state(sandbox, KILL_SRC)
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (KILL_SRC, KILL_DST):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
