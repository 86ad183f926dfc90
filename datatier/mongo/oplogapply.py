"""How a captured oplog slice is applied to the restore target: one class per way.

- :class:`ApplyOpsApplier` sends the entries as they are with ``applyOps`` (what
  ``mongorestore --oplogReplay`` does). Every real ``mongod`` has it; it applies every kind
  of entry, including the delta-format updates (``$v: 2``) of MongoDB 5.0 and later.
- :class:`CrudApplier` turns each entry into the driver operation with the same effect
  (insert and replacement as an upserting replace, operator updates as an upserting update,
  delete, and the collection commands drop, create, createIndexes and dropIndexes). A
  document with a top-level ``$``-prefixed field (legal since MongoDB 5.0) cannot be a
  replacement, so its insert or replacement is a delete of the ``_id`` then an insert. It is
  used only where the server has no ``applyOps`` command (mongo-java-server; some
  MongoDB-compatible services). Entries it cannot express (delta-format updates, other
  commands) are found by :meth:`Applier.check` before anything is restored.

:func:`applier_for` picks one from what the server answers; "no such command" is the only
answer taken to mean that ``applyOps`` is missing.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import pymongo
import pymongo.errors

from datatier.errors import OperationFailed
from datatier.mongo.client import COMMAND_NOT_FOUND

CRUD_COMMANDS = frozenset({"drop", "create", "createIndexes", "dropIndexes", "deleteIndexes"})


class Applier(abc.ABC):
    """Applies batches of rewritten oplog entries (``op``, ``ns``, ``o``, ``o2``), in order.

    Contract: :meth:`apply` applies every entry of the batch or raises (OperationFailed
    naming what the server refused); a command entry always comes in a batch of its own.
    :meth:`check` raises OperationFailed for an entry this way cannot apply.
    """

    name: ClassVar[str]
    # whether check() can refuse anything, so that the slice is worth reading beforehand
    refuses: ClassVar[bool] = False

    def __init__(self, client: Any) -> None:
        self.client = client

    def check(self, entry: Mapping[str, Any]) -> None:  # noqa: B027 - most ways apply anything
        """Raise OperationFailed if ``entry`` cannot be applied this way."""

    @abc.abstractmethod
    def apply(self, batch: list[dict[str, Any]]) -> None:
        """Apply ``batch`` in order."""


class ApplyOpsApplier(Applier):
    """The server's own ``applyOps`` command."""

    name = "applyOps"

    def apply(self, batch: list[dict[str, Any]]) -> None:
        result = self.client.admin.command("applyOps", batch)
        if not result.get("ok"):
            raise OperationFailed(f"oplog replay refused: {result}")


def _is_delta(update: Mapping[str, Any]) -> bool:
    return update.get("$v") == 2 or "diff" in update


def _is_operator_update(body: Mapping[str, Any]) -> bool:
    """Whether a ``u`` entry's ``o`` is an update (``$set``...) rather than the whole new
    document, which always holds its ``_id`` (and may hold ``$`` fields of its own)."""
    return "_id" not in body and any(str(key).startswith("$") for key in body)


def _describe(entry: Mapping[str, Any]) -> str:
    """An entry for a message: its op and the ``_id`` it acts on."""
    target = entry.get("o2") if entry.get("op") == "u" else entry.get("o")
    return f"op {entry.get('op')!r} on _id {dict(target or {}).get('_id')!r}"


class CrudApplier(Applier):
    """Driver operations with the effect of each entry (see module docstring)."""

    name = "crud"
    refuses = True

    def check(self, entry: Mapping[str, Any]) -> None:
        op, body = entry.get("op"), entry.get("o") or {}
        if op == "u" and _is_delta(body):
            raise OperationFailed(
                f"oplog entry on {entry.get('ns')}: a delta-format update ($v: 2, MongoDB 5.0+) "
                "can only be replayed with applyOps, which the target server lacks"
            )
        if op == "c":
            command = next(iter(body), None)
            if command not in CRUD_COMMANDS:
                raise OperationFailed(
                    f"oplog entry on {entry.get('ns')}: command {command!r} can only be "
                    "replayed with applyOps, which the target server lacks"
                )
        elif op not in ("i", "u", "d"):
            raise OperationFailed(f"oplog entry on {entry.get('ns')}: unknown op {op!r}")

    def apply(self, batch: list[dict[str, Any]]) -> None:
        run: list[Any] = []
        run_ns: str | None = None
        for entry in batch:
            self.check(entry)
            if entry["op"] == "c":
                self._flush(run_ns, run)
                run, run_ns = [], None
                self._command(entry)
                continue
            if entry["ns"] != run_ns:
                self._flush(run_ns, run)
                run, run_ns = [], entry["ns"]
            run.append(entry)
        self._flush(run_ns, run)

    @staticmethod
    def _write(entry: Mapping[str, Any]) -> list[Any]:
        """The driver operations with the effect of ``entry``, in order."""
        op, body = entry["op"], entry["o"]
        if op == "d":
            return [pymongo.DeleteOne(body)]
        if op == "u" and _is_operator_update(body):
            update = {k: v for k, v in body.items() if k != "$v"}
            return [pymongo.UpdateOne(entry["o2"], update, upsert=True)]
        target = {"_id": body["_id"]} if op == "i" else entry["o2"]
        if any(str(key).startswith("$") for key in body):  # not expressible as a replacement
            return [pymongo.DeleteOne(target), pymongo.InsertOne(body)]
        return [pymongo.ReplaceOne(target, body, upsert=True)]

    def _flush(self, ns: str | None, run: list[Mapping[str, Any]]) -> None:
        """Apply ``run`` (entries on ``ns``, in order) as one ordered bulk write."""
        if not run or ns is None:
            return
        db, _, coll = ns.partition(".")
        writes = [write for entry in run for write in self._write(entry)]
        try:
            self.client[db][coll].bulk_write(writes, ordered=True, bypass_document_validation=True)
        except pymongo.errors.BulkWriteError as exc:
            first = (exc.details.get("writeErrors") or [{}])[0]
            raise OperationFailed(
                f"oplog replay into {ns} refused: {first.get('errmsg', exc)}"
            ) from None
        except KeyError as exc:  # pymongo reading a write error that lacks a field it needs
            raise OperationFailed(
                f"oplog replay into {ns} refused one of {len(run)} entries (the first: "
                f"{_describe(run[0])}); the server's error reply has no {exc}, so the driver "
                "could not say which or why"
            ) from None

    def _command(self, entry: Mapping[str, Any]) -> None:
        db = self.client[entry["ns"].partition(".")[0]]
        body = dict(entry["o"])
        command = next(iter(body))
        name = str(body.pop(command))
        if command == "drop":
            db.drop_collection(name)
        elif command == "create":
            if name not in db.list_collection_names():
                db.create_collection(name, **body)
        elif command == "createIndexes":
            keys = list(dict(body.pop("key")).items())
            body.pop("v", None)
            db[name].create_index(keys, **body)
        else:  # dropIndexes / deleteIndexes
            index = body.get("index", "*")
            if index == "*":
                db[name].drop_indexes()
            else:
                db[name].drop_index(index)


def applier_for(client: Any) -> Applier:
    """``applyOps`` unless the server says it has no such command (probed with an empty
    list, which applies nothing)."""
    try:
        client.admin.command("applyOps", [])
    except pymongo.errors.OperationFailure as exc:
        if exc.code == COMMAND_NOT_FOUND:
            return CrudApplier(client)
    return ApplyOpsApplier(client)
