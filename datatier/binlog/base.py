"""Which backup a point-in-time restore starts from, and the refusal when it is unusable.

The base is the newest complete MySQL backup of the policy whose consistency point precedes
the target (:func:`choose_base`): for ``--until-gtid G``, its GTID position holds nothing of
G's domain after G, and of any other domain nothing the archive does not show committed
before G's segment; for ``--until T``, its snapshot was taken at or before T (whole
seconds; manifests without ``snapshot_at`` count by ``finished_at``).

A restore never starts from another backup than that one (or the one named) unasked. When it
is unusable, the restore is refused with exit 4 (:class:`UnusableBase`, before anything is
requested or changed) naming the backups that could serve instead: complete (their listing
matches the manifest), accounting for every table and row they record, preceding the target
and reached by the binlog archive, newest first. Unusable means: damaged (an object missing,
of another size or rewritten since), an unreadable manifest (for ``--until``, one whose ID's
time is at or before the target; for ``--until-gtid``, one newer than the base, as its place
cannot be told), or, found later (:func:`~datatier.binlog.pitr.refuse_base`): a manifest
that does not account for every table and row it records (planning), an object failing its
SHA-256 check (staging), or one whose content, its checksum matched, does not decompress or
load (checking the staged copies, or applying: the refusal then says what may be partly
loaded, as any interrupted restore does). Restoring from an older base is the operator's
call: ``datatier restore OLDER_ID --until ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from datatier.backup.catalog import BackupEntry, BackupState
from datatier.backup.completeness import missing_parts
from datatier.backup.engines import point_in_time
from datatier.backup.manifest import Manifest, snapshot_time
from datatier.binlog.chain import Chain
from datatier.binlog.replay import Target
from datatier.errors import IntegrityFailure, UsageError
from datatier.mysql.binlog.positions import Gtid, Position

EARLIEST = datetime.min.replace(tzinfo=UTC)


class UnusableBase(IntegrityFailure):
    """The base of a point-in-time restore fails verification (exit 4); ``alternatives``
    are the IDs of backups that could serve instead, newest first (maybe none);
    ``partly_loaded`` what the restore may have left partly loaded from it (None: nothing
    was changed). ``why`` replaces the default pointer to what is wrong with it."""

    def __init__(
        self,
        message: str,
        *,
        backup_id: str,
        alternatives: Sequence[str],
        partly_loaded: str | None = None,
        why: str | None = None,
    ) -> None:
        why = why or f"`datatier backups verify {backup_id}` shows what is wrong"
        first = (
            f"restore from {alternatives[0]} by naming it: datatier restore "
            f"{alternatives[0]} --until ... (same options)"
            if alternatives
            else ""
        )
        if first and partly_loaded:
            first = f"drop what this restore loaded into {partly_loaded}, then {first}"
        super().__init__(message, hint=f"{first}; {why}" if first else why)
        self.backup_id = backup_id
        self.alternatives = list(alternatives)
        self.partly_loaded = partly_loaded
        self.details["unusable_base"] = backup_id
        self.details["alternative_bases"] = self.alternatives
        if partly_loaded:
            self.details["partly_loaded"] = partly_loaded


def backup_position(manifest: Manifest) -> Position | None:
    text = str(manifest.consistency.get("gtid_pos") or "")
    try:
        return Position.parse(text) if text else None
    except UsageError:
        return None


def choose_base(
    backups: list[Manifest],
    target: Target,
    backup_id: str | None,
    policy: str,
    before: Position | None = None,
) -> Manifest:
    """The newest backup preceding ``target`` (or ``backup_id``, if it does). For a GTID
    target, ``before`` is a state known to precede it (:func:`state_before`): a backup
    holding other GTID domains must not hold more of them than that, or it may contain
    transactions committed after the target."""
    usable = [m for m in backups if _usable(m)]
    if not usable:
        raise UsageError(f"policy {policy} has no complete MySQL backup with a GTID position")
    candidates = [m for m in usable if _precedes(m, target, before)]
    if backup_id:
        chosen = [m for m in candidates if m.backup_id == backup_id]
        if not chosen:
            raise UsageError(
                f"backup {backup_id} is not a complete backup of {policy} before the target"
            )
        return chosen[0]
    if not candidates:
        unplaced = [m for m in usable if _precedes(m, target, None, other_domains=False)]
        if unplaced:
            newest = max(unplaced, key=lambda m: m.backup_id)
            raise UsageError(
                f"no backup of policy {policy} is known to precede {target.until_gtid}: "
                f"{newest.backup_id} (GTID {newest.consistency.get('gtid_pos')}) also holds "
                "other GTID domains, which the binlog archive cannot place before the target",
                hint="restore --until a time instead",
            )
        oldest = min(usable, key=lambda m: snapshot_time(m) or datetime.max.replace(tzinfo=UTC))
        raise UsageError(
            f"the target is before the oldest backup of policy {policy}: {oldest.backup_id} "
            f"(snapshot {oldest.consistency.get('snapshot_at') or oldest.finished_at}, GTID "
            f"{oldest.consistency.get('gtid_pos')})",
            hint=f"`datatier backups list {policy}` shows its backups; the restore starts from one "
            "taken before the target",
        )
    return max(
        candidates,
        key=lambda m: (snapshot_time(m) or datetime.min.replace(tzinfo=UTC), m.backup_id),
    )


def state_before(chain: Chain, gtid: Gtid) -> Position | None:
    """The archive's GTID state where the segment holding ``gtid`` starts: everything it
    includes was committed before ``gtid``. None when no segment of ``chain`` holds it."""
    for record in chain.records:
        if record.gtid_end.includes(gtid) and not record.gtid_start.includes(gtid):
            return record.gtid_start
    return None


def _precedes(
    manifest: Manifest, target: Target, before: Position | None, *, other_domains: bool = True
) -> bool:
    """Whether ``manifest``'s consistency point is at or before ``target``. For a GTID
    target its other domains count too (unless ``other_domains`` is False): a backup can sit
    at G in G's domain and still hold later transactions of another domain."""
    position = backup_position(manifest)
    assert position is not None
    if target.until_gtid is not None:
        gtid = target.until_gtid
        if position.seq(gtid.domain) > gtid.seq:
            return False
        others = [g for g in position.gtids if g.domain != gtid.domain and g.seq]
        if not others or not other_domains:
            return True
        return before is not None and all(before.includes(g) for g in others)
    moment = snapshot_time(manifest)
    return (
        moment is not None and target.until_ts is not None and moment.timestamp() <= target.until_ts
    )


def _moment(entry: BackupEntry) -> datetime:
    """What an entry is ordered by: its snapshot, else (unreadable manifest) its ID's time."""
    moment = snapshot_time(entry.manifest) if entry.manifest is not None else None
    return moment or entry.id_time


def _usable(manifest: Manifest) -> bool:
    return point_in_time(manifest.engine) and backup_position(manifest) is not None


def alternative_bases(
    entries: Sequence[BackupEntry],
    target: Target,
    before: Position | None,
    reachable: Callable[[Manifest], bool],
    *,
    besides: str,
) -> list[str]:
    """IDs of the backups other than ``besides`` that could serve as the base of a restore
    to ``target``, newest first: complete, accounting for everything they record
    (:func:`~datatier.backup.completeness.missing_parts`), preceding ``target`` and
    ``reachable`` (the archive covers them up to the target). Their objects' checksums are
    not read: the restore does that."""
    found = [
        e
        for e in entries
        if e.state is BackupState.COMPLETE
        and e.manifest is not None
        and e.backup_id != besides
        and _usable(e.manifest)
        and _precedes(e.manifest, target, before)
        and not missing_parts(e.manifest)
        and reachable(e.manifest)
    ]
    found.sort(key=lambda e: (_moment(e), e.backup_id), reverse=True)
    return [e.backup_id for e in found]


def refuse_unusable(
    entries: Sequence[BackupEntry],
    target: Target,
    before: Position | None,
    reachable: Callable[[Manifest], bool],
    *,
    backup_id: str | None,
    policy: str,
) -> None:
    """UnusableBase when the backup a restore to ``target`` starts from (``backup_id``, or
    else the newest preceding it, see module docstring) is damaged or its manifest
    unreadable; nothing when it is complete or there is none."""
    if backup_id is not None:
        failed = next((e for e in entries if e.backup_id == backup_id), None)
    else:
        failed = _newest_preceding(entries, target, before)
    if failed is None or failed.state not in (BackupState.DAMAGED, BackupState.UNREADABLE):
        return
    others = alternative_bases(entries, target, before, reachable, besides=failed.backup_id)
    what = "damaged" if failed.state is BackupState.DAMAGED else "unreadable"
    raise UnusableBase(
        f"backup {failed.backup_id} of policy {policy}, "
        + ("the base asked for, " if backup_id else "the newest before the target, ")
        + f"is {what} ({failed.problem}); "
        + offer(others, policy),
        backup_id=failed.backup_id,
        alternatives=others,
    )


def offer(others: Sequence[str], policy: str, *, changed: bool = False) -> str:
    """The end of a refusal: the backups that could serve instead, or that none can; that
    nothing was restored unless the target was ``changed`` (what may be partly loaded
    is then said by the restore, see :func:`~datatier.backup.restore.restore_backup`)."""
    nothing = "" if changed else "nothing was restored"
    if not others:
        return (
            f"no other complete backup of {policy} precedes the target and is reached by the "
            "binlog archive" + (f"; {nothing}" if nothing else "")
        )
    more = f" (else, in turn: {', '.join(others[1:4])}{', ...' if len(others) > 4 else ''})"
    return (
        (f"{nothing}; " if nothing else "")
        + f"{others[0]} could serve as the base instead"
        + (more if len(others) > 1 else "")
    )


def _newest_preceding(
    entries: Sequence[BackupEntry], target: Target, before: Position | None
) -> BackupEntry | None:
    """The newest backup in any state except incomplete that may be the base of a restore
    to ``target`` (an unreadable one: see module docstring)."""
    placed = [
        e
        for e in entries
        if e.manifest is not None and _usable(e.manifest) and _precedes(e.manifest, target, before)
    ]
    base = max(placed, key=lambda e: (_moment(e), e.backup_id), default=None)
    floor = _moment(base) if base is not None else EARLIEST
    unreadable = [
        e
        for e in entries
        if e.state is BackupState.UNREADABLE
        and e.id_time > floor
        and (target.until_ts is None or e.id_time.timestamp() <= target.until_ts)
    ]
    return max([*placed, *unreadable], key=lambda e: (_moment(e), e.backup_id), default=None)
