"""A brand-new replica set, before its first write, can be backed up (issue: a cron job that
runs before any data arrives failed with "the replica set's oplog is empty").

Each test starts its own mongo-java-server (the sandbox's mongo2 build, in memory, oplog
on, replica set ``rs0``), so its oplog is really empty: the sandbox's mongo2 has long had
writes by the time these tests run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from datatier.cli import main
from datatier.mongo import dump as mongo_dump
from datatier.mongo import oplog as mongo_oplog
from datatier.mongo.dump import MongoDumpEngine
from datatier.sandbox.services.mongojava import MongoJavaService, find_mongo_java_server
from tests.integration.conftest import SandboxHandle, unavailable, wait_for

pytestmark = pytest.mark.integration

DB, COPY = "dt_fresh", "dt_fresh_copy"
POLICY = "mongo-fresh"


@pytest.fixture
def fresh(
    use_sandbox_config: SandboxHandle,
    test_port_base: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """A new mongo-java-server replica set (no write yet), as the policy's server; its URI."""
    home = find_mongo_java_server(Path.cwd())
    if home is None:
        unavailable("the mongo-java-server build (.bin/mongo-java-server)")
    service = MongoJavaService("fresh", test_port_base + 96, tmp_path, home=home)
    proc = subprocess.Popen(
        [service.program, *service.args()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(service.ready, 30)
        monkeypatch.setenv("DATATIER_MONGO__SERVERS__FRESH__URI", service.uri)
        use_sandbox_config.write_policy(
            POLICY, f'engine = "mongo"\n[source]\nserver = "fresh"\ndatabases = ["{DB}"]\n'
        )
        with pymongo.MongoClient[dict[str, Any]](service.uri) as client:
            assert client.local["oplog.rs"].find_one() is None, "not a fresh oplog"
        yield service.uri
    finally:
        proc.kill()
        proc.wait()
        (use_sandbox_config.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)


def backup(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    code = main(["backup", "run", POLICY, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary: dict[str, Any] = json.loads(out)
    return summary


def test_a_replica_set_with_no_write_yet_is_backed_up_and_restores(
    fresh: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing written at all: the backup succeeds, is consistent (an empty slice) and
    restores (nothing to restore, nothing created)."""
    summary = backup(capsys)
    consistency = summary["consistency"]
    assert consistency["point_in_time"] is True and consistency["oplog_entries"] == 0
    assert consistency["oplog_start"] == {"t": 0, "i": 0, "empty": True}
    assert summary["tables"] == 0
    assert main(["restore", summary["id"]]) == 0, capsys.readouterr().err
    with pymongo.MongoClient[dict[str, Any]](fresh) as client:
        assert client[DB].list_collection_names() == []


def test_writes_after_an_empty_start_are_captured_and_replayed(
    fresh: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The oplog is empty at the consistency point; documents arrive before the dump reads
    the collection and more change after it: the slice holds every entry since the empty
    start and the restored copy equals the source at the end of the dump."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(fresh)
    real_position, real_collection = mongo_oplog.oplog_position, MongoDumpEngine._collection
    real_dump = MongoDumpEngine.dump
    dumping: list[bool] = []

    def dump(self: MongoDumpEngine, out: Any) -> Any:
        dumping.append(True)
        return real_dump(self, out)

    def oplog_position(c: Any) -> Any:
        position = real_position(c)
        if dumping == [True]:  # the dump's start: the first data arrives right after it
            client[DB].a.insert_many([{"_id": i, "n": i} for i in range(50)])
            dumping.append(False)
        return position

    def collection(self: MongoDumpEngine, out: Any, db: Any, spec: Any) -> Any:
        result = real_collection(self, out, db, spec)
        client[DB].a.insert_many([{"_id": i, "n": i} for i in range(50, 80)])
        client[DB].a.update_one({"_id": 3}, {"$set": {"n": -3}})
        client[DB].a.replace_one({"_id": 4}, {"replaced": True})
        client[DB].a.delete_one({"_id": 5})
        return result

    with client, pytest.MonkeyPatch.context() as patch:
        patch.setattr(mongo_dump, "oplog_position", oplog_position)
        patch.setattr(MongoDumpEngine, "_collection", collection)
        patch.setattr(MongoDumpEngine, "dump", dump)
        summary = backup(capsys)
        consistency = summary["consistency"]
        assert consistency["oplog_start"] == {"t": 0, "i": 0, "empty": True}
        assert consistency["oplog_entries"] == 50 + 30 + 3, consistency
        assert summary["rows"] == 50  # what the dump itself read
        assert main(["restore", summary["id"], "--rename", f"{DB}={COPY}"]) == 0, (
            capsys.readouterr().err
        )
        source = list(client[DB].a.find(sort=[("_id", 1)]))
        assert len(source) == 79
        assert list(client[COPY].a.find(sort=[("_id", 1)])) == source
