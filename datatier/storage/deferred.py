"""A store opened in a background thread, so its caller can start other work at once.

Building an S3 store costs ~0.2 s of importing botocore and creating the client, before any
request. A backup spends that time connecting to its source and planning instead
(:mod:`datatier.backup.preflight`).

Contract. ``DeferredStore(opener)`` runs ``opener()`` in a daemon thread from the start.
Every :class:`ObjectStore` call (``url`` too) waits for it, then goes to the store it
returned; when it raised, every call raises that same exception, so the store's error
surfaces, unchanged, where the store is first used. :func:`settled` says which it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from datatier.storage.base import ObjectStore
from datatier.storage.forwarding import ForwardingStore


class DeferredStore(ForwardingStore):
    """The store ``opener`` returns, opened in a background thread (module docstring)."""

    def __init__(self, opener: Callable[[], ObjectStore]) -> None:
        self._opener = opener
        self._store: ObjectStore | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, name="store-open", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            self._store = self._opener()
        except BaseException as exc:  # raised again to every caller of target()
            self._error = exc

    def opened(self) -> ObjectStore | None:
        """Wait for the opening; the store, or None when ``opener`` raised."""
        self._thread.join()
        return self._store

    def target(self) -> ObjectStore:
        """Wait for the opening; the store, or the exception ``opener`` raised."""
        store = self.opened()
        if store is None:
            assert self._error is not None
            raise self._error
        return store


def settled(store: ObjectStore | None) -> ObjectStore | None:
    """``store`` once usable: a :class:`DeferredStore` waited for, None if it failed to open
    (as if it had never been opened); any other store as it is."""
    if isinstance(store, DeferredStore):
        return store.opened()
    return store
