"""A page written while mariabackup copies, after its file was copied, and checkpointed
before the copy ends, is the same timeline: the next incremental must build on the backup.

mariabackup's ``to_lsn`` is the checkpoint it reads at the end (``BACKUP STAGE
BLOCK_COMMIT``), after the data files were copied; a page copied at LSN L0 can be written
again at L1 and checkpointed before then, so L0 < L1 <= to_lsn happens on one timeline.
The page check took that window for a rollback (the check's bound must be the checkpoint
from before the copy began, when every older change was already on disk). Found by
reading mariabackup's source and reproduced by hand on MariaDB 10.11. On a scratch
``mariadbd`` restored from a full physical backup of the sandbox primary; mariabackup runs
through a wrapper first on PATH that stops it between its copy of the InnoDB files and
its reading of the checkpoint, so the window is certain.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from datatier.mysql.physical.pages import read_page
from tests.integration.backup.test_tester7_findings import primary_full_backup, scratch_source
from tests.integration.backup.test_tester8_findings import cleanup
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.physical_support import (
    OWNER,
    Result,
    connect_port,
    scratch,
    table_state,
)

POLICY = "cw-phys"
SOURCE_POLICY = "cw-src"
PAGE = 16384


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """The ID of a full physical backup of the sandbox primary."""
    yield from primary_full_backup(sandbox, SOURCE_POLICY)


PAUSER = """\
import os, signal, subprocess, sys, time
real, paused, resume = sys.argv[1:4]
args = sys.argv[4:]
if "--backup" not in args:
    os.execv(real, [real, *args])
proc = subprocess.Popen([real, *args], stderr=subprocess.PIPE, close_fds=False)
for line in proc.stderr:
    sys.stderr.buffer.write(line)
    sys.stderr.flush()
    if b"Finished BACKUP STAGE START" in line:
        proc.send_signal(signal.SIGSTOP)
        open(paused, "w").close()
        while not os.path.exists(resume):
            time.sleep(0.05)
        proc.send_signal(signal.SIGCONT)
sys.exit(proc.wait())
"""


def pausing(bin_dir: Path, paused: Path, resume: Path) -> str:
    """A ``mariadb-backup`` first on PATH that stops the real one once its InnoDB files
    are copied (``Finished BACKUP STAGE START``, before it reads the checkpoint that becomes
    ``to_lsn``), creates ``paused`` and continues it once ``resume`` exists; the PATH."""
    real = shutil.which("mariadb-backup") or shutil.which("mariabackup")
    if real is None:
        pytest.fail("mariadb-backup is not installed (make deps installs it)")
    bin_dir.mkdir()
    (bin_dir / "pauser.py").write_text(PAUSER)
    wrapper = bin_dir / "mariadb-backup"
    wrapper.write_text(
        f'#!/bin/sh\nexec {sys.executable} {bin_dir / "pauser.py"} {real} {paused} {resume} "$@"\n'
    )
    wrapper.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


def status(conn: pymysql.connections.Connection[Any], name: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SHOW GLOBAL STATUS LIKE '{name}'")
        return int(cur.fetchone()[1])


def wait_for(found: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def backup_while_paused(
    sandbox: SandboxHandle,
    port: int,
    tmp_path: Path,
    env: dict[str, str],
    args: list[str],
    action: Callable[[Any], None],
) -> Result:
    """``datatier ARGS`` with mariabackup stopped once its InnoDB files are copied
    (:func:`pausing`), ``action(cursor)`` run meanwhile on the server at ``port``; the
    result. Fails the test if the action failed."""
    paused, resume = tmp_path / "paused", tmp_path / "resume"
    env = {**env, "PATH": pausing(tmp_path / "bin", paused, resume)}
    failed: list[BaseException] = []

    def meanwhile() -> None:
        try:
            with connect_port(sandbox, port) as conn, conn.cursor() as cur:
                wait_for(paused.exists, "mariabackup copies the InnoDB files")
                action(cur)
        except BaseException as exc:
            failed.append(exc)
        finally:
            resume.touch()

    worker = threading.Thread(target=meanwhile)
    worker.start()
    result = cli(sandbox.config_path, env, *args)
    worker.join()
    assert not failed, failed
    return result


def test_a_page_written_and_checkpointed_during_the_copy_is_no_other_timeline(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Steps: a scratch server (binlog off, so only the page and redo checks speak) with
    ``cw.hot`` (2 rows), dirty pages flushed at once (``innodb_max_dirty_pages_pct = 0``);
    ``backup run --full``, mariabackup stopped once its InnoDB files are copied; meanwhile an
    UPDATE of ``hot`` and a wait until the checkpoint passes it; then ``backup run
    --incremental`` and a restore of the chain.
    Expected: the incremental exit 0, the restore what the server held. Actual before the
    fix: exit 2, "page 3 of cw/hot.ibd was written at LSN L1, after F copied it at LSN L0
    but before that backup's checkpoint to_lsn: another timeline" (to_lsn is the checkpoint
    mariabackup reads after its copy; the bound is now the one the copy began from)."""
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE cw")
            cur.execute("CREATE TABLE cw.hot (id INT PRIMARY KEY, v INT)")
            cur.execute("INSERT INTO cw.hot VALUES (1, 0), (2, 0)")
            cur.execute("SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0.001")
            cur.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
            wait_for(
                lambda: (
                    status(c, "Innodb_lsn_last_checkpoint")
                    >= status(c, "Innodb_lsn_current") - 1024
                ),
                "the checkpoint catches up before the backup",
            )
            updated: list[int] = []

            def update(wc: Any) -> None:
                wc.execute("UPDATE cw.hot SET v = v + 1 WHERE id = 1")
                after = status(wc.connection, "Innodb_lsn_current")
                wait_for(
                    lambda: status(wc.connection, "Innodb_lsn_last_checkpoint") >= after,
                    "the checkpoint passes the update",
                )
                updated.append(after)

            result = backup_while_paused(
                sandbox, s.port, tmp_path, src.env,
                ["backup", "run", POLICY, "--full", "--json"], update,
            )  # fmt: skip
            assert result.code == 0, result.err[-1500:]
            first = str(result.json()["id"])
            copy = src.manifest(first).consistency
            # the window this test is about: a sampled page of hot written again after its
            # copy, at or before the backup's to_lsn
            live = base / "cw" / "hot.ibd"
            widened = [
                (page_no, lsn, now)
                for rel, page_no, _, lsn, _ in copy["page_sample"]["pages"]
                if rel == "cw/hot.ibd"
                and (page := read_page(live, page_no, PAGE)) is not None
                and lsn < (now := int.from_bytes(page[16:24], "big")) <= copy["to_lsn"]
            ]
            assert widened, ("not set up: no page of hot in the window", copy["to_lsn"], updated)
            again = cli(sandbox.config_path, src.env, "backup", "run", POLICY, "--incremental",
                        "--json")  # fmt: skip
            assert again.code == 0, again.err[-1500:]
            last = str(again.json()["id"])
            expected = table_state(c, "cw")
        check = tmp_path / "check"
        src.run("restore", last, "--datadir", str(check), "--owner", OWNER)
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "cw") == expected, "what the server held"
    finally:
        cleanup(src)
