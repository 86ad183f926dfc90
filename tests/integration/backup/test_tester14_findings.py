"""tester14: the per-policy prune lock (``datatier.backup.prunelock``) against the
sandbox's real S3 server and MariaDB primary."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from datatier.backup import accept
from datatier.backup.prune import prune_execute, prune_plan
from datatier.backup.prunelock import FOLDER, PruneLock
from datatier.backup.service import load_policy, open_policy_catalog, run_backup
from datatier.backup.stores import store_for
from datatier.errors import NotReadyYet
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.integrity import copy_multipart, loaded_config

POLICY = "t14-prune"
POLICY2 = "t14-prune-b"
DB = "t14_prune_db"
PLAIN: dict[str, str] = {}


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


def keys(store: ObjectStore, prefix: str) -> list[str]:
    return sorted(o.key for o in store.list_objects(prefix) if "/_status/" not in o.key)


@pytest.fixture
def policies(sandbox: SandboxHandle) -> Iterator[tuple[str, str]]:
    store = store_of(sandbox)
    for name in (POLICY, POLICY2):
        store.delete(keys(store, f"{name}/"))
        sandbox.write_policy(
            name,
            f'engine = "mysql"\nchunk_mb = 1\nbundle_tables = false\n'
            f'[source]\nnode = "primary"\ndatabases = ["{DB}"]\n'
            "[retention]\nkeep_last = 1\nmin_age_days = 0\n",
        )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.t (id INT PRIMARY KEY)")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.u (id INT PRIMARY KEY)")
        cur.execute(f"REPLACE INTO {DB}.t VALUES (1), (2)")
        cur.execute(f"REPLACE INTO {DB}.u VALUES (1), (2)")
    yield POLICY, POLICY2
    for name in (POLICY, POLICY2):
        store.delete([o.key for o in store.list_objects(f"{name}/")])
        (sandbox.root / "backups" / f"{name}.toml").unlink(missing_ok=True)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")


def backups(sandbox: SandboxHandle, policy: str, n: int) -> list[str]:
    made = []
    for _ in range(n):
        run = cli(sandbox.config_path, PLAIN, "backup", "run", policy, "--json")
        assert run.code == 0, run.err
        made.append(run.json()["id"])
    return made


def prune(sandbox: SandboxHandle, policy: str) -> Any:
    return cli(
        sandbox.config_path, PLAIN, "backups", "prune", policy, "--execute", "--grace-hours", "0"
    )


def test_a_prune_that_fails_right_after_writing_its_lock_leaves_none(
    sandbox: SandboxHandle, policies: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps: two backups of a keep-1 policy; ``backups prune P --execute`` whose listing of
    ``P/_prune/`` fails (a transient store error: 503, timeout, connection reset) right
    after it wrote its lock; then ``backups prune P --execute`` again.

    Expected: the failed prune leaves no lock (as ``test_a_prune_releases_its_lock_when_it
    _fails`` promises for a failing delete), the second prune runs (exit 0).
    Was (fixed in 5999fc9): ``PruneLock.acquire`` wrote, then listed outside any try: the
    error escaped with the lock in place; the next prune exits 5 ("another `backups prune` of P is
    running (host ..., pid <the dead prune>)") for 15 minutes."""
    policy = policies[0]
    backups(sandbox, policy, 2)
    loaded = loaded_config(sandbox)
    chosen = load_policy(loaded, policy)
    catalog = open_policy_catalog(loaded, chosen)
    plan = prune_plan(catalog, chosen, datetime.now(UTC), grace=timedelta(0))
    assert len(plan.delete) == 1
    real_list = type(catalog.store).list_objects

    def flaky_list(self: ObjectStore, prefix: str, *a: Any, **kw: Any) -> Any:
        if prefix.endswith(FOLDER):
            raise OSError("503 Slow Down (the store failed the listing)")
        return real_list(self, prefix, *a, **kw)

    monkeypatch.setattr(type(catalog.store), "list_objects", flaky_list)
    with pytest.raises(OSError, match="Slow Down"):
        prune_execute(catalog, plan)
    monkeypatch.setattr(type(catalog.store), "list_objects", real_list)
    left = keys(catalog.store, f"{policy}/{FOLDER}")
    again = prune(sandbox, policy)
    assert again.code == 0, (left, again.code, again.err)
    assert left == []


def test_a_prune_beside_accept_etags_names_the_verify(
    sandbox: SandboxHandle, policies: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps: a backup whose data object was copied to a multipart ETag (listed damaged);
    ``backups verify ID --accept-etags`` is recording its manifest (under the lock) while
    ``backups prune P --execute`` runs.

    Expected: the prune refuses (exit 5) naming what holds the lock (a `backups verify
    --accept-etags`, its host and pid), as the lock is shared. Was (fixed): "another
    `backups prune` of P is running": an operator looks for a prune that does not exist (the lock
    note says "by": "datatier backups prune" for both)."""
    policy = policies[0]
    loaded = loaded_config(sandbox)
    made = run_backup(loaded, load_policy(loaded, policy))
    store = store_of(sandbox)
    data = next(o for o in made.objects if o.kind == "data")
    copy_multipart(store, data.key)
    seen: dict[str, Any] = {}
    real_record = accept.record_listed

    def record_with_a_prune_beside(catalog: Any, verified: Any) -> Any:
        if "prune" not in seen:
            seen["prune"] = prune(sandbox, policy)
            seen["note"] = [store.get_bytes(k) for k in keys(store, f"{policy}/{FOLDER}")]
        return real_record(catalog, verified)

    monkeypatch.setattr(accept, "record_listed", record_with_a_prune_beside)
    verified = cli(
        sandbox.config_path, PLAIN, "backups", "verify", made.backup_id, "--accept-etags"
    )
    assert verified.code == 0, verified.err
    beside = seen["prune"]
    assert beside.code == 5, (beside.code, beside.err)
    assert "verify" in beside.err, (beside.err, seen["note"])


def test_a_killed_prune_on_this_host_does_not_block_the_next(
    sandbox: SandboxHandle, policies: tuple[str, str]
) -> None:
    """Steps: a prune process takes the lock and is SIGKILLed (OOM killer, node loss, kill
    -9); ``backups prune P --execute`` at once on the same host.

    Expected: the refusal (a 15-minute lockout is the documented design) says that the
    holder is not running (same host, pid gone) and which key to delete to go on now, or
    when the lock stops counting (a time, not "15 min after it was written").
    Now: a lock written in this very process space (same boot and PID namespace) whose
    process is gone is dead: the next prune removes it and runs (exit 0). From another
    host, the refusal gives the time the lock stops counting and the key.
    Was: exit 5, "another `backups prune` of P is running (host H, pid N, lock written
    T)"; hint "run again when it has finished; a killed prune's lock (KEY) stops counting
    15 min after it was written"."""
    policy = policies[0]
    backups(sandbox, policy, 1)
    code = (
        "import os, signal\n"
        "from datatier.backup.prunelock import PruneLock\n"
        "from datatier.backup.stores import store_for\n"
        "from datatier.config import load\n"
        f"c = load({str(sandbox.config_path)!r}).config\n"
        "s = store_for(c.backup.default_store, c)\n"
        f"PruneLock(s, {policy!r}).acquire()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ}, capture_output=True, timeout=120
    )
    assert killed.returncode == -9, killed.stderr
    assert len(keys(store_of(sandbox), f"{policy}/{FOLDER}")) == 1
    after = prune(sandbox, policy)
    assert after.code == 0, after.err
    assert keys(store_of(sandbox), f"{policy}/{FOLDER}") == []


def test_prunes_of_two_policies_at_once_both_run(
    sandbox: SandboxHandle, policies: tuple[str, str]
) -> None:
    """Held: prunes of two policies at the same time do not block each other; each leaves
    one backup and no lock."""
    for name in policies:
        backups(sandbox, name, 2)
    results: dict[str, Any] = {}
    store = store_of(sandbox)

    def run(name: str) -> None:
        loaded = loaded_config(sandbox)
        chosen = load_policy(loaded, name)
        catalog = open_policy_catalog(loaded, chosen)
        plan = prune_plan(catalog, chosen, datetime.now(UTC), grace=timedelta(0))
        results[name] = prune_execute(catalog, plan)

    threads = [threading.Thread(target=run, args=(n,)) for n in policies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in policies:
        assert results[name].backups == 1, results
        assert keys(store, f"{name}/{FOLDER}") == []


def test_two_prunes_of_one_policy_at_once_one_runs_the_other_deletes_nothing(
    sandbox: SandboxHandle, policies: tuple[str, str]
) -> None:
    """Held: eight prunes of one policy released at once (threads): every one either
    succeeds or raises NotReadyYet; the backups end as one good backup, no lock left."""
    policy = policies[0]
    backups(sandbox, policy, 3)
    loaded = loaded_config(sandbox)
    chosen = load_policy(loaded, policy)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def run() -> None:
        catalog = open_policy_catalog(loaded, chosen)
        plan = prune_plan(catalog, chosen, datetime.now(UTC), grace=timedelta(0))
        barrier.wait()
        try:
            prune_execute(catalog, plan)
            outcomes.append("ran")
        except NotReadyYet:
            outcomes.append("refused")

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 8, outcomes
    store = store_of(sandbox)
    assert keys(store, f"{policy}/{FOLDER}") == []
    listed = cli(sandbox.config_path, PLAIN, "backups", "list", policy, "--all", "--json")
    assert listed.code == 0
    states = [b["state"] for b in listed.json()["backups"]]
    expected = ["complete"] if "ran" in outcomes else ["complete"] * 3  # all may refuse
    assert states == expected, (states, outcomes)
    lock = PruneLock(store, policy)
    lock.acquire()
    lock.release()


def test_a_left_lock_is_not_listed_as_a_backup_nor_pruned_as_a_leftover(
    sandbox: SandboxHandle, policies: tuple[str, str]
) -> None:
    """Held: a lock left in ``P/_prune/`` is not a backup to ``backups list --all`` and a dry
    run plans nothing for it."""
    policy = policies[0]
    (made,) = backups(sandbox, policy, 1)
    store = store_of(sandbox)
    left = PruneLock(store, policy)
    left.acquire()
    try:
        listed = cli(sandbox.config_path, PLAIN, "backups", "list", policy, "--all", "--json")
        assert listed.code == 0, listed.err
        assert [b["id"] for b in listed.json()["backups"]] == [made]
        dry = cli(
            sandbox.config_path, PLAIN, "backups", "prune", policy, "--json", "--grace-hours", "0"
        )
        assert dry.code == 0, dry.err
        assert "_prune" not in dry.out, dry.out
    finally:
        left.release()


def test_accept_etags_beside_a_running_prune_refuses_and_writes_nothing(
    sandbox: SandboxHandle, policies: tuple[str, str]
) -> None:
    """Held: while a prune holds P's lock, ``backups verify ID --accept-etags`` of a backup
    with a copied (multipart) object exits 5 naming the prune, and leaves the manifest
    byte for byte; once the lock is gone it accepts."""
    policy = policies[0]
    loaded = loaded_config(sandbox)
    made = run_backup(loaded, load_policy(loaded, policy))
    store = store_of(sandbox)
    data = next(o for o in made.objects if o.kind == "data")
    copy_multipart(store, data.key)
    manifest = f"{policy}/{made.backup_id}/manifest.json"
    before = store.get_bytes(manifest)
    running = PruneLock(store, policy)
    running.acquire()
    try:
        refused = cli(
            sandbox.config_path, PLAIN, "backups", "verify", made.backup_id, "--accept-etags"
        )
    finally:
        running.release()
    assert refused.code == 5, (refused.code, refused.out, refused.err)
    assert "another `backups prune`" in refused.err, refused.err
    assert store.get_bytes(manifest) == before
    accepted = cli(
        sandbox.config_path, PLAIN, "backups", "verify", made.backup_id, "--accept-etags"
    )
    assert accepted.code == 0, accepted.err
    assert store.get_bytes(manifest) != before
