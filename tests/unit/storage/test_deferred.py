"""DeferredStore: a store opened in a background thread; its calls wait for the opening and
its opening error is raised, unchanged, by every call."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from datatier.errors import UsageError
from datatier.storage.base import ObjectStore
from datatier.storage.deferred import DeferredStore, settled
from datatier.storage.local import LocalStore


def test_calls_wait_for_the_store_opened_in_another_thread(tmp_path: Path) -> None:
    release = threading.Event()
    opened_in: list[str] = []

    def opener() -> ObjectStore:
        opened_in.append(threading.current_thread().name)
        release.wait(5)
        return LocalStore(tmp_path / "store")

    store = DeferredStore(opener)
    got: list[bytes] = []
    caller = threading.Thread(target=lambda: got.append(store.get_bytes("a/b")), daemon=True)
    LocalStore(tmp_path / "store").put_bytes("a/b", b"payload")
    caller.start()
    caller.join(0.2)
    assert caller.is_alive() and not got  # waiting for the opening
    release.set()
    caller.join(5)
    assert got == [b"payload"] and opened_in == ["store-open"]
    store.put_bytes("c", b"x")
    assert [o.key for o in store.list_objects()] == ["a/b", "c"]
    assert store.url == LocalStore(tmp_path / "store").url
    assert settled(store) is store.target()


def test_an_opening_error_is_raised_by_every_call_and_settles_to_none() -> None:
    error = UsageError("s3 part_size 1 is outside S3's limits")

    def opener() -> ObjectStore:
        raise error

    store = DeferredStore(opener)
    for call in (store.check, lambda: store.url, lambda: list(store.list_objects("p/"))):
        with pytest.raises(UsageError) as raised:
            call()
        assert raised.value is error
    assert settled(store) is None


def test_settled_keeps_other_stores_and_none(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    assert settled(local) is local and settled(None) is None
