"""Point-in-time restores on the sandbox's real MariaDB and S3 server.

Under a continuous write load (several tables; inserts, updates, deletes, a multi-statement
transaction, a DDL) a backup is taken, writing goes on, a time T and a GTID G are noted at
the same quiet moment, then a disaster strikes (DROP TABLE, a mass UPDATE). The reference
state is made independently of datatier: replica2 replicates ``UNTIL master_gtid_pos = G``.
``restore --until T`` and ``--until-gtid G`` (each renamed) must give exactly that state,
compared by CHECKSUM TABLE, row counts and columns. Bad targets are refused with exit 2
and change nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from datatier.backup.service import run_backup
from datatier.backup.stores import store_for
from datatier.binlog.chain import load_chain
from datatier.binlog.metrics import BinlogArchiveCollector
from datatier.binlog.status import ArchiveWatch
from datatier.cli import main
from datatier.config import load
from datatier.mysql.binlog.positions import Position
from datatier.storage.base import RestoreState
from tests.integration.binlog_support import (
    ArchiverProcess,
    Load,
    assert_replay_progress,
    binlog_env,
    checksums,
    fresh_policy,
    query,
    replay_progress,
    set_env,
    until,
    wait_archived,
)
from tests.integration.conftest import SandboxHandle

DB = "pitr_db"
POLICY = "pitr"
ENV = binlog_env(POLICY)


@pytest.fixture(scope="module")
def scenario(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Run the whole story once; tests then restore from it."""
    config = sandbox.config
    loaded, policy, _ = fresh_policy(sandbox, POLICY, DB, ENV)
    archiver = ArchiverProcess(sandbox.config_path, ENV, tmp_path_factory.mktemp("pitr") / "a.log")
    load_ = Load(config, "primary", DB)
    load_.create()
    query(config, "replica2", "STOP SLAVE")
    try:
        archiver.start()
        load_.start()
        wait_archived(config, POLICY, "primary")  # a segment before the backup, to prune
        manifest = run_backup(loaded, policy)
        time.sleep(1.0)
        query(config, "primary", f"ALTER TABLE {DB}.events ADD COLUMN extra INT DEFAULT 5")
        time.sleep(1.5)
        with load_.paused():
            gtid = str(query(config, "primary", "SELECT @@gtid_binlog_pos")[0][0])
            moment = math.floor(time.time()) + 1  # every transaction so far: an earlier second
            while time.time() < moment + 0.05:
                time.sleep(0.02)
        time.sleep(1.5)
        load_.stop()
        query(config, "primary", f"DROP TABLE {DB}.orders")
        query(config, "primary", f"UPDATE {DB}.items SET qty = 0, sku = 'gone'")
        # The reference, made without datatier: replica2 applies everything up to G.
        query(config, "replica2", f"START SLAVE UNTIL master_gtid_pos = '{gtid}'")
        until(lambda: query(config, "replica2", "SHOW SLAVE STATUS")[0][11] == "No", 60)
        reference = checksums(config, "replica2", DB)
        wait_archived(config, POLICY, "primary")
        yield {
            "gtid": gtid,
            "until": datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z"),
            "reference": reference,
            "backup": manifest,
            "transactions": load_.transactions,
        }
    finally:
        archiver.stop()
        query(config, "replica2", "START SLAVE")
        sandbox.wait_replicated(60)


def one_error_line(err: str) -> str:
    """The one line a refusal writes on stderr (plain at a terminal, else a JSON line with
    the message and exit code 2); AssertionError when there is more or it is not that."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    if lines[0].startswith("datatier: error:"):
        return lines[0]
    doc = json.loads(lines[0])
    assert doc["event"] == "command.failed" and doc["exit_code"] == 2, doc
    return str(doc["error"])


def restore(*args: str) -> int:
    return main(["restore", "--policy", POLICY, *args])


@pytest.fixture
def pitr_env(use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> SandboxHandle:
    set_env(monkeypatch, ENV)
    return use_sandbox_config


def test_the_scenario_is_not_trivial(scenario: dict[str, Any], sandbox: SandboxHandle) -> None:
    """The load wrote around the backup and the reference differs from the disaster."""
    reference = scenario["reference"]
    assert scenario["transactions"] > 300
    assert reference["orders#rows"] > 0 and "extra" in reference["events#columns"]
    assert reference != checksums(sandbox.config, "primary", DB)  # the disaster happened
    backup_gtid = scenario["backup"].consistency["gtid_pos"]
    assert backup_gtid and backup_gtid != scenario["gtid"]
    assert scenario["backup"].consistency["snapshot_at"]


@pytest.mark.parametrize("how", ["until", "until-gtid"])
def test_restore_to_the_target(
    how: str,
    scenario: dict[str, Any],
    pitr_env: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target_db = f"pitr_{how.replace('-', '_')}"
    query(pitr_env.config, "primary", f"DROP DATABASE IF EXISTS {target_db}")
    value = scenario["until"] if how == "until" else scenario["gtid"]
    drawn = replay_progress(monkeypatch)
    code = restore(f"--{how}", value, "--rename", f"{DB}={target_db}")
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "replayed" in out.out
    assert_replay_progress(drawn)
    assert checksums(pitr_env.config, "primary", target_db) == scenario["reference"]


def test_restore_of_one_table_replays_only_that_table(
    scenario: dict[str, Any], pitr_env: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """--tables: only items is restored and replayed (the ALTER of events is skipped)."""
    query(pitr_env.config, "primary", "DROP DATABASE IF EXISTS pitr_one")
    code = restore(
        "--until-gtid", scenario["gtid"], "--tables", f"{DB}.items", "--rename", f"{DB}=pitr_one"
    )
    assert code == 0, capsys.readouterr().err
    got = checksums(pitr_env.config, "primary", "pitr_one")
    assert set(got) == {"items", "items#rows", "items#columns"}
    assert got == {k: v for k, v in scenario["reference"].items() if k.startswith("items")}


def test_force_replaces_a_view_named_like_a_restored_table(
    scenario: dict[str, Any], pitr_env: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """--force over a target whose ``items`` is a view: the view is replaced by the table,
    which is then replayed; the report names what was replaced (was exit 1, "Table 'items'
    already exists")."""
    config = pitr_env.config
    query(config, "primary", "DROP DATABASE IF EXISTS pitr_kinds")
    query(config, "primary", "CREATE DATABASE pitr_kinds")
    query(config, "primary", "CREATE VIEW pitr_kinds.items AS SELECT 1 AS sku")
    args = ["--until-gtid", scenario["gtid"], "--tables", f"{DB}.items"]
    try:
        code = restore(*args, "--rename", f"{DB}=pitr_kinds", "--force", "--json")
        out = capsys.readouterr()
        assert code == 0, out.err
        replaced = {"database": "pitr_kinds", "name": "items", "present": "view",
                    "restored": "table"}  # fmt: skip
        assert json.loads(out.out)["base"]["replaced"] == [replaced]
        got = checksums(config, "primary", "pitr_kinds")
        assert got == {k: v for k, v in scenario["reference"].items() if k.startswith("items")}
    finally:
        query(config, "primary", "DROP DATABASE IF EXISTS pitr_kinds")


def test_dry_run_names_base_segments_classes_and_size(
    scenario: dict[str, Any], pitr_env: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    before = query(pitr_env.config, "primary", "SHOW DATABASES")
    code = restore("--until-gtid", scenario["gtid"], "--rename", f"{DB}=pitr_dry", "--dry-run")
    out = capsys.readouterr().out
    assert code == 0
    assert scenario["backup"].backup_id in out
    assert "STANDARD" in out and ".binlog.zst" in out and "of binlog" in out
    assert query(pitr_env.config, "primary", "SHOW DATABASES") == before


def test_dry_run_scan_reads_the_segments_and_changes_nothing(
    scenario: dict[str, Any],
    pitr_env: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--scan downloads and scans the segments (not the base) and reports where the replay
    ends; the plain dry run reads no segment; neither creates anything or leaves a copy."""
    before = query(pitr_env.config, "primary", "SHOW DATABASES")
    target = ["--until-gtid", scenario["gtid"], "--rename", f"{DB}=pitr_dry"]
    staging = ["--staging-dir", str(tmp_path)]
    assert restore(*target, "--dry-run", "--json", *staging) == 0
    assert "scan" not in json.loads(capsys.readouterr().out)
    code = restore(*target, "--dry-run", "--scan", "--json", *staging)
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    assert doc["dry_run"] is True
    assert doc["scan"]["last"] == scenario["gtid"]
    assert doc["scan"]["transactions"] > 0 and doc["scan"]["statement_bytes"] > 0
    assert restore(*target, "--dry-run", "--scan", *staging) == 0
    text = capsys.readouterr().out
    assert f"scanned: {doc['scan']['transactions']} transaction(s) to replay" in text
    assert f"up to {scenario['gtid']}" in text
    assert query(pitr_env.config, "primary", "SHOW DATABASES") == before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [("--scan",), ("--scan", "--rename", f"{DB}=pitr_bad"), ("--dry-run", "--scan", "ID")],
    ids=["without-dry-run", "with-rename", "without-until"],
)
def test_scan_outside_a_point_in_time_dry_run_is_refused(
    args: tuple[str, ...],
    scenario: dict[str, Any],
    pitr_env: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = query(pitr_env.config, "primary", "SHOW DATABASES")
    if "ID" in args:
        argv = ["restore", scenario["backup"].backup_id, *(a for a in args if a != "ID")]
    else:
        argv = ["restore", "--policy", POLICY, "--until-gtid", scenario["gtid"], *args]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--scan goes with --dry-run and --until or --until-gtid" in one_error_line(err)
    assert query(pitr_env.config, "primary", "SHOW DATABASES") == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--until", "2999-01-01T00:00:00Z"), "in the future"),
        (("--until", "2001-01-01T00:00:00Z"), "before the oldest backup"),
        (("--until", "yesterday at noon"), "not an ISO-8601 time"),
        (("--until-gtid", "0-1-x"), "not a MariaDB GTID"),
        (("--until-gtid", "9-1-5"), "domain 9"),
        (("--until-gtid", "0-1-99999999"), "beyond the binlog archive"),
    ],
)
def test_bad_targets_are_refused_and_change_nothing(
    args: tuple[str, ...],
    message: str,
    scenario: dict[str, Any],
    pitr_env: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = query(pitr_env.config, "primary", "SHOW DATABASES")
    code = restore(*args, "--rename", f"{DB}=pitr_bad")
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in one_error_line(err)
    assert query(pitr_env.config, "primary", "SHOW DATABASES") == before


def test_prune_removes_only_binlogs_no_kept_backup_needs(
    scenario: dict[str, Any],
    pitr_env: SandboxHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Segments wholly before the (only) kept backup go; the ones it needs stay, and a
    point-in-time restore still works after the prune. (The policies directory holds this
    policy alone: the backups of every MySQL policy there count, and other tests' backups
    in the shared sandbox are older than this archive.)"""
    alone = tmp_path / "policies"
    alone.mkdir()
    (alone / f"{POLICY}.toml").write_text(
        (pitr_env.root / "backups" / f"{POLICY}.toml").read_text()
    )
    monkeypatch.setenv("DATATIER_BACKUP__POLICIES_DIR", str(alone))
    backup = Position.parse(scenario["backup"].consistency["gtid_pos"])
    assert main(["backups", "prune", POLICY, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["binlogs"]
    assert plan["delete"], "the archive starts long before the backup: something to prune"
    assert all(backup.covers(Position.parse(d["to"])) for d in plan["delete"])
    assert main(["backups", "prune", POLICY, "--execute"]) == 0
    capsys.readouterr()
    store = store_for(pitr_env.config.backup.default_store, pitr_env.config)
    chain = load_chain(store, POLICY)
    assert not chain.gaps and chain.records
    assert backup.covers(chain.start) and not backup.covers(chain.records[0].gtid_end)
    query(pitr_env.config, "primary", "DROP DATABASE IF EXISTS pitr_pruned")
    code = restore("--until-gtid", scenario["gtid"], "--rename", f"{DB}=pitr_pruned")
    assert code == 0, capsys.readouterr().err
    assert checksums(pitr_env.config, "primary", "pitr_pruned") == scenario["reference"]


def test_archived_segments_follow_the_glacier_flow(
    scenario: dict[str, Any],
    pitr_env: SandboxHandle,
    slow_glacier: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`backups archive` moves segments with the data; a restore requests them all, exits 5
    without changing anything, and with --wait completes exactly."""
    pitr_env.write_policy(
        POLICY,
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
        '[storage]\narchive_class = "GLACIER"\narchive_after_days = 1\n',
    )
    args = ["backups", "archive", POLICY, "--execute", "--now", "2099-01-01T00:00:00Z"]
    assert main(args) == 0
    capsys.readouterr()
    store = store_for(pitr_env.config.backup.default_store, pitr_env.config)
    segments = [o for o in store.list_objects(f"{POLICY}/_binlogs/data/")]
    assert segments and {o.storage_class for o in segments} == {"GLACIER"}
    query(pitr_env.config, "primary", "DROP DATABASE IF EXISTS pitr_cold")
    target = ["--until-gtid", scenario["gtid"], "--rename", f"{DB}=pitr_cold"]
    assert restore(*target, "--dry-run") == 0
    assert "GLACIER" in capsys.readouterr().out
    assert restore(*target, "--dry-run", "--scan") == 2  # a dry run requests nothing
    assert "archived and not readable yet" in one_error_line(capsys.readouterr().err)
    assert {store.head(o.key).restore for o in segments} == {RestoreState.NONE}
    before = query(pitr_env.config, "primary", "SHOW DATABASES")
    assert restore(*target, "--no-wait") == 5
    err = capsys.readouterr().err
    assert "still being restored" in err and "run the same command again later" in err
    assert query(pitr_env.config, "primary", "SHOW DATABASES") == before
    assert restore(*target, "--wait", "--poll", "0.05") == 0, capsys.readouterr().err
    assert checksums(pitr_env.config, "primary", "pitr_cold") == scenario["reference"]
    elsewhere = [*target[:2], "--rename", f"{DB}=pitr_cold_again"]
    assert restore(*elsewhere, "--dry-run", "--scan") == 0, capsys.readouterr().err  # readable


def test_metrics_show_archive_lag_and_gaps(
    scenario: dict[str, Any], sandbox: SandboxHandle
) -> None:
    """The collector /metrics uses (with binlog.policy set) reads a background watch."""
    watch = ArchiveWatch(load(str(sandbox.config_path), environ=ENV), interval=0.2)
    registry = CollectorRegistry()
    registry.register(BinlogArchiveCollector(watch))
    assert "NaN" in generate_latest(registry).decode()  # nothing measured yet: unknown
    watch.start()
    try:
        until(lambda: watch.last is not None, 30)
        first = dict(watch.stores)
        seen = watch.last
        until(lambda: watch.last is not seen, 30)  # refreshed: the same store, not a new one
    finally:
        watch.stop()
    assert len(first) == 1 and watch.stores == first
    assert all(watch.stores[url] is store for url, store in first.items())
    text = generate_latest(registry).decode()
    assert f'datatier_binlog_archive_gaps{{policy="{POLICY}"}} 0.0' in text
    lag = next(
        ln for ln in text.splitlines() if ln.startswith("datatier_binlog_archive_lag_seconds{")
    )
    assert 0.0 <= float(lag.rsplit(" ", 1)[1]) < 60
