"""age encryption: keys from the config, sealing in the object writer, opening while staging.

The stores here are ``file://`` stores (no server needed); the stock ``age`` CLI is the
Debian package the Makefile installs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import zstandard
from pyrage import x25519

from datatier.backup.encryption import policy_recipients, unlock
from datatier.backup.manifest import ENCRYPTED_FORMAT_VERSION, Manifest, ObjectRecord
from datatier.backup.objects import ObjectWriter
from datatier.backup.policy import load_policy
from datatier.binlog.records import IndexRecord
from datatier.config import Config, load
from datatier.errors import ConfigError, IntegrityFailure, UsageError
from datatier.mysql.binlog.positions import Position
from datatier.pipeline.encrypt import (
    Unsealable,
    parse_identities,
    parse_recipients,
    seal,
    unseal_into,
)
from datatier.pipeline.staging import Wanted, stage
from datatier.storage.local import LocalStore

SQL = b"".join(b"INSERT INTO t VALUES (%d,'secret marker %d');\n" % (i, i) for i in range(30_000))


@pytest.fixture(scope="module")
def keys() -> dict[str, x25519.Identity]:
    return {name: x25519.Identity.generate() for name in ("old", "new", "offline", "stranger")}


def public(identity: x25519.Identity) -> str:
    return str(identity.to_public())


def test_seal_round_trips_and_consumes_its_input(keys: dict[str, x25519.Identity]) -> None:
    chunks = [SQL[i : i + 70_000] for i in range(0, len(SQL), 70_000)]
    sealed = seal(chunks, parse_recipients([public(keys["new"]), public(keys["offline"])]))
    assert chunks == [], "the plaintext list is released as it is read"
    assert sealed.plain_size == len(SQL)
    assert sealed.plain_sha256 == hashlib.sha256(SQL).hexdigest()
    ciphertext = b"".join(sealed.chunks)
    assert SQL[:40] not in ciphertext
    assert max(len(c) for c in sealed.chunks) <= 64 * 1024 + 16, "age's 64 KiB chunks"
    for who in ("new", "offline"):  # either recipient's key opens it
        out = io.BytesIO()
        assert unseal_into([ciphertext], out, parse_identities(str(keys[who]))) == (
            len(SQL),
            hashlib.sha256(SQL).hexdigest(),
        )
        assert out.getvalue() == SQL


def test_the_stock_age_cli_opens_what_seal_wrote(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    assert shutil.which("age"), "Debian's age package (make deps) is part of the contract"
    sealed = seal([SQL], parse_recipients([public(keys["new"])]))
    obj = tmp_path / "obj.sql.zst.age"
    obj.write_bytes(b"".join(sealed.chunks))
    key = tmp_path / "key.txt"
    key.write_text(f"# a comment\n{keys['new']}\n")
    out = subprocess.run(["age", "-d", "-i", str(key), str(obj)], capture_output=True, check=True)
    assert out.stdout == SQL


def test_unseal_tells_a_missing_key_from_a_damaged_body(keys: dict[str, x25519.Identity]) -> None:
    ciphertext = b"".join(seal([SQL], parse_recipients([public(keys["new"])])).chunks)
    with pytest.raises(Unsealable) as wrong:
        unseal_into([ciphertext], io.BytesIO(), parse_identities(str(keys["stranger"])))
    assert wrong.value.no_key
    mine = parse_identities(str(keys["new"]))
    flipped = bytearray(ciphertext)
    flipped[len(ciphertext) // 2] ^= 1
    for damaged in (bytes(flipped), ciphertext[:-1], ciphertext + b"\0", ciphertext[:90]):
        with pytest.raises(Unsealable) as bad:
            unseal_into([damaged], io.BytesIO(), mine)
        assert not bad.value.no_key


def test_unseal_passes_a_source_error_through(keys: dict[str, x25519.Identity]) -> None:
    ciphertext = b"".join(seal([SQL], parse_recipients([public(keys["new"])])).chunks)

    def broken() -> object:
        yield ciphertext[:5000]
        raise ConnectionResetError("store went away")

    with pytest.raises(ConnectionResetError):
        unseal_into(broken(), io.BytesIO(), parse_identities(str(keys["new"])))  # type: ignore[arg-type]


def test_bad_keys_are_named_by_position_never_quoted(keys: dict[str, x25519.Identity]) -> None:
    secret = str(keys["new"])
    with pytest.raises(ValueError, match="line 3") as bad:
        parse_identities(f"# ok\n{secret}\n{secret[:-3]}xyz\n")
    assert secret[20:] not in str(bad.value)
    with pytest.raises(ValueError, match="no identity"):
        parse_identities("# only a comment\n\n")
    several = parse_identities(f"{keys['old']}\n{keys['new']} {keys['offline']}")
    assert several.public == (public(keys["old"]), public(keys["new"]), public(keys["offline"]))
    with pytest.raises(ValueError, match=r"\[1\]"):
        parse_recipients([public(keys["new"]), "age1notakey"])
    with pytest.raises(ValueError, match="twice"):
        parse_recipients([public(keys["new"]), public(keys["new"])])


# -- configuration --------------------------------------------------------------------------


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "datatier.toml"
    path.write_text(body)
    return path


def test_config_takes_recipients_and_an_identity_file(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    (tmp_path / "age.key").write_text(  # as age-keygen writes them, twice
        f"# created: 2026-01-01T00:00:00Z\n# public key: {public(keys['old'])}\n{keys['old']}\n"
        f"# public key: {public(keys['new'])}\n{keys['new']}\n"
    )
    path = write_config(
        tmp_path,
        f'[encryption]\nrecipients = ["{public(keys["new"])}", "{public(keys["offline"])}"]\n'
        'identity_file = "age.key"\n',
    )
    config = load(str(path), environ={}).config
    assert config.encryption.recipients == [public(keys["new"]), public(keys["offline"])]
    secrets = config.secrets()
    assert str(keys["new"]) in secrets and str(keys["old"]) in secrets
    assert not {"public", "key:", "#", public(keys["new"])} & set(secrets), "comments stay"
    assert str(keys["new"]) not in repr(config)


def test_config_refuses_an_inline_identity_and_a_bad_recipient(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    path = write_config(tmp_path, f'[encryption]\nidentity = "{keys["new"]}"\n')
    with pytest.raises(ConfigError, match="secrets may not be written") as inline:
        load(str(path), environ={})
    assert str(keys["new"]) not in str(inline.value)
    path = write_config(tmp_path, '[encryption]\nrecipients = ["age1nope"]\n')
    with pytest.raises(ConfigError, match=r"encryption\.recipients\[0\]"):
        load(str(path), environ={})


def test_identity_from_the_environment(keys: dict[str, x25519.Identity], tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    env = {"DATATIER_ENCRYPTION__IDENTITY": f"{keys['old']}\n{keys['new']}"}
    config = load(str(path), environ=env).config
    identities = unlock(config, [sealed_record(keys, "old")], "backup X")
    assert identities is not None and len(identities.public) == 2


def policy_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "shop.toml"
    path.write_text(f'engine = "mysql"\n{extra}[source]\nnode = "replica1"\n')
    return path


def test_policies_encrypt_by_default_once_recipients_exist(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    with_keys = Config(
        encryption=dataclasses.replace(Config().encryption, recipients=[public(keys["new"])])
    )
    plain = load_policy(policy_file(tmp_path), "file:///x")
    assert policy_recipients(Config(), plain) is None
    found = policy_recipients(with_keys, plain)
    assert found is not None and found.keys == (public(keys["new"]),)
    opted_out = load_policy(policy_file(tmp_path, "encrypt = false\n"), "file:///x")
    assert policy_recipients(with_keys, opted_out) is None
    insisting = load_policy(policy_file(tmp_path, "encrypt = true\n"), "file:///x")
    with pytest.raises(ConfigError, match="names no recipients"):
        policy_recipients(Config(), insisting)


def sealed_record(keys: dict[str, x25519.Identity], *who: str) -> ObjectRecord:
    return ObjectRecord(
        key="p/b/data/x.sql.zst.age",
        kind="data",
        size=10,
        sha256="0" * 64,
        raw_size=10,
        storage_class="STANDARD",
        plain_size=5,
        plain_sha256="1" * 64,
        recipients=tuple(public(keys[w]) for w in who),
    )


def config_with_identity(*identities: x25519.Identity) -> Config:
    from datatier.typedtoml import Secret

    secret = Secret("\n".join(str(i) for i in identities))
    return Config(encryption=dataclasses.replace(Config().encryption, identity=secret))


def test_unlock_refuses_a_missing_or_wrong_identity_naming_public_keys_only(
    keys: dict[str, x25519.Identity],
) -> None:
    records = [sealed_record(keys, "new", "offline")]
    with pytest.raises(UsageError, match="needs its age identity"):
        unlock(Config(), records, "backup X")
    with pytest.raises(UsageError, match=r"no identity in encryption\.identity opens it") as wrong:
        unlock(config_with_identity(keys["stranger"]), records, "backup X")
    assert public(keys["new"])[:12] in str(wrong.value)
    assert str(keys["stranger"]) not in str(wrong.value)
    assert unlock(Config(), [dataclasses.replace(records[0], plain_sha256=None)], "b") is None
    # Rotation: one identity file with the old and the new key opens both generations.
    both = config_with_identity(keys["old"], keys["new"])
    assert unlock(both, [sealed_record(keys, "old"), sealed_record(keys, "new")], "b")
    with pytest.raises(UsageError):
        unlock(config_with_identity(keys["new"]), [sealed_record(keys, "old")], "b")


# -- the writer and the manifest ------------------------------------------------------------


def write_objects(
    store: LocalStore, keys: dict[str, x25519.Identity], recipients: tuple[str, ...]
) -> list[ObjectRecord]:
    writer = ObjectWriter(
        store, "pol/20260101T000000Z-abcd/", recipients=parse_recipients(list(recipients))
    )
    for part in range(3):
        obj = writer.open(f"db/tables/t/data-{part:05d}.sql.zst", "data", "db", "t", part)
        for i in range(0, len(SQL), 10_000):
            obj.write(SQL[i : i + 10_000], rows=0)
        writer.close(obj)
    return writer.finish()


def test_writer_stores_compressed_then_encrypted_objects(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    recipients = (public(keys["new"]), public(keys["offline"]))
    records = write_objects(store, keys, recipients)
    for record in records:
        assert record.key.endswith(".sql.zst.age") and record.recipients == recipients
        stored = b"".join(store.iter_read(record.key))
        assert record.size == len(stored)
        assert record.sha256 == hashlib.sha256(stored).hexdigest()
        assert b"secret marker" not in stored
        out = io.BytesIO()
        size, digest = unseal_into([stored], out, parse_identities(str(keys["offline"])))
        assert (size, digest) == (record.plain_size, record.plain_sha256)
        assert zstandard.ZstdDecompressor().stream_reader(out.getvalue()).read() == SQL


def test_manifest_keeps_recipients_once_and_reads_them_back(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    recipients = (public(keys["new"]),)
    records = write_objects(LocalStore(tmp_path / "store"), keys, recipients)
    manifest = Manifest(
        policy="pol",
        backup_id="20260101T000000Z-abcd",
        engine="mysql",
        tool_version="0",
        started_at="",
        finished_at="",
        source={},
        consistency={},
        objects=records,
        tables=[],
        format_version=ENCRYPTED_FORMAT_VERSION,
        encryption={"method": "age", "recipients": list(recipients)},
    )
    doc = json.loads(manifest.encode())
    assert doc["encryption"] == {"method": "age", "recipients": list(recipients)}
    assert all("recipients" not in o and o["plain_sha256"] for o in doc["objects"])
    back = Manifest.decode(manifest.encode(), "m")
    assert back.objects == records and back.recipients == recipients
    plain = dataclasses.replace(manifest, encryption={}, format_version=2, objects=[])
    assert "encryption" not in json.loads(plain.encode())


def test_binlog_index_records_carry_encryption_as_format_2(
    keys: dict[str, x25519.Identity],
) -> None:
    record = IndexRecord(
        seq=7,
        kind="segment",
        gtid_start=Position(),
        gtid_end=Position(),
        published_at="2026-01-01T00:00:00Z",
        key="pol/_binlogs/data/x.binlog.zst.age",
        size=10,
        sha256="a" * 64,
        plain_size=9,
        plain_sha256="b" * 64,
        recipients=(public(keys["new"]),),
    )
    doc = json.loads(record.encode())
    assert doc["format"] == 2 and doc["recipients"] == [public(keys["new"])]
    back = IndexRecord.decode(record.encode(), "r")
    assert back.object_record().recipients == (public(keys["new"]),)
    assert back.object_record().plain_sha256 == "b" * 64
    unencrypted = dataclasses.replace(record, plain_size=None, plain_sha256=None, recipients=())
    assert json.loads(unencrypted.encode())["format"] == 1


# -- staging: decrypt, prove, or refuse -----------------------------------------------------


def wanted(record: ObjectRecord) -> Wanted:
    return Wanted(record.key, record.size, record.sha256, record.plain_size, record.plain_sha256)


def test_staging_decrypts_and_checks_every_object(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    records = write_objects(store, keys, (public(keys["new"]),))
    mine = parse_identities(f"{keys['old']}\n{keys['new']}")
    with stage(store, [wanted(r) for r in records], identities=mine) as staged:
        for record in records:
            assert b"".join(staged.decompressed(record.key)) == SQL
    with pytest.raises(UsageError, match="no age identity"):
        stage(store, [wanted(records[0])])


def damage_cases(
    store: LocalStore, record: ObjectRecord, keys: dict[str, x25519.Identity]
) -> dict[str, tuple[bytes, bool]]:
    """name -> (new stored bytes, whether the record's size/SHA-256 are forged to match)."""
    stored = b"".join(store.iter_read(record.key))
    flipped = bytearray(stored)
    flipped[len(stored) // 2] ^= 0x40
    plain = io.BytesIO()
    unseal_into([stored], plain, parse_identities(str(keys["new"])))
    other_key = b"".join(
        seal([plain.getvalue()], parse_recipients([public(keys["stranger"])])).chunks
    )
    forged_content = zstandard.ZstdCompressor().compress(SQL.replace(b"marker 7'", b"marker 8'"))
    same_key_other_data = b"".join(
        seal([forged_content], parse_recipients(list(record.recipients))).chunks
    )
    return {
        "bit-flipped": (bytes(flipped), False),
        "truncated": (stored[: len(stored) - 100], False),
        "bit-flipped, record forged": (bytes(flipped), True),
        "truncated, record forged": (stored[: len(stored) - 100], True),
        "re-encrypted to another key": (other_key, False),
        "re-encrypted to another key, record forged": (other_key, True),
        "other data to the same key, record forged": (same_key_other_data, True),
    }


EXPECTED = {
    "bit-flipped": "SHA-256 mismatch",
    "truncated": "truncated",
    "bit-flipped, record forged": "cannot be decrypted",
    "truncated, record forged": "cannot be decrypted",
    "re-encrypted to another key": "SHA-256 mismatch|truncated|longer",  # age may add grease
    "re-encrypted to another key, record forged": "encrypted to another key",
    "other data to the same key, record forged": "plaintext size or SHA-256 mismatch",
}


def test_staging_names_each_kind_of_damage_and_leaves_nothing(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    records = write_objects(store, keys, (public(keys["new"]),))
    original = b"".join(store.iter_read(records[1].key))
    mine = parse_identities(str(keys["new"]))
    staging = tmp_path / "staging"
    staging.mkdir()
    for name, (data, forge) in damage_cases(store, records[1], keys).items():
        store.put_bytes(records[1].key, data)
        victim = records[1]
        if forge:
            victim = dataclasses.replace(
                victim, size=len(data), sha256=hashlib.sha256(data).hexdigest()
            )
        objects = [wanted(records[0]), wanted(victim), wanted(records[2])]
        with pytest.raises(IntegrityFailure, match=EXPECTED[name]) as failed:
            stage(store, objects, identities=mine, directory=staging, jobs=2)
        assert victim.key in str(failed.value), name
        assert not os.listdir(staging), f"{name}: nothing may stay staged"
        store.put_bytes(records[1].key, original)


def test_an_encrypted_object_without_recipients_is_an_unreadable_manifest(
    keys: dict[str, x25519.Identity], tmp_path: Path
) -> None:
    records = write_objects(LocalStore(tmp_path / "store"), keys, (public(keys["new"]),))
    doc = {
        "policy": "pol", "backup_id": "20260101T000000Z-abcd", "engine": "mysql",
        "tool_version": "0", "started_at": "", "finished_at": "", "source": {},
        "consistency": {}, "tables": [], "format_version": ENCRYPTED_FORMAT_VERSION,
        "objects": [r.to_json(r.recipients) for r in records],  # kept once: here, nowhere
    }  # fmt: skip
    with pytest.raises(IntegrityFailure, match="encrypted to no recipient"):
        Manifest.decode(json.dumps(doc).encode(), "m")
    record = json.loads(
        IndexRecord(
            seq=1, kind="segment", gtid_start=Position(), gtid_end=Position(),
            published_at="", key="k", plain_size=1, plain_sha256="b" * 64,
            recipients=(public(keys["new"]),),
        ).encode()
    )  # fmt: skip
    del record["recipients"]
    with pytest.raises(IntegrityFailure, match="no recipient"):
        IndexRecord.decode(json.dumps(record).encode(), "r")
