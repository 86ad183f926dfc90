"""OpeningStore: a store opened and checked in a background thread (real LocalStore on disk;
the S3 path through `backup run` is tested against the sandbox's S3 server)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from datatier.errors import OperationFailed, UsageError
from datatier.storage.base import ObjectStore
from datatier.storage.local import LocalStore
from datatier.storage.opening import OpeningStore, failed_to_open


def test_url_answers_while_opening_and_calls_wait_for_it(tmp_path: Path) -> None:
    release = threading.Event()
    inner = LocalStore(tmp_path / "store")

    def slow_open() -> ObjectStore:
        assert release.wait(10)
        return inner

    store = OpeningStore(inner.url, slow_open)
    assert store.url == inner.url
    store.check_soon()  # returns at once: the check is already under way
    assert store.failure() is None and not failed_to_open(store)

    done: list[str] = []
    writer = threading.Thread(target=lambda: done.append(store.put_bytes("a/b", b"x").key))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive() and not done, "a write must wait for the opening"
    release.set()
    writer.join(10)
    assert done == ["a/b"]
    assert (tmp_path / "store" / "a" / "b").read_bytes() == b"x"
    assert store.get_bytes("a/b") == b"x"
    assert [o.key for o in store.list_objects("a/")] == ["a/b"]
    assert store.failure() is None and not failed_to_open(store)


def test_an_opening_failure_is_raised_by_every_use_in_every_thread(tmp_path: Path) -> None:
    def no_bucket() -> ObjectStore:
        raise UsageError("S3 bucket 'nope' does not exist")

    store = OpeningStore("s3://nope", no_bucket)
    with pytest.raises(UsageError, match="nope"):
        store.check()
    assert failed_to_open(store)
    raised: list[BaseException] = []

    def use() -> None:
        try:
            store.validate_key("k")
        except UsageError as exc:
            raised.append(exc)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(raised) == 3 and all(e is store.failure() for e in raised)
    with pytest.raises(UsageError):
        list(store.list_objects())
    assert store.url == "s3://nope"  # still answers: error messages name the store


def test_the_check_runs_in_the_background_and_its_failure_comes_at_first_use(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    inner = LocalStore(blocker / "store")
    store = OpeningStore(inner.url, lambda: inner)
    store.check_soon()  # does not raise: the failure belongs to the first use
    with pytest.raises(OperationFailed, match="not a writable directory"):
        store.put_bytes("k", b"x")
    assert failed_to_open(store)
    assert not blocker.is_dir()


def test_a_store_that_reports_another_url_is_refused(tmp_path: Path) -> None:
    inner = LocalStore(tmp_path / "store")
    store = OpeningStore("file:///elsewhere", lambda: inner)
    with pytest.raises(AssertionError, match="expected file:///elsewhere"):
        store.check()
    assert not (tmp_path / "store").exists()


def test_a_plain_store_is_never_failed_to_open(tmp_path: Path) -> None:
    assert not failed_to_open(LocalStore(tmp_path / "store"))
