"""``backups prune`` with a backup dated in the future, as a backup host whose clock ran a
year ahead writes it (its ID and manifest times come from that clock). Retention took it for
the newest backup, so ``keep_last = 1`` deleted the backup just taken, the only one holding
today's data (tester's regression test; real MySQL backups in the sandbox's S3 server).
Now it is kept and takes no slot."""

from __future__ import annotations

import json
import time

import pytest

from datatier.storage.s3 import S3Store
from tests.integration.backup.test_catalog import (
    backup,
    catalog_db,  # noqa: F401  (fixture)
    keys,
    policy,
    run,
    store,
)
from tests.integration.conftest import SandboxHandle


def skewed_copy(sandbox: SandboxHandle, name: str, backup_id: str) -> str:
    """Move backup ``backup_id`` to the ID (and times) a clock one year ahead gives it."""
    s = store(sandbox)
    ahead = f"{int(backup_id[:4]) + 1}{backup_id[4:]}"
    year, next_year = backup_id[:4] + "-", f"{int(backup_id[:4]) + 1}-"
    for obj in s.list_objects(f"{name}/{backup_id}/"):
        data = s.get_bytes(obj.key)
        if obj.key.endswith("/manifest.json"):
            doc = json.loads(data)
            doc["backup_id"] = ahead
            for field in ("started_at", "finished_at"):
                doc[field] = doc[field].replace(year, next_year, 1)
            snap = doc["consistency"]["snapshot_at"]
            doc["consistency"]["snapshot_at"] = snap.replace(year, next_year, 1)
            for entry in doc["objects"]:
                entry["key"] = entry["key"].replace(backup_id, ahead)
            data = json.dumps(doc).encode()
        s.put_bytes(obj.key.replace(backup_id, ahead), data)
    s.delete([o.key for o in s.list_objects(f"{name}/{backup_id}/")])
    return ahead


@pytest.mark.usefixtures("catalog_db")
def test_a_backup_dated_in_the_future_never_gets_the_newest_real_backup_deleted(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    name = policy(sandbox, "t5-skew", "[retention]\nkeep_last = 1\nmin_age_days = 0\n")
    for key in keys(sandbox, f"{name}/"):
        store(sandbox).delete([key])
    skewed = skewed_copy(sandbox, name, backup(sandbox, name).backup_id)
    today = backup(sandbox, name).backup_id  # the clock is right again
    code, _out, err = run(sandbox, capsys, "prune", name, "--execute", "--json")
    left = keys(sandbox, f"{name}/{today}/")
    assert f"{name}/{today}/manifest.json" in left, (
        f"exit {code}: the backup just taken was deleted, {skewed} (dated in the future) kept"
    )
    assert code in (0, 2), err


@pytest.mark.usefixtures("catalog_db")
def test_an_interrupted_backup_dated_in_the_future_is_collected_by_its_objects_age(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupted run (no manifest) on a host whose clock ran a year ahead: prune aged
    incomplete leftovers by the later of their ID's time and their objects' times, so this
    one was "last written" a year from now and never collected, its objects (and its
    unfinished upload) leaking forever (tester's finding). Now an ID dated after now counts
    for nothing: the objects' times in the store decide, with the usual grace, so a fresh
    one is spared as possibly running and a stale one goes. The complete backup dated in
    the future and today's stay."""
    name = policy(sandbox, "t5-skew-incomplete", "[retention]\nkeep_last = 1\nmin_age_days = 0\n")
    s = store(sandbox)
    assert isinstance(s, S3Store)
    s.delete([o.key for o in s.list_objects(f"{name}/")])
    complete = skewed_copy(sandbox, name, backup(sandbox, name).backup_id)
    killed = skewed_copy(sandbox, name, backup(sandbox, name).backup_id)
    s.delete([f"{name}/{killed}/manifest.json"])  # interrupted before its manifest
    s.client.create_multipart_upload(Bucket=s.bucket, Key=f"{s.prefix}/{name}/{killed}/data/x.zst")
    today = backup(sandbox, name).backup_id

    plan = json.loads(run(sandbox, capsys, "prune", name, "--json")[1])  # default grace
    assert [t["id"] for t in plan["spared"]] == [killed], "a fresh one may still be running"
    assert plan["delete"] == [] and plan["uploads"] == []

    time.sleep(1.1)  # the store's times have whole seconds
    code, out, err = run(
        sandbox, capsys, "prune", name, "--execute", "--grace-hours", "0", "--json"
    )
    assert code == 0, err
    done = json.loads(out)
    assert [(d["id"], d["state"]) for d in done["delete"]] == [(killed, "incomplete")], (
        "the interrupted backup dated in the future was not collected"
    )
    assert done["result"]["uploads_aborted"] == 1
    assert keys(sandbox, f"{name}/{killed}/") == []
    assert list(s.list_incomplete_uploads(f"{name}/{killed}/")) == []
    for kept in (complete, today):
        assert f"{name}/{kept}/manifest.json" in keys(sandbox, f"{name}/{kept}/")
