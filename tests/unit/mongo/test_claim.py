"""The parts of the Mongo restore lease (datatier/mongo/claim.py) that need no server: the
lease ``_id`` of any name, the server clock, and exit 5's text. Taking, renewing, taking
over and releasing leases run against real servers in
tests/integration/mongo/test_mongo_restore_claim.py."""

from __future__ import annotations

import datetime
import time

from datatier.mongo.claim import ServerClock, claim_id, held_message, utc


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
