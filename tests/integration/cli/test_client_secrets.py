"""The MySQL password never lands in a file a kill can leave behind (issue 12, item 7).

The stock clients (mariadb-dump, mariadb) get their option file as an inherited,
anonymous file descriptor. Each test runs datatier as its own process with ``TMPDIR``
pointing at an empty directory, stops it mid-run with a real SIGKILL, and searches that
directory (and the process's lifetime snapshot of it) for the password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from datatier.backup.service import load_policy, run_backup
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import (  # noqa: F401  (integ_data: fixture)
    DB,
    TableLock,
    default_store,
    integ_data,
    loaded_config,
    policy,
    wait_for_object,
    waiting_client,
)

pytestmark = pytest.mark.usefixtures("integ_data")


def holding_secret(directory: Path, secret: str) -> list[Path]:
    """Every file under ``directory`` whose bytes contain ``secret``."""
    found = []
    for path in directory.rglob("*"):
        try:
            if path.is_file() and secret.encode() in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


def spawn(sandbox: SandboxHandle, tmpdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )


def kill_and_check(proc: subprocess.Popen[str], tmpdir: Path, secret: str) -> None:
    assert holding_secret(tmpdir, secret) == [], "no file holds the password while it runs"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert holding_secret(tmpdir, secret) == [], "no file with the password survives SIGKILL"


def test_sigkill_of_a_backup_leaves_no_password_file(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """Reproduction: a 0600 option file with the password stayed in the temp directory."""
    secret = sandbox.config.mysql.password.reveal()
    assert secret, "the sandbox account has a password"
    name = policy(sandbox, "integ-secret-backup")
    lock = TableLock(sandbox, "c_third")
    proc = spawn(sandbox, tmp_path, "backup", "run", name)
    try:
        wait_for_object(default_store(sandbox), f"{name}/", "/a_first/data-")
        kill_and_check(proc, tmp_path, secret)
    finally:
        lock.release()


def test_sigkill_of_a_restore_leaves_no_password_file(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    secret = sandbox.config.mysql.password.reveal()
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, policy(sandbox, "integ-secret-restore")))
    copy = "integ_secret_copy"
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {copy}")
        cur.execute(f"CREATE DATABASE {copy}")
        cur.execute(f"CREATE TABLE {copy}.a_first (id INT)")
    blocker = sandbox.connect()  # an open transaction holds the table's metadata lock, so
    blocker.cursor().execute("BEGIN")  # the client's DROP TABLE waits (CREATE DATABASE not)
    blocker.cursor().execute(f"SELECT * FROM {copy}.a_first FOR UPDATE")
    proc = spawn(sandbox, tmp_path, "restore", manifest.backup_id, "--force",
                 "--rename", f"{DB}={copy}", "--jobs", "1")  # fmt: skip
    try:
        waiting_client(sandbox)
        kill_and_check(proc, tmp_path, secret)
    finally:
        blocker.cursor().execute("COMMIT")
        blocker.close()
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {copy}")
