"""BSON type fidelity on the sandbox's mongo2 (mongo-java-server), and on a real mongod where
DATATIER_TEST_MONGO_URI names one: backup -> S3 -> restore with --rename gives byte-identical
collections for the types FerretDB v1 refuses or alters.

Which server covers which type (the README's MongoDB section says the same):
- here, mongo2 (and the real mongod): Decimal128 (including NaN, -0, infinities, extreme
  exponents), MinKey, MaxKey, Code, nested and empty arrays, NaN, -0.0 and infinite
  doubles, Int64 beyond 2^53 and at its limits, binary subtypes 0, 3 and 4, regex flags,
  timestamps, dates outside Python's range;
- test_mongo_backup.py, FerretDB: every binary subtype (mongo2 refuses 1, 2, 5-8 and stores
  128 as 0: pinned by test_mongo2_binary_subtype_limits below), capped collections.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

import bson
import pymongo
import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle, mongo_environ

DB, COPY = "m2_types", "m2_types_copy"
DECIMALS = ["1.10", "-0", "0E-6176", "NaN", "-NaN", "Infinity", "-Infinity", "1E-6176"]
DECIMALS += ["9.999999999999999999999999999999999E+6144", "-1234567890123456789012345678901234"]


def client_for(uri: str) -> pymongo.MongoClient[Any]:
    return pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=3000, datetime_conversion="DATETIME_AUTO"
    )


def typed(i: int) -> dict[str, Any]:
    return {
        "_id": i,
        "dec": bson.Decimal128(DECIMALS[i % len(DECIMALS)]),
        "decs": [bson.Decimal128(d) for d in DECIMALS],
        "min": bson.MinKey(),
        "max": bson.MaxKey(),
        "code": bson.Code(f"function () {{ return {i}; }}"),
        "nested": [[1, [2, [3, [bson.Decimal128("4.0")]]]], [], [[]], [[{"a": [[i]]}]]],
        "nan": float("nan"),
        "negzero": -0.0,
        "inf": [float("inf"), float("-inf")],
        "tiny": 5e-324,
        "i64": [bson.Int64(2**53 + i), bson.Int64(-(2**63)), bson.Int64(2**63 - 1)],
        "i32": [-(2**31), 2**31 - 1],
        "bin": bson.Binary(bytes(range(256)), 0),
        "uuid_old": bson.Binary(uuid.UUID(int=i).bytes, 3),
        "uuid": bson.Binary(uuid.UUID(int=i).bytes, 4),
        "regex": [bson.Regex("^ab.*c$", "imsxlu"), bson.Regex("x", ""), bson.Regex("\\d+", "i")],
        "ts": bson.Timestamp(1_700_000_000, i + 1),
        "ts_nested": {"zero": bson.Timestamp(0, 0), "max": bson.Timestamp(2**32 - 1, 2**32 - 1)},
        "dates": [
            bson.DatetimeMS(-(2**62)),
            bson.DatetimeMS(2**62),
            datetime.datetime(1969, 12, 31, 23, 59, 59, 999000),
        ],
        "oid": bson.ObjectId(),
        "ref": bson.DBRef("other", i, "db"),
        "order": {"z": 1, "a": 2, "m": {"y": None, "b": True}},
        "ключ ü 😀": "unicode key",
        "empty": {},
        "pad": "x" * 300,
    }


DOCS = [typed(i) for i in range(2500)]


def sent() -> bytes:
    """The BSON of the typed collection as sent, to check the server stores it exactly."""
    return b"".join(bson.encode(doc) for doc in DOCS)


@pytest.fixture(scope="module")
def types_backup(sandbox: SandboxHandle, mongo_server: tuple[str, str]) -> Iterator[Manifest]:
    name, uri = mongo_server
    with client_for(uri) as c:
        for db in (DB, COPY):
            c.drop_database(db)
        c[DB].typed.insert_many(DOCS)
        c[DB].typed.create_index([("i64", 1), ("dec", -1)], name="cmp")
        c[DB].typed.create_index("oid", name="oid_unique", unique=True)
        c[DB].typed.create_index("code", name="sparse_code", sparse=True)
        c[DB]["with.dots"].insert_one({"_id": "s", "v": bson.Decimal128("1")})
        c[DB].create_collection("empty")
    sandbox.write_policy(
        "m2-types",
        f'engine = "mongo"\n[source]\nserver = "{name}"\ndatabases = ["{DB}"]\n',
    )
    loaded = load(str(sandbox.config_path), environ=mongo_environ(name))
    yield run_backup(loaded, load_policy(loaded, "m2-types"))
    with client_for(uri) as c:
        for db in (DB, COPY):
            c.drop_database(db)


def raw_of(c: pymongo.MongoClient[Any], db: str, name: str) -> bytes:
    return b"".join(c[db][name].find_raw_batches(sort=[("_id", 1)]))


def indexes(c: pymongo.MongoClient[Any], db: str, name: str) -> list[dict[str, Any]]:
    return sorted(
        ({k: v for k, v in ix.items() if k != "ns"} for ix in c[db][name].list_indexes()),
        key=lambda ix: str(ix["name"]),
    )


def test_every_type_round_trips_byte_identical(
    use_sandbox_config: SandboxHandle,
    mongo_server: tuple[str, str],
    types_backup: Manifest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, uri = mongo_server
    for key, value in mongo_environ(name).items():
        monkeypatch.setenv(key, value)
    assert types_backup.source["server"] == name
    # no --target: back to the server the backup came from, not [mongo]
    assert main(["restore", types_backup.backup_id, "--rename", f"{DB}={COPY}", "--json"]) == 0
    assert '"target": "' + uri + '"' in capsys.readouterr().out
    with client_for(uri) as c:
        assert raw_of(c, DB, "typed") == sent(), f"{name} altered a value on insert"
        assert sorted(c[COPY].list_collection_names()) == ["empty", "typed", "with.dots"]
        for name in ("typed", "with.dots", "empty"):
            assert raw_of(c, COPY, name) == raw_of(c, DB, name), name
            assert indexes(c, COPY, name) == indexes(c, DB, name), name
        assert c[COPY].typed.count_documents({}) == 2500


def test_target_names_a_configured_server_or_is_refused(
    use_sandbox_config: SandboxHandle,
    mongo_server: tuple[str, str],
    types_backup: Manifest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--target NAME picks a [mongo.servers] deployment (`default` = [mongo], FerretDB); an
    unknown name is exit 2 naming the known ones, before anything is read or written."""
    for key, value in mongo_environ(mongo_server[0]).items():
        monkeypatch.setenv(key, value)
    args = ["restore", types_backup.backup_id, "--rename", f"{DB}=m2_types_elsewhere"]
    assert main([*args, "--target", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "no MongoDB server 'nosuch'" in err and "known: default, mongo2" in err
    uri = use_sandbox_config.config.mongo.uri
    assert main([*args, "--target", "default", "--tables", f"{DB}.empty", "--json"]) == 0
    assert '"target": "' + uri + '"' in capsys.readouterr().out
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as ferretdb:
        assert ferretdb.m2_types_elsewhere.list_collection_names() == ["empty"]
        ferretdb.drop_database("m2_types_elsewhere")


def test_mongo2_binary_subtype_limits(sandbox: SandboxHandle) -> None:
    """The server's own limits, pinned so the README stays true: subtypes 0, 3 and 4 are
    stored; 1, 2 and 5-8 are refused (the connection is closed) and 128 comes back as 0.
    Those subtypes round-trip on FerretDB (test_mongo_backup.py)."""
    mongo2_uri = sandbox.config.mongo.servers["mongo2"].uri
    stored: list[int] = []
    refused: list[int] = []
    altered: list[int] = []
    for subtype in (0, 1, 2, 3, 4, 5, 6, 7, 8, 128):
        with client_for(mongo2_uri) as c:
            doc = {"_id": subtype, "v": bson.Binary(b"\x00" * 16, subtype)}
            try:
                c.m2_limits.bins.insert_one(doc)
            except pymongo.errors.PyMongoError:
                refused.append(subtype)
                continue
            back = b"".join(c.m2_limits.bins.find_raw_batches({"_id": subtype}))
            (stored if back == bson.encode(doc) else altered).append(subtype)
    with client_for(mongo2_uri) as c:
        c.drop_database("m2_limits")
    assert (stored, refused, altered) == ([0, 3, 4], [1, 2, 5, 6, 7, 8], [128])
