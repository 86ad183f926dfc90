"""Faults around MySQL backups and restores, on the real sandbox servers.

S3 errors are injected with a botocore ``before-send`` hook on the store's own client (the
request never reaches moto, exactly as if S3 answered 503); MySQL is interrupted with a real
``KILL``; the backup process with a real SIGKILL; Glacier waits with moto's manual
state transitions (see shared/notes/servers.md).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from datatier.backup import service
from datatier.backup.manifest import Manifest
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, run_backup
from datatier.backup.stores import store_for
from datatier.cli import main
from datatier.config import load
from datatier.errors import DatatierError
from datatier.storage.base import ObjectStore, StorageClass
from tests.integration.conftest import SandboxHandle

DB = "fault_db"
RUN = ("backup", "run", "fault-primary")


class FakeRaw:
    """The raw stream botocore reads an injected response body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body

    def read(self, *_: Any, **__: Any) -> bytes:
        body, self._body = self._body, b""
        return body


def slow_down(request: Any, **_: Any) -> AWSResponse:
    body = (
        b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    )
    headers: Any = {"Content-Type": "application/xml"}  # any mapping (the stubs: HTTPHeaders)
    return AWSResponse(request.url, 503, headers, FakeRaw(body))


@pytest.fixture(scope="module")
def fault_data(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        for name in ("a_first", "b_second", "c_third"):
            cur.execute(f"CREATE TABLE {DB}.{name} (id INT PRIMARY KEY, v VARCHAR(100))")
            cur.executemany(
                f"INSERT INTO {DB}.{name} VALUES (%s, %s)",
                [(i, f"value {i}" * 5) for i in range(3000)],
            )
    sandbox.wait_replicated()
    for node in ("replica1", "primary"):
        sandbox.write_policy(
            f"fault-{node}",
            'engine = "mysql"\nbundle_tables = false\n'  # these tests lock one table's objects
            f'[source]\nnode = "{node}"\ndatabases = ["{DB}"]\n',
        )
    yield


def manifests(store: ObjectStore, policy: str) -> list[str]:
    return [o.key for o in store.list_objects(f"{policy}/") if o.key.endswith("manifest.json")]


def hooked_store(monkeypatch: pytest.MonkeyPatch, hook: Any, event: str) -> list[ObjectStore]:
    """Make the backup service's store carry ``hook``; returns the stores it created."""
    made: list[ObjectStore] = []

    def factory(url: str, config: Any, *, lookup: bool = False) -> ObjectStore:
        store = store_for(url, config, lookup=lookup)
        store.client.meta.events.register(event, hook)  # type: ignore[attr-defined]
        made.append(store)
        return store

    monkeypatch.setattr(service, "store_for", factory)
    return made


def test_s3_slowdown_is_retried_then_the_backup_succeeds(
    sandbox: SandboxHandle, fault_data: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}

    def flaky(request: Any, **kw: Any) -> AWSResponse | None:
        calls["n"] += 1
        return slow_down(request) if calls["n"] <= 3 else None

    hooked_store(monkeypatch, flaky, "before-send.s3.PutObject")
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "fault-replica1"))
    assert calls["n"] > 3, "the hook must have been hit and retried past"
    assert {t.name: t.rows for t in manifest.tables} == {
        "a_first": 3000,
        "b_second": 3000,
        "c_third": 3000,
    }


def test_s3_failing_for_good_leaves_no_manifest(
    sandbox: SandboxHandle, fault_data: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(loaded.config.backup.default_store, loaded.config)
    before = manifests(store, "fault-replica1")
    hooked_store(monkeypatch, slow_down, "before-send.s3.PutObject")
    monkeypatch.setenv("DATATIER_S3__MAX_ATTEMPTS", "2")
    loaded = load(str(sandbox.config_path))
    with pytest.raises(DatatierError) as info:
        run_backup(loaded, load_policy(loaded, "fault-replica1"))
    assert info.value.exit_code in (1, 3)
    assert manifests(store, "fault-replica1") == before


class TableLock:
    """Holds LOCK TABLES ... WRITE on the primary so a dump blocks at that table."""

    def __init__(self, sandbox: SandboxHandle, table: str) -> None:
        self.conn = sandbox.connect("primary")
        self.conn.cursor().execute(f"LOCK TABLES {DB}.{table} WRITE")

    def release(self) -> None:
        self.conn.cursor().execute("UNLOCK TABLES")
        self.conn.close()


def blocked_dump_id(sandbox: SandboxHandle, timeout: float = 20) -> int:
    """The connection id of the dump waiting for the table lock."""
    deadline = time.monotonic() + timeout
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE STATE LIKE 'Waiting for table metadata lock%%' AND INFO LIKE 'SELECT%%'"
            )
            row = cur.fetchone()
            if row:
                return int(row[0])
            time.sleep(0.05)
    raise AssertionError("the dump never blocked on the locked table")


def test_mysql_connection_killed_mid_dump_fails_without_manifest(
    sandbox: SandboxHandle, fault_data: None
) -> None:
    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(loaded.config.backup.default_store, loaded.config)
    before = manifests(store, "fault-primary")
    lock = TableLock(sandbox, "b_second")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_backup(loaded, load_policy(loaded, "fault-primary"))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        victim = blocked_dump_id(sandbox)
        with sandbox.connect("primary") as conn, conn.cursor() as cur:
            cur.execute(f"KILL {victim}")
    finally:
        lock.release()
    worker.join(timeout=60)
    assert errors and isinstance(errors[0], DatatierError), errors
    assert "primary" in str(errors[0]), "the error names the node the dump lost"
    assert manifests(store, "fault-primary") == before


def test_sigkill_of_the_backup_process_leaves_no_manifest(
    sandbox: SandboxHandle, fault_data: None, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(loaded.config.backup.default_store, loaded.config)
    before_manifests = manifests(store, "fault-primary")
    before_objects = {o.key for o in store.list_objects("fault-primary/")}
    lock = TableLock(sandbox, "c_third")
    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *RUN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        blocked_dump_id(sandbox)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            new = {o.key for o in store.list_objects("fault-primary/")} - before_objects
            if any("/a_first/data-" in key for key in new):
                break  # an earlier table's data is in S3: we are mid-backup
            time.sleep(0.05)
        else:
            raise AssertionError("no data object was uploaded before the lock")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        lock.release()
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.5)
    leftovers = {o.key for o in store.list_objects("fault-primary/")} - before_objects
    assert leftovers, "the killed run left objects (prune removes them)"
    assert manifests(store, "fault-primary") == before_manifests

    # The next prune removes the killed run's leftovers and keeps every complete backup.
    env_config = ["--config", str(sandbox.config_path)]
    capsys.readouterr()
    assert main([*env_config, "backups", "list", "fault-primary", "--all", "--json"]) == 0
    every = json.loads(capsys.readouterr().out)
    states = [b["state"] for b in every["backups"]]
    assert "incomplete" in states, "--all shows the killed run"
    assert every["count"] == len(states) and every["not_shown"] == {}
    assert main([*env_config, "backups", "list", "fault-primary", "--json"]) == 0
    complete = json.loads(capsys.readouterr().out)
    assert all(b["state"] == "complete" for b in complete["backups"])
    assert complete["not_shown"]["incomplete"] == states.count("incomplete")
    assert complete["count"] + sum(complete["not_shown"].values()) == every["count"]
    assert (
        main([*env_config, "backups", "prune", "fault-primary", "--execute", "--grace-hours", "0"])
        == 0
    )
    remaining = {o.key for o in store.list_objects("fault-primary/")}
    assert not (leftovers & remaining), "prune must delete the incomplete backup's objects"
    assert manifests(store, "fault-primary") == before_manifests


def test_restore_from_glacier_exits_5_then_waits_and_matches(
    use_sandbox_config: SandboxHandle,
    fault_data: None,
    slow_glacier: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    manifest: Manifest = run_backup(loaded, load_policy(loaded, "fault-replica1"))
    _, store = find_backup(loaded, manifest.backup_id)
    for obj in manifest.objects:
        store.set_storage_class(obj.key, StorageClass.GLACIER)
    assert all(store.head(o.key).is_archived for o in manifest.objects)
    copy = "fault_glacier"
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {copy}")

    args = ["restore", manifest.backup_id, "--rename", f"{DB}={copy}"]
    assert main([*args, "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["archived"] == len(manifest.objects) and report["restore_requested"] == 0
    assert all(store.head(o.key).restore.value == "none" for o in manifest.objects)

    assert main([*args, "--no-wait", "--tier", "Bulk"]) == 5
    err = capsys.readouterr().err
    assert "still being restored" in err and "run the same command again later" in err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (copy,)
        )
        assert cur.fetchone()[0] == 0

    assert main([*args, "--wait", "--poll", "0.05"]) == 0
    with sandbox.connect() as conn, conn.cursor() as cur:
        for table in ("a_first", "b_second", "c_third"):
            cur.execute(f"CHECKSUM TABLE {DB}.{table}, {copy}.{table}")
            original, restored = (row[1] for row in cur.fetchall())
            assert original == restored
        cur.execute(f"DROP DATABASE {copy}")


def test_sigterm_stops_the_backup_cleanly_without_manifest(
    sandbox: SandboxHandle, fault_data: None
) -> None:
    """cron/systemd/Kubernetes stop with SIGTERM: exit 143, the dump process is gone, no
    manifest and no multipart upload is left open."""
    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(loaded.config.backup.default_store, loaded.config)
    before = manifests(store, "fault-primary")
    lock = TableLock(sandbox, "c_third")
    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *RUN],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        victim = blocked_dump_id(sandbox)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        lock.release()
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s", (victim,))
        assert cur.fetchone()[0] == 0, "the dump's connection must be gone"
    assert manifests(store, "fault-primary") == before
    assert list(store.list_incomplete_uploads("fault-primary/")) == []
