"""Multi-document transactions in a point-in-time Mongo backup, captured and replayed on a
real server.

No server here runs transactions: mongo-java-server (the sandbox's mongo2, a replica set
with an oplog) has no sessions (pymongo: "Sessions are not supported by this MongoDB
deployment"), and FerretDB v1 is standalone, without an oplog. So the transaction entries
are written into mongo2's oplog by hand during the dump, in the format a MongoDB 4.2+
replica set logs (``op: "c"`` on ``admin.$cmd``, ``o.applyOps``, ``lsid``, ``txnNumber``,
``prevOpTime``, ``o.partialTxn`` on a chain's first entries): capture reads them with its
real query and the restore replays them through mongo2's real replay path (driver
operations, :class:`~datatier.mongo.oplogapply.CrudApplier`). Before the fix the slice
held none of them and the restore lost them, exit 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import bson
import pymongo
import pytest
import zstandard
from bson.binary import Binary
from bson.int64 import Int64

from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.errors import OperationFailed, exit_code_of
from datatier.mongo.dump import MongoDumpEngine
from tests.integration.conftest import SandboxHandle

pytestmark = pytest.mark.integration
DB, OTHER, COPY = "dt_txn", "dt_txn_other", "dt_txn_copy"


@pytest.fixture
def mongo2(sandbox: SandboxHandle) -> Iterator[pymongo.MongoClient[Any]]:
    uri = sandbox.config.mongo.servers["mongo2"].uri
    c: pymongo.MongoClient[Any] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=3000)
    with c:
        for name in (DB, OTHER, COPY):
            c.drop_database(name)
        c[DB].a.insert_many([{"_id": i, "n": i} for i in range(10)])
        c[DB].b.insert_many([{"_id": i} for i in range(10)])
        c[OTHER].x.insert_one({"_id": 0})
        yield c
        for name in (DB, OTHER, COPY):
            c.drop_database(name)


def txn_entries(newest: bson.Timestamp) -> list[dict[str, Any]]:
    """A committed transaction over DB and OTHER (with a collection created inside it), a
    complete two-entry partialTxn chain, and a chain the slice's end cuts."""

    def ts(k: int) -> bson.Timestamp:
        return bson.Timestamp(newest.time, newest.inc + k)

    def entry(k: int, session: int, ops: list[Any], prev: int = 0, **o: Any) -> dict[str, Any]:
        return {
            "ts": ts(k),
            "t": Int64(1),
            "op": "c",
            "ns": "admin.$cmd",
            "wall": bson.DatetimeMS(1_700_000_000_000),
            "lsid": {"id": Binary(uuid.UUID(int=session).bytes, 4), "uid": Binary(b"u" * 32)},
            "txnNumber": Int64(1),
            "prevOpTime": {"ts": ts(prev), "t": Int64(1)}
            if prev
            else {"ts": bson.Timestamp(0, 0), "t": Int64(-1)},
            "o": {"applyOps": ops, **o},
        }

    def op(kind: str, ns: str, o: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"op": kind, "ns": ns, "ui": Binary(uuid.UUID(int=9).bytes, 4), "o": o, **extra}

    return [
        entry(
            1,
            1,
            [
                op("i", f"{DB}.a", {"_id": 100}),
                op("i", f"{OTHER}.x", {"_id": 1}),
                op("u", f"{DB}.a", {"$set": {"n": -1}}, o2={"_id": 0}),
                op("c", f"{DB}.$cmd", {"create": "made"}),
                op("i", f"{DB}.made", {"_id": 1}),
            ],
        ),
        entry(2, 2, [op("i", f"{DB}.a", {"_id": 200})], partialTxn=True),
        entry(  # never commits in the slice
            3,
            3,
            [
                op("i", f"{DB}.a", {"_id": 300}),
                op("c", f"{DB}.$cmd", {"create": "never"}),
                op("i", f"{DB}.never", {"_id": 1}),
            ],
            partialTxn=True,
        ),
        entry(4, 2, [op("i", f"{DB}.a", {"_id": 201})], prev=2, count=Int64(2)),
    ]


def backup_with(
    sandbox: SandboxHandle, entries: Any, policy: str = "m2-txn"
) -> tuple[Any, list[dict[str, Any]]]:
    """Back up DB from mongo2 with ``entries(newest ts)`` written into its oplog after the
    first collection is dumped; the manifest and the slice as stored."""
    sandbox.write_policy(
        policy, f'engine = "mongo"\n[source]\nserver = "mongo2"\ndatabases = ["{DB}"]\n'
    )
    real_collection = MongoDumpEngine._collection
    written: list[bool] = []

    def collection(self: MongoDumpEngine, out: Any, database: Any, spec: Any) -> Any:
        result = real_collection(self, out, database, spec)
        if not written:
            oplog = database.client.local["oplog.rs"]
            newest = oplog.find_one({}, {"ts": 1}, sort=[("$natural", -1)])["ts"]
            oplog.insert_many(entries(newest))
            written.append(True)
        return result

    loaded = load(str(sandbox.config_path), environ={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MongoDumpEngine, "_collection", collection)
        manifest = run_backup(loaded, load_policy(loaded, policy))
    _, store = find_backup(loaded, manifest.backup_id)
    stored: list[dict[str, Any]] = []
    for part in sorted((o for o in manifest.objects if o.kind == "oplog"), key=lambda o: o.part):
        data = b"".join(store.iter_read(part.key))
        stored += bson.decode_all(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    return manifest, stored


def test_transactions_are_captured_and_replayed_whole(
    use_sandbox_config: SandboxHandle, mongo2: pymongo.MongoClient[Any]
) -> None:
    manifest, stored = backup_with(use_sandbox_config, txn_entries)
    assert manifest.consistency["oplog_entries"] == 4 == len(stored)
    inner = [op["ns"] for e in stored for op in e["o"]["applyOps"]]
    assert f"{OTHER}.x" not in inner, "another database's operations stay out of the backup"
    # `never` is created only by the chain that does not commit in the slice
    assert manifest.consistency["created_during_dump"] == [[DB, "made"]]

    assert main(["restore", manifest.backup_id, "--rename", f"{DB}={COPY}"]) == 0
    copy = mongo2[COPY]
    assert sorted(d["_id"] for d in copy.a.find()) == [*range(10), 100, 200, 201]
    assert copy.a.find_one({"_id": 0}) == {"_id": 0, "n": -1}
    assert list(copy.made.find()) == [{"_id": 1}]
    assert "never" not in copy.list_collection_names()
    assert list(mongo2[OTHER].x.find()) == [{"_id": 0}], "nothing replayed into OTHER"


def test_a_rename_during_the_dump_fails_the_backup(
    use_sandbox_config: SandboxHandle,
    mongo2: pymongo.MongoClient[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """mongo-java-server logs no entry for a rename, so a real mongod's (one ``DB.$cmd``
    entry) is written by hand. Replay cannot follow a rename: the backup fails (exit 1)."""

    def rename(newest: bson.Timestamp) -> list[dict[str, Any]]:
        return [
            {
                "ts": bson.Timestamp(newest.time, newest.inc + 1),
                "t": Int64(1),
                "op": "c",
                "ns": f"{DB}.$cmd",
                "o": {"renameCollection": f"{DB}.a", "to": f"{DB}.z", "stayTemp": False},
            }
        ]

    with pytest.raises(OperationFailed, match=r"renamed to dt_txn\.z during the dump") as caught:
        backup_with(use_sandbox_config, rename, policy="m2-txn-rename")
    assert exit_code_of(caught.value) == 1
