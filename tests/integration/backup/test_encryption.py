"""Encrypted MySQL backups on the sandbox's real MariaDB and S3 server (issue 18).

A database with a marker row (a random value per run) is backed up with encryption on:
every stored object is an age file, none holds any 8-byte piece of the marker, the stock
``age -d | zstd -d | mariadb`` path and ``datatier restore`` give back the same tables.
Missing and wrong keys are refused before anything is fetched (exit 2); truncated,
bit-flipped and re-encrypted objects are exit 4 naming the object; in every case the target
database is never created. Key rotation: old backups open with old identities, and
``keys check`` says which identity opens what.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.backup.encryption import short
from datatier.backup.manifest import Manifest, backup_prefix, manifest_key
from datatier.backup.service import load_policy, run_backup
from datatier.backup.stores import store_for
from datatier.config import load
from datatier.storage.base import ObjectStore
from tests.integration.binlog_support import checksums, query
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import (
    MARKER,
    Key,
    cli,
    decrypt,
    encryption_env,
    identity_file,
    make_key,
    plaintext_in,
)

DB = "crypt_src"
POLICY = "crypt-mysql"
PLAIN_POLICY = "crypt-mysql-plain"
COPIES = ("crypt_copy", "crypt_by_hand", "crypt_damaged", "crypt_nokey", "crypt_old")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Key]:
    directory = tmp_path_factory.mktemp("age-keys")
    return {name: make_key(directory, name) for name in ("old", "new", "offline", "stranger")}


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


def clear(store: ObjectStore, *policies: str) -> None:
    for policy in policies:
        store.delete([o.key for o in store.list_objects(f"{policy}/")])


def database_exists(sandbox: SandboxHandle, name: str) -> bool:
    rows = query(
        sandbox.config,
        "primary",
        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s",
        (name,),
    )
    return bool(rows)


@pytest.fixture(scope="module")
def source(sandbox: SandboxHandle) -> Iterator[None]:
    """``crypt_src``: 20k ordinary rows (several data objects) and the marker row."""
    store = store_of(sandbox)
    clear(store, POLICY, PLAIN_POLICY)  # a reused sandbox
    with sandbox.connect() as conn, conn.cursor() as cur:
        for name in (DB, *COPIES):
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.people (id INT PRIMARY KEY, name VARCHAR(64), note TEXT)")
        cur.execute(
            f"INSERT INTO {DB}.people SELECT seq, CONCAT('person ', seq), "
            f"REPEAT(CONCAT('note ', seq, ' '), 8) FROM {DB}.seq_1_to_20000"
        )
        cur.execute(f"CREATE TABLE {DB}.vault (id INT PRIMARY KEY, secret VARCHAR(200))")
        cur.execute(f"INSERT INTO {DB}.vault VALUES (1, %s)", (MARKER.decode(),))
        cur.execute(f"CREATE VIEW {DB}.named AS SELECT id, name FROM {DB}.people WHERE id < 10")
    sandbox.wait_replicated()
    body = "chunk_mb = 1\njobs = 2\nbundle_tables = false\n"  # these tests pick tables' objects
    body += f'[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    body += "include_grants = true\n"  # accounts and password hashes: encrypted like the rest
    sandbox.write_policy(POLICY, f'engine = "mysql"\n{body}')
    sandbox.write_policy(PLAIN_POLICY, f'engine = "mysql"\nencrypt = false\n{body}')
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for name in (DB, *COPIES):
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
    clear(store, POLICY, PLAIN_POLICY)
    for name in (POLICY, PLAIN_POLICY):
        (sandbox.root / "backups" / f"{name}.toml").unlink(missing_ok=True)
    sandbox.wait_replicated()


def backup(sandbox: SandboxHandle, policy: str, *recipients: Key) -> Manifest:
    loaded = load(str(sandbox.config_path), environ=encryption_env(list(recipients)))
    return run_backup(loaded, load_policy(loaded, policy))


@pytest.fixture(scope="module")
def encrypted(sandbox: SandboxHandle, source: None, keys: dict[str, Key]) -> Manifest:
    return backup(sandbox, POLICY, keys["new"], keys["offline"])


def test_every_object_is_compressed_then_encrypted_and_the_manifest_says_so(
    sandbox: SandboxHandle, encrypted: Manifest, keys: dict[str, Key]
) -> None:
    recipients = [keys["new"].public, keys["offline"].public]
    assert encrypted.encryption == {"method": "age", "recipients": recipients}
    assert encrypted.format_version == 4
    assert len([o for o in encrypted.objects if o.kind == "data"]) >= 3
    assert "grants" in {o.kind for o in encrypted.objects}
    store = store_of(sandbox)
    for record in encrypted.objects:
        assert record.key.endswith(".sql.zst.age") and record.recipients == tuple(recipients)
        stored = b"".join(store.iter_read(record.key))
        assert stored.startswith(b"age-encryption.org/v1\n"), record.key
        assert (len(stored), hashlib.sha256(stored).hexdigest()) == (record.size, record.sha256)
        plain = subprocess.run(
            ["age", "-d", "-i", str(keys["offline"].path)], input=stored, capture_output=True,
            check=True,
        ).stdout  # fmt: skip
        assert (len(plain), hashlib.sha256(plain).hexdigest()) == (
            record.plain_size,
            record.plain_sha256,
        )
    manifest = json.loads(store.get_bytes(manifest_key(POLICY, encrypted.backup_id)))
    assert manifest["encryption"]["recipients"] == recipients, "the manifest stays readable"


def test_no_piece_of_the_marker_row_is_in_any_stored_object(
    sandbox: SandboxHandle, encrypted: Manifest, keys: dict[str, Key]
) -> None:
    store = store_of(sandbox)
    assert plaintext_in(store, backup_prefix(POLICY, encrypted.backup_id)) == []
    # The search can fail: the marker is in the decrypted data, and an unencrypted backup
    # of the same database shows it in its stored (compressed) objects.
    vault = next(o for o in encrypted.objects if o.table == "vault" and o.kind == "data")
    assert MARKER in decrypt(b"".join(store.iter_read(vault.key)), keys["new"])
    plain = backup(sandbox, PLAIN_POLICY, keys["new"])
    assert not plain.encryption and plain.format_version == 2
    assert all(o.key.endswith(".sql.zst") and not o.encrypted for o in plain.objects)
    assert plaintext_in(store, backup_prefix(PLAIN_POLICY, plain.backup_id))


def test_restore_decrypts_and_round_trips(
    sandbox: SandboxHandle, encrypted: Manifest, keys: dict[str, Key], tmp_path: Path
) -> None:
    rotated = identity_file(tmp_path, "rotated", keys["old"], keys["new"])
    env = encryption_env([keys["new"]], rotated)
    result = cli(
        sandbox.config_path, env, "restore", encrypted.backup_id, "--rename", f"{DB}=crypt_copy"
    )
    assert result.code == 0, result.err
    assert checksums(sandbox.config, "primary", "crypt_copy") == checksums(
        sandbox.config, "primary", DB
    )
    rows = query(sandbox.config, "primary", "SELECT secret FROM crypt_copy.vault")
    assert rows == [(MARKER.decode(),)]


def test_the_stock_age_zstd_mariadb_path_restores_the_database(
    sandbox: SandboxHandle, encrypted: Manifest, keys: dict[str, Key], tmp_path: Path
) -> None:
    """README: ``age -d -i key.txt OBJECT.zst.age | zstd -d | mariadb DB``, in kind order."""
    store = store_of(sandbox)
    cfg = sandbox.config.mysql
    node = cfg.nodes["primary"]
    cnf = tmp_path / "client.cnf"
    cnf.write_text(
        f"[client]\nhost={node.host}\nport={node.port}\nuser={cfg.user}\n"
        f"password={cfg.password.reveal()}\n"
    )
    copy = "crypt_by_hand"
    query(sandbox.config, "primary", f"CREATE DATABASE {copy}")
    for kind in (
        "schema",
        "bundle",
        "data",
        "triggers",
        "routines",
        "events",
        "viewstubs",
        "views",
    ):
        for record in (o for o in encrypted.objects if o.kind == kind):
            obj = tmp_path / Path(record.key).name
            obj.write_bytes(b"".join(store.iter_read(record.key)))
            subprocess.run(
                [
                    "bash", "-o", "pipefail", "-c",
                    f"age -d -i {keys['offline'].path} {obj} | zstd -d | "
                    f"mariadb --defaults-file={cnf} {copy}",
                ],
                check=True, capture_output=True,
            )  # fmt: skip
    assert checksums(sandbox.config, "primary", copy) == checksums(sandbox.config, "primary", DB)
    assert query(sandbox.config, "primary", f"SELECT COUNT(*) FROM {copy}.named") == [(9,)]


def test_show_and_verify_need_no_key_and_the_restore_test_decrypts(
    sandbox: SandboxHandle, encrypted: Manifest, keys: dict[str, Key]
) -> None:
    shown = cli(sandbox.config_path, {}, "backups", "show", encrypted.backup_id)
    assert shown.code == 0 and f"encryption   age, to {keys['new'].public}" in shown.out
    doc = json.loads(
        cli(sandbox.config_path, {}, "backups", "show", encrypted.backup_id, "--json").out
    )
    assert doc["encryption"]["recipients"] == [keys["new"].public, keys["offline"].public]
    assert cli(sandbox.config_path, {}, "backups", "verify", encrypted.backup_id).code == 0
    refused = cli(
        sandbox.config_path, {}, "backups", "verify", encrypted.backup_id, "--restore-test"
    )
    assert refused.code == 2 and "needs its age identity" in refused.err
    env = encryption_env([keys["new"]], keys["new"].path)
    result = cli(
        sandbox.config_path,
        env,
        "backups",
        "verify",
        encrypted.backup_id,
        "--restore-test",
        "--json",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["restore_test"]["tables"] == len(encrypted.tables)


@pytest.mark.parametrize("identity", ["none", "stranger"])
def test_a_missing_or_wrong_identity_is_exit_2_before_anything(
    sandbox: SandboxHandle, encrypted: Manifest, keys: dict[str, Key], identity: str
) -> None:
    env = encryption_env([keys["new"]], None if identity == "none" else keys["stranger"].path)
    for extra in ((), ("--dry-run",)):
        result = cli(
            sandbox.config_path,
            env,
            "restore",
            encrypted.backup_id,
            "--rename",
            f"{DB}=crypt_nokey",
            *extra,
        )
        assert result.code == 2, result.err
        if identity == "none":
            assert "needs its age identity" in result.err
        else:
            assert "no identity in encryption.identity opens it" in result.err
            assert short(keys["new"].public) in result.err
            assert short(keys["stranger"].public) in result.err
        assert keys["stranger"].secret not in result.err + result.out
    assert not database_exists(sandbox, "crypt_nokey")


@pytest.fixture(scope="module")
def victim_backup(sandbox: SandboxHandle, source: None, keys: dict[str, Key]) -> Manifest:
    return backup(sandbox, POLICY, keys["new"])


DAMAGES = {
    "truncated": ("truncated", False),
    "bit-flipped": ("SHA-256 mismatch", False),
    "bit-flipped, manifest forged to match": ("cannot be decrypted", True),
    "re-encrypted to another key": (r"SHA-256 mismatch|truncated|longer", False),
    "re-encrypted to another key, manifest forged": ("encrypted to another key", True),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_ciphertext_is_exit_4_naming_the_object_and_nothing_is_applied(
    sandbox: SandboxHandle, victim_backup: Manifest, keys: dict[str, Key], damage: str
) -> None:
    store = store_of(sandbox)
    index, victim = next(
        (i, o)
        for i, o in enumerate(victim_backup.objects)
        if o.table == "people" and o.kind == "data"
    )
    original = b"".join(store.iter_read(victim.key))
    mkey = manifest_key(POLICY, victim_backup.backup_id)
    original_manifest = store.get_bytes(mkey)
    if damage == "truncated":
        bad = original[: len(original) - 1000]
    elif damage.startswith("bit-flipped"):
        flipped = bytearray(original)
        flipped[len(original) // 2] ^= 0x01
        bad = bytes(flipped)
    else:  # what an attacker holding the stranger's key (or a mix-up of stores) would put
        sql = decrypt(original, keys["new"])
        bad = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"zstd -q | age -r {keys['stranger'].public}"],
            input=sql, capture_output=True, check=True,
        ).stdout  # fmt: skip
    message, forge = DAMAGES[damage]
    try:
        store.put_bytes(victim.key, bad)
        if forge:
            doctored = Manifest.decode(original_manifest, "test")
            doctored.objects[index] = dataclasses.replace(
                victim, size=len(bad), sha256=hashlib.sha256(bad).hexdigest()
            )
            store.put_bytes(mkey, doctored.encode())
        env = encryption_env([keys["new"]], keys["new"].path)
        result = cli(
            sandbox.config_path,
            env,
            "restore",
            victim_backup.backup_id,
            "--rename",
            f"{DB}=crypt_damaged",
        )
        assert result.code == 4, result.err
        assert victim.key in result.err
        assert re.search(message, result.err), result.err
        assert not database_exists(sandbox, "crypt_damaged"), "nothing may be applied"
    finally:
        store.put_bytes(victim.key, original)
        store.put_bytes(mkey, original_manifest)


def test_key_rotation_old_backups_open_with_old_identities_and_keys_check_says_so(
    sandbox: SandboxHandle, encrypted: Manifest, keys: dict[str, Key], tmp_path: Path
) -> None:
    before = backup(sandbox, POLICY, keys["old"])  # encrypted to the key being retired
    after = backup(sandbox, POLICY, keys["new"])  # after the rotation
    new_only = encryption_env([keys["new"]], keys["new"].path)
    both = encryption_env([keys["new"]], identity_file(tmp_path, "both", keys["old"], keys["new"]))

    result = cli(sandbox.config_path, new_only, "keys", "check", "--json")
    assert result.code == 1, result.err
    assert f"{POLICY}/{before.backup_id}" in result.err
    report = json.loads(result.out)
    mine = {i["name"]: i for i in report["items"] if i["policy"] == POLICY}
    assert mine[before.backup_id]["opened_by"] == [] and mine[before.backup_id]["encrypted"]
    assert mine[after.backup_id]["opened_by"] == [keys["new"].public]
    assert mine[encrypted.backup_id]["recipients"] == [keys["new"].public, keys["offline"].public]
    assert report["recipients"] == [{"public_key": keys["new"].public, "held_here": True}]
    assert keys["new"].secret not in result.out + result.err

    result = cli(sandbox.config_path, both, "keys", "check")
    assert result.code == 0, result.err
    assert f"{short(keys['old'].public)} opens" in result.out
    assert "LOCKED" not in result.out

    refused = cli(
        sandbox.config_path, new_only, "restore", before.backup_id, "--rename", f"{DB}=crypt_old"
    )
    assert refused.code == 2 and short(keys["old"].public) in refused.err
    restored = cli(
        sandbox.config_path, both, "restore", before.backup_id, "--rename", f"{DB}=crypt_old"
    )
    assert restored.code == 0, restored.err
    assert checksums(sandbox.config, "primary", "crypt_old") == checksums(
        sandbox.config, "primary", DB
    )


def test_encrypt_true_without_recipients_is_exit_2_and_writes_nothing(
    sandbox: SandboxHandle, source: None
) -> None:
    name = "crypt-insists"
    path = sandbox.write_policy(
        name,
        f'engine = "mysql"\nencrypt = true\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n',
    )
    try:
        result = cli(sandbox.config_path, {}, "backup", "run", name)
        assert result.code == 2 and "names no recipients" in result.err
        written = [o.key for o in store_of(sandbox).list_objects(f"{name}/")]
        assert written == [f"{name}/_status/backup.json"], "only the job's failure record"
    finally:
        path.unlink()
        clear(store_of(sandbox), name)
