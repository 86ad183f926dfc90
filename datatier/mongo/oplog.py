"""Point-in-time Mongo backups on a replica set: the oplog slice written during the dump
(what ``mongodump --oplog`` captures) and its replay at restore (``--oplogReplay``).

Contract:
- :func:`oplog_position` is the newest oplog entry's ``ts`` before the dump starts, or
  :data:`EMPTY_OPLOG` (``Timestamp(0, 0)``, before any entry) when the oplog has no entry
  yet (a new replica set before its first write): every entry is then written after the
  start and the slice is all of them. An empty oplog that is capped is refused
  (NotReadyYet, exit 5): entries could roll off it with no start entry left to show it
  (a real mongod logs an entry when its set is initiated, so this is not expected there);
- :func:`capture` writes, as raw BSON objects of kind ``oplog``, every entry after that
  position up to the newest one when the dump has finished, for the namespaces of the
  backed-up databases, plus the transactions (``admin.$cmd`` ``applyOps`` entries) that
  touch them, cut down to their operations on those databases
  (:mod:`datatier.mongo.oplogtxn`); it fails (no manifest) if the start position has
  rolled off the capped oplog meanwhile (an empty start cannot roll off: that oplog is
  never capped), if a collection was renamed, or if a transaction begun before the start
  committed during the dump;
- :func:`replay` applies the captured entries in order after the data is loaded, with an
  :class:`~datatier.mongo.oplogapply.Applier` (``applyOps``, or driver operations where the
  server has no ``applyOps``), rewriting database names for ``--rename`` and skipping
  entries of collections that are not being restored, in batches of at most 500 entries
  and 4 MiB (replay memory does not grow with the entries' size). A transaction is
  applied whole where its committing entry is, or not at all (a chain the slice's end
  cuts). A collection the slice creates (the dump never listed it) is listed in the manifest
  (:data:`CREATED`) when the policy includes it, and is restored with its database, from
  the slice alone. Inserts, updates and deletes are idempotent in the oplog's own terms,
  so documents the dump already saw converge to their state at the end of the slice.
  :func:`check_replayable` finds entries an applier cannot apply before anything is
  restored.

Only servers that are replica-set members have an oplog: on a standalone server (the
sandbox's FerretDB) none of this runs and the manifest says the snapshot is consistent per
collection only. Tested against the sandbox's mongo2 (mongo-java-server: ``isMaster``
handshake, driver-operation replay) and, where ``DATATIER_TEST_MONGO_URI`` names a real
replica set, against it (``hello``, ``applyOps``): tests/integration/test_mongo_pitr.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from datatier.backup.objects import DEFAULT_CHUNK, ObjectWriter, OpenObject
from datatier.errors import NotReadyYet, OperationFailed
from datatier.mongo.bsonstream import RAW_OPTIONS, count_documents, raw_documents
from datatier.mongo.client import handshake
from datatier.mongo.oplogapply import Applier, ApplyOpsApplier
from datatier.mongo.oplogtxn import TXN_NS, Commits, SliceFilter, committed

OPLOG_KEY = "oplog.bson"
OPLOG_METHOD = "oplog (mongodump --oplog): data plus the oplog slice written meanwhile"
# Fields applyOps must not see: the source collection's UUID (restored collections have
# new ones), the session/transaction bookkeeping of the original write, and the `_id`
# mongo-java-server gives its oplog entries.
_DROP_FIELDS = ("_id", "ui", "lsid", "txnNumber", "stmtId", "prevOpTime", "postImageOpTime")
# A replay batch ends at whichever comes first: 500 entries or 4 MiB of them (an entry
# larger than that goes alone), so that replay memory does not follow the entries' size,
# and an applyOps command of a batch stays under the 16 MiB BSON limit unless one entry
# alone is near it.
_APPLY_BATCH = 500
_APPLY_BYTES = 4 << 20


CREATED = "created_during_dump"
"""The manifest's ``consistency`` field listing the collections the slice creates."""

EMPTY_OPLOG = Timestamp(0, 0)  # the position of an oplog without entries: before any


def oplog_position(client: Any) -> Timestamp | None:
    """The newest oplog entry's ``ts``; :data:`EMPTY_OPLOG` when the oplog has no entry
    yet (NotReadyYet if that oplog is capped); None when the server has no oplog
    (standalone)."""
    if not handshake(client).get("setName"):
        return None
    # only `ts`: the entry's document may hold values the default decoding rejects
    newest = client.local["oplog.rs"].find_one({}, {"ts": 1}, sort=[("$natural", -1)])
    if newest is not None:
        ts: Timestamp = newest["ts"]
        return ts
    options = client.local["oplog.rs"].options()
    if options.get("capped"):
        raise NotReadyYet(
            "the replica set's capped oplog has no entry yet, so a backup could not tell "
            "whether entries rolled off it during the dump",
            hint="run the backup again after the first write",
        )
    return EMPTY_OPLOG


def _namespace_filter(databases: Iterable[str]) -> dict[str, Any]:
    """The databases' own entries, and every ``admin.$cmd`` entry (transactions; which of
    them belong to the slice is decided by :class:`~datatier.mongo.oplogtxn.SliceFilter`)."""
    names = "|".join(re.escape(d) for d in sorted(databases))
    if not names:
        return {"ns": {"$in": []}}
    return {"$or": [{"ns": {"$regex": f"^({names})\\."}}, {"ns": TXN_NS}]}


def capture(
    client: Any,
    writer: ObjectWriter,
    start: Timestamp,
    databases: Iterable[str],
    chunk_bytes: int = DEFAULT_CHUNK,
    *,
    dumped: Collection[tuple[str, str]] = (),
    includes: Callable[[str, str], bool] = lambda db, coll: True,
) -> dict[str, Any]:
    """Write the oplog slice after ``start`` (see module docstring); its summary for the
    manifest's ``consistency`` section, with ``created_during_dump``: the collections the
    slice creates (inserts, ``create``; in a transaction only if it commits in the slice)
    that are not ``dumped`` but the policy ``includes`` (created after the dump listed the
    collections: a restore replays them)."""
    oplog = client.local["oplog.rs"]
    end = oplog_position(client)
    assert end is not None
    query = {"ts": {"$gt": start, "$lte": end}, **_namespace_filter(databases)}
    entries = part = 0
    created: set[tuple[str, str]] = set()
    current: OpenObject | None = None
    chosen, commits = SliceFilter(databases, start), Commits()
    for batch in oplog.find_raw_batches(query, sort=[("$natural", 1)]):
        kept = []
        for entry in raw_documents([bytes(batch)], "the oplog"):
            original = bytes(entry.raw)
            selected = chosen.select(entry, original)
            if selected is not None:
                kept.append(selected)
                if selected is not original:
                    entry = RawBSONDocument(selected, RAW_OPTIONS)
                for applied in commits.feed(entry):  # what a transaction creates, once committed
                    created.update(created_collections(applied))
        raw = b"".join(kept)
        if not raw:
            continue
        if current is None:
            part += 1
            current = writer.open(f"{OPLOG_KEY}.{part:05d}.zst", "oplog", None, None, part)
        n = count_documents(raw)
        current.write(raw, n)
        entries += n
        if current.raw_size >= chunk_bytes:
            writer.close(current)
            current = None
    if current is not None:
        writer.close(current)
    if start != EMPTY_OPLOG and oplog.find_one({"ts": start}, {"ts": 1}) is None:
        raise OperationFailed(
            "the oplog rolled over during the dump: the snapshot cannot be made consistent",
            hint="enlarge the oplog or back up from a less busy member",
        )
    return {
        "method": OPLOG_METHOD,
        "point_in_time": True,
        "oplog_start": (
            {"t": 0, "i": 0, "empty": True}
            if start == EMPTY_OPLOG
            else {"t": start.time, "i": start.inc}
        ),
        "oplog_end": {"t": end.time, "i": end.inc},
        "oplog_entries": entries,
        CREATED: [
            [db, coll]
            for db, coll in sorted(created)
            if (db, coll) not in dumped and not coll.startswith("system.") and includes(db, coll)
        ],
    }


def _operations(entry: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """``entry``, or the operations of a transaction's ``applyOps`` container (with its
    ``ts``); no-ops left out."""
    op = entry.get("op")
    if op == "n":
        return
    if op == "c" and isinstance(entry.get("o", {}).get("applyOps"), list):
        for inner in entry["o"]["applyOps"]:
            yield from _operations(dict(inner, ts=entry.get("ts")))
        return
    yield entry


def _acts_on(op: Mapping[str, Any]) -> tuple[str, str] | None:
    """The (database, collection) an operation acts on: a command's is its first value
    (``{"drop": "c"}``), None when that is not a collection name."""
    db, _, coll = str(op.get("ns", "")).partition(".")
    if op.get("op") == "c":
        command = op.get("o", {})
        first = next(iter(command.values()), None) if command else None
        return (db, first) if isinstance(first, str) else None
    return db, coll


def created_collections(entry: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The collections ``entry`` can create: by inserting (implicitly) or ``create``."""
    for op in _operations(entry):
        kind = op.get("op")
        if kind == "i" or (kind == "c" and next(iter(op.get("o", {})), None) == "create"):
            found = _acts_on(op)
            if found is not None:
                yield found


def rewrite(
    entry: Mapping[str, Any], renames: dict[str, str], wanted: set[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    """The entries to apply for one captured entry: renamed, filtered, cleaned; a
    transaction's ``applyOps`` container is flattened into its operations."""
    for op in _operations(entry):
        acted = _acts_on(op)
        if acted is None or acted not in wanted or acted[0] not in renames:
            continue
        yield _cleaned(op, renames[acted[0]])


def _cleaned(entry: Mapping[str, Any], new_db: str) -> dict[str, Any]:
    _, _, coll = str(entry.get("ns", "")).partition(".")
    cleaned = {k: v for k, v in entry.items() if k not in _DROP_FIELDS and k != "ts"}
    cleaned["ns"] = f"{new_db}.{coll}"
    return cleaned


def entry_size(op: Mapping[str, Any]) -> int:
    """About how many bytes ``op`` takes as BSON: its documents' own sizes (raw, as
    captured, or encoded), plus a little per field."""
    size = 5
    for key, value in op.items():
        size += len(key) + 2
        if isinstance(value, RawBSONDocument):
            size += len(value.raw)
        elif isinstance(value, Mapping):
            size += len(bson.encode(value))
        elif isinstance(value, str | bytes):
            size += len(value) + 5
        else:
            size += 8
    return size


def replay(
    client: Any,
    entries: Iterable[Mapping[str, Any]],
    renames: dict[str, str],
    wanted: set[tuple[str, str]],
    on_applied: Callable[[int], None] | None = None,
    applier: Applier | None = None,
) -> int:
    """Apply ``entries`` (captured oplog documents, in order) with ``applier`` (default:
    ``applyOps``); the number applied. Transactions are applied whole at their committing
    entry, never in part (:func:`~datatier.mongo.oplogtxn.committed`). OperationFailed
    naming the first entry refused."""
    apply = applier or ApplyOpsApplier(client)
    applied = size = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal applied, batch, size
        if not batch:
            return
        apply.apply(batch)
        applied += len(batch)
        if on_applied:
            on_applied(len(batch))
        batch, size = [], 0

    for entry in committed(entries):
        for op in rewrite(entry, renames, wanted):
            if op.get("op") == "c":  # commands alone, in order
                flush()
                batch.append(op)
                flush()
                continue
            grows = entry_size(op)
            if size + grows > _APPLY_BYTES:
                flush()
            batch.append(op)
            size += grows
            if len(batch) >= _APPLY_BATCH or size >= _APPLY_BYTES:
                flush()
    flush()
    return applied


def check_replayable(
    applier: Applier,
    entries: Iterable[Mapping[str, Any]],
    renames: dict[str, str],
    wanted: set[tuple[str, str]],
) -> None:
    """Raise OperationFailed naming the first entry ``applier`` could not apply, before
    anything is restored."""
    for entry in committed(entries):
        for op in rewrite(entry, renames, wanted):
            applier.check(op)
