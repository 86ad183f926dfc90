"""Bring a backup's archived objects (GLACIER, DEEP_ARCHIVE) back to readable copies: the
one path for archive-restore requests (restores, ``backups verify --request-restore``).

Restore requests cost money on AWS: call :func:`request_archived` / :func:`bring_back` only
after every check that could refuse the work. One listing gives every object's live storage
class (reported as such); only archived objects get a HEAD, for their restore state, and
only those not being restored already get a request.
"""

from __future__ import annotations

import posixpath
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datatier.backup.listing import listing_mismatch
from datatier.backup.manifest import ObjectRecord
from datatier.errors import IntegrityFailure, NotReadyYet
from datatier.log import get_logger
from datatier.storage.base import ObjectInfo, ObjectStore, RestoreState, RestoreTier

if TYPE_CHECKING:
    from datatier.backup.engine import RestoreOptions

log = get_logger(__name__)

TYPICAL_WAIT = {
    ("GLACIER", "Expedited"): "1-5 minutes",
    ("GLACIER", "Standard"): "3-5 hours",
    ("GLACIER", "Bulk"): "5-12 hours",
    ("DEEP_ARCHIVE", "Standard"): "up to 12 hours",
    ("DEEP_ARCHIVE", "Bulk"): "up to 48 hours",
}


@dataclass(frozen=True)
class ArchiveState:
    """From one listing: objects per live storage class, how many are archived, and how
    many restore requests this run sent."""

    classes: dict[str, int]
    archived: int = 0
    requested: int = 0


def request_archived(
    store: ObjectStore,
    objects: list[ObjectRecord],
    *,
    days: int,
    tier: RestoreTier,
    dry_run: bool = False,
) -> tuple[ArchiveState, list[ObjectInfo]]:
    """Send a restore request for every archived object of ``objects`` not being restored
    yet (none in a ``dry_run``); the state, and the archived objects as HEAD saw them.

    IntegrityFailure, before any request, when an object is missing or of another size
    (a damaged backup).
    """
    if not objects:
        return ArchiveState({}), []
    prefix = posixpath.commonpath([posixpath.dirname(o.key) for o in objects])
    listed = {i.key: i for i in store.list_objects(f"{prefix}/" if prefix else "")}
    mismatch = listing_mismatch(store.url, "", objects, listed.values())
    if mismatch:
        raise IntegrityFailure(f"{mismatch}: nothing was requested or applied")
    wanted = {o.key for o in objects}
    classes = dict(
        sorted(Counter(i.storage_class for k, i in listed.items() if k in wanted).items())
    )
    archived: list[ObjectInfo] = [
        store.head(key) for key, info in listed.items() if key in wanted and info.is_archived
    ]
    if not archived or dry_run:
        return ArchiveState(classes, len(archived)), archived
    requested = 0
    for info in archived:
        if info.restore is RestoreState.NONE:
            store.request_restore(info.key, days=days, tier=tier)
            requested += 1
    log.info(
        "restore.archive_requested",
        objects=len(archived),
        requested=requested,
        tier=tier.value,
        classes=sorted({i.storage_class for i in archived}),
    )
    return ArchiveState(classes, len(archived), requested), archived


def bring_back(
    store: ObjectStore,
    objects: list[ObjectRecord],
    options: RestoreOptions,
    on_wait: Callable[[int, int], None] | None = None,
) -> ArchiveState:
    """Make archived objects readable (:func:`request_archived`), then with
    ``options.wait`` poll until they are; call only once every refusal has been made.

    IntegrityFailure (before any request) when an object is missing or of another size
    (a damaged backup); NotReadyYet when some are still restoring and ``options.wait`` is off.
    """
    state, archived = request_archived(
        store, objects, days=options.days, tier=options.tier, dry_run=options.dry_run
    )
    if not archived or options.dry_run:
        return state
    archive_classes = sorted({i.storage_class for i in archived})
    deadline = time.monotonic() + options.timeout_seconds
    while True:
        pending = [i.key for i in archived if not store.head(i.key).readable]
        if not pending:
            return state
        if on_wait:
            on_wait(len(archived) - len(pending), len(archived))
        if not options.wait:
            waits = ", ".join(
                f"{c}: typically {TYPICAL_WAIT.get((c, options.tier.value), 'hours')}"
                for c in archive_classes
            )
            raise NotReadyYet(
                f"{len(pending)} of {len(archived)} archived objects are still being restored "
                f"(tier {options.tier.value}; {waits})",
                hint="run the same command again later, or add --wait",
            )
        if time.monotonic() > deadline:
            raise NotReadyYet(f"archive restore not finished after {options.timeout_seconds:.0f} s")
        time.sleep(options.poll_seconds)
