"""Multi-document transactions in the oplog slice: what capture keeps, what replay applies.

The format (MongoDB 4.0+ replica sets; mongo-tools ``common/txn``): a committed transaction
is an ``op: "c"`` entry on ``admin.$cmd`` whose ``o.applyOps`` lists its operations (each
with its own ``ns``), with ``lsid``, ``txnNumber`` and ``prevOpTime``. A transaction too big
for one entry is a chain linked by ``prevOpTime``: every entry but the last has
``o.partialTxn: true``; the last (no ``partialTxn``) commits it. A prepared transaction
(sharded clusters) has ``o.prepare: true`` on its last ``applyOps`` entry and commits or
aborts with a later ``commitTransaction`` / ``abortTransaction`` entry on ``admin.$cmd``.
Other ``admin.$cmd`` ``applyOps`` entries (no ``lsid``, or with ``multiOpType``: MongoDB
8.0 batches writes so) are single entries that apply on their own.

Contract:
- capture (:class:`SliceFilter`) keeps an ``admin.$cmd`` entry's ``applyOps`` operations of
  the backed-up databases only (the entry re-encoded around the untouched raw operations);
  drops a lone transaction with none of them; keeps every entry of a chain (possibly with
  an empty ``applyOps``) so replay can tell whether it committed; keeps the commit/abort
  entry of a prepared transaction it kept. A committing entry whose chain began at or
  before the slice's start is refused (OperationFailed): its first part is not in the
  slice (``mongodump`` starts its slice at the oldest open transaction instead). A
  renamed collection in the backed-up databases is refused too (as ``mongodump --oplog``
  does): replay cannot follow a rename.
- replay (:func:`committed`) applies a transaction only once its committing entry is read:
  all of it or nothing. Partial/prepared entries are held (memory: at most the open
  transactions' entries) and dropped if the slice ends first or the transaction aborts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import bson
from bson.timestamp import Timestamp

from datatier.errors import OperationFailed

TXN_NS = "admin.$cmd"
_NO_TIME = Timestamp(0, 0)


def _key(entry: Mapping[str, Any]) -> tuple[bytes, int] | None:
    """A transaction's identity (session id, transaction number); None outside one. An
    entry with ``multiOpType`` (MongoDB 8.0's batched retryable writes: ``applyOps`` whose
    operations apply separately) is no transaction: its ``prevOpTime`` links retryable
    statements, not parts of one commit."""
    lsid, number = entry.get("lsid"), entry.get("txnNumber")
    if lsid is None or number is None or entry.get("multiOpType") is not None:
        return None
    return bson.encode(lsid), int(number)


def _prev_ts(entry: Mapping[str, Any]) -> Timestamp:
    prev = entry.get("prevOpTime") or {}
    ts = prev.get("ts", _NO_TIME)
    return ts if isinstance(ts, Timestamp) else _NO_TIME


def _held(o: Mapping[str, Any]) -> bool:
    """An ``applyOps`` entry that does not commit by itself."""
    return bool(o.get("partialTxn") or o.get("prepare"))


def _database(ns: object) -> str:
    return str(ns).partition(".")[0]


class SliceFilter:
    """Capture's choice per oplog entry (see module docstring), for the slice after
    ``start`` of ``databases``; one instance per slice (it remembers prepared
    transactions)."""

    def __init__(self, databases: Iterable[str], start: Timestamp) -> None:
        self.databases = set(databases)
        self.start = start
        self.prepared: set[tuple[bytes, int]] = set()

    def select(self, entry: Mapping[str, Any], raw: bytes) -> bytes | None:
        """The bytes to write for ``entry`` (``raw`` when unchanged), None to leave it out."""
        if entry.get("ns") != TXN_NS:
            o = entry.get("o") or {} if entry.get("op") == "c" else {}
            if "renameCollection" in o:
                raise OperationFailed(
                    f"collection {o['renameCollection']} was renamed to {o.get('to')} during "
                    "the dump: the oplog slice cannot be replayed across a rename",
                    hint="run the backup again when no collection is being renamed",
                )
            return raw
        o, key = entry.get("o") or {}, _key(entry)
        if "applyOps" in o:
            return self._transaction(entry, o, key, raw)
        if key is not None and ("commitTransaction" in o or "abortTransaction" in o):
            if key in self.prepared:
                return raw
            self._refuse_cut_head(entry)
        return None

    def _transaction(
        self, entry: Mapping[str, Any], o: Mapping[str, Any], key: Any, raw: bytes
    ) -> bytes | None:
        ops = list(o["applyOps"])
        kept = [op for op in ops if _database(op.get("ns")) in self.databases]
        chained = key is not None and (_held(o) or _prev_ts(entry) != _NO_TIME)
        if not kept and not chained:
            return None
        if key is not None:
            self._refuse_cut_head(entry)
        if o.get("prepare") and key is not None:
            self.prepared.add(key)
        if len(kept) == len(ops):
            return raw
        body = {name: value for name, value in o.items() if name != "applyOps"}
        fields = {name: value for name, value in entry.items() if name != "o"}
        return bson.encode({**fields, "o": {"applyOps": kept, **body}})

    def _refuse_cut_head(self, entry: Mapping[str, Any]) -> None:
        prev = _prev_ts(entry)
        if prev != _NO_TIME and prev <= self.start:
            raise OperationFailed(
                f"a transaction begun before the dump (oplog entry {prev}) committed during "
                "it: its first part is not in the oplog slice",
                hint="run the backup again",
            )


class Commits:
    """:func:`committed` fed one entry at a time (capture uses it to list only the
    collections that committed transactions create)."""

    def __init__(self) -> None:
        self.pending: dict[tuple[bytes, int], list[Mapping[str, Any]]] = {}

    def feed(self, entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The entries to apply now that ``entry`` (the next of the slice) is read."""
        o = entry.get("o") or {}
        key = _key(entry) if entry.get("op") == "c" else None
        if key is None:
            return [entry]
        if "applyOps" in o and _held(o):
            self.pending.setdefault(key, []).append(entry)
            return []
        if "applyOps" in o:
            return [*self.pending.pop(key, []), entry]
        if "commitTransaction" in o:
            return self.pending.pop(key, [])
        if "abortTransaction" in o:
            self.pending.pop(key, None)
            return []
        return [entry]


def committed(entries: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """``entries`` (a captured slice, in order) with each transaction chain released whole
    where it commits and never otherwise: partial and prepared entries are held until the
    entry that commits them; an abort, or the end of the slice, drops them."""
    commits = Commits()
    for entry in entries:
        yield from commits.feed(entry)
