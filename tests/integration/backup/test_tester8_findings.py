"""tester8: the page-sample lineage check, the restore's binlog-position check and the
mount refusal of ``restore --force``, attacked as a hostile-but-legal user would, against
scratch servers restored from one full physical backup of the sandbox primary.

Findings, by severity (each test's docstring has steps, expected and actual):
- silent wrong, fixed: on a server that encrypts its tablespaces the way
  MariaDB documents (``file_key_management``, ``innodb_encrypt_tables=ON``, encryption
  threads), a cold-copy rollback with the binlog off is not seen: every sampled page is
  skipped, the next incremental builds on the abandoned backup
  (``test_a_cold_copy_rollback_of_an_encrypted_server_is_refused``). The space id at 34 is
  encrypted; each file's now comes from its page 0 (never encrypted), or an incremental's
  ``.meta``.
- silent wrong, fixed: a cold-copy rollback with the binlog off, then the
  corrected statement after a small write: the rerun writes the sampled pages again at
  slightly higher LSNs, so the check passes, and the incremental skips the pages the
  rerun wrote below its parent's ``to_lsn``: the restore holds 4,005 rows of the abandoned
  timeline
  (``test_a_cold_copy_rollback_then_a_small_write_and_the_corrected_statement_restores``).
  A sampled page written after the copy but at or before the backup's checkpoint
  (``to_lsn``) is now another timeline (on one timeline, all written before a checkpoint is
  on disk by then), and the sample holds pages of any age too, not only the last written.
- loud wrong, fixed: a full backup taken after two in-place restores with
  the binlog on is refused by the restore (exit 4, "data committed after the backup's
  point"): InnoDB still reports the binlog position of the first restore's backup, and
  ``source.restored_binlog`` only knows the second's
  (``test_a_full_backup_after_two_in_place_restores_restores``).
- loud wrong, fixed: the same after ``RESET MASTER``, with no restore at
  all: every full backup is refused at restore until the new binlog passes the old
  position (``test_a_full_backup_after_reset_master_restores``). InnoDB's binlog position
  past the backup's is now logged (``restore.binlog_position_ahead``), not refused: after
  any binlog reset it names an old binlog under a reused file name.
- found while fixing the first two: a ``.delta`` of ibdata1 holds the doublewrite buffer's
  copies of other pages under their own numbers; read as ibdata1's pages they gave false
  refusals. A delta page is now kept only when its number is the one its block lists.

Guards that held (cases not tested before):
- no false refusal across a purge's truncation of undo tablespaces
  (``test_no_false_refusal_across_an_undo_tablespace_truncation``).
- no false refusal on one timeline through OPTIMIZE, ALTER ... FORCE, TRUNCATE, DROP and
  CREATE of the same name, a RENAME swap, ROW_FORMAT=COMPRESSED and PAGE_COMPRESSED
  tables (and changing their block size / level), a clean, a slow and a crash restart, and
  writes running during five backups and their checks (the writer crashed on a format
  string at first, unnoticed: it now fails the test, and must have written)
  (``test_no_false_refusal_on_one_timeline``).
- ``--force`` refuses a mount below DIR reached through a symlinked ``--datadir`` with a
  newline, tab and backslash in the mount point's name, and a file bind-mounted in DIR;
  DIR itself a mount is replaced (``test_mounts_below_dir_odd_names_symlinks_and_binds``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier.mysql.physical.scratch import ScratchServer
from tests.integration.backup.test_tester7_findings import (
    Source,
    primary_full_backup,
    scratch_source,
    write_past,
)
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.physical_support import (
    OWNER,
    connect_port,
    scratch,
    table_state,
)

POLICY = "t8-phys"


class Scratch(ScratchServer):
    """A scratch server with extra ``mariadbd`` options (encryption)."""

    def __init__(self, datadir: Path, port: int, extra: list[str]) -> None:
        super().__init__(datadir, port)
        self.extra = extra

    def argv(self) -> list[str]:
        return [*super().argv(), *self.extra]


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """The ID of a full physical backup of the sandbox primary."""
    yield from primary_full_backup(sandbox, POLICY)


def cleanup(src: Source) -> None:
    src.store.delete([o.key for o in src.store.list_objects(f"{src.policy}/")])
    (src.sandbox.root / "backups" / f"{src.policy}.toml").unlink(missing_ok=True)


def encryption_options(tmp_path: Path) -> list[str]:
    """MariaDB's documented data-at-rest encryption: a key file, every tablespace
    encrypted by background threads (the system tablespace and ``mysql.*`` included)."""
    keys = tmp_path / "keys.txt"
    keys.write_text("1;" + "a1" * 32 + "\n")
    return [
        "--plugin-load-add=file_key_management",
        f"--file-key-management-filename={keys}",
        "--innodb-encrypt-tables=ON",
        "--innodb-encryption-threads=2",
    ]


def wait_encrypted(conn: Any, timeout: float = 60.0) -> None:
    """Until the encryption threads have encrypted every tablespace."""
    deadline = time.monotonic() + timeout
    with conn.cursor() as cur:
        while True:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.INNODB_TABLESPACES_ENCRYPTION "
                "WHERE ENCRYPTION_SCHEME = 0 OR ROTATING_OR_FLUSHING = 1"
            )
            if cur.fetchone()[0] == 0:
                return
            assert time.monotonic() < deadline, "tablespaces still not encrypted"
            time.sleep(0.2)


ENC_POLICY = "t8-enc"


def test_a_cold_copy_rollback_of_an_encrypted_server_is_refused(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (an incremental built on an abandoned backup, exit 0; its
    restore holds the abandoned rows, as in tester7's cold-copy test). tester7's cold-copy
    rollback with the binlog off, on a server encrypted as MariaDB documents it.

    Steps (a scratch ``mariadbd`` without binlog, with ``file_key_management``,
    ``innodb_encrypt_tables=ON``, 2 encryption threads, all tablespaces encrypted): table t
    of 5,000 rows 'base'; full F; server stopped, datadir copied (``cp -a``), started;
    ``UPDATE t SET v = 'wrong value'``; incremental N on F. Server stopped, the cold copy
    put back, started; writes to another table until InnoDB's LSN passes N's ``to_lsn``;
    ``backup run --incremental``.
    Expected: exit 2 ("cannot build on the newest backup N"), as without encryption.
    Actual: exit 0, an incremental on N. N's ``page_sample`` records ciphertext as each
    page's space id (e.g. 3628240639 for a table of space 12): full_crc32 encryption
    encrypts from byte 26 on, the space id at 34 included, and the page-compressed format
    overwrites it too. ``pages_break`` reads the live page, finds another "space id" and
    skips it as a rebuilt file; with ibdata1 and ``mysql.*`` encrypted as well, no page is
    ever compared. (With only the user table encrypted, an unencrypted ibdata1 undo page
    happened to tell.)"""
    base = tmp_path / "server"
    cold = tmp_path / "cold"
    src = scratch_source(sandbox, full, base, test_port_base, ENC_POLICY, log_bin=False)
    options = encryption_options(tmp_path)

    def server() -> Scratch:
        return Scratch(base, src.port, options)

    try:
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            wait_encrypted(c)
            cur.execute("CREATE DATABASE t8enc")
            cur.execute("CREATE TABLE t8enc.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute("INSERT INTO t8enc.t SELECT seq, 'base' FROM t8enc.seq_1_to_5000")
            wait_encrypted(c)
            src.run("backup", "run", ENC_POLICY, "--full", "--json")
        subprocess.run(["cp", "-a", str(base), str(cold)], check=True)
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("UPDATE t8enc.t SET v = 'wrong value'")
            newest = src.run("backup", "run", ENC_POLICY, "--incremental", "--json")
        newest_lsn = int(src.manifest(newest).consistency["to_lsn"])
        shutil.rmtree(base)
        subprocess.run(["cp", "-a", str(cold), str(base)], check=True)
        with server() as s, connect_port(sandbox, s.port) as c:
            with c.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM t8enc.t WHERE v = 'base'")
                assert cur.fetchone()[0] == 5000, "rolled back"
                write_past(c, "t8enc", newest_lsn)
            refused = cli(sandbox.config_path, src.env, "backup", "run", ENC_POLICY,
                          "--incremental", "--json")  # fmt: skip
            assert refused.code == 2, "an incremental built on the abandoned backup"
            assert f"cannot build on the newest backup {newest}" in refused.err
    finally:
        cleanup(src)


LINE_POLICY = "t8-line"
ONE_TIMELINE = [
    "OPTIMIZE TABLE t8l.a",
    "ALTER TABLE t8l.a FORCE",
    "TRUNCATE TABLE t8l.b",
    "DROP TABLE t8l.c",
    "CREATE TABLE t8l.c (id INT PRIMARY KEY, v VARCHAR(200))",
    "INSERT INTO t8l.c SELECT seq, 'again' FROM t8l.seq_1_to_3000",
    "RENAME TABLE t8l.a TO t8l.tmp, t8l.d TO t8l.a, t8l.tmp TO t8l.d",
    "UPDATE t8l.z SET v = CONCAT(v, 'z') WHERE id % 3 = 0",
    "UPDATE t8l.p SET v = CONCAT(v, 'p') WHERE id % 3 = 0",
    "ALTER TABLE t8l.z KEY_BLOCK_SIZE=4",
    "ALTER TABLE t8l.p PAGE_COMPRESSION_LEVEL=9",
    "UPDATE t8l.p SET v = REPEAT('q', 150) WHERE id % 2 = 0",
    "DELETE FROM t8l.d WHERE id % 2 = 0",
    "INSERT INTO t8l.d SELECT seq, REPEAT('n', 190) FROM t8l.seq_1_to_3000 WHERE seq % 2 = 0",
]


def test_no_false_refusal_on_one_timeline(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Guard holds (no false refusal). The page check must never refuse a datadir that
    stayed on one timeline, whatever rebuilt, renamed, compressed or restarted it.

    Steps (a scratch ``mariadbd`` without binlog, so only the page and redo checks speak):
    tables a, b, c, d, z (ROW_FORMAT=COMPRESSED, KEY_BLOCK_SIZE=8) and p (PAGE_COMPRESSED)
    of 3,000 rows; full F; after each statement of :data:`ONE_TIMELINE` (OPTIMIZE, ALTER
    FORCE, TRUNCATE, DROP and CREATE the same name, a RENAME swap, writes to z and p, their
    block size / level changed) ``backup run --incremental``; then the same after a clean
    restart, a slow shutdown (``innodb_fast_shutdown=0``) and a SIGKILL with writes (crash
    recovery); then five while another connection updates d, p and z without pause; a
    last one, and its restore.
    Expected and actual: every incremental exit 0; the restore holds what the server held."""
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, LINE_POLICY, log_bin=False)

    def incremental(why: str) -> str:
        result = cli(sandbox.config_path, src.env, "backup", "run", LINE_POLICY,
                     "--incremental", "--json")  # fmt: skip
        assert result.code == 0, (why, result.err[-1500:])
        return str(result.json()["id"])

    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t8l")
            for name, options in [("a", ""), ("b", ""), ("c", ""), ("d", ""),
                                  ("z", "ROW_FORMAT=COMPRESSED KEY_BLOCK_SIZE=8"),
                                  ("p", "PAGE_COMPRESSED=1")]:  # fmt: skip
                cur.execute(f"CREATE TABLE t8l.{name} (id INT PRIMARY KEY, v VARCHAR(200)) "
                            f"{options}")  # fmt: skip
                cur.execute(f"INSERT INTO t8l.{name} SELECT seq, REPEAT('{name}', 150) "
                            "FROM t8l.seq_1_to_3000")  # fmt: skip
            src.run("backup", "run", LINE_POLICY, "--full", "--json")
            for statement in ONE_TIMELINE:
                cur.execute(statement)
                cur.fetchall()
                incremental(statement)
            cur.execute("UPDATE t8l.b SET v = 'x' WHERE id < 100")
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            incremental("a clean restart")
            cur.execute("UPDATE t8l.c SET v = 'y' WHERE id < 100")
            cur.execute("SET GLOBAL innodb_fast_shutdown = 0")
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            incremental("a slow shutdown")
            cur.execute("UPDATE t8l.c SET v = 'z' WHERE id < 3000")
            cur.execute("UPDATE t8l.p SET v = 'z' WHERE id < 3000")
            assert s._proc is not None
            s._proc.kill()  # a crash: recovery applies the redo log at the next start
            s._proc.wait()
        with src.server() as s, connect_port(sandbox, s.port) as c:
            incremental("a crash")
            stop = threading.Event()
            written: list[int] = []
            failed: list[BaseException] = []

            def write() -> None:
                try:
                    with connect_port(sandbox, s.port) as w, w.cursor() as wc:
                        n = 0
                        while not stop.is_set():
                            n += 1
                            for table in ("d", "p", "z"):
                                wc.execute(f"UPDATE t8l.{table} SET v = REPEAT(CHAR(65 + "
                                           "MOD(%s, 26)), 180) WHERE id = MOD(%s, 3000) + 1",
                                           (n, n))  # fmt: skip
                            written.append(n)
                            time.sleep(0.001)
                except BaseException as exc:  # the test fails on it below
                    failed.append(exc)

            writer = threading.Thread(target=write)
            writer.start()
            try:
                for i in range(5):
                    incremental(f"writes running, {i}")
            finally:
                stop.set()
                writer.join()
            assert not failed, failed
            assert len(written) > 100, "the writer ran during the backups and their checks"
            last = incremental("after the writes")
            expected = table_state(c, "t8l")
        check = tmp_path / "check"
        src.run("restore", last, "--datadir", str(check), "--owner", OWNER)
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t8l") == expected, "what the server held"
    finally:
        cleanup(src)


TWICE_POLICY = "t8-twice"


def test_a_full_backup_after_two_in_place_restores_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: loud wrong (a good backup refused at restore, exit 4). tester7's
    ``test_a_full_backup_after_an_in_place_restore_with_the_binlog_on_restores``, one
    restore further.

    Steps (a scratch ``mariadbd`` with ``--log-bin``): 5,000 rows and an update; full F
    (at ``scratch-bin.000001:1015``); F restored in place, started; one small update; full
    G (at ``:509``, ``restored_binlog`` 1015); G restored in place (exit 0: the tolerance
    works once), started; one small update; full H (at ``:508``, ``restored_binlog`` 509);
    ``restore H --datadir NEW``.
    Expected: exit 0, NEW holds what the server held.
    Actual: exit 4, "after the prepare InnoDB's binlog position scratch-bin.000001:1015 is
    past the backup's scratch-bin.000001:508 (data committed after the backup's point)":
    the rollback segment that holds F's position was not written through two restores, and
    H only records G's position as the one its datadir was restored at. Every full backup
    of this server is refused so until the new binlog passes 1015."""
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, TWICE_POLICY, every=0)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t8tw")
            cur.execute("CREATE TABLE t8tw.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute("INSERT INTO t8tw.t SELECT seq, 'before' FROM t8tw.seq_1_to_5000")
            cur.execute("UPDATE t8tw.t SET v = 'before still' WHERE id <= 100")
            first = src.run("backup", "run", TWICE_POLICY, "--full", "--json")
        src.run("restore", first, "--datadir", str(base), "--force", "--owner", OWNER)
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("UPDATE t8tw.t SET v = 'second' WHERE id = 1")
            second = src.run("backup", "run", TWICE_POLICY, "--full", "--json")
        src.run("restore", second, "--datadir", str(base), "--force", "--owner", OWNER)
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("UPDATE t8tw.t SET v = 'third' WHERE id = 2")
            third = src.run("backup", "run", TWICE_POLICY, "--full", "--json")
            expected = table_state(c, "t8tw")
        assert src.restored_from(third, second)
        check = tmp_path / "check"
        restored = cli(sandbox.config_path, src.env, "restore", third,
                       "--datadir", str(check), "--owner", OWNER)  # fmt: skip
        assert restored.code == 0, restored.err[-1500:]
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t8tw") == expected, "what the server held"
    finally:
        cleanup(src)


MOUNT_SCRIPT = r"""
run() {
    "$PY" -m datatier --config "$CONF" restore "$ID" --datadir "$1" --force \
        --owner "$OWNER" >/dev/null 2>>"$ERR"
    echo "$2=$?"
}
mount -t tmpfs none "$ODD" && echo kept > "$ODD/f" && run "$LINK" odd
cat "$ODD/f"; umount "$ODD"
mount --bind "$OUTSIDE" "$DD/bound" && run "$DD" bind
cat "$OUTSIDE"; umount "$DD/bound"
mount -t tmpfs none "$VOL" && run "$VOL" self && run "$VOL" again
"""


def test_mounts_below_dir_odd_names_symlinks_and_binds(
    sandbox: SandboxHandle, full: str, tmp_path: Path
) -> None:
    """Guard holds. ``restore --force`` onto a datadir with something mounted below it,
    in a private mount namespace (``unshare -m``).

    Steps: a restored datadir DIR and ``LINK -> DIR``; (1) a tmpfs holding a file mounted
    at ``DIR/sub/new<newline>line<tab>tab \\134`` (the mount table escapes all four),
    ``restore --datadir LINK --force``; (2) a file outside DIR bind-mounted over
    ``DIR/bound``, ``restore --datadir DIR --force``; (3) an empty tmpfs mounted at VOL,
    ``restore --datadir VOL`` twice with ``--force`` (DIR itself a mount, the usual
    dedicated volume).
    Expected and actual: (1) and (2) exit 2, the mounted file and the bound file intact;
    (3) exit 0 both times."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to mount a filesystem in a private namespace")
    datadir = tmp_path / "datadir"
    restored = cli(sandbox.config_path, {}, "restore", full,
                   "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    assert restored.code == 0, restored.err
    link = tmp_path / "link"
    link.symlink_to(datadir)
    odd = datadir / "sub" / "new\nline\ttab \\134"
    odd.mkdir(parents=True)
    (datadir / "bound").write_text("a file of the datadir\n")
    outside = tmp_path / "outside"
    outside.write_text("outside\n")
    volume = tmp_path / "volume"
    volume.mkdir()
    errors = tmp_path / "stderr"
    env = {"PY": sys.executable, "CONF": str(sandbox.config_path), "ID": full,
           "OWNER": OWNER, "ERR": str(errors), "ODD": str(odd), "LINK": str(link),
           "DD": str(datadir), "OUTSIDE": str(outside), "VOL": str(volume)}  # fmt: skip
    ran = subprocess.run(["unshare", "-m", "sh", "-c", MOUNT_SCRIPT],
                         env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=300, check=False)  # fmt: skip
    err = errors.read_text() if errors.exists() else ""
    assert ran.stdout.splitlines() == [
        "odd=2", "kept", "bind=2", "outside", "self=0", "again=0"
    ], (ran.stdout, ran.stderr, err[-2000:])  # fmt: skip
    assert "has a filesystem mounted inside it" in err


SHIFT_POLICY = "t8-shift"


def test_a_cold_copy_rollback_then_a_small_write_and_the_corrected_statement_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (a backup and its restore exit 0 with rows the server never
    held after the rollback). tester7's "cold copy, then the corrected statement" with the
    binlog off (the default), where only the page sample can tell, and one small write
    before the corrected statement.

    Steps (a scratch ``mariadbd`` without binlog as node ``t7s``): table t of 5,000 rows
    'base'; full F; server stopped, datadir copied (``cp -a``), started; ``UPDATE t SET v =
    'wrong value'``; restart; incremental N on F. Server stopped, the cold copy put back,
    started; in one transaction (the first since the start, as the mistaken one was) a
    200 KB insert into another table and ``UPDATE t SET v = 'right value'``; restart;
    ``backup run --incremental`` and, if it is taken, its restore.
    Expected: the incremental refused (exit 2), or a backup whose restore holds t all
    'right value'.
    Actual (4 runs in 4): an incremental on N, exit 0; its restore (exit 0) holds 4,005
    rows 'wrong value'. The rerun wrote every page of t and the same undo pages again, each
    at an LSN a little past the one the abandoned timeline gave it (the 200 KB first): N's
    sampled pages (t's and ibdata1's, the last written) all read as newer versions, while
    the pages the rerun wrote below N's ``to_lsn`` are not copied by the incremental and
    come from N at restore. (Without the 200 KB, or with other transactions first, undo
    pages written at other LSNs still tell.)"""
    base = tmp_path / "server"
    cold = tmp_path / "cold"
    src = scratch_source(sandbox, full, base, test_port_base, SHIFT_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t8sh")
            cur.execute("CREATE TABLE t8sh.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute("INSERT INTO t8sh.t SELECT seq, 'base' FROM t8sh.seq_1_to_5000")
            cur.execute("CREATE TABLE t8sh.filler (id INT AUTO_INCREMENT PRIMARY KEY, "
                        "b LONGBLOB)")  # fmt: skip
            src.run("backup", "run", SHIFT_POLICY, "--full", "--json")
        subprocess.run(["cp", "-a", str(base), str(cold)], check=True)
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("UPDATE t8sh.t SET v = 'wrong value'")
        with src.server():
            newest = src.run("backup", "run", SHIFT_POLICY, "--incremental", "--json")
        shutil.rmtree(base)
        subprocess.run(["cp", "-a", str(cold), str(base)], check=True)
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("BEGIN")  # one transaction, as the first one was: the same undo pages
            cur.execute("INSERT INTO t8sh.filler (b) VALUES (REPEAT('f', 200000))")
            cur.execute("UPDATE t8sh.t SET v = 'right value'")
            cur.execute("COMMIT")
        with src.server() as s, connect_port(sandbox, s.port) as c:
            expected = table_state(c, "t8sh")
            taken = cli(sandbox.config_path, src.env, "backup", "run", SHIFT_POLICY,
                        "--incremental", "--json")  # fmt: skip
            if taken.code == 2:
                assert f"cannot build on the newest backup {newest}" in taken.err
                return
            assert taken.code == 0, taken.err[-1500:]
        check = tmp_path / "check"
        src.run("restore", str(taken.json()["id"]), "--datadir", str(check), "--owner", OWNER)
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            with c2.cursor() as cur:
                cur.execute("SELECT v, COUNT(*) FROM t8sh.t GROUP BY v")
                held = dict(cur.fetchall())
            assert held == {"right value": 5000}, f"on {newest}: {held}"
            assert table_state(c2, "t8sh") == expected, "what the server held"
    finally:
        cleanup(src)


UNDO_POLICY = "t8-undo"
UNDO_OPTIONS = [
    "--innodb-undo-tablespaces=3",
    "--innodb-undo-log-truncate=ON",
    "--innodb-max-undo-log-size=10M",
    "--innodb-purge-rseg-truncate-frequency=1",
]


def undo_sizes(base: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(base.glob("undo00*"))}


def test_no_false_refusal_across_an_undo_tablespace_truncation(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Guard holds (no false refusal). Undo tablespaces the purge truncates: the files
    shrink and their first pages are created again, under the same space ids.

    Steps (a scratch ``mariadbd`` without binlog, ``innodb_undo_tablespaces=3`` (10.11
    creates them on an existing datadir), ``innodb_undo_log_truncate=ON``,
    ``innodb_max_undo_log_size=10M``): 30,000 rows; full F; three UPDATEs of every row (the
    undo files grow past 10 MB); incremental N (its sample holds pages 1-4 of each undo
    file); small writes until the purge truncates the undo files; ``backup run
    --incremental``; more writes; another, and its restore.
    Expected and actual: every incremental exit 0; the restore holds what the server held."""
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, UNDO_POLICY, log_bin=False)

    def server() -> Scratch:
        return Scratch(base, src.port, UNDO_OPTIONS)

    def incremental(why: str) -> str:
        result = cli(sandbox.config_path, src.env, "backup", "run", UNDO_POLICY,
                     "--incremental", "--json")  # fmt: skip
        assert result.code == 0, (why, result.err[-1500:])
        return str(result.json()["id"])

    try:
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t8u")
            cur.execute("CREATE TABLE t8u.t (id INT PRIMARY KEY, v VARCHAR(250))")
            cur.execute("INSERT INTO t8u.t SELECT seq, REPEAT('a', 200) FROM t8u.seq_1_to_30000")
            src.run("backup", "run", UNDO_POLICY, "--full", "--json")
            for fill in "bcd":
                cur.execute(f"UPDATE t8u.t SET v = REPEAT('{fill}', 220)")
            grown = undo_sizes(base)
            newest = incremental("undo grown")
            sample = src.manifest(newest).consistency["page_sample"]["pages"]
            assert any(str(rel).startswith("undo") for rel, *_ in sample), sample
            deadline = time.monotonic() + 40
            while undo_sizes(base) == grown:
                assert time.monotonic() < deadline, ("no undo truncation", grown)
                cur.execute("UPDATE t8u.t SET v = 'x' WHERE id = 1")
                time.sleep(0.5)
            incremental("undo truncated")
            cur.execute("UPDATE t8u.t SET v = REPEAT('e', 100) WHERE id % 7 = 0")
            last = incremental("after")
            expected = table_state(c, "t8u")
        check = tmp_path / "check"
        src.run("restore", last, "--datadir", str(check), "--owner", OWNER)
        undo = functools.partial(Scratch, extra=UNDO_OPTIONS)
        with scratch(check, test_port_base, undo) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t8u") == expected, "what the server held"
    finally:
        cleanup(src)


RESET_POLICY = "t8-reset"


def test_a_full_backup_after_reset_master_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: loud wrong (every good backup refused at restore, exit 4, until the new
    binlog passes the old position). No restore at all: ``RESET MASTER``, a legal and
    common statement (a primary's binlog started anew, a replica set up again).

    Steps (a scratch ``mariadbd`` with ``--log-bin``, a datadir never restored from a
    mariabackup copy): 5,000 rows and an update (binlog at ``scratch-bin.000001:1015``);
    ``RESET MASTER``; one small update; ``backup run --full`` G (at ``:508``);
    ``restore G --datadir NEW``.
    Expected: exit 0, NEW holds what the server held.
    Actual: exit 4, "after the prepare InnoDB's binlog position scratch-bin.000001:1015 is
    past the backup's scratch-bin.000001:508 (data committed after the backup's point)".
    InnoDB's rollback segments keep the reset binlog's position, as after a restore, but
    the datadir has no ``xtrabackup_info``, so G records no ``restored_binlog`` to
    tolerate it."""
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, RESET_POLICY, every=0)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t8rs")
            cur.execute("CREATE TABLE t8rs.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute("INSERT INTO t8rs.t SELECT seq, 'before' FROM t8rs.seq_1_to_5000")
            cur.execute("UPDATE t8rs.t SET v = 'before still' WHERE id <= 100")
            cur.execute("RESET MASTER")
            cur.execute("UPDATE t8rs.t SET v = 'after' WHERE id = 1")
            taken = src.run("backup", "run", RESET_POLICY, "--full", "--json")
            expected = table_state(c, "t8rs")
        check = tmp_path / "check"
        restored = cli(sandbox.config_path, src.env, "restore", taken,
                       "--datadir", str(check), "--owner", OWNER)  # fmt: skip
        assert restored.code == 0, restored.err[-1500:]
        with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t8rs") == expected, "what the server held"
    finally:
        cleanup(src)
