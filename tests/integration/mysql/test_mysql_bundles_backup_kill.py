"""SIGKILL of ``datatier backup run`` while a bundle object (small tables dumped together,
:mod:`datatier.mysql.pdump`) is in flight, on the real sandbox: one bundled table is held
by ``LOCK TABLES ... WRITE`` so its bundle's worker blocks after another bundle went to S3
(the lock also holds the backup lock back: one snapshot, one worker). The killed run writes
no manifest, the earlier backup still restores every table, a prune keeps the complete
backups, and the next run succeeds and restores."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.backup.stores import store_for
from datatier.cli import main
from datatier.config import load
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.test_mysql_faults import blocked_dump_id
from tests.integration.mysql.test_restore_kill import state

SRC, DST = "bk_kill_src", "bk_kill_dst"
POLICY = "bundles-backup-kill"
RUN = ("backup", "run", POLICY)
TABLES = [f"t{i:02d}" for i in range(80)]
HELD = TABLES[-1]
"""The held table also holds the global lock back, so the killed run falls back to one
snapshot, one worker: bundles of 64 and 16 tables, the larger (without HELD) first."""


def manifests(store: ObjectStore) -> list[str]:
    return sorted(
        o.key for o in store.list_objects(f"{POLICY}/") if o.key.endswith("manifest.json")
    )


def listed(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, str]:
    """``backups list`` of the policy: each backup's state by id."""
    capsys.readouterr()
    assert main(["backups", "list", POLICY, *flags, "--json"]) == 0
    return {b["id"]: b["state"] for b in json.loads(capsys.readouterr().out)["backups"]}


def restore_matches(sandbox: SandboxHandle, backup_id: str) -> None:
    argv = ["restore", backup_id, "--rename", f"{SRC}={DST}", "--force"]
    assert main(argv) == 0
    restored = state(sandbox, DST)
    assert sorted(restored) == TABLES
    assert restored == state(sandbox, SRC)


@pytest.fixture
def small_tables(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {SRC}")
        for n, table in enumerate(TABLES):
            cur.execute(f"CREATE TABLE {SRC}.{table} (id INT PRIMARY KEY, v TEXT)")
            cur.executemany(
                f"INSERT INTO {SRC}.{table} VALUES (%s, %s)",
                [(i, f"{table} {i} ';\n") for i in range(n + 1)],
            )
    sandbox.wait_replicated()
    # Default bundle_tables (true); the primary, whose snapshot a LOCK TABLES does not hold.
    sandbox.write_policy(
        POLICY, f'engine = "mysql"\njobs = 2\n[source]\nnode = "primary"\ndatabases = ["{SRC}"]\n'
    )
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SRC, DST):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")


def test_sigkill_while_a_bundle_is_in_flight_leaves_no_manifest(
    use_sandbox_config: SandboxHandle, small_tables: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(loaded.config.backup.default_store, loaded.config)
    good = run_backup(loaded, load_policy(loaded, POLICY))
    bundles = [o for o in good.objects if o.kind == "bundle"]
    assert len(bundles) >= 2 and not [o for o in good.objects if o.kind == "data"]
    before_manifests = manifests(store)
    known = listed(capsys, "--all")  # a kept sandbox may hold earlier runs
    before_objects = {o.key for o in store.list_objects(f"{POLICY}/")}

    lock = sandbox.connect("primary")
    with lock.cursor() as cur:
        cur.execute(f"LOCK TABLES {SRC}.{HELD} WRITE")
    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *RUN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        blocked_dump_id(sandbox, timeout=60)  # the held table's bundle worker waits
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = {o.key for o in store.list_objects(f"{POLICY}/")} - before_objects
            if any("/_bundle-" in key for key in new):
                break  # another bundle is in S3 while the held one is open: mid-backup
            time.sleep(0.05)
        else:
            raise AssertionError("no other bundle was uploaded while one was held")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with lock.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        lock.close()
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)
    leftovers = {o.key for o in store.list_objects(f"{POLICY}/")} - before_objects
    assert any("/_bundle-" in key for key in leftovers), "the killed run left a bundle"
    assert manifests(store) == before_manifests, "no manifest for the killed run"

    every = listed(capsys, "--all")
    killed = [i for i, state in every.items() if state == "incomplete" and i not in known]
    assert len(killed) == 1, "--all shows the killed run, incomplete"
    shown = listed(capsys)
    assert shown[good.backup_id] == "complete" and killed[0] not in shown
    assert set(shown.values()) == {"complete"}

    restore_matches(sandbox, good.backup_id)  # the earlier backup is intact

    assert main(["backups", "prune", POLICY, "--execute", "--grace-hours", "0"]) == 0
    remaining = {o.key for o in store.list_objects(f"{POLICY}/")}
    assert not (leftovers & remaining), "prune deletes the killed run's objects"
    complete = {k for k in before_objects if known.get(k.split("/")[1]) == "complete"}
    assert any(good.backup_id in k for k in complete) and complete <= remaining, (
        "prune keeps every object of the complete backups"
    )
    assert manifests(store) == before_manifests

    rerun = run_backup(loaded, load_policy(loaded, POLICY))
    assert rerun.backup_id != good.backup_id
    assert {t.name: t.rows for t in rerun.tables} == {t: n + 1 for n, t in enumerate(TABLES)}
    restore_matches(sandbox, rerun.backup_id)
    restore_matches(sandbox, good.backup_id)  # the prune and the rerun left it whole
