"""The oplog slice's rewriting for replay (renames, filtering, cleaning, transactions): pure
logic. Capture and replay against servers run in tests/integration/test_mongo_oplog.py (a
real mongod) and test_mongo_pitr.py (the sandbox's mongo-java-server)."""

from __future__ import annotations

from typing import Any

import bson
import pymongo
import pytest
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from datatier.errors import NotReadyYet, OperationFailed, exit_code_of
from datatier.mongo.oplog import (
    EMPTY_OPLOG,
    created_collections,
    entry_size,
    oplog_position,
    replay,
    rewrite,
)
from datatier.mongo.oplogapply import ApplyOpsApplier, CrudApplier

TS = Timestamp(1_700_000_000, 1)
RENAMES = {"shop": "shop_copy", "ab": "ab"}
WANTED = {("shop", "orders"), ("ab", "runs")}


def entry(op: str, ns: str, o: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"ts": TS, "op": op, "ns": ns, "o": o, "ui": b"uuid", "lsid": {"id": 1}, **extra}


def test_renames_and_cleans_crud_ops() -> None:
    out = list(
        rewrite(entry("u", "shop.orders", {"$set": {"x": 1}}, o2={"_id": 7}), RENAMES, WANTED)
    )
    assert out == [{"op": "u", "ns": "shop_copy.orders", "o": {"$set": {"x": 1}}, "o2": {"_id": 7}}]


def test_skips_what_is_not_restored_and_noops() -> None:
    assert not list(rewrite(entry("i", "shop.sessions", {"_id": 1}), RENAMES, WANTED))
    assert not list(rewrite(entry("i", "other.orders", {"_id": 1}), RENAMES, WANTED))
    assert not list(rewrite(entry("n", "", {"msg": "periodic noop"}), RENAMES, WANTED))


def test_commands_only_for_restored_collections() -> None:
    create = entry("c", "shop.$cmd", {"createIndexes": "orders", "v": 2, "key": {"a": 1}})
    assert [e["ns"] for e in rewrite(create, RENAMES, WANTED)] == ["shop_copy.$cmd"]
    drop = entry("c", "shop.$cmd", {"drop": "sessions"})
    assert not list(rewrite(drop, RENAMES, WANTED))


def test_transactions_are_flattened_and_filtered() -> None:
    txn = entry(
        "c",
        "admin.$cmd",
        {
            "applyOps": [
                {"op": "i", "ns": "shop.orders", "o": {"_id": 1}, "ui": b"u"},
                {"op": "i", "ns": "shop.sessions", "o": {"_id": 2}, "ui": b"u"},
                {"op": "d", "ns": "ab.runs", "o": {"_id": 3}, "ui": b"u"},
            ]
        },
        txnNumber=5,
    )
    out = list(rewrite(txn, RENAMES, WANTED))
    assert out == [
        {"op": "i", "ns": "shop_copy.orders", "o": {"_id": 1}},
        {"op": "d", "ns": "ab.runs", "o": {"_id": 3}},
    ]


class Recorder:
    """Stands in for a client's ``admin.command`` to see how replay batches (no server
    semantics are simulated: the server side runs in the integration test)."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.admin = self

    def command(self, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        assert name == "applyOps"
        self.calls.append(ops)
        return {"ok": 1.0}


def test_replay_batches_crud_and_runs_commands_alone_in_order() -> None:
    ops = [entry("i", "shop.orders", {"_id": i}) for i in range(1200)]
    ops.insert(700, entry("c", "shop.$cmd", {"collMod": "orders", "validator": {}}))
    rec = Recorder()
    assert replay(rec, ops, RENAMES, WANTED) == 1201
    sizes = [len(c) for c in rec.calls]
    assert sizes == [500, 200, 1, 500]
    assert rec.calls[2][0]["op"] == "c"
    flat = [op["o"].get("_id") for call in rec.calls for op in call]
    assert flat[:700] == list(range(700)) and flat[701:] == list(range(700, 1200))


def test_replay_batches_are_bounded_by_bytes_too() -> None:
    """Memory and applyOps' 16 MiB command limit: ~1 MiB entries go 4 to a batch at most;
    one larger than the bound goes alone, in order."""
    big = "x" * (1 << 20)
    ops = [entry("i", "shop.orders", {"_id": i, "pad": big}) for i in range(10)]
    ops.insert(5, entry("i", "shop.orders", {"_id": "huge", "pad": "y" * (6 << 20)}))
    rec = Recorder()
    assert replay(rec, ops, RENAMES, WANTED) == 11
    sizes = [sum(entry_size(op) for op in call) for call in rec.calls]
    assert all(size <= 4 << 20 for size in sizes if size < 6 << 20)
    assert [len(c) for c in rec.calls] == [3, 2, 1, 3, 2]
    assert rec.calls[2][0]["o"]["_id"] == "huge"
    flat = [op["o"]["_id"] for call in rec.calls for op in call]
    assert flat == [0, 1, 2, 3, 4, "huge", 5, 6, 7, 8, 9]


def test_entry_size_counts_raw_documents_as_captured() -> None:
    doc = RawBSONDocument(bson.encode({"_id": 1, "pad": "z" * 1000}))
    assert 1000 < entry_size({"op": "i", "ns": "a.b", "o": doc}) < 1100
    assert entry_size({"op": "i", "ns": "a.b", "o": doc}) == entry_size(
        {"op": "i", "ns": "a.b", "o": {"_id": 1, "pad": "z" * 1000}}
    )


def test_crud_writes_a_dollar_field_document_as_delete_then_insert() -> None:
    """A document with a top-level ``$`` field (MongoDB 5.0+) cannot be a replacement (no
    server takes it), so its insert or replacement is a delete of its ``_id`` and an
    insert; other documents are upserting replacements, updates upserting updates."""
    write = CrudApplier._write
    dollar = {"_id": 1, "$x": 1}
    assert write(entry("i", "a.b", dollar)) == [
        pymongo.DeleteOne({"_id": 1}),
        pymongo.InsertOne(dollar),
    ]
    assert write(entry("u", "a.b", dollar, o2={"_id": 1})) == [
        pymongo.DeleteOne({"_id": 1}),
        pymongo.InsertOne(dollar),
    ]
    assert write(entry("i", "a.b", {"_id": 2, "n": {"$y": 1}})) == [
        pymongo.ReplaceOne({"_id": 2}, {"_id": 2, "n": {"$y": 1}}, upsert=True)
    ]
    assert write(entry("u", "a.b", {"$v": 1, "$set": {"x": 1}}, o2={"_id": 3})) == [
        pymongo.UpdateOne({"_id": 3}, {"$set": {"x": 1}}, upsert=True)
    ]
    assert write(entry("d", "a.b", {"_id": 4})) == [pymongo.DeleteOne({"_id": 4})]


class _NoCodeCollection:
    """A collection whose server answers a write error without ``code``, as
    mongo-java-server does (pymongo then raises KeyError while reading it)."""

    def __getitem__(self, name: str) -> _NoCodeCollection:
        return self

    def bulk_write(self, writes: list[Any], **kwargs: Any) -> None:
        raise KeyError("code")


def test_a_write_error_without_a_code_is_a_clear_refusal() -> None:
    crud = CrudApplier(client=_NoCodeCollection())
    with pytest.raises(OperationFailed, match=r"shop_copy.orders refused one of 2 entries") as e:
        crud.apply(
            [entry("i", "shop_copy.orders", {"_id": 7}), entry("d", "shop_copy.orders", {"_id": 8})]
        )
    assert "op 'i' on _id 7" in str(e.value) and "no 'code'" in str(e.value)
    assert exit_code_of(e.value) == 1


def test_crud_applier_refuses_what_only_applyops_can_replay() -> None:
    """Checked before anything is restored (the server side runs in test_mongo_pitr.py)."""
    crud = CrudApplier(client=None)
    crud.check(entry("i", "shop.orders", {"_id": 1}))
    crud.check(entry("u", "shop.orders", {"$v": 1, "$set": {"x": 1}}, o2={"_id": 1}))
    crud.check(entry("u", "shop.orders", {"_id": 1, "x": 2}, o2={"_id": 1}))
    crud.check(entry("d", "shop.orders", {"_id": 1}))
    for command in ("drop", "create", "createIndexes", "dropIndexes"):
        crud.check(entry("c", "shop.$cmd", {command: "orders"}))
    with pytest.raises(OperationFailed, match="delta-format update"):
        crud.check(entry("u", "shop.orders", {"$v": 2, "diff": {"u": {"x": 1}}}, o2={"_id": 1}))
    with pytest.raises(OperationFailed, match="'collMod' can only be replayed with applyOps"):
        crud.check(entry("c", "shop.$cmd", {"collMod": "orders"}))
    ApplyOpsApplier(client=None).check(entry("c", "shop.$cmd", {"collMod": "orders"}))


class _EmptyOplog:
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options

    def find_one(self, *args: Any, **kwargs: Any) -> None:
        return None

    def options(self) -> dict[str, Any]:
        return self._options


class _ReplicaSetMember:
    """A stand-in client, because no server here has a capped, empty oplog:
    mongo-java-server cannot create capped collections and FerretDB has no replica set. The
    uncapped empty oplog runs against a real mongo-java-server in
    tests/integration/mongo/test_mongo_fresh.py."""

    def __init__(self, oplog_options: dict[str, Any]) -> None:
        self.admin = self
        self.local = {"oplog.rs": _EmptyOplog(oplog_options)}

    def command(self, name: str) -> dict[str, Any]:
        return {"setName": "rs0"}


def test_an_empty_oplog_is_a_start_before_any_entry() -> None:
    assert oplog_position(_ReplicaSetMember({})) == EMPTY_OPLOG == Timestamp(0, 0)


def test_an_empty_capped_oplog_is_not_ready_yet() -> None:
    """Entries could roll off a capped oplog with no start entry left to show it."""
    with pytest.raises(NotReadyYet, match="capped oplog has no entry yet") as caught:
        oplog_position(_ReplicaSetMember({"capped": True, "size": 1 << 20}))
    assert exit_code_of(caught.value) == 5 and "\n" not in str(caught.value)


def test_collections_an_entry_can_create_inserts_and_create_commands_only() -> None:
    txn = entry(
        "c",
        "admin.$cmd",
        {"applyOps": [{"op": "i", "ns": "shop.new", "o": {"_id": 1}}, {"op": "d", "ns": "x.y"}]},
    )
    assert list(created_collections(txn)) == [("shop", "new")]
    assert list(created_collections(entry("c", "shop.$cmd", {"create": "c.d", "x": 1}))) == [
        ("shop", "c.d")
    ]
    assert list(created_collections(entry("i", "shop.a.b", {"_id": 1}))) == [("shop", "a.b")]
    for other in (
        entry("u", "shop.orders", {"$set": {"x": 1}}),
        entry("c", "shop.$cmd", {"drop": "orders"}),
        entry("c", "shop.$cmd", {"createIndexes": "orders"}),
        entry("n", "", {"msg": "noop"}),
    ):
        assert list(created_collections(other)) == []
