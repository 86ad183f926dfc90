"""Backup IDs, the store layout and the manifest: the completion marker of a backup.

Layout in a store: ``POLICY/BACKUP_ID/data/...`` for data objects and
``POLICY/BACKUP_ID/manifest.json`` written last, in STANDARD. A backup without a manifest
is incomplete: it is never listed and never restored; prune removes its leftovers.
BACKUP_ID sorts by time: ``20261126T061900Z-3f9c``.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from datatier.errors import IntegrityFailure, UsageError

FORMAT_VERSION = 2
CHAIN_FORMAT_VERSION = 3
"""Manifests that name a ``parent`` (incrementals): datatier releases that do not know
chains see them as unreadable, so their prune refuses to run rather than delete a parent."""
ENCRYPTED_FORMAT_VERSION = 4
"""Manifests of encrypted backups (and of chains among them): releases that do not know
encryption see them as unreadable rather than restore ciphertext as data."""
BUNDLE_FORMAT_VERSION = 5
"""Manifests holding bundle objects (several small tables in one object, see
:class:`Section`): releases that do not know bundles see them as unreadable rather than
restore a backup without those tables."""
READABLE_FORMATS = (1, 2, 3, 4, 5)
MANIFEST_NAME = "manifest.json"
BACKUP_ID = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{4})$")

# Object kinds, in the order a restore applies them.
KIND_ORDER = (
    "grants",  # accounts first (DEFINERs exist before routines); only with restore --grants
    "database",
    "schema",
    "bundle",  # small tables, each its definition then its rows; loaded with the data
    "data",
    "triggers",
    "routines",
    "events",
    "viewstubs",
    "views",
    "collection",
    "metadata",
    "oplog",
)


def new_backup_id(now: datetime | None = None) -> str:
    """A fresh, time-sortable backup ID (UTC seconds plus 4 random hex digits)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def parse_backup_id(text: str) -> datetime:
    """The creation time encoded in a backup ID; UsageError if ``text`` is not one."""
    match = BACKUP_ID.match(text)
    if not match:
        raise UsageError(f"{text!r} is not a backup ID", hint="IDs look like 20261126T061900Z-3f9c")
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def backup_prefix(policy: str, backup_id: str) -> str:
    """``POLICY/BACKUP_ID/`` relative to the store root."""
    return f"{policy}/{backup_id}/"


def manifest_key(policy: str, backup_id: str) -> str:
    return f"{backup_prefix(policy, backup_id)}{MANIFEST_NAME}"


@dataclass(frozen=True)
class Section:
    """One table of a bundle object: its bytes ``[start, end)`` of the decompressed
    object (the table's definition, then its rows) and how many rows they hold. Bytes
    before the first section are the session prelude every section needs."""

    table: str
    start: int
    end: int
    rows: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Section:
        return cls(str(data["table"]), int(data["start"]), int(data["end"]), int(data["rows"]))


@dataclass(frozen=True)
class ObjectRecord:
    """One data object: where it is, what it holds and how to check it.

    ``size`` and ``sha256`` describe the stored bytes (``verify`` needs no key); ``etag``
    is the store's version tag of the object as its upload returned it (None in manifests
    written before it was recorded), which a listing can be compared with: a different one
    means the object was rewritten since (:mod:`datatier.backup.listing`). An
    encrypted object (age, see :mod:`datatier.pipeline.encrypt`) also has the size and
    SHA-256 of its plaintext (the zstd stream age decrypts to) and the public keys it was
    encrypted to (``recipients``, kept once per manifest in the JSON)."""

    key: str
    kind: str
    size: int
    sha256: str
    raw_size: int
    storage_class: str
    database: str | None = None
    table: str | None = None
    part: int = 0
    rows: int = 0
    plain_size: int | None = None
    plain_sha256: str | None = None
    recipients: tuple[str, ...] = ()
    sections: tuple[Section, ...] = ()
    """Kind ``bundle`` only: the tables it holds, in order."""
    etag: str | None = None

    @property
    def encrypted(self) -> bool:
        return self.plain_sha256 is not None

    def table_names(self) -> tuple[str, ...]:
        """The tables this object belongs to: a bundle's sections, else its one table
        (none for database-level objects)."""
        if self.sections:
            return tuple(s.table for s in self.sections)
        return (self.table,) if self.table is not None else ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObjectRecord:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "recipients" in fields:
            fields["recipients"] = tuple(str(r) for r in fields["recipients"])
        if "sections" in fields:
            fields["sections"] = tuple(Section.from_json(d) for d in fields["sections"])
        return cls(**fields)

    def to_json(self, recipients: tuple[str, ...] = ()) -> dict[str, Any]:
        """As stored; encryption fields only when encrypted, ``recipients`` only when they
        differ from the manifest's (``recipients``), ``etag`` only when recorded."""
        doc = asdict(self)
        if not self.encrypted:
            for name in ("plain_size", "plain_sha256", "recipients"):
                del doc[name]
        elif self.recipients == recipients:
            del doc["recipients"]
        if not self.sections:
            del doc["sections"]
        if self.etag is None:
            del doc["etag"]
        return doc


@dataclass(frozen=True)
class TableRecord:
    """Per table (or collection): rows and a checksum of its data as dumped.

    ``split_points`` are the integer key values where the dump split the table into ranges
    (the data checksum is defined per range, see :mod:`datatier.mysql.pdump`); ``kind`` is
    ``table``, ``sequence`` or ``collection``."""

    database: str
    name: str
    rows: int
    data_sha256: str
    data_bytes: int
    split_points: tuple[int, ...] = ()
    kind: str = "table"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableRecord:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if "split_points" in fields:
            fields["split_points"] = tuple(int(p) for p in fields["split_points"])
        return cls(**fields)


@dataclass
class Manifest:
    """Everything needed to list, verify, prune and restore one backup."""

    policy: str
    backup_id: str
    engine: str
    tool_version: str
    started_at: str
    finished_at: str
    source: dict[str, Any]
    consistency: dict[str, Any]
    objects: list[ObjectRecord]
    tables: list[TableRecord]
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    parent: str | None = None
    """The backup this one is an incremental of (None: a full backup)."""
    encryption: dict[str, Any] = field(default_factory=dict)
    """Empty, or ``{"method": "age", "recipients": [public keys]}``: the objects are
    age-encrypted to those recipients (see ``ObjectRecord``)."""

    @property
    def recipients(self) -> tuple[str, ...]:
        """The public keys this backup's objects are encrypted to (empty: not encrypted)."""
        return tuple(self.encryption.get("recipients", ()))

    @property
    def total_bytes(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def raw_bytes(self) -> int:
        return sum(o.raw_size for o in self.objects)

    def storage_classes(self) -> dict[str, int]:
        """Object count per storage class as recorded at backup time."""
        counts: dict[str, int] = {}
        for obj in self.objects:
            counts[obj.storage_class] = counts.get(obj.storage_class, 0) + 1
        return counts

    def encode(self) -> bytes:
        doc = asdict(self)
        doc["objects"] = [o.to_json(self.recipients) for o in self.objects]
        if not self.encryption:
            del doc["encryption"]
        try:  # NaN and Infinity are not JSON: no reader could parse such a manifest
            text = json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True, allow_nan=False)
        except ValueError:
            raise IntegrityFailure(
                f"manifest of {self.policy}/{self.backup_id}: a number in it is NaN or "
                "infinite (not JSON); not written"
            ) from None
        return (text + "\n").encode()

    @classmethod
    def decode(cls, raw: bytes, where: str) -> Manifest:
        """Parse a manifest; IntegrityFailure naming ``where`` if it is not a valid one."""
        try:
            doc = json.loads(raw)
            if doc.get("format_version") not in READABLE_FORMATS:
                raise IntegrityFailure(
                    f"{where}: unsupported manifest format {doc.get('format_version')!r}"
                )
            parent = doc.get("parent")
            if parent is not None and not (isinstance(parent, str) and BACKUP_ID.match(parent)):
                raise IntegrityFailure(f"{where}: parent {parent!r} is not a backup ID")
            encryption = doc.get("encryption") or {}
            if not isinstance(encryption, dict):
                raise IntegrityFailure(f"{where}: encryption is not an object")
            recipients = tuple(str(r) for r in encryption.get("recipients", ()))
            objects = [ObjectRecord.from_json(o) for o in doc["objects"]]
            objects = [
                replace(o, recipients=recipients) if o.encrypted and not o.recipients else o
                for o in objects
            ]
            unkeyed = next((o for o in objects if o.encrypted and not o.recipients), None)
            if unkeyed is not None:
                raise IntegrityFailure(f"{where}: {unkeyed.key} is encrypted to no recipient")
            return cls(
                policy=doc["policy"],
                backup_id=doc["backup_id"],
                engine=doc["engine"],
                tool_version=doc["tool_version"],
                started_at=doc["started_at"],
                finished_at=doc["finished_at"],
                source=doc["source"],
                consistency=doc["consistency"],
                objects=objects,
                tables=[TableRecord.from_json(t) for t in doc["tables"]],
                databases=doc.get("databases", {}),
                timings=doc.get("timings", {}),
                options=doc.get("options", {}),
                format_version=doc["format_version"],
                parent=parent,
                encryption=encryption,
            )
        except IntegrityFailure:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityFailure(f"{where}: unreadable manifest ({exc!r})") from None


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def snapshot_time(manifest: Manifest) -> datetime | None:
    """When the backup's snapshot was taken: the moment it holds the data of, which a
    point-in-time restore and retention's recovery window date it by (``finished_at`` for
    manifests without ``consistency.snapshot_at``); None when neither is a time."""
    text = str(manifest.consistency.get("snapshot_at") or manifest.finished_at or "")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
