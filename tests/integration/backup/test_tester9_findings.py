"""tester9: physical incrementals across a tablespace import and tables kept outside the
datadir (``DATA DIRECTORY``), attacked as a hostile-but-legal user would, against scratch
servers restored from one full physical backup of the sandbox primary. Every scenario
ends with a restore of the chain onto a scratch server and a comparison of every row
(``CHECKSUM TABLE ... EXTENDED`` and counts) with what the source held at the backup's point.

Findings, by severity (each test's docstring has steps, expected and actual):
- silent wrong, fixed: a full backup taken right after ``ALTER TABLE t DISCARD TABLESPACE`` /
  ``IMPORT TABLESPACE`` (the step the page check's refusal asks for) lacks t: backup and
  restore exit 0, t's rows are gone (error 194 "Tablespace is missing"). mariabackup sees
  the DISCARD's file delete in the redo since the last checkpoint (an import dirties no
  page, so none comes), skips the file as dropped with a warning, and exits 0
  (``test_a_full_backup_right_after_an_import_restores[at-once]``). datatier now forces a
  checkpoint (``innodb_log_checkpoint_now``) right before mariabackup starts, and fails a
  backup (exit 1, no manifest) whose log says it skipped a tablespace still on disk
  (``test_a_full_backup_that_leaves_out_an_imported_table_fails``: a user without SUPER).
- silent wrong, fixed: a table created and imported between a full backup and an incremental
  (MariaDB's transportable tablespaces) is missing from the incremental's restore, at once
  or after a restart (``test_a_table_created_and_imported_after_the_full_backup_restores``).
  MariaDB 10.11 writes imported pages at LSN 0: no incremental copies them. Each manifest
  now lists the datadir's files holding pages at LSN 0 (``imported_files``); a file the
  parent did not list refuses the incremental (``datatier/mysql/physical/imports.py``).
- silent wrong, fixed (as above): an import into a table whose file is not among the 256
  files F's page
  sample keeps: the incremental (exit 0) restores t with F's old 5,000 rows, checksum
  and ``CHECK TABLE`` fine (``test_an_import_into_a_table_the_sample_left_out_restores``).
- silent wrong, fixed (as above): an import into a sampled table of a donor smaller than
  it, then ordinary
  inserts (pages 2 and 3 written again): the sampled pages past the imported file's end
  are skipped, the incremental (exit 0) restores a t that mixes F's rows under the new
  root (1,945 rows for 1,900, ``CHECK TABLE``: corrupted)
  (``test_a_small_tablespace_imported_into_a_big_table_restores``).
- silent wrong, fixed: a cold-copy rollback of only a tablespace kept outside the datadir
  (``DATA DIRECTORY``): the sample lists it under ``db/ext.ibd``, read in the datadir where
  it is not; the next incremental builds on the abandoned backup and its restore holds
  the abandoned rows, binlog off or on (the binlog, in the datadir, went on)
  (``test_a_cold_copy_rollback_of_a_file_outside_the_datadir_restores``). Pages of such
  a file are now read where its ``.isl`` points.
- loud wrong, fixed: a restore of a ``DATA DIRECTORY`` table on the source's host (any host
  where that path exists) exits 0 with ``db/ext.ibd`` and ``db/ext.isl`` both installed;
  the server will not open a tablespace found in two places (error 194)
  (``test_a_table_outside_the_datadir_restores[same-host]``). The restore then kept such
  files inside the restored datadir without ``.isl``, where the first rebuild of the table
  (``ALTER TABLE ... FORCE``) crashed the server. It now puts each outside the datadir with
  an ``.isl`` naming it: at the path the table was created with (refused, exit 2, where a
  file is there, as on the source's host) or under ``--external-dir ROOT``.
- loud wrong, fixed (as above): ``backups verify ID --restore-test`` on the source's host
  of a good backup
  holding a ``DATA DIRECTORY`` table fails, exit 4 ("t9y.ext: Got error 194 ...;
  Corrupt"), for the same reason: a false alarm in the routine nightly check
  (``test_the_restore_test_of_a_backup_with_a_table_outside_the_datadir_passes``).
- cosmetic, fixed: the page check's refusal after an import said "a snapshot or a copy of the
  datadir put back" (``test_an_imported_tablespace_reaches_the_incremental``); at LSN 0
  it now names an imported tablespace.

Guards that held:
- an import (with or without ``.cfg``) into a sampled table, and a table's own ``.ibd``
  from an older backup imported back, are refused at the next incremental (every page at
  LSN 0 is older than F's sample); a full backup after a restart restores them
  (``test_an_imported_tablespace_reaches_the_incremental``,
  ``test_a_table_rolled_back_from_an_older_backup_reaches_the_incremental``,
  ``test_a_full_backup_right_after_an_import_restores[after-a-restart]``).
- a ``DATA DIRECTORY`` table: full, incremental and restore on another host hold what the
  source held; on either host neither the restore nor the restored server writes the
  source's external file (``test_a_table_outside_the_datadir_restores``); TRUNCATE, DROP
  and CREATE elsewhere, CREATE and ALTER ... FORCE of such tables between a full backup
  and two incrementals restore
  (``test_ddl_on_tables_outside_the_datadir_between_backups_restores``).
- ``ALTER TABLE p EXCHANGE PARTITION p0 WITH TABLE x`` between a full backup and an
  incremental (files swap names, keeping old pages and space ids), at once or after a
  restart, restores (``test_an_exchanged_partition_restores``).
- ``backups verify --restore-test`` failed (exit 4) on the full backup that lacked the
  imported table; it cannot tell the old-rows case above (it would tell the corrupt mix).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier.mysql.physical.scratch import free_port
from tests.integration.backup.test_physical_copy_window import backup_while_paused
from tests.integration.backup.test_tester7_findings import (
    Source,
    primary_full_backup,
    scratch_source,
    write_past,
)
from tests.integration.backup.test_tester8_findings import cleanup
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.integrity import backup_keys
from tests.integration.physical_support import (
    OWNER,
    connect_port,
    scratch,
    scratch_ports,
    table_state,
)

POLICY = "t9-phys"


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """The ID of a full physical backup of the sandbox primary."""
    yield from primary_full_backup(sandbox, POLICY)


def incremental(src: Source) -> tuple[int, str, str]:
    """``backup run --incremental``: exit code, the new ID (or ''), stderr."""
    result = cli(src.sandbox.config_path, src.env, "backup", "run", src.policy,
                 "--incremental", "--json")  # fmt: skip
    return result.code, str(result.json()["id"]) if result.code == 0 else "", result.err


def restored_state(
    src: Source, backup_id: str, check: Path, port_base: int, db: str
) -> dict[str, Any]:
    """``restore backup_id --datadir check`` (exit 0), started: ``table_state`` of ``db``."""
    src.run("restore", backup_id, "--datadir", str(check), "--owner", OWNER)
    with scratch(check, port_base) as s2, connect_port(src.sandbox, s2.port) as c2:
        return table_state(c2, db)


def differing(held: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The tables whose (checksum, rows) differ: restored, then what the server held."""
    return {k: (held.get(k), expected.get(k)) for k in {*held, *expected}
            if held.get(k) != expected.get(k)}  # fmt: skip


def values(conn: Any, table: str) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT v, COUNT(*) FROM {table} GROUP BY v")
        return dict(cur.fetchall())


def import_into(cur: Any, base: Path, db: str, table: str, files: dict[str, Path]) -> None:
    """``ALTER TABLE db.table DISCARD TABLESPACE``, ``files`` (suffix -> source file) copied
    in as ``table.SUFFIX``, ``ALTER TABLE ... IMPORT TABLESPACE``."""
    cur.execute(f"ALTER TABLE {db}.{table} DISCARD TABLESPACE")
    for suffix, source in files.items():
        shutil.copyfile(source, base / db / f"{table}.{suffix}")
    cur.execute(f"ALTER TABLE {db}.{table} IMPORT TABLESPACE")


def export(cur: Any, base: Path, db: str, table: str, aside: Path) -> dict[str, Path]:
    """``FLUSH TABLES db.table FOR EXPORT``, its ``.ibd`` and ``.cfg`` copied to ``aside``,
    ``UNLOCK TABLES``: the copies, by suffix."""
    cur.execute(f"FLUSH TABLES {db}.{table} FOR EXPORT")
    files = {suffix: aside / f"{table}.{suffix}" for suffix in ("ibd", "cfg")}
    for suffix, path in files.items():
        shutil.copyfile(base / db / f"{table}.{suffix}", path)
    cur.execute("UNLOCK TABLES")
    return files


def assert_restores(
    src: Source, backup_id: str, expected: dict[str, Any], tmp_path: Path, port_base: int, db: str
) -> None:
    """The restore of ``backup_id`` holds ``expected`` (``table_state`` of ``db``)."""
    held = restored_state(src, backup_id, tmp_path / "check", port_base, db)
    assert held == expected, differing(held, expected)


def external_tables(cur: Any, db: str, outside: Path, rows: int, *, inside: bool) -> None:
    """Database ``db`` with ``ext`` (``DATA DIRECTORY = outside``) and, if ``inside``, ``t``
    in the datadir: ``rows`` rows 'base' each."""
    cur.execute(f"CREATE DATABASE {db}")
    cur.execute(f"CREATE TABLE {db}.ext (id INT PRIMARY KEY, v VARCHAR(40)) "
                f"DATA DIRECTORY = '{outside}'")  # fmt: skip
    names = ("ext", "t") if inside else ("ext",)
    if inside:
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(40))")
    for name in names:
        cur.execute(f"INSERT INTO {db}.{name} SELECT seq, 'base' FROM {db}.seq_1_to_{rows}")


def take(src: Source, conn: Any, db: str) -> tuple[str, str, dict[str, Any]]:
    """``backup run --incremental`` (exit 0 or 2): the refusal ('' if none), the new ID
    ('' if refused), and ``table_state`` of ``db`` on the server right after."""
    code, newest, err = incremental(src)
    assert code in (0, 2), err[-1500:]
    if code == 2:
        assert "cannot build on the newest backup" in err, err[-1500:]
    return (err if code == 2 else ""), newest, table_state(conn, db)


def take_after(src: Source, db: str) -> tuple[str, str, dict[str, Any]]:
    """:func:`take` after a restart (the clean shutdown's checkpoint is past all before)."""
    with src.server() as s, connect_port(src.sandbox, s.port) as c:
        return take(src, c, db)


def full_after(src: Source, db: str) -> tuple[str, dict[str, Any]]:
    """After a refusal: a restart, then ``backup run --full`` (at once, it would lack an
    imported table: ``test_a_full_backup_right_after_an_import_restores``); its ID and
    ``table_state`` of ``db``."""
    with src.server() as s, connect_port(src.sandbox, s.port) as c:
        return src.run("backup", "run", src.policy, "--full", "--json"), table_state(c, db)


# -- 1. DISCARD / IMPORT TABLESPACE between a full backup and an incremental ---------------

IMP_POLICY = "t9-imp"


@pytest.mark.parametrize("with_cfg", [True, False], ids=["with-cfg", "without-cfg"])
def test_an_imported_tablespace_reaches_the_incremental(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int, with_cfg: bool
) -> None:
    """A table's tablespace replaced by another table's export (``FLUSH TABLES donor FOR
    EXPORT``: ``.ibd`` and ``.cfg``, or the ``.ibd`` alone) between a full backup and an
    incremental.

    Steps (a scratch ``mariadbd`` without binlog): t of 5,000 rows 'mine', donor (same
    structure, created after t) of 3,000 rows 'donor'; full F; more writes to other tables;
    ``FLUSH TABLES donor FOR EXPORT``, its files copied aside, ``UNLOCK TABLES``; ``ALTER
    TABLE t DISCARD TABLESPACE``, the files copied in as ``t.ibd`` (``t.cfg``), ``ALTER
    TABLE t IMPORT TABLESPACE``; ``backup run --incremental`` N; ``restore N`` (if N is
    refused: a restart, ``backup run --full``, its restore).
    Expected and actual: N refused, exit 2, "page P of t9i/t.ibd is at LSN 0 in the
    datadir, older than LSN L it had when F was copied (a snapshot or a copy of the
    datadir put back)"; the full backup after a restart restores t = 3,000 'donor'.
    MariaDB 10.11's import writes every page of the file at LSN 0 on disk: an incremental
    (pages past F's ``to_lsn`` only) would copy none of them, so the refusal is what keeps
    F's 'mine' rows out of a restore (its wording, a snapshot put back, is wrong here). It
    only holds while t's file is in F's sample: see the two tests below."""
    db = "t9i"
    base = tmp_path / "server"
    aside = tmp_path / "aside"
    aside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, IMP_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for name, rows in (("t", 5000), ("donor", 3000)):
                cur.execute(f"CREATE TABLE {db}.{name} (id INT PRIMARY KEY, v VARCHAR(40))")
                value = "mine" if name == "t" else "donor"
                cur.execute(f"INSERT INTO {db}.{name} SELECT seq, '{value}' "
                            f"FROM {db}.seq_1_to_{rows}")  # fmt: skip
            src.run("backup", "run", IMP_POLICY, "--full", "--json")
            cur.execute(f"CREATE TABLE {db}.other (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"INSERT INTO {db}.other SELECT seq, 'o' FROM {db}.seq_1_to_2000")
            cur.execute(f"FLUSH TABLES {db}.donor FOR EXPORT")
            files = {"ibd": aside / "donor.ibd"}
            shutil.copyfile(base / db / "donor.ibd", files["ibd"])
            if with_cfg:
                files["cfg"] = aside / "donor.cfg"
                shutil.copyfile(base / db / "donor.cfg", files["cfg"])
            cur.execute("UNLOCK TABLES")
            import_into(cur, base, db, "t", files)
            assert values(c, f"{db}.t") == {"donor": 3000}, "imported"
            why, newest, expected = take(src, c, db)
            if why:  # every imported page is at LSN 0 on disk: older than F's
                assert f"of {db}/t.ibd is at LSN 0 in the datadir" in why, why[-1500:]
        if not newest:
            newest, expected = full_after(src, db)
        assert_restores(src, newest, expected, tmp_path, test_port_base, db)
    finally:
        cleanup(src)


OLD_POLICY = "t9-old"


def test_a_table_rolled_back_from_an_older_backup_reaches_the_incremental(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """A "rollback of one table": t's tablespace replaced by t's ``.ibd`` from an older
    physical backup (restored and prepared), then an incremental.

    Steps (a scratch ``mariadbd`` without binlog): t of 5,000 rows 'v1'; full F; ``UPDATE t
    SET v = 'v2'``; incremental N1; ``restore F --datadir OLD``; ``ALTER TABLE t DISCARD
    TABLESPACE``, ``OLD/db/t.ibd`` copied in, ``ALTER TABLE t IMPORT TABLESPACE`` (t holds
    5,000 'v1' again); writes to another table; ``backup run --incremental`` N2; restore
    (if refused: a restart, ``backup run --full``, its restore).
    Expected and actual: N2 refused (exit 2, a page of t at LSN 0), the full backup after
    it restores t = 5,000 'v1'."""
    db = "t9o"
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, OLD_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"INSERT INTO {db}.t SELECT seq, 'v1' FROM {db}.seq_1_to_5000")
            first = src.run("backup", "run", OLD_POLICY, "--full", "--json")
            cur.execute(f"UPDATE {db}.t SET v = 'v2'")
            src.run("backup", "run", OLD_POLICY, "--incremental", "--json")
            old = tmp_path / "old"
            src.run("restore", first, "--datadir", str(old), "--owner", OWNER)
            import_into(cur, base, db, "t", {"ibd": old / db / "t.ibd"})
            assert values(c, f"{db}.t") == {"v1": 5000}, "rolled back"
            cur.execute(f"CREATE TABLE {db}.other (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"INSERT INTO {db}.other SELECT seq, 'o' FROM {db}.seq_1_to_2000")
            _, newest, expected = take(src, c, db)
        if not newest:
            newest, expected = full_after(src, db)
        assert_restores(src, newest, expected, tmp_path, test_port_base, db)
    finally:
        cleanup(src)


# -- 2. tables outside the datadir (DATA DIRECTORY) ----------------------------------------

EXT_POLICY = "t9-ext"


@contextlib.contextmanager
def another_host(outside: Path) -> Iterator[None]:
    """The source's ``DATA DIRECTORY`` out of the way while the body runs: a restore on
    another host, where that path does not exist (what the restore puts there is removed
    at the end)."""
    away = outside.with_name(outside.name + ".away")
    outside.rename(away)
    try:
        yield
    finally:
        shutil.rmtree(outside, ignore_errors=True)
        away.rename(outside)


def ext_restored(
    src: Source, backup_id: str, check: Path, port_base: int, db: str, outside: Path | None
) -> dict[str, Any]:
    """:func:`restored_state`, on another host when ``outside`` is given."""
    if outside is None:
        return restored_state(src, backup_id, check, port_base, db)
    with another_host(outside):
        return restored_state(src, backup_id, check, port_base, db)


def rebuilt_state(conn: Any, db: str, *tables: str) -> dict[str, Any]:
    """``ALTER TABLE ... FORCE`` of each of ``tables`` (a rebuild: a new file where the
    table's own is), then :func:`table_state` of ``db``."""
    with conn.cursor() as cur:
        for name in tables:
            cur.execute(f"ALTER TABLE {db}.{name} FORCE")
    return table_state(conn, db)


def linked(check: Path, rel: str) -> Path:
    """The file the restored datadir's ``rel.isl`` names (asserted to exist, outside)."""
    link = check / f"{rel}.isl"
    assert link.is_file(), sorted(p.name for p in link.parent.iterdir())
    target = Path(link.read_text())
    assert target.is_file() and not target.is_relative_to(check), target
    assert not (check / f"{rel}.ibd").exists()
    return target


@pytest.mark.parametrize("host", ["another-host", "same-host"])
def test_a_table_outside_the_datadir_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int, host: str
) -> None:
    """A table created with ``DATA DIRECTORY='/elsewhere'``: full, incremental, restore
    onto a scratch datadir, on another host (the path absent) or on the same one (the
    source's external file there, with later rows); then the restored table rebuilt.

    Steps (a scratch ``mariadbd`` without binlog): ext (``DATA DIRECTORY`` outside the
    datadir) and t of 4,000 rows 'base'; full F; ``UPDATE ext SET v = 'inc'`` (half);
    incremental N; ``UPDATE ext SET v = 'later'`` (all, after N); server stopped;
    ``restore N --datadir CHECK`` (another host), or on the same host first without, then
    with ``--external-dir ROOT``; a server started on CHECK; ``ALTER TABLE ext FORCE``.
    Expected: on another host, ext's file goes to the path it was created at; on the same
    host, the restore without ``--external-dir`` exits 2 naming the file there, changing
    nothing, and with it the file goes to ``ROOT/db/ext.ibd``; either way CHECK's
    ``ext.isl`` names it, CHECK holds ext as at N (2,000 'base', 2,000 'inc') and t, before
    and after the rebuild; the source's external file untouched.
    Before (restores of 2026-12-05 and earlier kept ext inside CHECK, without ``.isl``):
    the rebuild crashed mariadbd 10.11 (severity: outage of the restored server)."""
    db = "t9e"
    base = tmp_path / "server"
    outside = tmp_path / "outside"
    outside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, EXT_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            external_tables(cur, db, outside, 4000, inside=True)
            external = outside / db / "ext.ibd"
            assert external.is_file(), sorted(map(str, outside.rglob("*")))
            src.run("backup", "run", EXT_POLICY, "--full", "--json")
            cur.execute(f"UPDATE {db}.ext SET v = 'inc' WHERE id % 2 = 0")
            code, newest, err = incremental(src)
            assert code == 0, err[-1500:]
            expected = table_state(c, db)
            cur.execute(f"UPDATE {db}.ext SET v = 'later'")
        live = external.read_bytes()
        check = tmp_path / "check"
        root = tmp_path / "root"
        args = ("restore", newest, "--datadir", str(check), "--owner", OWNER)
        elsewhere = another_host(outside) if host == "another-host" else contextlib.nullcontext()
        try:
            with elsewhere:
                if host == "same-host":
                    refused = cli(sandbox.config_path, src.env, *args)
                    assert refused.code == 2, refused.err[-1500:]
                    assert str(external) in refused.err and "--external-dir" in refused.err
                    assert not check.exists() and not root.exists()
                    assert "restore.prepared" not in refused.err, "refused before any fetch"
                    planned = cli(sandbox.config_path, src.env, *args, "--external-dir",
                                  str(root), "--dry-run", "--json")  # fmt: skip
                    assert planned.code == 0, planned.err[-1500:]
                    shown = planned.json()["external_tables"]
                    assert shown == {f"{db}/ext": str(root / db / "ext.ibd")}, shown
                    src.run(*args, "--external-dir", str(root))
                else:
                    src.run(*args)
                placed = linked(check, f"{db}/ext")
                assert placed == (external if host == "another-host" else root / db / "ext.ibd")
                with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
                    held = table_state(c2, db)
                    again = rebuilt_state(c2, db, "ext", "t")
                assert linked(check, f"{db}/ext").parent == placed.parent
        finally:
            assert external.read_bytes() == live, "the source's file was written"
        assert held == expected, differing(held, expected)
        assert again == expected, differing(again, expected)
    finally:
        cleanup(src)


EXTCOLD_POLICY = "t9-extcold"


@pytest.mark.parametrize("log_bin", [False, True], ids=["binlog-off", "binlog-on"])
def test_a_cold_copy_rollback_of_a_file_outside_the_datadir_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int, log_bin: bool
) -> None:
    """Severity: silent wrong (an incremental and its restore exit 0; the restore holds
    rows the server no longer held). A cold-copy rollback of only a tablespace kept
    outside the datadir (that volume's snapshot put back); the datadir, its redo log and
    its binlog go on.

    Steps (a scratch ``mariadbd``, binlog off or on (in the datadir, not rolled back: its
    check has nothing to see)): ext (``DATA DIRECTORY`` outside the datadir) of 5,000 rows
    'base'; full F; server stopped, ``ext.ibd`` copied, started;
    ``UPDATE ext SET v = 'wrong value'``; incremental N; server stopped, the copy of
    ``ext.ibd`` put back, started (ext holds 5,000 'base'); writes to another table until
    the LSN passes N's ``to_lsn``; ``backup run --incremental``; its restore on another
    host (the external path absent there, see the test above).
    Expected: exit 2 (the file left N's timeline), or a backup whose restore holds ext =
    5,000 'base'.
    Actual: an incremental on N, exit 0; its restore (exit 0) holds ext = 5,000 'wrong
    value'. The sample records ext's pages under ``db/ext.ibd`` (the path in the stream),
    and ``pages_break`` reads ``DATADIR/db/ext.ibd``, which does not exist: skipped. The
    put-back pages are older than N's ``to_lsn`` and are not copied."""
    db = "t9c"
    base = tmp_path / "server"
    outside = tmp_path / "outside"
    outside.mkdir()
    cold = tmp_path / "ext.ibd.cold"
    src = scratch_source(sandbox, full, base, test_port_base, EXTCOLD_POLICY, log_bin=log_bin)
    external = outside / db / "ext.ibd"
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            external_tables(cur, db, outside, 5000, inside=False)
            first = src.run("backup", "run", EXTCOLD_POLICY, "--full", "--json")
        sampled = {p[0] for p in src.manifest(first).consistency["page_sample"]["pages"]}
        assert f"{db}/ext.ibd" in sampled, sorted(sampled)
        subprocess.run(["cp", "-a", str(external), str(cold)], check=True)
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"UPDATE {db}.ext SET v = 'wrong value'")
            newest = src.run("backup", "run", EXTCOLD_POLICY, "--incremental", "--json")
        newest_lsn = int(src.manifest(newest).consistency["to_lsn"])
        subprocess.run(["cp", "-a", str(cold), str(external)], check=True)
        with src.server() as s, connect_port(sandbox, s.port) as c:
            assert values(c, f"{db}.ext") == {"base": 5000}, "rolled back"
            write_past(c, db, newest_lsn)
            _, taken, expected = take(src, c, db)
        if not taken:
            taken, expected = full_after(src, db)
        held = ext_restored(src, taken, tmp_path / "check", test_port_base, db, outside)
        assert held == expected, (newest, differing(held, expected))
    finally:
        cleanup(src)


NEW_POLICY = "t9-new"


@pytest.mark.parametrize("restart", [
    pytest.param(False, id="at-once"),
    pytest.param(True, id="after-a-restart"),
])  # fmt: skip
def test_a_table_created_and_imported_after_the_full_backup_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int, restart: bool
) -> None:
    """The transportable-tablespace workflow MariaDB documents, between a full backup and
    an incremental: ``CREATE TABLE t``, ``DISCARD TABLESPACE``, another table's export
    copied in, ``IMPORT TABLESPACE``.

    Steps (a scratch ``mariadbd`` without binlog): donor of 3,000 rows 'donor'; full F;
    ``FLUSH TABLES donor FOR EXPORT``, ``donor.ibd`` and ``donor.cfg`` copied aside,
    ``UNLOCK TABLES``; ``CREATE TABLE t`` (donor's structure), ``DISCARD``, the files in as
    ``t.ibd``/``t.cfg``, ``IMPORT``; (a restart;) ``backup run --incremental`` N; restore N.
    Expected: N refused (exit 2), or exit 0 and its restore holds t = 3,000 'donor'.
    Actual: N exit 0; its restore (exit 0) has no t.ibd: t's rows are gone, any read of t
    fails with error 194 "Tablespace is missing for a table". Severity: silent wrong (the
    backup and the restore report success; the rows are in no backup). t's file is new,
    so no sample of F can speak for it. At once: mariabackup's redo copy holds the
    ``DISCARD`` (a file delete, seen as "DDL tracking: delete") and no create after, so it
    logs "Warning: We assume the table was dropped during xtrabackup execution and ignore
    the tablespace ./t9n/t.ibd" and exits 0 (seen by hand). After a restart: t.ibd is
    streamed as a ``.delta`` of its header page alone (every page is at LSN 0), and the
    prepare makes no file of it."""
    db = "t9n"
    base = tmp_path / "server"
    aside = tmp_path / "aside"
    aside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, NEW_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.donor (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"INSERT INTO {db}.donor SELECT seq, 'donor' FROM {db}.seq_1_to_3000")
            src.run("backup", "run", NEW_POLICY, "--full", "--json")
            files = export(cur, base, db, "donor", aside)
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(40))")
            import_into(cur, base, db, "t", files)
            assert values(c, f"{db}.t") == {"donor": 3000}, "imported"
            if not restart:
                _, newest, expected = take(src, c, db)
        if restart:
            _, newest, expected = take_after(src, db)
        if not newest:
            newest, expected = full_after(src, db)
        assert_restores(src, newest, expected, tmp_path, test_port_base, db)
    finally:
        cleanup(src)


MANY_POLICY = "t9-many"


@pytest.mark.parametrize("restart", [
    pytest.param(False, id="at-once"),
    pytest.param(True, id="after-a-restart"),
])  # fmt: skip
def test_an_import_into_a_table_the_sample_left_out_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int, restart: bool
) -> None:
    """An import into a table whose file is not in the parent's page sample: the sample
    keeps the 256 tablespace files written last, and this server has 300 tables written
    after t.

    Steps (a scratch ``mariadbd`` without binlog): t of 5,000 rows 'mine', donor of 3,000
    'donor', then 300 tables of one row each; full F; ``FLUSH TABLES donor FOR EXPORT``,
    files aside, ``UNLOCK``; t ``DISCARD``ed, donor's files in, ``IMPORT``;
    (a restart;) ``backup run --incremental`` N; restore N.
    Expected: N refused (exit 2), or exit 0 and its restore holds t = 3,000 'donor'.
    Actual: N exit 0 (no page of t in F's sample to read); its restore (exit 0) holds t =
    5,000 'mine', F's rows, checksum and all (after a restart, and in most runs at once;
    otherwise t is missing, as above). Severity: silent wrong: ``CHECK TABLE`` passes, so
    ``backups verify --restore-test`` cannot tell either. The imported pages are at LSN 0,
    below F's ``to_lsn``: the incremental copies none and the prepare keeps F's."""
    db = "t9m"
    base = tmp_path / "server"
    aside = tmp_path / "aside"
    aside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, MANY_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for name, rows in (("t", 5000), ("donor", 3000)):
                cur.execute(f"CREATE TABLE {db}.{name} (id INT PRIMARY KEY, v VARCHAR(40))")
                value = "mine" if name == "t" else "donor"
                cur.execute(f"INSERT INTO {db}.{name} SELECT seq, '{value}' "
                            f"FROM {db}.seq_1_to_{rows}")  # fmt: skip
            for n in range(300):
                cur.execute(f"CREATE TABLE {db}.m{n} (id INT PRIMARY KEY)")
                cur.execute(f"INSERT INTO {db}.m{n} VALUES (1)")
            first = src.run("backup", "run", MANY_POLICY, "--full", "--json")
            sampled = {p[0] for p in src.manifest(first).consistency["page_sample"]["pages"]}
            assert f"{db}/t.ibd" not in sampled, "t is left out of F's sample"
            files = export(cur, base, db, "donor", aside)
            import_into(cur, base, db, "t", files)
            assert values(c, f"{db}.t") == {"donor": 3000}, "imported"
            if not restart:
                _, newest, expected = take(src, c, db)
        if restart:
            _, newest, expected = take_after(src, db)
        if not newest:
            newest, expected = full_after(src, db)
        assert_restores(src, newest, expected, tmp_path, test_port_base, db)
    finally:
        cleanup(src)


FULL_POLICY = "t9-full"


def persistent_stats_off(cur: Any, db: str) -> None:
    """t without persistent statistics: its import then dirties no page (InnoDB's
    background recalculation would write ``mysql.innodb_table_stats`` some time after,
    which lets the backup's checkpoint pass the import: a race, won or lost by the run)."""
    cur.execute(f"ALTER TABLE {db}.t STATS_PERSISTENT = 0")


def imported_table_setup(cur: Any, base: Path, db: str, aside: Path) -> dict[str, Path]:
    """``db``: t of 5,000 rows 'mine' (no persistent statistics), donor of 3,000 rows
    'donor'; donor's export (``.ibd``, ``.cfg``) copied to ``aside``; its files."""
    cur.execute(f"CREATE DATABASE {db}")
    for name, rows in (("t", 5000), ("donor", 3000)):
        cur.execute(f"CREATE TABLE {db}.{name} (id INT PRIMARY KEY, v VARCHAR(40))")
        value = "mine" if name == "t" else "donor"
        cur.execute(f"INSERT INTO {db}.{name} SELECT seq, '{value}' "
                    f"FROM {db}.seq_1_to_{rows}")  # fmt: skip
    persistent_stats_off(cur, db)
    return export(cur, base, db, "donor", aside)


FULL_POLICY = "t9-full"


@pytest.mark.parametrize("restart", [
    pytest.param(False, id="at-once"),
    pytest.param(True, id="after-a-restart"),
])  # fmt: skip
def test_a_full_backup_right_after_an_import_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int, restart: bool
) -> None:
    """A full backup taken right after an import (what the refusal's hint "take a full
    backup (--full)" asks for), at once or after a restart.

    Steps (a scratch ``mariadbd`` without binlog): t of 5,000 rows 'mine' (without
    persistent statistics), donor of 3,000 rows 'donor'; ``FLUSH TABLES donor FOR
    EXPORT``, files aside, ``UNLOCK``; t ``DISCARD``ed, donor's files in, ``IMPORT``; (a
    restart;) ``backup run --full`` F; restore F.
    Expected: exit 0, the restore holds t = 3,000 'donor'.
    Actual, after a restart: as expected.
    Actual, at once: F exit 0, its restore exit 0 without t.ibd (error 194 "Tablespace is
    missing for a table"). Severity: silent wrong, and the very step the refusal of the
    first test above asks for. mariabackup reads the redo from the last checkpoint; the
    import dirties no page, so InnoDB writes no checkpoint after the ``DISCARD`` (its file
    delete is in every later backup's redo, even after ``--innodb-log-checkpoint-now``),
    and mariabackup skips the file as dropped ("We assume the table was dropped during
    xtrabackup execution and ignore the tablespace", exit 0; by hand, 6 backups in a row).
    With persistent statistics on t, their background recalculation dirties pages some
    time after the import, and a backup soon after loses t or not (4 runs in 5 lost it)."""
    db = "t9f"
    base = tmp_path / "server"
    aside = tmp_path / "aside"
    aside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, FULL_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            files = imported_table_setup(cur, base, db, aside)
            import_into(cur, base, db, "t", files)
            if not restart:
                taken = src.run("backup", "run", FULL_POLICY, "--full", "--json")
                expected = table_state(c, db)
        if restart:
            with src.server() as s, connect_port(sandbox, s.port) as c:
                taken = src.run("backup", "run", FULL_POLICY, "--full", "--json")
                expected = table_state(c, db)
        held = restored_state(src, taken, tmp_path / "check", test_port_base, db)
        assert held == expected, differing(held, expected)
    finally:
        cleanup(src)


VERIFY_POLICY = "t9-verify"
NARROW = {"DATATIER_MYSQL__USER": "t9narrow", "DATATIER_MYSQL__PASSWORD": "t9-narrow-1"}


def test_a_full_backup_that_leaves_out_an_imported_table_fails(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Guard (after the fix of ``test_a_full_backup_right_after_an_import_restores``):
    when no checkpoint can be forced (a backup user without SUPER, which MariaDB documents
    as enough for mariabackup), mariabackup still skips the imported file as dropped. The
    backup must then fail, not succeed without the table.

    Steps: as that test, at once, with a user holding only RELOAD, PROCESS, LOCK TABLES,
    BINLOG MONITOR and SELECT; ``backup run --full``.
    Expected: exit 1 naming ``t9v/t.ibd``, no manifest. Before: exit 0, and the restore had
    no t (error 194); only ``backups verify --restore-test`` told (exit 4)."""
    db = "t9v"
    base = tmp_path / "server"
    aside = tmp_path / "aside"
    aside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, VERIFY_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            user, password = NARROW["DATATIER_MYSQL__USER"], NARROW["DATATIER_MYSQL__PASSWORD"]
            cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
            cur.execute("GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SELECT ON *.* "
                        f"TO '{user}'@'127.0.0.1'")  # fmt: skip
            files = imported_table_setup(cur, base, db, aside)
            import_into(cur, base, db, "t", files)
            result = cli(sandbox.config_path, {**src.env, **NARROW}, "backup", "run",
                         VERIFY_POLICY, "--full", "--json")  # fmt: skip
        assert result.code == 1, result.err[-1500:]
        assert f"mariadb-backup left out {db}/t.ibd" in result.err, result.err[-1500:]
        assert backup_keys(src.store, VERIFY_POLICY) == [], "no manifest, no object left"
    finally:
        cleanup(src)


EXTDDL_POLICY = "t9-extddl"


def test_ddl_on_tables_outside_the_datadir_between_backups_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """DDL on ``DATA DIRECTORY`` tables between a full backup and incrementals: the file
    outside the datadir truncated (created anew), another created, a third dropped and
    created again under the same name elsewhere, one rebuilt.

    Steps (a scratch ``mariadbd`` without binlog): a, b, r (``DATA DIRECTORY`` outside the
    datadir) of 3,000 rows; full F; ``TRUNCATE a`` and 1,000 new rows; ``DROP TABLE b``,
    ``CREATE TABLE b`` in another outside directory, 2,000 rows; ``CREATE TABLE c``
    (outside) of 500 rows; ``ALTER TABLE r FORCE`` and an update; incremental N1; updates
    to a, b and c; incremental N2; restore N2 on another host (both outside paths absent).
    Expected: every incremental exit 0, the restore holds what the server held."""
    db = "t9x"
    base = tmp_path / "server"
    outside, second = tmp_path / "outside", tmp_path / "second"
    outside.mkdir()
    second.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, EXTDDL_POLICY, log_bin=False)

    def create(cur: Any, name: str, where: Path, rows: int) -> None:
        cur.execute(f"CREATE TABLE {db}.{name} (id INT PRIMARY KEY, v VARCHAR(40)) "
                    f"DATA DIRECTORY = '{where}'")  # fmt: skip
        cur.execute(f"INSERT INTO {db}.{name} SELECT seq, '{name}' FROM {db}.seq_1_to_{rows}")

    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for name in ("a", "b", "r"):
                create(cur, name, outside, 3000)
            src.run("backup", "run", EXTDDL_POLICY, "--full", "--json")
            cur.execute(f"TRUNCATE TABLE {db}.a")
            cur.execute(f"INSERT INTO {db}.a SELECT seq, 'again' FROM {db}.seq_1_to_1000")
            cur.execute(f"DROP TABLE {db}.b")
            create(cur, "b", second, 2000)
            create(cur, "c", outside, 500)
            cur.execute(f"ALTER TABLE {db}.r FORCE")
            cur.execute(f"UPDATE {db}.r SET v = 'r2' WHERE id % 3 = 0")
            src.run("backup", "run", EXTDDL_POLICY, "--incremental", "--json")
            for name in ("a", "b", "c"):
                cur.execute(f"UPDATE {db}.{name} SET v = 'n2' WHERE id % 2 = 0")
            newest = src.run("backup", "run", EXTDDL_POLICY, "--incremental", "--json")
            expected = table_state(c, db)
        check = tmp_path / "check"
        with another_host(outside), another_host(second):
            src.run("restore", newest, "--datadir", str(check), "--owner", OWNER)
            assert linked(check, f"{db}/b").parent == second / db
            assert linked(check, f"{db}/c").parent == outside / db
            with scratch(check, test_port_base) as s2, connect_port(sandbox, s2.port) as c2:
                held = table_state(c2, db)
                again = rebuilt_state(c2, db, "a", "b", "c")
        assert held == expected, differing(held, expected)
        assert again == expected, differing(again, expected)
    finally:
        cleanup(src)


SMALL_POLICY = "t9-small"


def test_a_small_tablespace_imported_into_a_big_table_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (the incremental and its restore exit 0; the restored t
    holds rows of F's t under the new root, and is corrupt). An import into a table that
    is in F's sample, of a donor much smaller than it, then ordinary inserts.

    Steps (a scratch ``mariadbd`` without binlog): t of 100,000 rows 'mine' (~220 pages),
    donor of 1,500 rows 'donor' (a few pages); full F (taken again until F's sample of t
    holds, besides pages 2 and 3 (the inode page and the root, always among the last
    written), only pages past donor's file: its "any age" pages are drawn at random, so
    the first F mostly does); ``FLUSH TABLES donor FOR EXPORT``, files aside,
    ``UNLOCK``; t ``DISCARD``ed, donor's files in, ``IMPORT``; 400 rows inserted into t
    (leaves split: the root and the inode page written again); a restart; ``backup run
    --incremental`` N; restore N.
    Expected: N refused (exit 2, as for a donor as big as t), or exit 0 and its restore
    holds t = 1,500 'donor' and 400 'after'.
    Actual: N exit 0; its restore (exit 0) holds t = 1,945 rows: 1,335 'mine' (ids 1 to
    1,335, F's leaves), 210 'donor', 400 'after'; ``CHECK TABLE`` says "The B-tree of
    index PRIMARY is corrupted" (so ``backups verify --restore-test`` would tell, after
    the fact). ``pages_break``: page 0's space id is t's (the import writes it), pages 2
    and 3 were written after F's ``to_lsn`` (pass), every other sampled page lies past the
    end of the imported file ("a shorter file": skipped, never a refusal). The imported
    pages are at LSN 0: N copies only those written since, the prepare keeps F's pages
    under the other numbers."""
    db = "t9s"
    base = tmp_path / "server"
    aside = tmp_path / "aside"
    aside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, SMALL_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            for name, rows in (("t", 100000), ("donor", 1500)):
                cur.execute(f"CREATE TABLE {db}.{name} (id INT PRIMARY KEY, v VARCHAR(40))")
                value = "mine" if name == "t" else "donor"
                cur.execute(f"INSERT INTO {db}.{name} SELECT seq, '{value}' "
                            f"FROM {db}.seq_1_to_{rows}")  # fmt: skip
            donor_pages = (base / db / "donor.ibd").stat().st_size // 16384
            for _ in range(6):
                first = src.run("backup", "run", SMALL_POLICY, "--full", "--json")
                sample = src.manifest(first).consistency["page_sample"]["pages"]
                mine = [p[1] for p in sample if p[0] == f"{db}/t.ibd"]
                if mine and min(set(mine) - {2, 3}) >= donor_pages:
                    break
            else:
                pytest.fail(f"F's sample always held a page of t below {donor_pages}: {mine}")
            files = export(cur, base, db, "donor", aside)
            import_into(cur, base, db, "t", files)
            assert values(c, f"{db}.t") == {"donor": 1500}, "imported"
            cur.execute(f"INSERT INTO {db}.t SELECT seq, 'after' FROM {db}.seq_2001_to_2400")
        _, newest, expected = take_after(src, db)
        if not newest:
            newest, expected = full_after(src, db)
        assert_restores(src, newest, expected, tmp_path, test_port_base, db)
    finally:
        cleanup(src)


EXCH_POLICY = "t9-exch"


@pytest.mark.parametrize("restart", [False, True], ids=["at-once", "after-a-restart"])
def test_an_exchanged_partition_restores(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int, restart: bool
) -> None:
    """``ALTER TABLE p EXCHANGE PARTITION p0 WITH TABLE x`` between a full backup and an
    incremental: two files swap names, keeping their pages (and LSNs below F's
    ``to_lsn``) and space ids.

    Steps (a scratch ``mariadbd`` without binlog): p partitioned by range (p0: ids below
    5,000, p1: the rest) of 8,000 rows 'p', x of 4,000 rows 'x' (ids 1 to 4,000); full F;
    ``EXCHANGE PARTITION p0 WITH TABLE x``; (a restart;) ``backup run --incremental`` N
    (if refused: a restart, ``--full``); restore.
    Expected and actual: the restore holds what the server held (p: 4,000 'x' and 3,000
    'p'; x: 4,999 'p')."""
    db = "t9p"
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, EXCH_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.p (id INT PRIMARY KEY, v VARCHAR(40)) "
                        "PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (5000), "
                        "PARTITION p1 VALUES LESS THAN MAXVALUE)")  # fmt: skip
            cur.execute(f"INSERT INTO {db}.p SELECT seq, 'p' FROM {db}.seq_1_to_8000")
            cur.execute(f"CREATE TABLE {db}.x (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"INSERT INTO {db}.x SELECT seq, 'x' FROM {db}.seq_1_to_4000")
            src.run("backup", "run", EXCH_POLICY, "--full", "--json")
            cur.execute(f"ALTER TABLE {db}.p EXCHANGE PARTITION p0 WITH TABLE {db}.x")
            assert values(c, f"{db}.x") == {"p": 4999}, "exchanged"
            if not restart:
                _, newest, expected = take(src, c, db)
        if restart:
            _, newest, expected = take_after(src, db)
        if not newest:
            newest, expected = full_after(src, db)
        assert_restores(src, newest, expected, tmp_path, test_port_base, db)
    finally:
        cleanup(src)


EXTVERIFY_POLICY = "t9-extverify"


def test_the_restore_test_of_a_backup_with_a_table_outside_the_datadir_passes(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: loud wrong (a good backup reported broken by the routine check, every
    night, on the source's host). ``backups verify ID --restore-test`` on the host of the
    source, which runs, of a backup holding a ``DATA DIRECTORY`` table.

    Steps (a scratch ``mariadbd`` without binlog, running): ext (``DATA DIRECTORY``
    outside the datadir) of 3,000 rows; full F; ``backups verify F --restore-test``.
    Expected: exit 0 (the backup restores, as
    ``test_a_table_outside_the_datadir_restores[another-host]`` shows); the source's
    external file untouched.
    Actual: exit 4: the scratch copy has ``db/ext.ibd`` and ``db/ext.isl`` naming the
    source's file, the scratch server will not open a tablespace found in two places, and
    ``CHECK TABLE`` of ext fails."""
    db = "t9y"
    base = tmp_path / "server"
    outside = tmp_path / "outside"
    outside.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, EXTVERIFY_POLICY, log_bin=False)
    external = outside / db / "ext.ibd"
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            external_tables(cur, db, outside, 3000, inside=False)
            taken = src.run("backup", "run", EXTVERIFY_POLICY, "--full", "--json")
            cur.execute("FLUSH TABLES")
            live = external.read_bytes()
            port = str(free_port(scratch_ports(test_port_base)))
            verified = cli(sandbox.config_path, src.env, "backups", "verify", taken,
                           "--restore-test", "--scratch-port", port,
                           "--scratch-dir", str(tmp_path))  # fmt: skip
            assert external.read_bytes() == live, "the restore test wrote the source's file"
            assert verified.code == 0, verified.err[-1500:]
    finally:
        cleanup(src)


# -- after tester9: the review of the fixes -------------------------------------------------

AGAIN_POLICY = "t9-again"


def test_a_second_import_into_the_same_table_reaches_the_incremental(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """The nightly refresh of a read-mostly table by import, twice, with a full backup
    between: the second import's pages are at LSN 0 like the first's (which F listed), in
    the same file and under the same space id.

    Steps: t imported from donor (3,000 'donor'); full F; donor2 (3,000 'second') exported
    and imported into t; ``backup run --incremental`` N; its restore (if refused: a full
    backup, its restore).
    Expected: N refused (other bytes under LSN 0 than F listed), or its restore holds t =
    3,000 'second'. Before the page digests: N exit 0, its restore held F's 'donor' rows."""
    db = "t9a"
    base = tmp_path / "server"
    aside, aside2 = tmp_path / "aside", tmp_path / "aside2"
    aside.mkdir()
    aside2.mkdir()
    src = scratch_source(sandbox, full, base, test_port_base, AGAIN_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            files = imported_table_setup(cur, base, db, aside)
            import_into(cur, base, db, "t", files)
            src.run("backup", "run", AGAIN_POLICY, "--full", "--json")
            cur.execute(f"CREATE TABLE {db}.donor2 (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"INSERT INTO {db}.donor2 SELECT seq, 'second' FROM {db}.seq_1_to_3000")
            second = export(cur, base, db, "donor2", aside2)
            import_into(cur, base, db, "t", second)
            assert values(c, f"{db}.t") == {"second": 3000}, "imported again"
            why, newest, expected = take(src, c, db)
            if why:
                assert f"{db}/t.ibd: pages at LSN 0 that" in why, why[-1500:]
                newest = src.run("backup", "run", AGAIN_POLICY, "--full", "--json")
        assert_restores(src, newest, expected, tmp_path, test_port_base, db)
    finally:
        cleanup(src)


REBUILD_POLICY = "t9-rebuild"


def test_a_table_rebuilt_while_mariabackup_copies_is_no_left_out_table(
    sandbox: SandboxHandle, full: str, tmp_path: Path, test_port_base: int
) -> None:
    """A rebuild during the copy (``OPTIMIZE TABLE``, as pt-osc's or gh-ost's cut-over):
    mariabackup may skip the old space id as dropped ("ignore the tablespace ./db/t.ibd",
    a reviewer's reading of its source) and copy the new file as ``db/t.new``; the check
    for left-out tables must not fail this good backup. (Here, on 10.11, it passed before
    that check learnt to look for the file in the stream too.)

    Steps: t of 5,000 rows; ``backup run --full`` with mariabackup stopped once its InnoDB
    files are copied (the wrapper of ``test_physical_copy_window.py``), ``OPTIMIZE TABLE t``
    meanwhile; restore.
    Expected: exit 0, the restore holds what the server held."""
    db = "t9r"
    base = tmp_path / "server"
    src = scratch_source(sandbox, full, base, test_port_base, REBUILD_POLICY, log_bin=False)
    try:
        with src.server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute(f"INSERT INTO {db}.t SELECT seq, 'mine' FROM {db}.seq_1_to_5000")

            def rebuild(wc: Any) -> None:
                wc.execute(f"OPTIMIZE TABLE {db}.t")
                wc.fetchall()

            result = backup_while_paused(
                sandbox, s.port, tmp_path, src.env,
                ["backup", "run", REBUILD_POLICY, "--full", "--json"], rebuild,
            )  # fmt: skip
            assert result.code == 0, result.err[-1500:]
            expected = table_state(c, db)
        held = restored_state(src, str(result.json()["id"]), tmp_path / "check",
                              test_port_base, db)  # fmt: skip
        assert held == expected, differing(held, expected)
    finally:
        cleanup(src)
