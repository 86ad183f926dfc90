"""A backup's store pre-flight, run beside the engine's own start.

Before a backup writes anything the store is checked (:meth:`ObjectStore.check`) and its
bucket's default encryption looked at (a warning). The engine meanwhile chooses its source
and plans: both sides wait mostly on the network, and an S3 store opened in the background
(:mod:`datatier.storage.deferred`) is still being built. :func:`beside` runs them at once
and reports errors in the order the steps had when they ran one after the other: the
store's first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from datatier.log import get_logger
from datatier.storage.base import ObjectStore

log = get_logger(__name__)

T = TypeVar("T")


def check_store(store: ObjectStore) -> None:
    """Check that ``store`` answers (its own errors: missing bucket, credentials, ...) and
    log a warning when its bucket has no default encryption (both asked at once: one round
    trip; the warning only once the check passed)."""
    if warning := beside(store.check, store.encryption_warning):
        log.warning("backup.store_unencrypted", store=store.url, warning=warning)


def beside(first: Callable[[], None], then: Callable[[], T]) -> T:
    """``then()``'s result, with ``first()`` run in a thread meanwhile.

    Errors as if ``first`` had run to its end before ``then`` began: ``first``'s error is
    raised when it fails, whether or not ``then`` did (``then``'s error is dropped); else
    ``then``'s. An interrupt (KeyboardInterrupt, SystemExit) in ``then`` is raised at once,
    without waiting for ``first``."""
    failed: list[BaseException] = []

    def run_first() -> None:
        try:
            first()
        except BaseException as exc:  # raised again in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run_first, name="store-preflight", daemon=True)
    thread.start()
    try:
        result = then()
    except Exception:
        thread.join()
        if failed:
            raise failed[0] from None
        raise
    thread.join()
    if failed:
        raise failed[0]
    return result
