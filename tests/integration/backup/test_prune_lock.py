"""One executing ``backups prune`` per policy (``datatier.backup.prunelock``), against the
sandbox's real S3 server and MariaDB primary.

Review M2 of the prune claims: two prunes of one policy at once undo each other's
protection. A prune removes as stale a claim on a backup its own plan keeps, so a prune
that planned otherwise (and is between claiming that backup and deleting it) loses its
claim; an incremental completing on that backup then sees no claim and passes, and the
backup it needs is deleted under it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from datatier.backup import prunelock
from datatier.backup.parents import PRUNE_CLAIM
from datatier.backup.prune import prune_execute, prune_plan
from datatier.backup.prunelock import FOLDER, PruneLock
from datatier.backup.service import load_policy, open_policy_catalog
from datatier.backup.stores import store_for
from datatier.errors import NotReadyYet, OperationFailed
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.integrity import loaded_config

POLICY = "prune-lock"
DB = "prune_lock_db"
PLAIN: dict[str, str] = {}


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


def keys(store: ObjectStore, prefix: str) -> list[str]:
    """The keys under ``prefix`` but the job records (``_status/``: a refused prune is one)."""
    return sorted(o.key for o in store.list_objects(prefix) if "/_status/" not in o.key)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused lock is tried again after 1-6 s: a fraction of that here."""
    monkeypatch.setattr(prunelock, "BACKOFF", (0.0, 0.2))


@pytest.fixture
def policy(sandbox: SandboxHandle) -> Iterator[str]:
    store = store_of(sandbox)
    store.delete(keys(store, f"{POLICY}/"))
    sandbox.write_policy(
        POLICY,
        f'engine = "mysql"\n[source]\nnode = "primary"\ndatabases = ["{DB}"]\n'
        "[retention]\nkeep_last = 1\nmin_age_days = 0\n",
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        cur.execute(f"CREATE TABLE IF NOT EXISTS {DB}.t (id INT PRIMARY KEY)")
        cur.execute(f"REPLACE INTO {DB}.t VALUES (1), (2)")
    yield POLICY
    store.delete(keys(store, f"{POLICY}/"))
    (sandbox.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")


def test_a_prune_beside_a_running_one_leaves_its_claims_alone(
    sandbox: SandboxHandle, policy: str
) -> None:
    """Steps: backup X of a policy that keeps one; prune A is executing and has claimed X
    (its plan deletes X; here its lock and claim are written as A writes them); meanwhile
    ``backups prune P --execute`` (B), whose plan keeps X.

    Expected: B refuses (exit 5, another prune is running), deletes nothing, and A's claim
    and lock stay: an incremental completing on X now still sees the claim.

    Was (fixed): B exited 0 and deleted A's claim on X as stale (``PrunePlan.stale_claims``):
    the incremental's parent check then passed while A went on to delete X."""
    made = cli(sandbox.config_path, PLAIN, "backup", "run", policy, "--json")
    assert made.code == 0, made.err
    backup_id = made.json()["id"]
    store = store_of(sandbox)
    running = PruneLock(store, policy)
    running.acquire()
    claim = f"{policy}/{backup_id}/{PRUNE_CLAIM}"
    store.put_bytes(claim, b'{"by": "datatier backups prune"}')
    before = keys(store, f"{policy}/")

    beside = cli(
        sandbox.config_path, PLAIN, "backups", "prune", policy, "--execute", "--grace-hours", "0"
    )

    assert keys(store, f"{policy}/") == before  # the claim, the lock, the backup: all there
    assert beside.code == 5, (beside.code, beside.out, beside.err)
    assert f"another `backups prune` of {policy} is running" in beside.err, beside.err
    running.release()
    store.delete([claim])
    after = cli(
        sandbox.config_path, PLAIN, "backups", "prune", policy, "--execute", "--grace-hours", "0"
    )
    assert after.code == 0, after.err
    assert keys(store, f"{policy}/{FOLDER}") == []  # the lock is released


def test_an_expired_lock_is_removed_and_a_live_one_refuses(
    sandbox: SandboxHandle, policy: str
) -> None:
    """A killed prune's lock counts for ``ttl`` after it was written (the store's clock),
    then the next prune takes the lock and deletes it; a refused prune leaves no lock."""
    store = store_of(sandbox)
    killed = PruneLock(store, policy, ttl=5.0)
    killed.acquire()  # never released: its process was killed
    second = PruneLock(store, policy, ttl=5.0)
    with pytest.raises(NotReadyYet, match="another `backups prune`"):
        second.acquire()
    assert keys(store, f"{policy}/{FOLDER}") == [killed.key]
    time.sleep(7)  # last-modified times have whole-second resolution on some stores
    third = PruneLock(store, policy, ttl=5.0)
    third.acquire()
    assert keys(store, f"{policy}/{FOLDER}") == [third.key]
    third.release()
    assert keys(store, f"{policy}/{FOLDER}") == []


def test_a_prune_releases_its_lock_when_it_fails(
    sandbox: SandboxHandle, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune that fails mid-way (the store refuses a delete) raises that error and leaves
    no lock (the next prune is not refused for 15 minutes)."""
    for _ in range(2):
        made = cli(sandbox.config_path, PLAIN, "backup", "run", policy)
        assert made.code == 0, made.err
    loaded = loaded_config(sandbox)
    chosen = load_policy(loaded, policy)
    catalog = open_policy_catalog(loaded, chosen)
    plan = prune_plan(catalog, chosen, datetime.now(UTC), grace=timedelta(0))
    assert len(plan.delete) == 1, plan
    real_delete = type(catalog.store).delete

    def refuse_data(self: ObjectStore, doomed: Iterable[str]) -> None:
        listed = list(doomed)
        if any("/data/" in k for k in listed):
            raise OSError("the store refused the delete")
        real_delete(self, listed)

    monkeypatch.setattr(type(catalog.store), "delete", refuse_data)
    with pytest.raises(OSError, match="refused"):
        prune_execute(catalog, plan)
    monkeypatch.setattr(type(catalog.store), "delete", real_delete)
    assert keys(catalog.store, f"{policy}/{FOLDER}") == []


def test_two_prunes_started_together_never_both_hold_the_lock(
    sandbox: SandboxHandle, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two prunes (cron on two hosts) take the lock at the same moment, with the real
    back-off: both see each other at first, back off a random while and try again; exactly
    one holds the lock, the other is refused."""
    monkeypatch.setattr(prunelock, "BACKOFF", (1.0, 6.0))
    store = store_of(sandbox)
    locks = [PruneLock(store, policy), PruneLock(store, policy)]
    outcome: dict[int, str] = {}
    gate = threading.Barrier(2)

    def take(n: int) -> None:
        gate.wait()
        try:
            locks[n].acquire()
            outcome[n] = "held"
        except NotReadyYet:
            outcome[n] = "refused"

    runners = [threading.Thread(target=take, args=(n,)) for n in (0, 1)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert sorted(outcome.values()) == ["held", "refused"], outcome
    holder = next(n for n, how in outcome.items() if how == "held")
    assert keys(store, f"{policy}/{FOLDER}") == [locks[holder].key]
    locks[holder].release()


def test_a_prune_paused_past_its_lock_stops_before_deleting_more(
    sandbox: SandboxHandle, policy: str
) -> None:
    """A prune paused longer than its lock lasts (a suspended VM, SIGSTOP) may have been
    taken over by another: at its next step it fails (lost its lock) instead of deleting
    by its old plan."""
    store = store_of(sandbox)
    paused = PruneLock(store, policy, ttl=3.0)
    paused.acquire()
    time.sleep(5)
    other = PruneLock(store, policy, ttl=3.0)
    other.acquire()  # the paused one's lock has expired: removed
    with pytest.raises(OperationFailed, match="lost its lock"):
        paused.check()
    other.release()
