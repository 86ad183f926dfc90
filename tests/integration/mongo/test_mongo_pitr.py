"""Point-in-time Mongo backups: the oplog slice written during the dump, captured and replayed.

A writer changes the source while the dump runs (inserts, operator updates, replacements,
deletes in collections already dumped and not yet dumped, and a collection drop); the
backup captures the oplog slice written meanwhile and the restore replays it, so the copy
equals the source as it was when the dump ended: a collection created mid-dump included
(``fresh``, after the dump listed the collections), one the policy excludes left out
(``hidden``, created mid-dump too).

Servers: always the sandbox's mongo2 (mongo-java-server, a replica set with an oplog), and
also a real mongod replica-set member where ``DATATIER_TEST_MONGO_URI`` names one. They take
different paths in two places: mongo-java-server has no ``hello`` (datatier's handshake falls
back to ``isMaster``) and no ``applyOps`` (the slice is replayed with driver operations,
:class:`~datatier.mongo.oplogapply.CrudApplier`); a real mongod answers ``hello`` and replays
with ``applyOps``, including the delta-format updates it logs. Each run asserts which replay
method was used. mongo-java-server logs operator updates as sent (``$inc`` is not made
idempotent, as mongod does), so the writer uses only ``$set``/``$unset``, replacements and
deletes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import bson
import pymongo
import pytest
import zstandard
from bson.codec_options import DatetimeConversion
from bson.raw_bson import RawBSONDocument

from datatier.backup.manifest import Manifest
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, open_policy_catalog, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.mongo import dump as mongo_dump
from datatier.mongo import oplog as mongo_oplog
from datatier.mongo.dump import MongoDumpEngine
from tests.integration.conftest import SandboxHandle, mongo_environ

DB, COPY = "dt_pitr_w", "dt_pitr_w_copy"
# the replay method each server takes
METHODS = {"mongo2": "crud", "real": "applyOps"}
COLLECTIONS = ("a", "b", "c")
DOCS = 3000
# Values a decode/re-encode round trip would break: a date outside Python's datetime range
# and the float/decimal specials (kept exact only as raw BSON).
AWKWARD = {
    "far": bson.DatetimeMS(-(2**62)),
    "dec": bson.Decimal128("-0E+3"),
    "nan": float("nan"),
    "negzero": -0.0,
    "big": bson.Int64(2**53 + 1),
}


OPTIONS: bson.CodecOptions[dict[str, Any]] = bson.CodecOptions(
    datetime_conversion=DatetimeConversion.DATETIME_AUTO
)


def client_for(uri: str) -> pymongo.MongoClient[Any]:
    return pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=3000, datetime_conversion="DATETIME_AUTO"
    )


@pytest.fixture(scope="module")
def mongo2_uri(sandbox: SandboxHandle) -> str:
    return sandbox.config.mongo.servers["mongo2"].uri


def raw_of(c: pymongo.MongoClient[Any], db: str, name: str) -> bytes:
    return b"".join(c[db][name].find_raw_batches(sort=[("_id", 1)]))


class Writer(threading.Thread):
    """Changes every collection of DB in a loop until stopped; ``drop_doomed`` asks it to
    drop the collection ``doomed`` once; ``wait_ops(n)`` waits for n more changes."""

    def __init__(self, uri: str) -> None:
        super().__init__(daemon=True)
        self.client = client_for(uri)
        self.stop = threading.Event()
        self.drop_doomed = threading.Event()
        self.dropped = threading.Event()
        self.ops = 0
        self.kinds: set[str] = set()
        self.cond = threading.Condition()
        self.error: BaseException | None = None

    def wait_ops(self, more: int) -> None:
        with self.cond:
            target = self.ops + more
            assert self.cond.wait_for(lambda: self.ops >= target or self.error, timeout=30)

    def _did(self, kind: str) -> None:
        with self.cond:
            self.ops += 1
            self.kinds.add(kind)
            self.cond.notify_all()

    def run(self) -> None:
        db = self.client[DB]
        i = DOCS
        try:
            while not self.stop.is_set():
                if self.drop_doomed.is_set() and not self.dropped.is_set():
                    db.doomed.drop()
                    self.dropped.set()
                    self._did("drop")
                coll = db[COLLECTIONS[i % len(COLLECTIONS)]]
                coll.insert_one({"_id": i, "n": i, "pad": "new", **AWKWARD})
                self._did("insert")
                coll.update_one({"_id": i - DOCS}, {"$set": {"n": -i, "far": AWKWARD["far"]}})
                self._did("update")
                coll.update_one({"_id": i - DOCS + 1}, {"$unset": {"pad": ""}})
                coll.replace_one({"_id": i - DOCS + 2}, {"replaced": i, **AWKWARD})
                self._did("replace")
                coll.delete_one({"_id": i - DOCS + 3})
                self._did("delete")
                i += 4
        except BaseException as exc:  # surfaced by the test
            self.error = exc
            with self.cond:
                self.cond.notify_all()


@pytest.fixture(scope="module")
def pitr_backup(
    sandbox: SandboxHandle, mongo_server: tuple[str, str]
) -> Iterator[tuple[Manifest, Writer]]:
    name, uri = mongo_server
    with client_for(uri) as c:
        for db in (DB, COPY):
            c.drop_database(db)
        for coll in COLLECTIONS:
            c[DB][coll].insert_many(
                [{"_id": i, "n": i, "pad": "x" * 100, **AWKWARD} for i in range(DOCS)]
            )
        c[DB].doomed.insert_many([{"_id": i} for i in range(100)])
    sandbox.write_policy(
        "pitr-w",
        f'engine = "mongo"\n[source]\nserver = "{name}"\ndatabases = ["{DB}"]\n'
        f'exclude_tables = ["{DB}.hidden"]\n',
    )
    writer = Writer(uri)
    real_collection, real_capture = MongoDumpEngine._collection, mongo_oplog.capture

    def collection(self: MongoDumpEngine, out: Any, db: Any, spec: Any) -> Any:
        """Dump one collection, letting the writer change things before and after."""
        writer.wait_ops(20)
        result = real_collection(self, out, db, spec)
        if not writer.drop_doomed.is_set():
            writer.drop_doomed.set()  # after the first collection: doomed is dropped mid-dump
            assert writer.dropped.wait(30)
            new = client_for(uri)[DB]  # and two collections the dump never listed appear
            new.fresh.insert_many([{"_id": i, "fresh": True, **AWKWARD} for i in range(50)])
            new.fresh.update_one({"_id": 0}, {"$set": {"n": 1}})
            new.hidden.insert_one({"_id": 1})
        writer.wait_ops(20)
        return result

    def capture(*args: Any, **kw: Any) -> Any:
        """The dump has ended: stop the writer, then capture up to the newest entry."""
        writer.stop.set()
        writer.join(30)
        return real_capture(*args, **kw)

    loaded = load(str(sandbox.config_path), environ=mongo_environ(name))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MongoDumpEngine, "_collection", collection)
        patch.setattr(mongo_dump, "capture", capture)
        writer.start()
        try:
            manifest = run_backup(loaded, load_policy(loaded, "pitr-w"))
        finally:
            writer.stop.set()
            writer.join(30)
    assert writer.error is None, writer.error
    yield manifest, writer
    with client_for(uri) as c:
        for db in (DB, COPY):
            c.drop_database(db)


def test_slice_written_during_the_dump_is_captured(
    sandbox: SandboxHandle, mongo_server: tuple[str, str], pitr_backup: tuple[Manifest, Writer]
) -> None:
    manifest, writer = pitr_backup
    assert writer.kinds == {"insert", "update", "replace", "delete", "drop"}
    assert manifest.source["server"] == mongo_server[0]
    assert manifest.source["replica_set"]
    assert manifest.consistency["point_in_time"] is True
    # listed after the dump listed its collections; `hidden` is excluded by the policy
    assert manifest.consistency["created_during_dump"] == [[DB, "fresh"]]
    parts = sorted((o for o in manifest.objects if o.kind == "oplog"), key=lambda o: o.part)
    assert parts, "no oplog objects"
    loaded = load(str(sandbox.config_path), environ=mongo_environ(mongo_server[0]))
    _, store = find_backup(loaded, manifest.backup_id)
    entries = []
    for part in parts:
        raw = (
            zstandard.ZstdDecompressor()
            .decompressobj()
            .decompress(b"".join(store.iter_read(part.key)))
        )
        entries += bson.decode_all(raw, OPTIONS)
    assert len(entries) == manifest.consistency["oplog_entries"] > 0
    assert {e["op"] for e in entries} == {"i", "u", "d", "c"}
    assert {"drop": "doomed"} in [e["o"] for e in entries if e["op"] == "c"]
    assert {e["ns"] for e in entries} >= {f"{DB}.{name}" for name in COLLECTIONS}


def test_restore_replays_the_slice_to_the_end_of_the_dump(
    use_sandbox_config: SandboxHandle,
    mongo_server: tuple[str, str],
    pitr_backup: tuple[Manifest, Writer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, uri = mongo_server
    for key, value in mongo_environ(name).items():
        monkeypatch.setenv(key, value)
    manifest, _ = pitr_backup
    capsys.readouterr()
    assert main(["--json-logs", "restore", manifest.backup_id, "--rename", f"{DB}={COPY}"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    replayed = [e for e in events if e["event"] == "restore.oplog_replayed"]
    assert [e["method"] for e in replayed] == [METHODS[name]]
    with client_for(uri) as c:
        assert sorted(c[DB].list_collection_names()) == sorted([*COLLECTIONS, "fresh", "hidden"])
        assert sorted(c[COPY].list_collection_names()) == sorted([*COLLECTIONS, "fresh"])
        for name in (*COLLECTIONS, "fresh"):
            source, copy = raw_of(c, DB, name), raw_of(c, COPY, name)
            assert copy == source, f"{name}: {len(copy)} bytes restored, {len(source)} at source"


def test_entries_only_applyops_can_replay_are_refused_before_anything_is_restored(
    use_sandbox_config: SandboxHandle, mongo2_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A delta-format update (what MongoDB 5.0+ logs) in the slice cannot be replayed
    without applyOps, which mongo2 lacks: the restore exits 1 naming it, before any
    collection is written. (The entry is put into mongo2's oplog by hand during the dump.)"""
    sandbox = use_sandbox_config
    db, copy = "m2_delta", "m2_delta_copy"
    with client_for(mongo2_uri) as c:
        for name in (db, copy):
            c.drop_database(name)
        c[db].a.insert_many([{"_id": i} for i in range(10)])
    sandbox.write_policy(
        "m2-delta", f'engine = "mongo"\n[source]\nserver = "mongo2"\ndatabases = ["{db}"]\n'
    )
    real_collection = MongoDumpEngine._collection

    def collection(self: MongoDumpEngine, out: Any, database: Any, spec: Any) -> Any:
        result = real_collection(self, out, database, spec)
        oplog = database.client.local["oplog.rs"]
        newest = oplog.find_one({}, {"ts": 1}, sort=[("$natural", -1)])["ts"]
        oplog.insert_one(
            {
                "ts": bson.Timestamp(newest.time, newest.inc + 1),
                "op": "u",
                "ns": f"{db}.a",
                "o": {"$v": 2, "diff": {"u": {"x": 1}}},
                "o2": {"_id": 1},
            }
        )
        return result

    loaded = load(str(sandbox.config_path), environ={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MongoDumpEngine, "_collection", collection)
        manifest = run_backup(loaded, load_policy(loaded, "m2-delta"))
    assert manifest.consistency["oplog_entries"] == 1
    assert main(["restore", manifest.backup_id, "--rename", f"{db}={copy}"]) == 1
    err = capsys.readouterr().err
    assert "delta-format update" in err and "applyOps" in err
    with client_for(mongo2_uri) as c:
        # (mongo-java-server lists a database once it has been named, even if empty)
        assert c[copy].list_collection_names() == [], "nothing may be restored"
        for name in (db, copy):
            c.drop_database(name)


def test_oplog_rolled_over_during_the_dump_fails_and_leaves_no_manifest(
    use_sandbox_config: SandboxHandle, mongo2_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """If the entry the slice starts after is gone when the dump ends (a capped oplog that
    rolled over), the backup cannot be made consistent: exit 1, and no manifest, so the
    backup never counts. mongo2's oplog is never capped, so the start entry is removed by
    hand during the dump (and put back afterwards, in the same place)."""
    sandbox = use_sandbox_config
    db = "dt_rolled"
    with client_for(mongo2_uri) as c:
        c.drop_database(db)
        c[db].a.insert_many([{"_id": i} for i in range(10)])
    sandbox.write_policy(
        "pitr-rolled", f'engine = "mongo"\n[source]\nserver = "mongo2"\ndatabases = ["{db}"]\n'
    )
    real_capture = mongo_oplog.capture
    removed: list[RawBSONDocument] = []

    def capture(client: Any, writer: Any, start: Any, *args: Any, **kw: Any) -> Any:
        oplog = client.local["oplog.rs"]
        (raw,) = oplog.find_raw_batches({"ts": start})
        removed.append(RawBSONDocument(bytes(raw)))
        oplog.delete_one({"ts": start})
        return real_capture(client, writer, start, *args, **kw)

    loaded = load(str(sandbox.config_path), environ={})
    catalog = open_policy_catalog(loaded, load_policy(loaded, "pitr-rolled"))
    before = len(catalog.backups("pitr-rolled", include_all=True))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mongo_dump, "capture", capture)
            assert main(["backup", "run", "pitr-rolled"]) == 1
    finally:
        with client_for(mongo2_uri) as c:
            if removed:  # back into the one free slot: $natural order stays as it was
                c.local["oplog.rs"].insert_one(removed[0])
            c.drop_database(db)
    assert "the oplog rolled over during the dump" in capsys.readouterr().err
    after = catalog.backups("pitr-rolled", include_all=True)
    assert len(after) == before, "the failed run deletes what it wrote and leaves no manifest"
