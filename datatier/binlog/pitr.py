"""Plan a point-in-time restore: the target, the base backup, the segments, the refusals.

Everything here reads and changes nothing. The base backup is the newest complete backup
of the policy whose consistency point precedes the target (:mod:`datatier.binlog.base`;
when that one is damaged, it is refused with exit 4 naming the backups that could serve).
The segments are those from the backup's position up to the target; a target beyond the
archive, an archive that starts after the backup, or a gap in between is refused (exit 2)
naming what is missing, before any archive restore is requested or anything is changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from datatier.backup.catalog import BackupEntry, BackupState, Catalog
from datatier.backup.engine import RestoreEngine, RestorePlan
from datatier.backup.engines import point_in_time
from datatier.backup.manifest import Manifest, ObjectRecord, backup_prefix
from datatier.backup.policy import Policy
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, open_policy_catalog
from datatier.backup.stores import store_for
from datatier.binlog.base import (
    UnusableBase,
    alternative_bases,
    backup_position,
    choose_base,
    offer,
    refuse_unusable,
    state_before,
)
from datatier.binlog.chain import Chain, load_chain
from datatier.binlog.layout import archive_policy
from datatier.binlog.records import IndexRecord, iso
from datatier.binlog.replay import Target
from datatier.binlog.state import read_state
from datatier.config import LoadedConfig
from datatier.display import human_bytes
from datatier.errors import IntegrityFailure, UsageError
from datatier.mysql.binlog.positions import Gtid, Position
from datatier.pipeline.staging import Staged
from datatier.storage.base import ObjectStore

WINDOW_HINT = "`datatier binlogs status` shows the archive's window"


def parse_until(text: str, now: datetime) -> datetime:
    """An ISO-8601 time (UTC when it names no zone); UsageError if malformed or future."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--until {text!r} is not an ISO-8601 time", hint="e.g. 2026-12-01T12:00:00Z"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment > now:
        raise UsageError(
            f"--until {text} is in the future (now is {iso(now.timestamp())})",
            hint="a time without a zone is UTC: give its offset (+01:00) for a local time",
        )
    return moment.astimezone(UTC)


@dataclass
class PitrPlan:
    """What a point-in-time restore will use (see module docstring)."""

    manifest: Manifest
    store: ObjectStore  # the base backup's
    archive_store: ObjectStore
    archive_policy: str
    start: Position
    target: Target
    target_text: str
    segments: list[IndexRecord]
    covered_until: str
    entries: list[BackupEntry]  # the policy's backups, in any state
    before: Position | None  # for a GTID target, a state known to precede it
    reachable: Callable[[Manifest], bool]  # whether the archive takes a backup to the target

    @property
    def replay_bytes(self) -> int:
        return sum(r.raw_size for r in self.segments)


class PitrEngine(RestoreEngine):
    """What the point-in-time restore engines share: their plan (``pitr``), the refusal of
    a damaged base naming the others, and a dry run's objects (the segments alone)."""

    pitr: PitrPlan
    _on_replayed: Callable[[int, int], None] | None = None

    def watch_replay(self, callback: Callable[[int, int], None]) -> None:
        self._on_replayed = callback

    def replay_loader(self, staged: Staged) -> Callable[[IndexRecord], bytes]:
        """:func:`segment_loader` for the replay itself, reporting to :meth:`watch_replay`'s
        callback (segments the replay never reaches are not counted: it ends short of
        the total)."""
        callback = self._on_replayed
        if callback is None:
            return segment_loader(staged)
        total, done = self.pitr.replay_bytes, 0
        callback(0, total)  # the replay starts now

        def step(size: int) -> None:
            nonlocal done
            done += size
            callback(done, total)

        return segment_loader(staged, step)

    def staging_failed(self, plan: RestorePlan, failure: IntegrityFailure) -> IntegrityFailure:
        """A base object failing its check is refused naming the backups that could serve
        as base instead (:func:`base_failure`); never used unasked."""
        return base_failure(self.pitr, failure) or failure

    def rehearsal_objects(self, plan: RestorePlan) -> list[ObjectRecord]:
        """The segments (``restore --dry-run --scan``): the base backup is not fetched."""
        return [o for o in plan.objects if o.key in plan.stores]


_NOTE_HINT = (
    "a statement still running may yet commit stamped before that moment: run again when it "
    "has ended, or choose an earlier time; grant PROCESS if the archiver's account lacks it"
)


def select_segments(
    chain: Chain,
    start: Position,
    target: Target,
    covered_until: float,
    backup_id: str,
    note: str = "",
) -> list[IndexRecord]:
    """The segments from ``start`` to ``target``; UsageError naming a gap or the coverage."""
    if target.until_gtid is not None and start.includes(target.until_gtid):
        return []  # the backup is exactly at the target
    beyond = [r for r in chain.records if not start.covers(r.gtid_end)]
    if beyond and not start.covers(beyond[0].gtid_start):
        first = beyond[0]
        raise UsageError(
            f"the binlog archive does not reach back to backup {backup_id} (at {start}): "
            f"it starts at {first.gtid_start or '(empty)'}"
            + (f", {iso(first.first_ts)}" if first.first_ts else "")
        )
    chosen: list[IndexRecord] = []
    reached = False
    for record in beyond:
        chosen.append(record)
        if target.until_gtid is not None and record.gtid_end.includes(target.until_gtid):
            reached = True
            break
        if target.until_ts is not None and not record.is_gap and record.last_ts >= target.until_ts:
            reached = True
            break
    if not reached:
        end = f"{chain.end or '(empty)'}" + (f", {iso(chain.last_ts)}" if chain.last_ts else "")
        if target.until_gtid is not None:
            raise UsageError(
                f"GTID {target.until_gtid} is beyond the binlog archive (it ends at {end})",
                hint="is `datatier binlog archive` running? " + WINDOW_HINT,
            )
        assert target.until_ts is not None
        if covered_until < target.until_ts:
            raise UsageError(
                f"{iso(target.until_ts)} is beyond the binlog archive (complete up to "
                f"{iso(covered_until) if covered_until else 'its last event'}; it ends at {end})"
                + (f"; the archiver, caught up, cannot vouch for later: {note}" if note else ""),
                hint=_NOTE_HINT if note else "is `datatier binlog archive` running?",
            )
    last_seq = chosen[-1].seq if chosen else 0
    for gap in chain.gaps:
        if gap.seq <= last_seq and not start.covers(gap.gtid_end):
            raise UsageError(f"cannot replay across a gap in the binlog archive: {gap.describe()}")
    return [r for r in chosen if not r.is_gap]


def covered_until(store: ObjectStore, policy: str, chain: Chain) -> tuple[float, str]:
    """Until when the archive is known complete: the second of its last event (the
    server may commit more in that second after it), or later when the archiver said so
    (``safe_until`` in its state, written while it is caught up); and the archiver's note
    of why it could not vouch for later ("" when none, or when it is behind)."""
    best = float(chain.last_ts or 0)
    state = read_state(store, policy)
    note = ""
    if Position.parse(str(state.get("position") or "")).same_state(chain.end):
        best = max(best, float(state.get("safe_until") or 0))
        note = str(state.get("vouch_note") or "")
    return best, note


def plan_pitr(
    loaded: LoadedConfig,
    catalog: Catalog,
    policy: Policy,
    *,
    until: datetime | None,
    until_gtid: str | None,
    backup_id: str | None = None,
) -> PitrPlan:
    """Choose the base backup and the segments for a restore of ``policy`` up to the
    target; UsageError (exit 2) for a target it cannot reach, UnusableBase (exit 4) when
    the base is damaged (:func:`~datatier.binlog.base.refuse_unusable`), before anything
    happens."""
    if (until is None) == (until_gtid is None):
        raise UsageError("give exactly one of --until TIME and --until-gtid GTID")
    owner = archive_policy(loaded)
    archive_store = store_for(owner.store_url, loaded.config)
    chain = load_chain(archive_store, owner.name)
    if not chain.records:
        raise UsageError(
            f"no binlog archive in {archive_store.url}/{owner.name}/_binlogs/",
            hint="run `datatier binlog archive` (continuously) for point-in-time restores",
        )
    gtid = Gtid.parse(until_gtid, "--until-gtid") if until_gtid is not None else None
    if gtid is not None:
        domains = chain.end.domains() | chain.start.domains()
        if gtid.domain not in domains:
            known = ", ".join(str(d) for d in sorted(domains)) or "none"
            raise UsageError(
                f"--until-gtid {gtid} is in domain {gtid.domain}; "
                f"the archive holds domain(s) {known}",
                hint=WINDOW_HINT,
            )
    target = Target(until_gtid=gtid, until_ts=int(until.timestamp()) if until else None)
    entries = catalog.backups(policy.name, include_all=True)
    before = state_before(chain, gtid) if gtid is not None else None
    until_covered, note = covered_until(archive_store, owner.name, chain)
    reachable = _reachable(chain, target, until_covered)
    refuse_unusable(entries, target, before, reachable, backup_id=backup_id, policy=policy.name)
    manifests = [
        e.manifest for e in entries if e.state is BackupState.COMPLETE and e.manifest is not None
    ]
    base = choose_base(manifests, target, backup_id, policy.name, before)
    start = backup_position(base)
    assert start is not None
    segments = [
        replace(r, storage_class=chain.objects[r.key].storage_class)
        if r.key in chain.objects
        else r
        for r in select_segments(chain, start, target, until_covered, base.backup_id, note)
    ]
    return PitrPlan(
        manifest=base,
        store=catalog.store,
        archive_store=archive_store,
        archive_policy=owner.name,
        start=start,
        target=target,
        target_text=str(gtid) if gtid else iso(target.until_ts or 0),
        segments=segments,
        covered_until=iso(until_covered) if until_covered else "",
        entries=entries,
        before=before,
        reachable=reachable,
    )


def _reachable(chain: Chain, target: Target, covered: float) -> Callable[[Manifest], bool]:
    """Whether the archive takes a backup up to ``target`` (no gap, no missing start)."""

    def reachable(manifest: Manifest) -> bool:
        start = backup_position(manifest)
        try:
            select_segments(chain, start or Position(), target, covered, manifest.backup_id)
        except UsageError:
            return False
        return start is not None

    return reachable


def base_failure(plan: PitrPlan, failure: IntegrityFailure) -> UnusableBase | None:
    """``failure`` (raised while staging ``plan``'s objects) as the refusal naming the
    backups that could serve instead, when it is about an object of the base backup (its
    ``details["key"]``); None when it is about something else (a binlog segment)."""
    key = str(failure.details.get("key") or "")
    base = plan.manifest
    if not key.startswith(backup_prefix(base.policy, base.backup_id)):
        return None
    return refuse_base(plan, failure)


def refuse_base(
    plan: PitrPlan, failure: IntegrityFailure, *, partly_loaded: str | None = None
) -> UnusableBase:
    """``failure``, about ``plan``'s base backup (its manifest, or an object's bytes or
    content), as the refusal naming the backups that could serve instead. ``partly_loaded``
    is what the failed apply may have left partly loaded (None: nothing was changed); the
    failure's key (``details["key"]``) and hint (as the pointer to what is wrong) are kept."""
    base = plan.manifest
    others = alternative_bases(
        plan.entries, plan.target, plan.before, plan.reachable, besides=base.backup_id
    )
    refusal = UnusableBase(
        f"backup {base.backup_id}, the base of this point-in-time restore, fails "
        f"verification: {failure.message}; "
        + offer(others, base.policy, changed=partly_loaded is not None),
        backup_id=base.backup_id,
        alternatives=others,
        partly_loaded=partly_loaded,
        why=failure.hint,
    )
    if failure.details.get("key"):
        refusal.details["key"] = failure.details["key"]
    return refusal


def locate_base(
    loaded: LoadedConfig,
    *,
    policy: str | None,
    backup_id: str | None,
    until: datetime | None,
    until_gtid: str | None,
) -> tuple[Catalog, Manifest]:
    """The base backup of a point-in-time restore and its catalog: the newest complete
    backup of ``policy`` (or of ``backup_id``'s policy) before the target; UsageError
    (exit 2) for bad input or a target the archive cannot reach, before anything happens."""
    if until is not None and until_gtid is not None:
        raise UsageError("give --until or --until-gtid, not both")
    if until_gtid is not None:
        Gtid.parse(until_gtid, "--until-gtid")
    if policy is None:
        if backup_id is None:
            raise UsageError(
                "--until and --until-gtid need --policy POLICY (or a BACKUP_ID)",
                hint="`datatier backup policies` lists them",
            )
        policy = find_backup(loaded, backup_id)[0].policy
    chosen = load_policy(loaded, policy)
    if not point_in_time(chosen.spec.engine):
        raise UsageError(
            f"point-in-time restores are for MySQL policies (mysql, mariabackup); {policy} is "
            f"{chosen.spec.engine}"
        )
    catalog = open_policy_catalog(loaded, chosen)
    plan = plan_pitr(
        loaded, catalog, chosen, until=until, until_gtid=until_gtid, backup_id=backup_id
    )
    return catalog, plan.manifest


def segment_loader(
    staged: Staged, on_loaded: Callable[[int], None] | None = None
) -> Callable[[IndexRecord], bytes]:
    """The decompressed bytes of a staged, verified segment (a replay's loader);
    ``on_loaded(raw bytes)`` after each."""

    def load(record: IndexRecord) -> bytes:
        assert record.key is not None, "a planned segment has its object"
        data = b"".join(staged.decompressed(record.key))
        if on_loaded is not None:
            on_loaded(len(data))
        return data

    return load


def segment_json(record: IndexRecord) -> dict[str, Any]:
    """A planned segment, for ``--json``."""
    return {
        "key": record.key,
        "storage_class": record.storage_class,
        "size": record.size,
        "raw_size": record.raw_size,
        "transactions": record.transactions,
        "from": str(record.gtid_start),
        "to": str(record.gtid_end),
        "first_time": iso(record.first_ts) if record.first_ts else None,
        "last_time": iso(record.last_ts) if record.last_ts else None,
    }


def pitr_details(pitr: PitrPlan, base: dict[str, Any]) -> dict[str, Any]:
    """A point-in-time restore plan's ``details`` (``base``: the base restore's)."""
    return {
        "base": {"backup_id": pitr.manifest.backup_id, **base},
        "until": pitr.target_text,
        "start": str(pitr.start),
        "segments": [segment_json(r) for r in pitr.segments],
        "replay_bytes": pitr.replay_bytes,
        "replay_stored_bytes": sum(r.size for r in pitr.segments),
        "covered_until": pitr.covered_until,
    }


def segment_lines(pitr: PitrPlan, how: str) -> list[str]:
    """The plan's summary lines of the segments, replayed ``how``."""
    stored = sum(r.size for r in pitr.segments)
    return [
        f"then {len(pitr.segments)} binlog segment(s), {human_bytes(pitr.replay_bytes)} of "
        f"binlog ({human_bytes(stored)} stored), replayed {how}from {pitr.start} up to "
        f"{pitr.target_text}:",
        *(
            f"  {(r.key or '').rsplit('/', 1)[-1]}  {r.storage_class}  {human_bytes(r.size)}  "
            f"{r.transactions} transactions  {iso(r.first_ts) if r.first_ts else '-'} .. "
            f"{iso(r.last_ts) if r.last_ts else '-'}"
            for r in pitr.segments
        ),
    ]
