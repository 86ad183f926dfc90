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
  backed-up databases, and fails (no manifest) if the start position has rolled off the
  capped oplog meanwhile (an empty start cannot roll off: that oplog is never capped);
- :func:`replay` applies the captured entries in order after the data is loaded, with an
  :class:`~datatier.mongo.oplogapply.Applier` (``applyOps``, or driver operations where the
  server has no ``applyOps``), rewriting database names for ``--rename`` and skipping
  entries of collections that are not being restored. Inserts, updates and deletes are
  idempotent in the oplog's own terms, so documents the dump already saw converge to their
  state at the end of the slice. :func:`check_replayable` finds entries an applier cannot
  apply before anything is restored.

Only servers that are replica-set members have an oplog: on a standalone server (the
sandbox's FerretDB) none of this runs and the manifest says the snapshot is consistent per
collection only. Tested against the sandbox's mongo2 (mongo-java-server: ``isMaster``
handshake, driver-operation replay) and, where ``DATATIER_TEST_MONGO_URI`` names a real
replica set, against it (``hello``, ``applyOps``): tests/integration/test_mongo_pitr.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from bson.timestamp import Timestamp

from datatier.backup.objects import DEFAULT_CHUNK, ObjectWriter, OpenObject
from datatier.errors import NotReadyYet, OperationFailed
from datatier.mongo.bsonstream import count_documents
from datatier.mongo.client import handshake
from datatier.mongo.oplogapply import Applier, ApplyOpsApplier

OPLOG_KEY = "oplog.bson"
OPLOG_METHOD = "oplog (mongodump --oplog): data plus the oplog slice written meanwhile"
# Fields applyOps must not see: the source collection's UUID (restored collections have
# new ones), the session/transaction bookkeeping of the original write, and the `_id`
# mongo-java-server gives its oplog entries.
_DROP_FIELDS = ("_id", "ui", "lsid", "txnNumber", "stmtId", "prevOpTime", "postImageOpTime")
_APPLY_BATCH = 500


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
    names = "|".join(re.escape(d) for d in sorted(databases))
    return {"ns": {"$regex": f"^({names})\\."}} if names else {"ns": {"$in": []}}


def capture(
    client: Any,
    writer: ObjectWriter,
    start: Timestamp,
    databases: Iterable[str],
    chunk_bytes: int = DEFAULT_CHUNK,
) -> dict[str, Any]:
    """Write the oplog slice after ``start`` (see module docstring); its summary for the
    manifest's ``consistency`` section."""
    oplog = client.local["oplog.rs"]
    end = oplog_position(client)
    assert end is not None
    query = {"ts": {"$gt": start, "$lte": end}, **_namespace_filter(databases)}
    entries = part = 0
    current: OpenObject | None = None
    for batch in oplog.find_raw_batches(query, sort=[("$natural", 1)]):
        raw = bytes(batch)
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
    }


def _target(ns: str, renames: dict[str, str]) -> tuple[str, str, str] | None:
    db, _, coll = ns.partition(".")
    if db not in renames:
        return None
    return renames[db], coll, db


def rewrite(
    entry: Mapping[str, Any], renames: dict[str, str], wanted: set[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    """The entries to apply for one captured entry: renamed, filtered, cleaned; a
    transaction's ``applyOps`` container is flattened into its operations."""
    op = entry.get("op")
    if op == "n":
        return
    if op == "c" and isinstance(entry.get("o", {}).get("applyOps"), list):
        for inner in entry["o"]["applyOps"]:
            yield from rewrite(dict(inner, ts=entry.get("ts")), renames, wanted)
        return
    target = _target(str(entry.get("ns", "")), renames)
    if target is None:
        return
    new_db, coll, old_db = target
    if op == "c":
        command = entry.get("o", {})
        first = next(iter(command.values()), None) if command else None
        if not isinstance(first, str) or (old_db, first) not in wanted:
            return
    elif (old_db, coll) not in wanted:
        return
    cleaned = {k: v for k, v in entry.items() if k not in _DROP_FIELDS and k != "ts"}
    cleaned["ns"] = f"{new_db}.{coll}"
    yield cleaned


def replay(
    client: Any,
    entries: Iterable[Mapping[str, Any]],
    renames: dict[str, str],
    wanted: set[tuple[str, str]],
    on_applied: Callable[[int], None] | None = None,
    applier: Applier | None = None,
) -> int:
    """Apply ``entries`` (captured oplog documents, in order) with ``applier`` (default:
    ``applyOps``); the number applied. OperationFailed naming the first entry refused."""
    apply = applier or ApplyOpsApplier(client)
    applied = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal applied, batch
        if not batch:
            return
        apply.apply(batch)
        applied += len(batch)
        if on_applied:
            on_applied(len(batch))
        batch = []

    for entry in entries:
        for op in rewrite(entry, renames, wanted):
            if op.get("op") == "c":  # commands alone, in order
                flush()
                batch.append(op)
                flush()
            else:
                batch.append(op)
                if len(batch) >= _APPLY_BATCH:
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
    for entry in entries:
        for op in rewrite(entry, renames, wanted):
            applier.check(op)
