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
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import (
    clear_prefix,
    cli_json,
    copy_multipart,
    default_store,
    integ_data,  # noqa: F401  (fixture)
    loaded_config,
    policy,
)

pytestmark = pytest.mark.usefixtures("integ_data")


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


def test_accept_etags_on_a_physical_incremental_accepts_its_whole_chain_or_nothing(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """A physical chain copied by a tool (one part of the full backup and one of the
    incremental under multipart ETags): ``verify INC --accept-etags`` reads the whole chain
    and accepts both manifests; with another part of the full backup holding other bytes,
    it is exit 4 and neither manifest changes."""
    sandbox = use_sandbox_config
    name = "integ-accept-phys"
    sandbox.write_policy(
        name,
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 1\n[source]\nnode = "primary"\n'
        "[retention]\nkeep_last = 20\nmin_age_days = 0\n",
    )
    store = default_store(sandbox)
    clear_prefix(store, name)
    try:
        code, full = cli_json(capsys, "backup", "run", name, "--full", "--json")
        assert code == 0, full
        code, inc = cli_json(capsys, "backup", "run", name, "--incremental", "--json")
        assert code == 0, inc
        keys = {b: manifest_key(name, b) for b in (full["id"], inc["id"])}
        made = {b: Manifest.decode(store.get_bytes(k), k) for b, k in keys.items()}
        assert made[inc["id"]].parent == full["id"]
        parts = {b: [o for o in m.objects if o.kind == "mbstream"] for b, m in made.items()}
        assert len(parts[full["id"]]) >= 2, "the full backup has parts to copy and to spoil"
        copied = {b: p[0].key for b, p in parts.items()}
        for key in copied.values():
            copy_multipart(store, key)
        assert set(states(capsys, name).values()) == {"damaged"}

        # Other bytes in another part of the full backup: nothing is accepted.
        spoiled = parts[full["id"]][1]
        good = store.get_bytes(spoiled.key)
        copy_multipart(store, spoiled.key, os.urandom(spoiled.size))
        before = {b: store.get_bytes(k) for b, k in keys.items()}
        code, doc = cli_json(capsys, "backups", "verify", inc["id"], "--accept-etags", "--json")
        assert code == 4 and spoiled.key in doc["error"], doc
        assert {b: store.get_bytes(k) for b, k in keys.items()} == before, "no manifest changed"

        copy_multipart(store, spoiled.key, good)  # its own bytes back, under a new ETag
        code, doc = cli_json(capsys, "backups", "verify", inc["id"], "--accept-etags", "--json")
        assert code == 0, doc
        assert doc["accepted_etags"] == {
            full["id"]: sorted([copied[full["id"]], spoiled.key]),
            inc["id"]: [copied[inc["id"]]],
        }
        assert states(capsys, name) == {full["id"]: "complete", inc["id"]: "complete"}
    finally:
        clear_prefix(store, name)
        (sandbox.root / "backups" / f"{name}.toml").unlink(missing_ok=True)
