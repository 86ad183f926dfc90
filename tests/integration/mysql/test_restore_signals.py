"""``datatier restore`` blocked on a lock the test holds: a failing sibling job, Ctrl-C or
SIGTERM ends it within seconds, with the failure's (or the signal's) one-line message and
exit code, and leaves no statement of it on the server (:mod:`datatier.mysql.interrupt`).

The target is pre-seeded and the restore runs with ``--force``: the test's open
transaction on ``block`` holds a metadata lock its ``DROP TABLE IF EXISTS`` waits on (for
an hour: the lock wait timeouts are raised); the backed-up ``fail`` has a foreign key to
``rsig_parent.p``, a table of another database (not restored) whose key column the test
then makes a VARCHAR, so ``fail``'s ``CREATE TABLE`` fails at once (errno 150, with
foreign_key_checks off too). (A view named ``fail`` did this until ``--force`` learnt to
replace an object of another kind; then a kept table holding ``fail``'s key name, until
a forced restore learnt to refuse that up front.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from tests.integration.conftest import SandboxHandle, wait_for
from tests.integration.mysql.conftest import back_up
from tests.integration.mysql.test_restore_stop import long_lock_waits  # noqa: F401 (fixture)

SRC = "rsig_src"
DST = "rsig_dst"
PARENT = "rsig_parent"
FILLERS = [f"f{i:02d}" for i in range(16)]


@pytest.fixture(scope="module")
def source(sandbox: SandboxHandle) -> Iterator[Manifest]:
    """``block`` (the largest definition: loaded first), fillers (a comment keeps them
    larger than ``fail``), then ``fail`` (the smallest: loaded last, when ``block``'s DROP
    has long been waiting), whose foreign key references ``PARENT.p``."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST, PARENT):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {SRC}")
        cur.execute(f"CREATE DATABASE {PARENT}")
        cur.execute(f"CREATE TABLE {PARENT}.p (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO {PARENT}.p VALUES (1), (2)")
        comment = "block " * 300
        cur.execute(f"CREATE TABLE {SRC}.block (id INT PRIMARY KEY, v TEXT) COMMENT '{comment}'")
        for name in FILLERS:
            cur.execute(
                f"CREATE TABLE {SRC}.{name} (id INT PRIMARY KEY, v VARCHAR(20)) "
                f"COMMENT '{'filler ' * 12}'"
            )
        cur.execute(
            f"CREATE TABLE {SRC}.fail (id INT PRIMARY KEY, "
            f"CONSTRAINT fail_fk FOREIGN KEY (id) REFERENCES {PARENT}.p (id))"
        )
        for name in ("block", *FILLERS, "fail"):
            cur.execute(f"INSERT INTO {SRC}.{name} (id) VALUES (1), (2)")
    yield back_up(sandbox, "restore-signals", [SRC], "bundle_tables = false\n")
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST, PARENT):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")


@pytest.fixture
def held(sandbox: SandboxHandle, long_lock_waits: None) -> Iterator[None]:  # noqa: F811
    """``DST`` with ``block`` (the test's transaction holding its metadata lock);
    ``PARENT.p``'s key a VARCHAR, which ``fail``'s INT cannot reference."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DST}")
        cur.execute(f"CREATE DATABASE {DST}")
        cur.execute(f"CREATE TABLE {DST}.block (id INT PRIMARY KEY)")
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute(f"DROP TABLE {PARENT}.p")
        cur.execute(f"CREATE TABLE {PARENT}.p (id VARCHAR(10) PRIMARY KEY)")
    holder = sandbox.connect()
    with holder.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"SELECT * FROM {DST}.block")
    yield
    with holder.cursor() as cur:
        cur.execute("ROLLBACK")
    holder.close()
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DST}")


def restore(sandbox: SandboxHandle, backup_id: str) -> list[str]:
    return [
        sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), "restore",
        backup_id, "--rename", f"{SRC}={DST}", "--jobs", "2", "--force",
    ]  # fmt: skip


def statements_on(sandbox: SandboxHandle) -> list[tuple[int, str, str]]:
    """(id, state, statement) of every statement running in ``DST`` but the test's."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ID, STATE, INFO FROM information_schema.PROCESSLIST "
            "WHERE DB=%s AND INFO IS NOT NULL AND ID <> CONNECTION_ID()",
            (DST,),
        )
        return [tuple(row) for row in cur.fetchall()]


def drop_waiting(sandbox: SandboxHandle) -> bool:
    return any(str(info).startswith("DROP TABLE") for _, _, info in statements_on(sandbox))


def signals_as_at_a_terminal() -> None:
    """In the child: SIGINT's default action, as under an interactive shell. A suite run
    as a background job of a shell without job control inherits SIGINT ignored, and
    Python then leaves it ignored (Ctrl-C could not reach the restore at all)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, float]:
    """(exit code, stderr, seconds) of ``proc``; killed (and the test failed) after
    ``timeout``."""
    started = time.monotonic()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the restore still ran {timeout} s later")
    return proc.returncode, err, time.monotonic() - started


def test_a_failing_job_ends_the_restore_with_its_own_error(
    sandbox: SandboxHandle, source: Manifest, held: None
) -> None:
    proc = subprocess.Popen(restore(sandbox, source.backup_id), stderr=subprocess.PIPE, text=True)
    code, err, took = finish(proc, timeout=30)
    last = err.strip().splitlines()[-1]
    assert code == 1, err
    assert f"loading the definition of `{DST}`.`fail` failed" in last, err
    assert "errno: 150" in last and "/tables/" not in last, err
    assert "interrupted" not in err.lower().replace("the restore was interrupted", ""), err
    assert "Traceback" not in err
    assert took < 15  # staging and loading included
    assert statements_on(sandbox) == []


@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [(signal.SIGINT, 130, "aborted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")],
)
def test_a_signal_ends_a_blocked_restore_and_its_statements(
    sandbox: SandboxHandle,
    source: Manifest,
    held: None,
    signum: signal.Signals,
    code: int,
    message: str,
) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:  # no failing job this time
        cur.execute("SET SESSION foreign_key_checks = 0")
        cur.execute(f"DROP TABLE {PARENT}.p")
        cur.execute(f"CREATE TABLE {PARENT}.p (id INT PRIMARY KEY)")
    proc = subprocess.Popen(
        restore(sandbox, source.backup_id),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=signals_as_at_a_terminal,
    )
    try:
        wait_for(lambda: drop_waiting(sandbox), timeout=60)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    proc.send_signal(signum)
    returned, err, took = finish(proc, timeout=20)
    assert returned == code, err
    last = err.strip().splitlines()[-1]
    assert message in last and f"the restore was interrupted: `{DST}` on primary" in last, err
    assert "Traceback" not in err
    assert took < 10
    assert statements_on(sandbox) == []
