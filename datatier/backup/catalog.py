"""The backup catalog of one object store: list, look up and verify backups.

A backup is a ``POLICY/BACKUP_ID/`` prefix (other keys in the store are ignored). It is
*complete* when its manifest exists and parses and every object it names is listed with the
size (and, where the manifest records one, the ETag) it records, *damaged* when the manifest
parses but the listing does not match it (an object missing or of another size, or
*rewritten*: another ETag, i.e. written again after the backup, see
:mod:`datatier.backup.listing`), *incomplete* when objects exist without a manifest
(interrupted or still running), *unreadable* when the manifest does not parse or names
another backup. Only complete backups are listed by default and kept by retention; a
damaged backup can still be shown, verified (exit 4 naming the object) and partly restored.
Pruning (:mod:`datatier.backup.prune`) and archiving (:mod:`datatier.backup.archive`) work
over a catalog.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from datatier.backup.bringback import request_archived
from datatier.backup.completeness import missing_parts
from datatier.backup.listing import listing_mismatch, listing_rewritten
from datatier.backup.manifest import (
    BACKUP_ID,
    MANIFEST_NAME,
    Manifest,
    backup_prefix,
    parse_backup_id,
)
from datatier.backup.parents import PRUNE_CLAIM
from datatier.backup.policy import POLICY_NAME, Policy
from datatier.errors import IntegrityFailure, NotReadyYet, UsageError
from datatier.log import get_logger
from datatier.pipeline.staging import Wanted, verify_objects
from datatier.storage.base import (
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    RestoreState,
    RestoreTier,
)

log = get_logger(__name__)

ObjectCallback = Callable[[str, int], None]
"""Called with an object key and its size once the object is done (verified, re-classed)."""


class BackupState(StrEnum):
    COMPLETE = "complete"
    DAMAGED = "damaged"
    INCOMPLETE = "incomplete"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class BackupEntry:
    """One backup as found in the store: its listed objects and, if complete, its manifest."""

    policy: str
    backup_id: str
    state: BackupState
    objects: tuple[ObjectInfo, ...]
    manifest: Manifest | None = None
    problem: str | None = None
    rewritten: bool = False
    """Damaged only by an object rewritten since the backup (all there, sizes right): its
    bytes may still be the backup's, which only ``verify`` can tell."""

    @property
    def prefix(self) -> str:
        return backup_prefix(self.policy, self.backup_id)

    @property
    def manifest_key(self) -> str:
        return self.prefix + MANIFEST_NAME

    @property
    def data_objects(self) -> list[ObjectInfo]:
        """Every listed object except the manifest and a prune claim."""
        claim = self.prefix + PRUNE_CLAIM
        return [o for o in self.objects if o.key not in (self.manifest_key, claim)]

    @property
    def has_manifest(self) -> bool:
        return any(o.key == self.manifest_key for o in self.objects)

    @property
    def created_at(self) -> datetime:
        """The manifest's ``started_at`` (ms precision) if valid, else the ID's time."""
        try:
            started = datetime.fromisoformat(self.manifest.started_at) if self.manifest else None
        except ValueError:
            started = None
        return started if started and started.utcoffset() is not None else self.id_time

    @property
    def id_time(self) -> datetime:
        return parse_backup_id(self.backup_id)

    @property
    def last_written(self) -> datetime:
        """The latest of the ID's time and the objects' modification times."""
        times = [o.last_modified for o in self.objects if o.last_modified is not None]
        return max([self.id_time, *times])

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.data_objects)

    def storage_classes(self) -> dict[str, int]:
        """Live data-object count per storage class, from the listing."""
        counts: dict[str, int] = {}
        for obj in self.data_objects:
            counts[obj.storage_class] = counts.get(obj.storage_class, 0) + 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class VerifyReport:
    policy: str
    backup_id: str
    objects: int
    bytes: int
    seconds: float


def store_urls(policies: Iterable[Policy], default_store: str | None = None) -> list[str]:
    """The distinct stores to scan: ``default_store`` (if given) and every policy's store."""
    urls = [default_store] if default_store else []
    return list(dict.fromkeys([*urls, *(p.store_url for p in policies)]))


def policy_prefix(policy: str) -> str:
    """``POLICY/``, the key prefix of a policy's backups; UsageError for a malformed name."""
    if not POLICY_NAME.match(policy):
        raise UsageError(f"{policy!r} is not a policy name")
    return f"{policy}/"


class Catalog:
    """The backups in ``store``; ``policies`` are the names tried first when looking up an ID."""

    def __init__(self, store: ObjectStore, policies: Sequence[str] = ()) -> None:
        self.store = store
        self.policies = list(policies)

    # -- listing ---------------------------------------------------------------------------

    def backups(self, policy: str | None = None, *, include_all: bool = False) -> list[BackupEntry]:
        """Backups of ``policy`` (or of every policy), by policy, then oldest first.

        Only complete ones unless ``include_all``; manifests are read (one GET each).
        """
        prefix = policy_prefix(policy) if policy else ""
        entries = (self._entry(p, b, objs) for p, b, objs in self._grouped(prefix))
        found = [e for e in entries if include_all or e.state is BackupState.COMPLETE]
        return sorted(found, key=lambda e: (e.policy, e.created_at, e.backup_id))

    def _grouped(self, prefix: str) -> Iterator[tuple[str, str, list[ObjectInfo]]]:
        """(policy, backup ID, objects) per backup prefix, from one listing."""
        current: tuple[str, str] | None = None
        objects: list[ObjectInfo] = []
        for info in self.store.list_objects(prefix):
            parts = info.key.split("/")
            if len(parts) < 3 or not POLICY_NAME.match(parts[0]) or not BACKUP_ID.match(parts[1]):
                continue
            where = (parts[0], parts[1])
            if where != current:
                if current is not None:
                    yield current[0], current[1], objects
                current, objects = where, []
            objects.append(info)
        if current is not None:
            yield current[0], current[1], objects

    def _entry(self, policy: str, backup_id: str, objects: list[ObjectInfo]) -> BackupEntry:
        """Classify one backup prefix, reading its manifest if there is one."""
        entry = BackupEntry(policy, backup_id, BackupState.INCOMPLETE, tuple(objects))
        if not entry.has_manifest:
            return entry
        where = f"{self.store.url}/{entry.manifest_key}"
        try:
            manifest = Manifest.decode(self.store.get_bytes(entry.manifest_key), where)
        except ObjectNotFound:  # deleted since the listing (a concurrent prune)
            return entry
        except (IntegrityFailure, NotReadyYet) as exc:
            return replace(entry, state=BackupState.UNREADABLE, problem=str(exc))
        if (manifest.policy, manifest.backup_id) != (policy, backup_id):
            problem = f"{where}: manifest names {manifest.policy}/{manifest.backup_id}"
            return replace(entry, state=BackupState.UNREADABLE, problem=problem)
        mismatch = listing_mismatch(self.store.url, entry.prefix, manifest.objects, objects)
        if mismatch:
            return replace(entry, state=BackupState.DAMAGED, manifest=manifest, problem=mismatch)
        rewritten = listing_rewritten(self.store.url, manifest.objects, objects)
        if rewritten:
            return replace(
                entry,
                state=BackupState.DAMAGED,
                manifest=manifest,
                problem=rewritten,
                rewritten=True,
            )
        return replace(entry, state=BackupState.COMPLETE, manifest=manifest)

    # -- lookup ----------------------------------------------------------------------------

    def lookup(
        self, backup_id: str, policy: str | None = None, *, search: bool = True
    ) -> BackupEntry | None:
        """The backup ``backup_id`` in any state, or None. Without ``policy``, the configured
        policy names are tried first, then (``search``) the whole store is searched.
        UsageError for a malformed ID or policy name, or an ID found in several policies."""
        parse_backup_id(backup_id)
        names = [policy] if policy else self.policies
        for name in names:
            prefix = policy_prefix(name) + f"{backup_id}/"
            found = list(self._grouped(prefix))
            if found:
                return self._entry(*found[0])
        if policy or not search:
            return None
        owners = sorted({p for p, b, _ in self._grouped("") if b == backup_id} - set(names))
        if len(owners) > 1:
            raise UsageError(
                f"backup {backup_id} exists in several policies: {', '.join(owners)}",
                hint="name one with --policy",
            )
        return self.lookup(backup_id, owners[0]) if owners else None

    def complete(self, entry: BackupEntry) -> Manifest:
        """The manifest of ``entry`` (complete or damaged: verify and restore name what is
        missing); UsageError if incomplete, IntegrityFailure if unreadable."""
        if entry.state is BackupState.UNREADABLE:
            raise IntegrityFailure(entry.problem or f"{entry.prefix}: unreadable manifest")
        if entry.manifest is None:
            raise UsageError(
                f"backup {entry.backup_id} of policy {entry.policy} is incomplete (no manifest):"
                " it was interrupted or is still running",
                hint="prune removes its leftovers once it is older than the grace period",
            )
        return entry.manifest

    # -- verify ----------------------------------------------------------------------------

    def verify(
        self, manifest: Manifest, on_object: ObjectCallback | None = None, *, jobs: int = 4
    ) -> VerifyReport:
        """Check every object of ``manifest``: present, readable, size and SHA-256, ``jobs``
        at a time with the checks a restore's staging makes
        (:func:`~datatier.pipeline.staging.verify_objects`). The content decides: an
        object rewritten since the backup (another ETag) passes if its bytes are the same.

        IntegrityFailure naming the first missing, truncated or corrupt object (exit 4);
        NotReadyYet when objects are archived and not restored (exit 5); nothing is changed.
        ``on_object`` is called per object in the manifest's order.
        """
        started = time.monotonic()
        prefix = backup_prefix(manifest.policy, manifest.backup_id)
        url = self.store.url
        problems = missing_parts(manifest)
        if problems:
            raise IntegrityFailure(
                f"backup {manifest.backup_id}: the manifest does not account for every table "
                f"and row: {'; '.join(problems[:5])}"
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            )
        listed = list(self.store.list_objects(prefix))
        mismatch = listing_mismatch(url, prefix, manifest.objects, listed)
        if mismatch:
            raise IntegrityFailure(mismatch)
        live = {o.key: o for o in listed}
        cold = [live[rec.key] for rec in manifest.objects if not live[rec.key].readable]
        cold = [h for h in (self.store.head(o.key) for o in cold) if not h.readable]
        if cold:
            raise _not_restored(manifest, cold)
        wanted = [Wanted(rec.key, rec.size, rec.sha256) for rec in manifest.objects]
        total = verify_objects(self.store, wanted, jobs=jobs, on_object=on_object)
        seconds = round(time.monotonic() - started, 3)
        return VerifyReport(
            manifest.policy, manifest.backup_id, len(manifest.objects), total, seconds
        )

    def request_restore(
        self, manifest: Manifest, *, days: int = 3, tier: RestoreTier = RestoreTier.STANDARD
    ) -> list[ObjectInfo]:
        """Ask for readable copies of the backup's archived objects (idempotent, through
        :func:`~datatier.backup.bringback.request_archived`); returns the objects that are
        still not readable."""
        _, archived = request_archived(self.store, manifest.objects, days=days, tier=tier)
        waiting = [h for h in (self.store.head(o.key) for o in archived) if not h.readable]
        log.info("verify.restore_requested", backup_id=manifest.backup_id, waiting=len(waiting))
        return waiting


def locate(
    catalogs: Sequence[Catalog], backup_id: str, policy: str | None = None
) -> tuple[Catalog, Manifest]:
    """The catalog holding ``backup_id`` and its manifest; UsageError (exit 2) if unknown.
    Every catalog's configured policies are looked up (one short listing each) before any
    store is searched whole: listing a store lists every object of every backup in it."""
    parse_backup_id(backup_id)
    for search in (False, True) if policy is None else (True,):
        for catalog in catalogs:
            entry = catalog.lookup(backup_id, policy, search=search)
            if entry is not None:
                return catalog, catalog.complete(entry)
    where = ", ".join(c.store.url for c in catalogs) or "no store"
    scope = f" of policy {policy}" if policy else ""
    raise UsageError(
        f"no backup {backup_id}{scope} in {where}",
        hint="`datatier backups list` shows the complete backups",
    )


def _not_restored(manifest: Manifest, cold: list[ObjectInfo]) -> NotReadyYet:
    classes = ", ".join(sorted({o.storage_class for o in cold}))
    ongoing = sum(1 for o in cold if o.restore is RestoreState.ONGOING)
    if ongoing == len(cold):
        hint = "their restore is in progress; run again later (GLACIER: hours)"
    else:
        hint = (
            f"run `datatier backups verify {manifest.backup_id} --request-restore`, then run "
            "verify again once the restore completes (GLACIER: hours)"
        )
    return NotReadyYet(
        f"backup {manifest.backup_id}: {len(cold)} of {len(manifest.objects)} objects are "
        f"archived in {classes} and not restored ({ongoing} restoring), first {cold[0].key}",
        hint=hint,
    )
