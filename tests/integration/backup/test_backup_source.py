"""A backup reads only from a fresh-enough source (issue 12, item 5), on the sandbox's real
replicas: a stopped SQL thread and a real heartbeat lag (the replica's SQL thread held on a
locked heartbeat table while the primary keeps beating)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.service import load_policy, plan_backup, run_backup
from datatier.cli import main
from datatier.errors import NotReadyYet, UsageError
from datatier.mysql.connection import endpoint
from datatier.mysql.heartbeat import HeartbeatWriter
from datatier.mysql.lag import heartbeat_running
from datatier.mysql.pdump import ParallelDumpEngine
from tests.integration.conftest import SandboxHandle, sql, wait_for
from tests.integration.integrity import (  # noqa: F401  (integ_data: fixture)
    DB,
    backup_keys,
    default_store,
    integ_data,
    loaded_config,
    policy,
)

pytestmark = pytest.mark.usefixtures("integ_data")


def source_policy(sandbox: SandboxHandle, name: str, source: str) -> str:
    """A policy over the test database whose [source] reads ``source`` (TOML lines)."""
    sandbox.write_policy(name, f'engine = "mysql"\n[source]\n{source}\ndatabases = ["{DB}"]\n')
    return policy_name_cleared(sandbox, name)


def policy_name_cleared(sandbox: SandboxHandle, name: str) -> str:
    store = default_store(sandbox)
    store.delete([o.key for o in store.list_objects(f"{name}/")])
    return name


@pytest.fixture
def replica1_sql_stopped(sandbox: SandboxHandle) -> Iterator[None]:
    sql(sandbox, "replica1", "STOP SLAVE SQL_THREAD")
    try:
        yield
    finally:
        sql(sandbox, "replica1", "START SLAVE SQL_THREAD")
        sandbox.wait_replicated()


@pytest.fixture
def replica1_lagging(sandbox: SandboxHandle) -> Iterator[None]:
    """Heartbeat lag of about 3 s on replica1 (MASTER_DELAY = 3) while its threads run:
    the heartbeat writer beats every 0.1 s on the primary."""
    writer = HeartbeatWriter(endpoint(sandbox.config.mysql, "primary"), interval=0.1)
    writer.start()

    def delay(seconds: int) -> None:
        sql(sandbox, "replica1", "STOP SLAVE")
        sql(sandbox, "replica1", f"CHANGE MASTER TO MASTER_DELAY = {seconds}")
        sql(sandbox, "replica1", "START SLAVE")

    try:
        wait_for(lambda: heartbeat_running(endpoint(sandbox.config.mysql, "primary")), 10)
        delay(3)
        time.sleep(3.5)
        yield
    finally:
        delay(0)
        writer.stop()
        sandbox.clear_heartbeat()
        sandbox.wait_replicated()


def test_a_stopped_sql_thread_refuses_the_node_with_exit_5_and_writes_nothing(
    use_sandbox_config: SandboxHandle, replica1_sql_stopped: None, capsys: Any
) -> None:
    """Reproduction: a backup from a replica whose SQL thread was stopped exited 0."""
    sandbox = use_sandbox_config
    name = source_policy(sandbox, "integ-src-stopped", 'node = "replica1"')
    assert main(["backup", "run", name]) == 5
    err = capsys.readouterr().err
    assert "replica1: lag unknown (sql thread stopped)" in err
    assert backup_keys(default_store(sandbox), name) == []


def test_the_next_listed_replica_is_used_and_recorded(
    sandbox: SandboxHandle, replica1_sql_stopped: None
) -> None:
    sandbox.clear_heartbeat()  # no writer runs (an earlier test's fresh row would count)
    name = source_policy(sandbox, "integ-src-list", 'nodes = ["replica1", "replica2"]')
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, name))
    src = manifest.source
    assert src["node"] == "replica2" and src["role"] == "replica"
    assert src["candidates"] == ["replica1", "replica2"]
    assert src["skipped"] == ["replica1: lag unknown (sql thread stopped) is over 300 s"]
    assert src["lag_method"] == "seconds_behind" and src["lag_seconds"] == 0


def test_heartbeat_lag_over_max_lag_is_refused_and_any_replica_moves_on(
    use_sandbox_config: SandboxHandle, replica1_lagging: None, capsys: Any
) -> None:
    sandbox = use_sandbox_config
    name = source_policy(sandbox, "integ-src-lag", 'node = "replica1"\nmax_lag_seconds = 1')
    assert main(["backup", "run", name]) == 5
    err = capsys.readouterr().err
    assert "replica1: lag " in err and "(heartbeat) is over 1 s" in err
    assert main(["backup", "run", name, "--max-lag", "600", "--json"]) == 0, "the flag wins"
    capsys.readouterr()

    name = source_policy(sandbox, "integ-src-any", 'nodes = ["any-replica"]\nmax_lag_seconds = 1')
    assert main(["backup", "run", name, "--json"]) == 0
    backup_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["backups", "show", backup_id, "--json"]) == 0
    src = json.loads(capsys.readouterr().out)["source"]
    assert src["node"] == "replica2" and src["lag_method"] == "heartbeat"
    assert 0 <= src["lag_seconds"] <= 1 and src["candidates"] == ["replica1", "replica2"]


def test_any_replica_never_reads_the_primary(
    sandbox: SandboxHandle, replica1_sql_stopped: None
) -> None:
    sql(sandbox, "replica2", "STOP SLAVE SQL_THREAD")
    try:
        name = source_policy(sandbox, "integ-src-noprimary", 'nodes = ["any-replica"]')
        loaded = loaded_config(sandbox)
        with pytest.raises(NotReadyYet, match=r"replica1.*replica2"):
            run_backup(loaded, load_policy(loaded, name))
    finally:
        sql(sandbox, "replica2", "START SLAVE SQL_THREAD")


@pytest.mark.parametrize("limit", [math.nan, math.inf, -math.inf, -1.0])
def test_a_lag_limit_that_is_not_a_finite_number_is_refused_before_anything_is_written(
    sandbox: SandboxHandle, limit: float
) -> None:
    """Reproduction: run_backup(max_lag=nan) admitted any lag (``lag > nan`` is never true)
    and stored a manifest with ``"max_lag_seconds": NaN``, which is not JSON."""
    name = source_policy(sandbox, "integ-src-nan", 'node = "replica1"')
    loaded = loaded_config(sandbox)
    chosen = load_policy(loaded, name)
    refused = r"max_lag must be a finite number of seconds >= 0"
    with pytest.raises(UsageError, match=refused):
        plan_backup(loaded, chosen, max_lag=limit)
    with pytest.raises(UsageError, match=refused):
        run_backup(loaded, chosen, max_lag=limit)
    with pytest.raises(UsageError, match=refused):
        ParallelDumpEngine.for_policy(loaded, chosen, max_lag=limit)
    assert backup_keys(default_store(sandbox), name) == []
