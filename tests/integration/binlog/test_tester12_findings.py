"""tester12: hostile binlog content in the window of a point-in-time restore from a physical
base (sandbox's real MariaDB, mariadb-backup and S3 server).

The restored datadir, started, must hold exactly what the primary held at the target.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from datatier.mysql.sqltext import qualified
from tests.integration.backup.test_tester7_findings import primary_full_backup
from tests.integration.binlog_support import PitrWindow, pitr_window
from tests.integration.conftest import SandboxHandle
from tests.integration.physical_support import OWNER, cli, connect_port, scratch

ARCHIVE = "t12-arch"
PHYS = "t12-phys"
DB = "t12_db"
GONE = "t12_gone"  # dropped in the window


@dataclass
class Story:
    window: PitrWindow
    backup: str
    gtid: str
    expected: dict[str, Any]
    base_gtid: str  # the primary's position when the backup was taken
    base_expected: dict[str, Any]


def state(conn: Any, database: str) -> dict[str, Any]:
    """Every table of ``database`` (base, system-versioned, sequence): its rows, history
    included, in a canonical order; its triggers."""
    found: dict[str, Any] = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s ORDER BY 1",
            (database,),
        )
        for name, kind in cur.fetchall():
            when = " FOR SYSTEM_TIME ALL" if kind == "SYSTEM VERSIONED" else ""
            cur.execute(f"SELECT * FROM {qualified(database, name)}{when}")
            found[name] = (kind, sorted(repr(r) for r in cur.fetchall()))
        cur.execute(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
            (database,),
        )
        found["triggers"] = sorted(r[0] for r in cur.fetchall())
    return found


@pytest.fixture(scope="module")
def module_patch() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def primary_global(sandbox: SandboxHandle, name: str) -> Any:
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT @@GLOBAL.{name}")
        return cur.fetchone()[0]


@pytest.fixture(scope="module")
def story(sandbox: SandboxHandle, module_patch: pytest.MonkeyPatch) -> Iterator[Story]:
    """Before the backup: tables with a trigger. In the window: row-format writes through
    the trigger, compressed binlog events, a rotated binlog,
    statement-format functions, CREATE ... SELECT, a sequence, a system-versioned table,
    a dropped database."""
    compress = primary_global(sandbox, "log_bin_compress")
    with pitr_window(sandbox, ARCHIVE, DB, GONE, monkeypatch=module_patch) as w:
        w.sql(
            f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v VARCHAR(2000))",
            f"CREATE TABLE {DB}.audit (n INT AUTO_INCREMENT PRIMARY KEY, id INT, v VARCHAR(2000))",
            f"CREATE TRIGGER {DB}.trg AFTER INSERT ON {DB}.t FOR EACH ROW "
            f"INSERT INTO {DB}.audit (id, v) VALUES (NEW.id, NEW.v)",
            f"INSERT INTO {DB}.t VALUES (1, 'base')",
            f"CREATE DATABASE {GONE}",
            f"CREATE TABLE {GONE}.g (id INT PRIMARY KEY)",
            f"INSERT INTO {GONE}.g VALUES (1)",
        )
        base_gtid = w.gtid()
        with sandbox.connect("primary") as conn:
            base_expected = {db: state(conn, db) for db in (DB, GONE)}
        backups = primary_full_backup(sandbox, PHYS)
        backup = next(backups)
        try:
            with w.session(binlog_format="ROW") as cur:
                cur.execute("INSERT INTO t VALUES (2, 'row format through the trigger')")
            with w.session(binlog_format="STATEMENT") as cur:
                cur.execute("INSERT INTO t VALUES (3, 'statement format through the trigger')")
            w.sql(f"DROP DATABASE {GONE}")
            try:
                w.sql("SET GLOBAL log_bin_compress = ON")
                with w.session(binlog_format="ROW") as cur:
                    cur.execute("CREATE TABLE c (id INT PRIMARY KEY, v TEXT)")
                    cur.execute("INSERT INTO c VALUES (1, %s), (2, %s)", ("x" * 5000, "y" * 900))
                    cur.execute("UPDATE c SET v = CONCAT(v, REPEAT('z', 700))")
                with w.session(binlog_format="STATEMENT") as cur:
                    cur.execute("INSERT INTO c VALUES (3, %s)", ("s" * 3000,))
            finally:
                w.sql(f"SET GLOBAL log_bin_compress = {'ON' if compress else 'OFF'}")
            w.sql("FLUSH BINARY LOGS")
            with w.session(binlog_format="STATEMENT") as cur:
                cur.execute(
                    "CREATE TABLE f (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME, r DOUBLE, "
                    "u VARCHAR(20), li INT)"
                )
                cur.execute("SET @u = 'user var'")
                cur.execute("INSERT INTO f (at, r, u) VALUES (NOW(), RAND(7), @u)")
                cur.execute(
                    "INSERT INTO f (at, r, u, li) VALUES (NOW(), RAND(), @u, LAST_INSERT_ID())"
                )
            with w.session(binlog_format="STATEMENT", charset="gbk") as cur:
                cur.execute("CREATE TABLE mb (id INT PRIMARY KEY, v VARBINARY(40), n INT)")
                # 0xBF5C: one GBK character whose second byte is a backslash
                cur.execute("INSERT INTO mb VALUES (1, '\u7e17x', 1)")
                cur.execute("UPDATE mb SET n = 2 WHERE v = '\u7e17x'")
                cur.execute("INSERT INTO mb VALUES (3, 'it''s', 3)")
            with w.session(binlog_format="STATEMENT") as cur:
                cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
                cur.execute("INSERT INTO mb VALUES (4, 'ends in \\', 4)")
                cur.execute("INSERT INTO mb VALUES (5, 'a '' b', 5) # comment ' \n")
                cur.execute("INSERT INTO mb VALUES (6, 'x', 6) /* ' */ -- '")
            with w.session(binlog_format="ROW") as cur:
                cur.execute("CREATE TABLE cs SELECT id, v FROM t")
                cur.execute("CREATE SEQUENCE s START WITH 10 INCREMENT BY 5")
                cur.execute("SELECT NEXTVAL(s), NEXTVAL(s)")
                cur.execute("CREATE TABLE sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING")
                cur.execute("INSERT INTO sv VALUES (1, 1), (2, 2)")
                cur.execute("UPDATE sv SET v = v + 10")
                cur.execute("DELETE FROM sv WHERE id = 2")
            gtid = w.gtid()
            with sandbox.connect("primary") as conn:
                expected = {db: state(conn, db) for db in (DB, GONE)}
            w.sql(f"INSERT INTO {DB}.t VALUES (99, 'after the target')")
            w.archive()
            yield Story(w, backup, gtid, expected, base_gtid, base_expected)
        finally:
            for _ in backups:
                pass


def test_the_hostile_window_is_replayed_exactly(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", story.gtid,
                 "--datadir", str(datadir), "--owner", OWNER, "--staging-dir", str(tmp_path),
                 "--json")  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    doc = result.json()
    with scratch(datadir, test_port_base) as server, connect_port(sandbox, server.port) as conn:
        found = {db: state(conn, db) for db in (DB, GONE)}
    for db in (DB, GONE):
        for name in sorted(set(story.expected[db]) | set(found[db])):
            assert found[db].get(name) == story.expected[db].get(name), (db, name)
    assert doc["replayed"]["gtid_pos"] == story.gtid, doc["replayed"]


def mariadbd_on(path: Path) -> list[int]:
    """The pids of processes whose command line names ``path`` (a datadir below it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"mariadbd") and any(str(path).encode() in a for a in argv):
            found.append(int(proc.name))
    return found


def test_a_restore_killed_during_the_replay_leaves_dir_and_no_server(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    marker, pidfile = tmp_path / "replaying", tmp_path / "client.pid"
    wrapper = tools / "mariadb"
    wrapper.write_text(f"#!/bin/sh\necho $$ > {pidfile}\ntouch {marker}\nexec sleep 120\n")
    wrapper.chmod(0o755)
    datadir = tmp_path / "data"
    datadir.mkdir()
    (datadir / "ibdata1").write_bytes(b"old")
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    args = ["--policy", PHYS, "--until-gtid", story.gtid,
            "--datadir", str(datadir), "--owner", OWNER, "--force"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), "restore", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)
        assert mariadbd_on(datadir), "the private server runs"
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while mariadbd_on(datadir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not mariadbd_on(datadir), "no orphaned private server"
    assert (datadir / "ibdata1").read_bytes() == b"old"
    again = cli(sandbox, "restore", *args, "--json")
    assert again.code == 0, again.err[-3000:]
    assert "ibdata1" in {p.name for p in datadir.iterdir()}
    assert not [p.name for p in datadir.iterdir() if p.name.startswith(".datatier")]
    with scratch(datadir, test_port_base) as server, connect_port(sandbox, server.port) as conn:
        found = state(conn, DB)
    assert found == story.expected[DB]


def test_two_sessions_temporary_tables_of_one_name_are_not_mixed_up(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (exit 0, a table restored with rows the primary never held
    there). The replay feeds every session's statements into ONE client session: the
    temporary tables of two sessions that use the same name (the usual ``DROP TEMPORARY
    TABLE IF EXISTS tmp; CREATE TEMPORARY TABLE tmp ...`` of a batch job run twice at once)
    become one table; a replica keeps them apart by the events' thread id.

    Steps: statement format, two sessions A and B: A creates temporary ``tmp`` and fills it
    (1, 2); B drops it if it exists, creates its own ``tmp`` and fills it (100); A copies
    ``tmp`` into a table; both end. ``restore --policy PHYS --until-gtid`` (the last GTID).
    Expected: the copy holds 1 and 2, or the restore fails loudly (exit 1, naming the
    table) and installs nothing.
    Was: exit 0, the copy restored holding 100 (B's rows; A's dropped by B's statements)."""
    w = story.window
    w.sql(f"CREATE TABLE {DB}.copy (id INT)")
    with w.session(binlog_format="STATEMENT") as a, w.session(binlog_format="STATEMENT") as b:
        a.execute("CREATE TEMPORARY TABLE tmp (id INT)")
        a.execute("INSERT INTO tmp VALUES (1), (2)")
        b.execute("DROP TEMPORARY TABLE IF EXISTS tmp")
        b.execute("CREATE TEMPORARY TABLE tmp (id INT)")
        b.execute("INSERT INTO tmp VALUES (100)")
        a.execute("INSERT INTO copy SELECT id FROM tmp")
    target = w.gtid()
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {DB}.copy ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [1, 2]
    w.archive()
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", target,
                 "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    if result.code != 0:
        assert result.code == 1, result.err[-3000:]
        assert "tmp" in result.err and "temporary" in result.err, result.err[-3000:]
        assert not datadir.exists()
        return
    with (
        scratch(datadir, test_port_base) as server,
        connect_port(sandbox, server.port) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(f"SELECT id FROM {DB}.copy ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == [1, 2]


def test_a_target_at_the_base_backup_replays_nothing(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    """``--until-gtid`` = the primary's position when the backup was taken: exit 0, no
    transaction replayed, the tables as at the backup, the position reported the base's."""
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", story.base_gtid,
                 "--datadir", str(datadir), "--owner", OWNER, "--json")  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    replayed = result.json()["replayed"]
    assert replayed["transactions"] == 0, replayed
    with scratch(datadir, test_port_base) as server, connect_port(sandbox, server.port) as conn:
        found = {db: state(conn, db) for db in (DB, GONE)}
    assert found == story.base_expected


def test_a_client_command_in_a_logged_comment_changes_nothing(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    """The replay's client parses the statements as text: ``\\C latin1`` in a
    version comment the server ignores (logged as written) must not change how the later
    statements' bytes are read (a table named with a non-ASCII character, a default)."""
    w = story.window
    w.sql(
        f"CREATE TABLE {DB}.h1 (id INT) /*!99999 \\C latin1 */",
        f"CREATE TABLE {DB}.`h☃` (v VARCHAR(10) DEFAULT 'é')",
        f"INSERT INTO {DB}.`h☃` VALUES (DEFAULT)",
    )
    target = w.gtid()
    with sandbox.connect("primary") as conn:
        expected = state(conn, DB)
    w.archive()
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", target,
                 "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    with scratch(datadir, test_port_base) as server, connect_port(sandbox, server.port) as c:
        found = state(c, DB)
    assert found == expected


def test_rows_larger_than_the_default_packet_are_replayed(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    """A 20 MiB value in row format (one rows event, one ``BINLOG`` statement of ~27 MiB)
    and in statement format, and a 70 MiB transaction (one replay file of its own): exit
    0, the rows as on the primary."""
    w = story.window
    w.sql(f"CREATE TABLE {DB}.big (id INT PRIMARY KEY, b LONGBLOB)")
    with w.session(binlog_format="ROW") as cur:
        cur.execute("INSERT INTO big VALUES (1, REPEAT('r', 20 << 20))")
        cur.execute("BEGIN")
        for n in range(2, 9):
            cur.execute(f"INSERT INTO big VALUES ({n}, REPEAT(CHAR(64 + {n}), 10 << 20))")
        cur.execute("COMMIT")
    with w.session(binlog_format="STATEMENT") as cur:
        cur.execute("INSERT INTO big VALUES (20, REPEAT('s', 20 << 20))")
    target = w.gtid()
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id, LENGTH(b), MD5(b) FROM {DB}.big ORDER BY id")
        expected = cur.fetchall()
    w.archive()
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", target,
                 "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    with (
        scratch(datadir, test_port_base) as server,
        connect_port(sandbox, server.port) as c,
        c.cursor() as cur,
    ):
        cur.execute(f"SELECT id, LENGTH(b), MD5(b) FROM {DB}.big ORDER BY id")
        assert cur.fetchall() == expected
    w.sql(f"DROP TABLE {DB}.big")


def test_a_statement_logged_with_its_error_is_replayed_as_the_primary_ran_it(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: a point-in-time restore impossible (exit 1 after the whole prepare, with a
    misleading hint about temporary tables) for any target past an ordinary event.

    Steps: statement format, an Aria (non-transactional) table with a primary key; ``INSERT
    INTO na VALUES (1), (2), (2), (3)`` fails at the duplicate after writing 1 and 2 and is
    logged with its error (1062), as MariaDB does; then another row. ``restore --policy
    PHYS --until-gtid`` (the last GTID); start DIR.
    Expected: exit 0, the table as on the primary (1, 2, 10): a replica expects the logged
    error and goes on.
    Was: exit 1 "the binlog replay failed ... ERROR 1062 ... Duplicate entry '2'"."""
    w = story.window
    w.sql(f"CREATE TABLE {DB}.na (id INT PRIMARY KEY) ENGINE=Aria")
    with w.session(binlog_format="STATEMENT") as cur:
        with contextlib.suppress(Exception):
            cur.execute("INSERT INTO na VALUES (1), (2), (2), (3)")
        cur.execute("INSERT INTO na VALUES (10)")
    target = w.gtid()
    with sandbox.connect("primary") as conn:
        expected = state(conn, DB)
    w.archive()
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", target,
                 "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    with scratch(datadir, test_port_base) as server, connect_port(sandbox, server.port) as conn:
        found = state(conn, DB)
    assert found["na"] == expected["na"]


@pytest.mark.once  # the server reads the file from its own file system: in the container
# pass it runs in a container that does not see this test's files (LOAD DATA LOCAL, which
# would, turns the duplicate key into a warning: nothing would be logged with its error)
def test_a_load_data_logged_with_its_error_is_refused_before_any_cost(
    sandbox: SandboxHandle, story: Story, tmp_path: Path
) -> None:
    """Severity: a late, misleading failure (exit 1 after the whole prepare, with the hint
    about temporary tables).

    Steps: statement format, an Aria table with a primary key; ``LOAD DATA INFILE``
    of rows 1, 2, 2, 3 stops at the duplicate (1 and 2 loaded) and is logged with error
    1062. ``restore --policy PHYS --until-gtid`` (the last GTID).
    Expected: exit 2 before anything is extracted, naming the transaction and the error;
    DIR not created.
    Was: exit 1 after the prepare ("the binlog replay failed ... Duplicate entry")."""
    w = story.window
    rows = tmp_path / "rows.tsv"
    rows.write_text("1\n2\n2\n3\n")
    w.sql(f"CREATE TABLE {DB}.nl (id INT PRIMARY KEY) ENGINE=Aria")
    backups = primary_full_backup(sandbox, f"{PHYS}-ld")  # after the other tests' refusals
    next(backups)
    with (
        w.session(binlog_format="STATEMENT") as cur,
        contextlib.suppress(pymysql.err.IntegrityError),
    ):
        cur.execute(f"LOAD DATA INFILE '{rows}' INTO TABLE nl")  # the server's host: this
    target = w.gtid()
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {DB}.nl")
        assert cur.fetchone()[0] == 2, "loaded part-way"
    w.archive()
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", f"{PHYS}-ld", "--until-gtid", target,
                 "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    for _ in backups:
        pass
    assert result.code == 2, result.err[-3000:]
    assert "LOAD DATA" in result.err and "error 1062" in result.err, result.err[-3000:]
    assert not datadir.exists()


def skip_on_replicas(sandbox: SandboxHandle) -> None:
    """Each replica, once its SQL thread stopped at the statement the source interrupted,
    skips that one event group and goes on (the sandbox is shared by later tests)."""
    for node in ("replica1", "replica2"):
        with sandbox.connect(node) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            deadline = time.monotonic() + 30
            while True:
                cur.execute("SHOW SLAVE STATUS")
                status = cur.fetchone()
                if status["Last_SQL_Errno"]:
                    break
                assert time.monotonic() < deadline, f"{node} did not stop at the statement"
                time.sleep(0.2)
            cur.execute("STOP SLAVE")
            cur.execute("SET GLOBAL sql_slave_skip_counter = 1")
            cur.execute("START SLAVE")
    sandbox.wait_replicated(60)


def test_a_statement_the_source_interrupted_half_way_is_refused_before_any_cost(
    sandbox: SandboxHandle, story: Story, tmp_path: Path
) -> None:
    """Severity: a late, misleading failure (exit 1 after the whole prepare); with the fix
    for logged errors above it would be silent wrong, so it is refused by name.

    Steps: statement format, an Aria table; ``SET STATEMENT max_statement_time = 0.3 FOR
    INSERT INTO nk SELECT ... SLEEP(0.01)`` stops part-way (some rows written) and is logged
    with error 1969. ``restore --policy PHYS --until-gtid`` (the last GTID).
    Expected: exit 2 before anything is extracted, naming the transaction and error 1969
    (the binlog does not tell how many rows it wrote; a replica stops there too); DIR not
    created.
    Was: exit 1 after the prepare ("the binlog replay failed ... 1969"), with the hint
    about temporary tables."""
    w = story.window
    w.sql(f"CREATE TABLE {DB}.nk (id INT PRIMARY KEY) ENGINE=Aria")
    backups = primary_full_backup(sandbox, f"{PHYS}-kill")  # after the other tests' refusals
    next(backups)
    with (
        w.session(binlog_format="STATEMENT") as cur,
        contextlib.suppress(pymysql.err.OperationalError),
    ):
        cur.execute(
            "SET STATEMENT max_statement_time = 0.3 FOR INSERT INTO nk "
            "SELECT seq FROM seq_1_to_100000 WHERE SLEEP(0.01) = 0"
        )
    skip_on_replicas(sandbox)  # they stop at it, as they must
    target = w.gtid()
    w.archive()
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", f"{PHYS}-kill", "--until-gtid", target,
                 "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    for _ in backups:
        pass
    assert result.code == 2, result.err[-3000:]
    assert "error 1969" in result.err, result.err[-3000:]
    assert not datadir.exists()
