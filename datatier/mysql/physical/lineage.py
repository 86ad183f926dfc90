"""Which backup an incremental builds on, and whether a chain of physical backups holds.

An incremental copies the pages changed since its parent's ``to_lsn``; it is only
meaningful on a parent taken from the same server (``server_uid``, ``server_id``,
version), whose LSN the server has not gone back behind, whose datadir still holds the
history the parent copied, and whose own chain is whole. :func:`check_links` checks a
resolved chain the same way before a restore.

A server rolled back in place (an older backup restored over its own datadir) keeps its
identity, and its LSN soon passes the abandoned parent's; only its datadir tells: a
restore leaves the restored backup's ``xtrabackup_info`` there
(:func:`~datatier.mysql.physical.tool.datadir_origin`: that backup's uuid and when the
file was written, so rolling back twice to one backup is two origins). Every physical
manifest records the datadir's origin when it was taken (``source.restored_from``) and its
own uuid (``consistency.backup_uuid``); :func:`lineage_break` compares them.

A rollback that leaves no ``xtrabackup_info`` (a filesystem snapshot, a cold copy of a
datadir put back) shows in the binlog, when it is on and lives in the datadir: the server's
binlog must still hold the point the parent was copied at, with the GTID state the parent
recorded there (:func:`binlog_break`). Rolled back, the binlog ends before that point, or
was rewritten past it: no event starts there, or another GTID state does. With the binlog
off or elsewhere, the pages tell: each manifest records the pages its stream wrote last
(``consistency.page_sample``), and the datadir must still hold them or newer versions
(:func:`~datatier.mysql.physical.pages.pages_break`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from datatier.backup.catalog import Catalog
from datatier.backup.chain import resolve_chain
from datatier.backup.manifest import Manifest
from datatier.backup.policy import Policy
from datatier.errors import IntegrityFailure, UsageError
from datatier.log import get_logger
from datatier.mysql.physical.server import BinlogPoint, ServerIdentity

log = get_logger(__name__)

ENGINE = "mariabackup"
Origin = dict[str, Any] | None  # a datadir's, as tool.datadir_origin reads it
ORIGIN = "restored_from"  # source: the datadir's origin when it was taken (see tool)
RESTORED_BINLOG = "restored_binlog"  # source: tool.origin_binlog of the datadir then
REDO = "redo_created_lsn"  # source: tool.redo_created_lsn of the datadir when it was taken
UUID = "backup_uuid"  # consistency: the backup's own uuid (its xtrabackup_info's)
BINLOG_GTID = "binlog_gtid"  # consistency: BINLOG_GTID_POS at the copy's point, read after it
BINLOG_TAIL = "binlog_tail"  # consistency: server.binlog_tail at that point, read after it
PAGES = "page_sample"  # consistency: pages.PageSampler.sample of the stream
CHECKPOINT = "checkpoint_at_start"  # consistency: the checkpoint LSN the copy began from
IMPORTED = "imported_files"  # consistency: imports.imported_files of the datadir then


@dataclass(frozen=True)
class Base:
    """What the next backup builds on: ``parent`` None for a full backup, and why."""

    parent: Manifest | None
    reason: str

    @property
    def incremental_lsn(self) -> int | None:
        return None if self.parent is None else lsn(self.parent, "to_lsn")


def lsn(manifest: Manifest, key: str) -> int:
    """An LSN of a physical manifest's ``consistency``; IntegrityFailure if it has none."""
    value = manifest.consistency.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise IntegrityFailure(f"backup {manifest.backup_id} records no {key}")
    return value


def copy_checkpoint(manifest: Manifest) -> int | None:
    """The checkpoint LSN before ``manifest``'s copy read any page (every change at or
    below it was on disk), the bound of :func:`~.pages.pages_break`. Manifests written
    before it was recorded give their ``to_lsn``: mariabackup reads that checkpoint at the
    end of the copy, so a page written during the copy may be taken for another timeline
    (one full backup, never a wrong incremental)."""
    for key in (CHECKPOINT, "to_lsn"):
        value = manifest.consistency.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def lineage_break(parent: Manifest, origin: Origin) -> str | None:
    """Why a datadir whose origin is ``origin`` no longer holds the history ``parent``
    copied, or None when it does: its origin is still the one ``parent`` recorded, or it
    was restored from ``parent`` itself. A manifest that records no origin (taken before
    origins were recorded) counts as taken on a datadir never restored."""
    if origin is not None and origin.get("uuid") == parent.consistency.get(UUID):
        return None
    recorded = parent.source.get(ORIGIN)
    if origin == recorded:
        return None
    if origin is None:
        return (
            f"the datadir no longer holds the xtrabackup_info it was restored from (backup "
            f"uuid {_uuid(recorded)}) when {parent.backup_id} was taken (replaced since)"
        )
    if ORIGIN not in parent.source:
        return (
            f"the datadir was restored from backup uuid {_uuid(origin)}, and "
            f"{parent.backup_id} predates the recording of restores, so it cannot tell "
            "whether that was since"
        )
    return (
        f"the datadir was restored from backup uuid {_uuid(origin)} since "
        f"{parent.backup_id} was taken: the server left the history that backup copied"
    )


def is_restored_from(parent: Manifest, origin: Origin) -> bool:
    """Whether the datadir whose origin is ``origin`` was restored from ``parent`` itself."""
    return origin is not None and origin.get("uuid") == parent.consistency.get(UUID)


def redo_break(parent: Manifest, origin: Origin, redo: int | None) -> str | None:
    """Why a datadir whose redo log was created at LSN ``redo`` no longer holds the history
    ``parent`` copied, or None when it does or cannot tell: the redo log is the one
    ``parent`` recorded, or the datadir was restored from ``parent`` itself, or either LSN
    is unknown. Catches a restore whose ``xtrabackup_info`` was removed afterwards (the
    README calls the ``xtrabackup_*`` files ignored by the server), with no binlog to tell."""
    if is_restored_from(parent, origin):
        return None
    recorded = parent.source.get(REDO)
    if not isinstance(recorded, int) or redo is None or recorded == redo:
        return None
    return (
        f"the datadir's redo log was created anew since {parent.backup_id} was taken (then "
        f"at LSN {recorded}, now at {redo}): the datadir was restored or re-initialised "
        "since (or its redo log resized)"
    )


def _uuid(origin: object) -> str:
    return str(origin.get("uuid")) if isinstance(origin, dict) else "?"


def _binlog_order(name: str) -> tuple[str, int] | None:
    """``(base, number)`` of a binlog file name ``base.000042``; None if it is not one."""
    base, dot, number = name.rpartition(".")
    return (base, int(number)) if dot and number.isdigit() else None


def gtid_set(text: str) -> frozenset[str]:
    """A GTID position's ``domain-server-seq`` items, order-insensitive."""
    return frozenset(p.strip() for p in text.replace("\n", "").split(",") if p.strip())


def binlog_break(parent: Manifest, point: BinlogPoint | None) -> str | None:
    """Why the server's binlog, as ``point`` says (its answer about ``parent``'s binlog
    file and position), no longer holds the history ``parent`` copied, or None when it
    does or cannot tell (no answer, ``parent`` recorded no binlog position, the file was
    purged since: logged). The GTID state expected there is what the binlog itself said
    right after the copy (``binlog_gtid``), else mariabackup's ``gtid_pos``."""
    file, pos = parent.consistency.get("binlog_file"), parent.consistency.get("binlog_pos")
    if point is None or not file or pos is None or (point.file, point.position) != (file, pos):
        return None
    expected = parent.consistency.get(BINLOG_GTID, parent.consistency.get("gtid_pos"))
    where = f"{file}:{pos} (GTID {expected or 'none'})"
    order, listed = _binlog_order(str(file)), [_binlog_order(f) for f in point.files]
    unchecked = None
    if expected is None:
        unchecked = f"{parent.backup_id} recorded no GTID state at its binlog position"
    elif order is None or not listed or any(o is None or o[0] != order[0] for o in listed):
        unchecked = f"the server's binlog files {list(point.files)} are not a sequence of {file}"
    elif order < min(o for o in listed if o):
        unchecked = f"the server purged {file} from its binlog since"
    if unchecked:
        log.info("backup.binlog_unchecked", parent=parent.backup_id, reason=unchecked)
        return None
    assert order is not None
    if order > max(o for o in listed if o):
        found = f"the server's binlog ends with {point.files[-1]}, before that file"
    elif point.gtid is None:
        found = f"the server's {file} has no event there (it is shorter, or was rewritten)"
    elif gtid_set(point.gtid) != gtid_set(str(expected)):
        found = f"the server's binlog is at GTID {point.gtid or 'none'} there"
    elif not parent.consistency.get(BINLOG_TAIL):
        return None  # recorded before the bytes were, or unreadable then
    elif point.tail is None:
        reason = f"the server's binlog file {file} cannot be read here"
        log.info("backup.binlog_unchecked", parent=parent.backup_id, reason=reason)
        return None
    elif point.tail != parent.consistency[BINLOG_TAIL]:
        found = (
            f"the server's {file} holds other bytes before that point (the same GTIDs "
            "written again, or the file created anew)"
        )
    else:
        return None
    return (
        f"{parent.backup_id} was copied at binlog position {where}, and {found}: the server "
        "was rolled back (or its binlog reset) since, and left the history that backup copied"
    )


def check_links(chain: list[Manifest]) -> None:
    """IntegrityFailure unless every member of ``chain`` (full first) is a physical backup,
    each incremental starts at its parent's ``to_lsn``, all come from one server, and none
    was taken after its datadir left its parent's history (:func:`lineage_break`,
    :func:`redo_break` on what each manifest recorded)."""
    full = chain[0]
    if full.parent is not None or full.consistency.get("backup_type") != "full":
        raise IntegrityFailure(f"backup {full.backup_id} should be a full backup and is not")
    for parent, child in itertools.pairwise(chain):
        if child.engine != ENGINE or child.consistency.get("backup_type") != "incremental":
            raise IntegrityFailure(f"backup {child.backup_id} is not a physical incremental")
        if lsn(child, "from_lsn") != lsn(parent, "to_lsn"):
            raise IntegrityFailure(
                f"backup {child.backup_id} starts at LSN {lsn(child, 'from_lsn')}, but its "
                f"parent {parent.backup_id} ends at {lsn(parent, 'to_lsn')}: broken chain"
            )
        changed = [
            f"{key} {parent.source.get(key)} -> {child.source.get(key)}"
            for key in ("server_uid", "server_id", "version")
            if str(parent.source.get(key)) != str(child.source.get(key))
        ]
        if changed:
            raise IntegrityFailure(
                f"backup {child.backup_id} comes from another server than its parent "
                f"{parent.backup_id} ({', '.join(changed)}): broken chain"
            )
        raw = child.source.get(ORIGIN)
        origin = raw if isinstance(raw, dict) else None
        why = lineage_break(parent, origin) if ORIGIN in child.source else None
        redo = child.source.get(REDO)
        why = why or redo_break(parent, origin, redo if isinstance(redo, int) else None)
        if why:
            raise IntegrityFailure(
                f"backup {child.backup_id} does not continue {parent.backup_id}: {why}: "
                "broken chain"
            )


def _continue(
    catalog: Catalog,
    newest: Manifest,
    server: ServerIdentity,
    now_lsn: int,
    origin: Origin,
    named: dict[str, str],
    binlog: BinlogPoint | None = None,
    redo: int | None = None,
    pages: str | None = None,
) -> None:
    """UsageError unless an incremental of ``server``, whose datadir's origin is
    ``origin`` and whose binlog says ``binlog`` about ``newest``'s binlog position, can
    build on ``newest``. ``named``: backup IDs by uuid, for the message; ``pages``: why
    the datadir no longer holds pages ``newest`` copied (:func:`~.pages.pages_break`)."""
    try:
        check_links(resolve_chain(catalog, newest))
    except IntegrityFailure as exc:
        raise UsageError(
            f"the newest backup {newest.backup_id} cannot take an incremental: {exc.message}",
            hint="take a full backup (--full)",
        ) from None
    changed = server.differs_from(newest.source)
    if changed:
        raise UsageError(
            f"the newest backup {newest.backup_id} was taken on another server "
            f"({', '.join(changed)}): an incremental would not apply to it",
            hint="take a full backup (--full)",
        )
    if now_lsn < lsn(newest, "to_lsn"):
        raise UsageError(
            f"the server's LSN {now_lsn} is behind LSN {lsn(newest, 'to_lsn')} of the newest "
            f"backup {newest.backup_id}: it is not the server that backup was taken from "
            "(restored or re-initialised since)",
            hint="take a full backup (--full)",
        )
    why = lineage_break(newest, origin)
    if why:
        uuid = _uuid(origin)
        if uuid in named:
            why = why.replace(f"backup uuid {uuid}", f"backup {named[uuid]} (uuid {uuid})")
        raise UsageError(
            f"an incremental cannot build on the newest backup {newest.backup_id}: {why}",
            hint="take a full backup (--full)",
        )
    # A datadir restored from ``newest`` itself descends from its state: every page written
    # since has an LSN past its ``to_lsn``, whatever the (new) binlog says.
    why = redo_break(newest, origin, redo)
    if not why and not is_restored_from(newest, origin):
        why = binlog_break(newest, binlog) or pages
    if why:
        raise UsageError(
            f"an incremental cannot build on the newest backup {newest.backup_id}: {why}",
            hint="take a full backup (--full)",
        )


def physical_backups(catalog: Catalog, policy: Policy) -> list[Manifest]:
    """The complete physical backups of ``policy``, oldest first (one GET each): the last
    is what an incremental builds on."""
    return [
        e.manifest
        for e in catalog.backups(policy.name)
        if e.manifest is not None and e.manifest.engine == ENGINE
    ]


def choose_base(
    catalog: Catalog,
    policy: Policy,
    server: ServerIdentity,
    now_lsn: int,
    requested: bool | None,
    now: datetime,
    *,
    origin: Origin,
    binlog: BinlogPoint | None = None,
    backups: list[Manifest] | None = None,
    redo: int | None = None,
    pages: str | None = None,
) -> Base:
    """The parent of the next backup (None: a full one). ``requested`` True: an incremental
    or UsageError saying why not; False: full; None: the policy's ``full_every_days``
    decides, falling back to a full backup (logged) when an incremental is impossible.
    ``origin``: the server datadir's (:func:`~datatier.mysql.physical.tool.datadir_origin`);
    ``binlog``: the server's binlog's answer about the newest physical backup's binlog
    position (:func:`~datatier.mysql.physical.server.binlog_point`; None: not asked);
    ``backups``: :func:`physical_backups`, if the caller has read them already;
    ``redo``: the datadir's :func:`~datatier.mysql.physical.tool.redo_created_lsn`;
    ``pages``: :func:`~datatier.mysql.physical.pages.pages_break` of the newest backup."""
    if requested is False:
        return Base(None, "full backup asked for")
    every = policy.spec.full_every_days
    if requested is None and every == 0:
        return Base(None, "policy takes full backups (full_every_days = 0)")
    physical = physical_backups(catalog, policy) if backups is None else backups
    if not physical:
        if requested:
            raise UsageError(
                f"policy {policy.name} has no complete physical backup to build an incremental on",
                hint=f"take a full backup first: datatier backup run {policy.name} --full",
            )
        return Base(None, "no earlier backup")
    newest = physical[-1]
    try:
        named = {str(m.consistency.get(UUID)): m.backup_id for m in physical}
        _continue(catalog, newest, server, now_lsn, origin, named, binlog, redo, pages)
    except UsageError as exc:
        if requested:
            raise
        log.warning("backup.full_instead", policy=policy.name, reason=exc.message)
        return Base(None, f"full instead of incremental: {exc.message}")
    if requested is None:
        root = resolve_chain(catalog, newest)[0]
        age = now - datetime.fromisoformat(root.started_at)
        if age.days >= every:  # whole days, as timedelta(days=every) is; never overflows
            return Base(None, f"full backup {root.backup_id} is {age.days} days old")
    return Base(newest, f"incremental on {newest.backup_id}")
