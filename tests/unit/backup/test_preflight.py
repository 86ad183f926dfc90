"""beside(): the store pre-flight runs in a thread while the engine starts; errors come in
the order the steps had one after the other (the store's first)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from datatier.backup.preflight import beside, check_store
from datatier.errors import NotReadyYet, ServiceUnavailable, UsageError
from datatier.storage.deferred import DeferredStore
from datatier.storage.local import LocalStore


def test_both_run_at_once_and_the_result_is_returned() -> None:
    first_started = threading.Event()
    seen: list[str] = []

    def first() -> None:
        seen.append(threading.current_thread().name)
        first_started.set()

    def then() -> int:
        assert first_started.wait(5)  # would time out if first ran after then
        return 7

    assert beside(first, then) == 7 and seen == ["store-preflight"]


def test_the_first_error_wins_over_the_second_and_over_success() -> None:
    store_error = UsageError("S3 bucket 'x' does not exist")

    def first() -> None:
        time.sleep(0.05)  # fails after then() has failed: still reported first
        raise store_error

    def failing_then() -> int:
        raise NotReadyYet("no node is fresh enough")

    with pytest.raises(UsageError) as raised:
        beside(first, failing_then)
    assert raised.value is store_error
    with pytest.raises(UsageError) as raised:
        beside(first, lambda: 1)
    assert raised.value is store_error


def test_the_second_error_when_the_first_succeeds() -> None:
    done: list[bool] = []

    def then() -> int:
        raise NotReadyYet("no node is fresh enough")

    with pytest.raises(NotReadyYet):
        beside(lambda: done.append(True), then)
    assert done == [True]  # waited for


def test_an_interrupt_does_not_wait_for_the_first() -> None:
    release = threading.Event()

    def first() -> None:
        release.wait(5)

    def then() -> int:
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        beside(first, then)
    assert time.monotonic() - started < 2
    release.set()


def test_check_store_raises_the_stores_opening_error(tmp_path: Path) -> None:
    error = ServiceUnavailable("cannot reach the store")

    def opener() -> LocalStore:
        raise error

    with pytest.raises(ServiceUnavailable) as raised:
        check_store(DeferredStore(opener))
    assert raised.value is error
    check_store(LocalStore(tmp_path / "s"))  # a reachable store passes
