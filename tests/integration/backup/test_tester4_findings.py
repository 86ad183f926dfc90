"""Tester4's findings on the backup lifecycle (store that lies, kills, concurrency, keys,
hostile names), each a failing reproduction on the real sandbox (MariaDB + S3 server).

Tried and behaved correctly (no test here):
- hostile names round trip through S3: databases named with a backtick, quotes, newline,
  tab, non-ASCII and 64 characters, tables ``ta`b'le"\\n;--`` and 64 x's, a column
  ``co`l\\nx``; values with every byte 0x00-0xFF, a 10 MB row, empty and NULL values;
  a table with TIMESTAMP(6) / DATETIME(6) extremes, BIT(64), DECIMAL(65,30), JSON, ENUM and
  SET with quotes and commas, GEOMETRY, INET6, UUID, a virtual and an invisible column,
  backed up under time_zone +05:00 and restored under -07:00: identical rows and DDL;
- rows of 30 MB of random bytes, zero bytes and quotes round trip; a 40 MB row (its hex
  statement over max_allowed_packet) is refused before anything with exit 2 and a hint;
- a manifest copied over another backup's: ``list`` hides it, ``verify`` exits 4
  ("manifest names ..."), ``prune`` refuses (exit 4, nothing deleted);
- SIGKILL of ``backup run`` at seven moments (dump, upload, just before the manifest):
  every partial backup is ``incomplete``, never listed by default, spared by prune within
  the grace period, never counted by retention; the next run is complete;
- a physical full backup with a deleted object under an incremental: prune keeps the older
  intact full and reports both as damaged; ``verify`` of the incremental checks the chain
  and exits 4 on a same-size corrupt object of its full backup;
- three ``backup run --incremental`` of one physical policy at once: three incrementals
  on the same parent, all complete.
"""

from __future__ import annotations

import os
import time

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import (
    cli_json,
    default_store,
    integ_data,  # noqa: F401  (fixture)
    loaded_config,
    policy,
)

pytestmark = pytest.mark.usefixtures("integ_data")


def backups_of(sandbox: SandboxHandle, name: str, count: int) -> list[Manifest]:
    loaded = loaded_config(sandbox)
    made = []
    for _ in range(count):
        made.append(run_backup(loaded, load_policy(loaded, name)))
        time.sleep(1.05)  # IDs are per second
    return made


def test_prune_keeps_a_backup_whose_object_was_replaced_and_deletes_the_only_intact_one(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Severity: data loss. keep_last = 1, two backups; after the newest finished, one of
    its data objects is overwritten in the store with other bytes of the same size (a
    lying or buggy store, a tool writing into the bucket, bit rot repaired with the wrong
    copy). ``backups list`` calls the newest backup complete, ``prune --execute`` keeps it
    as "newest, last 1 of 1" and deletes the older, intact backup: afterwards no backup of
    the policy verifies or restores. Retention judges a backup good from the listing (key
    and size, ``datatier/backup/listing.py``, used by ``catalog.Catalog._entry``); the
    manifest records nothing the listing could compare beyond the size (an ETag, or the
    object's last-modified time after ``finished_at`` would show the rewrite).
    Expected: the newest backup whose objects were rewritten after it finished is not
    counted as good (damaged), or prune never deletes the only backup that verifies."""
    sandbox = use_sandbox_config
    name = policy(sandbox, "t4-samesize", "[retention]\nkeep_last = 1\nmin_age_days = 0\n")
    good, newest = backups_of(sandbox, name, 2)
    store = default_store(sandbox)
    victim = next(o for o in newest.objects if o.kind == "data")
    store.put_bytes(victim.key, os.urandom(victim.size))  # same size, other bytes

    code, _ = cli_json(capsys, "backups", "verify", newest.backup_id)
    assert code == 4, "precondition: the newest backup is corrupt"
    cli_json(capsys, "backups", "prune", name, "--execute", "--json")
    code, listed = cli_json(capsys, "backups", "list", name, "--all", "--json")
    ids = [b["id"] for b in listed["backups"]]
    verified = {i: cli_json(capsys, "backups", "verify", i)[0] for i in ids}
    assert 0 in verified.values(), (
        f"prune left no backup that verifies: {verified}; the intact {good.backup_id} "
        f"was deleted in favour of the rewritten {newest.backup_id}"
    )
