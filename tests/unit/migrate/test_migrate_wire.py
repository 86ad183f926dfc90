"""Prebuilt document terms serialize to the driver's exact bytes, and the RethinkDB target's
writer handles, durability and sync put the right things on the wire.

No RethinkDB server can be installed here: :class:`Wire` is a FAKE connection that
serializes each query exactly as the driver's socket connection does before sending it
(``rethinkdb.net.Query.serialize``) and answers like a server. What a server does with
those bytes is tested only by ``tests/integration/test_migrate.py``'s real-server test.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from rethinkdb import r
from rethinkdb.errors import ReqlDriverCompileError
from rethinkdb.net import Query
from rethinkdb.ql2_pb2 import Query as PQuery
from rethinkdb.ql2_pb2 import Term

from datatier.errors import ExitCode, OperationFailed
from datatier.migrate.target import RethinkDBTarget
from datatier.migrate.wire import documents_term

CET = timezone(timedelta(hours=2))
DOCS: list[dict[str, Any]] = [
    {"id": 1, "name": "plain", "n": 2.5, "ok": True, "none": None},
    {
        "id": "9007199254740993",
        "at": datetime(2026, 3, 1, 12, 30, 5, 123000, tzinfo=UTC),
        "local": datetime(2026, 3, 1, 14, 30, tzinfo=CET),
        "avatar": b"\x89PNG\x00\xff",
        "tags": ["red", "green"],
        "empty": [],
        "nested": {"a": [1, [2, [3, {"b": None}]]], "$reql_type$": "not a pseudo-type"},
        "text": 'żółw \u2603 "quoted" \\ back',
        "big": 2**53,
        "neg": -0.0,
        "tuple": (1, "x"),
    },
    {"id": ["k", 1], "obj": {}, "deep": {"x": {"y": {"z": [[], [[]]]}}}},
]


def wire_bytes(term: Any, **optargs: Any) -> bytes:
    return bytes(Query(PQuery.QueryType.START, 7, term, optargs).serialize())


def insert_bytes(docs: Any) -> bytes:
    return wire_bytes(r.db("d").table("t").insert(docs, conflict="error"))


@pytest.mark.parametrize("docs", [DOCS, DOCS[:1], [], [DOCS[1]] * 3])
def test_prebuilt_documents_serialize_like_the_driver(docs: list[dict[str, Any]]) -> None:
    assert insert_bytes(documents_term(docs)) == insert_bytes(docs)


def nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": 1, "leaf": "x"}
    for _ in range(depth):
        doc = {"id": 1, "in": doc}
    return doc


@pytest.mark.parametrize("depth", range(14, 21))
def test_nesting_limit_is_the_drivers(depth: int) -> None:
    docs = [nested(depth)]
    try:
        expected: bytes | None = insert_bytes(docs)
    except ReqlDriverCompileError:
        expected = None
    if expected is None:
        with pytest.raises(ReqlDriverCompileError, match="Nesting depth"):
            documents_term(docs)
    else:
        assert insert_bytes(documents_term(docs)) == expected


@pytest.mark.parametrize(
    "doc",
    [
        {"id": 1, "at": datetime(2026, 1, 1, 12, 0)},  # no zone
        {"id": 1, "day": date(2026, 1, 1)},  # a date has no zone
        {"id": 1, "obj": {3: "int key"}},
    ],
    ids=["naive-datetime", "date", "int-key"],
)
def test_refuses_what_the_driver_refuses(doc: dict[str, Any]) -> None:
    with pytest.raises(ReqlDriverCompileError):
        insert_bytes([doc])
    with pytest.raises(ReqlDriverCompileError):
        documents_term([doc])


class Wire:
    """FAKE driver connection (see module docstring): records each query as sent."""

    opened = 0

    def __init__(self) -> None:
        Wire.opened += 1
        self.sent: list[list[Any]] = []
        self.closed = False
        self.sync_answer: Any = {"synced": 1}

    def _start(self, term: Any, **optargs: Any) -> Any:
        data = wire_bytes(term, **optargs)
        message = json.loads(data[12:])
        self.sent.append(message[1])
        kind = message[1][0]
        if kind == Term.TermType.INSERT:
            docs = message[1][1][1]
            return {"inserted": len(docs[1]), "errors": 0}
        if kind == Term.TermType.SYNC:
            return self.sync_answer
        return []

    def close(self, noreply_wait: bool = True) -> None:
        self.closed = True


def test_writer_handles_have_connections_of_their_own_and_soft_inserts() -> None:
    main = RethinkDBTarget(Wire(), "d", label="fake", connect=Wire, prebuilt=True)
    before = Wire.opened
    writer = main.writer("soft")
    assert isinstance(writer, RethinkDBTarget) and Wire.opened == before + 1
    assert writer.conn is not main.conn and writer.prebuilt and writer.durability == "soft"
    res = writer.insert("t", DOCS, "error")
    assert res.inserted == len(DOCS)
    (insert,) = writer.conn.sent
    assert insert[0] == Term.TermType.INSERT
    assert insert[2] == {"conflict": "error", "durability": "soft"}
    assert json.dumps(insert[1][1]) == json.dumps(json.loads(insert_bytes(DOCS)[12:])[1][1][1])
    main.insert("t", DOCS[:1], "replace")
    assert main.conn.sent[-1][2] == {"conflict": "replace"}  # the table's own durability
    writer.sync("t")
    assert writer.conn.sent[-1][0] == Term.TermType.SYNC
    writer.close()
    assert writer.conn.closed and not main.conn.closed


def test_sync_that_does_not_say_synced_fails() -> None:
    target = RethinkDBTarget(Wire(), "d", label="fake")
    target.conn.sync_answer = {"synced": 0}
    with pytest.raises(OperationFailed, match="sync of t answered"):
        target.sync("t")


def test_without_connect_there_are_no_writer_handles() -> None:
    assert RethinkDBTarget(Wire(), "d").writer("soft") is None
    with pytest.raises(ValueError):
        RethinkDBTarget(Wire(), "d", durability="fast")


def test_document_the_driver_cannot_send_is_a_clear_failure() -> None:
    for prebuilt in (True, False):
        target = RethinkDBTarget(Wire(), "d", label="fake", prebuilt=prebuilt)
        with pytest.raises(OperationFailed, match="Nesting depth") as exc:
            target.insert("t", [nested(25)], "error")
        assert exc.value.exit_code == ExitCode.FAILED
        assert target.conn.sent == []
