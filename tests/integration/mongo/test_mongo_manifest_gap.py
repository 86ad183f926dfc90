"""A Mongo backup whose manifest records a collection its objects do not hold whole: the
restore is refused (exit 4) before the target changes, naming the collection, and a
restore selecting only the other collections (``--tables``, ``--databases``) still runs.

Reproduction before the fix: a collection record with no objects at all (never listed, or
its every object left out: checksums cannot show an object that was never listed) was not
checked, and the restore brought back the other collections, exit 0, without a word. A
collection that kept some of its objects was already refused (its data parts do not add up
to its record). On the sandbox's FerretDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pymongo
import pytest

from datatier.backup.manifest import Manifest, TableRecord, manifest_key
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store, failure_line, loaded_config

A, B = "mgap_a", "mgap_b"
COPIES = {A: "mgap_a_copy", B: "mgap_b_copy"}
POLICY = "mongo-manifest-gap"
DOCS = {(A, "kept"): 3000, (A, "lost"): 7, (B, "t"): 10}
PAD = "p" * 1000  # kept: ~3 MB, several collection parts of chunk_mb = 1


def client(sandbox: SandboxHandle) -> pymongo.MongoClient[Any]:
    return pymongo.MongoClient(sandbox.config.mongo.uri, serverSelectionTimeoutMS=3000)


def drop(sandbox: SandboxHandle, *names: str) -> None:
    with client(sandbox) as c:
        for name in names:
            c.drop_database(name)


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle) -> Iterator[Manifest]:
    """A backup of A (``kept`` in several parts, ``lost``) and B (``t``)."""
    drop(sandbox, A, B, *COPIES.values())
    with client(sandbox) as c:
        for (db, name), n in DOCS.items():
            c[db][name].insert_many([{"_id": i, "pad": PAD} for i in range(n)])
    sandbox.write_policy(
        POLICY, f'engine = "mongo"\nchunk_mb = 1\n[source]\ndatabases = ["{A}", "{B}"]\n'
    )
    clear_prefix(default_store(sandbox), POLICY)
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, POLICY))
    assert len([o for o in manifest.objects if o.table == "kept" and o.kind == "collection"]) > 1
    yield manifest
    drop(sandbox, A, B, *COPIES.values())


def added_record(m: Manifest) -> tuple[Manifest, str, str, str]:
    """A record of a collection no object holds (one never listed)."""
    ghost = TableRecord(A, "ghost", rows=7, data_sha256="", data_bytes=70, kind="collection")
    return replace(m, tables=[*m.tables, ghost]), "ghost", f"{A}.ghost has no definition", "kept"


def objects_left_out(m: Manifest) -> tuple[Manifest, str, str, str]:
    """Every object of ``lost`` left out of the list, its record kept."""
    objects = [o for o in m.objects if (o.database, o.table) != (A, "lost")]
    return replace(m, objects=objects), "lost", f"{A}.lost has no definition", "kept"


def part_left_out(m: Manifest) -> tuple[Manifest, str, str, str]:
    """The last data part of ``kept`` left out: its parts hold fewer documents than recorded."""
    last = max((o for o in m.objects if o.table == "kept" and o.kind == "collection"),
               key=lambda o: o.part)  # fmt: skip
    held = DOCS[(A, "kept")] - last.rows
    message = f"{A}.kept: data objects hold {held} rows, the table record {DOCS[(A, 'kept')]}"
    return replace(m, objects=[o for o in m.objects if o is not last]), "kept", message, "lost"


@pytest.mark.parametrize("tamper", [added_record, objects_left_out, part_left_out])
def test_a_collection_the_objects_do_not_hold_is_refused_and_the_others_restore(
    use_sandbox_config: SandboxHandle,
    backup: Manifest,
    tamper: Callable[[Manifest], tuple[Manifest, str, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    store = default_store(sandbox)
    key = manifest_key(backup.policy, backup.backup_id)
    tampered, damaged, message, healthy = tamper(Manifest.decode(backup.encode(), "test"))
    store.put_bytes(key, tampered.encode())
    try:
        drop(sandbox, *COPIES.values())
        renames = [arg for src, dst in COPIES.items() for arg in ("--rename", f"{src}={dst}")]
        args = ["restore", backup.backup_id, *renames]
        capsys.readouterr()
        assert main(args) == 4
        line = failure_line(capsys.readouterr().err)
        assert message in line and "--tables" in line and "--databases" in line, line
        with client(sandbox) as c:
            assert not set(COPIES.values()) & set(c.list_database_names()), "nothing changed"
        # the collections it does not select do not block a restore of the others
        assert main([*args, "--databases", B]) == 0, capsys.readouterr().err
        assert main([*args, "--tables", f"{A}.{healthy}"]) == 0, capsys.readouterr().err
        assert main([*args, "--tables", f"{A}.{damaged}"]) == 4
        assert message in failure_line(capsys.readouterr().err)
        with client(sandbox) as c:
            assert c[COPIES[B]].t.count_documents({}) == DOCS[(B, "t")]
            copy = c[COPIES[A]]
            assert copy.list_collection_names() == [healthy]
            assert copy[healthy].count_documents({}) == DOCS[(A, healthy)]
    finally:
        store.put_bytes(key, backup.encode())
        drop(sandbox, *COPIES.values())
