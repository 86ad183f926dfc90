"""Transactions in the oplog slice: what capture keeps (SliceFilter) and what replay applies
(committed, through replay). Entries are in the format a MongoDB 4.2+ replica set logs (as
in mongo-tools' common/txn/testdata/oplog_entries.json): ``op: "c"`` on ``admin.$cmd`` with
``o.applyOps``, ``lsid``, ``txnNumber``, ``prevOpTime``; ``o.partialTxn: true`` on every
entry of a large transaction's chain but the last; ``o.prepare: true`` then
``commitTransaction`` / ``abortTransaction`` for prepared ones. No server here runs
transactions (mongo-java-server and FerretDB v1 have no sessions): capture and replay of
such entries against mongo-java-server run in tests/integration/mongo/test_mongo_txn.py."""

from __future__ import annotations

import uuid
from typing import Any

import bson
import pytest
from bson.binary import Binary
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from datatier.errors import OperationFailed, exit_code_of
from datatier.mongo.bsonstream import RAW_OPTIONS
from datatier.mongo.oplog import created_collections, replay
from datatier.mongo.oplogtxn import SliceFilter, committed

START = Timestamp(1_700_000_000, 1)
NO_PREV = {"ts": Timestamp(0, 0), "t": Int64(-1)}
RENAMES = {"shop": "shop_copy"}
WANTED = {("shop", "orders"), ("shop", "fresh")}
UI = Binary(uuid.UUID(int=7).bytes, 4)


def ts(i: int) -> Timestamp:
    return Timestamp(START.time, START.inc + i)


def lsid(n: int) -> dict[str, Any]:
    return {"id": Binary(uuid.UUID(int=n).bytes, 4), "uid": Binary(b"\x01" * 32, 0)}


def inner(op: str, ns: str, o: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"op": op, "ns": ns, "ui": UI, "o": o, **extra}


def txn(
    i: int, ops: list[dict[str, Any]], *, session: int = 1, prev: Any = None, **o: Any
) -> dict[str, Any]:
    """An ``admin.$cmd`` transaction entry at ts(i)."""
    return {
        "ts": ts(i),
        "t": Int64(1),
        "op": "c",
        "ns": "admin.$cmd",
        "wall": bson.DatetimeMS(1_700_000_000_000),
        "lsid": lsid(session),
        "txnNumber": Int64(1),
        "prevOpTime": prev or NO_PREV,
        "o": {"applyOps": ops, **o},
    }


def crud(i: int, op: str, ns: str, o: dict[str, Any]) -> dict[str, Any]:
    return {"ts": ts(i), "t": Int64(1), "op": op, "ns": ns, "ui": UI, "o": o}


def raw(entry: dict[str, Any]) -> tuple[RawBSONDocument, bytes]:
    data = bson.encode(entry)
    return RawBSONDocument(data, RAW_OPTIONS), data


class Recorder:
    """Stands in for a client's ``admin.command("applyOps", ...)`` to see what replay
    sends, in order (the server side runs in the integration test)."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.admin = self

    def command(self, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(ops)
        return {"ok": 1.0}

    def applied(self) -> list[tuple[str, str, Any]]:
        return [(op["op"], op["ns"], op["o"].get("_id")) for call in self.calls for op in call]


def test_capture_keeps_only_the_backed_up_databases_operations_of_a_transaction() -> None:
    entry, data = raw(
        txn(
            1,
            [
                inner("i", "shop.orders", {"_id": 1}),
                inner("i", "hr.salaries", {"_id": 2, "pay": 100}),
                inner("u", "shop.orders", {"$set": {"x": 1}}, o2={"_id": 1}),
            ],
        )
    )
    kept = SliceFilter(["shop"], START).select(entry, data)
    assert kept is not None and kept != data
    decoded = bson.decode(kept)
    assert [op["ns"] for op in decoded["o"]["applyOps"]] == ["shop.orders", "shop.orders"]
    original = bson.decode(data)
    assert {k: v for k, v in decoded.items() if k != "o"} == {
        k: v for k, v in original.items() if k != "o"
    }
    assert list(decoded) == list(original), "fields keep their order"


def test_capture_leaves_out_a_transaction_of_other_databases_and_keeps_plain_entries() -> None:
    chosen = SliceFilter(["shop"], START)
    other, other_raw = raw(txn(1, [inner("i", "hr.salaries", {"_id": 2})]))
    assert chosen.select(other, other_raw) is None
    whole, whole_raw = raw(txn(2, [inner("i", "shop.orders", {"_id": 1})]))
    assert chosen.select(whole, whole_raw) is whole_raw, "unchanged bytes are written as read"
    plain, plain_raw = raw(crud(3, "i", "shop.orders", {"_id": 3}))
    assert chosen.select(plain, plain_raw) is plain_raw


def test_replay_applies_a_transaction_of_an_included_and_an_excluded_database() -> None:
    """Even when capture kept the other database's operations (an older backup), replay
    applies only the restored collections' ones, renamed and cleaned."""
    entries = [
        crud(1, "i", "shop.orders", {"_id": 0}),
        txn(2, [inner("i", "shop.orders", {"_id": 1}), inner("i", "hr.salaries", {"_id": 2})]),
    ]
    rec = Recorder()
    assert replay(rec, entries, RENAMES, WANTED) == 2
    assert rec.applied() == [("i", "shop_copy.orders", 0), ("i", "shop_copy.orders", 1)]
    assert all("ui" not in op and "lsid" not in op for call in rec.calls for op in call)


def chain(first: int, session: int = 1) -> list[dict[str, Any]]:
    """A two-entry chain: a partialTxn entry, then the entry that commits it."""
    return [
        txn(
            first,
            [inner("i", "shop.orders", {"_id": 10}), inner("i", "shop.orders", {"_id": 11})],
            session=session,
            partialTxn=True,
        ),
        txn(
            first + 1,
            [inner("d", "shop.orders", {"_id": 0})],
            session=session,
            prev={"ts": ts(first), "t": Int64(1)},
            count=Int64(3),
        ),
    ]


def test_a_complete_partial_txn_chain_is_applied_whole_at_its_commit() -> None:
    head, tail = chain(2)
    entries = [head, crud(3, "i", "shop.orders", {"_id": 5}), tail]
    rec = Recorder()
    assert replay(rec, entries, RENAMES, WANTED) == 4
    assert rec.applied() == [
        ("i", "shop_copy.orders", 5),  # written before the transaction committed
        ("i", "shop_copy.orders", 10),
        ("i", "shop_copy.orders", 11),
        ("d", "shop_copy.orders", 0),
    ]


def test_a_chain_cut_by_the_end_of_the_slice_is_not_applied() -> None:
    head, _ = chain(2)
    entries = [
        crud(1, "i", "shop.orders", {"_id": 1}),
        head,
        crud(3, "i", "shop.orders", {"_id": 4}),
    ]
    rec = Recorder()
    assert replay(rec, entries, RENAMES, WANTED) == 2
    assert rec.applied() == [("i", "shop_copy.orders", 1), ("i", "shop_copy.orders", 4)]


def test_interleaved_chains_of_two_sessions_commit_separately() -> None:
    a_head, a_tail = chain(2, session=1)
    b_head, _ = chain(4, session=2)  # never committed in the slice
    rec = Recorder()
    replay(rec, [a_head, b_head, a_tail], RENAMES, WANTED)
    assert [i for _, _, i in rec.applied()] == [10, 11, 0]


def test_capture_keeps_every_entry_of_a_chain_even_without_backed_up_operations() -> None:
    """The committing entry of a chain whose shop operations are all in its first entry
    must stay in the slice, or replay would never apply them."""
    chosen = SliceFilter(["shop"], START)
    head = txn(2, [inner("i", "shop.orders", {"_id": 10})], partialTxn=True)
    tail = txn(3, [inner("i", "hr.x", {"_id": 1})], prev={"ts": ts(2), "t": Int64(1)})
    kept = [chosen.select(*raw(e)) for e in (head, tail)]
    assert all(k is not None for k in kept)
    assert bson.decode(kept[1])["o"]["applyOps"] == []  # type: ignore[arg-type]
    entries = [bson.decode(k) for k in kept if k is not None]
    assert list(committed(entries)) == entries


def test_prepared_transactions_commit_or_abort_with_their_command_entry() -> None:
    chosen = SliceFilter(["shop"], START)
    prepared = txn(2, [inner("i", "shop.orders", {"_id": 20})], session=1, prepare=True)
    aborted = txn(3, [inner("i", "shop.orders", {"_id": 30})], session=2, prepare=True)

    def command(i: int, session: int, o: dict[str, Any], prev: int) -> dict[str, Any]:
        entry = txn(i, [], session=session, prev={"ts": ts(prev), "t": Int64(1)})
        entry["o"] = o
        return entry

    commit = command(4, 1, {"commitTransaction": 1, "commitTimestamp": ts(4)}, 2)
    abort = command(5, 2, {"abortTransaction": 1}, 3)
    foreign = command(6, 9, {"commitTransaction": 1, "commitTimestamp": ts(6)}, 5)
    entries = [prepared, aborted, commit, abort, foreign]
    kept = [chosen.select(*raw(e)) is not None for e in entries]
    assert kept == [True, True, True, True, False]
    rec = Recorder()
    assert replay(rec, entries[:4], RENAMES, WANTED) == 1
    assert rec.applied() == [("i", "shop_copy.orders", 20)]
    rec = Recorder()
    assert replay(rec, entries[:2], RENAMES, WANTED) == 0, "prepared, never committed"


def test_capture_refuses_a_transaction_begun_before_the_slice() -> None:
    late_tail = txn(3, [inner("i", "shop.orders", {"_id": 1})], prev={"ts": START, "t": Int64(1)})
    with pytest.raises(OperationFailed, match="begun before the dump") as caught:
        SliceFilter(["shop"], START).select(*raw(late_tail))
    assert exit_code_of(caught.value) == 1


def test_capture_refuses_a_collection_renamed_during_the_dump() -> None:
    """mongod logs a rename within a database as one ``DB.$cmd`` entry; a rename across
    databases ends with the same kind of entry on the target database."""
    rename = crud(2, "c", "shop.$cmd", {"renameCollection": "shop.orders", "to": "shop.old"})
    rename["o"]["stayTemp"] = False
    with pytest.raises(OperationFailed, match=r"renamed to shop\.old during the dump"):
        SliceFilter(["shop"], START).select(*raw(rename))


def test_a_collection_created_inside_a_transaction_is_listed() -> None:
    entry = txn(
        2,
        [
            inner("c", "shop.$cmd", {"create": "fresh", "idIndex": {"v": 2, "key": {"_id": 1}}}),
            inner("i", "shop.fresh", {"_id": 1}),
            inner("c", "hr.$cmd", {"create": "other"}),
        ],
    )
    assert sorted(set(created_collections(entry))) == [
        ("hr", "other"),
        ("shop", "fresh"),
    ]
    kept = SliceFilter(["shop"], START).select(*raw(entry))
    assert kept is not None
    assert set(created_collections(RawBSONDocument(kept, RAW_OPTIONS))) == {("shop", "fresh")}


def test_batched_writes_logged_as_apply_ops_are_no_transactions() -> None:
    """MongoDB 8.0 logs a batch of retryable inserts as an ``applyOps`` entry with
    ``multiOpType`` whose ``prevOpTime`` links to the previous statement, which may precede
    the slice: kept, cut down and applied as it is, never refused or held."""
    batch = txn(
        2,
        [inner("i", "shop.orders", {"_id": 40}), inner("i", "hr.x", {"_id": 1})],
        prev={"ts": START, "t": Int64(1)},
    )
    batch["multiOpType"] = 1
    kept = SliceFilter(["shop"], START).select(*raw(batch))
    assert kept is not None
    rec = Recorder()
    assert replay(rec, [bson.decode(kept)], RENAMES, WANTED) == 1
    assert rec.applied() == [("i", "shop_copy.orders", 40)]
    plain = txn(3, [inner("i", "shop.orders", {"_id": 41})])
    del plain["lsid"], plain["txnNumber"], plain["prevOpTime"]
    assert SliceFilter(["shop"], START).select(*raw(plain)) is not None
