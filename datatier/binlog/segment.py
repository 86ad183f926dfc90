"""One segment being built: a byte range of one binlog file, compressed as it arrives.

The archiver appends every event of the file in order; :class:`Segment` writes it into an
:class:`~datatier.backup.objects.OpenObject` (zstd as bytes arrive, SHA-256 and upload by
the same :class:`~datatier.backup.objects.ObjectWriter` backups use) and keeps what the
index record needs: positions, GTIDs per domain, event times, transactions. The object is
the binlog magic, the file's Format_description event (unless the segment starts with it)
and the events: a binlog file ``mariadb-binlog`` reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from datatier.backup.objects import ObjectWriter, OpenObject
from datatier.binlog.layout import data_relkey
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.groups import Group
from datatier.mysql.binlog.positions import Gtid, Position


@dataclass
class Segment:
    """Events ``[start_pos, end_pos)`` of ``file`` on server ``server_id`` (see module)."""

    seq: int
    node: str
    server_id: int
    server_version: str
    file: str
    start_pos: int
    gtid_start: Position
    obj: OpenObject
    writer: ObjectWriter
    end_pos: int = 0
    position: Position = field(default_factory=Position)
    first_gtids: dict[int, Gtid] = field(default_factory=dict)
    last_gtids: dict[int, Gtid] = field(default_factory=dict)
    first_ts: int = 0
    last_ts: int = 0
    transactions: int = 0
    events: int = 0
    file_complete: bool = False
    oldest_pending: float | None = None  # receive time of the first transaction's event
    pending_ts: int | None = None  # its timestamp (the server's): the archive's safe bound

    @classmethod
    def open(
        cls,
        writer: ObjectWriter,
        *,
        seq: int,
        node: str,
        fde: ev.FormatDescription,
        server_id: int,
        file: str,
        start_pos: int,
        gtid_start: Position,
        run: str,
    ) -> Segment:
        key = data_relkey(seq, server_id, file, start_pos, run)
        obj = writer.open(key, "binlog", None, None, seq)
        obj.write(ev.MAGIC)
        if start_pos != 4:  # the file's own Format_description event is the segment's first
            obj.write(fde.event)
        return cls(
            seq=seq,
            node=node,
            server_id=server_id,
            server_version=fde.server_version,
            file=file,
            start_pos=start_pos,
            gtid_start=gtid_start,
            obj=obj,
            writer=writer,
            end_pos=start_pos,
            position=gtid_start,
        )

    @property
    def raw_size(self) -> int:
        return self.obj.raw_size

    def add(self, event: bytes, head: ev.Header) -> None:
        """Append one event (the next in the file: ``head.start == end_pos``)."""
        if self.oldest_pending is None and head.type == ev.GTID:
            self.oldest_pending = time.time()
            self.pending_ts = head.timestamp
        self.obj.write(event)
        self.end_pos = head.log_pos
        self.events += 1
        if head.type in (ev.ROTATE, ev.STOP):
            self.file_complete = True

    def completed(self, group: Group) -> None:
        """Account for a transaction whose last event was just added."""
        gtid = group.gtid
        self.first_gtids.setdefault(gtid.domain, gtid)
        self.last_gtids[gtid.domain] = gtid
        self.position = self.position.with_gtid(gtid)
        self.first_ts = self.first_ts or group.first_ts
        self.last_ts = max(self.last_ts, group.commit_ts)
        self.transactions += 1
