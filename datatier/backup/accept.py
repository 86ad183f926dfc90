"""Accept the ETags a store lists for a backup whose objects all verify
(``backups verify --accept-etags``).

A backup whose objects were rewritten with their own bytes (copied by a tool that gives
them other ETags, e.g. multipart ones) is listed damaged (:mod:`datatier.backup.listing`)
though it restores. Two steps, so a chain is read whole before any manifest changes:
:func:`verify_listed` reads every object and checks its size and SHA-256 against the
manifest, between two listings whose ETags must agree (else the bytes read may not be the
ones listed); :func:`record_listed` then writes the manifest again, last and in one PUT
(atomic per object, as every manifest write), with the listed ETags; :func:`accept_chain`
does the first for every backup of a chain before the second, the second under the policy's
prune lock (:mod:`datatier.backup.prunelock`). Nothing is written
when an object fails, when the manifest or an ETag changed since, or when every recorded
ETag already matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from datatier.backup.catalog import Catalog, ObjectCallback, VerifyReport
from datatier.backup.confirm import confirm_listed
from datatier.backup.listing import listing_mismatch, same_etag
from datatier.backup.manifest import Manifest, backup_prefix, manifest_key
from datatier.backup.parents import PRUNE_CLAIM
from datatier.backup.prunelock import PruneLock
from datatier.backup.service import MANIFEST_TAGS
from datatier.errors import IntegrityFailure
from datatier.log import get_logger
from datatier.storage.base import ObjectNotFound, StorageClass

log = get_logger(__name__)

UNCHANGED = "no ETag was accepted: the manifest is unchanged"


@dataclass(frozen=True)
class Verified:
    """A backup whose objects all verified, and the ETag listed for each (key -> ETag)
    around the reading; ``changed`` are the keys whose recorded ETag differs."""

    manifest: Manifest
    report: VerifyReport
    listed: dict[str, str]

    @property
    def changed(self) -> list[str]:
        return [
            o.key
            for o in self.manifest.objects
            if o.key in self.listed
            and (o.etag is None or not same_etag(o.etag, self.listed[o.key]))
        ]


def verify_listed(
    catalog: Catalog, manifest: Manifest, on_object: ObjectCallback | None = None, *, jobs: int = 4
) -> Verified:
    """Verify ``manifest``'s objects (:meth:`Catalog.verify`: size and SHA-256 of every
    one) between two listings of its prefix. IntegrityFailure (exit 4) when an object fails,
    or is listed with another ETag after the reading than before (rewritten meanwhile);
    NotReadyYet (exit 5) for archived objects. Writes nothing."""
    store = catalog.store
    prefix = backup_prefix(manifest.policy, manifest.backup_id)
    before = {o.key: o.etag for o in store.list_objects(prefix)}
    try:
        report = catalog.verify(manifest, on_object, jobs=jobs)
    except IntegrityFailure as exc:
        raise _unchanged(exc) from None
    after = list(store.list_objects(prefix))
    mismatch = listing_mismatch(store.url, prefix, manifest.objects, after)
    if mismatch:
        raise IntegrityFailure(mismatch, hint=UNCHANGED)
    listed = {o.key: o.etag for o in after}
    for rec in manifest.objects:
        if listed[rec.key] != before.get(rec.key):
            raise IntegrityFailure(
                f"{store.url}/{rec.key} was rewritten while it was verified (ETag "
                f"{before.get(rec.key)}, then {listed[rec.key]})",
                hint=f"{UNCHANGED}; run verify --accept-etags again once nothing writes there",
            )
    found = {r.key: e for r in manifest.objects if (e := listed[r.key]) is not None}
    return Verified(manifest, report, found)


def record_listed(catalog: Catalog, verified: Verified) -> Manifest | None:
    """Write ``verified``'s manifest again with the listed ETags (each record's other
    fields as they were); None, writing nothing, when none differs. IntegrityFailure
    (exit 4) when the stored manifest changed since it was verified, or a listing before
    or after the write shows an object missing, resized or with another ETag than accepted,
    or a prune claim: after the write, the previous manifest is put back."""
    if not verified.changed:
        return None
    store = catalog.store
    old = verified.manifest
    prefix = backup_prefix(old.policy, old.backup_id)
    key = manifest_key(old.policy, old.backup_id)
    try:
        raw = store.get_bytes(key)
    except ObjectNotFound:
        raise IntegrityFailure(
            f"{store.url}/{key} was deleted while the backup was verified", hint=UNCHANGED
        ) from None
    if Manifest.decode(raw, f"{store.url}/{key}") != old:
        raise IntegrityFailure(
            f"{store.url}/{key} changed while the backup was verified",
            hint=f"{UNCHANGED}; run verify --accept-etags again",
        )
    if store.exists(prefix + PRUNE_CLAIM):
        raise IntegrityFailure(
            f"{store.url}/{prefix}{PRUNE_CLAIM}: a `backups prune` claimed this backup for "
            "deletion (one running, or one killed while deleting it)",
            hint=f"{UNCHANGED}; the next `backups prune` deletes the backup, or removes the "
            "claim of a killed prune if it keeps the backup",
        )
    objects = [replace(o, etag=verified.listed.get(o.key, o.etag)) for o in old.objects]
    new = replace(old, objects=objects)
    _confirm(catalog, prefix, new)
    store.put_bytes(key, new.encode(), storage_class=StorageClass.STANDARD, tags=MANIFEST_TAGS)
    try:
        _confirm(catalog, prefix, new)
    except IntegrityFailure:
        store.put_bytes(key, raw, storage_class=StorageClass.STANDARD, tags=MANIFEST_TAGS)
        raise
    log.info(
        "verify.etags_accepted",
        policy=old.policy,
        backup_id=old.backup_id,
        objects=len(verified.changed),
    )
    return new


def accept_chain(
    catalog: Catalog, chain: Sequence[Manifest], on_object: ObjectCallback | None = None
) -> tuple[list[VerifyReport], dict[str, list[str]]]:
    """:func:`verify_listed` of every manifest of ``chain``, then (all verified)
    :func:`record_listed` of each: the verify reports, and per backup whose manifest was
    written again the keys whose ETag it now records. A failure while verifying leaves
    every manifest unchanged."""
    checked = [verify_listed(catalog, m, on_object) for m in chain]
    accepted = {v.manifest.backup_id: v.changed for v in checked if v.changed}
    if accepted:
        # Under the policy's prune lock (NotReadyYet while a prune runs): no prune claims
        # or deletes these backups between the write and the look after it, so a manifest
        # put back is never one a prune has just deleted.
        with PruneLock(catalog.store, chain[0].policy, by="backups verify --accept-etags"):
            for verified in checked:
                record_listed(catalog, verified)
    return [v.report for v in checked], accepted


def _confirm(catalog: Catalog, prefix: str, manifest: Manifest) -> None:
    """:func:`confirm_listed` of ``manifest``'s objects, its refusal saying the manifest
    is (or was put back) unchanged."""
    try:
        confirm_listed(catalog.store, prefix, manifest.objects)
    except IntegrityFailure as exc:
        raise _unchanged(exc, keep_hint=False) from None


def _unchanged(exc: IntegrityFailure, *, keep_hint: bool = True) -> IntegrityFailure:
    """``exc`` (its message and details) with a hint saying no ETag was accepted (before
    its own, with ``keep_hint``)."""
    hint = f"{UNCHANGED}; {exc.hint}" if keep_hint and exc.hint else UNCHANGED
    again = IntegrityFailure(exc.message, hint=hint)
    again.details.update(exc.details)
    return again
