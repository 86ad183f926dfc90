"""``datatier backups`` on the sandbox: real MySQL backups in the real S3 server (moto).

Each test uses its own policy name (``cat-...``), so the shared store never mixes them up.
Damage (corrupt, truncated, missing manifest, garbage manifest) is done through the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from datatier import cli as cli_module
from datatier.backup.manifest import Manifest, backup_prefix, manifest_key
from datatier.backup.service import load_policy, run_backup
from datatier.backup.stores import store_for
from datatier.config import load
from datatier.storage.base import ObjectStore
from datatier.storage.s3 import S3Store
from tests.integration.conftest import SandboxHandle

DB = "catalog_test"


@pytest.fixture(scope="module")
def catalog_db(sandbox: SandboxHandle) -> str:
    """A small database on the primary, replicated to replica1 (the backup source)."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.items (id INT PRIMARY KEY, name VARCHAR(40))")
        cur.executemany(
            f"INSERT INTO {DB}.items VALUES (%s, %s)", [(i, f"item {i}") for i in range(1, 51)]
        )
        cur.execute(f"CREATE TABLE {DB}.tags (id INT PRIMARY KEY, tag VARCHAR(10))")
        cur.executemany(f"INSERT INTO {DB}.tags VALUES (%s, %s)", [(1, "a"), (2, "b")])
    sandbox.wait_replicated()
    return DB


def policy(sandbox: SandboxHandle, name: str, extra: str = "") -> str:
    """Write policy ``name`` backing up the test database from replica1."""
    (sandbox.root / "backups").mkdir(exist_ok=True)
    sandbox.write_policy(
        name,
        f'engine = "mysql"\n{extra}\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n',
    )
    return name


def retention(keep_last: int) -> str:
    return f"[retention]\nkeep_last = {keep_last}\nmin_age_days = 0\n"


def backup(sandbox: SandboxHandle, name: str) -> Manifest:
    loaded = load(str(sandbox.config_path), environ={})
    return run_backup(loaded, load_policy(loaded, name))


def store(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


def keys(sandbox: SandboxHandle, prefix: str) -> list[str]:
    """Backup objects under ``prefix`` (job records under POLICY/_status/ excluded: every
    job run, even a refused one, records its outcome there)."""
    return [o.key for o in store(sandbox).list_objects(prefix) if "/_status/" not in o.key]


def run(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    code = cli_module.main(["--config", str(sandbox.config_path), "backups", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_json(sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(sandbox, capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def listing(sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    """The rows of ``backups list ARGS --json`` (its ``count`` checked against them)."""
    doc = run_json(sandbox, capsys, "list", *args)
    assert doc["count"] == len(doc["backups"])
    return doc["backups"]


def test_list_shows_complete_backups_and_all_shows_the_rest(
    sandbox: SandboxHandle, catalog_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = policy(sandbox, "cat-list-1")
    killed, good = backup(sandbox, name), backup(sandbox, name)
    store(sandbox).delete([manifest_key(name, killed.backup_id)])  # as if killed before the end

    rows = listing(sandbox, capsys, name)
    assert [r["id"] for r in rows] == [good.backup_id]
    row = rows[0]
    assert row["policy"] == name and row["engine"] == "mysql" and row["state"] == "complete"
    assert row["started_at"] == good.started_at and row["finished_at"] == good.finished_at
    assert row["bytes"] == good.total_bytes and row["bytes"] > 0
    assert row["storage_classes"] == {"STANDARD": len(good.objects)}

    every = listing(sandbox, capsys, name, "--all")
    assert [(r["id"], r["state"]) for r in every] == [
        (killed.backup_id, "incomplete"),
        (good.backup_id, "complete"),
    ]
    assert run_json(sandbox, capsys, "list", name)["not_shown"] == {"incomplete": 1}
    assert run_json(sandbox, capsys, "list", name, "--all")["not_shown"] == {}
    code, out, err = run(sandbox, capsys, "list")
    assert code == 0 and good.backup_id in out and killed.backup_id not in out
    assert "incomplete" in err and "--all" in err


def test_show_and_verify_a_good_backup(
    sandbox: SandboxHandle, catalog_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = policy(sandbox, "cat-show-1")
    m = backup(sandbox, name)
    doc = run_json(sandbox, capsys, "show", m.backup_id)
    rows = {(t["database"], t["name"]): t["rows"] for t in doc["tables"]}
    assert rows == {(DB, "items"): 50, (DB, "tags"): 2}
    assert doc["consistency"] == m.consistency and doc["consistency"]
    assert doc["source"] == m.source
    assert doc["objects"]["count"] == len(m.objects)
    assert doc["objects"]["by_class_live"] == {"STANDARD": len(m.objects)}
    assert "total_seconds" in doc["timings"]
    code, out, _ = run(sandbox, capsys, "show", m.backup_id, "--policy", name)
    assert code == 0 and "items" in out and "consistency" in out
    secrets = (sandbox.config.mysql.password, sandbox.config.s3.secret_access_key)
    for secret in (s.reveal() for s in secrets):
        assert secret and secret not in out and secret not in json.dumps(doc)

    code, out, err = run(sandbox, capsys, "verify", m.backup_id)
    assert code == 0, err
    assert out.startswith(f"OK {name}/{m.backup_id}: {len(m.objects)} objects")
    assert err == ""  # no progress when stderr is not a terminal
    report = run_json(sandbox, capsys, "verify", m.backup_id)
    assert report["ok"] is True and report["bytes"] == m.total_bytes


def test_verify_detects_corrupt_and_truncated_objects(
    sandbox: SandboxHandle, catalog_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = policy(sandbox, "cat-verify-1")
    s = store(sandbox)
    m = backup(sandbox, name)
    victim = next(o for o in m.objects if o.kind in ("data", "bundle"))
    original = s.get_bytes(victim.key)
    s.put_bytes(victim.key, bytes(b ^ 0xFF for b in original))  # same size, other bytes
    code, out, err = run(sandbox, capsys, "verify", m.backup_id, "--json")
    assert code == 4
    assert victim.key in err and "SHA-256 mismatch" in err
    assert json.loads(out)["ok"] is False

    s.put_bytes(victim.key, original[: len(original) // 2])
    code, _, err = run(sandbox, capsys, "verify", m.backup_id)
    assert code == 4 and victim.key in err and "truncated" in err

    s.put_bytes(victim.key, original)
    assert run(sandbox, capsys, "verify", m.backup_id)[0] == 0


def test_unknown_and_malformed_ids_exit_2(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(sandbox, capsys, "show", "20000101T000000Z-abcd")
    assert code == 2 and "no backup 20000101T000000Z-abcd" in err
    code, _, err = run(sandbox, capsys, "verify", "not-an-id")
    assert code == 2 and "not a backup ID" in err


def test_prune_dry_run_then_execute_keeps_the_newest(
    sandbox: SandboxHandle, catalog_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = policy(sandbox, "cat-prune-1", retention(2))
    made = [backup(sandbox, name) for _ in range(3)]
    before = keys(sandbox, f"{name}/")

    plan = run_json(sandbox, capsys, "prune", name)
    assert plan["executed"] is False
    assert [k["id"] for k in plan["keep"]] == [made[2].backup_id, made[1].backup_id]
    assert "newest" in plan["keep"][0]["reasons"]
    assert [d["id"] for d in plan["delete"]] == [made[0].backup_id]
    assert plan["bytes_freed"] == made[0].total_bytes
    code, out, _ = run(sandbox, capsys, "prune", name)
    assert code == 0 and "dry run" in out and "nothing deleted" in out
    assert keys(sandbox, f"{name}/") == before

    done = run_json(sandbox, capsys, "prune", name, "--execute")
    assert done["executed"] and done["result"]["backups"] == 1
    rows = listing(sandbox, capsys, name, "--all")
    assert [r["id"] for r in rows] == [made[1].backup_id, made[2].backup_id]
    assert keys(sandbox, backup_prefix(name, made[0].backup_id)) == []
    assert run(sandbox, capsys, "verify", made[2].backup_id)[0] == 0


def test_prune_removes_incomplete_leftovers_and_uploads(
    sandbox: SandboxHandle, catalog_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = policy(sandbox, "cat-prune-2", retention(5))
    s = store(sandbox)
    assert isinstance(s, S3Store)
    killed, good = backup(sandbox, name), backup(sandbox, name)
    s.delete([manifest_key(name, killed.backup_id)])
    upload_key = f"{name}/{killed.backup_id}/data/straggler.sql.zst"
    s.client.create_multipart_upload(Bucket=s.bucket, Key=f"{s.prefix}/{upload_key}")

    plan = run_json(sandbox, capsys, "prune", name)  # default grace: both are too recent
    assert plan["delete"] == [] and plan["uploads"] == []
    assert [t["id"] for t in plan["spared"]] == [killed.backup_id]

    done = run_json(sandbox, capsys, "prune", name, "--execute", "--grace-hours", "0")
    assert [(d["id"], d["state"]) for d in done["delete"]] == [(killed.backup_id, "incomplete")]
    assert done["result"]["uploads_aborted"] == 1
    assert list(s.list_incomplete_uploads(f"{name}/")) == []
    assert keys(sandbox, backup_prefix(name, killed.backup_id)) == []
    assert [r["id"] for r in listing(sandbox, capsys, name, "--all")] == [good.backup_id]


def test_prune_refuses_when_a_manifest_is_unreadable(
    sandbox: SandboxHandle, catalog_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = policy(sandbox, "cat-prune-3", retention(1))
    broken, _, _ = (backup(sandbox, name) for _ in range(3))
    store(sandbox).put_bytes(manifest_key(name, broken.backup_id), b"\x00 not a manifest")
    before = keys(sandbox, f"{name}/")
    code, out, err = run(sandbox, capsys, "prune", name, "--execute")
    assert code == 4 and out == ""
    assert "refusing to prune" in err and broken.backup_id in err
    assert keys(sandbox, f"{name}/") == before
    rows = listing(sandbox, capsys, name, "--all")
    assert [r["state"] for r in rows] == ["unreadable", "complete", "complete"]


def test_archive_reclasses_data_not_manifests_then_verify_needs_a_restore(
    sandbox: SandboxHandle, catalog_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = policy(
        sandbox,
        "cat-archive-1",
        '[storage]\narchive_class = "GLACIER"\narchive_after_days = 1\n'
        "[archive]\nmin_object_kb = 0\n",  # the test data objects are tiny
    )
    s = store(sandbox)
    m = backup(sandbox, name)
    newest = backup(sandbox, name)
    young = run_json(sandbox, capsys, "archive", name)
    assert young["policies"][0]["objects"] == [] and young["objects"] == 0  # too young now

    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    planned = run_json(sandbox, capsys, "archive", name, "--now", later)
    (plan,) = planned["policies"]
    assert planned["objects"] == len(m.objects) and planned["executed"] is False
    assert planned["bytes"] == plan["bytes"] == sum(o.size for o in m.objects)
    assert sorted(o["key"] for o in plan["objects"]) == sorted(o.key for o in m.objects)
    assert plan["newest_kept"] == newest.backup_id  # the newest backup stays STANDARD
    assert {s.head(o.key).storage_class for o in m.objects} == {"STANDARD"}  # dry run

    archived = run_json(sandbox, capsys, "archive", name, "--now", later, "--execute")
    (done,) = archived["policies"]
    assert done["moved"] == archived["moved"] == len(m.objects) and archived["executed"]
    assert {s.head(o.key).storage_class for o in m.objects} == {"GLACIER"}
    assert s.head(manifest_key(name, m.backup_id)).storage_class == "STANDARD"
    row, newest_row = listing(sandbox, capsys, name)
    assert row["storage_classes"] == {"GLACIER": len(m.objects)}
    assert newest_row["storage_classes"] == {"STANDARD": len(newest.objects)}

    code, out, err = run(sandbox, capsys, "verify", m.backup_id)
    assert code == 5 and out == ""
    assert "GLACIER" in err and "--request-restore" in err and m.objects[0].key in err
    # moto completes restores at once, so the restored copies verify right away.
    code, out, err = run(sandbox, capsys, "verify", m.backup_id, "--request-restore")
    assert code == 0, err
    assert out.startswith(f"OK {name}/{m.backup_id}")
