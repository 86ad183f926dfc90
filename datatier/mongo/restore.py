"""The restore engine of MongoDB backups: collections in parallel, raw BSON batches, the
captured oplog slice replayed, secondary indexes last.

* ``plan``: the selected collections (the oplog slice belongs to every selection: it is
  filtered per collection at replay); IntegrityFailure when the manifest does not account
  for their documents (a selected collection record no object holds included); the target
  deployment (``--target NAME`` of ``[mongo.servers]``, else the one the backup came from,
  else ``[mongo]``).
* ``claim_target``: one restore at a time into each target database: a renewed lease
  per database on the target (:mod:`datatier.mongo.claim`), checked on the server before
  each write (drop, collection, insert batch, view, oplog batch, index): a restore whose
  lease another took over stops before its next write.
* ``check_target``: non-empty target collections are refused unless ``force``, before any
  archive-restore request; with ``drop`` every selected collection the target holds (empty
  or not) is to be replaced, as ``mongorestore --drop`` does.
* ``check_staged``: an existing target collection that is not replaced is refused (exit 2,
  nothing changed; ``force`` does not waive it) when its options differ from the backup's
  or it holds an index the backup's collection does not have at the end of the backup
  (:func:`~datatier.mongo.indexes.conflicts`): restoring into it would not give the backup.
* ``apply``: the slice is first checked replayable on this server; only then are the
  collections ``--drop`` replaces dropped; documents are inserted as ``RawBSONDocument``
  slices of the verified bytes, never decoded and re-encoded; views; the slice replayed
  without its index commands; then every collection's final secondary indexes are built
  (:mod:`datatier.mongo.indexes`), so that no unique index sees the replay's intermediate
  states. An index the restored documents break fails the restore (exit 1) naming the
  collection and index once every other index is built: the documents stay restored.
* ``post_check``: document counts equal the manifest's (not after a replay: counts then
  reach the end of the slice, not the dump).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import pymongo.errors
from bson import json_util
from bson.raw_bson import RawBSONDocument

from datatier.backup.catalog import Catalog
from datatier.backup.completeness import check_accounted
from datatier.backup.engine import RestoreEngine, RestoreOptions, RestorePlan
from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.backup.names import held_tables, show
from datatier.config import LoadedConfig, MongoServer
from datatier.errors import IntegrityFailure, OperationFailed, UsageError
from datatier.log import get_logger
from datatier.mongo.bsonstream import iter_documents, raw_documents
from datatier.mongo.claim import Leases, claim_databases
from datatier.mongo.client import mongo_client, unreachable
from datatier.mongo.indexes import (
    Indexes,
    Key,
    build,
    conflicts,
    final_indexes,
    secondary,
    without_index_commands,
)
from datatier.mongo.oplog import CREATED, check_replayable, replay
from datatier.mongo.oplogapply import Applier, applier_for
from datatier.pipeline.staging import Staged

log = get_logger(__name__)
# Documents per insert_many, by size: a worker holds one batch plus the message pymongo
# encodes from it, so restore memory is about jobs x 2 x BATCH_BYTES, whatever the data.
BATCH_BYTES = 4 << 20
COLLECTION_KINDS = ("metadata", "collection")
Writing = Callable[[str], contextlib.AbstractContextManager[Any]]
"""Guards one write, named by its argument (:meth:`datatier.mongo.claim.Leases.writing`)."""


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


def mongo_target(loaded: LoadedConfig, manifest: Manifest, target: str | None) -> MongoServer:
    """``NAME`` of ``[mongo.servers]`` (``default``: ``[mongo]``); without one, the deployment
    the backup was taken from (as its manifest names it), else ``[mongo]``."""
    mongo = loaded.config.mongo
    if target:
        return mongo.server(target)
    source = manifest.source.get("server")
    if source is not None and source not in mongo.servers:
        raise UsageError(
            f"backup {manifest.backup_id} was taken from MongoDB server {source!r}, "
            "which is not in [mongo.servers]",
            hint="name the target with --target NAME (default: [mongo])",
        )
    return mongo.server(source)


def select_collections(manifest: Manifest, options: RestoreOptions) -> list[ObjectRecord]:
    """The selected collections' objects plus the whole oplog slice; UsageError naming
    what the backup does not hold."""
    objects = list(manifest.objects)
    if options.databases:
        missing = sorted(set(options.databases) - set(manifest.databases))
        if missing:
            raise UsageError(f"not in backup {manifest.backup_id}: {', '.join(missing)}")
        objects = [o for o in objects if o.database in options.databases]
    if options.tables:
        known = held_tables(manifest)  # a recorded collection no object holds: plan refuses
        missing = [show(db, t) for db, t in options.tables if (db, t) not in known]
        if missing:
            raise UsageError(f"not in backup {manifest.backup_id}: {', '.join(missing)}")
        objects = [o for o in objects if (o.database, o.table) in options.tables]
    objects = [o for o in objects if o.kind in COLLECTION_KINDS]
    return objects + [o for o in manifest.objects if o.kind == "oplog"]


def created_during_dump(manifest: Manifest, options: RestoreOptions) -> list[tuple[str, str]]:
    """The collections the backup's oplog slice creates (its manifest lists them) in the
    databases this restore selects; none with ``--tables`` (a restore of named collections).
    IntegrityFailure when the manifest's list is not one of [database, collection] pairs."""
    listed = manifest.consistency.get(CREATED, [])
    if not isinstance(listed, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(n, str) and n for n in p)
        for p in listed
    ):
        raise IntegrityFailure(
            f"backup {manifest.backup_id}: the manifest's consistency.{CREATED} is not a list "
            "of [database, collection] pairs"
        )
    if options.tables:
        return []
    return [
        (db, name)
        for db, name in listed
        if db in manifest.databases and (not options.databases or db in options.databases)
    ]


class MongoRestore(RestoreEngine):
    """Restores a ``mongo`` backup into a MongoDB deployment (see module docstring)."""

    name = "mongo"

    @classmethod
    def for_manifest(
        cls, loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreOptions
    ) -> Self:
        refused = [
            flag
            for flag, given in (
                ("--grants", options.grants),
                ("--no-binlog", not options.binlog),
                ("--allow-replica-target", options.allow_replica_target),
                ("--datadir", bool(options.datadir)),
                ("--owner", bool(options.owner)),
                ("--external-dir", bool(options.external_dir)),
            )
            if given
        ]
        if refused:
            raise UsageError(f"{', '.join(refused)}: not for Mongo backups")
        return cls(manifest, options, mongo_target(loaded, manifest, options.target))

    def __init__(self, manifest: Manifest, options: RestoreOptions, server: MongoServer) -> None:
        self.manifest = manifest
        self.options = options
        self.server = server
        self.collections: list[tuple[str, str]] = []
        self.targets: dict[str, str] = {}
        self.created: list[tuple[str, str]] = []
        self.to_drop: list[tuple[str, str]] = []
        self.options_of: dict[Key, dict[str, Any]] = {}  # each dumped collection's options
        self.indexes: dict[Key, Indexes] = {}  # each restored collection's final indexes
        self.defined = False  # whether the two above were read from the staged objects
        self.replayed = False
        self.leases: Leases | None = None

    @property
    def replayed_into(self) -> list[tuple[str, str]]:
        """The collections restored: those dumped, and those the oplog slice created."""
        return [*self.collections, *self.created]

    def plan(self) -> RestorePlan:
        manifest, options = self.manifest, self.options
        unknown = sorted(set(options.renames) - set(manifest.databases))
        if unknown:
            raise UsageError(f"--rename names databases not in the backup: {', '.join(unknown)}")
        objects = select_collections(manifest, options)
        check_accounted(
            manifest,
            objects,
            options,
            others="`--tables` or `--databases` can restore the other collections",
        )
        pairs = sorted({(o.database, o.table) for o in objects if o.database and o.table})
        self.collections = [(db, name) for db, name in pairs if db and name]
        self.created = created_during_dump(manifest, options)
        self.targets = options.targets(db for db, _ in [*self.collections, *self.created])
        for target in sorted(set(self.targets.values()) - set(self.targets)):
            problem = bad_database_name(target)
            if problem:
                raise UsageError(
                    f"--rename: {target!r} cannot be a MongoDB database: {problem}",
                    hint="pick another name (the target is created by the restore)",
                )
        names = ", ".join(f"{s}->{d}" if s != d else s for s, d in self.targets.items())
        documents = sum(o.rows for o in objects if o.kind == "collection")
        summary = [f"{names}; {len(self.collections)} collections, {documents} documents"]
        if self.created:
            summary.append(
                f"{len(self.created)} collection(s) created during the dump, from the oplog: "
                + ", ".join(show(db, name) for db, name in self.created)
            )
        return RestorePlan(
            manifest=manifest,
            objects=objects,
            target=self.server.uri,
            details={
                "databases": self.targets,
                "tables": len(self.collections),
                "rows": documents,
                "created_during_dump": [list(pair) for pair in self.created],
            },
            summary=summary,
        )

    @contextlib.contextmanager
    def claim_target(self, plan: RestorePlan) -> Iterator[None]:
        """Every target database's lease (:mod:`datatier.mongo.claim`), kept for ``apply``
        to check before each write."""
        with claim_databases(self.server, self.targets.values()) as leases:
            self.leases = leases
            yield

    def writing(self, what: str) -> contextlib.AbstractContextManager[Any]:
        """The lease check around one write (none without a claim)."""
        return self.leases.writing(what) if self.leases else contextlib.nullcontext()

    def check_target(self, plan: RestorePlan) -> None:
        """Non-empty target collections: refused unless --drop or --force; with --drop every
        existing one is noted for apply to replace."""
        with self._client() as client:
            existing, busy = [], []
            for db, name in self.replayed_into:
                target = client[self.targets[db]]
                if name in target.list_collection_names():
                    existing.append((self.targets[db], name))
                    if target[name].estimated_document_count():
                        busy.append((self.targets[db], name))
        if busy and not (self.options.drop or self.options.force):
            raise UsageError(
                f"target collections are not empty: {', '.join(f'{d}.{n}' for d, n in busy)}",
                hint="--rename SRC=DST, --drop to replace them, or --force to insert anyway",
            )
        self.to_drop = existing if self.options.drop else []

    def check_staged(self, plan: RestorePlan, staged: Staged) -> None:
        """The collections' final indexes and options, from the staged metadata and slice;
        an existing target collection that is kept but cannot become the backup's (other
        options, an index the backup lacks or defines otherwise): refused."""
        self._definitions(plan, staged)
        replaced = set(self.to_drop)
        found = []
        with self._client() as client:
            for db, name in self.replayed_into:
                target = client[self.targets[db]]
                if (self.targets[db], name) in replaced:
                    continue
                info = next(iter(target.list_collections(filter={"name": name})), None)
                if info is None:
                    continue
                found += [
                    f"{self.targets[db]}.{name}: {problem}"
                    for problem in conflicts(
                        self.options_of.get((db, name)),
                        info.get("options") or {},
                        self.indexes.get((db, name), {}),
                        secondary(target[name].list_indexes()),
                    )
                ]
        if found:
            raise UsageError(
                "target collections differ from the backup's: " + "; ".join(found),
                hint="--drop to replace them, or --rename SRC=DST",
            )

    def _definitions(self, plan: RestorePlan, staged: Staged) -> None:
        """Fill ``options_of`` and ``indexes`` from the staged metadata and oplog slice."""
        dumped: dict[Key, Indexes] = {}
        for obj in plan.objects:
            if obj.kind == "metadata" and obj.database and obj.table:
                metadata = json_util.loads(b"".join(staged.decompressed(obj.key)))
                self.options_of[(obj.database, obj.table)] = dict(metadata.get("options") or {})
                dumped[(obj.database, obj.table)] = secondary(metadata.get("indexes", []))
        oplog = [o for o in plan.objects if o.kind == "oplog"]
        self.indexes = final_indexes(dumped, self.created, _entries(staged, oplog))
        self.defined = True

    def apply(
        self, plan: RestorePlan, staged: Staged, on_loaded: Callable[[ObjectRecord], None] | None
    ) -> None:
        oplog = [o for o in plan.objects if o.kind == "oplog"]
        collections, targets = self.collections, self.targets
        if not self.defined:  # (check_staged reads them; an engine driven without it)
            self._definitions(plan, staged)

        def slice_() -> Iterator[Any]:
            return without_index_commands(_entries(staged, oplog))

        with self._client() as client:
            applier = applier_for(client) if oplog else None
            if applier is not None and applier.refuses:
                check_replayable(applier, slice_(), targets, set(self.replayed_into))
            for db, name in self.to_drop:  # only now that the backup is known to be restorable
                with self.writing(f"drop of {db}.{name}"):
                    client[db].drop_collection(name)

            def one(key: tuple[str, str]) -> None:
                db, name = key
                parts = sorted(
                    (o for o in plan.objects if (o.database, o.table) == key), key=lambda o: o.part
                )
                options = self.options_of.get(key, {})
                _restore_collection(
                    client[targets[db]], name, options, parts, staged, on_loaded, self.writing
                )

            with ThreadPoolExecutor(max_workers=self.options.jobs) as pool:
                for future in [pool.submit(one, key) for key in collections]:
                    future.result()
            _create_views(client, self.manifest, targets, self.writing)
            if applier is not None:
                wanted = set(self.replayed_into)
                fenced = _Fenced(applier, self.writing)
                applied = replay(client, slice_(), targets, wanted, applier=fenced)
                self.replayed = True
                log.info("restore.oplog_replayed", entries=applied, method=applier.name)
            self._build_indexes(client)

    def _build_indexes(self, client: Any) -> None:
        """Every restored collection's final secondary indexes, collections in parallel;
        OperationFailed naming every index refused, once the others are built."""

        def one(key: Key) -> list[str]:
            db, name = key
            indexes = self.indexes.get(key)
            if not indexes:  # (create_index would create a collection the slice dropped)
                return []
            target = self.targets[db]
            with self.writing(f"indexes of {target}.{name}"):
                refused = build(client[target][name], indexes)
            return [f"{target}.{name} index {r}" for r in refused]

        with ThreadPoolExecutor(max_workers=self.options.jobs) as pool:
            futures = [pool.submit(one, key) for key in self.replayed_into]
            refused = [r for future in futures for r in future.result()]
        if refused:
            raise OperationFailed(
                "indexes the restored documents break were not built (the documents are "
                "restored, every other index is built): " + "; ".join(refused),
                hint="fix the documents and create the index, or restore another backup",
            )

    def post_check(self, plan: RestorePlan) -> None:
        if self.replayed:
            return
        with self._client() as client:
            _check_counts(client, self.manifest, self.collections, self.targets)

    def _client(self) -> _Guarded:
        return _Guarded(self.server)


SERVER_DATABASES = ("admin", "config", "local")
FORBIDDEN_CHARACTERS = '/\\. "$\0'


def bad_database_name(name: str) -> str | None:
    """Why ``name`` may not be a renamed restore's target, None when it may: MongoDB's own
    databases (``local`` holds the oplog) and the names it refuses (on Linux: any of
    ``/\\. "$`` or NUL, 64 bytes or more)."""
    if name in SERVER_DATABASES:
        return f"{name!r} is the server's own database"
    bad = sorted({c for c in name if c in FORBIDDEN_CHARACTERS})
    if bad:
        return f"it holds {', '.join(repr(c) for c in bad)}"
    size = len(name.encode())
    if size >= 64:
        return f"{size} bytes, MongoDB takes at most 63"
    return None


def _restore_collection(
    db: Any,
    name: str,
    options: dict[str, Any],
    parts: list[ObjectRecord],
    staged: Staged,
    on_loaded: Callable[[ObjectRecord], None] | None,
    writing: Writing,
) -> None:
    """The collection (created with ``options`` unless it exists) and its documents; no
    secondary index (built after the replay). Each write checked by ``writing``."""
    where = f"{db.name}.{name}"
    if name not in db.list_collection_names():
        with writing(f"creation of {where}"):
            db.create_collection(name, **options)
    coll = db[name]
    for part in (o for o in parts if o.kind == "collection"):
        for batch in batches(staged.decompressed(part.key), staged.name(part.key)):
            with writing(f"insert of {len(batch)} documents into {where}"):
                coll.insert_many(batch, ordered=True, bypass_document_validation=True)
        if on_loaded:
            on_loaded(part)


def _entries(staged: Staged, parts: list[ObjectRecord]) -> Iterator[RawBSONDocument]:
    """The captured oplog slice (verified with the other objects), in order, as raw
    documents: the values of each entry are re-sent exactly as captured. It is replayed
    after the data, so document counts then reflect the end of the slice, not the dump, and
    are not compared with the manifest."""
    for part in sorted(parts, key=lambda o: o.part):
        yield from raw_documents(staged.decompressed(part.key), staged.name(part.key))


def _create_views(
    client: Any, manifest: Manifest, targets: dict[str, str], writing: Writing
) -> None:
    for source, target in targets.items():
        for text in manifest.databases.get(source, {}).get("views", []):
            view = json_util.loads(text)
            db = client[target]
            if view["name"] not in db.list_collection_names():
                with writing(f"view {target}.{view['name']}"):
                    db.command("create", view["name"], **view["options"])


class _Fenced(Applier):
    """``inner`` applying each oplog batch inside ``writing`` (a lease check before it)."""

    name = "fenced"

    def __init__(self, inner: Applier, writing: Writing) -> None:
        super().__init__(inner.client)
        self.inner, self.writing = inner, writing

    def check(self, entry: Mapping[str, Any]) -> None:
        self.inner.check(entry)

    def apply(self, batch: list[dict[str, Any]]) -> None:
        with self.writing(f"oplog batch of {len(batch)} entries"):
            self.inner.apply(batch)


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


class _Guarded:
    """A client of ``server`` whose driver errors become datatier's (exit 3 / exit 1)."""

    def __init__(self, server: MongoServer) -> None:
        self.server = server
        self.client: Any = None

    def __enter__(self) -> Any:
        self.client = mongo_client(self.server).__enter__()
        return self.client

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self.client.__exit__(kind, exc, tb)
        if isinstance(exc, pymongo.errors.ConnectionFailure):
            raise unreachable(self.server.uri, exc) from None
        if isinstance(exc, pymongo.errors.PyMongoError):
            raise OperationFailed(f"Mongo restore failed: {exc}") from None
