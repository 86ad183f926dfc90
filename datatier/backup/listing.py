"""Whether a store's listing holds a backup's objects as its manifest records them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from datatier.backup.manifest import ObjectRecord
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
