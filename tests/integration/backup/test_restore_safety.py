"""Restore refuses unsafe targets and tampered manifests before anything costs money or
changes (issue 12, items 4, 12 and 13), on the sandbox's real replicas and S3 server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import Manifest, TableRecord, manifest_key
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.storage.base import RestoreState, StorageClass
from tests.integration.conftest import SandboxHandle, wait_for
from tests.integration.integrity import (  # noqa: F401  (integ_data: fixture)
    DB,
    default_store,
    integ_data,
    loaded_config,
    policy,
)

pytestmark = pytest.mark.usefixtures("integ_data")
COPY = "integ_restore_copy"


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle) -> Manifest:
    loaded = loaded_config(sandbox)
    return run_backup(loaded, load_policy(loaded, policy(sandbox, "integ-restore-safety")))


@pytest.fixture
def clean_copy(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    """COPY absent everywhere before and after (dropped unbinlogged on each node)."""

    def drop() -> None:
        for node in ("primary", "replica1", "replica2"):
            with use_sandbox_config.connect(node) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute(f"DROP DATABASE IF EXISTS {COPY}")

    drop()
    yield use_sandbox_config
    drop()


def state(sandbox: SandboxHandle, node: str) -> dict[str, Any]:
    """What a restore must not change on a replica: its own binlog GTIDs and its threads."""
    with sandbox.connect(node) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos, @@gtid_slave_pos")
        binlog_pos, slave_pos = cur.fetchone()
        cur.execute("SHOW SLAVE STATUS")
        names = [d[0] for d in cur.description]
        status = dict(zip(names, cur.fetchone(), strict=True))
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (COPY,)
        )
        exists = cur.fetchone()[0] == 1
    own = [g for g in binlog_pos.split(",") if g and g.split("-")[1] != "1"]
    return {
        "own_gtids": own,  # domain-server-seq; server 1 is the primary
        "io": status["Slave_IO_Running"],
        "sql": status["Slave_SQL_Running"],
        "copy_exists": exists,
        "slave_pos": slave_pos,
    }


def test_a_replica_target_is_refused_with_exit_2_and_nothing_changes(
    clean_copy: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: `restore --target replica1` went through (the account's privileges
    bypass read_only), wrote an errant GTID and stopped the replica's SQL thread."""
    sandbox = clean_copy
    before = state(sandbox, "replica1")
    args = ["restore", backup.backup_id, "--rename", f"{DB}={COPY}"]
    assert main([*args, "--target", "replica1"]) == 2
    err = capsys.readouterr().err
    assert "refusing to restore into replica1" in err and "read_only is ON" in err
    assert "--allow-replica-target" in err
    port = sandbox.config.mysql.nodes["replica1"].port
    assert main([*args, "--target", f"127.0.0.1:{port}"]) == 2, "found as a replica by address"
    assert "replicates from" in capsys.readouterr().err
    assert state(sandbox, "replica1") == before


def test_allow_replica_target_restores_without_binlogging(
    clean_copy: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = clean_copy
    before = state(sandbox, "replica1")
    args = ["restore", backup.backup_id, "--rename", f"{DB}={COPY}", "--target", "replica1"]
    assert main([*args, "--allow-replica-target"]) == 0
    with sandbox.connect("replica1") as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {COPY}.a_first")
        assert cur.fetchone()[0] == 3000
    after = state(sandbox, "replica1")
    assert after["own_gtids"] == before["own_gtids"] == [], "no errant GTID"
    with sandbox.connect() as conn, conn.cursor() as cur:  # replication still applies
        cur.execute(f"UPDATE {DB}.a_first SET v = 'after restore' WHERE id = 1")
    sandbox.wait_replicated()
    assert (state(sandbox, "replica1")["io"], state(sandbox, "replica1")["sql"]) == ("Yes", "Yes")


@pytest.fixture
def archived(sandbox: SandboxHandle, backup: Manifest) -> Iterator[Manifest]:
    """The backup's objects in GLACIER (no restore requested), back to STANDARD after."""
    store = default_store(sandbox)
    for obj in backup.objects:
        store.set_storage_class(obj.key, StorageClass.GLACIER)
    yield backup
    for obj in backup.objects:
        store.request_restore(obj.key, days=1)
        wait_for(lambda key=obj.key: store.head(key).readable, 10, 0.05)  # type: ignore[misc]
        store.set_storage_class(obj.key, StorageClass.STANDARD)


def no_restore_requested(sandbox: SandboxHandle, manifest: Manifest) -> bool:
    store = default_store(sandbox)
    return all(store.head(o.key).restore is RestoreState.NONE for o in manifest.objects)


def test_every_refusal_comes_before_any_archive_restore_request(
    clean_copy: SandboxHandle, archived: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: restore requests (billed on AWS) went out, then the non-empty target
    was refused."""
    sandbox = clean_copy
    args = ["restore", archived.backup_id]
    assert main(args) == 2, "the target's integ_db is not empty"
    assert "is not empty" in capsys.readouterr().err
    assert no_restore_requested(sandbox, archived)
    assert main([*args, "--rename", f"{DB}={COPY}", "--target", "replica2"]) == 2
    assert no_restore_requested(sandbox, archived)
    assert main([*args, "--tables", f"{DB}.nope"]) == 2
    assert no_restore_requested(sandbox, archived)


def test_the_restore_report_gives_the_live_storage_classes(
    clean_copy: SandboxHandle, archived: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: `objects: 13 in STANDARD; archived: 13` while the listing said GLACIER."""
    args = ["restore", archived.backup_id, "--rename", f"{DB}={COPY}", "--dry-run"]
    capsys.readouterr()
    assert main(args) == 0
    n = len(archived.objects)
    assert f"objects now: {n} in GLACIER; archived: {n}" in capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["by_class"] == {"GLACIER": n} and report["archived"] == n


def test_a_collation_that_is_not_a_name_is_refused_before_anything_runs(
    clean_copy: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: the manifest's collation was pasted unquoted into CREATE DATABASE."""
    sandbox = clean_copy
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, policy(sandbox, "integ-collation")))
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS integ_canary")
    tampered = Manifest.decode(manifest.encode(), "test")
    tampered.databases[DB]["collation"] = "utf8mb4_bin; DROP DATABASE integ_canary; --"
    store = default_store(sandbox)
    store.put_bytes(manifest_key(manifest.policy, manifest.backup_id), tampered.encode())
    assert main(["restore", manifest.backup_id, "--rename", f"{DB}={COPY}"]) == 4
    assert "is not a valid name" in capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (%s, %s)",
            ("integ_canary", COPY),
        )
        assert [r[0] for r in cur.fetchall()] == ["integ_canary"], "nothing ran"
        cur.execute("DROP DATABASE integ_canary")


def test_a_damaged_archived_backup_is_refused_before_any_restore_request(
    clean_copy: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = clean_copy
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, policy(sandbox, "integ-damaged-cold")))
    store = default_store(sandbox)
    for obj in manifest.objects:
        store.set_storage_class(obj.key, StorageClass.GLACIER)
    store.delete([manifest.objects[-1].key])
    assert main(["restore", manifest.backup_id, "--rename", f"{DB}={COPY}"]) == 4
    assert f"{manifest.objects[-1].key} is missing" in capsys.readouterr().err
    assert all(store.head(o.key).restore is RestoreState.NONE for o in manifest.objects[:-1])


def test_a_table_the_manifest_records_and_no_object_holds_is_refused(
    clean_copy: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: a manifest recording a table none of its objects holds (one never
    listed: checksums cannot tell) was restored whole without it, without a word. Refused
    now (exit 4, nothing created); ``--tables`` still restores the others."""
    sandbox = clean_copy
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, policy(sandbox, "integ-lost-table")))
    tampered = Manifest.decode(manifest.encode(), "test")
    tampered.tables.append(TableRecord(DB, "d_lost", rows=7, data_sha256="", data_bytes=70))
    store = default_store(sandbox)
    store.put_bytes(manifest_key(manifest.policy, manifest.backup_id), tampered.encode())
    args = ["restore", manifest.backup_id, "--rename", f"{DB}={COPY}"]
    assert main(args) == 4
    assert f"{DB}.d_lost has no definition object" in capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        assert cur.execute("SHOW DATABASES LIKE %s", (COPY,)) == 0, "nothing was created"
    assert main([*args, "--tables", f"{DB}.a_first"]) == 0, capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {COPY}.a_first")
        assert cur.fetchone()[0] == 3000
