"""Confirm by listing that a backup's objects are in the store as uploaded, before and
after its manifest is written (see :mod:`datatier.backup.service`)."""

from __future__ import annotations

from collections.abc import Sequence

from datatier.backup.listing import listing_mismatch, listing_rewritten
from datatier.backup.manifest import ObjectRecord
from datatier.backup.parents import PRUNE_CLAIM
from datatier.errors import IntegrityFailure
from datatier.storage.base import ObjectStore


def confirm_listed(store: ObjectStore, prefix: str, records: Sequence[ObjectRecord]) -> None:
    """IntegrityFailure unless one listing of ``prefix`` holds every record's key with its
    size and ETag (by :mod:`datatier.backup.listing`'s rules: another ETag means another
    client rewrote the object since its upload) and no prune claim (a concurrent prune is
    deleting the backup)."""
    listed = list(store.list_objects(prefix))
    if any(o.key == prefix + PRUNE_CLAIM for o in listed):
        raise IntegrityFailure(
            f"{store.url}/{prefix}: a concurrent `backups prune` claimed this backup for "
            "deletion while it ran",
            hint="run prune with a grace period longer than a backup takes",
        )
    mismatch = listing_mismatch(store.url, prefix, records, listed)
    if mismatch:
        raise IntegrityFailure(
            f"{mismatch} after upload (deleted by a concurrent prune or another client?)",
            hint="no manifest was written",
        )
    rewritten = listing_rewritten(store.url, records, listed)
    if rewritten:
        raise IntegrityFailure(
            f"{rewritten} (another client wrote it while the backup ran?)",
            hint="no manifest was written",
        )
