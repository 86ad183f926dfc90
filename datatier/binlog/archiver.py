"""``datatier binlog archive``: stream the primary's binlog into the store, segment by segment.

Contract:

* Each segment is uploaded (zstd, SHA-256, by :class:`~datatier.backup.objects.ObjectWriter`;
  age-encrypted to the current recipients when the policy encrypts) and only then its index
  record is written; a segment ends only between transactions.
* The archive resumes from its last index record's GTID position: after SIGKILL, a restart
  or a server restart, the server sends exactly the transactions after it (no gap, no
  duplicate). A segment being built when the archiver dies is simply sent again.
* A segment is uploaded when its file ends (rotate or stop event: ``file_complete``), when
  it reaches ``binlog.segment_mb``, or when its oldest transaction has waited half of
  ``binlog.max_archive_lag`` (a partial segment: the archive never trails by more).
* Unpinned, it follows the writable node: after a failover it continues on the promoted
  replica from the same GTID position. Binlogs purged before they were archived become a
  gap record, and archiving continues from the server's oldest binlog.
* Store outages are waited out (the segment stays in memory); the server connection is
  re-opened from the last published position when it breaks.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from datatier.backup.encryption import policy_recipients
from datatier.backup.manifest import utc_now_iso
from datatier.backup.objects import ObjectWriter
from datatier.backup.policy import Policy
from datatier.backup.stores import store_for
from datatier.binlog.chain import load_chain
from datatier.binlog.layout import DATA_TAGS, INDEX_TAGS, archive_prefix, index_key
from datatier.binlog.records import GAP, SEGMENT, IndexRecord
from datatier.binlog.retrystore import RetryingStore
from datatier.binlog.segment import Segment
from datatier.binlog.state import write_state
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, OperationFailed, ServiceUnavailable
from datatier.log import get_logger
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.dump import BinlogDump, StartNotInBinlog
from datatier.mysql.binlog.groups import GroupTracker
from datatier.mysql.binlog.positions import Position
from datatier.mysql.binlog.quiet import MIN_INTERVAL, Probe, Prober
from datatier.mysql.binlog.source import (
    NodeFacts,
    binary_logs,
    check_source,
    file_start_position,
    node_facts,
    writable_node,
)
from datatier.mysql.connection import endpoint
from datatier.storage.base import MiB, StorageClass

log = get_logger(__name__)


@dataclass
class ArchiveReport:
    """What a run did (``--once``), or has done so far."""

    segments: int = 0
    transactions: int = 0
    bytes: int = 0
    gaps: list[str] = field(default_factory=list)
    position: str = ""
    node: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Archiver:
    """Archives the binlog of ``node`` (or of the writable node) into ``policy``'s store."""

    def __init__(
        self,
        loaded: LoadedConfig,
        policy: Policy,
        *,
        node: str | None = None,
        once: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.loaded = loaded
        self.policy = policy
        self.settings = loaded.config.binlog
        self.node = node or self.settings.node
        self.once = once
        self.stop = stop or threading.Event()
        self.store = RetryingStore(
            store_for(policy.store_url, loaded.config), give_up_after=600.0 if once else None
        )
        self.flush_after = self.settings.max_archive_lag / 2
        self.heartbeat = max(0.1, min(1.0, self.flush_after / 4))
        self.state_every = max(1.0, min(15.0, self.settings.max_archive_lag / 4))
        self.recipients = policy_recipients(loaded.config, policy)
        self.report = ArchiveReport()
        self.seq = 1
        self.published = Position()
        self.last: IndexRecord | None = None
        self.gap_count = 0
        self._last_state = 0.0
        self._facts: NodeFacts | None = None
        # A moment (the source's clock) before which the source will write nothing this
        # archiver has not received: a probe's bound, once the stream reached its end.
        self._heard_all_at: float | None = None
        self._note = ""  # why the last probe vouched for less than its moment, or nothing
        self.token = secrets.token_hex(4)  # in this run's data keys: never another's object

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> ArchiveReport:
        """Archive until stopped (or, with ``once``, up to the end of the binlogs)."""
        chain = load_chain(self.store, self.policy.name, check_objects=False)
        self.seq, self.published = chain.next_seq, chain.end
        self.last = chain.records[-1] if chain.records else None
        self.gap_count = len(chain.gaps)
        fresh = not chain.records
        wait = 1.0
        while not self.stop.is_set():
            try:
                facts = self._source()
                if fresh:
                    oldest = binary_logs(facts.endpoint)[0][0]
                    self.published = file_start_position(facts.endpoint, oldest)
                    fresh = False
                    log.info("binlog.archive_started", node=facts.endpoint.name, file=oldest)
                self._stream(facts)
                wait = 1.0
                if self.once:
                    self._write_state(None)  # what this run heard, even with nothing new
                    break
            except StartNotInBinlog as exc:
                if not exc.purged:
                    raise OperationFailed(
                        f"{exc}; the archive ends at {self.published}, which this server does "
                        "not have (it diverged, or is not the primary the archive followed)",
                        hint="archive from the server that has those transactions",
                    ) from None
                self._record_gap(self._facts_or_raise(), str(exc))
            except ServiceUnavailable as exc:
                if self.once:
                    raise
                log.warning("binlog.source_lost", error=str(exc), retry_in=wait)
                self.stop.wait(wait)
                wait = min(5.0, wait * 2)
        self.report.position = str(self.published)
        return self.report

    def _facts_or_raise(self) -> NodeFacts:
        if self._facts is None:
            raise OperationFailed("binlog archiving lost its source")
        return self._facts

    def _source(self) -> NodeFacts:
        mysql = self.loaded.config.mysql
        if self.node:
            facts = node_facts(endpoint(mysql, self.node))
        else:
            facts = writable_node([endpoint(mysql, name) for name in mysql.nodes])
        check_source(facts)
        if self._facts is None or self._facts.endpoint.name != facts.endpoint.name:
            self._heard_all_at = None  # said of another server
            log.info(
                "binlog.following",
                node=facts.endpoint.name,
                server_id=facts.server_id,
                position=str(self.published),
            )
        if facts.binlog_format.upper() != "ROW":
            log.warning(
                "binlog.not_row_format",
                node=facts.endpoint.name,
                binlog_format=facts.binlog_format,
                note="replay filters statement-format events by database only",
            )
        self._facts = facts
        self.report.node = facts.endpoint.name
        return facts

    def _stream(self, facts: NodeFacts) -> None:
        """One dump connection: archive until it ends or breaks (the segment in progress
        is dropped on a break; the next connection resends it)."""
        ep = facts.endpoint
        # Said of an earlier connection, whose unpublished transactions were dropped with it
        # (this one resends them): no longer true of what is archived and pending.
        self._heard_all_at = None
        # What the source may still stamp in the past (its running statements), read
        # before the stream passes its binlog's end (see datatier.mysql.binlog.quiet).
        prober = Prober(ep)
        asked: Probe | None = None
        tracker = GroupTracker(checksum=facts.checksum.upper() == "CRC32")
        verify = tracker.checksum
        fde: ev.FormatDescription | None = None
        seg: Segment | None = None
        file = ""
        pos: int | None = None
        try:
            asked = prober.probe()
            with BinlogDump(
                ep,
                self.published,
                server_id=self.settings.server_id,
                heartbeat=self.heartbeat,
                non_block=self.once,
            ) as dump:
                for event in dump.events():
                    if self.stop.is_set():
                        break
                    head = ev.header(event)
                    if head.type == ev.HEARTBEAT:
                        if tracker.between_groups and (pos is None or head.log_pos <= pos):
                            asked = self._heard(asked, prober, file, head.log_pos)
                        seg = self._tick(seg, tracker)
                        continue
                    if verify:
                        ev.check_crc(event, f"{ep.label} {file}")
                    if head.type == ev.ROTATE and (head.artificial or head.log_pos == 0):
                        name, _ = ev.rotate(event, verify)
                        if seg is not None and name != seg.file:
                            seg = self._file_ended(seg, tracker)
                        file, pos = name, self._resume_pos(facts.server_id, name)
                        continue
                    if head.type == ev.FORMAT_DESCRIPTION:
                        fde = ev.format_description(event)
                        tracker.feed(event, head)
                        if not (head.start == 4 and pos in (None, 4) and seg is None):
                            continue  # the file's header, sent again: kept as the prefix
                    elif head.artificial:
                        continue
                    elif pos is not None and head.start < pos:
                        continue  # already archived (the file's first events, resent)
                    elif pos is not None and head.start > pos:
                        seg = self._jump(seg, tracker, file, pos, head.start)
                    if fde is None:
                        raise OperationFailed(f"{ep.label}: binlog stream without a format event")
                    if seg is None:
                        seg = self._open(facts, fde, file, head.start)
                    seg.add(event, head)
                    pos = head.log_pos
                    group = (
                        tracker.feed(event, head) if head.type != ev.FORMAT_DESCRIPTION else None
                    )
                    if group is not None:
                        if seg.position.includes(group.gtid):
                            raise OperationFailed(
                                f"{ep.label} sent {group.gtid} again (the archive has it)"
                            )
                        seg.completed(group)
                    if tracker.between_groups and (seg.file_complete or self._due(seg)):
                        seg = self._publish(seg)
                else:
                    # A non-blocking dump ends at the end of the binlogs, but also (as a
                    # blocking one) with a plain EOF when its thread is killed or the server
                    # shuts down: a probe counts only if the stream is seen to reach it.
                    if self.once and tracker.between_groups:
                        self._vouch_reached(prober.probe(), asked, file, pos)
                if (
                    seg is not None
                    and tracker.between_groups
                    and (seg.transactions or seg.file_complete)
                ):
                    seg = self._publish(seg)
        finally:
            prober.close()
            if seg is not None:
                seg.writer.abort()

    def _heard(self, asked: Probe | None, prober: Prober, file: str, at: int) -> Probe | None:
        """The stream is idle at ``file``:``at`` with every whole transaction before it
        received: vouch for the pending probe's bound if the stream reached its end, and
        take the next probe (the pending one stays while the stream has not reached it)."""
        if asked is not None and not asked.reached(file, at):
            return asked
        self._vouch(asked)
        if asked is not None and time.monotonic() - asked.taken < MIN_INTERVAL:
            return asked  # reached, and recent: vouched again at the next heartbeat
        return prober.probe()

    def _vouch_reached(
        self, last: Probe | None, first: Probe | None, file: str, pos: int | None
    ) -> None:
        """At the end of a ``--once`` stream at ``file``:``pos`` (None: it received nothing
        new, and is at the archive's end): vouch for the latest of the probes it reached."""
        for found in (last, first):
            if found is None:
                continue
            if found.reached(file, pos) if pos is not None else self.published.covers(found.gtid):
                self._vouch(found)
                return

    def _vouch(self, probe: Probe | None) -> None:
        if probe is None:
            self._note = "the source could not be probed (see binlog.probe_failed)"
            return
        self._note = probe.why or probe.held_by
        if probe.bound is not None:
            self._heard_all_at = max(self._heard_all_at or 0.0, probe.bound)

    # -- segments ---------------------------------------------------------------------------

    def _resume_pos(self, server_id: int, file: str) -> int | None:
        last = self.last
        if last is None or last.is_gap or last.file_complete:
            return None
        if last.server_id == server_id and last.file == file:
            return last.end_pos
        return None

    def _jump(
        self, seg: Segment | None, tracker: GroupTracker, file: str, pos: int, start: int
    ) -> Segment | None:
        """The stream skipped ahead (a GTID start inside a file): only the file's header
        events may be skipped, never a transaction."""
        if seg is None or (seg.transactions == 0 and tracker.between_groups):
            if seg is not None:
                seg.writer.abort()
            return None
        raise OperationFailed(f"binlog stream skipped bytes {pos}..{start} of {file}")

    def _open(self, facts: NodeFacts, fde: ev.FormatDescription, file: str, start: int) -> Segment:
        storage = self.policy.spec.storage
        writer = ObjectWriter(
            self.store,
            archive_prefix(self.policy.name),
            level=self.policy.spec.compression_level,
            storage_class=StorageClass(storage.initial_class),
            tags={**DATA_TAGS, "datatier-policy": self.policy.name},
            concurrency=1,
            max_pending=1,
            recipients=self.recipients,
        )
        return Segment.open(
            writer,
            seq=self.seq,
            node=facts.endpoint.name,
            fde=fde,
            server_id=facts.server_id,
            file=file,
            start_pos=start,
            gtid_start=self.published,
            run=self.token,
        )

    def _due(self, seg: Segment) -> bool:
        if not seg.transactions:
            return False
        if seg.raw_size >= self.settings.segment_mb * MiB:
            return True
        return (
            seg.oldest_pending is not None and time.time() - seg.oldest_pending >= self.flush_after
        )

    def _tick(self, seg: Segment | None, tracker: GroupTracker) -> Segment | None:
        """Between events: publish a segment that is due, and tell the store we are alive."""
        if seg is not None and tracker.between_groups and self._due(seg):
            return self._publish(seg)
        if time.monotonic() - self._last_state >= self.state_every:
            self._write_state(seg)
        return seg

    def _file_ended(self, seg: Segment, tracker: GroupTracker) -> Segment | None:
        """The server moved to another file without a rotate event (it crashed or was
        stopped): the segment so far ends its file."""
        if not tracker.between_groups:
            raise OperationFailed(
                f"{seg.file} ended inside transaction {tracker.open and tracker.open.gtid}"
            )
        seg.file_complete = True
        if seg.transactions or seg.events:
            return self._publish(seg)
        seg.writer.abort()
        return None

    def _publish(self, seg: Segment) -> Segment | None:
        """Upload the segment, then write its index record and the state."""
        seg.writer.close(seg.obj)
        (stored,) = seg.writer.finish()
        record = IndexRecord(
            seq=seg.seq,
            kind=SEGMENT,
            gtid_start=seg.gtid_start,
            gtid_end=seg.position,
            published_at=utc_now_iso(),
            key=stored.key,
            size=stored.size,
            sha256=stored.sha256,
            raw_size=stored.raw_size,
            storage_class=stored.storage_class,
            node=seg.node,
            server_id=seg.server_id,
            server_version=seg.server_version,
            file=seg.file,
            start_pos=seg.start_pos,
            end_pos=seg.end_pos,
            file_complete=seg.file_complete,
            first_gtids=tuple(v for _, v in sorted(seg.first_gtids.items())),
            last_gtids=tuple(v for _, v in sorted(seg.last_gtids.items())),
            first_ts=seg.first_ts,
            last_ts=seg.last_ts,
            transactions=seg.transactions,
            events=seg.events,
            plain_size=stored.plain_size,
            plain_sha256=stored.plain_sha256,
            recipients=stored.recipients,
            etag=stored.etag,
        )
        self._put_record(record)
        self.report.segments += 1
        self.report.transactions += seg.transactions
        self.report.bytes += stored.size
        log.info(
            "binlog.segment_published",
            seq=seg.seq,
            node=seg.node,
            file=seg.file,
            start=seg.start_pos,
            end=seg.end_pos,
            transactions=seg.transactions,
            bytes=stored.size,
            position=str(seg.position),
            file_complete=seg.file_complete,
        )
        self._write_state(None)
        return None

    def _put_record(self, record: IndexRecord) -> None:
        key = index_key(self.policy.name, record.seq)
        if self.store.exists(key):
            raise OperationFailed(
                f"index record #{record.seq} appeared in {self.store.url} while this archiver "
                "was running: another archiver writes to the same archive (run only one)"
            )
        self.store.put_bytes(
            key,
            record.encode(),
            storage_class=StorageClass.STANDARD,
            tags=INDEX_TAGS,
        )
        self.seq = record.seq + 1
        self.published = record.gtid_end
        self.last = record

    def _record_gap(self, facts: NodeFacts, problem: str) -> None:
        """Binlogs the archive needs were purged: record the gap, go on from the oldest."""
        oldest = binary_logs(facts.endpoint)[0][0]
        start = file_start_position(facts.endpoint, oldest)
        if not start.covers(self.published):
            raise IntegrityFailure(
                f"{problem}; and {facts.endpoint.label}'s oldest binlog {oldest} starts at "
                f"{start or '(empty)'}, before the archive's end {self.published}: "
                "cannot tell what is missing"
            )
        reason = (
            f"binlogs after {self.published or '(start)'} were purged on {facts.endpoint.name} "
            f"before they were archived; its oldest binlog {oldest} starts at {start}"
        )
        record = IndexRecord(
            seq=self.seq,
            kind=GAP,
            gtid_start=self.published,
            gtid_end=start,
            published_at=utc_now_iso(),
            reason=reason,
        )
        self._put_record(record)
        self.gap_count += 1
        self.report.gaps.append(reason)
        log.error("binlog.gap", seq=record.seq, reason=reason)

    def vouched(self, seg: Segment | None) -> float:
        """The moment before which everything the source wrote is archived, as far as this
        archiver knows: the timestamp of the oldest transaction it holds unpublished, else
        the bound of the last probe its stream reached while idle (a heartbeat, the end of a
        ``--once`` run: the moment before which the source will stamp nothing more,
        :mod:`datatier.mysql.binlog.quiet`), else the last event published.

        Never the time a transaction was received, nor now: an archiver that is behind
        (paused, slow, restarted after an outage) receives transactions committed before
        that, and a restore to a moment between would lack them (silently, were the state
        believed). A replica source vouches only for the last event published: it is caught
        up with itself, not with the primary (its SQL thread may lag)."""
        last = self.last
        published = float(last.last_ts) if last is not None and not last.is_gap else 0.0
        facts = self._facts
        if facts is not None and facts.read_only:
            return published
        if seg is not None and seg.pending_ts is not None:
            return float(seg.pending_ts)
        if self._heard_all_at is not None:
            return max(published, self._heard_all_at)
        return published

    def _vouch_note(self) -> str:
        """Why ``safe_until`` may stand before the last moment the source was idle."""
        facts = self._facts
        if facts is not None and facts.read_only:
            return "the source is a replica (read_only): only its last published event"
        return self._note

    def _write_state(self, seg: Segment | None) -> None:
        facts = self._facts
        write_state(
            self.store,
            self.policy.name,
            node=facts.endpoint.name if facts else "",
            server_id=facts.server_id if facts else 0,
            position=str(self.published),
            last_seq=self.seq - 1,
            safe_until=self.vouched(seg),
            gaps=self.gap_count,
            note=self._vouch_note(),
        )
        self._last_state = time.monotonic()
