"""An incremental backup and a concurrent prune of its parents: one of the two always sees
the other.

An incremental chooses its parent when it starts and writes its manifest minutes or hours
later; meanwhile ``backups prune`` may plan and delete that parent (a newer full backup
finished, so retention lets the old chain go). Then the incremental would exit 0 with a
chain that can never be restored. The two sides:

* the backup, after writing its manifest, looks at each parent back to its full backup
  (:func:`confirm_parents`): a parent whose manifest is gone, or that holds a prune claim,
  makes it withdraw its manifest and fail;
* prune, before deleting a complete backup, writes a claim into its prefix, then lists the
  policy's manifests once more (:func:`needed_by_new`): a manifest it did not plan with
  whose chain includes that backup makes it withdraw the claim and keep the backup.

Each side writes first and looks second, so whichever looks last sees the other's write.

A backup deleted while ``verify`` or ``restore`` reads it (:func:`unless_deleted`) is
reported as deleted (exit 1), not as corrupt (exit 4).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterable, Iterator

from datatier.backup.manifest import BACKUP_ID, MANIFEST_NAME, backup_prefix, manifest_key
from datatier.errors import IntegrityFailure, OperationFailed
from datatier.storage.base import ObjectNotFound, ObjectStore

PRUNE_CLAIM = "prune-claim.json"
"""Written into a backup's prefix by prune before it deletes that backup."""

MAX_DEPTH = 1000
"""Longer parent walks are treated as loops (as :mod:`datatier.backup.chain` does)."""


def parent_of(store: ObjectStore, policy: str, backup_id: str) -> str | None:
    """The parent named by ``backup_id``'s manifest; None for a full backup, or when the
    manifest is gone or unreadable (the walk stops there: the chain check reports it)."""
    try:
        doc = json.loads(store.get_bytes(manifest_key(policy, backup_id)))
    except (ObjectNotFound, ValueError):
        return None
    parent = doc.get("parent") if isinstance(doc, dict) else None
    return parent if isinstance(parent, str) and BACKUP_ID.match(parent) else None


def confirm_parents(store: ObjectStore, policy: str, backup_id: str, parent: str | None) -> None:
    """IntegrityFailure when a parent of ``backup_id`` (``parent``, its parent, ... back to
    the full backup) has lost its manifest or holds a prune claim: a concurrent prune is
    deleting, or has deleted, the chain this backup needs."""
    seen = {backup_id}
    child = backup_id
    while parent is not None:
        if parent in seen or len(seen) > MAX_DEPTH:
            raise IntegrityFailure(f"backup {backup_id}: its chain of parents loops")
        seen.add(parent)
        prefix = backup_prefix(policy, parent)
        names = {o.key.removeprefix(prefix) for o in store.list_objects(prefix)}
        if MANIFEST_NAME not in names or PRUNE_CLAIM in names:
            what = "was deleted" if MANIFEST_NAME not in names else "is being deleted"
            raise IntegrityFailure(
                f"backup {backup_id} of {policy}: its parent {parent} (of {child}) {what} by "
                "a concurrent `backups prune` while this backup ran; an incremental without "
                "it can never be restored",
                hint="run the backup again (it takes a full backup when no parent is left); "
                "a claim left by a killed prune is removed by the next `backups prune`",
            )
        child, parent = parent, parent_of(store, policy, parent)


def needed_by_new(
    store: ObjectStore, policy: str, planned: Collection[str], candidates: Iterable[str]
) -> set[str]:
    """The ``candidates`` (backup IDs) that a manifest of ``policy`` not among ``planned``
    (the backups prune planned with) depends on: incrementals that completed after the
    plan was made."""
    wanted = set(candidates)
    prefix = f"{policy}/"
    new = {
        key.removeprefix(prefix).split("/", 1)[0]
        for key in (o.key for o in store.list_objects(prefix))
        if key.endswith("/" + MANIFEST_NAME)
    } - set(planned)
    needed: set[str] = set()
    for backup_id in new:
        seen = {backup_id}
        parent = parent_of(store, policy, backup_id)
        while parent is not None and parent not in seen and len(seen) <= MAX_DEPTH:
            seen.add(parent)
            if parent in wanted:
                needed.add(parent)
            parent = parent_of(store, policy, parent)
    return needed


@contextlib.contextmanager
def unless_deleted(store: ObjectStore, policy: str, backup_id: str) -> Iterator[None]:
    """Reading a backup in the block: an IntegrityFailure (an object missing, say) becomes
    OperationFailed (exit 1) when by then the manifest of the backup, or of a parent, is
    gone: it was deleted while it was read (by ``backups prune``, or by hand), which says
    nothing of its integrity. Otherwise the IntegrityFailure stands (exit 4)."""
    try:
        yield
    except IntegrityFailure as exc:
        gone = _deleted(store, policy, backup_id)
        if gone is None:
            raise
        raise OperationFailed(
            f"backup {gone} of {policy} was deleted while it was being read (its manifest is "
            f"gone: by `backups prune`, or by hand); what was seen: {exc}",
            hint="pick a backup that is still there (`datatier backups list`)",
        ) from exc


def _deleted(store: ObjectStore, policy: str, backup_id: str) -> str | None:
    """The first of ``backup_id`` and its parents whose manifest is gone; None when all are
    there, or when the store cannot say."""
    seen: set[str] = set()
    current: str | None = backup_id
    try:
        while current is not None and current not in seen and len(seen) <= MAX_DEPTH:
            seen.add(current)
            if not store.exists(manifest_key(policy, current)):
                return current
            current = parent_of(store, policy, current)
    except Exception:  # the store cannot say: the integrity failure stands
        return None
    return None
