"""Encryption in every engine (issue 18): MongoDB (mongo2, with its oplog), physical
(mariadb-backup, a chain whose full is plain and whose incremental is encrypted) and the
binlog archive with a point-in-time restore. Each stores only age objects, none with a
piece of a marker value, and restores exactly; a wrong identity changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from datatier.backup.manifest import Manifest, backup_prefix, manifest_key
from datatier.backup.stores import store_for
from datatier.binlog.chain import load_chain
from datatier.binlog.layout import archive_prefix, data_prefix, index_key
from datatier.storage.base import ObjectStore
from tests.integration.binlog_support import checksums, query
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import (
    MARKER,
    Key,
    cli,
    decrypt,
    encryption_env,
    make_key,
    plaintext_in,
)
from tests.integration.physical_support import OWNER, connect_port, scratch, table_state

POLICIES = ("crypt-mongo", "crypt-phys", "crypt-pitr")


@pytest.fixture(scope="module")
def keys(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Key]]:
    directory = tmp_path_factory.mktemp("age-keys")
    store = store_of(sandbox)
    clear(store)
    yield {name: make_key(directory, name) for name in ("current", "stranger")}
    clear(store)
    for name in POLICIES:
        (sandbox.root / "backups" / f"{name}.toml").unlink(missing_ok=True)


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


def clear(store: ObjectStore) -> None:
    for policy in POLICIES:
        store.delete([o.key for o in store.list_objects(f"{policy}/")])


def manifest_of(store: ObjectStore, policy: str, backup_id: str) -> Manifest:
    return Manifest.decode(store.get_bytes(manifest_key(policy, backup_id)), "test")


def take(sandbox: SandboxHandle, env: dict[str, str], policy: str, *flags: str) -> str:
    result = cli(sandbox.config_path, env, "backup", "run", policy, *flags, "--json")
    assert result.code == 0, result.err
    backup_id: str = result.json()["id"]
    return backup_id


# -- MongoDB --------------------------------------------------------------------------------

MONGO_DB, MONGO_COPY = "crypt_mongo", "crypt_mongo_copy"


def raw_of(client: pymongo.MongoClient[Any], db: str, name: str) -> bytes:
    return b"".join(client[db][name].find_raw_batches(sort=[("_id", 1)]))


def test_mongo_objects_are_encrypted_and_restore_byte_identical(
    sandbox: SandboxHandle, keys: dict[str, Key]
) -> None:
    uri = sandbox.config.mongo.servers["mongo2"].uri
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as client:
        for name in (MONGO_DB, MONGO_COPY):
            client.drop_database(name)
        client[MONGO_DB].people.insert_many(
            [{"_id": i, "name": f"person {i}", "pad": "x" * 200} for i in range(8000)]
        )
        client[MONGO_DB].vault.insert_one({"_id": 1, "secret": MARKER.decode()})
        client[MONGO_DB].people.create_index("name", name="by_name")
    sandbox.write_policy(
        "crypt-mongo",
        f'engine = "mongo"\nchunk_mb = 1\n[source]\nserver = "mongo2"\n'
        f'databases = ["{MONGO_DB}"]\n',
    )
    env = encryption_env([keys["current"]], keys["current"].path)
    backup_id = take(sandbox, env, "crypt-mongo")
    store = store_of(sandbox)
    manifest = manifest_of(store, "crypt-mongo", backup_id)
    assert manifest.recipients == (keys["current"].public,)
    assert {o.kind for o in manifest.objects} >= {"collection", "metadata"}
    assert all(o.key.endswith(".zst.age") and o.encrypted for o in manifest.objects)
    assert plaintext_in(store, backup_prefix("crypt-mongo", backup_id)) == []
    vault = next(o for o in manifest.objects if o.table == "vault" and o.kind == "collection")
    assert MARKER in decrypt(b"".join(store.iter_read(vault.key)), keys["current"])

    wrong = encryption_env([keys["current"]], keys["stranger"].path)
    args = ("restore", backup_id, "--rename", f"{MONGO_DB}={MONGO_COPY}")
    assert cli(sandbox.config_path, wrong, *args).code == 2
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as client:
        # (mongo-java-server lists a database once its collections were listed: look inside)
        assert client[MONGO_COPY].list_collection_names() == [], "nothing restored"
    original = b"".join(store.iter_read(vault.key))
    flipped = bytearray(original)
    flipped[len(original) // 2] ^= 0x01
    try:
        store.put_bytes(vault.key, bytes(flipped))
        damaged = cli(sandbox.config_path, env, *args)
        assert damaged.code == 4 and vault.key in damaged.err, damaged.err
    finally:
        store.put_bytes(vault.key, original)
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as client:
        assert client[MONGO_COPY].list_collection_names() == [], "nothing restored"
    result = cli(sandbox.config_path, env, *args)
    assert result.code == 0, result.err
    with pymongo.MongoClient[dict[str, Any]](uri, serverSelectionTimeoutMS=3000) as client:
        for name in ("people", "vault"):
            assert raw_of(client, MONGO_COPY, name) == raw_of(client, MONGO_DB, name), name
        assert "by_name" in client[MONGO_COPY].people.index_information()
        for name in (MONGO_DB, MONGO_COPY):
            client.drop_database(name)


# -- physical -------------------------------------------------------------------------------

PHYS_DB = "crypt_phys"


def test_a_physical_chain_plain_then_encrypted_restores_with_the_identity(
    sandbox: SandboxHandle, keys: dict[str, Key], tmp_path: Path, test_port_base: int
) -> None:
    sandbox.write_policy(
        "crypt-phys",
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 2\n[source]\nnode = "primary"\n'
        "[retention]\nkeep_last = 20\nmin_age_days = 0\n",
    )
    config = sandbox.config
    query(config, "primary", f"DROP DATABASE IF EXISTS {PHYS_DB}")
    query(config, "primary", f"CREATE DATABASE {PHYS_DB}")
    query(config, "primary", f"CREATE TABLE {PHYS_DB}.t (id INT PRIMARY KEY, v VARCHAR(200))")
    query(
        config,
        "primary",
        f"INSERT INTO {PHYS_DB}.t SELECT seq, REPEAT('p', 100) FROM {PHYS_DB}.seq_1_to_20000",
    )
    try:
        full = take(sandbox, {}, "crypt-phys", "--full")  # before encryption was turned on
        query(config, "primary", f"INSERT INTO {PHYS_DB}.t VALUES (0, %s)", (MARKER.decode(),))
        query(
            config, "primary", f"UPDATE {PHYS_DB}.t SET v = 'changed' WHERE id % 10 = 0 AND id > 0"
        )
        with sandbox.connect() as conn:
            reference = table_state(conn, PHYS_DB)
        env = encryption_env([keys["current"]], keys["current"].path)
        incremental = take(sandbox, env, "crypt-phys", "--incremental")
        store = store_of(sandbox)
        plain, sealed = (manifest_of(store, "crypt-phys", i) for i in (full, incremental))
        assert sealed.parent == full and sealed.format_version == 4
        assert all(o.key.endswith(f"mbstream-{o.part:06d}.zst") for o in plain.objects)
        assert all(o.key.endswith(".zst.age") and o.encrypted for o in sealed.objects)
        assert plaintext_in(store, backup_prefix("crypt-phys", incremental)) == []

        datadir = tmp_path / "restored"
        refused = cli(sandbox.config_path, {}, "restore", incremental, "--datadir", str(datadir))
        assert refused.code == 2 and "needs its age identity" in refused.err
        assert not datadir.exists() or not any(datadir.iterdir())
        result = cli(
            sandbox.config_path,
            env,
            "restore",
            incremental,
            "--datadir",
            str(datadir),
            "--owner",
            OWNER,
        )
        assert result.code == 0, result.err
        with scratch(datadir, test_port_base) as server, connect_port(sandbox, server.port) as c:
            assert table_state(c, PHYS_DB) == reference
            with c.cursor() as cur:
                cur.execute(f"SELECT v FROM {PHYS_DB}.t WHERE id = 0")
                assert cur.fetchone()[0] == MARKER.decode()
    finally:
        query(config, "primary", f"DROP DATABASE IF EXISTS {PHYS_DB}")
        sandbox.wait_replicated()


# -- binlog archive and point in time -------------------------------------------------------

PITR_DB = "crypt_pitr"


def stock_binlog_text(store: ObjectStore, key: str, identity: Key, tmp_path: Path) -> str:
    """``age -d | zstd -d`` of a segment, read by ``mariadb-binlog`` (the stock path)."""
    obj = tmp_path / "segment.binlog.zst.age"
    obj.write_bytes(b"".join(store.iter_read(key)))
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f"age -d -i {identity.path} {obj} | zstd -d > {tmp_path}/seg.bin && "
         f"mariadb-binlog {tmp_path}/seg.bin"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_archived_binlogs_are_encrypted_and_a_point_in_time_restore_decrypts_them(
    sandbox: SandboxHandle, keys: dict[str, Key], tmp_path: Path
) -> None:
    config = sandbox.config
    sandbox.write_policy(
        "crypt-pitr", f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{PITR_DB}"]\n'
    )
    env = {
        **encryption_env([keys["current"]], keys["current"].path),
        "DATATIER_BINLOG__POLICY": "crypt-pitr",
    }
    for name in (PITR_DB, f"{PITR_DB}_copy"):
        query(config, "primary", f"DROP DATABASE IF EXISTS {name}")
    query(config, "primary", f"CREATE DATABASE {PITR_DB}")
    query(config, "primary", f"CREATE TABLE {PITR_DB}.t (id INT PRIMARY KEY, v VARCHAR(200))")
    query(
        config, "primary", f"INSERT INTO {PITR_DB}.t SELECT seq, 'base' FROM {PITR_DB}.seq_1_to_500"
    )
    sandbox.wait_replicated()
    try:
        backup_id = take(sandbox, env, "crypt-pitr")
        query(config, "primary", f"INSERT INTO {PITR_DB}.t VALUES (0, %s)", (MARKER.decode(),))
        query(config, "primary", f"UPDATE {PITR_DB}.t SET v = 'later' WHERE id > 400")
        gtid = str(query(config, "primary", "SELECT @@gtid_binlog_pos")[0][0])
        reference = checksums(config, "primary", PITR_DB)
        query(config, "primary", f"DROP TABLE {PITR_DB}.t")  # the disaster

        archived = cli(sandbox.config_path, env, "binlog", "archive", "--once", "--json")
        assert archived.code == 0, archived.err
        store = store_of(sandbox)
        chain = load_chain(store, "crypt-pitr")
        assert chain.segments and not chain.gaps
        for record in chain.segments:
            assert record.key is not None and record.key.endswith(".binlog.zst.age")
            assert record.recipients == (keys["current"].public,) and record.plain_sha256
            assert b'"format": 2' in store.get_bytes(index_key("crypt-pitr", record.seq))
        assert plaintext_in(store, data_prefix("crypt-pitr")) == []
        assert plaintext_in(store, archive_prefix("crypt-pitr")) == [], "index records too"
        assert any(
            MARKER in decrypt(b"".join(store.iter_read(r.key or "")), keys["current"])
            for r in chain.segments
        ), "the marker row was archived (in a decrypted segment)"
        stock = stock_binlog_text(store, chain.segments[-1].key or "", keys["current"], tmp_path)
        assert "GTID" in stock and "COMMIT" in stock

        args: tuple[str, ...] = ("restore", "--policy", "crypt-pitr", "--until-gtid", gtid)
        args += ("--rename", f"{PITR_DB}={PITR_DB}_copy")
        wrong = {**env, "DATATIER_ENCRYPTION__IDENTITY_FILE": str(keys["stranger"].path)}
        refused = cli(sandbox.config_path, wrong, *args)
        assert refused.code == 2 and "no identity" in refused.err
        assert not query(config, "primary", "SHOW DATABASES LIKE %s", (f"{PITR_DB}_copy",))
        result = cli(sandbox.config_path, env, *args)
        assert result.code == 0, result.err
        assert backup_id in result.out
        assert checksums(config, "primary", f"{PITR_DB}_copy") == reference
    finally:
        for name in (PITR_DB, f"{PITR_DB}_copy"):
            query(config, "primary", f"DROP DATABASE IF EXISTS {name}")
        sandbox.wait_replicated()
