"""NodePool bookkeeping with fake connections (no MySQL: the session reset and the ping are
replaced; the real ones run in tests/integration/test_router_pool.py)."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pymysql
import pytest

from datatier.errors import ServiceUnavailable
from datatier.mysql.pool import NodePool, PoolExhausted, PoolSettings
from datatier.mysql.session import SessionKeeper, SessionState


class Fake:
    """A stand-in connection: numbered, closable; ``broken`` fails the ping."""

    numbers = itertools.count(1)

    def __init__(self) -> None:
        self.number = next(self.numbers)
        self.open = True
        self.broken = False
        self.resets = 0

    def close(self) -> None:
        self.open = False


class FakeKeeper(SessionKeeper):
    """Counts resets; a ``broken`` connection fails the reset and the ping."""

    def opened(self, conn: Any) -> SessionState:
        if conn.broken:
            raise pymysql.err.OperationalError(2013, "Lost connection")
        return SessionState(None)

    def reset(self, conn: Any, state: SessionState) -> None:
        if conn.broken:
            raise pymysql.err.OperationalError(2013, "Lost connection")
        conn.resets += 1

    @staticmethod
    def ping(conn: Any) -> None:
        if conn.broken:
            raise pymysql.err.OperationalError(2006, "gone away")


def make(refuse: bool = False, **settings: Any) -> tuple[NodePool, list[Any]]:
    opened: list[Any] = []  # Fakes, standing in for the pool's pymysql connections

    def opener() -> Any:
        if refuse:
            raise ServiceUnavailable("cannot connect to MySQL n1 (127.0.0.1:1): refused")
        opened.append(Fake())
        return opened[-1]

    base: dict[str, Any] = {"size": 2, "max_overflow": 1, "timeout": 0.2, "pre_ping_after": 60.0}
    base.update(settings)
    return NodePool("n1", opener, PoolSettings(**base), keeper=FakeKeeper()), opened


def test_checkouts_reuse_the_last_returned_connection() -> None:
    pool, opened = make()
    for _ in range(5):
        with pool.checkout() as conn:
            assert conn.raw is opened[0]
    assert len(opened) == 1 and opened[0].resets == 5
    a, b = pool.checkout(), pool.checkout()  # a second one only when the first is busy
    a.close()
    b.close()
    stats = pool.stats()
    assert stats.opened_total == 2 and stats.checkouts_total == 7 and stats.idle == 2


def test_lifo_order_and_returned_handles_are_dead() -> None:
    pool, opened = make()
    a, b = pool.checkout(), pool.checkout()
    raw_a, raw_b = a.raw, b.raw
    a.close()
    b.close()
    with pool.checkout() as again:
        assert again.raw is raw_b  # the most recently returned
    assert raw_a is opened[0]
    with pytest.raises(pymysql.err.InterfaceError, match="returned to the pool"):
        a.cursor()
    a.close()  # a second close does nothing
    assert pool.stats().idle == 2


def test_bound_overflow_and_timeout() -> None:
    pool, opened = make()
    held = [pool.checkout() for _ in range(3)]  # size 2 + overflow 1
    started = time.monotonic()
    with pytest.raises(PoolExhausted, match=r"pool of n1 exhausted: 3 connections in use"):
        pool.checkout()
    assert time.monotonic() - started >= 0.19
    for conn in held:
        conn.close()
    stats = pool.stats()
    assert stats.open == 2 and stats.idle == 2  # the overflow connection was closed
    assert stats.closed_total == {"overflow": 1} and stats.timeouts_total == 1
    assert stats.waits_total == 1 and stats.wait_seconds_total >= 0.19
    assert sum(not c.open for c in opened) == 1


def test_a_waiting_checkout_gets_the_returned_connection() -> None:
    pool, _ = make(size=1, max_overflow=0, timeout=5.0)
    held = pool.checkout()
    threading.Timer(0.05, held.close).start()
    with pool.checkout() as conn:
        assert conn.node == "n1"
    assert pool.stats().waits_total == 1


def test_recycle_and_pre_ping() -> None:
    pool, opened = make(recycle=0.05)
    with pool.checkout():
        pass
    time.sleep(0.06)
    with pool.checkout() as conn:  # too old: replaced
        assert conn.raw is opened[1]
    assert not opened[0].open and pool.stats().closed_total == {"recycled": 1}
    pool, opened = make(pre_ping_after=0.0)
    with pool.checkout():
        pass
    opened[0].broken = True
    with pool.checkout() as conn:  # the ping failed: a new connection in its place
        assert conn.raw is opened[1]
    stats = pool.stats()
    assert stats.closed_total == {"ping_failed": 1} and stats.open == 1


def test_failed_reset_discards_the_connection() -> None:
    pool, opened = make()
    conn = pool.checkout()
    opened[0].broken = True
    conn.close()
    stats = pool.stats()
    assert stats.open == 0 and stats.idle == 0 and stats.closed_total == {"reset_failed": 1}


def test_drain_closes_idle_now_and_in_use_on_return() -> None:
    pool, opened = make()
    idle, busy = pool.checkout(), pool.checkout()
    idle.close()
    assert pool.drain() == 1
    assert not opened[0].open and opened[1].open
    busy.close()
    assert not opened[1].open
    stats = pool.stats()
    assert stats.open == 0 and stats.drains_total == 1 and stats.closed_total == {"drained": 2}
    with pool.checkout() as conn:  # reopened on demand
        assert conn.raw is opened[2]


def test_refused_connection_frees_its_place_and_close_refuses() -> None:
    pool, _ = make(refuse=True)
    for _ in range(5):
        with pytest.raises(ServiceUnavailable, match="refused"):
            pool.checkout()
    assert pool.stats().open == 0
    pool, _ = make()
    pool.close()
    with pytest.raises(ServiceUnavailable, match="pool of n1 is closed"):
        pool.checkout()


def test_a_leaked_handle_gives_its_place_back() -> None:
    pool, opened = make(size=1, max_overflow=0)
    pool.checkout()  # never closed: garbage at once
    with pool.checkout(timeout=0) as conn:
        assert conn.raw is opened[1]
    assert not opened[0].open and pool.stats().closed_total == {"leaked": 1}
