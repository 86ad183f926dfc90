"""Index records: one JSON document per archived segment (or recorded gap).

A *segment* record describes one object: the byte range ``[start_pos, end_pos)`` of one
server's binlog ``file`` (the object is the binlog magic, that file's Format_description
event and those bytes, zstd-compressed), the GTID position before and after it, the first
and last GTID per domain, its first and last event times (UTC seconds, as the binlog has
them), its transactions, size and SHA-256, and the ETag its upload returned (where the
store gave one; records written before it was recorded have none and are judged by size
only, see :func:`datatier.binlog.chain.analyse`). An encrypted segment (age,
``*.binlog.zst.age``) also records the public keys it is encrypted to and its plaintext's
size and SHA-256; its record is format 2, which releases without encryption refuse to
read. ``file_complete`` is true only for the segment that ends its file (a rotate or stop
event, or the server moved on): a file still being written is published in segments, never
as complete. A *gap* record names transactions the archive does not have, ``gtid_start``
to ``gtid_end``, and why. Records are immutable; ``seq`` orders them, and each starts where
the previous one ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from datatier.backup.manifest import ObjectRecord
from datatier.errors import IntegrityFailure, UsageError
from datatier.mysql.binlog.positions import Gtid, Position

FORMAT = 1
ENCRYPTED_FORMAT = 2
READABLE_FORMATS = (FORMAT, ENCRYPTED_FORMAT)
SEGMENT = "segment"
GAP = "gap"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class IndexRecord:
    """One entry of the archive (see module docstring)."""

    seq: int
    kind: str
    gtid_start: Position
    gtid_end: Position
    published_at: str
    key: str | None = None
    size: int = 0
    sha256: str = ""
    raw_size: int = 0
    storage_class: str = "STANDARD"
    node: str = ""
    server_id: int = 0
    server_version: str = ""
    file: str = ""
    start_pos: int = 0
    end_pos: int = 0
    file_complete: bool = False
    first_gtids: tuple[Gtid, ...] = ()
    last_gtids: tuple[Gtid, ...] = ()
    first_ts: int = 0
    last_ts: int = 0
    transactions: int = 0
    events: int = 0
    reason: str = ""
    plain_size: int | None = None
    plain_sha256: str | None = None
    recipients: tuple[str, ...] = ()
    etag: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_gap(self) -> bool:
        return self.kind == GAP

    def object_record(self) -> ObjectRecord:
        """The segment as the restore pipeline's object record (kind ``binlog``)."""
        assert self.key is not None
        return ObjectRecord(
            key=self.key,
            kind="binlog",
            size=self.size,
            sha256=self.sha256,
            raw_size=self.raw_size,
            storage_class=self.storage_class,
            part=self.seq,
            plain_size=self.plain_size,
            plain_sha256=self.plain_sha256,
            recipients=self.recipients,
            etag=self.etag,
        )

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "format": ENCRYPTED_FORMAT if self.plain_sha256 is not None else FORMAT,
            "seq": self.seq,
            "kind": self.kind,
            "gtid_start": str(self.gtid_start),
            "gtid_end": str(self.gtid_end),
            "published_at": self.published_at,
        }
        if self.is_gap:
            doc["reason"] = self.reason
        else:
            doc.update(
                key=self.key,
                size=self.size,
                sha256=self.sha256,
                raw_size=self.raw_size,
                storage_class=self.storage_class,
                node=self.node,
                server_id=self.server_id,
                server_version=self.server_version,
                file=self.file,
                start_pos=self.start_pos,
                end_pos=self.end_pos,
                file_complete=self.file_complete,
                gtids={
                    str(f.domain): [str(f), str(last)]
                    for f, last in zip(self.first_gtids, self.last_gtids, strict=True)
                },
                first_ts=self.first_ts,
                last_ts=self.last_ts,
                first_time=iso(self.first_ts) if self.first_ts else None,
                last_time=iso(self.last_ts) if self.last_ts else None,
                transactions=self.transactions,
                events=self.events,
            )
            if self.plain_sha256 is not None:
                doc.update(
                    plain_size=self.plain_size,
                    plain_sha256=self.plain_sha256,
                    recipients=list(self.recipients),
                )
            if self.etag is not None:
                doc["etag"] = self.etag
        doc.update(self.extra)
        return (json.dumps(doc, sort_keys=True, allow_nan=False) + "\n").encode()

    @classmethod
    def decode(cls, raw: bytes, where: str) -> IndexRecord:
        """Parse a record; IntegrityFailure naming ``where`` if it is not one."""
        try:
            doc = json.loads(raw)
            if doc.get("format") not in READABLE_FORMATS:
                raise IntegrityFailure(f"{where}: unsupported index format {doc.get('format')!r}")
            ranges = doc.get("gtids") or {}
            firsts = tuple(Gtid.parse(v[0]) for _, v in sorted(ranges.items()))
            lasts = tuple(Gtid.parse(v[1]) for _, v in sorted(ranges.items()))
            known = set(cls.__dataclass_fields__) | {"format", "gtids", "first_time", "last_time"}
            if doc.get("plain_sha256") is not None and not doc.get("recipients"):
                raise IntegrityFailure(f"{where}: an encrypted segment with no recipient")
            return cls(
                seq=int(doc["seq"]),
                kind=str(doc["kind"]),
                gtid_start=Position.parse(doc["gtid_start"]),
                gtid_end=Position.parse(doc["gtid_end"]),
                published_at=str(doc["published_at"]),
                key=doc.get("key"),
                size=int(doc.get("size", 0)),
                sha256=str(doc.get("sha256", "")),
                raw_size=int(doc.get("raw_size", 0)),
                storage_class=str(doc.get("storage_class", "STANDARD")),
                node=str(doc.get("node", "")),
                server_id=int(doc.get("server_id", 0)),
                server_version=str(doc.get("server_version", "")),
                file=str(doc.get("file", "")),
                start_pos=int(doc.get("start_pos", 0)),
                end_pos=int(doc.get("end_pos", 0)),
                file_complete=bool(doc.get("file_complete", False)),
                first_gtids=firsts,
                last_gtids=lasts,
                first_ts=int(doc.get("first_ts") or 0),
                last_ts=int(doc.get("last_ts") or 0),
                transactions=int(doc.get("transactions", 0)),
                events=int(doc.get("events", 0)),
                reason=str(doc.get("reason", "")),
                plain_size=None if doc.get("plain_size") is None else int(doc["plain_size"]),
                plain_sha256=None if doc.get("plain_sha256") is None else str(doc["plain_sha256"]),
                recipients=tuple(str(r) for r in doc.get("recipients") or ()),
                etag=None if doc.get("etag") is None else str(doc["etag"]),
                extra={k: v for k, v in doc.items() if k not in known},
            )
        except IntegrityFailure:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise IntegrityFailure(f"{where}: unreadable index record ({exc!r})") from None
        except UsageError as exc:  # a malformed GTID
            raise IntegrityFailure(f"{where}: unreadable index record ({exc})") from None
