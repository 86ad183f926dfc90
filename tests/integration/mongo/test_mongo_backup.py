"""MongoDB backup -> S3 -> restore on the sandbox's default MongoDB-protocol server.

The sandbox's [mongo] server is FerretDB v1 (no mongod in Debian). It rejects Decimal128,
MinKey, MaxKey, Code and arrays nested in arrays (verified: it closes the connection or
answers "nested arrays are not supported"), turns -0.0 into 0.0 and refuses NaN and
infinities. Those are round-tripped on the sandbox's mongo2 (mongo-java-server,
test_mongo_types.py) and, where ``DATATIER_TEST_MONGO_URI`` points at a real mongod, by
test_types_only_a_real_mongod_stores (which asserts FerretDB's refusal otherwise). Every type
FerretDB stores is round-tripped here, including every binary subtype (mongo2 keeps only
0, 3 and 4).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pymongo
import pytest
from bson import json_util

from datatier.backup.manifest import Manifest
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle

DB = "mongo_rt"
COPY = "mongo_rt_copy"


def client(sandbox: SandboxHandle) -> pymongo.MongoClient[Any]:
    return pymongo.MongoClient(sandbox.config.mongo.uri, serverSelectionTimeoutMS=3000)


def every_type(i: int) -> dict[str, Any]:
    return {
        "_id": bson.ObjectId(),
        "i32": i,
        "i64": bson.Int64(2**53 + i),
        "dbl": i / 7,
        "str": f"ü 😀 {i}",
        "bool": i % 2 == 0,
        "null": None,
        "old": datetime.datetime(1901, 1, 1) + datetime.timedelta(seconds=i),
        "future": datetime.datetime(2100, 12, 31, 23, 59, 59, 999000),
        "bin0": bson.Binary(bytes(range(256)), 0),
        "uuid": bson.Binary(uuid.UUID(int=i).bytes, 4),
        "md5": bson.Binary(b"\x01" * 16, 5),
        "user": bson.Binary(b"\x00\xff", 128),
        "subtypes": [bson.Binary(bytes([i % 256]) * 16, s) for s in (1, 2, 3, 6, 7, 8, 255)],
        "regex": bson.Regex("^ab.*c$", "imsx"),
        "ts": bson.Timestamp(1_700_000_000, i + 1),
        "nested": {"a": {"b": {"c": {"d": [1, "x", {"e": [2.5]}]}}}},
        "ключ ü": "unicode key",
        "arr": [1, "two", {"three": 3}, None],
    }


@pytest.fixture(scope="module")
def mongo_data(sandbox: SandboxHandle) -> Iterator[None]:
    with client(sandbox) as c:
        for name in (DB, COPY):
            c.drop_database(name)
        db = c[DB]
        db.create_collection("typed.with.dots")
        db["typed.with.dots"].insert_many([every_type(i) for i in range(3000)])
        db["typed.with.dots"].create_index([("i64", 1), ("str", -1)], name="cmp", unique=True)
        db["typed.with.dots"].create_index("i32", name="sparse_i32", sparse=True)
        db.create_collection("пустая")
        db.create_collection("capped", capped=True, size=1 << 20, max=100)
        db.capped.insert_one({"_id": 1, "x": "y"})
        db.big.insert_one({"_id": 1, "blob": bson.Binary(os.urandom(15 << 20), 0)})
    sandbox.write_policy(
        "mongo-rt", f'engine = "mongo"\nchunk_mb = 1\n[source]\ndatabases = ["{DB}"]\n'
    )
    yield
    with client(sandbox) as c:
        for name in (DB, COPY):
            c.drop_database(name)


def raw_of(c: pymongo.MongoClient[Any], db: str, name: str) -> bytes:
    return b"".join(c[db][name].find_raw_batches(sort=[("_id", 1)]))


def indexes(c: pymongo.MongoClient[Any], db: str, name: str) -> list[dict[str, Any]]:
    return sorted(
        ({k: v for k, v in ix.items() if k != "ns"} for ix in c[db][name].list_indexes()),
        key=lambda ix: str(ix["name"]),
    )


@pytest.fixture(scope="module")
def mongo_backup(sandbox: SandboxHandle, mongo_data: None) -> Manifest:
    loaded = load(str(sandbox.config_path), environ={})
    return run_backup(loaded, load_policy(loaded, "mongo-rt"))


def test_manifest_describes_collections_and_consistency(mongo_backup: Manifest) -> None:
    assert mongo_backup.engine == "mongo"
    assert mongo_backup.consistency["point_in_time"] is False
    assert "standalone" in mongo_backup.consistency["method"]
    assert not [o for o in mongo_backup.objects if o.kind == "oplog"], "FerretDB has no oplog"
    rows = {t.name: t.rows for t in mongo_backup.tables}
    assert rows == {"typed.with.dots": 3000, "пустая": 0, "capped": 1, "big": 1}
    parts = [o for o in mongo_backup.objects if o.table == "typed.with.dots"]
    assert {o.kind for o in parts} == {"metadata", "collection"}
    assert len([o for o in parts if o.kind == "collection"]) >= 2, "chunk_mb = 1 splits it"


def test_restore_round_trips_bytes_indexes_and_options(
    use_sandbox_config: SandboxHandle, mongo_backup: Manifest
) -> None:
    assert main(["restore", mongo_backup.backup_id, "--rename", f"{DB}={COPY}"]) == 0
    with client(use_sandbox_config) as c:
        for name in ("typed.with.dots", "пустая", "capped", "big"):
            assert raw_of(c, COPY, name) == raw_of(c, DB, name), name
            assert indexes(c, COPY, name) == indexes(c, DB, name), name
        options = c[COPY]["capped"].options()
        assert options.get("capped") is True and options.get("size") == 1 << 20


def test_non_empty_target_refused_then_drop_replaces(
    use_sandbox_config: SandboxHandle, mongo_backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["restore", mongo_backup.backup_id, "--rename", f"{DB}={COPY}"]
    with client(use_sandbox_config) as c:
        if "capped" not in c[COPY].list_collection_names():
            assert main(args) == 0
        c[COPY]["typed.with.dots"].delete_many({"i32": {"$lt": 10}})
        assert main(args) == 2
        assert "not empty" in capsys.readouterr().err
        assert c[COPY]["typed.with.dots"].count_documents({}) == 2990, "nothing changed"
        assert main([*args, "--drop"]) == 0
        assert raw_of(c, COPY, "typed.with.dots") == raw_of(c, DB, "typed.with.dots")


def test_by_hand_layout_is_mongodump_format(
    sandbox: SandboxHandle, mongo_backup: Manifest, tmp_path: Path
) -> None:
    """cat the zstd parts, decompress: DB/COLL.bson equal to the collection's raw BSON."""
    loaded = load(str(sandbox.config_path), environ={})
    _, store = find_backup(loaded, mongo_backup.backup_id)
    name = "typed.with.dots"
    parts = sorted(
        (o for o in mongo_backup.objects if o.table == name and o.kind == "collection"),
        key=lambda o: o.part,
    )
    joined = tmp_path / "coll.bson.zst"
    joined.write_bytes(b"".join(b"".join(store.iter_read(o.key)) for o in parts))
    plain = subprocess.run(["zstd", "-dc", str(joined)], capture_output=True, check=True).stdout
    with client(sandbox) as c:
        assert plain == raw_of(c, DB, name)
    meta = next(o for o in mongo_backup.objects if o.table == name and o.kind == "metadata")
    text = subprocess.run(
        ["zstd", "-dc"], input=b"".join(store.iter_read(meta.key)), capture_output=True, check=True
    ).stdout
    doc = json_util.loads(text)
    assert doc["collectionName"] == name and {ix["name"] for ix in doc["indexes"]} >= {"cmp"}


def test_corrupt_object_exits_4_and_writes_nothing(
    use_sandbox_config: SandboxHandle, mongo_data: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "mongo-rt"))
    _, store = find_backup(loaded, manifest.backup_id)
    victim = next(o for o in manifest.objects if o.kind == "collection")
    data = b"".join(store.iter_read(victim.key))
    store.put_bytes(victim.key, data[:-10])
    target = "mongo_rt_corrupt"
    assert main(["restore", manifest.backup_id, "--rename", f"{DB}={target}"]) == 4
    assert victim.key in capsys.readouterr().err
    with client(sandbox) as c:
        assert target not in c.list_database_names()
        # --drop replaces non-empty target collections, but only once the backup is known
        # to be good: a corrupt object leaves them as they were
        c[target]["typed.with.dots"].insert_many([{"_id": i, "mine": True} for i in range(5)])
    assert main(["restore", manifest.backup_id, "--rename", f"{DB}={target}", "--drop"]) == 4
    with client(sandbox) as c:
        assert c[target]["typed.with.dots"].count_documents({"mine": True}) == 5
        c.drop_database(target)


SERVER_LIMITED = {
    "decimal128": bson.Decimal128("1.10"),
    "minkey": bson.MinKey(),
    "maxkey": bson.MaxKey(),
    "code": bson.Code("x = 1"),
    "nested_arrays": [[1, [2, [3]]]],
}


def test_types_only_a_real_mongod_stores(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decimal128, MinKey/MaxKey, Code and nested arrays round-trip byte for byte on a real
    mongod (``DATATIER_TEST_MONGO_URI``). On the sandbox's FerretDB v1 the server itself
    refuses them at insert: the test then asserts that refusal is FerretDB's (a real mongod
    refusing them fails the test) and round-trips the control document."""
    uri = os.environ.get("DATATIER_TEST_MONGO_URI") or use_sandbox_config.config.mongo.uri
    monkeypatch.setenv("DATATIER_MONGO__URI", uri)
    use_sandbox_config.write_policy(
        "mongo-types", 'engine = "mongo"\n[source]\ndatabases = ["dt_types"]\n'
    )
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as c:
        ferretdb = "ferretdbVersion" in c.server_info()
        for name in ("dt_types", "dt_types_copy"):
            c.drop_database(name)
        c.dt_types.control.insert_one({"_id": 1, "s": "stored everywhere"})
        refused = []
        for name, value in SERVER_LIMITED.items():
            try:
                c.dt_types[name].insert_one({"_id": 1, "v": value})
            except pymongo.errors.PyMongoError:
                refused.append(name)
        assert not refused or ferretdb, f"a real MongoDB refused {refused}"
        if ferretdb:
            assert refused == list(SERVER_LIMITED), "FerretDB now stores more: widen this test"
    loaded = load(str(use_sandbox_config.config_path))
    manifest = run_backup(loaded, load_policy(loaded, "mongo-types"))
    assert main(["restore", manifest.backup_id, "--rename", "dt_types=dt_types_copy"]) == 0
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as c:
        names = c.dt_types.list_collection_names()
        assert "control" in names
        for name in names:
            assert raw_of(c, "dt_types_copy", name) == raw_of(c, "dt_types", name), name
        for name in ("dt_types", "dt_types_copy"):
            c.drop_database(name)


def test_a_policy_listing_a_missing_collection_fails_without_a_manifest(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo or a dropped collection in ``source.tables`` would leave the backup quietly
    short of it: exit 1, the entry named, no manifest. A dotted collection name is fine
    unquoted (MongoDB database names hold no dot)."""
    uri = use_sandbox_config.config.mongo.uri
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as c:
        c.drop_database("dt_listing")
        c.dt_listing["a.b"].insert_one({"_id": 1})
    try:
        use_sandbox_config.write_policy(
            "mongo-listing",
            'engine = "mongo"\n[source]\ntables = ["dt_listing.a.b", "dt_listing.typo"]\n',
        )
        capsys.readouterr()
        assert main(["backup", "run", "mongo-listing"]) == 1
        err = capsys.readouterr().err
        assert "'dt_listing.typo' names no table or view there" in err, err
        assert main(["backups", "list", "mongo-listing", "--json"]) == 0
        assert '"count": 0' in capsys.readouterr().out

        use_sandbox_config.write_policy(
            "mongo-listing", 'engine = "mongo"\n[source]\ntables = ["dt_listing.a.b"]\n'
        )
        loaded = load(str(use_sandbox_config.config_path))
        manifest = run_backup(loaded, load_policy(loaded, "mongo-listing"))
        assert [(t.database, t.name) for t in manifest.tables] == [("dt_listing", "a.b")]
    finally:
        with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as c:
            c.drop_database("dt_listing")
