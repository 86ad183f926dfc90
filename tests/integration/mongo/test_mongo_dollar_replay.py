"""Point-in-time replay of documents with top-level ``$``-prefixed field names (legal since
MongoDB 5.0) on mongo-java-server (mongo2), whose replay takes driver operations
(:class:`~datatier.mongo.oplogapply.CrudApplier`): no server takes such a document as a
replacement, so its insert is replayed as a delete of its ``_id`` then an insert, whether
the dump already holds the document or not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.mongo.dump import MongoDumpEngine
from tests.integration.conftest import SandboxHandle

SRC, DST = "dt_dollar", "dt_dollar_copy"


@pytest.fixture
def mongo2(sandbox: SandboxHandle) -> Iterator[pymongo.MongoClient[Any]]:
    uri = sandbox.config.mongo.servers["mongo2"].uri
    c: pymongo.MongoClient[Any]
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000) as c:
        for name in (SRC, DST):
            c.drop_database(name)
        yield c
        for name in (SRC, DST):
            c.drop_database(name)


def raw_of(c: pymongo.MongoClient[Any], db: str, name: str) -> bytes:
    return b"".join(c[db][name].find_raw_batches(sort=[("_id", 1)]))


def test_dollar_field_inserts_during_the_dump_are_replayed(
    use_sandbox_config: SandboxHandle, mongo2: pymongo.MongoClient[Any]
) -> None:
    mongo2[SRC].a_first.insert_one({"_id": 0})
    mongo2[SRC].b.insert_one({"_id": 0, "n": 0})
    real = MongoDumpEngine._collection

    def collection(self: MongoDumpEngine, out: Any, database: Any, spec: Any) -> Any:
        result = real(self, out, database, spec)
        b = database.client[SRC].b
        if spec["name"] == "a_first":  # before b is dumped: the dump holds the end state
            b.insert_one({"_id": 1, "$x": 1})  # (mongo-java-server updates none of these)
            b.insert_one({"_id": 2, "$y": 1})
            b.delete_one({"_id": 2})
        else:  # after: the slice alone holds it
            b.insert_one({"_id": 3, "$z": {"$w": 1}, "n": 3})
        return result

    use_sandbox_config.write_policy(
        "dollar", f'engine = "mongo"\n[source]\nserver = "mongo2"\ndatabases = ["{SRC}"]\n'
    )
    loaded = load(str(use_sandbox_config.config_path), environ={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MongoDumpEngine, "_collection", collection)
        manifest = run_backup(loaded, load_policy(loaded, "dollar"))
    assert manifest.consistency["oplog_entries"] == 4
    mongo2[DST].b.insert_one({"_id": 1, "old": True})

    assert main(["restore", manifest.backup_id, "--rename", f"{SRC}={DST}", "--drop"]) == 0
    assert [d["_id"] for d in mongo2[DST].b.find(sort=[("_id", 1)])] == [0, 1, 3]
    assert raw_of(mongo2, DST, "b") == raw_of(mongo2, SRC, "b")
