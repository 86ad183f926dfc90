"""Whether a store's listing holds a backup's objects as its manifest records them.

Two checks, both from one listing (no object is read): :func:`listing_mismatch` (every
object there, with its recorded size: else the backup cannot be whole) and
:func:`listing_rewritten` (no object rewritten since its upload, by its ETag: else its
bytes may be others than the backup wrote, which only reading them can tell).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from datatier.backup.manifest import ObjectRecord
from datatier.backup.policy import ARCHIVE_ORDER
from datatier.storage.base import ObjectInfo


def listing_mismatch(
    url: str, prefix: str, records: Sequence[ObjectRecord], listed: Iterable[ObjectInfo]
) -> str | None:
    """Why ``listed`` (a listing of ``prefix``) does not hold every object of ``records``
    with its recorded size, or None when it does. Extra listed keys are not a mismatch."""
    live = {o.key: o.size for o in listed}
    for rec in records:
        if not rec.key.startswith(prefix):
            return f"{url}/{prefix}: the manifest lists {rec.key} outside it"
        size = live.get(rec.key)
        if size is None:
            return f"{url}/{rec.key} is missing"
        if size != rec.size:
            return (
                f"{url}/{rec.key} is {size} bytes, the manifest says {rec.size} "
                "(truncated or replaced)"
            )
    return None


def listing_rewritten(
    url: str, records: Sequence[ObjectRecord], listed: Iterable[ObjectInfo]
) -> str | None:
    """Why an object of ``records`` looks rewritten since its upload, or None.

    An object is rewritten when the listing gives it another ETag than the one its record
    holds (quotes and case aside). Not judged (no evidence either way): records without an
    ETag (manifests and binlog segment records written before it was recorded), objects
    the listing gives none, and objects now in a colder storage class than recorded or one
    datatier does not know: re-classing copies the object, and a copy may get a new ETag (a
    multipart one, or any under SSE-KMS) while its bytes stay the same. Missing objects
    are :func:`listing_mismatch`'s business."""
    live = {o.key: o for o in listed}
    for rec in records:
        info = live.get(rec.key)
        if info is not None and is_rewritten(rec, info):
            return (
                f"{url}/{rec.key} was rewritten after the backup wrote it (ETag {info.etag}, "
                f"its upload returned {rec.etag}): its bytes may not be the backup's"
            )
    return None


def is_rewritten(rec: ObjectRecord, info: ObjectInfo) -> bool:
    """Whether ``info``, the listing of ``rec``'s key, shows another ETag than ``rec``
    records, by :func:`listing_rewritten`'s rules (False when either has none, or the
    object is now in a colder or unranked class)."""
    if rec.etag is None or info.etag is None or _reclassed(rec, info):
        return False
    return not same_etag(info.etag, rec.etag)


def same_etag(one: str, other: str) -> bool:
    """Whether two ETags are the same, as S3-compatible servers spell them (quotes and
    case aside)."""
    return _plain(one) == _plain(other)


def _reclassed(rec: ObjectRecord, info: ObjectInfo) -> bool:
    """True when ``info``'s class may come from a re-class of the recorded one (colder, or
    one :data:`ARCHIVE_ORDER` does not rank)."""
    if info.storage_class == rec.storage_class:
        return False
    now, then = ARCHIVE_ORDER.get(info.storage_class), ARCHIVE_ORDER.get(rec.storage_class)
    return now is None or then is None or now > then


def _plain(etag: str) -> str:
    """An ETag without the quotes and case some S3-compatible servers differ in."""
    return etag.strip().strip('"').lower()
