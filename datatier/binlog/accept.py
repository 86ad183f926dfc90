"""Accept the ETags a store lists for binlog segments rewritten with their own bytes
(``binlogs accept-etags``), the archive's counterpart of ``backups verify --accept-etags``.

A segment whose object another tool copied (a bucket migration; multipart ETags) is a gap
(:func:`datatier.binlog.chain.analyse`) though its bytes are the binlog's. Only segments
listed with their recorded size and another ETag are candidates; each is read whole and its
size and SHA-256 checked against its index record, between two listings whose ETags must
agree; only then is each record written again with the listed ETag (one PUT per record,
atomic per object, as the archiver writes them). The first segment of other bytes is
IntegrityFailure (exit 4) with no record written; archived ones are NotReadyYet (exit 5).
A record that changed since it was read stops the writing (exit 4); those written before
it stay accepted, each having been checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from datatier.backup.listing import is_rewritten
from datatier.backup.stores import store_for
from datatier.binlog.chain import load_chain
from datatier.binlog.layout import INDEX_TAGS, archive_policy, data_prefix, index_key
from datatier.binlog.records import IndexRecord
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, NotReadyYet
from datatier.log import get_logger
from datatier.pipeline.staging import Wanted, verify_objects
from datatier.storage.base import ObjectNotFound, ObjectStore, StorageClass

log = get_logger(__name__)

UNCHANGED = "no ETag was accepted: every index record is unchanged"


@dataclass
class AcceptReport:
    """What ``binlogs accept-etags`` did: the segments whose records now hold the listed
    ETag, the bytes read to check them, and the gaps left for other reasons."""

    policy: str
    store: str
    accepted: list[str] = field(default_factory=list)
    checked_bytes: int = 0
    gaps: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def accept_segment_etags(loaded: LoadedConfig, *, jobs: int = 4) -> AcceptReport:
    """Check and accept every rewritten segment of the archive (see the module docstring)."""
    owner = archive_policy(loaded)
    store = store_for(owner.store_url, loaded.config, lookup=True)
    chain = load_chain(store, owner.name)
    report = AcceptReport(owner.name, store.url)
    candidates = [
        r
        for r in chain.segments
        if (info := chain.objects.get(r.key or "")) is not None
        and info.size == r.size
        and is_rewritten(r.object_record(), info)
    ]
    if candidates:
        listed = _check(store, owner.name, candidates, jobs)
        report.checked_bytes = sum(r.size for r in candidates)
        for record in candidates:
            _rewrite(store, owner.name, record, listed[str(record.key)])
            report.accepted.append(str(record.key))
        log.info("binlog.etags_accepted", policy=owner.name, segments=len(candidates))
    report.gaps = [g.describe() for g in load_chain(store, owner.name).gaps]
    return report


def _check(
    store: ObjectStore, policy: str, records: list[IndexRecord], jobs: int
) -> dict[str, str]:
    """Read ``records``' objects and check them between two listings; the ETag listed for
    each (IntegrityFailure, nothing written, if one differs or changed meanwhile)."""
    prefix = data_prefix(policy)
    before = {o.key: o for o in store.list_objects(prefix)}
    cold = [str(r.key) for r in records if not before[str(r.key)].readable]
    if cold:
        raise NotReadyYet(
            f"{len(cold)} rewritten segment(s) are in an archive storage class, first {cold[0]}",
            hint="restore them to a readable class with the store's tools, then run this again",
        )
    try:
        verify_objects(store, [Wanted(str(r.key), r.size, r.sha256) for r in records], jobs=jobs)
    except IntegrityFailure as exc:
        raise IntegrityFailure(exc.message, hint=UNCHANGED) from None
    after = {o.key: o for o in store.list_objects(prefix)}
    listed: dict[str, str] = {}
    for record in records:
        key = str(record.key)
        now = after.get(key)
        if now is None or now.etag != before[key].etag or now.etag is None:
            raise IntegrityFailure(
                f"{store.url}/{key} was rewritten or removed while it was read (ETag "
                f"{before[key].etag}, then {now.etag if now else 'gone'})",
                hint=f"{UNCHANGED}; run it again once nothing writes there",
            )
        listed[key] = now.etag
    return listed


def _rewrite(store: ObjectStore, policy: str, record: IndexRecord, etag: str) -> None:
    """Write ``record`` again with ``etag``; IntegrityFailure if it changed since it was read."""
    key = index_key(policy, record.seq)
    try:
        stored = IndexRecord.decode(store.get_bytes(key), f"{store.url}/{key}")
    except ObjectNotFound:
        raise IntegrityFailure(f"{store.url}/{key} was deleted while it was checked") from None
    if stored != record:
        raise IntegrityFailure(f"{store.url}/{key} changed while its segment was checked")
    new = replace(record, etag=etag)
    store.put_bytes(key, new.encode(), storage_class=StorageClass.STANDARD, tags=INDEX_TAGS)
