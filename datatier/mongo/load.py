"""Restore a MongoDB backup: collections in parallel, raw BSON batches, indexes after data.

Same safety contract as the MySQL restore (see :mod:`datatier.backup.restore`): archived
objects are brought back first (or exit 5), non-empty target collections are refused
unless ``force`` (``drop`` replaces them), every object is verified (and the oplog slice
checked replayable) before anything is written or dropped, and document counts are checked
afterwards (for a backup of a replica set, the captured oplog slice is replayed instead, so
counts reach the end of the slice). Documents are inserted as ``RawBSONDocument`` slices of
the stored bytes: never decoded and re-encoded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymongo.errors
from bson import json_util
from bson.raw_bson import RawBSONDocument

from datatier.backup.bringback import bring_back
from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.backup.restore import (
    RestoreOptions,
    RestoreReport,
    check_accounted,
    decompressed,
    select_objects,
    verify_objects,
)
from datatier.config import MongoServer
from datatier.errors import OperationFailed, ServiceUnavailable, UsageError
from datatier.log import get_logger
from datatier.mongo.bsonstream import iter_documents, raw_documents
from datatier.mongo.client import mongo_client
from datatier.mongo.oplog import check_replayable, replay
from datatier.mongo.oplogapply import applier_for
from datatier.storage.base import ObjectStore

log = get_logger(__name__)
# Documents per insert_many, by size: a worker holds one batch plus the message pymongo
# encodes from it, so restore memory is about jobs x 2 x BATCH_BYTES, whatever the data.
BATCH_BYTES = 4 << 20
INDEX_OPTIONS = (
    "unique", "sparse", "partialFilterExpression", "expireAfterSeconds", "collation", "hidden",
    "weights", "default_language", "language_override", "textIndexVersion",
    "2dsphereIndexVersion", "bits", "min", "max", "wildcardProjection",
)  # fmt: skip


def batches(
    pieces: Iterable[bytes], name: str = "BSON stream", limit: int = BATCH_BYTES
) -> Iterator[list[RawBSONDocument]]:
    """Batches of about ``limit`` bytes of the documents in a stream of concatenated BSON
    cut into arbitrary pieces (see :func:`~datatier.mongo.bsonstream.iter_documents`)."""
    batch: list[RawBSONDocument] = []
    size = 0
    for doc in iter_documents(pieces, name):
        batch.append(RawBSONDocument(doc))
        size += len(doc)
        if size >= limit:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def restore_mongo(
    manifest: Manifest,
    store: ObjectStore,
    settings: MongoServer,
    options: RestoreOptions,
    on_loaded: Callable[[ObjectRecord], None] | None = None,
    on_wait: Callable[[int, int], None] | None = None,
) -> RestoreReport:
    """Restore a Mongo backup into the deployment ``settings`` (see module docstring)."""
    started = time.monotonic()
    unknown = sorted(set(options.renames) - set(manifest.databases))
    if unknown:
        raise UsageError(f"--rename names databases not in the backup: {', '.join(unknown)}")
    objects = select_objects(manifest, options.tables, options.databases)
    check_accounted(manifest, objects)
    # the oplog slice belongs to every selection: it is filtered per collection at replay
    objects += [o for o in manifest.objects if o.kind == "oplog" and o not in objects]
    collections = sorted({(o.database, o.table) for o in objects if o.database and o.table})
    collections = [(db, name) for db, name in collections if db and name]
    targets = {db: options.renames.get(db, db) for db, _ in collections}
    oplog = [o for o in objects if o.kind == "oplog"]
    try:
        with mongo_client(settings) as client:
            to_drop = _busy_targets(client, collections, targets, options)  # refuses first
            archive = bring_back(store, objects, options, on_wait)  # after every refusal
            report = RestoreReport.plan(
                manifest,
                objects,
                settings.uri,
                targets,
                archive,
                len(collections),
                options.dry_run,
            )
            if options.dry_run:
                return report
            verify_objects(store, objects, options.jobs)
            applier = applier_for(client) if oplog else None
            if applier is not None and applier.refuses:
                check_replayable(applier, _entries(store, oplog), targets, set(collections))
            for db, name in to_drop:  # only now that the backup is known to be restorable
                client[db].drop_collection(name)

            def one(key: tuple[str, str]) -> None:
                db, name = key
                parts = sorted(
                    (o for o in objects if (o.database, o.table) == key), key=lambda o: o.part
                )
                _restore_collection(client[targets[db]], name, parts, store, on_loaded)

            with ThreadPoolExecutor(max_workers=options.jobs) as pool:
                for future in [pool.submit(one, key) for key in collections]:
                    future.result()
            _create_views(client, manifest, targets)
            if applier is not None:
                applied = replay(
                    client, _entries(store, oplog), targets, set(collections), applier=applier
                )
                log.info("restore.oplog_replayed", entries=applied, method=applier.name)
            else:
                _check_counts(client, manifest, collections, targets)
    except pymongo.errors.ConnectionFailure as exc:
        raise ServiceUnavailable(f"MongoDB at {settings.uri} went away: {exc}") from None
    except pymongo.errors.PyMongoError as exc:
        raise OperationFailed(f"Mongo restore failed: {exc}") from None
    report.seconds = round(time.monotonic() - started, 3)
    log.info("restore.completed", backup_id=manifest.backup_id, collections=len(collections))
    return report


def _busy_targets(
    client: Any,
    collections: list[tuple[str, str]],
    targets: dict[str, str],
    options: RestoreOptions,
) -> list[tuple[str, str]]:
    """The non-empty target collections (``--drop`` will replace them); UsageError naming
    them unless ``--drop`` or ``--force``. Changes nothing."""
    busy = []
    for db, name in collections:
        target = client[targets[db]]
        if name in target.list_collection_names() and target[name].estimated_document_count():
            busy.append((targets[db], name))
    if busy and not (options.drop or options.force):
        raise UsageError(
            f"target collections are not empty: {', '.join(f'{d}.{n}' for d, n in busy)}",
            hint="--rename SRC=DST, --drop to replace them, or --force to insert anyway",
        )
    return busy if options.drop else []


def _restore_collection(
    db: Any,
    name: str,
    parts: list[ObjectRecord],
    store: ObjectStore,
    on_loaded: Callable[[ObjectRecord], None] | None,
) -> None:
    meta_obj = next(o for o in parts if o.kind == "metadata")
    metadata = json_util.loads(b"".join(decompressed(store, meta_obj)))
    if name not in db.list_collection_names():
        db.create_collection(name, **dict(metadata.get("options") or {}))
    coll = db[name]
    for part in (o for o in parts if o.kind == "collection"):
        for batch in batches(decompressed(store, part), f"{store.url}/{part.key}"):
            coll.insert_many(batch, ordered=True, bypass_document_validation=True)
        if on_loaded:
            on_loaded(part)
    for index in metadata.get("indexes", []):
        if index.get("name") == "_id_":
            continue
        extra = {k: index[k] for k in INDEX_OPTIONS if k in index}
        coll.create_index(list(index["key"].items()), name=index["name"], **extra)


def _entries(store: ObjectStore, parts: list[ObjectRecord]) -> Iterator[RawBSONDocument]:
    """The captured oplog slice (verified with the other objects), in order, as raw
    documents: the values of each entry are re-sent exactly as captured. It is replayed
    after the data, so document counts then reflect the end of the slice, not the dump, and
    are not compared with the manifest."""
    for part in sorted(parts, key=lambda o: o.part):
        yield from raw_documents(decompressed(store, part), f"{store.url}/{part.key}")


def _create_views(client: Any, manifest: Manifest, targets: dict[str, str]) -> None:
    for source, target in targets.items():
        for text in manifest.databases.get(source, {}).get("views", []):
            view = json_util.loads(text)
            db = client[target]
            if view["name"] not in db.list_collection_names():
                db.command("create", view["name"], **view["options"])


def _check_counts(
    client: Any,
    manifest: Manifest,
    collections: list[tuple[str, str]],
    targets: dict[str, str],
) -> None:
    expected = {(t.database, t.name): t.rows for t in manifest.tables}
    for db, name in collections:
        found = client[targets[db]][name].count_documents({})
        if found != expected.get((db, name), found):
            raise OperationFailed(
                f"{targets[db]}.{name}: {found} documents after restore, "
                f"the backup has {expected[(db, name)]}"
            )
