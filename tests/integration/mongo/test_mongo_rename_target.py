"""Mongo ``restore --rename SRC=DST`` into a name that is not a user database: ``local``,
``admin`` and ``config`` belong to the server (a collection ``oplog.rs`` renamed into
``local`` with ``--drop`` dropped the replica set's oplog, exit 0), and a name MongoDB
refuses (``a b``, ``x.y``, 64 bytes) failed part-way with exit 1. Both are refused at plan
time, exit 2, and the server is left as it was. On the sandbox's mongo2 (it has an oplog)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store, failure_line, loaded_config

DB = "mongo_rn_sys"
POLICY = "mongo-rename-system"


def client(sandbox: SandboxHandle) -> pymongo.MongoClient[Any]:
    uri = sandbox.config.mongo.servers["mongo2"].uri
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000)


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle) -> Iterator[Manifest]:
    """A backup of DB, whose one collection is named like the server's oplog."""
    with client(sandbox) as c:
        c.drop_database(DB)
        c[DB]["oplog.rs"].insert_many([{"n": i} for i in range(3)])
    sandbox.write_policy(
        POLICY, f'engine = "mongo"\n[source]\nserver = "mongo2"\ndatabases = ["{DB}"]\n'
    )
    clear_prefix(default_store(sandbox), POLICY)
    loaded = loaded_config(sandbox)
    yield run_backup(loaded, load_policy(loaded, POLICY))
    with client(sandbox) as c:
        c.drop_database(DB)


def test_rename_into_local_with_drop_is_refused_and_the_oplog_kept(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: exit 0, and local.oplog.rs held the 3 backed-up documents only."""
    with client(use_sandbox_config) as c:
        before = c.local["oplog.rs"].estimated_document_count()
    assert before > 3
    capsys.readouterr()
    assert main(["restore", backup.backup_id, "--rename", f"{DB}=local", "--drop"]) == 2
    assert "'local' is the server's own database" in failure_line(capsys.readouterr().err)
    with client(use_sandbox_config) as c:
        assert c.local["oplog.rs"].estimated_document_count() >= before
        assert c.local["oplog.rs"].count_documents({"n": {"$exists": True}}) == 0


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("admin", "is the server's own database"),
        ("config", "is the server's own database"),
        ("a b", "holds ' '"),
        ("x.y", "holds '.'"),
        ("a$b", "holds '$'"),
        ("a/b", "holds '/'"),
        ("d" * 64, "64 bytes"),
    ],
)
def test_rename_into_a_name_mongodb_refuses_exits_2_and_changes_nothing(
    use_sandbox_config: SandboxHandle,
    backup: Manifest,
    target: str,
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: `a b`, `x.y`, `a$b`, `a/b` failed with exit 1 (the driver's error);
    64 bytes and admin/config were restored into."""
    with client(use_sandbox_config) as c:
        before = set(c.list_database_names())
    capsys.readouterr()
    assert main(["restore", backup.backup_id, "--rename", f"{DB}={target}"]) == 2
    line = failure_line(capsys.readouterr().err)
    assert f"--rename: {target!r} cannot be a MongoDB database" in line and reason in line
    with client(use_sandbox_config) as c:
        assert set(c.list_database_names()) == before
