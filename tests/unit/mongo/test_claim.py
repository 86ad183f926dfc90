"""The parts of the Mongo restore lease (datatier/mongo/claim.py) that need no server: the
lease ``_id`` of any name, the server clock, exit 5's text, and the decisions of the check
around each write (when it asks the server, what it refuses, what it names), over a
stand-in lease store that records the requests. Taking, renewing, taking over and
releasing leases run against real servers in
tests/integration/mongo/test_mongo_restore_claim.py."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from datatier.errors import OperationFailed
from datatier.mongo.claim import (
    SURE,
    ClaimLost,
    Leases,
    ServerClock,
    claim_id,
    held_message,
    utc,
)


def test_every_name_has_its_own_fixed_size_id() -> None:
    names = ["a", "A", "数据`;'\x01#%", "a\udcff", "d" * 63, "a.b", ""]
    ids = [claim_id(name) for name in names]
    assert len(set(ids)) == len(names)
    assert {len(i) for i in ids} == {len("restore:") + 64}
    assert claim_id("数据") == claim_id("数据"), "stable across runs and hosts"


def test_the_server_clock_advances_with_the_monotonic_clock_in_whole_milliseconds() -> None:
    start = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC)
    clock = ServerClock(start, at_monotonic=time.monotonic() - 2.5)
    now = clock.now()
    assert start + datetime.timedelta(seconds=2.5) <= now < start + datetime.timedelta(seconds=5)
    assert now.microsecond % 1000 == 0, "what BSON stores, so an equality filter matches"
    assert now.tzinfo is datetime.UTC


def test_naive_server_times_are_utc() -> None:
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert utc(naive) == naive.replace(tzinfo=datetime.UTC)
    aware = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert utc(aware) is aware


def test_the_refusal_names_the_holder_and_when_its_claim_lapses() -> None:
    lease = {
        "host": "db-ops-1",
        "pid": 4242,
        "started": datetime.datetime(2026, 1, 2, 3, 4, 5, 900000),
        "expires": datetime.datetime(2026, 1, 2, 3, 5, 5),
    }
    assert held_message("数据`;'", "mongodb://h:1/", lease) == (
        'another restore into "数据`;\'" on mongodb://h:1/ is running (host db-ops-1, pid 4242, '
        "since 2026-01-02T03:04:05+00:00 server time); its claim lapses at "
        "2026-01-02T03:05:05+00:00 unless that restore renews it"
    )


class _Updated:
    def __init__(self, matched: int) -> None:
        self.matched_count = matched


class _Store:
    """The lease collection as the check uses it: ``update_many`` and ``find`` filtered by
    ``_id`` ``$in`` and ``token``, ``$set`` and ``$max`` (what a server does)."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []

    def _match(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        ids = query["_id"]["$in"]
        return [d for k, d in self.docs.items() if k in ids and d["token"] == query["token"]]

    def update_many(self, query: dict[str, Any], update: dict[str, Any]) -> _Updated:
        self.requests.append("update")
        found = self._match(query)
        for doc in found:
            doc.update(update["$set"])
            for key, value in update["$max"].items():
                doc[key] = max(doc[key], value)
        return _Updated(len(found))

    def find(self, query: dict[str, Any], projection: dict[str, int]) -> list[dict[str, Any]]:
        self.requests.append("find")
        return [{"_id": d["_id"]} for d in self._match(query)]


class _Admin:
    def command(self, name: str) -> dict[str, Any]:
        return {"localTime": datetime.datetime(2026, 1, 2, 3, 4, 5)}


class _Client:
    def __init__(self, store: _Store) -> None:
        self.store, self.admin = store, _Admin()

    def __getitem__(self, name: str) -> Any:
        return {"restore_claims": self.store}


def _holding(databases: list[str], lease: float = 60) -> tuple[Leases, _Store]:
    """Leases holding ``databases`` (as ``take`` leaves them, without its heartbeat)."""
    store = _Store()
    leases = Leases(_Client(store), "mongodb://h:1/", lease=lease)
    now = leases.clock.now()
    for database in databases:
        key = claim_id(database)
        store.docs[key] = {"_id": key, "token": leases.token, "expires": now + leases.lease}
    leases.held = list(databases)
    return leases, store


def _take_over(store: _Store, database: str) -> None:
    store.docs[claim_id(database)]["token"] = "another restore's"


def test_each_write_renews_every_lease_first_in_one_request() -> None:
    leases, store = _holding(["a", "b", "c"])
    before = {k: d["expires"] for k, d in store.docs.items()}
    time.sleep(0.01)
    with leases.writing("insert"):
        assert store.requests == ["update"], "one round trip, before the write"
    assert store.requests == ["update"], "a quick write needs no second look"
    assert all(d["expires"] > before[k] for k, d in store.docs.items())


def test_no_write_once_a_lease_is_taken_over_and_the_error_says_nothing_was_written() -> None:
    leases, store = _holding(["a", "b"])
    with leases.writing("first"):
        pass
    _take_over(store, "b")
    written = []
    with pytest.raises(ClaimLost) as lost, leases.writing("second"):
        written.append(1)
    assert not written
    assert leases.held == ["a"] and leases.lost == ["b"] and not leases.late
    assert isinstance(lost.value, OperationFailed), "exit 1"
    assert str(lost.value) == (
        "the restore's claim on 'b' at mongodb://h:1/ was taken over while it ran by another "
        "restore (this one could not renew it for a whole lease: paused, or cut off from the "
        "server); it stopped before its next write and wrote nothing after losing it"
    )
    count = len(store.requests)
    with pytest.raises(ClaimLost), leases.writing("third"):
        written.append(1)
    assert not written and len(store.requests) == count, "refused without asking again"


def test_a_write_slower_than_half_a_lease_is_checked_again_and_named_if_the_lease_went() -> None:
    leases, store = _holding(["a"], lease=0.2)
    with leases.writing("slow but kept"):
        time.sleep(0.2 * SURE + 0.02)
    assert store.requests == ["update", "update"] and leases.held == ["a"]
    store.requests.clear()
    with pytest.raises(ClaimLost) as lost, leases.writing("insert of 5 documents into d.t"):
        time.sleep(0.2 * SURE + 0.02)
        _take_over(store, "a")  # while the write was in flight
    assert leases.late == ["insert of 5 documents into d.t"]
    assert str(lost.value).endswith(
        "it stopped writing then, but these writes of it took longer than 0.1 s and may have "
        "landed after the other restore took over: insert of 5 documents into d.t"
    )


def test_a_renewal_never_shortens_a_lease() -> None:
    leases, store = _holding(["a"])
    far = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
    store.docs[claim_id("a")]["expires"] = far
    leases.renew()
    assert store.docs[claim_id("a")]["expires"] == far
