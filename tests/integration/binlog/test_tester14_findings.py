"""tester14: the archiver's idle vouch (``datatier.mysql.binlog.quiet``) against the
sandbox's real MariaDB primary and S3 server.

Invariant attacked: ``restore --policy P --until T`` never exits 0 while lacking a
transaction that the same restore, run after everything is archived, includes.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.stores import store_for
from datatier.binlog.layout import archive_prefix
from tests.integration import binlog_support
from tests.integration.binlog_support import (
    ArchiverProcess,
    archive_has_primary,
    archiver_state,
    connect,
    query,
    started_query,
    wait_said,
)
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.physical_support import Result

POLICY = "t14-binlog"
DB = "t14_binlog_db"
COPY = "t14_binlog_copy"
ENV = {"DATATIER_BINLOG__POLICY": POLICY, "DATATIER_BINLOG__MAX_ARCHIVE_LAG": "20"}
NOPROC_USER = "t14_noproc"
NOPROC_PASSWORD = "t14-noproc-pw"


def _setup(sandbox: SandboxHandle) -> None:
    sandbox.write_policy(
        POLICY,
        f'engine = "mysql"\n[source]\nnode = "primary"\ndatabases = ["{DB}"]\n'
        "[retention]\nkeep_last = 5\nmin_age_days = 0\n",
    )
    store = store_for(sandbox.config.backup.default_store, sandbox.config)
    store.delete([o.key for o in store.list_objects(f"{POLICY}/")])
    for name in (DB, COPY):
        query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {name}")
    query(sandbox.config, "primary", f"CREATE DATABASE {DB}")
    query(sandbox.config, "primary", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v VARCHAR(40))")
    query(
        sandbox.config,
        "primary",
        f"CREATE TABLE {DB}.m (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=MyISAM",
    )
    query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (1, 'in the backup')")
    query(sandbox.config, "primary", f"INSERT INTO {DB}.m VALUES (1, 'in the backup')")


def _teardown(sandbox: SandboxHandle) -> None:
    store = store_for(sandbox.config.backup.default_store, sandbox.config)
    store.delete([o.key for o in store.list_objects(f"{POLICY}/")])
    store.delete([o.key for o in store.list_objects(archive_prefix(POLICY))])
    for name in (DB, COPY):
        query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {name}")
    query(sandbox.config, "primary", f"DROP USER IF EXISTS '{NOPROC_USER}'@'%'")
    (sandbox.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)


@pytest.fixture
def prepared(sandbox: SandboxHandle) -> Iterator[None]:
    _setup(sandbox)
    try:
        yield
    finally:
        _teardown(sandbox)


@pytest.fixture
def archive(sandbox: SandboxHandle, prepared: None, tmp_path: Any) -> Iterator[ArchiverProcess]:
    proc = ArchiverProcess(sandbox.config_path, ENV, tmp_path / "archiver.log")
    proc.start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill(signal.SIGKILL)


def state(sandbox: SandboxHandle) -> dict[str, Any]:
    return archiver_state(sandbox, ENV, POLICY)


def caught_up(sandbox: SandboxHandle) -> bool:
    return archive_has_primary(sandbox, ENV, POLICY)


wait = wait_said


def restore_until(sandbox: SandboxHandle, target: datetime) -> Result:
    """``restore --policy P --until target --rename DB=COPY`` into a fresh COPY."""
    query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {COPY}")
    return binlog_support.restore_until(sandbox, ENV, POLICY, target, f"{DB}={COPY}")


def backup_and_catch_up(sandbox: SandboxHandle) -> None:
    made = cli(sandbox.config_path, ENV, "backup", "run", POLICY)
    assert made.code == 0, made.err
    wait(lambda: caught_up(sandbox), 60, "the archiver did not publish the server's position")


# -- findings ------------------------------------------------------------------------------


def test_a_delayed_insert_waiting_for_a_table_lock_is_not_vouched_past(
    sandbox: SandboxHandle, archive: ArchiverProcess
) -> None:
    """Steps: archiver running, caught up; a backup of DB (InnoDB t, MyISAM m); session L
    ``LOCK TABLES m READ``; session W ``INSERT DELAYED INTO m VALUES (2, ...)`` at S (returns
    at once; MariaDB's delayed-insert handler thread waits for the lock, PROCESSLIST
    COMMAND 'Delayed insert', TIME_MS 0); T = S + 2; the archiver's state vouches past T
    within seconds (every probe sees nothing running); ``restore --until T`` -> exit 0,
    COPY.m lacks row 2. L unlocks: the row is binlogged stamped S (< T). The same restore,
    run again once archived, holds row 2.

    Expected: the first restore is refused ("beyond the binlog archive") or holds row 2.

    Was (fixed in 5999fc9: the handler thread is followed from the probe before it appeared,
    its TIME_MS 0 notwithstanding): safe_until passed T within seconds, the first scan
    was accepted with 0 transactions to replay and the later one replayed row 2.
    """
    backup_and_catch_up(sandbox)
    query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {COPY}")
    locker = connect(sandbox.config, "primary")
    try:
        with locker.cursor() as cur:
            cur.execute(f"LOCK TABLES {DB}.m READ")
        started = time.time()
        query(sandbox.config, "primary", f"INSERT DELAYED INTO {DB}.m VALUES (2, 'delayed')")
        target = datetime.fromtimestamp(int(started) + 2, UTC)
        time.sleep(7)  # heartbeats and a state written (every 5 s) while the row waits
        vouched = float(state(sandbox).get("safe_until") or 0)
        assert vouched < started, (vouched, started)  # was: past T within seconds
        # read-only (a restore into this primary would itself write, stamped after T)
        first = scan_until(sandbox, target)
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
    finally:
        locker.close()
    wait(
        lambda: query(sandbox.config, "primary", f"SELECT COUNT(*) FROM {DB}.m")[0][0] == 2,
        30,
        "the delayed row was never written",
    )
    wait(lambda: caught_up(sandbox), 60, "the delayed row was not archived")
    later = scan_until(sandbox, target)
    second = restore_until(sandbox, target)
    assert second.code == 0, second.err
    later_rows = query(sandbox.config, "primary", f"SELECT id FROM {COPY}.m ORDER BY id")
    assert later_rows == [(1,), (2,)], (later_rows, second.out)  # stamped S < T
    assert later.code == 0, later.err
    # the invariant: the first was refused, or it would replay what the later one replays
    if first.code != 0:
        assert first.code == 2 and "beyond the binlog archive" in first.err, first.err
    else:
        assert replayed(first) == replayed(later), (first.out, later.out)


def scan_until(sandbox: SandboxHandle, target: datetime) -> Result:
    """``restore --policy P --until T --rename DB=COPY --dry-run --scan`` (writes nothing)."""
    return binlog_support.restore_until(
        sandbox, ENV, POLICY, target, f"{DB}={COPY}", "--dry-run", "--scan"
    )


def replayed(result: Result) -> list[str]:
    """The lines of a --dry-run --scan that say what would be replayed."""
    return [
        ln
        for ln in result.out.splitlines()
        if "transaction" in ln or "replay" in ln or "GTID" in ln or "segment" in ln
    ]


def _noproc_config(sandbox: SandboxHandle, tmp_path: Path) -> Path:
    """A copy of the sandbox config whose MySQL account lacks PROCESS."""
    query(sandbox.config, "primary", f"DROP USER IF EXISTS '{NOPROC_USER}'@'%'")
    query(
        sandbox.config,
        "primary",
        f"CREATE USER '{NOPROC_USER}'@'%' IDENTIFIED BY '{NOPROC_PASSWORD}'",
    )
    query(
        sandbox.config,
        "primary",
        f"GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR, REPLICATION CLIENT, "
        f"SLAVE MONITOR ON *.* TO '{NOPROC_USER}'@'%'",
    )
    secret = tmp_path / "noproc_pw"
    secret.write_text(NOPROC_PASSWORD)
    root = sandbox.config_path.parent
    text = sandbox.config_path.read_text()
    text = text.replace('"secrets/', f'"{root}/secrets/')
    text = text.replace('policies_dir = "backups"', f'policies_dir = "{root}/backups"')
    text = text.replace('user = "datatier"', f'user = "{NOPROC_USER}"', 1)
    text = text.replace(
        f'password_file = "{root}/secrets/mysql_password"', f'password_file = "{secret}"', 1
    )
    path = tmp_path / "noproc.toml"
    path.write_text(text)
    return path


def test_an_archiver_without_process_refuses_recent_targets_saying_why(
    sandbox: SandboxHandle, prepared: None, tmp_path: Path
) -> None:
    """Steps: the archiver runs as an account with REPLICATION SLAVE/BINLOG MONITOR but no
    PROCESS (README: it logs binlog.vouch_limited once and vouches only for its last
    published event); a backup; row 2 committed; the server stays idle 8 s; T = now - 3 s;
    ``binlogs status`` and ``restore --until T``.

    Expected: the refusal (it is refused, as documented) says why: the archiver cannot
    vouch for idle time (its account lacks PROCESS), so an operator knows to grant it.
    Was (fixed): "T is beyond the binlog archive (complete up to <last event>...)", hint
    "is `datatier binlog archive` running?" while it is running and caught up; ``binlogs
    status`` reports lag 0 ("the archive holds primary's whole position"). The archiver
    now writes why (``vouch_note`` in its state) and the refusal quotes it."""
    config = _noproc_config(sandbox, tmp_path)
    proc = ArchiverProcess(config, ENV, tmp_path / "archiver.log")
    proc.start()
    try:
        backup_and_catch_up(sandbox)
        query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (2, 'row 2')")
        wait(lambda: caught_up(sandbox), 60, "row 2 was not archived")
        time.sleep(8)
        target = datetime.fromtimestamp(int(time.time()) - 3, UTC)
        status = cli(sandbox.config_path, ENV, "binlogs", "status", "--json")
        refused = restore_until(sandbox, target)
    finally:
        proc.stop()
    log = (tmp_path / "archiver.log").read_text()
    assert "binlog.vouch_limited" in log, log[-2000:]
    assert status.code == 0, status.err
    assert status.json()["lag_seconds"] == 0, status.out  # status: nothing is missing
    assert refused.code == 2, (refused.code, refused.out, refused.err)
    assert "PROCESS" in refused.err, (refused.err, status.out)


def test_a_once_run_during_a_long_statement_answers_as_a_later_restore_does(
    sandbox: SandboxHandle, prepared: None, tmp_path: Path
) -> None:
    """Held: ``binlog archive --once`` while an autocommit INSERT ... SLEEP(10) runs
    (started S, row 2) and after a short commit at S+5 (row 3); ``restore --until S+2`` and
    ``--until S+6`` then, and again after the statement committed and another --once: the
    same rows each time, or a refusal first ("beyond the binlog archive")."""
    proc = ArchiverProcess(sandbox.config_path, ENV, tmp_path / "archiver.log")
    done = proc.once()
    assert done.returncode == 0, done.stderr
    made = cli(sandbox.config_path, ENV, "backup", "run", POLICY)
    assert made.code == 0, made.err
    assert proc.once().returncode == 0
    started = time.time()
    statement = started_query(
        sandbox.config, f"INSERT INTO {DB}.t SELECT 2, IF(SLEEP(10) = 0, 'long', 'cut')"
    )
    targets = [datetime.fromtimestamp(int(started) + d, UTC) for d in (2, 6)]
    first: list[Any] = []
    try:
        time.sleep(5)
        query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (3, 'short, later')")
        time.sleep(1.2)
        ran = proc.once()
        assert ran.returncode == 0, ran.stderr
        for target in targets:
            got = restore_until(sandbox, target)
            rows = (
                query(sandbox.config, "primary", f"SELECT id FROM {COPY}.t ORDER BY id")
                if got.code == 0
                else None
            )
            first.append((got.code, rows, got.err))
        assert statement.is_alive()
    finally:
        statement.join()
    assert proc.once().returncode == 0
    for target, (code, rows, err) in zip(targets, first, strict=True):
        later = restore_until(sandbox, target)
        assert later.code == 0, later.err
        later_rows = query(sandbox.config, "primary", f"SELECT id FROM {COPY}.t ORDER BY id")
        if code != 0:
            assert code == 2 and "beyond the binlog archive" in err, err
        else:
            assert rows == later_rows, (target, rows, later_rows)


def test_an_event_writing_in_a_long_statement_holds_the_vouch_back(
    sandbox: SandboxHandle, archive: ArchiverProcess
) -> None:
    """Held: an event (event scheduler) running INSERT ... SLEEP(10): its worker thread
    shows COMMAND 'Connect' with its statement's TIME_MS; restore --until S+2 while it runs
    is refused."""
    backup_and_catch_up(sandbox)
    (was,) = query(sandbox.config, "primary", "SELECT @@event_scheduler")[0]
    query(sandbox.config, "primary", "SET GLOBAL event_scheduler = ON")
    try:
        query(
            sandbox.config,
            "primary",
            f"CREATE EVENT {DB}.e ON SCHEDULE AT CURRENT_TIMESTAMP DO "
            f"INSERT INTO {DB}.t SELECT 2, IF(SLEEP(10) = 0, 'event', 'cut')",
        )
        started = time.time()
        time.sleep(7)
        target = datetime.fromtimestamp(int(started) + 2, UTC)
        refused = restore_until(sandbox, target)
        time.sleep(5)
        wait(lambda: caught_up(sandbox), 60, "the event's row was not archived")
    finally:
        query(sandbox.config, "primary", f"SET GLOBAL event_scheduler = {was}")
    assert refused.code == 2 and "beyond the binlog archive" in refused.err, (
        refused.code,
        refused.out,
        refused.err,
    )


def test_an_xa_transaction_prepared_before_the_target_and_committed_after(
    sandbox: SandboxHandle, archive: ArchiverProcess
) -> None:
    """Held (refused plainly, exit 2, nothing changed): XA START/INSERT row 2/XA END/XA
    PREPARE at P; T = P + 2; XA COMMIT at P + 4 (from another session); once archived,
    ``restore --until T --rename DB=COPY``.

    Expected: exit 0 and COPY holds row 1 only (row 2 committed after T), and no prepared XA
    transaction is left behind on the target server (``XA RECOVER`` as before); or a clear
    refusal."""
    backup_and_catch_up(sandbox)
    xa = connect(sandbox.config, "primary")
    try:
        with xa.cursor() as cur:
            cur.execute("XA START 't14xa'")
            cur.execute(f"INSERT INTO {DB}.t VALUES (2, 'xa')")
            cur.execute("XA END 't14xa'")
            cur.execute("XA PREPARE 't14xa'")
    finally:
        xa.close()  # MariaDB 10.5+: the prepared transaction survives the disconnect
    prepared_at = time.time()
    target = datetime.fromtimestamp(int(prepared_at) + 2, UTC)
    time.sleep(4)
    query(sandbox.config, "primary", "XA COMMIT 't14xa'")
    query(sandbox.config, "primary", f"INSERT INTO {DB}.t VALUES (3, 'after')")
    wait(lambda: caught_up(sandbox), 60, "not archived")
    wait(lambda: float(state(sandbox).get("safe_until") or 0) > target.timestamp(), 30, "vouch")
    before = query(sandbox.config, "primary", "XA RECOVER")
    got = restore_until(sandbox, target)
    after = query(sandbox.config, "primary", "XA RECOVER")
    try:
        assert after == before, (before, after)
        if got.code != 0:  # held: refused plainly, nothing changed
            assert got.code == 2 and "XA" in got.err and "nothing was changed" in got.err, got.err
            return
        rows = query(sandbox.config, "primary", f"SELECT id FROM {COPY}.t ORDER BY id")
        assert rows == [(1,)], rows
    finally:
        for row in after:
            if row not in before:
                query(
                    sandbox.config,
                    "primary",
                    f"XA ROLLBACK X'{row[3].hex()}'"
                    if isinstance(row[3], bytes)
                    else f"XA ROLLBACK '{row[3]}'",
                )


def test_a_mixed_transaction_rolled_back_by_a_disconnect_is_not_vouched_past(
    sandbox: SandboxHandle, archive: ArchiverProcess
) -> None:
    """Held. Steps: archiver running, caught up; a backup; session X: ``BEGIN``; INSERT into
    InnoDB t; INSERT row 2 into MyISAM m at S (with binlog_direct_non_transactional_updates
    OFF, the default, it goes to the transaction's cache); X stays idle (PROCESSLIST:
    Sleep) while the archiver vouches past T = S + 2; ``restore --until T --dry-run
    --scan`` (accepted, 0 transactions); X disconnects (a client crash, wait_timeout, KILL):
    the server binlogs the cache (m's row cannot be undone) ending in ROLLBACK, stamped S;
    the same scan then replays it, and a real restore holds m's row 2.

    Expected: the first is refused ("beyond the binlog archive") or replays the same."""
    backup_and_catch_up(sandbox)
    query(sandbox.config, "primary", f"DROP DATABASE IF EXISTS {COPY}")
    session = connect(sandbox.config, "primary")
    try:
        with session.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO {DB}.t VALUES (2, 'innodb, rolled back')")
            started = time.time()
            cur.execute(f"INSERT INTO {DB}.m VALUES (2, 'myisam, kept')")
        target = datetime.fromtimestamp(int(started) + 2, UTC)
        wait(
            lambda: float(state(sandbox).get("safe_until") or 0) > target.timestamp() + 1,
            30,
            "the archiver never vouched past T while the session slept",
        )
        first = scan_until(sandbox, target)
    finally:
        session.close()
    wait(lambda: caught_up(sandbox), 60, "the rolled-back transaction was not archived")
    later = scan_until(sandbox, target)
    assert later.code == 0, later.err
    second = restore_until(sandbox, target)
    assert second.code == 0, second.err
    rows = query(sandbox.config, "primary", f"SELECT id FROM {COPY}.m ORDER BY id")
    assert rows == [(1,), (2,)], (rows, later.out)
    if first.code != 0:
        assert first.code == 2 and "beyond the binlog archive" in first.err, first.err
    else:
        assert replayed(first) == replayed(later), (first.out, later.out)


def test_binlogs_status_during_a_long_statement_agrees_with_restore(
    sandbox: SandboxHandle, archive: ArchiverProcess
) -> None:
    """Steps: archiver running, caught up; a backup; an autocommit INSERT ... SLEEP(15)
    starts at S; 8 s later ``binlogs status --json`` and ``restore --until S+3``.

    Expected: status and restore agree: when the restore to S+3 is refused, status says
    until when the archiver vouches and why (the statement running since S).
    Was (fixed): lag_seconds 0 (its basis: the archive holds the server's whole GTID
    position) and nothing else, while the restore was refused "is `datatier binlog
    archive` running?". The lag keeps its meaning (nothing is missing from the archive);
    the archiver's ``vouch_note`` names the statement, and the refusal quotes it."""
    backup_and_catch_up(sandbox)
    started = time.time()
    statement = started_query(
        sandbox.config, f"INSERT INTO {DB}.t SELECT 2, IF(SLEEP(15) = 0, 'long', 'cut')"
    )
    try:
        time.sleep(8)
        status = cli(sandbox.config_path, ENV, "binlogs", "status", "--json")
        refused = restore_until(sandbox, datetime.fromtimestamp(int(started) + 3, UTC))
    finally:
        statement.join()
    assert refused.code == 2 and "beyond the binlog archive" in refused.err, refused.err
    assert status.code == 0, status.err
    note = status.json()["archiver"]["vouch_note"]
    assert "has been running since" in note, status.out
    assert "cannot vouch for later" in refused.err and "has been running since" in refused.err
    text = cli(sandbox.config_path, ENV, "binlogs", "status")
    assert "vouched      up to" in text.out, text.out


def test_a_procedure_writing_between_sleeps_answers_as_a_later_restore_does(
    sandbox: SandboxHandle, archive: ArchiverProcess
) -> None:
    """Held: ``CALL p()`` (SLEEP 4; INSERT row 2; SLEEP 6; INSERT row 3; each statement of
    the procedure is stamped at its own start, PROCESSLIST counts TIME_MS from the CALL);
    during the second sleep ``restore --until S+6 --dry-run --scan``; after it returns and
    is archived, the same scan: refused first, or the same transactions."""
    backup_and_catch_up(sandbox)
    query(
        sandbox.config,
        "primary",
        f"CREATE PROCEDURE {DB}.p() BEGIN SELECT SLEEP(4) INTO @a; "
        f"INSERT INTO {DB}.t VALUES (2, 'proc 1'); SELECT SLEEP(6) INTO @b; "
        f"INSERT INTO {DB}.t VALUES (3, 'proc 2'); END",
    )
    wait(lambda: caught_up(sandbox), 60, "not archived")
    started = time.time()
    call = threading.Thread(target=query, args=(sandbox.config, "primary", f"CALL {DB}.p()"))
    call.start()
    try:
        time.sleep(8.5)
        target = datetime.fromtimestamp(int(started) + 6, UTC)
        first = scan_until(sandbox, target)
    finally:
        call.join()
    wait(lambda: caught_up(sandbox), 60, "not archived")
    later = scan_until(sandbox, target)
    assert later.code == 0, later.err
    if first.code != 0:
        assert first.code == 2 and "beyond the binlog archive" in first.err, first.err
    else:
        assert replayed(first) == replayed(later), (first.out, later.out)
