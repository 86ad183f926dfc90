"""Small tables written together in bundle objects (:mod:`datatier.mysql.pdump`), on the
real sandbox: definitions whose comments, defaults and names look like delimiters, client
commands or dump text, binary values, an empty table and one with a trigger all come back
exactly; ``--tables`` loads one section out of a bundle and nothing else; a damaged bundle
stops the restore before anything is applied."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import BUNDLE_FORMAT_VERSION, Manifest
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle, q

DB = "bundle;db"
NAMES = [
    "plain",
    "DELIMITER ;",
    "semi;colon",
    "new\nline",
    "back`tick",
    "*/ end",
    "-- dash",
    "\\N",
    "empty",
    "with trigger",
    "Plain",  # differs from plain only by case
    "数据",
]
COMMENT = "x';\nDELIMITER $$\nDROP TABLE plain;\n/* ;; */ \\\\ -- end"
BLOB = bytes(range(256)) + b"';\nDELIMITER ;\n\x00\x1a\\"
COPIES = ("bundle copy", "bundle_one", "bundle_bad")


@pytest.fixture(scope="module")
def tables(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (DB, *COPIES):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
        cur.execute(f"CREATE DATABASE {q(DB)}")
        cur.execute(f"USE {q(DB)}")
        for i, name in enumerate(NAMES):
            cur.execute(
                f"CREATE TABLE {q(name)} (id INT PRIMARY KEY, "
                f"v VARCHAR(200) DEFAULT %s COMMENT %s, b BLOB, KEY `k;` (v)) COMMENT=%s",
                (COMMENT, COMMENT, COMMENT),
            )
            if name != "empty":
                cur.executemany(
                    f"INSERT INTO {q(name)} VALUES (%s, %s, %s)",
                    [(r, f"{COMMENT} {name} {r}", BLOB + bytes([r])) for r in range(i + 1)],
                )
        cur.execute(
            "CREATE TRIGGER `tr;` BEFORE INSERT ON `with trigger` FOR EACH ROW "
            "SET NEW.v = CONCAT(NEW.v, ';;')"
        )
    sandbox.wait_replicated()
    sandbox.write_policy(
        "bundles",
        'engine = "mysql"\njobs = 2\n[source]\nnode = "replica1"\n'
        f"databases = [{json.dumps(DB)}]\n",
    )
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (DB, *COPIES):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle, tables: None) -> Manifest:
    loaded = load(str(sandbox.config_path), environ={})
    return run_backup(loaded, load_policy(loaded, "bundles"))


def snapshot(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    """Every table's definition and rows, and the triggers, of ``database``."""
    found: dict[str, Any] = {}
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (database,)
        )
        for (table,) in sorted(cur.fetchall()):
            cur.execute(f"SHOW CREATE TABLE {q(database)}.{q(table)}")
            found[f"create {table}"] = cur.fetchone()[1]
            cur.execute(f"SELECT * FROM {q(database)}.{q(table)} ORDER BY id")
            found[f"rows {table}"] = cur.fetchall()
        cur.execute(
            "SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA=%s",
            (database,),
        )
        found["triggers"] = cur.fetchall()
    return found


def test_small_tables_are_bundled_and_the_manifest_says_so(backup: Manifest) -> None:
    bundled = [o for o in backup.objects if o.kind == "bundle"]
    assert len(bundled) >= 2, "two jobs: the database's small tables in at least two bundles"
    sections = {s.table: s for o in bundled for s in o.sections}
    assert sorted(sections) == sorted(NAMES)
    assert not [o for o in backup.objects if o.kind in ("schema", "data")]
    assert {t.name: t.rows for t in backup.tables} == {
        name: 0 if name == "empty" else i + 1 for i, name in enumerate(NAMES)
    }
    assert all(sections[t.name].rows == t.rows for t in backup.tables)
    assert backup.format_version == BUNDLE_FORMAT_VERSION
    assert [o.table for o in backup.objects if o.kind == "triggers"] == ["with trigger"]


def test_a_restore_of_bundles_gives_back_every_definition_and_row(
    use_sandbox_config: SandboxHandle, backup: Manifest
) -> None:
    sandbox = use_sandbox_config
    assert main(["restore", backup.backup_id, "--rename", f"{DB}={COPIES[0]}"]) == 0
    assert snapshot(sandbox, COPIES[0]) == snapshot(sandbox, DB)
    assert main(["backups", "verify", backup.backup_id, "--restore-test"]) == 0


@pytest.mark.parametrize("name", ["new\nline", "plain", "数据"])
def test_tables_loads_one_section_of_a_bundle_and_nothing_else(
    use_sandbox_config: SandboxHandle, backup: Manifest, name: str
) -> None:
    sandbox = use_sandbox_config
    copy = COPIES[1]
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(copy)}")
    argv = ["restore", backup.backup_id, "--rename", f"{DB}={copy}", "--tables", f"{DB}.{name}"]
    assert main(argv) == 0
    restored = snapshot(sandbox, copy)
    source = snapshot(sandbox, DB)
    assert restored == {
        f"create {name}": source[f"create {name}"],
        f"rows {name}": source[f"rows {name}"],
        "triggers": (),
    }


def test_a_damaged_bundle_stops_the_restore_before_anything_is_applied(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    _, store = find_backup(loaded, backup.backup_id)
    victim = next(o for o in backup.objects if o.kind == "bundle")
    good = b"".join(store.iter_read(victim.key))
    store.put_bytes(victim.key, good[:-1] + bytes([good[-1] ^ 1]))
    try:
        assert main(["restore", backup.backup_id, "--rename", f"{DB}={COPIES[2]}"]) == 4
        assert victim.key in capsys.readouterr().err
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s",
                (COPIES[2],),
            )
            assert cur.fetchone()[0] == 0, "nothing was applied"
    finally:
        store.put_bytes(victim.key, good)


def test_a_table_whose_statistics_lie_leaves_its_bundle_for_objects_of_its_own(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """InnoDB's statistics lag a bulk load: a big table estimated at 0 bytes is chosen for a
    bundle, and its rows must then go to chunked data objects with a schema object, not
    into one oversized section."""
    from datatier.mysql import pdump

    sandbox = use_sandbox_config
    db, copy = "bundle_spill", "bundle_spill_copy"
    with sandbox.connect() as conn, conn.cursor() as cur:
        for name in (db, copy):
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {db}")
        for table in ("small_a", "big", "small_b"):
            cur.execute(f"CREATE TABLE {db}.{table} (id INT PRIMARY KEY, pad VARCHAR(400))")
        cur.executemany(
            f"INSERT INTO {db}.big VALUES (%s, %s)", [(i, f"{i:0>300}") for i in range(6000)]
        )
        for table in ("small_a", "small_b"):
            cur.execute(f"INSERT INTO {db}.{table} VALUES (1, 'x'), (2, 'y')")
    sandbox.wait_replicated()
    sandbox.write_policy(
        "bundle-spill",
        f'engine = "mysql"\nchunk_mb = 1\njobs = 1\n[source]\nnode = "replica1"\n'
        f'databases = ["{db}"]\n',
    )
    from datatier.mysql.catalogue import read_catalogue as original

    def stale(*args: Any, **kwargs: Any) -> Any:
        catalogue = original(*args, **kwargs)
        catalogue.tables = [dataclasses.replace(t, data_bytes=0) for t in catalogue.tables]
        return catalogue

    monkeypatch.setattr(pdump, "read_catalogue", stale)
    loaded = load(str(sandbox.config_path), environ={})
    try:
        manifest = run_backup(loaded, load_policy(loaded, "bundle-spill"))
        (bundled,) = [o for o in manifest.objects if o.kind == "bundle"]
        assert [s.table for s in bundled.sections] == ["small_a", "small_b"]
        big = [o for o in manifest.objects if o.table == "big"]
        assert [o.kind for o in big if o.kind == "schema"] == ["schema"]
        parts = sorted(o.part for o in big if o.kind == "data")
        assert parts == list(range(1, len(parts) + 1)) and len(parts) >= 2, "chunked as usual"
        assert sum(o.rows for o in big if o.kind == "data") == 6000
        assert main(["restore", manifest.backup_id, "--rename", f"{db}={copy}"]) == 0
        with sandbox.connect() as conn, conn.cursor() as cur:
            for table in ("small_a", "big", "small_b"):
                cur.execute(f"CHECKSUM TABLE {db}.{table}, {copy}.{table}")
                source, restored = cur.fetchall()
                assert source[1] == restored[1], table
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            for name in (db, copy):
                cur.execute(f"DROP DATABASE IF EXISTS {name}")


def test_the_dry_run_says_how_many_tables_it_will_bundle(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["backup", "run", "bundles", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    bundled = [o for o in backup.objects if o.kind == "bundle"]
    assert plan["details"]["bundles"] == len(bundled)
    assert plan["details"]["bundled_tables"] == len(NAMES)
    line = f"{len(NAMES)} small tables written together in {len(bundled)} bundle objects"
    assert line in plan["summary"]


def test_tables_given_twice_restores_both(
    use_sandbox_config: SandboxHandle, backup: Manifest
) -> None:
    """Reproduction: ``--tables A --tables B`` restored only B, exit 0 (the option was not
    repeatable, so click kept the last one)."""
    sandbox = use_sandbox_config
    copy = COPIES[1]
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(copy)}")
    argv = ["restore", backup.backup_id, "--rename", f"{DB}={copy}"]
    argv += ["--tables", f"{DB}.plain", "--tables", f"{DB}.new\nline,{DB}.数据"]
    assert main(argv) == 0
    restored = snapshot(sandbox, copy)
    assert sorted(k for k in restored if k.startswith("rows ")) == [
        "rows new\nline",
        "rows plain",
        "rows 数据",
    ]
