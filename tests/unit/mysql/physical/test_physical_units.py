"""Physical backup pieces that need no server: the mbstream index (on streams made by the
real ``mbstream -c``), mariabackup's metadata files, datadir refusals, policy settings."""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from datatier.backup.engine import BackupEngine
from datatier.backup.manifest import Manifest
from datatier.backup.policy import load_policy
from datatier.errors import ConfigError, IntegrityFailure, OperationFailed, UsageError
from datatier.mysql.pdump import ParallelDumpEngine
from datatier.mysql.physical.datadir import (
    check_datadir,
    mounts_within,
    resolve_owner,
    unescape_mount,
)
from datatier.mysql.physical.mbstream import StreamIndex
from datatier.mysql.physical.restore import check_prepared
from datatier.mysql.physical.tool import info_uuid, parse_binlog_pos, read_checkpoints

MBSTREAM = shutil.which("mbstream")


INFO = b"uuid = 0cb6e5af-efe7-11f1-af5b-02fc00000001\nname = \n" + b"tool_command = x\n" * 400


@pytest.fixture
def stream(tmp_path: Path) -> bytes:
    """A real mbstream of a small fake datadir: a table, a view, a big file, a top-level file."""
    if MBSTREAM is None:
        pytest.fail("mbstream is not installed (make deps installs mariadb-backup)")
    root = tmp_path / "src"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "orders.frm").write_bytes(b"\xfe\x01" + b"x" * 500)
    (root / "shop" / "orders.ibd").write_bytes(random.Random(1).randbytes(300_000))
    (root / "shop" / "recent.frm").write_bytes(b"TYPE=VIEW\nquery=select 1\n")
    (root / "xtrabackup_checkpoints").write_text("backup_type = full-backuped\n")
    (root / "xtrabackup_info").write_bytes(INFO)
    (root / "empty").mkdir()
    (root / "empty" / "db.opt").write_text("default-character-set=utf8mb4\n")
    files = ["shop/orders.frm", "shop/orders.ibd", "shop/recent.frm", "xtrabackup_checkpoints",
             "xtrabackup_info", "empty/db.opt"]  # fmt: skip
    return subprocess.run(
        [MBSTREAM, "-c", *files], cwd=root, capture_output=True, check=True
    ).stdout


def test_the_index_learns_files_sizes_and_views_in_any_piece_size(stream: bytes) -> None:
    rng = random.Random(7)
    for largest in (1, 13, 4096, 1 << 20):
        index = StreamIndex()
        pos = 0
        while pos < len(stream):
            step = rng.randint(1, largest)
            index.feed(stream[pos : pos + step])
            pos += step
        index.finish()
        assert index.total == len(stream)
        assert index.files["shop/orders.ibd"].size == 300_000
        assert index.tables() == {
            "empty": {"tables": [], "views": []},
            "shop": {"tables": ["orders"], "views": ["recent"]},
        }
        assert index.has("xtrabackup_checkpoints")
        assert index.kept("xtrabackup_info") == INFO, "kept whole: the backup's uuid"
        assert info_uuid(INFO.decode()) == "0cb6e5af-efe7-11f1-af5b-02fc00000001"
        assert len(index.files["shop/orders.ibd"].head) == len(b"TYPE=VIEW"), "never more"
        assert index.kept("absent") is None


@pytest.mark.parametrize("cut", [1, 5, 100, 3000])
def test_a_truncated_stream_is_refused(stream: bytes, cut: int) -> None:
    index = StreamIndex()
    index.feed(stream[:-cut])
    with pytest.raises(OperationFailed, match=r"truncated|before .* file"):
        index.finish()


def test_garbage_and_an_empty_stream_are_refused(stream: bytes) -> None:
    index = StreamIndex()
    with pytest.raises(OperationFailed, match="not an mbstream"):
        index.feed(b"GARBAGE!" + stream)
    with pytest.raises(OperationFailed, match="empty stream"):
        StreamIndex().finish()


def test_mariabackup_metadata_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "xtrabackup_checkpoints"
    path.write_text("backup_type = incremental\nfrom_lsn = 10\nto_lsn = 20\nlast_lsn = 25\n")
    got = read_checkpoints(path)
    assert (got.backup_type, got.from_lsn, got.to_lsn, got.last_lsn) == ("incremental", 10, 20, 25)
    path.write_text("backup_type = full\n")
    with pytest.raises(OperationFailed, match="cannot read xtrabackup_checkpoints"):
        read_checkpoints(path)
    info = (
        "binlog_pos = filename 'b-bin.000003', position '4711', "
        "GTID of the last change '0-1-9,1-2-3'"
    )
    pos = parse_binlog_pos(info)
    assert pos is not None and (pos.file, pos.position, pos.gtid) == (
        "b-bin.000003",
        4711,
        "0-1-9,1-2-3",
    )
    assert parse_binlog_pos("binlog_pos = \n") is None


def test_datadir_refusals_change_nothing(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "ibdata1").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"is not empty .*ibdata1"):
        check_datadir(busy, 1, force=False)
    check_datadir(busy, 1, force=True)  # replacing is what --force asks for
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        check_datadir(file, 1, force=True)
    with pytest.raises(UsageError, match="not enough space"):
        check_datadir(tmp_path / "new", 1 << 60, force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "file"]
    assert [p.name for p in busy.iterdir()] == ["ibdata1"]


def test_force_never_replaces_a_directory_that_is_not_a_datadir(tmp_path: Path) -> None:
    """``--datadir ~ --force`` (a slip for ``~/db``) would have deleted the home directory:
    only a datadir's contents (or our own leftovers, or a fresh volume's lost+found) go."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / "notes.txt").write_text("keep me")
    (home / ".datatier-restore-x").mkdir()
    refusal = r"not look like a MariaDB datadir .*2 entries: \.ssh, notes\.txt\), and --force"
    with pytest.raises(UsageError, match=refusal) as caught:
        check_datadir(home, 1, force=True)
    assert "check the path" in (caught.value.hint or "")
    assert sorted(p.name for p in home.iterdir()) == [".datatier-restore-x", ".ssh", "notes.txt"]
    for kept in ("ibdata1", "mysql/db.frm", "aria_log_control"):
        datadir = tmp_path / f"d-{kept.replace('/', '-')}"
        (datadir / kept).parent.mkdir(parents=True, exist_ok=True)
        (datadir / kept).write_bytes(b"x")
        (datadir / "other").write_text("x")
        check_datadir(datadir, 1, force=True)
    # a mark of the wrong kind: /var/lib (mysql/ is a datadir), /etc (mysql/ holds my.cnf),
    # a directory named ibdata1
    for name, wrong in (("var_lib", "mysql/ibdata1"), ("etc", "mysql/my.cnf"), ("d", "ibdata1/x")):
        parent = tmp_path / name
        (parent / wrong).parent.mkdir(parents=True)
        (parent / wrong).write_text("x")
        (parent / "other").write_text("x")
        with pytest.raises(UsageError, match="not look like a MariaDB datadir"):
            check_datadir(parent, 1, force=True)
    volume = tmp_path / "volume"
    (volume / "lost+found").mkdir(parents=True)
    (volume / ".datatier-restore-old").mkdir()
    check_datadir(volume, 1, force=True)


def test_owner_is_named_or_taken_from_the_directory(tmp_path: Path) -> None:
    st = tmp_path.stat()
    assert (resolve_owner(tmp_path).uid, resolve_owner(tmp_path).gid) == (st.st_uid, st.st_gid)
    with pytest.raises(UsageError, match="no such user"):
        resolve_owner(tmp_path, "no-such-user-here")


def test_policy_settings_for_physical_backups(tmp_path: Path) -> None:
    path = tmp_path / "phys.toml"
    path.write_text(
        'engine = "mariabackup"\nfull_every_days = 7\n[source]\nnode = "primary"\n'
        'datadir = "/var/lib/mysql"\n'
    )
    policy = load_policy(path, "file:///tmp/x")
    assert policy.spec.full_every_days == 7 and policy.spec.source.datadir == "/var/lib/mysql"
    for source in ("", 'nodes = ["replica1"]', 'node = "any-replica"'):
        path.write_text(f'engine = "mariabackup"\n[source]\n{source}\n')
        with pytest.raises(ConfigError, match=r"source.node.*one node on this host"):
            load_policy(path, "file:///tmp/x")
    path.write_text('engine = "mariabackup"\nfull_every_days = -1\n[source]\nnode = "p"\n')
    with pytest.raises(ConfigError, match="full_every_days"):
        load_policy(path, "file:///tmp/x")


def test_a_logical_engine_refuses_an_incremental() -> None:
    engine: BackupEngine = ParallelDumpEngine.__new__(ParallelDumpEngine)
    engine.choose(None)
    engine.choose(False)
    with pytest.raises(UsageError, match="takes full backups only"):
        engine.choose(True)


def test_mounts_within_reads_the_kernel_table_with_its_escapes(tmp_path: Path) -> None:
    """Only mount points strictly below DIR count (DIR itself is the usual dedicated
    volume); the table's octal escapes are undone, so a name with a space still matches."""
    datadir = tmp_path / "data dir"
    (datadir / "vol 1").mkdir(parents=True)
    escaped = str(datadir).replace(" ", "\\040")
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        f"40 22 8:2 / {escaped} rw - ext4 /dev/sdb1 rw\n"
        f"41 40 0:5 / {escaped}/vol\\0401 rw - tmpfs none rw\n"
        f"42 22 0:6 / {escaped}2 rw - tmpfs none rw\n"  # a sibling sharing the prefix
        "truncated line\n"
    )
    assert mounts_within(datadir, table) == [datadir / "vol 1"]
    assert mounts_within(datadir, tmp_path / "absent") == []
    assert unescape_mount("a\\134b\\012c\\9") == "a\\b\nc\\9"


def test_check_prepared_logs_a_binlog_position_past_the_backups_and_refuses_a_half_prepare(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """InnoDB's binlog position past the manifest's is logged: as the old position when it
    is not past where the source's datadir was restored at, else with both readings (after
    RESET MASTER, tester8). A prepare that left the backup unapplied, or deltas, is exit 4."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "xtrabackup_checkpoints").write_text(
        "backup_type = log-applied\nfrom_lsn = 0\nto_lsn = 9000\nlast_lsn = 9000\n"
    )
    (data / "xtrabackup_binlog_pos_innodb").write_text("./db-bin.000001\t5000\n")

    def manifest(source: Mapping[str, object]) -> Manifest:
        return Manifest(
            policy="db", backup_id="20261204T000000Z-aaaa", engine="mariabackup",
            tool_version="test", started_at="2026-12-04T00:00:00+00:00",
            finished_at="2026-12-04T00:01:00+00:00", source=dict(source),
            consistency={"binlog_file": "db-bin.000001", "binlog_pos": 1200},
            tables=[], objects=[],
        )  # fmt: skip

    def events(source: Mapping[str, object]) -> list[str]:
        caplog.clear()
        with caplog.at_level("WARNING", logger="datatier"):
            check_prepared(data, manifest(source))
        return [r.getMessage() for r in caplog.records]

    assert events({}) == ["restore.binlog_position_ahead"]
    at = {"restored_binlog": {"file": "db-bin.000001", "pos": 5000}}
    assert events(at) == ["restore.old_binlog_position"]
    for other in (
        {"file": "db-bin.000001", "pos": 4999},
        {"file": "db-bin.000002", "pos": 9e9},
        {"file": "db-bin.000001", "pos": "junk"},  # a manifest that lies: read, never raised
    ):
        assert events({"restored_binlog": other}) == ["restore.binlog_position_ahead"]
    (data / "xtrabackup_binlog_pos_innodb").write_text("./db-bin.000001\t1200\n")
    assert events({}) == [], "at the backup's point"
    (data / "xtrabackup_binlog_pos_innodb").write_text("./db-bin.000002\t9\n")
    assert events({}) == [], "another file: not comparable"
    (data / "x.ibd.delta").write_bytes(b"")
    with pytest.raises(IntegrityFailure, match="unapplied deltas"):
        check_prepared(data, manifest({}))
    (data / "xtrabackup_checkpoints").write_text(
        "backup_type = incremental\nfrom_lsn = 0\nto_lsn = 9000\nlast_lsn = 9000\n"
    )
    with pytest.raises(IntegrityFailure, match="prepare left the backup 'incremental'"):
        check_prepared(data, manifest({}))


def test_a_server_on_a_copy_takes_only_the_page_size_and_key_settings_of_backup_my_cnf(
    tmp_path: Path,
) -> None:
    """mariabackup writes ``innodb_checksum_algorithm=crc32`` whatever the server used; a
    scratch server taking it would create tables in another format. It needs the page size
    and the key management plugin with its options (tester10), as written (quotes, a key
    file's password: into a private file, never onto a command line)."""
    from datatier.mysql.physical.tool import server_settings

    (tmp_path / "backup-my.cnf").write_text(
        "# generated\n[mysqld]\ninnodb_checksum_algorithm=crc32\ninnodb_page_size=4096\n"
        'plugin_dir="/opt/my plugins/"\nplugin_load=file_key_management.so\n'
        "file_key_management_filename = /etc/k.txt\nfile-key-management-filekey=secret\n"
        "innodb_undo_tablespaces=0\nskip_flag\n[client]\ninnodb_page_size=1\n"
    )
    assert server_settings(tmp_path) == (
        '[mysqld]\ninnodb_page_size=4096\nplugin_dir="/opt/my plugins/"\n'
        "plugin_load=file_key_management.so\nfile_key_management_filename = /etc/k.txt\n"
        "file-key-management-filekey=secret\n"
    )
    assert server_settings(tmp_path / "none") == "[mysqld]\n"


def test_missing_key_file_names_the_key_file_backup_my_cnf_names_when_unreadable(
    tmp_path: Path,
) -> None:
    from datatier.mysql.physical.tool import missing_key_file

    key = tmp_path / "k ey.txt"
    cnf = tmp_path / "backup-my.cnf"
    for line in (
        f"file_key_management_filename = '{key}'",
        f'loose-file-key-management-filename="{key}"  # quoted',
        f"file_key_management_filename={key}   # a comment",
        "file_key_management_filename=k ey.txt",  # relative: the datadir's
        f"file_key_management_filename=/nowhere\nfile_key_management_filename={key}",  # last
    ):
        cnf.write_text(f"[client]\nfile_key_management_filename=/nowhere\n[mysqld]\n{line}\n")
        assert missing_key_file(tmp_path) == key, line
        key.write_text("1;" + "a1" * 32 + "\n")
        assert missing_key_file(tmp_path) is None, line
        key.unlink()
    password = tmp_path / "filekey"
    key.write_text("1;" + "a1" * 32 + "\n")
    cnf.write_text(
        f"[mysqld]\nfile_key_management_filename={key}\n"
        f"file_key_management_filekey=FILE:{password}\n"
    )
    assert missing_key_file(tmp_path) == password
    password.write_text("secret\n")
    assert missing_key_file(tmp_path) is None
    cnf.write_text(f"[mysqld]\nfile_key_management_filename={key}\nfile_key_management_filekey=s\n")
    assert missing_key_file(tmp_path) is None  # a password given inline: no file to read
    cnf.write_text("[mysqld]\n# file_key_management_filename=/x\ninnodb_page_size=16384\n")
    assert missing_key_file(tmp_path) is None  # no encryption: nothing needed
    assert missing_key_file(tmp_path / "none") is None
