"""MySQL backup -> S3 -> restore on the sandbox's real MariaDB and S3 server.

Hard cases must round-trip exactly: tables without a primary key, generated columns,
4-byte UTF-8, binary data, zero dates, identifiers with backticks, spaces and unicode,
plus views, triggers, routines and events. Data is compared with CHECKSUM TABLE on the
source and on the restored copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from datatier.backup.engine import RestoreOptions
from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.restore import find_backup, locate_backup, restore_backup
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.mysql.bundle_frames import BUNDLE_HEAD_BYTES, is_framed_bundle
from tests.integration.conftest import SandboxHandle, q
from tests.integration.mysql.test_restore_bundle_frames import old_bundles

DB = "rt ñ`db"  # space, backtick, non-ASCII (identifiers are 3-byte UTF-8 at most)
QDB = "`rt ñ``db`"

SCHEMA = [
    "CREATE TABLE plain (id INT PRIMARY KEY, name VARCHAR(64), amount DECIMAL(30,10), "
    "f DOUBLE, flags BIT(8), kind ENUM('a','b','c'), tags SET('x','y','z'), doc JSON)",
    "CREATE TABLE `no pk` (a INT, b VARCHAR(20))",
    "CREATE TABLE gen (id INT PRIMARY KEY, price INT, qty INT, "
    "total INT AS (price * qty) STORED, label VARCHAR(40) AS (CONCAT('#', id)) VIRTUAL)",
    "CREATE TABLE `we``ird tab☃` (`naïve col` VARCHAR(20) PRIMARY KEY, `sp ace` TEXT) "
    "DEFAULT CHARSET=utf8mb4",
    "CREATE TABLE bin (id INT PRIMARY KEY, b BLOB, vb VARBINARY(300), fb BINARY(4))",
    "CREATE TABLE dates (id INT PRIMARY KEY, d DATE, dt DATETIME(6), ts TIMESTAMP NULL, "
    "t TIME(3), y YEAR)",
    "CREATE TABLE empty_one (id INT PRIMARY KEY)",
    "CREATE VIEW big_plain AS SELECT id, name FROM plain WHERE id > 100",
    "CREATE TRIGGER gen_bi BEFORE INSERT ON gen FOR EACH ROW SET NEW.qty = GREATEST(NEW.qty, 0)",
    "CREATE PROCEDURE count_plain(OUT n INT) SELECT COUNT(*) INTO n FROM plain",
    "CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
    "CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM `no pk` WHERE a < 0",
]
BASE_TABLES = ["plain", "no pk", "gen", "we`ird tab☃", "bin", "dates", "empty_one"]


def fill(cur: Any) -> None:
    cur.execute("SET SESSION sql_mode = ''")  # allow zero dates like legacy apps do
    rows = [
        (i, f"name {i} 'quoted' \\ back\nline", f"{i}.0123456789", i / 3, i % 256,
         "abc"[i % 3], "x,z" if i % 2 else "", json.dumps({"i": i, "s": "ü😀"}))
        for i in range(1, 20001)
    ]  # fmt: skip
    cur.executemany("INSERT INTO plain VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", rows)
    cur.executemany("INSERT INTO `no pk` VALUES (%s,%s)", [(1, "dup"), (1, "dup"), (None, None)])
    cur.executemany("INSERT INTO gen (id, price, qty) VALUES (%s,%s,%s)", [(1, 5, 3), (2, 7, -1)])
    cur.executemany(
        "INSERT INTO `we``ird tab☃` VALUES (%s,%s)",
        [("😀 emoji", "𝄞 music"), ("back`tick", "semi;colon\n-- not a comment")],
    )
    every_byte = bytes(range(256))
    cur.executemany(
        "INSERT INTO bin VALUES (%s,%s,%s,%s)",
        [(1, every_byte * 40, every_byte, b"\x00\n'\\"), (2, b"", b"", b"\x00\x00\x00\x00")],
    )
    cur.execute(
        "INSERT INTO dates VALUES (1, '0000-00-00', '0000-00-00 00:00:00', NULL, '-838:59:59', 0),"
        "(2, '1969-07-20', '2038-01-19 03:14:08.123456', '2001-02-03 04:05:06', '12:00:00.5', 2155)"
    )


@pytest.fixture(scope="module")
def tricky(sandbox: SandboxHandle) -> Iterator[str]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {QDB}")
        cur.execute(f"CREATE DATABASE {QDB} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cur.execute(f"USE {QDB}")
        for statement in SCHEMA:
            cur.execute(statement)
        fill(cur)
    sandbox.wait_replicated()
    sandbox.write_policy(
        "rt-tricky",
        'engine = "mysql"\nchunk_mb = 1\n[source]\nnode = "replica1"\n'
        f"databases = [{json.dumps(DB)}]\n",
    )
    yield DB


def checksums(sandbox: SandboxHandle, database: str, node: str = "primary") -> dict[str, Any]:
    with sandbox.connect(node) as conn, conn.cursor() as cur:
        found = {}
        for table in BASE_TABLES:
            cur.execute(f"CHECKSUM TABLE {q(database)}.{q(table)} EXTENDED")
            found[table] = cur.fetchone()[1]
            cur.execute(f"SELECT COUNT(*) FROM {q(database)}.{q(table)}")
            found[f"{table}#rows"] = cur.fetchone()[0]
        return found


def definitions(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA=%s ORDER BY 1",
            (database,),
        )
        tables = cur.fetchall()
        cur.execute(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION "
            "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s ORDER BY 1",
            (database,),
        )
        routines = cur.fetchall()
        cur.execute(
            "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA=%s",
            (database,),
        )
        triggers = cur.fetchall()
        cur.execute(
            "SELECT EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS "
            "WHERE EVENT_SCHEMA=%s",
            (database,),
        )
        events = cur.fetchall()
        cur.execute(
            "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS "
            "WHERE TABLE_SCHEMA=%s",
            (database,),
        )
        views = cur.fetchall()
    return {
        "tables": tables,
        "routines": routines,
        "triggers": triggers,
        "events": events,
        "views": [(v[0], v[1].replace(f"{q(database)}.", "")) for v in views],
    }


def drop(sandbox: SandboxHandle, *databases: str) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for database in databases:
            cur.execute(f"DROP DATABASE IF EXISTS {q(database)}")


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle, tricky: str) -> Manifest:
    loaded = load(str(sandbox.config_path), environ={})
    return run_backup(loaded, load_policy(loaded, "rt-tricky"))


def test_manifest_records_consistency_point_tables_and_objects(
    sandbox: SandboxHandle, backup: Manifest
) -> None:
    assert backup.engine == "mysql"
    assert backup.source["node"] == "replica1" and backup.source["read_only"] is True
    assert backup.consistency["binlog_file"].startswith("replica1-bin.")
    assert backup.consistency["binlog_pos"] > 0
    assert backup.consistency["gtid_pos"].startswith("0-1-")
    rows = {t.name: t.rows for t in backup.tables}
    assert rows["plain"] == 20000 and rows["no pk"] == 3 and rows["empty_one"] == 0
    kinds = {o.kind for o in backup.objects}
    assert {"database", "schema", "data", "triggers", "routines", "events", "views"} <= kinds
    plain_parts = [o for o in backup.objects if o.table == "plain" and o.kind == "data"]
    assert len(plain_parts) >= 2, "chunk_mb = 1 must split the 20000-row table"
    assert sum(o.rows for o in plain_parts) == 20000
    loaded = load(str(sandbox.config_path), environ={})
    from datatier.backup.stores import store_for

    store = store_for(backup.options["store"], loaded.config)
    stored = store.head(manifest_key(backup.policy, backup.backup_id))
    assert stored.storage_class == "STANDARD"
    times = [store.head(o.key).last_modified for o in backup.objects]
    assert None not in times
    last_data = max(t for t in times if t is not None)
    assert stored.last_modified is not None and stored.last_modified >= last_data


def test_restore_with_rename_round_trips_every_hard_case(
    sandbox: SandboxHandle, tricky: str, backup: Manifest
) -> None:
    copy = "rt copy ✓"
    drop(sandbox, copy)
    loaded = load(str(sandbox.config_path), environ={})
    catalog, manifest = locate_backup(loaded, backup.backup_id)
    options = RestoreOptions(target="primary", renames={DB: copy})
    report = restore_backup(loaded, manifest, catalog, options)
    assert report.details["tables"] == len(BASE_TABLES)
    assert checksums(sandbox, copy) == checksums(sandbox, DB)
    assert definitions(sandbox, copy) == definitions(sandbox, DB)
    drop(sandbox, copy)


def test_restore_refuses_non_empty_target_and_changes_nothing(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    before = checksums(use_sandbox_config, DB)
    assert main(["restore", backup.backup_id]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--force" in err
    assert checksums(use_sandbox_config, DB) == before


def test_restore_force_replaces_tables(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    copy = "rt_force"
    drop(sandbox, copy)
    assert (
        main(["restore", backup.backup_id, "--rename", f"{DB}={copy}", "--tables", f"{DB}.gen"])
        == 0
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"UPDATE {copy}.gen SET price = 999")
    assert (
        main(["restore", backup.backup_id, "--rename", f"{DB}={copy}", "--tables", f"{DB}.gen"])
        == 2
    )
    assert (
        main(
            [
                "restore",
                backup.backup_id,
                "--rename",
                f"{DB}={copy}",
                "--tables",
                f"{DB}.gen",
                "--force",
                "--jobs",
                "1",
            ]
        )
        == 0
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT GROUP_CONCAT(price ORDER BY id) FROM {copy}.gen")
        assert cur.fetchone()[0] == "5,7"
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (copy,))
        assert cur.fetchone()[0] == 1, "--tables restores only the named table"
    drop(sandbox, copy)


@pytest.mark.parametrize("old", [False, True], ids=["format1-bundles", "older-bundles"])
def test_objects_load_by_hand_with_zstd_and_the_stock_client(
    sandbox: SandboxHandle, backup: Manifest, tmp_path: Path, old: bool
) -> None:
    """The README's by-hand path: zstd -d each object, pipe to `mariadb DB` in order; for
    bundles of this release (every statement framed) and as written before."""
    loaded = load(str(sandbox.config_path), environ={})
    if old:
        with pytest.MonkeyPatch.context() as patch:
            old_bundles(patch)
            backup = run_backup(loaded, load_policy(loaded, "rt-tricky"))
    _, store = find_backup(loaded, backup.backup_id)
    bundles = [o for o in backup.objects if o.kind == "bundle"]
    assert bundles, "small tables are bundled"
    head = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(b"".join(store.iter_read(bundles[0].key)))
    )
    assert is_framed_bundle(head[:BUNDLE_HEAD_BYTES]) is not old
    copy = "rt_by_hand"
    drop(sandbox, copy)
    cfg = loaded.config.mysql
    node = cfg.nodes["primary"]
    cnf = tmp_path / "client.cnf"
    cnf.write_text(
        f"[client]\nhost={node.host}\nport={node.port}\nuser={cfg.user}\n"
        f"password={cfg.password.reveal()}\n"
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {copy}")
    order = ["schema", "bundle", "data", "triggers", "routines", "events", "viewstubs", "views"]
    for kind in order:
        for obj in (o for o in backup.objects if o.kind == kind):
            path = tmp_path / "obj.sql.zst"
            path.write_bytes(b"".join(store.iter_read(obj.key)))
            sql = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
            subprocess.run(
                ["mariadb", f"--defaults-file={cnf}", copy],
                input=sql,
                capture_output=True,
                check=True,
            )
    assert checksums(sandbox, copy) == checksums(sandbox, DB)
    drop(sandbox, copy)


def test_corrupt_or_truncated_object_exits_4_and_applies_nothing(
    use_sandbox_config: SandboxHandle, tricky: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    for damage in ("corrupt", "truncate"):
        manifest = run_backup(loaded, load_policy(loaded, "rt-tricky"))
        _, store = find_backup(loaded, manifest.backup_id)
        victim = next(o for o in manifest.objects if o.table == "plain" and o.kind == "data")
        data = b"".join(store.iter_read(victim.key))
        bad = data[: len(data) // 2] if damage == "truncate" else bytes([data[0] ^ 1]) + data[1:]
        store.put_bytes(victim.key, bad)
        copy = f"rt_{damage}"
        drop(sandbox, copy)
        assert main(["restore", manifest.backup_id, "--rename", f"{DB}={copy}"]) == 4
        err = capsys.readouterr().err
        assert victim.key in err
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (copy,)
            )
            assert cur.fetchone()[0] == 0, "nothing may be applied before every object checks out"


def test_unknown_and_malformed_backup_ids_exit_2(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restore", "20200101T000000Z-dead"]) == 2
    assert "no backup 20200101T000000Z-dead" in capsys.readouterr().err
    assert main(["restore", "latest; DROP TABLE x"]) == 2
    assert "is not a backup ID" in capsys.readouterr().err


def test_policy_with_a_typo_exits_2_naming_the_key(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    path = use_sandbox_config.write_policy(
        "rt-typo", 'engine = "mysql"\n[source]\nnode = "replica1"\n[retention]\nkeep_lsat = 3\n'
    )
    try:
        assert main(["backup", "run", "rt-typo"]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "retention.keep_lsat" in err and "unknown key" in err
    finally:
        path.unlink()


def test_unknown_policy_and_wrong_bucket(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backup", "run", "no-such-policy"]) == 2
    assert "no backup policy 'no-such-policy' in " in capsys.readouterr().err
    path = use_sandbox_config.write_policy(
        "rt-nobucket",
        'engine = "mysql"\nstore = "s3://no-such-bucket-here/x"\n[source]\nnode = "replica1"\n',
    )
    try:
        assert main(["backup", "run", "rt-nobucket"]) == 2  # a config error, not unreachable
        err = capsys.readouterr().err
        assert "S3 bucket 'no-such-bucket-here' does not exist" in err
        assert "provision apply --only bucket" in err
    finally:
        path.unlink()


def test_a_wrong_bucket_is_reported_before_an_engine_error(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store is checked while the engine starts (issue 17): when both fail, the store's
    error is the one reported, as when the check came first; nothing is written."""
    path = use_sandbox_config.write_policy(
        "rt-nobucket-nodb",
        'engine = "mysql"\nstore = "s3://no-such-bucket-here/x"\n[source]\nnode = "replica1"\n'
        'databases = ["no_such_database_here"]\n',
    )
    try:
        assert main(["backup", "run", "rt-nobucket-nodb"]) == 2  # the bucket: a config error
        err = capsys.readouterr().err
        assert "S3 bucket 'no-such-bucket-here' does not exist" in err
        assert "no_such_database_here" not in err
        assert main(["backup", "run", "rt-nobucket-nodb", "--dry-run"]) == 2
        assert "S3 bucket 'no-such-bucket-here' does not exist" in capsys.readouterr().err
    finally:
        path.unlink()


def test_dump_engine_object_reads_back_as_plain_sql(
    sandbox: SandboxHandle, backup: Manifest
) -> None:
    loaded = load(str(sandbox.config_path), environ={})
    _, store = find_backup(loaded, backup.backup_id)
    schema = next(o for o in backup.objects if o.kind == "schema" and o.table == "plain")
    text = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(b"".join(store.iter_read(schema.key)))
    )
    assert b"CREATE TABLE `plain`" in text
    assert b"USE " not in text, "objects must not pin a database (that is how --rename works)"
    assert b"SET NAMES utf8mb4" in text


def test_no_binlog_restore_stays_on_the_target(
    use_sandbox_config: SandboxHandle, backup: Manifest
) -> None:
    sandbox = use_sandbox_config
    copy = "rt_nobinlog"
    drop(sandbox, copy)
    sandbox.wait_replicated()
    args = ["restore", backup.backup_id, "--rename", f"{DB}={copy}", "--tables", f"{DB}.gen"]
    assert main([*args, "--no-binlog"]) == 0
    sandbox.wait_replicated()
    for node, expected in (("primary", 1), ("replica1", 0)):
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (copy,)
            )
            assert cur.fetchone()[0] == expected, node
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute(f"DROP DATABASE {copy}")


def test_verify_restore_test_passes_then_catches_data_that_differs(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    assert main(["backups", "verify", backup.backup_id, "--restore-test", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] and doc["restore_test"]["tables"] == len(backup.tables)

    # A consistent but wrong backup: one row changed in a data object whose checksum and
    # size are updated in the manifest. Checksums pass; only the restore test can tell.
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "rt-tricky"))
    _, store = find_backup(loaded, manifest.backup_id)
    index, victim = next(
        (i, o)
        for i, o in enumerate(manifest.objects)
        if o.kind in ("data", "bundle") and "gen" in o.table_names()  # gen is small: bundled
    )
    sql = (
        zstandard.ZstdDecompressor()
        .decompressobj()
        .decompress(b"".join(store.iter_read(victim.key)))
    )
    assert b"(1,5,3)," in sql, "generated columns are not dumped (the server recomputes them)"
    forged = zstandard.ZstdCompressor().compress(sql.replace(b"(1,5,3),", b"(1,6,3),"))
    store.put_bytes(victim.key, forged)
    manifest.objects[index] = dataclasses.replace(
        victim, size=len(forged), sha256=hashlib.sha256(forged).hexdigest()
    )
    store.put_bytes(manifest_key(manifest.policy, manifest.backup_id), manifest.encode())
    assert main(["backups", "verify", manifest.backup_id]) == 0
    capsys.readouterr()
    assert main(["backups", "verify", manifest.backup_id, "--restore-test"]) == 4
    err = capsys.readouterr().err
    assert f"{DB}.gen" in err and "differs" in err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'dtv%%'"
        )
        assert cur.fetchone()[0] == 0, "scratch databases are dropped even on failure"
