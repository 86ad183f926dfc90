"""A store opened and checked in a background thread while the caller gets on.

Opening an S3 store costs some 0.2 s of CPU before the first request (importing botocore,
loading the S3 model, building the client): a third of a small backup's fixed cost. A
backup has its own start-up to do meanwhile (choosing the source node, planning, taking the
snapshot, reading the catalogue), most of it waiting on the database. :class:`OpeningStore`
runs the opening and :meth:`~datatier.storage.base.ObjectStore.check` in a daemon thread;
``url`` answers at once and every other call waits for that thread, then either goes to the
opened store or raises what the opening or the check raised (the same exception, in every
thread that asks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from datatier.storage.base import ObjectStore
from datatier.storage.forwarding import ForwardingStore


class OpeningStore(ForwardingStore):
    """The store ``open_store()`` returns, opened and checked in the background.

    ``url`` must be the URL the opened store will report (checked once it is open).
    :meth:`check_soon` returns at once (the check is already running); :meth:`check`
    waits for it. The thread is a daemon: a command that ends without using the store
    does not wait for it.
    """

    def __init__(self, url: str, open_store: Callable[[], ObjectStore]) -> None:
        self._url = url
        self._open = open_store
        self._opened: Future[ObjectStore] = Future()
        threading.Thread(target=self._run, name="store-open", daemon=True).start()

    def _run(self) -> None:
        try:
            store = self._open()
            if store.url != self._url:  # a programming error, raised where the store is used
                raise AssertionError(f"opened {store.url}, expected {self._url}")
            store.check()
        except BaseException as exc:  # handed to whoever uses the store
            self._opened.set_exception(exc)
        else:
            self._opened.set_result(store)

    def failure(self) -> BaseException | None:
        """What opening or checking the store raised; None while it runs or once it is open."""
        if not self._opened.done():
            return None
        return self._opened.exception()

    def target(self) -> ObjectStore:
        """The opened, checked store; waits for it, or raises what opening it raised."""
        return self._opened.result()

    @property
    def url(self) -> str:
        return self._url

    def check(self) -> None:
        self.target()

    def check_soon(self) -> None:
        """Nothing to start: the check runs from construction."""


def failed_to_open(store: ObjectStore) -> bool:
    """True when ``store`` was opened in the background and that failed (never waits)."""
    return isinstance(store, OpeningStore) and store.failure() is not None
