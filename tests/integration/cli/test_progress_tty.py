"""`restore` and `backups verify` at a real (pseudo-)terminal: progress lines carry totals
and end at 100 %, and log lines land on lines of their own."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.conftest import SandboxHandle, sql

DB = "ops_tty_db"


def at_terminal(args: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run datatier with stderr on a pty; return its exit code and the lines a terminal
    shows (each carriage-return-and-erase starts the line over)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    data = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    code = proc.wait(timeout=60)
    text = data.decode(errors="replace").replace("\r\n", "\n")
    return code, [re.split(r"\r\x1b\[K", line)[-1] for line in text.split("\n")]


@pytest.fixture(scope="module")
def backup_id(sandbox: SandboxHandle) -> Iterator[str]:
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    sql(sandbox, "primary", f"CREATE DATABASE {DB}")
    sql(sandbox, "primary", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v VARCHAR(200))")
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {DB}.t VALUES (%s, %s)", [(i, f"row {i} " * 20) for i in range(20000)]
        )
    sandbox.wait_replicated()
    path = sandbox.write_policy(
        "ops-tty",
        f'engine = "mysql"\nchunk_mb = 1\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n',
    )
    try:
        assert main(["--config", str(sandbox.config_path), "backup", "run", "ops-tty"]) == 0
        from datatier.backup.catalog import Catalog
        from datatier.backup.stores import store_for

        store = store_for(sandbox.config.backup.default_store, sandbox.config)
        entries = Catalog(store).backups("ops-tty")
        yield entries[-1].backup_id
    finally:
        path.unlink()
        for db in (DB, "ops_tty_copy"):
            sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {db}")


def test_restore_and_verify_progress_at_a_terminal(sandbox: SandboxHandle, backup_id: str) -> None:
    env = {**os.environ, "DATATIER_CONFIG": str(sandbox.config_path)}
    code, shown = at_terminal(["restore", backup_id, "--rename", f"{DB}=ops_tty_copy"], env)
    assert code == 0, shown
    checking = [line for line in shown if line.startswith(f"checking {backup_id}: ")]
    loading = [line for line in shown if line.startswith(f"restore {backup_id}: ")]
    assert checking and re.search(r" / [\d.]+ (KiB|MiB) \(100%\)", checking[-1]), checking
    assert loading and re.search(r" / [\d.]+ (KiB|MiB) \(100%\)", loading[-1]), loading
    logged = [line for line in shown if "restore.completed" in line]
    assert len(logged) == 1 and re.match(r"^\d\d:\d\d:\d\d info +restore\.completed", logged[0])

    code, shown = at_terminal(["backups", "verify", backup_id], env)
    assert code == 0, shown
    verify = [line for line in shown if line.startswith(f"verify {backup_id}: ")]
    assert verify and "(100%)" in verify[-1] and "done in" in verify[-1], verify
