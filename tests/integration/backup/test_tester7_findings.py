"""tester7: physical incremental lineage and ``restore --force``, attacked as a
hostile-but-legal user and an unlucky operator would, against the real sandbox.

One full physical backup of the sandbox primary is taken (policy ``t7-phys``); each test
restores it or builds on it, the way cron would run ``datatier``.

Findings, by severity (each test's docstring has steps, expected and actual):
- silent wrong, fixed: ``restore ID --datadir /var/lib --force`` (a slip for
  ``/var/lib/mysql``) or ``--datadir /etc --force`` deleted the whole directory: it holds
  a ``mysql`` entry, which counted as a datadir mark whatever it was
  (``test_force_onto_a_directory_whose_mysql_entry_is_no_system_schema_is_refused``).
- silent wrong, fixed: a rollback by a cold copy of the datadir (binlog on, in the
  datadir), then the corrected statement run in place of the mistaken one: the binlog held
  an event boundary with the same GTID state at the abandoned incremental's position, so
  the next incremental built on it and its restore (exit 0) held rows of the abandoned
  timeline
  (``test_a_cold_copy_rollback_then_the_corrected_statement_restores_what_the_server_held``).
- silent wrong, fixed: a rollback in place by ``restore F --force`` whose ``xtrabackup_*``
  files were then tidied away, binlog off: the next incremental built on the abandoned
  backup and its restore held the abandoned timeline
  (``test_a_rollback_whose_xtrabackup_files_were_tidied_away_restores_what_the_server_held``).
- loud wrong, fixed: a backup taken after an in-place restore with the binlog on was
  refused by the restore's post-check (exit 4, DIR already replaced) until the new binlog
  passed the old one's position
  (``test_a_full_backup_after_an_in_place_restore_with_the_binlog_on_restores``).
- silent wrong, fixed: ``restore ID --datadir DIR --force`` onto a datadir with a
  filesystem mounted inside it emptied that filesystem, then failed on the mount point
  (``test_force_onto_a_datadir_with_a_filesystem_mounted_inside_changes_nothing``).
- silent wrong, fixed: a rollback by a cold copy of the datadir with the binlog off (no
  ``xtrabackup_info``, the same redo log, no binlog to tell): the next incremental built on
  the abandoned backup once the LSN had passed it
  (``test_a_cold_copy_rollback_with_the_binlog_off_restores_what_the_server_held``).
- confusing, fixed: restoring the newest backup in place did not let the chain go on with
  the binlog on (the binlog check refused it; the policy took full backups)
  (``test_restoring_the_newest_backup_in_place_lets_the_chain_go_on_with_the_binlog_on``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.stores import store_for
from datatier.mysql.physical.scratch import ScratchServer, free_port
from datatier.mysql.physical.server import current_lsn
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.integrity import failure_line
from tests.integration.physical_support import (
    OWNER,
    connect_port,
    scratch,
    scratch_ports,
    table_state,
)

POLICY = "t7-phys"
PLAIN: dict[str, str] = {}


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


@dataclass(frozen=True)
class Source:
    """A scratch server's datadir run as node ``t7s`` and ``policy``, its physical backups."""

    sandbox: SandboxHandle
    base: Path
    port: int
    policy: str
    env: dict[str, str]
    store: ObjectStore
    log_bin: bool = True

    def run(self, *args: str) -> str:
        """``datatier ARGS`` as the node's operator: exit 0, and the ID with ``--json``."""
        result = cli(self.sandbox.config_path, self.env, *args)
        assert result.code == 0, result.err
        return str(result.json()["id"]) if "--json" in args else ""

    def manifest(self, backup_id: str) -> Manifest:
        return Manifest.decode(self.store.get_bytes(manifest_key(self.policy, backup_id)), "t")

    def server(self) -> ScratchServer:
        """The node's ``mariadbd``, binlog on unless the source says otherwise."""
        return ScratchServer(self.base, self.port, log_bin=self.log_bin)

    def abandoned_timeline(self, db: str, cold: Path) -> str:
        """Table ``db.t`` of 5,000 rows 'base' and a full backup; the stopped server's
        datadir copied to ``cold``; ``UPDATE t SET v = 'wrong value'`` and an incremental on
        the full backup, whose ID is returned (the timeline a rollback to ``cold`` leaves)."""
        with self.server() as s, connect_port(self.sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"INSERT INTO {db}.t SELECT seq, 'base' FROM {db}.seq_1_to_5000")
            self.run("backup", "run", self.policy, "--full", "--json")
        subprocess.run(["cp", "-a", str(self.base), str(cold)], check=True)
        with self.server() as s, connect_port(self.sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"UPDATE {db}.t SET v = 'wrong value'")
            return self.run("backup", "run", self.policy, "--incremental", "--json")

    def restored_from(self, later: str, earlier: str) -> bool:
        """Whether backup ``later`` records the binlog point backup ``earlier`` was copied
        at as where its datadir was restored from (``source.restored_binlog``)."""
        copied = self.manifest(earlier).consistency
        point = {"file": copied["binlog_file"], "pos": copied["binlog_pos"]}
        return bool(self.manifest(later).source["restored_binlog"] == point)

    def put_back(self, cold: Path) -> None:
        """The cold copy put back in place of the (stopped) server's datadir."""
        shutil.rmtree(self.base)
        subprocess.run(["cp", "-a", str(cold), str(self.base)], check=True)


def write_past(conn: pymysql.connections.Connection[Any], db: str, lsn: int) -> None:
    """Write megabyte rows to ``db.filler`` (created) until InnoDB's LSN is 1 MiB past
    ``lsn``: the abandoned backup's ``to_lsn`` left behind, as it soon is in production."""
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {db}.filler (id INT AUTO_INCREMENT PRIMARY KEY, b LONGBLOB)")
        while current_lsn(conn) <= lsn + 1024 * 1024:
            cur.execute(f"INSERT INTO {db}.filler (b) VALUES (REPEAT('f', 1000000))")


def scratch_source(
    sandbox: SandboxHandle,
    full: str,
    base: Path,
    port_base: int,
    policy: str,
    every: int = 7,
    log_bin: bool = True,
) -> Source:
    """``full`` restored at ``base`` with its ``xtrabackup_info`` removed (a datadir never
    restored from a mariabackup copy), and ``policy`` over it (``full_every_days = every``)."""
    assert cli(sandbox.config_path, PLAIN, "restore", full,
               "--datadir", str(base), "--owner", OWNER).code == 0  # fmt: skip
    (base / "xtrabackup_info").unlink()
    port = free_port(scratch_ports(port_base))
    sandbox.write_policy(
        policy,
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\nencrypt = false\n'
        f"full_every_days = {every}\n"
        '[source]\nnode = "t7s"\n[retention]\nkeep_last = 20\nmin_age_days = 0\n',
    )
    env = {
        "DATATIER_MYSQL__NODES__T7S__HOST": "127.0.0.1",
        "DATATIER_MYSQL__NODES__T7S__PORT": str(port),
    }
    return Source(sandbox, base, port, policy, env, store_of(sandbox), log_bin)


def primary_full_backup(
    sandbox: SandboxHandle, policy: str, node: str = "primary"
) -> Iterator[str]:
    """The ID of a full physical backup of the sandbox primary (or ``node``) under
    ``policy``; its objects and policy file are removed after."""
    sandbox.write_policy(
        policy,
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\nencrypt = false\n'
        f'[source]\nnode = "{node}"\n[retention]\nkeep_last = 20\nmin_age_days = 0\n',
    )
    result = cli(sandbox.config_path, {}, "backup", "run", policy, "--full", "--json")
    assert result.code == 0, result.err
    yield str(result.json()["id"])
    store = store_of(sandbox)
    store.delete([o.key for o in store.list_objects(f"{policy}/")])
    (sandbox.root / "backups" / f"{policy}.toml").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """The ID of a full physical backup of the sandbox primary."""
    yield from primary_full_backup(sandbox, POLICY)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# -- findings -------------------------------------------------------------------------------


def test_force_onto_a_directory_whose_mysql_entry_is_no_system_schema_is_refused(
    sandbox: SandboxHandle, full: str, tmp_path: Path
) -> None:
    """Severity: silent wrong (a system directory deleted, exit 0). On a Debian host
    ``/var/lib`` holds ``mysql`` (the stopped server's datadir) next to ``dpkg``, ``apt``...,
    and ``/etc`` holds ``mysql`` (``my.cnf``, ``conf.d``) next to ``passwd``.

    Steps: ``restore ID --datadir /var/lib --force`` (a slip for ``/var/lib/mysql``, the
    server stopped for the restore), and the same onto an ``/etc``-like directory.
    Expected: exit 2, "does not look like a MariaDB datadir", nothing changed (as for
    ``--datadir ~``).
    Was: exit 0, "datadir ready": every entry of the directory deleted (``dpkg``'s
    database, the stopped server's whole datadir, ``/etc/passwd``), a datadir in their place.
    Cause: ``check_datadir`` took any entry named ``mysql`` as a datadir mark, whatever it
    is; a datadir's ``mysql`` is the system schema, a directory of ``.frm`` files."""
    var_lib = tmp_path / "var_lib"
    var_lib.mkdir()
    restored = cli(sandbox.config_path, PLAIN, "restore", full,
                   "--datadir", str(var_lib / "mysql"), "--owner", OWNER)  # fmt: skip
    assert restored.code == 0, restored.err  # the stopped server's datadir
    (var_lib / "dpkg").mkdir()
    (var_lib / "dpkg" / "status").write_text("Package: libc6\n")
    etc = tmp_path / "etc"
    (etc / "mysql" / "conf.d").mkdir(parents=True)
    (etc / "mysql" / "my.cnf").write_text("[mysqld]\n")
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    for slip in (var_lib, etc):
        before = tree(slip)
        result = cli(sandbox.config_path, PLAIN, "restore", full,
                     "--datadir", str(slip), "--force", "--owner", OWNER)  # fmt: skip
        assert result.code == 2, (slip, result.err)
        assert "does not look like a MariaDB datadir" in failure_line(result.err)
        assert tree(slip) == before, "nothing changed"
    # a real datadir is still replaced with --force (its mysql/ is the system schema)
    again = cli(sandbox.config_path, PLAIN, "restore", full,
                "--datadir", str(var_lib / "mysql"), "--force", "--owner", OWNER)  # fmt: skip
    assert again.code == 0, again.err


def test_force_onto_a_datadir_with_a_filesystem_mounted_inside_changes_nothing(
    sandbox: SandboxHandle, full: str, tmp_path: Path
) -> None:
    """Severity: silent wrong (another filesystem's files deleted). A datadir whose
    subdirectory is a mount point: a database on its own volume, or a backup disk an
    operator mounted under DIR for the night.

    Steps: a restored datadir, a tmpfs mounted at ``DIR/vol ume\\x`` (a space and a
    backslash: the mount table escapes both) holding a file; in that mount namespace (``unshare
    -m``, so the host never sees it) ``datatier restore ID --datadir DIR --force``.
    Expected: exit 2 naming the mount point, nothing changed in DIR or the mounted filesystem.
    Was (tester7's note, shown here before the fix): exit 1 "Device or resource busy" after
    the mounted filesystem's file had been deleted.
    Cause: ``WorkArea.install`` empties DIR with ``rmtree``, which descends into mounts."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to mount a filesystem in a private namespace")
    datadir = tmp_path / "datadir"
    restored = cli(sandbox.config_path, PLAIN, "restore", full,
                   "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    assert restored.code == 0, restored.err
    volume = datadir / "vol ume\\x"
    volume.mkdir()
    before = tree(datadir)
    script = (
        'mount -t tmpfs none "$1" && echo kept > "$1/on-the-volume" && '
        '"$2" -m datatier --config "$3" restore "$4" --datadir "$5" --force --owner "$6" '
        '2>"$7"; echo "exit=$?"; cat "$1/on-the-volume"'
    )
    errors = tmp_path / "stderr"
    ran = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(volume), sys.executable,
         str(sandbox.config_path), full, str(datadir), OWNER, str(errors)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    err = errors.read_text()
    assert ran.stdout.splitlines() == ["exit=2", "kept"], (ran.stdout, err)
    assert f"has a filesystem mounted inside it ({volume})" in failure_line(err)
    assert tree(datadir) == before, "nothing changed in DIR"


REPLAY_POLICY = "t7-replay"


def test_a_cold_copy_rollback_then_the_corrected_statement_restores_what_the_server_held(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (a backup and its restore exit 0 with other data than the
    server held). As tester6's cold-copy rollback, but the operator then runs the
    corrected statement: the mistaken ``UPDATE t SET v = 'wrong value'`` is rolled back by
    putting back a cold copy of the datadir (binlog on, in the datadir), and ``UPDATE t SET
    v = 'right value'`` is run instead: the same shape, so the same binlog bytes but the
    values, at the same positions, under the same GTID (the server reissues the sequence
    numbers the rollback took back).

    Steps (a scratch ``mariadbd`` with ``--log-bin`` as node ``t7s``, a datadir never
    restored from a mariabackup copy): table t of 5,000 rows 'base'; full backup F; server
    stopped, datadir copied (``cp -a``), started; ``UPDATE t SET v = 'wrong value'``;
    incremental N on F. Server stopped, the cold copy put back, started; ``UPDATE t SET v =
    'right value'``; writes to another table until InnoDB's LSN passes N's ``to_lsn``;
    ``backup run`` (the policy's choice, ``full_every_days = 7``), and a restore of it.
    Expected: ``--incremental`` refused (exit 2); the policy takes a full backup instead,
    whose restore holds what the server held (t all 'right value'); after a restart and a
    ``FLUSH BINARY LOGS`` the chain goes on.
    Was (fixed): an incremental on N (exit 0); its restore (exit 0) held about half of t
    'wrong value' (the pages the rerun wrote below N's ``to_lsn``, which the incremental
    skipped).
    Cause: ``lineage.binlog_break`` asked the binlog only for the GTID state at N's
    position; the rerun put an event boundary there with the same GTID state. Now each
    manifest also records ``binlog_tail`` (SHA-256 of the binlog file's creation time and
    the bytes before its position, read from the file), and it must be unchanged."""
    base = tmp_path / "server"
    cold = tmp_path / "cold"
    src = scratch_source(sandbox, full, base, test_port_base, REPLAY_POLICY)
    env, store, run, manifest, server = (
        src.env,
        src.store,
        src.run,
        src.manifest,
        src.server,
    )

    try:
        newest = src.abandoned_timeline("t7rep", cold)
        newest_lsn = int(manifest(newest).consistency["to_lsn"])
        # The operator puts the cold copy back and runs the corrected statement.
        src.put_back(cold)
        with server() as s, connect_port(sandbox, s.port) as c:
            with c.cursor() as cur:
                cur.execute("UPDATE t7rep.t SET v = 'right value'")
                write_past(c, "t7rep", newest_lsn)
            expected = table_state(c, "t7rep")
            refused = cli(sandbox.config_path, env, "backup", "run", REPLAY_POLICY,
                          "--incremental", "--json")  # fmt: skip
            assert refused.code == 2, refused.err
            assert f"cannot build on the newest backup {newest}" in refused.err
            assert "holds other bytes before that point" in refused.err
            chosen = run("backup", "run", REPLAY_POLICY, "--json")
        assert manifest(chosen).parent is None, "the policy took a full backup instead"
        assert manifest(chosen).consistency["binlog_tail"]
        # No false refusal: a restart (the file closed) and a rotation between backups.
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("UPDATE t7rep.t SET v = 'next' WHERE id <= 10")
            goes_on = run("backup", "run", REPLAY_POLICY, "--incremental", "--json")
        assert manifest(goes_on).parent == chosen
        check = tmp_path / "check"
        run("restore", chosen, "--datadir", str(check), "--owner", OWNER)
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            with c2.cursor() as cur:
                cur.execute("SELECT v, COUNT(*) FROM t7rep.t GROUP BY v")
                held = dict(cur.fetchall())
            assert held == {"right value": 5000}, f"chosen on {manifest(chosen).parent}"
            assert table_state(c2, "t7rep") == expected, "what the server held"
    finally:
        store.delete([o.key for o in store.list_objects(f"{REPLAY_POLICY}/")])
        (sandbox.root / "backups" / f"{REPLAY_POLICY}.toml").unlink(missing_ok=True)


COLD_POLICY = "t7-cold"


def test_a_cold_copy_rollback_with_the_binlog_off_restores_what_the_server_held(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (a backup and its restore exit 0 with rows the server no
    longer held). The rollback lineage2's binlog check and the redo check cannot see: a
    datadir (binlog off) put back from a cold copy keeps its redo log and has no
    ``xtrabackup_info``; only the LSN told, and only until it passed the abandoned backup's.

    Steps (a scratch ``mariadbd`` without ``--log-bin`` as node ``t7s``): table t of 5,000
    rows 'base'; full F; server stopped, datadir copied (``cp -a``), started; ``UPDATE t
    SET v = 'wrong value'``; incremental N on F. Server stopped, the cold copy put back,
    started; writes to another table until InnoDB's LSN passes N's ``to_lsn``; ``backup
    run --incremental``, then the policy's own choice, and a restore of it.
    Expected: ``--incremental`` refused (exit 2) naming a page older than N copied it; the
    policy takes a full backup whose restore holds t all 'base'; the chain goes on after.
    Was (shown before the fix): an incremental on N, exit 0. t's pages were not written after
    the rollback, so their LSNs stay below N's ``to_lsn`` and the incremental skips them: a
    restore of it takes them from N, 'wrong value'.
    Now each manifest records the pages its stream wrote last per tablespace file
    (``consistency.page_sample``: page number, LSN, a digest of its bytes), and the next
    incremental requires the datadir to hold those pages or newer ones."""
    base = tmp_path / "server"
    cold = tmp_path / "cold"
    src = scratch_source(sandbox, full, base, test_port_base, COLD_POLICY, log_bin=False)
    env, store, run, manifest, server = src.env, src.store, src.run, src.manifest, src.server
    try:
        newest = src.abandoned_timeline("t7cold", cold)
        sample = manifest(newest).consistency["page_sample"]
        assert any(rel == "t7cold/t.ibd" for rel, *_ in sample["pages"]), sample
        newest_lsn = int(manifest(newest).consistency["to_lsn"])
        src.put_back(cold)
        with server() as s, connect_port(sandbox, s.port) as c:
            with c.cursor() as cur:
                write_past(c, "t7cold", newest_lsn)
            expected = table_state(c, "t7cold")
            refused = cli(sandbox.config_path, env, "backup", "run", COLD_POLICY,
                          "--incremental", "--json")  # fmt: skip
            assert refused.code == 2, refused.err
            assert f"cannot build on the newest backup {newest}" in refused.err
            assert "is at LSN" in refused.err and "older than LSN" in refused.err, refused.err
            chosen = run("backup", "run", COLD_POLICY, "--json")
            assert manifest(chosen).parent is None, "the policy took a full backup instead"
            cur = c.cursor()
            cur.execute("UPDATE t7cold.t SET v = 'next' WHERE id <= 10")
            goes_on = run("backup", "run", COLD_POLICY, "--incremental", "--json")
            assert manifest(goes_on).parent == chosen, "no false refusal on one timeline"
        check = tmp_path / "check"
        run("restore", chosen, "--datadir", str(check), "--owner", OWNER)
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            with c2.cursor() as cur:
                cur.execute("SELECT v, COUNT(*) FROM t7cold.t GROUP BY v")
                assert dict(cur.fetchall()) == {"base": 5000}
            assert table_state(c2, "t7cold") == expected, "what the server held"
    finally:
        store.delete([o.key for o in store.list_objects(f"{COLD_POLICY}/")])
        (sandbox.root / "backups" / f"{COLD_POLICY}.toml").unlink(missing_ok=True)


TIDY_POLICY = "t7-tidy"


def test_a_rollback_whose_xtrabackup_files_were_tidied_away_restores_what_the_server_held(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (a backup and its restore exit 0 with other data than the
    server held). The binlog is off (a standalone server, the default). The operator rolls
    the server back in place to an older backup of its chain (``restore F --datadir ITS_DIR
    --force``), then tidies the datadir: the README says the ``xtrabackup_*`` files a
    restore leaves there are ignored by the server, so they go.

    Steps (a scratch ``mariadbd`` without binlog as node ``t7s``, a datadir never restored
    from a mariabackup copy): table t of 5,000 rows 'base'; full backup F; every row
    updated to 'abandoned timeline'; incremental N on F. Server stopped, F restored over its
    datadir, ``rm DIR/xtrabackup_*``, started (t is 'base'); writes to another table until
    InnoDB's LSN passes N's ``to_lsn``; ``backup run --incremental``, then the policy's own
    choice (``full_every_days = 7``) and a restore of it.
    Expected: the incremental refused (exit 2); the policy takes a full backup instead,
    whose restore holds t all 'base'.
    Was (fixed): the incremental built on N (exit 0); its restore held t 'abandoned
    timeline'.
    Cause: the datadir's origin (its ``xtrabackup_info``) was None before and after, the
    identity matched, the LSN had passed N's and no binlog could tell. Now every manifest
    records the LSN the datadir's redo log was created at (``ib_logfile0``'s header:
    ``mariadb-install-db``, or the ``--prepare`` of the backup restored), and it must be
    unchanged unless the datadir was restored from the parent itself."""
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, TIDY_POLICY)
    port, env, store, run, manifest = src.port, src.env, src.store, src.run, src.manifest

    try:
        with ScratchServer(base, port) as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t7tidy")
            cur.execute("CREATE TABLE t7tidy.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute("INSERT INTO t7tidy.t SELECT seq, 'base' FROM t7tidy.seq_1_to_5000")
            first = run("backup", "run", TIDY_POLICY, "--full", "--json")
            cur.execute("UPDATE t7tidy.t SET v = 'abandoned timeline'")
            newest = run("backup", "run", TIDY_POLICY, "--incremental", "--json")
        newest_lsn = int(manifest(newest).consistency["to_lsn"])
        run("restore", first, "--datadir", str(base), "--force", "--owner", OWNER)
        for leftover in base.glob("xtrabackup_*"):
            leftover.unlink()  # the operator tidies the datadir
        with ScratchServer(base, port) as s, connect_port(sandbox, s.port) as c:
            with c.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM t7tidy.t WHERE v = 'base'")
                assert cur.fetchone()[0] == 5000, "rolled back"
                write_past(c, "t7tidy", newest_lsn)
            expected = table_state(c, "t7tidy")
            refused = cli(sandbox.config_path, env, "backup", "run", TIDY_POLICY,
                          "--incremental", "--json")  # fmt: skip
            assert refused.code == 2, refused.err
            assert f"cannot build on the newest backup {newest}" in refused.err
            assert "redo log" in refused.err
            chosen = run("backup", "run", TIDY_POLICY, "--json")
            assert manifest(chosen).parent is None, "the policy took a full backup instead"
            goes_on = run("backup", "run", TIDY_POLICY, "--incremental", "--json")
            assert manifest(goes_on).parent == chosen, "no false refusal on this datadir"
        check = tmp_path / "check"
        run("restore", chosen, "--datadir", str(check), "--owner", OWNER)
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t7tidy") == expected, "what the server held"
    finally:
        store.delete([o.key for o in store.list_objects(f"{TIDY_POLICY}/")])
        (sandbox.root / "backups" / f"{TIDY_POLICY}.toml").unlink(missing_ok=True)


INPLACE_POLICY = "t7-inplace"


def test_restoring_the_newest_backup_in_place_lets_the_chain_go_on_with_the_binlog_on(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: confusing (a false refusal; the policy silently takes full backups). The
    README: "restoring the newest backup in place lets the chain go on". With the binlog on
    in the datadir it did not.

    Steps (a scratch ``mariadbd`` with ``--log-bin`` as node ``t7s``): full F; writes;
    incremental N; server stopped, N restored over its datadir (``--force``), started;
    writes; ``backup run --incremental``.
    Expected: an incremental on N (exit 0), whose restore holds what the server held
    (the restore itself says exit 4 for now: see
    ``test_a_full_backup_after_an_in_place_restore_with_the_binlog_on_restores``).
    Was (fixed): exit 2, "the server's binlog ends with scratch-bin.000001, before that
    file" (or "has no event there"): a restore replaces the datadir, binlog included, so
    the server starts a new binlog, which never holds N's point. The policy's own choice
    fell back to a full backup.
    Cause: ``lineage.binlog_break`` was asked even when the datadir was restored from the
    parent itself (its origin names N), which makes the binlog's history irrelevant: every
    page the server wrote since has an LSN past N's."""
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, INPLACE_POLICY)
    env, store, run, manifest, server = (
        src.env,
        src.store,
        src.run,
        src.manifest,
        src.server,
    )

    try:
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t7in")
            cur.execute("CREATE TABLE t7in.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute("INSERT INTO t7in.t SELECT seq, 'base' FROM t7in.seq_1_to_5000")
            first = run("backup", "run", INPLACE_POLICY, "--full", "--json")
            cur.execute("UPDATE t7in.t SET v = 'second' WHERE id <= 100")
            newest = run("backup", "run", INPLACE_POLICY, "--incremental", "--json")
        assert manifest(newest).parent == first
        run("restore", newest, "--datadir", str(base), "--force", "--owner", OWNER)
        with server() as s, connect_port(sandbox, s.port) as c:
            with c.cursor() as cur:
                cur.execute("UPDATE t7in.t SET v = 'after the restore' WHERE id <= 10")
            expected = table_state(c, "t7in")
            goes_on = cli(sandbox.config_path, env, "backup", "run", INPLACE_POLICY,
                          "--incremental", "--json")  # fmt: skip
            assert goes_on.code == 0, goes_on.err
            on_newest = str(goes_on.json()["id"])
        assert manifest(on_newest).parent == newest
        check = tmp_path / "check"
        restored = cli(sandbox.config_path, env, "restore", on_newest,
                       "--datadir", str(check), "--owner", OWNER)  # fmt: skip
        assert restored.code == 0, restored.err  # no false alarm on the old binlog position
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t7in") == expected, "what the server held"
    finally:
        store.delete([o.key for o in store.list_objects(f"{INPLACE_POLICY}/")])
        (sandbox.root / "backups" / f"{INPLACE_POLICY}.toml").unlink(missing_ok=True)


FULLAFTER_POLICY = "t7-fullafter"


def test_a_full_backup_after_an_in_place_restore_with_the_binlog_on_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: loud wrong (a good backup refused at restore, exit 4, after DIR was
    replaced). Fixed.

    Steps (a scratch ``mariadbd`` with ``--log-bin`` as node ``t7s``): writes; full F (at
    ``scratch-bin.000001:P``); server stopped, F restored over its datadir, started (a new
    binlog: the restore replaced the old one); one small write; ``backup run --full`` G
    (at ``scratch-bin.000001:Q``, Q < P); ``restore G --datadir NEW``.
    Expected: exit 0.
    Was: exit 4, "InnoDB's binlog position scratch-bin.000001:P is past the backup's
    scratch-bin.000001:Q" (Q < P): after the prepare, ``xtrabackup_binlog_pos_innodb``
    still names the position of the binlog the restore removed (a rollback segment not
    written since), and ``RestoreTarget.post_check`` compared it with the new binlog's
    position of the same file name. Every backup was refused so until the new binlog
    passed the old position. Now G records the position F was copied at
    (``source.restored_binlog``, from the ``xtrabackup_info`` F's restore left), and a
    position past G's but not past F's is logged as that old one; the check runs before
    DIR is replaced."""
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, FULLAFTER_POLICY, every=0)
    env, store, run, server = src.env, src.store, src.run, src.server

    try:
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t7fa")
            cur.execute("CREATE TABLE t7fa.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute("INSERT INTO t7fa.t SELECT seq, 'before' FROM t7fa.seq_1_to_5000")
            cur.execute("UPDATE t7fa.t SET v = 'before still' WHERE id <= 100")
            first = run("backup", "run", FULLAFTER_POLICY, "--full", "--json")
        run("restore", first, "--datadir", str(base), "--force", "--owner", OWNER)
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("UPDATE t7fa.t SET v = 'after' WHERE id = 1")
            again = run("backup", "run", FULLAFTER_POLICY, "--full", "--json")
            expected = table_state(c, "t7fa")
        assert src.restored_from(again, first)
        check = tmp_path / "check"
        restored = cli(sandbox.config_path, env, "restore", again,
                       "--datadir", str(check), "--owner", OWNER)  # fmt: skip
        assert restored.code == 0, restored.err
        assert "restore.old_binlog_position" in restored.err, "the old position was met"
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t7fa") == expected, "what the server held"
    finally:
        store.delete([o.key for o in store.list_objects(f"{FULLAFTER_POLICY}/")])
        (sandbox.root / "backups" / f"{FULLAFTER_POLICY}.toml").unlink(missing_ok=True)
