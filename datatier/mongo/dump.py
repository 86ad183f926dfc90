"""MongoDB backup engine: raw BSON straight from the server into the shared object writer.

Documents are never decoded: ``find_raw_batches`` hands over wire bytes, which are written
as they are. Per collection the store gets ``DB/COLL.bson.NNNNN.zst`` data parts (each a
zstd frame ending on a document boundary, so ``cat parts | zstd -d`` is exactly
mongodump's ``COLL.bson``) and ``DB/COLL.metadata.json.zst`` (options, indexes, UUID, in
mongodump's extended-JSON format). Documents are read in ``_id`` order, a capped
collection's in its insertion order (:func:`read_order`). Consistency: on a standalone
server (FerretDB, the sandbox) each collection is read consistently on its own; the
manifest says so. On a replica set the oplog written during the dump is captured too
(``oplog.bson`` objects, as ``mongodump --oplog``), so that restore reaches one point in
time (:mod:`datatier.mongo.oplog`).
Restore leases (``datatier.restore_claims``, :mod:`datatier.mongo.claim`) are never dumped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote
from uuid import UUID

import pymongo
import pymongo.errors
from bson import json_util

from datatier.backup.engine import BackupEngine, BackupPlan, DumpResult, PlannedTable
from datatier.backup.manifest import TableRecord
from datatier.backup.objects import DEFAULT_CHUNK, ObjectWriter, OpenObject
from datatier.backup.policy import Policy
from datatier.config import LoadedConfig, MongoServer
from datatier.display import human_bytes
from datatier.errors import ConfigError, OperationFailed, UsageError
from datatier.log import get_logger
from datatier.mongo.bsonstream import count_documents
from datatier.mongo.claim import CLAIMS
from datatier.mongo.client import handshake, mongo_client, unreachable
from datatier.mongo.oplog import OPLOG_METHOD, capture, oplog_position
from datatier.storage.base import MiB

log = get_logger(__name__)
STANDALONE = {
    "method": "per collection (standalone server: no oplog to capture)",
    "point_in_time": False,
}


def _uuid_hex(value: Any) -> str | None:
    """A collection UUID (bson Binary subtype 4 or uuid.UUID) as 32 hex digits."""
    if isinstance(value, UUID):
        return value.hex
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return None


def read_order(spec: Mapping[str, Any]) -> list[tuple[str, int]] | None:
    """The order a collection is dumped in, and so (restore inserts in dump order) the
    copy's natural order: ``_id`` order, except a capped collection's own (insertion)
    order, which its readers, tailable cursors and eviction of the oldest all follow
    (mongodump does not sort capped collections either). Nothing else depends on the
    order: the manifest's checksum is of the bytes as dumped, in whichever order."""
    if (spec.get("options") or {}).get("capped"):
        return None
    return [("_id", 1)]


def collection_path(database: str, collection: str, leaf: str) -> str:
    return f"{quote(database, safe='')}/{quote(collection, safe='')}.{leaf}"


class MongoDumpEngine(BackupEngine):
    """Backs up the policy's databases from one configured deployment: ``server`` is its
    name (``[mongo.servers]``; None for ``[mongo]``), recorded in the manifest so that a
    restore goes back to it by default."""

    name = "mongo"

    @classmethod
    def for_policy(
        cls, loaded: LoadedConfig, policy: Policy, *, max_lag: float | None = None
    ) -> MongoDumpEngine:
        server = policy.spec.source.server
        try:
            settings = loaded.config.mongo.server(server)
        except UsageError as exc:
            raise ConfigError(
                str(policy.path), "source.server", exc.message, hint=exc.hint
            ) from None
        return cls(settings, policy, chunk_bytes=policy.spec.chunk_mb * MiB, server=server)

    def __init__(
        self,
        settings: MongoServer,
        policy: Policy,
        chunk_bytes: int = DEFAULT_CHUNK,
        server: str | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.chunk_bytes = chunk_bytes
        self.server = server

    def _wanted_databases(self, client: pymongo.MongoClient[Any]) -> list[str]:
        names = client.list_database_names()
        return sorted(n for n in names if self.policy.includes_database(n))

    def _scope(
        self, client: pymongo.MongoClient[Any]
    ) -> tuple[dict[str, dict[str, Any]], list[tuple[str, Mapping[str, Any]]]]:
        """What a backup holds: per wanted database its views (as the manifest records
        them), and the (database, collection spec) pairs to dump, in dump order."""
        databases: dict[str, dict[str, Any]] = {}
        collections: list[tuple[str, Mapping[str, Any]]] = []
        held: set[tuple[str, str]] = set()
        for db_name in self._wanted_databases(client):
            databases[db_name] = {"views": []}
            for spec in sorted(client[db_name].list_collections(), key=lambda s: str(s["name"])):
                name = str(spec["name"])
                if name.startswith("system.") or (db_name, name) == CLAIMS:
                    continue
                held.add((db_name, name))
                if spec.get("type") == "view":
                    databases[db_name]["views"].append(
                        json_util.dumps({"name": name, "options": spec.get("options", {})})
                    )
                elif self.policy.includes_table(db_name, name):
                    collections.append((db_name, spec))
            if db_name == CLAIMS[0] and not any(db == db_name for db, _ in held):
                del databases[db_name]  # only datatier's own leases: not the user's database
        problems = self.policy.listing_problems(held)
        if problems:  # a listed collection left out would leave the backup quietly short
            raise OperationFailed(
                f"policy {self.policy.name}: source.tables: {'; '.join(problems)}",
                hint="correct the list (a collection dropped on purpose: take it out)",
            )
        return databases, collections

    def plan(self) -> BackupPlan:
        """The collections in scope with the server's estimates (``collStats`` count and
        size), views, and whether an oplog slice makes it one point in time."""
        try:
            with mongo_client(self.settings) as client:
                info = client.server_info()
                hello = handshake(client)
                start = oplog_position(client)  # as the dump reads it (an empty oplog included)
                databases, collections = self._scope(client)
                tables = [_estimate(client[db], str(spec["name"])) for db, spec in collections]
        except pymongo.errors.ConnectionFailure as exc:
            raise unreachable(self.settings.uri, exc) from None
        except pymongo.errors.PyMongoError as exc:
            raise OperationFailed(f"MongoDB backup plan failed: {exc}") from None
        tables += [
            PlannedTable(db, str(json_util.loads(view)["name"]), "view")
            for db, slot in databases.items()
            for view in slot["views"]
        ]
        consistency = OPLOG_METHOD if start is not None else str(STANDALONE["method"])
        plan = BackupPlan(
            engine=self.name,
            policy=self.policy.name,
            source=self._source(info, hello),
            consistency=consistency,
            tables=tables,
            details={"databases": sorted(databases), "chunk_bytes": self.chunk_bytes},
        )
        totals = plan.estimates()
        plan.summary = [
            f"source {self.server or 'default'} ({self.settings.uri}, "
            f"version {info.get('version')})",
            f"{len(databases)} databases, {len(collections)} collections, "
            f"{len(tables) - len(collections)} views: ~{totals['rows']} documents, "
            f"~{human_bytes(totals['bytes'])} (server estimates)",
            f"consistency: {consistency}",
        ]
        return plan

    def _source(self, info: Mapping[str, Any], hello: Mapping[str, Any]) -> dict[str, Any]:
        """The source facts a plan shows and a manifest records (the same for both)."""
        return {
            "engine": "mongo",
            "uri": self.settings.uri,
            "server": self.server,
            "version": info.get("version"),
            "replica_set": hello.get("setName"),
        }

    def dump(self, writer: ObjectWriter) -> DumpResult:
        started = time.monotonic()
        try:
            with mongo_client(self.settings) as client:
                info = client.server_info()
                hello = handshake(client)
                start = oplog_position(client)  # None on a standalone server
                databases, collections = self._scope(client)
                tables = [self._collection(writer, client[db], spec) for db, spec in collections]
                consistency = (
                    capture(
                        client,
                        writer,
                        start,
                        databases,
                        self.chunk_bytes,
                        dumped={(db, str(spec["name"])) for db, spec in collections},
                        includes=self.policy.includes_table,
                    )
                    if start is not None
                    else STANDALONE
                )
        except pymongo.errors.ConnectionFailure as exc:
            raise unreachable(self.settings.uri, exc) from None
        except pymongo.errors.PyMongoError as exc:
            raise OperationFailed(f"MongoDB dump failed: {exc}") from None
        log.info(
            "backup.dumped",
            source=self.settings.uri,
            collections=len(tables),
            documents=sum(t.rows for t in tables),
            seconds=round(time.monotonic() - started, 3),
        )
        return DumpResult(
            source=self._source(info, hello),
            consistency=consistency,
            tables=tables,
            databases=databases,
            options={"format": "mongodump layout: DB/COLL.bson (zstd parts) + metadata.json"},
        )

    def _collection(self, writer: ObjectWriter, db: Any, spec: Mapping[str, Any]) -> TableRecord:
        name = str(spec["name"])
        coll = db[name]
        indexes = list(coll.list_indexes())
        uuid = spec.get("info", {}).get("uuid")
        metadata = {
            "options": spec.get("options", {}),
            "indexes": indexes,
            "uuid": _uuid_hex(uuid),
            "collectionName": name,
            "type": "collection",
        }
        meta = writer.open(
            collection_path(db.name, name, "metadata.json.zst"), "metadata", db.name, name
        )
        meta.write(
            json_util.dumps(metadata, json_options=json_util.CANONICAL_JSON_OPTIONS).encode()
        )
        writer.close(meta)
        digest, docs, size, part = hashlib.sha256(), 0, 0, 0
        current: OpenObject | None = None
        for batch in coll.find_raw_batches(sort=read_order(spec)):
            raw = bytes(batch)
            if current is None:
                part += 1
                current = writer.open(
                    collection_path(db.name, name, f"bson.{part:05d}.zst"),
                    "collection",
                    db.name,
                    name,
                    part,
                )
            n = count_documents(raw)
            current.write(raw, n)
            digest.update(raw)
            docs, size = docs + n, size + len(raw)
            if current.raw_size >= self.chunk_bytes:
                writer.close(current)
                current = None
        if current is not None:
            writer.close(current)
        return TableRecord(db.name, name, docs, digest.hexdigest(), size)


def _estimate(db: Any, name: str) -> PlannedTable:
    """A collection with the server's own count and data size (``collStats``); None where
    the server does not say."""
    try:
        stats = db.command("collStats", name)
    except pymongo.errors.OperationFailure:
        stats = {}
    count, size = stats.get("count"), stats.get("size")
    return PlannedTable(
        db.name,
        name,
        "collection",
        rows=int(count) if isinstance(count, int | float) else None,
        bytes=int(size) if isinstance(size, int | float) else None,
    )
