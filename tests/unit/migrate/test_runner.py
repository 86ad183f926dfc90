"""The run's snapshot position on either server flavour, and a source lost mid-run, with a
scripted MySQL connection (no server)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pymysql
import pytest

from datatier.errors import ExitCode, ServiceUnavailable
from datatier.migrate.mapping import EMPTY
from datatier.migrate.plan import build_plan
from datatier.migrate.runner import RunOptions, run_tables
from datatier.migrate.target import InsertResult, MigrationTarget
from datatier.mysql.consistent import open_snapshot, server_flavour
from datatier.mysql.introspect import Column, Index, TableSchema


class ScriptedCursor:
    def __init__(self, conn: ScriptedConnection) -> None:
        self.conn = conn
        self.rows: list[dict[str, Any]] = []

    def __enter__(self) -> ScriptedCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, args: Any = None) -> None:
        self.conn.executed.append(sql)
        for needle, rows in self.conn.answers.items():
            if needle in sql:
                if isinstance(rows, Exception):
                    raise rows
                self.rows = rows
                return
        self.rows = []

    def fetchall(self) -> list[dict[str, Any]]:
        return self.rows


class ScriptedConnection:
    """Answers queries containing a key of ``answers`` (an exception is raised)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.executed: list[str] = []

    def cursor(self, *_: Any) -> ScriptedCursor:
        return ScriptedCursor(self)

    def rollback(self) -> None:
        raise pymysql.err.InterfaceError(0, "")  # as pymysql does on a dead connection


UNKNOWN_VAR = pymysql.err.OperationalError(1193, "Unknown system variable 'gtid_current_pos'")


def test_snapshot_on_mysql8_reads_gtid_executed() -> None:
    conn = ScriptedConnection(
        {
            "VERSION()": [{"version": "8.0.36"}],
            "@@gtid_current_pos": UNKNOWN_VAR,  # what MySQL 8 answers
            "@@GLOBAL.gtid_executed": [{"gtid_executed": "3E11FA47-71CA:1-5,\n9A1B:1-2"}],
        }
    )
    info = open_snapshot(conn)  # type: ignore[arg-type]
    assert info == {"flavour": "mysql", "gtid_executed": "3E11FA47-71CA:1-5, 9A1B:1-2"}
    assert any("START TRANSACTION WITH CONSISTENT SNAPSHOT" in q for q in conn.executed)
    assert not any("gtid_current_pos" in q or "binlog_snapshot" in q for q in conn.executed)


def test_snapshot_on_mariadb_reads_gtid_current_pos() -> None:
    conn = ScriptedConnection(
        {
            "VERSION()": [{"version": "11.4.2-MariaDB-log"}],
            "binlog_snapshot_": [
                {"Variable_name": "binlog_snapshot_file", "Value": "bin.000002"},
                {"Variable_name": "binlog_snapshot_position", "Value": "345"},
            ],
            "@@gtid_current_pos": [{"gtid_current_pos": "0-1-42"}],
            "@@GLOBAL.gtid_executed": UNKNOWN_VAR,
        }
    )
    assert server_flavour(conn) == "mariadb"  # type: ignore[arg-type]
    info = open_snapshot(conn)  # type: ignore[arg-type]
    assert info == {
        "flavour": "mariadb",
        "binlog_snapshot_file": "bin.000002",
        "binlog_snapshot_position": "345",
        "gtid_current_pos": "0-1-42",
    }


@pytest.mark.parametrize("version", ["5.7.44-log", "8.4.0", "9.0.1-commercial"])
def test_mysql_versions_are_mysql(version: str) -> None:
    conn = ScriptedConnection({"VERSION()": [{"version": version}]})
    assert server_flavour(conn) == "mysql"  # type: ignore[arg-type]


class NullTarget(MigrationTarget):
    def __init__(self) -> None:
        self.inserted = 0

    def describe(self) -> str:
        return "null"

    def ensure_table(self, table: str) -> bool:
        return True

    def ensure_index(self, table: str, name: str, fields: Sequence[str]) -> bool:
        return True

    def insert(self, table: str, docs: list[dict[str, Any]], conflict: str) -> InsertResult:
        self.inserted += len(docs)
        return InsertResult(len(docs), 0, 0, 0)

    def get_many(self, table: str, ids: Sequence[Any]) -> list[dict[str, Any]]:
        return []

    def count(self, table: str) -> int:
        return self.inserted


def test_source_lost_mid_run_is_unreachable_exit_3(tmp_path: Path) -> None:
    schema = TableSchema(
        "shop",
        "t",
        (Column("id", "int", "int(11)", False),),
        (Index("PRIMARY", ("id",), unique=True),),
        10,
        100,
    )
    conn = ScriptedConnection(
        {
            "VERSION()": [{"version": "10.11.6-MariaDB"}],
            "@@gtid_current_pos": [{"gtid_current_pos": "0-1-1"}],
            "FROM `shop`.`t`": pymysql.err.OperationalError(
                2013, "Lost connection to MySQL server during query"
            ),
        }
    )
    options = RunOptions(checkpoint=tmp_path / "cp.json")
    with pytest.raises(ServiceUnavailable, match="MySQL replica1: connection lost") as exc:
        run_tables(conn, "replica1", [build_plan(schema, EMPTY, "m")], NullTarget(), options)  # type: ignore[arg-type]
    assert exc.value.exit_code == ExitCode.UNREACHABLE
