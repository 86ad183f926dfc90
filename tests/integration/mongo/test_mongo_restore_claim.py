"""Two Mongo restores into one database at once (:mod:`datatier.mongo.claim`), on the
sandbox's FerretDB (``mongo``) and mongo-java-server (``mongo2``, whose database names may
hold odd bytes): the second is refused with exit 5 before it changes anything and names the
first (host, pid), the first still restores every document once; a killed restore's lease
is refused until it lapses and then taken over; a failed restore releases its claim; a dry
run takes none; a holder whose lease was taken over makes no further write, and names a
write slow enough to have landed after the takeover; renewals never shorten a lease.

Reproduction before the fix: the second ``--drop`` restore exited 0 beside the first, and
the target held documents of both (duplicated).

The first restore is held mid-load with SIGSTOP as soon as its documents start to arrive
(the old one dropped, some of the new ones in: several insert batches of ~4 MB each), and
let go with SIGCONT.
"""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.config import MongoServer
from datatier.errors import NotReadyYet, OperationFailed
from datatier.mongo.claim import COLLECTION, DATABASE, Leases, claim_databases, claim_id
from tests.integration.conftest import SandboxHandle, wait_for
from tests.integration.integrity import clear_prefix, default_store, loaded_config

SRC = "mclaim_src"
# What each server accepts as a database name (FerretDB v1: ASCII letters, digits, _ and -).
DST = {"mongo": "mclaim-Dst_9", "mongo2": "mclaim_数据`;'\x01#%"}
DOCS = 40_000
PAD = "p" * 400  # 40,000 documents of ~440 bytes: four insert batches and more


@dataclass
class Target:
    """One server of the sandbox, a backup of SRC taken from it, and its restore target."""

    sandbox: SandboxHandle
    name: str
    manifest: Manifest
    dst: str

    @property
    def settings(self) -> MongoServer:
        return self.sandbox.config.mongo.server(None if self.name == "mongo" else self.name)

    def client(self) -> pymongo.MongoClient[dict[str, Any]]:
        return pymongo.MongoClient(self.settings.uri, serverSelectionTimeoutMS=3000)

    def restore(self, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "datatier", "--config", str(self.sandbox.config_path),
            "restore", self.manifest.backup_id, "--rename", f"{SRC}={self.dst}", *extra,
        ]  # fmt: skip

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.restore(*extra), capture_output=True, text=True, timeout=300, check=False
        )

    def loading(self) -> bool:
        """Whether a restore is part-way through loading ``t``: the old document gone, some
        (not all) of the new ones in."""
        with self.client() as c:
            coll = c[self.dst]["t"]
            return coll.find_one({"_id": -1}) is None and 0 < coll.count_documents({}) < DOCS

    def lease(self) -> dict[str, Any] | None:
        with self.client() as c:
            found: dict[str, Any] | None = c[DATABASE][COLLECTION].find_one(
                {"_id": claim_id(self.dst)}
            )
        return found

    def contents(self) -> list[tuple[Any, ...]]:
        """Every document of the target (sorted), the same form for any server."""
        with self.client() as c:
            docs = c[self.dst]["t"].find({}, {"_id": 1, "n": 1, "old": 1})
            return sorted((d["_id"], d.get("n"), d.get("old")) for d in docs)

    def source(self) -> list[tuple[Any, ...]]:
        return [(i, i, None) for i in range(DOCS)]


@pytest.fixture(scope="module", params=["mongo", "mongo2"])
def target(request: pytest.FixtureRequest, sandbox: SandboxHandle) -> Iterator[Target]:
    name = str(request.param)
    probe = Target(sandbox, name, None, DST[name])  # type: ignore[arg-type]
    with probe.client() as c:
        c.drop_database(SRC)
        c.drop_database(probe.dst)
        c[SRC]["t"].insert_many([{"_id": i, "n": i, "pad": PAD} for i in range(DOCS)])
    policy = f"mongo-claim-{name}"
    server = f'server = "{name}"\n' if name != "mongo" else ""
    sandbox.write_policy(policy, f'engine = "mongo"\n[source]\n{server}databases = ["{SRC}"]\n')
    clear_prefix(default_store(sandbox), policy)
    loaded = loaded_config(sandbox)
    probe.manifest = run_backup(loaded, load_policy(loaded, policy))
    yield probe
    with probe.client() as c:
        c.drop_database(SRC)
        c.drop_database(probe.dst)
        c[DATABASE][COLLECTION].delete_many({"_id": claim_id(probe.dst)})


@pytest.fixture
def old_target(target: Target) -> Iterator[Target]:
    """The target holding an older ``t`` (one document, ``_id`` -1) and no lease."""
    with target.client() as c:
        c.drop_database(target.dst)
        c[target.dst]["t"].insert_one({"_id": -1, "old": 1})
        c[DATABASE][COLLECTION].delete_many({"_id": claim_id(target.dst)})
    yield target
    with target.client() as c:
        c[DATABASE][COLLECTION].delete_many({"_id": claim_id(target.dst)})


@pytest.fixture
def stopped(old_target: Target) -> Iterator[subprocess.Popen[str]]:
    """A ``--drop`` restore into the target, stopped (SIGSTOP) part-way through its load."""
    proc = subprocess.Popen(
        old_target.restore("--drop", "--jobs", "1"),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as at a terminal
    )
    try:
        wait_for(old_target.loading, timeout=120, step=0.002)
        proc.send_signal(signal.SIGSTOP)
        assert proc.poll() is None and old_target.loading(), "stopped mid-load"
        counts = [-1]  # the batch it had sent still lands: wait until the count settles

        def settled() -> bool:
            counts.append(len(old_target.contents()))
            return counts[-1] == counts[-2]

        wait_for(settled, timeout=30, step=0.5)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.send_signal(signal.SIGCONT)
        proc.communicate()


def error_of(done: subprocess.CompletedProcess[str]) -> str:
    (doc,) = [json.loads(line) for line in done.stderr.splitlines() if '"error"' in line]
    return str(doc["error"])


def test_a_second_restore_is_refused_naming_the_first_which_completes(
    old_target: Target, stopped: subprocess.Popen[str]
) -> None:
    assert old_target.lease() is not None, "the loading restore holds its claim"
    before = old_target.contents()
    second = old_target.run("--drop")
    assert second.returncode == 5, second.stderr
    error = error_of(second)
    assert error.startswith(f"another restore into {old_target.dst!r}")
    assert f"pid {stopped.pid}," in error and "its claim lapses at" in error
    assert old_target.contents() == before, "the refused restore changed nothing"
    stopped.send_signal(signal.SIGCONT)
    _, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 0, err
    assert old_target.contents() == old_target.source(), "every document once, none old"
    assert old_target.lease() is None, "the claim ends with the restore"


def test_a_killed_restores_lease_is_refused_until_it_lapses_then_taken_over(
    old_target: Target, stopped: subprocess.Popen[str]
) -> None:
    stopped.kill()
    stopped.wait(timeout=30)
    held = old_target.lease()
    assert held is not None and held["pid"] == stopped.pid, "a killed restore's lease stays"
    again = old_target.run("--drop")
    assert again.returncode == 5, again.stderr
    lapses = held["expires"].replace(tzinfo=datetime.UTC).isoformat(timespec="seconds")
    assert f"its claim lapses at {lapses}" in error_of(again)
    with old_target.client() as c:  # a lease later: as if its 60 s had passed
        past = held["started"] - datetime.timedelta(seconds=1)
        c[DATABASE][COLLECTION].update_one({"_id": held["_id"]}, {"$set": {"expires": past}})
    after = old_target.run("--drop")
    assert after.returncode == 0, after.stderr
    assert "restore.claim_taken_over" in after.stderr
    assert old_target.contents() == old_target.source()
    assert old_target.lease() is None


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_releases_the_claim(
    old_target: Target, stopped: subprocess.Popen[str], signum: signal.Signals, code: int
) -> None:
    assert old_target.lease() is not None
    stopped.send_signal(signum)
    stopped.send_signal(signal.SIGCONT)
    _, err = stopped.communicate(timeout=60)
    assert stopped.returncode == code, err
    assert "Traceback" not in err
    assert old_target.lease() is None, "released on the way out"


def test_a_failed_restore_releases_its_claim(old_target: Target) -> None:
    with old_target.client() as c:  # --force inserts beside it: a duplicate key fails it
        c[old_target.dst]["t"].insert_one({"_id": 5, "old": 1})
    failed = old_target.run("--force")
    assert failed.returncode == 1, failed.stderr
    assert "duplicate key" in error_of(failed).lower()
    assert old_target.lease() is None


def test_a_dry_run_takes_no_claim_and_a_held_claim_changes_nothing(old_target: Target) -> None:
    before = old_target.contents()
    with claim_databases(old_target.settings, [old_target.dst]):  # as another restore would
        dry = old_target.run("--drop", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        real = old_target.run("--drop")
        assert real.returncode == 5, real.stderr
        assert error_of(real).startswith(f"another restore into {old_target.dst!r}")
    assert old_target.contents() == before, "nothing changed"
    assert old_target.lease() is None


def test_leases_are_all_or_nothing_renewed_and_released_on_ctrl_c(old_target: Target) -> None:
    settings, dst = old_target.settings, old_target.dst
    other = "mclaim_other"
    with claim_databases(settings, [dst]):
        with pytest.raises(NotReadyYet), claim_databases(settings, [other, dst]):
            pass
        with old_target.client() as c:
            assert c[DATABASE][COLLECTION].find_one({"_id": claim_id(other)}) is None
    with (
        pytest.raises(KeyboardInterrupt),
        claim_databases(settings, [dst], lease=2, heartbeat=0.2) as leases,
    ):
        assert leases is not None
        first = old_target.lease()
        assert first is not None
        wait_for(lambda: old_target.lease() != first, timeout=5)  # renewed
        renewed = old_target.lease()
        assert renewed is not None and renewed["expires"] > first["expires"]
        raise KeyboardInterrupt
    assert leases is not None and not leases.running, "the heartbeat stops"
    assert old_target.lease() is None, "released on Ctrl-C"


def test_a_lease_taken_over_while_held_fails_the_restore_at_the_end(old_target: Target) -> None:
    settings = old_target.settings
    with old_target.client() as c:
        later = Leases(c, "test", lease=60)
        with (
            pytest.raises(OperationFailed, match="was taken over while it ran"),
            claim_databases(settings, [old_target.dst], lease=1, heartbeat=30) as leases,
        ):
            assert leases is not None  # its heartbeat is late: the lease lapses
            wait_for(lambda: _taken(later, old_target.dst), timeout=5, step=0.2)
            leases.renew()
        held = old_target.lease()
        assert held is not None and held["token"] == later.token, "the other's lease is kept"
        later.release()
    assert old_target.lease() is None


def _taken(leases: Leases, database: str) -> bool:
    try:
        leases.take([database])
    except NotReadyYet:
        return False
    return True


def test_a_backup_never_carries_leases(target: Target) -> None:
    """A restore of a backup holding a lease would bring back a claim nobody renews."""
    policy = f"mongo-claim-dump-{target.name}"
    server = f'server = "{target.name}"\n' if target.name != "mongo" else ""
    target.sandbox.write_policy(
        policy, f'engine = "mongo"\n[source]\n{server}databases = ["{DATABASE}", "{SRC}"]\n'
    )
    clear_prefix(default_store(target.sandbox), policy)
    loaded = loaded_config(target.sandbox)
    with claim_databases(target.settings, [target.dst]):
        manifest = run_backup(loaded, load_policy(loaded, policy))
    assert not [o.key for o in manifest.objects if o.database == DATABASE]
    assert {(o.database, o.table) for o in manifest.objects if o.table} == {(SRC, "t")}


def test_an_every_database_backup_does_not_list_the_lease_database(target: Target) -> None:
    """Reproduction: restore once (the target now has ``datatier.restore_claims``), then back
    up every database: the manifest listed an empty ``datatier`` database (datatier's own
    bookkeeping, never the user's data) as one the backup holds."""
    policy = f"mongo-claim-all-{target.name}"
    server = f'server = "{target.name}"\n' if target.name != "mongo" else ""
    target.sandbox.write_policy(policy, f'engine = "mongo"\n[source]\n{server}')
    clear_prefix(default_store(target.sandbox), policy)
    loaded = loaded_config(target.sandbox)
    with claim_databases(target.settings, [target.dst]):  # the lease database exists
        manifest = run_backup(loaded, load_policy(loaded, policy))
    assert SRC in manifest.databases
    assert DATABASE not in manifest.databases


def test_a_write_after_the_lease_was_taken_over_is_not_made(old_target: Target) -> None:
    """A paused holder (its lease lapsed and taken over meanwhile) asks the server before
    its next write, and makes none; its error says it wrote nothing after the loss."""
    settings = old_target.settings
    with old_target.client() as c:
        later = Leases(c, "test", lease=60)
        with (
            pytest.raises(OperationFailed, match="wrote nothing after losing it"),
            claim_databases(settings, [old_target.dst], lease=1, heartbeat=30) as leases,
        ):
            assert leases is not None
            with leases.writing("first write"):
                pass  # the lease is ours: the write is made
            wait_for(lambda: _taken(later, old_target.dst), timeout=5, step=0.2)
            written: list[int] = []
            with leases.writing("second write"):
                written.append(1)
        assert not written, "the write after the takeover was not made"
        assert leases is not None and leases.lost == [old_target.dst] and not leases.late
        held = old_target.lease()
        assert held is not None and held["token"] == later.token
        later.release()


def test_a_write_slower_than_half_a_lease_is_checked_after_it(old_target: Target) -> None:
    """A write that returns after half its lease may have landed after a takeover: it is
    checked at once, and named if the lease is gone."""
    with old_target.client() as c:
        later = Leases(c, "test", lease=60)
        with (
            pytest.raises(OperationFailed, match="may have landed after") as failed,
            claim_databases(old_target.settings, [old_target.dst], lease=1, heartbeat=30) as held,
        ):
            assert held is not None
            with held.writing("slow insert"):  # paused in flight past its lease, and taken over
                wait_for(lambda: _taken(later, old_target.dst), timeout=5, step=0.2)
        assert "slow insert" in str(failed.value)
        later.release()


def test_renewals_never_move_a_lease_back(old_target: Target) -> None:
    """The heartbeat's and a writer's renewals cross on the wire: the older one arriving
    last must not shorten the lease (``$max``), on either server."""
    with claim_databases(old_target.settings, [old_target.dst], heartbeat=30) as leases:
        assert leases is not None
        far = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
        with old_target.client() as c:
            c[DATABASE][COLLECTION].update_one(
                {"_id": claim_id(old_target.dst)}, {"$set": {"expires": far}}
            )
        leases.renew()
        held = old_target.lease()
        assert held is not None and held["expires"].replace(tzinfo=datetime.UTC) == far
        assert leases.held == [old_target.dst]
    assert old_target.lease() is None
