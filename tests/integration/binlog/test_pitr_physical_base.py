"""Point-in-time restores from a physical base (sandbox's real MariaDB, mariadb-backup and S3
server): ``restore --policy PHYS --until-gtid G | --until T --datadir DIR`` prepares the
chain, replays the archived binlog on it with a private scratch server, then installs it.

The restored datadir, started, must hold exactly what the primary held at the target: every
table's ``CHECKSUM TABLE ... EXTENDED`` and row count, a database, a routine and an account
created in the window, rows written through a temporary table in statement format, hostile
bytes in names and values; and nothing written after the target. Refusals leave DIR
untouched; a replay that fails installs nothing.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.manifest import Manifest, manifest_key
from datatier.mysql.sqltext import ident, qualified
from tests.integration.backup.test_tester7_findings import primary_full_backup
from tests.integration.binlog_support import (
    PitrWindow,
    assert_replay_progress,
    pitr_window,
    replay_progress,
)
from tests.integration.conftest import SandboxHandle
from tests.integration.physical_support import OWNER, cli, connect_port, scratch, table_state

ARCHIVE = "ppitr-arch"  # the logical policy owning the binlog archive
PHYS = "ppitr-phys"
PHYS_TMP = "ppitr-phys-tmp"
PHYS_REPLICA = "ppitr-phys-replica"  # of replica1
PHYS_OWN = "ppitr-phys-own"  # owns a binlog archive of its own
DB = "ppitr_db"
NEW_DB = "ppitr_new"  # created in the window
ODD = "we`ird tä ble ☃"  # a table name with a backtick, a space and non-ASCII
ACCOUNT = "ppitr_acct"
ODD_DB = "ppitr`odd db☃"  # created in the window, written in statement format
DATABASES = (DB, NEW_DB, ODD_DB)


@dataclass
class Story:
    window: PitrWindow
    backup: str  # the full backup
    incremental: str  # on it, in the window
    middle: str  # a target between the two backups (its base: the full backup)
    middle_expected: dict[str, Any]
    gtid: str  # the target: after the window's writes
    moment: str  # a time between the target and the later writes
    expected: dict[str, Any]  # per database: table_state at the target
    later_gtid: str  # after the writes that must not be restored


def states(sandbox: SandboxHandle) -> dict[str, Any]:
    with sandbox.connect("primary") as conn:
        return {db: table_state(conn, db) for db in DATABASES}


@pytest.fixture(scope="module")
def module_patch() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def story(
    sandbox: SandboxHandle,
    module_patch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Story]:
    """A table (binary values of every byte) and ODD; a full physical backup of the primary;
    in the window: row and statement changes, ALTER, an XA transaction, rows through a
    temporary table and LOAD DATA in statement format, the middle target, an incremental
    backup, a new database, one with a hostile name, a routine, an account; the target;
    then writes that must not come back."""
    rows = tmp_path_factory.mktemp("load") / "rows.tsv"
    rows.write_bytes(b"".join(b"%d\tloaded \xe2\x98\x83 %d\n" % (i, i) for i in range(3001, 3101)))
    drop_odd = f"DROP DATABASE IF EXISTS {ident(ODD_DB)}"
    with pitr_window(sandbox, ARCHIVE, DB, NEW_DB, monkeypatch=module_patch) as w:
        w.sql(f"DROP USER IF EXISTS '{ACCOUNT}'@'%'", drop_odd)
        with w.session() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64), b BLOB)")
            cur.executemany(
                "INSERT INTO t VALUES (%s, %s, %s)",
                [(i, f"row {i} 'q' \\ ☃", bytes(range(i % 256)) + b"\x00\xff") for i in range(600)],
            )
            cur.execute(f"CREATE TABLE {qualified(DB, ODD)} (id INT PRIMARY KEY, v TEXT)")
            cur.execute(f"INSERT INTO {qualified(DB, ODD)} VALUES (1, 'base')")
        backups = primary_full_backup(sandbox, PHYS)
        backup = next(backups)
        try:
            with w.session() as cur:
                cur.execute("UPDATE t SET v = CONCAT(v, ' upd'), b = REVERSE(b) WHERE id % 3 = 0")
                cur.execute("DELETE FROM t WHERE id % 7 = 0")
                cur.execute("ALTER TABLE t ADD COLUMN w INT NOT NULL DEFAULT 5")
                cur.execute(f"INSERT INTO {qualified(DB, ODD)} VALUES (2, 'window \\0 ☃')")
                for sql in ("XA START 'x1'", "INSERT INTO t (id, v) VALUES (20001, 'xa')",
                            "XA END 'x1'", "XA PREPARE 'x1'", "XA COMMIT 'x1'"):  # fmt: skip
                    cur.execute(sql)
            middle = w.gtid()
            middle_expected = states(sandbox)
            w.sql(f"INSERT INTO {DB}.t (id, v) VALUES (5000, 'after the middle')")
            incremental = cli(sandbox, "backup", "run", PHYS, "--incremental", "--json")
            assert incremental.code == 0, incremental.err[-2000:]
            with w.session(binlog_format="STATEMENT", local_infile=True) as cur:
                cur.execute("CREATE TEMPORARY TABLE tmp (id INT, v VARCHAR(64))")
                cur.execute("INSERT INTO tmp VALUES (10001, 'via tmp'), (10002, 'via tmp 2')")
                cur.execute("INSERT INTO t (id, v) SELECT id, v FROM tmp")
                cur.execute("UPDATE t SET w = id % 11 WHERE id < 100")
                cur.execute(f"LOAD DATA LOCAL INFILE '{rows}' INTO TABLE t (id, v)")
                cur.execute(f"CREATE DATABASE {ident(ODD_DB)}")
                cur.execute(f"USE {ident(ODD_DB)}")
                cur.execute("CREATE TABLE o (id INT PRIMARY KEY, v VARCHAR(20))")
                cur.execute("INSERT INTO o VALUES (1, 'odd'), (2, '☃')")
            w.sql(
                f"CREATE DATABASE {NEW_DB}",
                f"CREATE TABLE {NEW_DB}.n (id INT PRIMARY KEY AUTO_INCREMENT, v BLOB)",
                f"INSERT INTO {NEW_DB}.n (v) VALUES (x'00ff10'), (NULL), ('☃')",
                f"CREATE PROCEDURE {NEW_DB}.p() SELECT 1",
                f"CREATE USER '{ACCOUNT}'@'%' IDENTIFIED BY 'pw'",
                f"GRANT SELECT ON {NEW_DB}.* TO '{ACCOUNT}'@'%'",
            )
            gtid = w.gtid()
            expected = states(sandbox)
            moment = w.until_now()
            w.sql(
                f"DELETE FROM {DB}.t WHERE id < 300",
                f"DROP TABLE {qualified(DB, ODD)}",
                f"INSERT INTO {NEW_DB}.n (v) VALUES ('after')",
                f"DROP USER '{ACCOUNT}'@'%'",
            )
            later = w.gtid()
            w.archive()
            yield Story(
                w,
                backup,
                str(incremental.json()["id"]),
                middle,
                middle_expected,
                gtid,
                moment,
                expected,
                later,
            )
        finally:
            w.sql(drop_odd)
            for _ in backups:  # its clean-up
                pass


def restored(sandbox: SandboxHandle, datadir: Path, port_base: int) -> dict[str, Any]:
    """Start ``datadir`` on a scratch server: each database's table_state, NEW_DB's
    routines and ACCOUNT's grants."""
    with scratch(datadir, port_base) as server, connect_port(sandbox, server.port) as conn:
        found: dict[str, Any] = {db: table_state(conn, db) for db in DATABASES}
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
                (NEW_DB,),
            )
            found["routines"] = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (ACCOUNT,))
            found["accounts"] = cur.fetchone()[0]
            cur.execute("SELECT @@gtid_slave_pos")
            found["gtid_slave_pos"] = cur.fetchone()[0]
    return found


@pytest.mark.parametrize("how", ["until-gtid", "until", "middle"])
def test_a_physical_base_is_replayed_to_exactly_the_target(
    sandbox: SandboxHandle,
    story: Story,
    tmp_path: Path,
    test_port_base: int,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Steps: the story; ``restore --policy PHYS --until-gtid G`` (or ``--until T``) into a
    new DIR; start DIR. Expected: exit 0; the base is the incremental (its chain); every
    table as on the primary at the target (the window's rows, DDL, XA, statement-format
    rows through a temporary table and LOAD DATA, the new databases, routine and account),
    nothing written after it; the result names the replayed transactions and the GTID
    position the datadir holds. "middle": a target between the two backups restores the
    full backup, replayed up to it."""
    datadir = tmp_path / "data"
    flag, value = {
        "until-gtid": ("--until-gtid", story.gtid),
        "until": ("--until", story.moment),
        "middle": ("--until-gtid", story.middle),
    }[how]
    drawn = replay_progress(monkeypatch)
    result = cli(sandbox, "restore", "--policy", PHYS, flag, value,
                 "--datadir", str(datadir), "--owner", OWNER, "--staging-dir", str(tmp_path),
                 "--json")  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    assert_replay_progress(drawn)
    doc = result.json()
    final = how != "middle"
    assert doc["base"]["backup_id"] == (story.incremental if final else story.backup), doc
    replayed = doc["replayed"]
    assert replayed["transactions"] == doc["scan"]["transactions"] > 0, (replayed, doc["scan"])
    target = story.gtid if final else story.middle
    assert replayed["gtid_pos"] == target, replayed
    found = restored(sandbox, datadir, test_port_base)
    assert found["gtid_slave_pos"] == target, "a replica of the source resumes after it"
    expected = story.expected if final else story.middle_expected
    for database in DATABASES:
        assert found[database] == expected[database], database
    if final:
        assert ODD in found[DB] and found[ODD_DB], found
        assert found["routines"] == ["p"]
        assert found["accounts"] == 1
    else:
        assert not found[NEW_DB] and found["accounts"] == 0, found
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"], "work files removed"


def test_a_dry_run_scan_reads_the_segments_and_changes_nothing(
    sandbox: SandboxHandle, story: Story, tmp_path: Path
) -> None:
    """``--dry-run --scan``: exit 0, the transactions the replay would apply up to the
    target, and no DIR."""
    datadir = tmp_path / "data"
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", story.gtid,
                 "--datadir", str(datadir), "--dry-run", "--scan", "--json")  # fmt: skip
    assert result.code == 0, result.err[-3000:]
    scan = result.json()["scan"]
    assert scan["transactions"] > 0 and scan["last"] == story.gtid.split(",")[-1], scan
    assert not datadir.exists()


def test_a_target_beyond_the_archive_is_refused_before_anything_changes(
    sandbox: SandboxHandle, story: Story, tmp_path: Path
) -> None:
    """A GTID of the archive's domain and server past its end: exit 2 naming the archive's
    end; DIR (holding a file) untouched."""
    domain, server, seq = story.later_gtid.split(",")[-1].split("-")
    datadir = tmp_path / "data"
    datadir.mkdir()
    (datadir / "keep").write_text("mine")
    beyond = f"{domain}-{server}-{int(seq) + 1000}"
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", beyond,
                 "--datadir", str(datadir), "--force")  # fmt: skip
    assert result.code == 2, result.err[-2000:]
    assert "beyond the binlog archive" in result.err, result.err[-2000:]
    assert [p.name for p in datadir.iterdir()] == ["keep"]


WRAPPERS = {  # fault injection: a tool on PATH in front of the real one
    "early": (
        "mariadb",
        '#!/bin/sh\n{ echo "SELECT * FROM no_such_db.no_such_table;"; cat; } | '
        '/usr/bin/mariadb "$@"\n',
        "no_such_table",
    ),
    "late": (  # after every transaction was applied
        "mariadb",
        '#!/bin/sh\n{ cat; echo "SELECT * FROM no_such_db.no_such_table;"; } | '
        '/usr/bin/mariadb "$@"\n',
        "no_such_table",
    ),
    "unclean-shutdown": (  # the server exits 3 after SIGTERM
        "mariadbd",
        '#!/bin/bash\n/usr/sbin/mariadbd "$@" & pid=$!\n'
        "trap 'kill -TERM $pid; wait $pid; exit 3' TERM\nwait $pid\n",
        "did not shut down cleanly (exit 3)",
    ),
}


@pytest.mark.parametrize("fault", list(WRAPPERS))
def test_a_replay_that_fails_installs_nothing(
    sandbox: SandboxHandle,
    story: Story,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    """Fault injection (a wrapper on PATH): the client rejects a statement before the
    replay ("early") or after all of it ("late"), or the server does not shut down
    cleanly. Expected: exit 1 naming the failure; DIR (a previous datadir, replaced with
    --force) keeps what it held; no work files left."""
    tool, script, said = WRAPPERS[fault]
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / tool).write_text(script)
    (tools / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    datadir = tmp_path / "data"  # a previous datadir, replaced with --force
    datadir.mkdir()
    (datadir / "ibdata1").write_bytes(b"old")
    staging = tmp_path / "staging"
    staging.mkdir()
    result = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", story.gtid,
                 "--datadir", str(datadir), "--owner", OWNER, "--force",
                 "--staging-dir", str(staging))  # fmt: skip
    assert result.code == 1, result.err[-2000:]
    assert said in result.err, result.err[-3000:]
    assert [p.name for p in datadir.iterdir()] == ["ibdata1"]
    assert (datadir / "ibdata1").read_bytes() == b"old"
    assert not list(staging.iterdir())
    assert not list(tmp_path.glob("data/.datatier-*"))


def readme_replay_lines() -> str:
    """The README's by-hand replay, verbatim: its ``sh`` block that starts ``mariadbd``."""
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    start = text.index("mariadbd --no-defaults --datadir=full --socket=/tmp/replay.sock")
    return text[start : text.index("```", start)]


def test_the_readme_stock_tools_path(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    """The README's by-hand point-in-time restore from a physical base: the chain's objects
    (full, incremental) and the planned segments fetched (S3 client), ``mbstream -x`` and
    ``mariabackup --prepare`` of each, in order, then the README's lines (a private
    ``mariadbd`` on the copy, ``FLUSH PRIVILEGES``, ``mariadb-binlog --start-position=BASE
    --stop-position=GTID SEGMENTS | mariadb``, ``gtid_slave_pos``, a clean shutdown) run as
    written there: the same tables as at the target, and its GTID position."""
    plan = cli(sandbox, "restore", "--policy", PHYS, "--until-gtid", story.gtid,
               "--datadir", str(tmp_path / "unused"), "--dry-run", "--json")  # fmt: skip
    assert plan.code == 0, plan.err[-2000:]
    doc = plan.json()
    store = story.window.store
    assert doc["base"]["backup_id"] == story.incremental
    for n, backup_id in enumerate((story.backup, story.incremental)):
        parts = tmp_path / f"parts{n}"
        parts.mkdir()
        member = Manifest.decode(store.get_bytes(manifest_key(PHYS, backup_id)), "test")
        for obj in member.objects:
            (parts / obj.key.rsplit("/", 1)[1]).write_bytes(store.get_bytes(obj.key))
    full, inc = tmp_path / "full", tmp_path / "inc"
    full.mkdir()
    inc.mkdir()
    segments = []
    for n, segment in enumerate(doc["segments"]):
        path = tmp_path / f"segment{n}.binlog.zst"
        path.write_bytes(store.get_bytes(segment["key"]))
        segments.append(str(path))
    prepare = (
        f"cat {tmp_path}/parts0/mbstream-*.zst | zstd -d | mbstream -x -C {full} && "
        f"mariabackup --prepare --target-dir {full} && "
        f"cat {tmp_path}/parts1/mbstream-*.zst | zstd -d | mbstream -x -C {inc} && "
        f"cp {inc}/backup-my.cnf {full}/ && mariabackup --defaults-file={full}/backup-my.cnf "
        f"--prepare --target-dir {full} --incremental-dir {inc} && "
        f"for s in {' '.join(segments)}; do zstd -dq --rm $s; done"
    )
    done = subprocess.run(["bash", "-o", "pipefail", "-c", prepare], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    binlogs = " ".join(s.removesuffix(".zst") for s in segments)
    script = readme_replay_lines()
    for was, now in (
        ("--datadir=full", f"--datadir={full}"),
        ("/tmp/replay.", f"{tmp_path}/replay."),
        ("--local-load=/tmp", f"--local-load={tmp_path}"),
        ("--user=mysql", f"--user={OWNER}"),
        ("BASE", doc["start"]),
        ("--stop-position=GTID", f"--stop-position={story.gtid}"),
        ("SEGMENT...", binlogs),
        ("'POS'", f"'{story.gtid}'"),
    ):
        assert was in script, was
        script = script.replace(was, now)
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True, text=True
    )
    assert done.returncode == 0, (script, done.stderr[-2000:])
    found = restored(sandbox, full, test_port_base)
    assert {db: found[db] for db in DATABASES} == story.expected
    assert found["accounts"] == 1 and found["gtid_slave_pos"] == story.gtid


def test_a_temporary_table_open_across_the_base_fails_loudly_and_an_older_base_serves(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    """Statement format, one session: ``CREATE TEMPORARY TABLE tmp``, a full backup B1 of
    another policy, then ``INSERT INTO t SELECT ... FROM tmp`` (no backup holds temporary
    tables, and B1's position is past the CREATE). Expected: ``restore --policy
    --until-gtid`` (base B1) exits 1 naming tmp, with a hint to name an older base, DIR
    not created; ``restore B0 --policy --until-gtid`` (B0, taken before the session
    began) restores the target: t holds the rows."""
    w = story.window
    w.sql(f"CREATE TABLE {DB}.tt (id INT PRIMARY KEY)")
    older = primary_full_backup(sandbox, PHYS_TMP)
    first = next(older)
    try:
        with w.session(binlog_format="STATEMENT") as cur:
            cur.execute("CREATE TEMPORARY TABLE tmp_open (id INT)")
            cur.execute("INSERT INTO tmp_open VALUES (1), (2), (3)")
            second = cli(sandbox, "backup", "run", PHYS_TMP, "--full", "--json")
            assert second.code == 0, second.err[-2000:]
            cur.execute("INSERT INTO tt SELECT id FROM tmp_open")
        target = w.gtid()
        w.archive()
        datadir = tmp_path / "data"
        args = ("--policy", PHYS_TMP, "--until-gtid", target, "--datadir", str(datadir),
                "--owner", OWNER)  # fmt: skip
        failed = cli(sandbox, "restore", *args)
        assert failed.code == 1, failed.err[-2000:]
        assert "tmp_open" in failed.err and "temporary table" in failed.err, failed.err[-2000:]
        assert not datadir.exists()
        done = cli(sandbox, "restore", first, *args, "--json")
        assert done.code == 0, done.err[-2000:]
        assert done.json()["base"]["backup_id"] == first
        assert restored(sandbox, datadir, test_port_base)[DB]["tt"][1] == 3
    finally:
        for _ in older:  # its clean-up
            pass


def test_a_physical_policy_owns_the_archive_prunes_it_and_restores_from_it(
    sandbox: SandboxHandle,
    story: Story,
    tmp_path: Path,
    test_port_base: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shop with physical backups only: ``binlog.policy`` names the mariabackup policy.
    Steps: full backup F; rows; target G; ``binlog archive --once`` (into
    ``PHYS_OWN/_binlogs/``); ``backups prune PHYS_OWN --execute --grace-hours 0``; the
    restore to G. Expected: the archive is under the physical policy; prune keeps what F
    needs (the restore still reaches G); the restored table holds G's rows."""
    monkeypatch.setenv("DATATIER_BINLOG__POLICY", PHYS_OWN)
    w = story.window
    w.sql(f"CREATE TABLE {DB}.own (id INT PRIMARY KEY)")
    backups = primary_full_backup(sandbox, PHYS_OWN)
    next(backups)
    try:
        w.sql(f"INSERT INTO {DB}.own VALUES (1), (2)")
        target = w.gtid()
        w.sql(f"INSERT INTO {DB}.own VALUES (3)")
        archived = cli(sandbox, "binlog", "archive", "--once")
        assert archived.code == 0, archived.err[-2000:]
        keys = [o.key for o in w.store.list_objects(f"{PHYS_OWN}/_binlogs/data/")]
        assert keys, "the physical policy's archive"
        pruned = cli(sandbox, "backups", "prune", PHYS_OWN, "--execute", "--grace-hours", "0")
        assert pruned.code == 0, pruned.err[-2000:]
        datadir = tmp_path / "data"
        done = cli(sandbox, "restore", "--policy", PHYS_OWN, "--until-gtid", target,
                   "--datadir", str(datadir), "--owner", OWNER, "--json")  # fmt: skip
        assert done.code == 0, done.err[-2000:]
        assert restored(sandbox, datadir, test_port_base)[DB]["own"][1] == 2
    finally:
        for _ in backups:  # its clean-up, the archive with it
            pass


def test_a_physical_backup_of_a_replica_is_a_base(
    sandbox: SandboxHandle, story: Story, tmp_path: Path, test_port_base: int
) -> None:
    """The usual set-up: mariabackup runs on a replica's host (replica1), the archive
    follows the primary. Steps: rows on the primary, replicated; full backup of replica1;
    rows, an UPDATE, target G; more rows; archive; restore to G. Expected: the table as on
    the primary at G; ``replayed.gtid_pos`` is G."""
    w = story.window
    w.sql(
        f"CREATE TABLE {DB}.rep (id INT PRIMARY KEY, v INT)", f"INSERT INTO {DB}.rep VALUES (1, 1)"
    )
    sandbox.wait_replicated(60)
    backups = primary_full_backup(sandbox, PHYS_REPLICA, node="replica1")
    next(backups)
    try:
        w.sql(f"INSERT INTO {DB}.rep VALUES (2, 2)", f"UPDATE {DB}.rep SET v = v + 10")
        target = w.gtid()
        expected = states(sandbox)[DB]["rep"]
        w.sql(f"INSERT INTO {DB}.rep VALUES (3, 3)")
        w.archive()
        datadir = tmp_path / "data"
        done = cli(sandbox, "restore", "--policy", PHYS_REPLICA, "--until-gtid", target,
                   "--datadir", str(datadir), "--owner", OWNER, "--json")  # fmt: skip
        assert done.code == 0, done.err[-2000:]
        assert done.json()["replayed"]["gtid_pos"] == target
        assert restored(sandbox, datadir, test_port_base)[DB]["rep"] == expected
    finally:
        for _ in backups:  # its clean-up
            pass
