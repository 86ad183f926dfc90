"""Shared data and helpers of the integrity tests (issue 12): a small database on the
sandbox, policies over it, a table lock that holds a dump mid-way, store helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.stores import store_for
from datatier.cli import main
from datatier.config import LoadedConfig, load
from datatier.storage.base import ObjectStore
from datatier.storage.s3 import S3Store
from tests.integration.conftest import SandboxHandle

DB = "integ_db"
TABLES = ("a_first", "b_second", "c_third")


def loaded_config(sandbox: SandboxHandle) -> LoadedConfig:
    return load(str(sandbox.config_path), environ={})


def default_store(sandbox: SandboxHandle) -> ObjectStore:
    loaded = loaded_config(sandbox)
    return store_for(loaded.config.backup.default_store, loaded.config)


def manifests(store: ObjectStore, policy: str) -> list[str]:
    return [o.key for o in store.list_objects(f"{policy}/") if o.key.endswith("manifest.json")]


@pytest.fixture(scope="module")
def integ_data(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        for name in TABLES:
            cur.execute(f"CREATE TABLE {DB}.{name} (id INT PRIMARY KEY, v VARCHAR(100))")
            cur.executemany(
                f"INSERT INTO {DB}.{name} VALUES (%s, %s)",
                [(i, f"value {i}" * 5) for i in range(3000)],
            )
    sandbox.wait_replicated()
    yield


def policy(sandbox: SandboxHandle, name: str, extra: str = "", node: str = "primary") -> str:
    """Write policy ``name`` over the test database and empty its prefix in the default
    store (a kept sandbox may hold an earlier run's backups)."""
    sandbox.write_policy(
        name,
        # One object per table: these tests aim at a given table's data objects (bundles
        # have their own: tests/integration/mysql/test_mysql_bundles.py).
        'engine = "mysql"\nchunk_mb = 1\nbundle_tables = false\n'
        f'[source]\nnode = "{node}"\ndatabases = ["{DB}"]\n' + extra,
    )
    clear_prefix(default_store(sandbox), name)
    return name


def clear_prefix(store: ObjectStore, name: str) -> None:
    store.delete([o.key for o in store.list_objects(f"{name}/")])


class TableLock:
    """Holds LOCK TABLES ... WRITE on the primary so a dump blocks at that table."""

    def __init__(self, sandbox: SandboxHandle, table: str) -> None:
        self.conn = sandbox.connect("primary")
        self.conn.cursor().execute(f"LOCK TABLES {DB}.{table} WRITE")

    def release(self) -> None:
        self.conn.cursor().execute("UNLOCK TABLES")
        self.conn.close()


def wait_for_object(store: ObjectStore, prefix: str, fragment: str, timeout: float = 30) -> str:
    """The first key under ``prefix`` containing ``fragment`` (polls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for info in store.list_objects(prefix):
            if fragment in info.key:
                return info.key
        time.sleep(0.05)
    raise AssertionError(f"no object with {fragment!r} under {prefix} within {timeout} s")


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else None


def waiting_client(sandbox: SandboxHandle, timeout: float = 30) -> Any:
    """The restore's client connection blocked on the locked table."""
    deadline = time.monotonic() + timeout
    with sandbox.connect() as conn, conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE STATE LIKE 'Waiting for table metadata lock%%' AND INFO LIKE 'DROP%%'"
            )
            row = cur.fetchone()
            if row:
                return row[0]
            time.sleep(0.05)
    raise AssertionError("the restore never blocked on the locked table")


def backup_keys(store: ObjectStore, policy: str) -> list[str]:
    """Every key of ``policy``'s backups, leaving out its job records (``_status/``, written
    for metrics by every CLI run, good or bad)."""
    return [o.key for o in store.list_objects(f"{policy}/") if "/_status/" not in o.key]


def failure_line(err: str) -> str:
    """The failure a command reported last, as its plain line reads (``datatier: error:
    ...``): that line itself, or, when logs are JSON (stderr is not a terminal), the same
    text rebuilt from the failure's one JSON line."""
    last = err.strip().splitlines()[-1]
    if not last.startswith("{"):
        return last
    doc = json.loads(last)
    hint = f" ({doc['hint']})" if doc.get("hint") else ""
    if doc.get("exit_code") in (130, 143):
        return f"datatier: {doc['error']}"
    return f"datatier: error: {doc['error']}{hint}"


def copy_multipart(store: ObjectStore, key: str, data: bytes | None = None) -> None:
    """Write ``key`` again in a one-part multipart upload (its own bytes unless ``data``):
    what `aws s3 cp` and similar tools do with large objects; the ETag is a multipart one."""
    assert isinstance(store, S3Store)
    body = store.get_bytes(key) if data is None else data
    full = store._full(key)
    client, bucket = store.client, store.bucket
    upload = client.create_multipart_upload(Bucket=bucket, Key=full)["UploadId"]
    part = client.upload_part(Bucket=bucket, Key=full, UploadId=upload, PartNumber=1, Body=body)
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=full,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
