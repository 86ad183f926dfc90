"""``[health]`` settings, the hysteresis rule and the heartbeat DDL (no servers)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datatier.config import load
from datatier.errors import ConfigError, OperationFailed
from datatier.mysql.connection import Endpoint
from datatier.mysql.heartbeat import DDL, HeartbeatWriter
from datatier.mysql.replica_status import ReplicaStatus
from datatier.replication.snapshot import NodeHealth, hold_lagging

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "mysql" / "001_heartbeat.sql"


def test_health_defaults() -> None:
    health = load(None, environ={}).config.health
    assert health.interval == 1.0
    assert health.replica_max_lag == 2.0
    assert health.readmit_ratio == 0.5
    assert health.heartbeat_interval == 0.5
    assert health.listen == "127.0.0.1:8008"


def test_health_from_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "datatier.toml"
    path.write_text("[health]\ninterval = 0.25\nreplica_max_lag = 5\n")
    health = load(str(path), environ={"DATATIER_HEALTH__READMIT_RATIO": "0.8"}).config.health
    assert health.interval == 0.25
    assert health.replica_max_lag == 5.0
    assert health.readmit_ratio == 0.8


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("interval = 0.01", "below the minimum"),
        ("readmit_ratio = 1.5", "health.readmit_ratio"),
        ("heartbeat_interval = 0.001", "below the minimum"),
        ("lag = 2", "unknown key"),
        ('interval = "1s"', "expected number"),
    ],
)
def test_health_invalid(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "datatier.toml"
    path.write_text(f"[health]\n{text}\n")
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load(str(path), environ={})


def test_schema_file_matches_the_ddl_the_writer_runs() -> None:
    text = "\n".join(line for line in SCHEMA.read_text().splitlines() if not line.startswith("--"))
    statements = [s.strip() for s in text.split(";") if s.strip()]
    assert statements == [s.strip() for s in DDL]


def test_heartbeat_interval_minimum() -> None:
    with pytest.raises(OperationFailed, match=r"below 0\.05"):
        HeartbeatWriter(Endpoint("p", "127.0.0.1", 1, "u"), interval=0.01)


def node(name: str, lag: float | None) -> NodeHealth:
    return NodeHealth(
        name=name,
        role="replica",
        host="h",
        port=1,
        reachable=lag is not None,
        replica=ReplicaStatus("mariadb", "Yes", "Yes"),
        lag=lag,
    )


def test_hold_lagging_rule() -> None:
    limits = frozenset({2.0, 10.0})
    held = hold_lagging({}, {"a": node("a", 3.0), "b": node("b", 1.0)}, limits, 0.5)
    assert held == {2.0: frozenset({"a"}), 10.0: frozenset()}
    held = hold_lagging(held, {"a": node("a", 1.5), "b": node("b", 2.5)}, limits, 0.5)
    assert held[2.0] == {"a", "b"}  # a stays out until <= 1.0; b crossed 2.0
    held = hold_lagging(held, {"a": node("a", 1.0), "b": node("b", None)}, limits, 0.5)
    assert held[2.0] == {"b"}  # a readmitted at 1.0; unknown lag keeps b's state
    held = hold_lagging(held, {"a": node("a", None), "b": node("b", 0.2)}, limits, 0.5)
    assert held[2.0] == frozenset()


def test_hold_lagging_skips_primaries() -> None:
    primary = NodeHealth(name="p", role="primary", host="h", port=1, reachable=True, lag=99.0)
    assert hold_lagging({}, {"p": primary}, frozenset({1.0}), 0.5) == {1.0: frozenset()}
