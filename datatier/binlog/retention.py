"""Binlog retention and archiving, as parts of ``backups prune`` and ``backups archive``.

Prune removes the oldest segments whose every transaction is already in *every* backup
still kept: the oldest position of the policy's kept backups and of every other MySQL
policy's complete backups. They are all backups of this archive's server: a config has one
MySQL topology (``[mysql.nodes]``, which every MySQL policy's ``source.node(s)`` must name)
and one archive (:func:`~datatier.binlog.layout.archive_policy`), and a point-in-time
restore of any MySQL policy replays from it. Manifests name the node, not a server
identity, so which server a backup came from cannot be told better than that; a backup of
a server outside the topology only lowers the horizon the policy's own kept backups set
(:func:`lowest`), keeping more, never less. It never removes
the newest record (the archiver resumes from it), deletes a record's index entry before
its object (an interrupted prune leaves an unindexed object, never an entry without its
object), and removes unindexed objects (a killed archiver's, a race's loser) older than the
grace period; one past the newest index record may be a running archiver's next segment
(uploaded, its record not yet written), so it stays at least :data:`IN_FLIGHT`.
Archive re-classes segments older than the policy's ``archive_after_days``, like data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from datatier.backup.archive import ArchiveMove
from datatier.backup.catalog import BackupState, Catalog
from datatier.backup.policy import ARCHIVE_ORDER, Policy, find_policies
from datatier.backup.retention import days_before
from datatier.backup.service import open_policy_catalog, policies_dir
from datatier.binlog.base import backup_position
from datatier.binlog.chain import load_chain
from datatier.binlog.layout import DIRECTORY, data_prefix, index_key, index_prefix
from datatier.binlog.records import IndexRecord
from datatier.config import LoadedConfig
from datatier.log import get_logger
from datatier.mysql.binlog.positions import Position, lowest
from datatier.storage.base import ObjectInfo, ObjectStore

log = get_logger(__name__)
MYSQL_ENGINES = ("mysql", "mariabackup")  # backups of the cluster whose binlog this is
IN_FLIGHT = timedelta(days=1)
"""An unindexed segment past the newest index record may be one an archiver has uploaded and
is about to index: it is removed only once older than this, whatever ``--grace-hours``."""


@dataclass
class BinlogPrunePlan:
    """Segments (and gap records) to delete, and unindexed objects to remove."""

    policy: str
    horizon: Position
    delete: list[IndexRecord] = field(default_factory=list)
    orphans: list[ObjectInfo] = field(default_factory=list)
    kept: int = 0

    @property
    def bytes(self) -> int:
        return sum(r.size for r in self.delete) + sum(o.size for o in self.orphans)


def has_archive(store: ObjectStore, policy: str) -> bool:
    return any(True for _ in store.list_objects(index_prefix(policy)))


def binlog_prune_plan(
    loaded: LoadedConfig,
    catalog: Catalog,
    policy: Policy,
    kept: set[str],
    now: datetime,
    grace: timedelta,
) -> BinlogPrunePlan | None:
    """What prune removes from ``policy``'s archive (None: it has none); changes nothing."""
    store = catalog.store
    if not has_archive(store, policy.name):
        return None
    positions = [
        p
        for e in catalog.backups(policy.name)
        if e.backup_id in kept and e.manifest and (p := backup_position(e.manifest))
    ]
    for other in find_policies(policies_dir(loaded), loaded.config.backup.default_store):
        if other.name == policy.name or other.spec.engine not in MYSQL_ENGINES:
            continue
        positions += [
            p
            for e in open_policy_catalog(loaded, other).backups(other.name)
            if e.state is BackupState.COMPLETE and e.manifest and (p := backup_position(e.manifest))
        ]
    horizon = lowest(positions) if positions else Position()
    chain = load_chain(store, policy.name)
    plan = BinlogPrunePlan(policy.name, horizon)
    for record in chain.records[:-1]:  # the newest record is where archiving resumes
        if not positions or not horizon.covers(record.gtid_end):
            break
        plan.delete.append(record)
    plan.kept = len(chain.records) - len(plan.delete)
    indexed = {r.key for r in chain.records if r.key}
    newest = max((r.seq for r in chain.records), default=-1)
    cutoff = days_before(now, grace / timedelta(days=1))
    in_flight = min(cutoff, days_before(now, IN_FLIGHT / timedelta(days=1)))
    plan.orphans = [
        info
        for info in chain.objects.values()
        if info.key not in indexed
        and info.last_modified is not None
        and info.last_modified < (cutoff if _seq(info.key) <= newest else in_flight)
    ]
    return plan


def _seq(key: str) -> int:
    """The SEQ a segment object's key starts with (a huge number when it has none: such an
    object is treated as possibly in flight)."""
    leaf = key.rsplit("/", 1)[-1]
    return int(leaf[:12]) if leaf[:12].isdigit() else 1 << 62


def binlog_prune_execute(store: ObjectStore, plan: BinlogPrunePlan) -> int:
    """Carry out ``plan``, oldest first, index entry before object; returns objects removed."""
    removed = 0
    for record in plan.delete:
        store.delete([index_key(plan.policy, record.seq)])
        if record.key:
            store.delete([record.key])
        removed += 2 if record.key else 1
    store.delete([o.key for o in plan.orphans])
    removed += len(plan.orphans)
    if plan.delete or plan.orphans:
        log.info(
            "prune.binlogs_deleted",
            policy=plan.policy,
            records=len(plan.delete),
            orphans=len(plan.orphans),
            bytes=plan.bytes,
            horizon=str(plan.horizon),
        )
    return removed


def binlog_archive_moves(catalog: Catalog, policy: Policy, now: datetime) -> list[ArchiveMove]:
    """Segments older than ``archive_after_days`` (by publication) not yet in the archive
    class or colder; empty when the policy never archives."""
    storage = policy.spec.storage
    if storage.archive_after_days <= 0:
        return []
    cutoff = days_before(now, storage.archive_after_days)
    rank = ARCHIVE_ORDER[storage.archive_class]
    return [
        ArchiveMove(DIRECTORY, info.key, info.size, info.storage_class)
        for info in catalog.store.list_objects(data_prefix(policy.name))
        if info.last_modified is not None
        and info.last_modified < cutoff
        and ARCHIVE_ORDER.get(info.storage_class, 0) < rank
    ]
