"""Backups that are wrong must never pass for good ones (issue 12, items 1, 3 and 8).

On the real sandbox: a prune racing a running backup, a backup with an object deleted
behind datatier's back, a manifest whose objects do not account for every row. Each test
reproduces a data-loss path first seen on the sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from datatier.backup import confirm, service
from datatier.backup.catalog import BackupState
from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.parents import PRUNE_CLAIM
from datatier.backup.prune import prune_execute, prune_plan
from datatier.backup.service import load_policy, open_policy_catalog, run_backup
from datatier.backup.stores import store_for
from datatier.cli import main
from datatier.errors import IntegrityFailure
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import (
    DB,
    TableLock,
    cli_json,
    default_store,
    integ_data,  # noqa: F401  (fixture)
    loaded_config,
    manifests,
    policy,
    wait_for_object,
)

# -- item 3: prune must not destroy a running backup ---------------------------------------

pytestmark = pytest.mark.usefixtures("integ_data")


def test_prune_while_a_backup_runs_cannot_leave_a_manifest_naming_deleted_objects(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: `prune --grace-hours 0 --execute` during a backup deleted its objects
    and the backup still exited 0 with a manifest for objects that no longer existed."""
    sandbox = use_sandbox_config
    name = policy(sandbox, "integ-race")
    store = default_store(sandbox)
    lock = TableLock(sandbox, "c_third")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datatier",
            "--config",
            str(sandbox.config_path),
            *("backup", "run", name),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_object(store, f"{name}/", "/a_first/data-")
        code, plan = cli_json(
            capsys, "backups", "prune", name, "--grace-hours", "0", "--execute", "--json"
        )
        assert code == 0
        assert plan["delete"], "the running backup looked incomplete and old enough"
    finally:
        lock.release()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, (out, err)
    assert "missing" in err and "Traceback" not in err
    assert manifests(store, name) == [], "no manifest may name deleted objects"


def test_prune_planned_before_a_backup_completed_spares_it_once_its_manifest_exists(
    sandbox: SandboxHandle,
) -> None:
    """The prune plan is made while the backup is incomplete; by the time it executes, the
    backup has its manifest. The claim-then-look protocol makes the prune back off."""
    name = policy(sandbox, "integ-late-prune")
    loaded = loaded_config(sandbox)
    chosen = load_policy(loaded, name)
    lock = TableLock(sandbox, "c_third")
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(run_backup(loaded, chosen)))
    worker.start()
    catalog = open_policy_catalog(loaded, chosen)
    try:
        wait_for_object(catalog.store, f"{name}/", "/a_first/data-")
        plan = prune_plan(catalog, chosen, datetime.now(UTC), grace=timedelta(0))
        assert [t.state for t in plan.delete] == [BackupState.INCOMPLETE]
    finally:
        lock.release()
    worker.join(timeout=60)
    manifest: Manifest = result[0]
    outcome = prune_execute(catalog, plan)
    assert outcome.backups == 0 and outcome.spared == [manifest.backup_id]
    catalog.verify(manifest)  # every object is still there and intact
    assert not catalog.store.exists(f"{name}/{manifest.backup_id}/{PRUNE_CLAIM}")


def hooked_manifest_write(monkeypatch: pytest.MonkeyPatch, before: Any, after: Any) -> None:
    """Run ``before(store, key)`` just before the backup service writes a manifest and
    ``after(store, key)`` just after (the windows a concurrent prune could hit)."""

    def factory(url: str, config: Any, *, lookup: bool = False) -> ObjectStore:
        store = store_for(url, config, lookup=lookup)
        original = store.put_bytes

        def put_bytes(key: str, data: bytes, **kw: Any) -> Any:
            if key.endswith("/manifest.json"):
                before(store, key)
                info = original(key, data, **kw)
                after(store, key)
                return info
            return original(key, data, **kw)

        store.put_bytes = put_bytes  # type: ignore[method-assign]
        return store

    monkeypatch.setattr(service, "store_for", factory)


def test_a_prune_that_ran_just_before_the_manifest_write_fails_the_backup(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = policy(sandbox, "integ-prune-window")
    loaded = loaded_config(sandbox)
    chosen = load_policy(loaded, name)

    def prune_now(store: ObjectStore, key: str) -> None:
        catalog = open_policy_catalog(loaded, chosen)
        prune_execute(catalog, prune_plan(catalog, chosen, datetime.now(UTC), grace=timedelta(0)))

    hooked_manifest_write(monkeypatch, prune_now, lambda *_: None)
    with pytest.raises(IntegrityFailure, match="missing"):
        run_backup(loaded, chosen)
    assert manifests(default_store(sandbox), name) == []


def test_a_prune_claim_seen_after_the_manifest_write_fails_the_backup(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune that claimed the backup may be deleting it: the backup withdraws its
    manifest and fails rather than exit 0 on objects that may be going away."""
    name = policy(sandbox, "integ-prune-claim")
    loaded = loaded_config(sandbox)

    def claim(store: ObjectStore, key: str) -> None:
        store.put_bytes(key.rpartition("/")[0] + "/" + PRUNE_CLAIM, b"{}")

    hooked_manifest_write(monkeypatch, lambda *_: None, claim)
    with pytest.raises(IntegrityFailure, match="prune"):
        run_backup(loaded, load_policy(loaded, name))
    assert manifests(default_store(sandbox), name) == []


# -- item 3: damaged backups never count as kept generations ------------------------------


def backups_of(sandbox: SandboxHandle, name: str, count: int) -> list[Manifest]:
    loaded = loaded_config(sandbox)
    made = []
    for _ in range(count):
        made.append(run_backup(loaded, load_policy(loaded, name)))
        time.sleep(1.05)  # IDs and start times are per second
    return made


def test_a_damaged_newest_backup_is_not_kept_in_place_of_the_good_one(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: with keep_last = 1, one object of the newest backup deleted behind our
    back, prune kept the broken backup as "newest" and deleted the only good one."""
    sandbox = use_sandbox_config
    name = policy(sandbox, "integ-damaged", "[retention]\nkeep_last = 1\nmin_age_days = 0\n")
    good, damaged = backups_of(sandbox, name, 2)
    store = default_store(sandbox)
    victim = next(o for o in damaged.objects if o.kind in ("data", "bundle"))
    store.delete([victim.key])

    code, plan = cli_json(capsys, "backups", "prune", name, "--json")
    assert code == 0
    assert [k["id"] for k in plan["keep"]] == [good.backup_id]
    assert plan["delete"] == []
    assert [d["id"] for d in plan["damaged"]] == [damaged.backup_id]
    assert victim.key in plan["damaged"][0]["problem"]

    code, _ = cli_json(capsys, "backups", "prune", name, "--execute", "--json")
    assert code == 0
    catalog = open_policy_catalog(loaded_config(sandbox), load_policy(loaded_config(sandbox), name))
    catalog.verify(good)  # the good backup is untouched
    assert store.exists(manifest_key(name, damaged.backup_id)), "damaged: reported, not deleted"
    with pytest.raises(IntegrityFailure, match="missing"):
        catalog.verify(damaged)

    code, listed = cli_json(capsys, "backups", "list", name, "--all", "--json")
    assert {b["id"]: b["state"] for b in listed["backups"]} == {
        good.backup_id: "complete",
        damaged.backup_id: "damaged",
    }


def test_a_damaged_backup_older_than_every_kept_one_is_deleted(sandbox: SandboxHandle) -> None:
    name = policy(sandbox, "integ-damaged-old", "[retention]\nkeep_last = 1\nmin_age_days = 0\n")
    old, middle, new = backups_of(sandbox, name, 3)
    store = default_store(sandbox)
    store.delete([next(o.key for o in old.objects if o.kind in ("schema", "bundle"))])
    loaded = loaded_config(sandbox)
    chosen = load_policy(loaded, name)
    catalog = open_policy_catalog(loaded, chosen)
    plan = prune_plan(catalog, chosen, datetime.now(UTC))
    assert [k.backup_id for k in plan.keep] == [new.backup_id]
    reasons = {t.backup_id: t.reason for t in plan.delete}
    assert set(reasons) == {old.backup_id, middle.backup_id}
    assert "damaged" in reasons[old.backup_id]
    prune_execute(catalog, plan)
    assert {o.key.split("/")[1] for o in store.list_objects(f"{name}/")} == {new.backup_id}


def test_a_backup_whose_object_vanished_before_the_manifest_fails_without_one(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_backup confirms every object (key and size) by listing before the manifest."""
    name = policy(sandbox, "integ-vanished")
    loaded = loaded_config(sandbox)

    def drop_one(store: ObjectStore, key: str) -> None:
        raise AssertionError("the manifest must not be written")

    hooked_manifest_write(monkeypatch, drop_one, lambda *_: None)
    original = confirm.confirm_listed

    def vanish_then_confirm(store: ObjectStore, prefix: str, records: Any) -> None:
        store.delete([next(r.key for r in records if r.kind == "data")])
        original(store, prefix, records)

    monkeypatch.setattr(service, "confirm_listed", vanish_then_confirm)
    with pytest.raises(IntegrityFailure, match="missing"):
        run_backup(loaded, load_policy(loaded, name))
    assert manifests(default_store(sandbox), name) == []


def test_an_object_rewritten_before_the_manifest_fails_the_backup_without_one(
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: a data object rewritten by another client between its upload and the
    manifest (same size, other bytes) passed the listing check (keys and sizes): the backup
    exited 0 with a manifest whose SHA-256 the object fails. Its ETag is compared too."""
    sandbox = use_sandbox_config
    name = policy(sandbox, "integ-rewritten")
    original = confirm.confirm_listed
    rewritten: list[str] = []

    def rewrite_then_confirm(store: ObjectStore, prefix: str, records: Any) -> None:
        if not rewritten:
            victim = next(r for r in records if r.kind == "data")
            store.put_bytes(victim.key, os.urandom(victim.size))
            rewritten.append(victim.key)
        original(store, prefix, records)

    monkeypatch.setattr(service, "confirm_listed", rewrite_then_confirm)
    capsys.readouterr()
    code = main(["backup", "run", name])
    err = capsys.readouterr().err
    assert code == 4, err
    assert f"{rewritten[0]} was rewritten" in err and "no manifest was written" in err, err
    assert manifests(default_store(sandbox), name) == []


# -- item 8: the manifest must account for every table and row ----------------------------


def drop_from_manifest(store: ObjectStore, manifest: Manifest, table: str) -> Manifest:
    """Rewrite the stored manifest without one data part of ``table`` (the object stays)."""
    victim = next(o for o in manifest.objects if o.table == table and o.kind == "data")
    tampered = Manifest.decode(manifest.encode(), "test")
    tampered.objects = [o for o in tampered.objects if o.key != victim.key]
    store.put_bytes(manifest_key(manifest.policy, manifest.backup_id), tampered.encode())
    return tampered


def test_verify_and_restore_refuse_a_manifest_missing_a_data_part(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: verify said OK with 69,643 of 100,000 rows' objects in the manifest;
    restore noticed only after applying, leaving a partial database."""
    sandbox = use_sandbox_config
    name = policy(sandbox, "integ-missing-part")
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.big (id INT PRIMARY KEY, pad CHAR(200))")
        cur.execute(f"DELETE FROM {DB}.big")
        cur.executemany(
            f"INSERT INTO {DB}.big VALUES (%s, %s)", [(i, "x" * 200) for i in range(12000)]
        )
    sandbox.wait_replicated()
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, name))
    assert len([o for o in manifest.objects if o.table == "big" and o.kind == "data"]) >= 2
    drop_from_manifest(default_store(sandbox), manifest, "big")

    assert main(["backups", "verify", manifest.backup_id]) == 4
    err = capsys.readouterr().err
    assert f"{DB}.big" in err and "not 1.." in err

    copy = "integ_missing_copy"
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {copy}")
    assert main(["restore", manifest.backup_id, "--rename", f"{DB}={copy}"]) == 4
    assert f"{DB}.big" in capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (copy,)
        )
        assert cur.fetchone()[0] == 0, "nothing may be applied"
    # the intact tables can still be salvaged from the same backup
    assert main(["restore", manifest.backup_id, "--rename", f"{DB}={copy}",
                 "--tables", f"{DB}.a_first"]) == 0  # fmt: skip
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {copy}.a_first")
        assert cur.fetchone()[0] == 3000
        cur.execute(f"DROP DATABASE {copy}")
        cur.execute(f"DROP TABLE {DB}.big")


# -- item 1: a key is written once -------------------------------------------------------


def test_the_writer_refuses_a_key_twice_and_the_backup_fails_without_manifest(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datatier.mysql.dumpdefs import table_path
    from datatier.mysql.pdump import ParallelDumpEngine

    name = policy(sandbox, "integ-twice")
    original = ParallelDumpEngine.dump

    def dump_twice(self: ParallelDumpEngine, writer: Any) -> Any:
        result = original(self, writer)
        key = table_path(DB, "a_first", "data-00001.sql.zst")
        again = writer.open(key, "data", DB, "a_first", 1)
        again.write(b"-- not the table's rows\n")
        writer.close(again)
        return result

    monkeypatch.setattr(ParallelDumpEngine, "dump", dump_twice)
    loaded = loaded_config(sandbox)
    with pytest.raises(IntegrityFailure, match="written twice"):
        run_backup(loaded, load_policy(loaded, name))
    store = default_store(sandbox)
    assert manifests(store, name) == []
    assert list(store.list_objects(f"{name}/")) == [], "the failed run's objects are deleted"
