"""``backup run --dry-run`` (issue 13 item 1) on the sandbox's real servers: the plan names
what a real run right after it dumps (MySQL logical, Mongo, physical), a dry run leaves the
whole bucket as it was, and it refuses as a run does (exit 5, 2, 3) without notifying."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest

from datatier.backup.manifest import Manifest, manifest_key
from datatier.mysql import dumpplan
from datatier.mysql.physical.scratch import free_port
from datatier.storage.s3 import S3Store
from tests.integration.conftest import SandboxHandle, sql
from tests.integration.encryption_support import encryption_env, make_key
from tests.integration.integrity import clear_prefix, default_store
from tests.integration.physical_support import Result, cli

PLAN_KEYS = {
    "dry_run", "policy", "engine", "kind", "parent", "source", "consistency", "jobs",
    "store", "estimates", "tables", "details", "summary",
}  # fmt: skip
TABLE_KEYS = {"database", "name", "kind", "rows_estimate", "bytes_estimate", "ranges"}
STORE_KEYS = {"url", "prefix", "storage_class", "compression", "encrypted", "recipients"}
DB = "plan_db"
MONGO_DB = "plan_mongo"


def bucket(sandbox: SandboxHandle) -> list[tuple[str, int, str, str]]:
    """Every object of the sandbox's bucket (all prefixes): key, size, ETag, modified."""
    store = default_store(sandbox)
    assert isinstance(store, S3Store)
    found = []
    for page in store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket):
        found += [
            (o["Key"], o["Size"], o["ETag"], o["LastModified"].isoformat())
            for o in page.get("Contents", [])
        ]
    return sorted(found)


def dry_run(sandbox: SandboxHandle, policy: str, *flags: str) -> dict[str, Any]:
    """The --json plan of ``policy``, checking that the bucket did not change."""
    before = bucket(sandbox)
    result = cli(sandbox, "backup", "run", policy, "--dry-run", "--json", *flags)
    assert result.code == 0, result.err
    assert bucket(sandbox) == before, "a dry run wrote to the store"
    plan: dict[str, Any] = result.json()
    assert set(plan) == PLAN_KEYS and set(plan["store"]) == STORE_KEYS
    assert all(set(t) == TABLE_KEYS for t in plan["tables"])
    assert plan["dry_run"] is True and plan["policy"] == policy and plan["summary"]
    assert plan["estimates"]["estimated"] is True
    return plan


def run(sandbox: SandboxHandle, policy: str, *flags: str) -> Manifest:
    result = cli(sandbox, "backup", "run", policy, "--json", *flags)
    assert result.code == 0, result.err
    store = default_store(sandbox)
    key = manifest_key(policy, result.json()["id"])
    return Manifest.decode(store.get_bytes(key), key)


def held(plan: dict[str, Any], *kinds: str) -> list[str]:
    return sorted(f"{t['database']}.{t['name']}" for t in plan["tables"] if t["kind"] in kinds)


POLICIES = ("plan-mysql", "plan-text", "plan-mongo", "plan-phys", "plan-lag", "plan-gone")
"""Every policy this module writes: they and their backups go at its end (the Mongo one is
encrypted to keys no later test holds, which `keys check` would then report)."""


def write_policy(sandbox: SandboxHandle, name: str, text: str) -> str:
    assert name in POLICIES, "list the policy in POLICIES so that it is cleaned up"
    sandbox.write_policy(name, text)
    clear_prefix(default_store(sandbox), name)
    return name


@pytest.fixture(scope="module", autouse=True)
def policies_removed_after(sandbox: SandboxHandle) -> Iterator[None]:
    yield
    for name in POLICIES:
        clear_prefix(default_store(sandbox), name)
        (sandbox.root / "backups" / f"{name}.toml").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def plan_db(sandbox: SandboxHandle) -> Iterator[None]:
    """Tables that split (integer key), one that cannot (string key), an Aria table (read
    under the lock), a sequence and a view."""
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    sql(sandbox, "primary", f"CREATE DATABASE {DB}")
    sql(sandbox, "primary", f"CREATE TABLE {DB}.big (id INT PRIMARY KEY, v VARCHAR(200))")
    sql(sandbox, "primary", f"INSERT INTO {DB}.big SELECT seq, REPEAT('b', 150) "
                            f"FROM {DB}.seq_1_to_20000")  # fmt: skip
    sql(sandbox, "primary", f"CREATE TABLE {DB}.named (k VARCHAR(20) PRIMARY KEY, n INT)")
    sql(sandbox, "primary", f"INSERT INTO {DB}.named SELECT CONCAT('k', seq), seq "
                            f"FROM {DB}.seq_1_to_500")  # fmt: skip
    sql(sandbox, "primary", f"CREATE TABLE {DB}.aria (id INT PRIMARY KEY) ENGINE=Aria")
    sql(sandbox, "primary", f"INSERT INTO {DB}.aria SELECT seq FROM {DB}.seq_1_to_100")
    sql(sandbox, "primary", f"CREATE SEQUENCE {DB}.ids")
    sql(sandbox, "primary", f"CREATE VIEW {DB}.v AS SELECT COUNT(*) AS c FROM {DB}.big")
    sql(sandbox, "primary", f"ANALYZE TABLE {DB}.big, {DB}.named")
    sandbox.wait_replicated()
    yield
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")


def test_mysql_plan_names_what_the_run_dumps_and_how_it_splits(
    sandbox: SandboxHandle, plan_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dumpplan, "MIN_RANGE_BYTES", 1)  # split even these small tables
    name = write_policy(
        sandbox,
        "plan-mysql",
        f'engine = "mysql"\njobs = 4\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n',
    )
    plan = dry_run(sandbox, name)
    manifest = run(sandbox, name)

    assert held(plan, "table", "sequence") == sorted(
        f"{t.database}.{t.name}" for t in manifest.tables
    )
    assert held(plan, "view") == [f"{DB}.v"]
    splits = {s["table"]: s["split_points"] for s in plan["details"]["split_tables"]}
    assert len(splits.get(f"{DB}.big", [])) >= 1, "the test must exercise key ranges"
    for table in manifest.tables:
        qualified = f"{table.database}.{table.name}"
        assert list(table.split_points) == splits.get(qualified, []), qualified
    ranges = {f"{t['database']}.{t['name']}": t["ranges"] for t in plan["tables"]}
    assert ranges[f"{DB}.big"] == len(splits[f"{DB}.big"]) + 1 and ranges[f"{DB}.named"] == 1
    assert plan["details"]["untransactional_tables"] == [f"{DB}.aria"]
    assert manifest.consistency["untransactional_tables"] == [f"{DB}.aria"]
    assert plan["jobs"] == manifest.options["jobs"] == 4
    assert plan["consistency"] == manifest.consistency["method"]
    assert plan["source"]["node"] == manifest.source["node"] == "replica1"
    assert plan["source"]["lag_method"] == manifest.source["lag_method"]
    assert plan["kind"] == "full" and plan["parent"] is None
    assert plan["store"]["prefix"] == f"{name}/" and plan["store"]["storage_class"] == "STANDARD"
    rows = {f"{t.database}.{t.name}": t.rows for t in manifest.tables}
    estimated = {f"{t['database']}.{t['name']}": t["rows_estimate"] for t in plan["tables"]}
    assert estimated[f"{DB}.named"] == rows[f"{DB}.named"] == 500  # exact after ANALYZE
    assert 0.5 * rows[f"{DB}.big"] <= estimated[f"{DB}.big"] <= 1.5 * rows[f"{DB}.big"]


def test_mysql_plan_for_people_is_a_table_and_writes_nothing(
    sandbox: SandboxHandle, plan_db: None
) -> None:
    name = write_policy(
        sandbox,
        "plan-text",
        f'engine = "mysql"\n[source]\nnode = "replica2"\ndatabases = ["{DB}"]\n',
    )
    before = bucket(sandbox)
    result = cli(sandbox, "backup", "run", name, "--dry-run")
    assert result.code == 0, result.err
    assert bucket(sandbox) == before
    lines = result.out.splitlines()
    assert lines[0].startswith(f"would back up {name} (mysql, full) to s3://")
    assert "source replica2 (replica, lag " in result.out
    assert "consistency: BACKUP STAGE, 4 snapshot(s)" in result.out
    header = next(line for line in lines if line.startswith("TABLE"))
    assert header.split() == ["TABLE", "KIND", "ROWS~", "BYTES~", "RANGES"]
    assert any(line.split()[:2] == [f"{DB}.v", "view"] for line in lines)
    assert lines[-1] == "(~: the server's estimates; nothing was written)"


def test_mongo_plan_names_the_collections_the_run_dumps_and_how_they_are_stored(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = [make_key(tmp_path, "one"), make_key(tmp_path, "two")]
    for variable, value in encryption_env(keys).items():
        monkeypatch.setenv(variable, value)
    with pymongo.MongoClient[dict[str, Any]](
        sandbox.config.mongo.uri, serverSelectionTimeoutMS=3000
    ) as client:
        client.drop_database(MONGO_DB)
        client[MONGO_DB].people.insert_many([{"n": i, "s": "x" * 40} for i in range(700)])
        client[MONGO_DB].one.insert_one({"x": 1})
        client[MONGO_DB].skipped.insert_one({"x": 2})
    name = write_policy(
        sandbox,
        "plan-mongo",
        f'engine = "mongo"\n[source]\ndatabases = ["{MONGO_DB}"]\n'
        f'exclude_tables = ["{MONGO_DB}.skipped"]\n[storage]\ninitial_class = "GLACIER_IR"\n',
    )
    plan = dry_run(sandbox, name)
    manifest = run(sandbox, name)  # removed at the module's end (policies_removed_after)
    assert plan["store"]["encrypted"] is True and plan["store"]["recipients"] == 2
    assert len(manifest.encryption["recipients"]) == 2
    assert plan["store"]["storage_class"] == "GLACIER_IR"
    assert {o.storage_class for o in manifest.objects} == {"GLACIER_IR"}
    assert held(plan, "collection") == sorted(f"{t.database}.{t.name}" for t in manifest.tables)
    assert held(plan, "collection") == [f"{MONGO_DB}.one", f"{MONGO_DB}.people"]
    documents = {t["name"]: t["rows_estimate"] for t in plan["tables"]}
    assert documents == {"one": 1, "people": 700}
    assert plan["consistency"] == manifest.consistency["method"]
    assert plan["source"]["uri"] == manifest.source["uri"]


PHYSICAL = (
    'engine = "mariabackup"\njobs = 2\nchunk_mb = 2\nfull_every_days = 7\n'
    '[source]\nnode = "primary"\n[retention]\nkeep_last = 20\nmin_age_days = 0\n'
)


def physical_held(manifest: Manifest) -> tuple[list[str], list[str]]:
    """The manifest's tables and views of the databases a plan can name."""
    tables = [f"{db}.{t}" for db, slot in manifest.databases.items() for t in slot["tables"]]
    views = [f"{db}.{v}" for db, slot in manifest.databases.items() for v in slot["views"]]
    return sorted(tables), sorted(views)


def test_physical_plan_names_the_copy_and_its_parent(sandbox: SandboxHandle, plan_db: None) -> None:
    name = write_policy(sandbox, "plan-phys", PHYSICAL)
    plan = dry_run(sandbox, name)
    assert plan["kind"] == "full" and plan["parent"] is None
    assert plan["details"]["base_reason"] == "no earlier backup"
    assert plan["source"]["datadir"] and plan["source"]["tool_version"] != "unknown"
    full = run(sandbox, name)
    assert full.parent is None and full.consistency["backup_type"] == "full"
    tables, views = physical_held(full)
    assert held(plan, "table", "sequence") == tables
    assert held(plan, "view") == views
    assert f"{DB}.big" in tables and f"{DB}.v" in views
    assert plan["details"]["databases"] == sorted(full.databases)

    sql(
        sandbox, "primary", f"INSERT INTO {DB}.big SELECT seq, 'later' FROM {DB}.seq_20001_to_21000"
    )
    plan = dry_run(sandbox, name)  # full_every_days = 7 and a fresh full: an incremental
    assert plan["kind"] == "incremental" and plan["parent"] == full.backup_id
    assert plan["details"]["from_lsn"] == full.consistency["to_lsn"]
    assert plan["details"]["redo_bytes_since_parent"] > 0
    incremental = run(sandbox, name)
    assert incremental.parent == full.backup_id
    assert incremental.options["base_reason"] == plan["details"]["base_reason"]
    assert dry_run(sandbox, name, "--full")["kind"] == "full"


@pytest.fixture
def replica1_stopped(sandbox: SandboxHandle) -> Iterator[None]:
    sql(sandbox, "replica1", "STOP SLAVE SQL_THREAD")
    try:
        yield
    finally:
        sql(sandbox, "replica1", "START SLAVE SQL_THREAD")
        sandbox.wait_replicated()


def refused(sandbox: SandboxHandle, *args: str) -> Result:
    before = bucket(sandbox)
    result = cli(sandbox, "backup", "run", *args, "--dry-run")
    assert bucket(sandbox) == before, "a refused dry run wrote to the store"
    return result


def test_a_stopped_replica_refuses_the_dry_run_like_a_run_and_notifies_no_one(
    sandbox: SandboxHandle,
    plan_db: None,
    replica1_stopped: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    event = tmp_path / "event.json"
    monkeypatch.setenv("DATATIER_NOTIFY__COMMAND", f"sh -c 'cat > {event}'")
    name = write_policy(
        sandbox,
        "plan-lag",
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n',
    )
    dry = refused(sandbox, name)
    assert dry.code == 5
    assert "replica1: lag unknown (sql thread stopped)" in dry.err
    assert not event.exists(), "a dry run notified"
    real = cli(sandbox, "backup", "run", name)
    assert real.code == 5 and event.exists(), "the run itself refuses and notifies"


def test_bad_input_and_an_unreachable_server_exit_as_a_run_does(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = refused(sandbox, "no-such-policy")
    assert missing.code == 2 and "no-such-policy" in missing.err
    name = write_policy(
        sandbox, "plan-gone", f'engine = "mongo"\n[source]\ndatabases = ["{MONGO_DB}"]\n'
    )
    metrics = refused(sandbox, name, "--metrics-file", str(tmp_path / "m.prom"))
    assert metrics.code == 2 and not (tmp_path / "m.prom").exists()
    monkeypatch.setenv("DATATIER_MONGO__URI", f"mongodb://127.0.0.1:{_closed_port(sandbox)}/")
    monkeypatch.setenv("DATATIER_MONGO__SERVER_SELECTION_TIMEOUT", "0.5")
    gone = refused(sandbox, name)
    assert gone.code == 3, gone.err


def _closed_port(sandbox: SandboxHandle) -> int:
    """A port of this run's range where nothing listens (the sandbox uses base+0..+9)."""
    base = sandbox.config.mysql.nodes["primary"].port
    return free_port(range(base + 900, base + 1000))
