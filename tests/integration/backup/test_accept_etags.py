"""``backups verify --accept-etags`` on the sandbox's S3 server: a backup listed damaged
because an object was copied with its own bytes under another ETag (a multipart upload, as
copy tools make) is accepted and listed complete again; one whose object holds other bytes
is refused (exit 4) and its manifest left byte for byte as it was."""

from __future__ import annotations

import os

import pytest

from datatier.backup.listing import same_etag
from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.service import load_policy, run_backup
from datatier.storage.base import ObjectStore
from datatier.storage.s3 import S3Store
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import (
    cli_json,
    default_store,
    integ_data,  # noqa: F401  (fixture)
    loaded_config,
    policy,
)

pytestmark = pytest.mark.usefixtures("integ_data")


def copy_multipart(store: ObjectStore, key: str, data: bytes | None = None) -> None:
    """Write ``key`` again in a one-part multipart upload (its own bytes unless ``data``):
    what `aws s3 cp` and similar tools do with large objects; the ETag is a multipart one."""
    assert isinstance(store, S3Store)
    body = store.get_bytes(key) if data is None else data
    full = store._full(key)
    client, bucket = store.client, store.bucket
    upload = client.create_multipart_upload(Bucket=bucket, Key=full)["UploadId"]
    part = client.upload_part(Bucket=bucket, Key=full, UploadId=upload, PartNumber=1, Body=body)
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=full,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )


def states(capsys: pytest.CaptureFixture[str], name: str) -> dict[str, str]:
    code, listed = cli_json(capsys, "backups", "list", name, "--all", "--json")
    assert code == 0
    return {b["id"]: b["state"] for b in listed["backups"]}


def test_accept_etags_after_a_byte_identical_copy_and_refuse_after_other_bytes(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    name = policy(sandbox, "integ-accept-etags")
    loaded = loaded_config(sandbox)
    made = run_backup(loaded, load_policy(loaded, name))
    store = default_store(sandbox)
    key = manifest_key(name, made.backup_id)
    first, second = [o for o in made.objects if o.kind == "data"][:2]

    copy_multipart(store, first.key)
    listed = store.head(first.key).etag
    assert listed is not None and first.etag is not None and not same_etag(listed, first.etag)
    assert states(capsys, name) == {made.backup_id: "damaged"}

    code, doc = cli_json(capsys, "backups", "verify", made.backup_id, "--accept-etags", "--json")
    assert code == 0, doc
    assert doc["ok"] and doc["accepted_etags"] == {made.backup_id: [first.key]}
    assert states(capsys, name) == {made.backup_id: "complete"}
    accepted = Manifest.decode(store.get_bytes(key), key)
    assert {o.key: o.etag for o in accepted.objects} == {
        **{o.key: o.etag for o in made.objects},
        first.key: listed,
    }
    code, doc = cli_json(capsys, "backups", "verify", made.backup_id, "--accept-etags", "--json")
    assert code == 0 and doc["accepted_etags"] == {}  # nothing differs: nothing written

    # One object copied with its bytes, another rewritten with other bytes of its size.
    copy_multipart(store, made.objects[0].key)
    copy_multipart(store, second.key, os.urandom(second.size))
    before = store.get_bytes(key)
    code, doc = cli_json(capsys, "backups", "verify", made.backup_id, "--accept-etags", "--json")
    assert code == 4 and doc["ok"] is False, doc
    assert second.key in doc["error"] and "SHA-256" in doc["error"], doc
    assert "no ETag was accepted" in doc["hint"], doc
    assert store.get_bytes(key) == before
    assert states(capsys, name) == {made.backup_id: "damaged"}
