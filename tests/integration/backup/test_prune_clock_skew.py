"""``backups prune`` with a backup dated in the future, as a backup host whose clock ran a
year ahead writes it (its ID and manifest times come from that clock). Retention took it for
the newest backup, so ``keep_last = 1`` deleted the backup just taken, the only one holding
today's data (tester's regression test; real MySQL backups in the sandbox's S3 server).
Now it is kept and takes no slot."""

from __future__ import annotations

import json

import pytest

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
