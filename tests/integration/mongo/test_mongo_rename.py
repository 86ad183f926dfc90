"""Mongo ``restore --rename A=B`` of a backup that also holds B: two source databases would
land in one target (their collections merged or colliding), so the restore is refused at
plan time (exit 2) and the target server is left as it was. On the sandbox's FerretDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store, failure_line, loaded_config

FIRST, SECOND, THIRD = "mongo_rn_a", "mongo_rn_b", "mongo_rn_c"


def client(sandbox: SandboxHandle) -> pymongo.MongoClient[Any]:
    return pymongo.MongoClient(sandbox.config.mongo.uri, serverSelectionTimeoutMS=3000)


def drop_all(sandbox: SandboxHandle) -> None:
    with client(sandbox) as c:
        for name in (FIRST, SECOND, THIRD):
            c.drop_database(name)


@pytest.fixture(scope="module")
def two_databases(sandbox: SandboxHandle) -> Iterator[Manifest]:
    """A backup of FIRST and SECOND (each with a collection ``t``), then both dropped."""
    drop_all(sandbox)
    with client(sandbox) as c:
        for name in (FIRST, SECOND):
            c[name].t.insert_many([{"n": i, "db": name} for i in range(20)])
    policy = "mongo-rename-two"
    sandbox.write_policy(
        policy, f'engine = "mongo"\n[source]\ndatabases = ["{FIRST}", "{SECOND}"]\n'
    )
    clear_prefix(default_store(sandbox), policy)
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, policy))
    drop_all(sandbox)
    yield manifest
    drop_all(sandbox)


@pytest.mark.parametrize(
    "renames", [[f"{FIRST}={SECOND}"], [f"{FIRST}={THIRD}", f"{SECOND}={THIRD}"]]
)
def test_two_source_databases_into_one_target_are_refused_before_anything_is_written(
    use_sandbox_config: SandboxHandle,
    two_databases: Manifest,
    renames: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: ``--rename A=B`` wrote A's documents into B beside B's own."""
    args = ["restore", two_databases.backup_id]
    for rename in renames:
        args += ["--rename", rename]
    capsys.readouterr()
    assert main(args) == 2
    target = renames[-1].split("=")[1]
    line = failure_line(capsys.readouterr().err)
    assert f"databases {FIRST} and {SECOND} would both be restored into {target}" in line
    with client(use_sandbox_config) as c:
        assert not {FIRST, SECOND, THIRD} & set(c.list_database_names())
