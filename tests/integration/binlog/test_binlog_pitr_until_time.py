"""``restore --until TIME`` at the edges of seconds, on the sandbox's real MariaDB and S3.

Rows are committed at known seconds: two in second S, one in S+1, one in S+2; then a long
autocommit UPDATE that starts in second L and commits two seconds later, and an explicit
transaction whose BEGIN is in one second and COMMIT in a later one. The README's rule: a
transaction is replayed when its binlog timestamp (the start of the statement that
committed it) is before TIME's second; fractions of TIME are dropped; a zone offset is
honoured.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from datatier.cli import main
from tests.integration.binlog_support import binlog_env, connect, pitr_window, query, set_env
from tests.integration.conftest import SandboxHandle

DB = "pitr_time_db"
POLICY = "pitr_time"


def _next_second() -> int:
    second = math.floor(time.time()) + 1
    while time.time() < second + 0.05:
        time.sleep(0.005)
    return second


@pytest.fixture(scope="module")
def seconds(sandbox: SandboxHandle) -> Iterator[dict[str, Any]]:
    config = sandbox.config
    with pitr_window(sandbox, POLICY, DB, "pitr_time_r") as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v INT)")
        window.backup()
        insert = f"INSERT INTO {DB}.t VALUES (%s, 0)"
        s = _next_second()
        query(config, "primary", insert, (1,))
        query(config, "primary", insert, (2,))
        _next_second()
        query(config, "primary", insert, (3,))
        _next_second()
        query(config, "primary", insert, (4,))
        long_start = _next_second()
        query(config, "primary", f"UPDATE {DB}.t SET v = 1 + SLEEP(2) WHERE id = 1")
        committed = time.time()
        with connect(config, "primary") as conn, conn.cursor() as cur:
            begin = _next_second()
            cur.execute("BEGIN")
            cur.execute(f"UPDATE {DB}.t SET v = 2 WHERE id = 2")
            _next_second()
            _next_second()
            cur.execute("COMMIT")
        time.sleep(1.1)
        window.archive()
        yield {"s": s, "long_start": long_start, "long_committed": committed, "begin": begin}


def _at(ts: float, tz: timezone = UTC) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat()


def _restore(moment: str, sandbox: SandboxHandle) -> list[tuple[int, int]]:
    query(sandbox.config, "primary", "DROP DATABASE IF EXISTS pitr_time_r")
    code = main(["restore", "--policy", POLICY, "--until", moment, "--rename", f"{DB}=pitr_time_r"])
    assert code == 0
    rows = query(sandbox.config, "primary", "SELECT id, v FROM pitr_time_r.t ORDER BY id")
    return [(int(a), int(b)) for a, b in rows]


@pytest.fixture
def pitr_env(use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> SandboxHandle:
    set_env(monkeypatch, binlog_env(POLICY))
    return use_sandbox_config


def test_the_second_of_a_commit_is_excluded(
    seconds: dict[str, Any], pitr_env: SandboxHandle
) -> None:
    s = seconds["s"]
    assert _restore(_at(s), pitr_env) == []  # both rows of S: none
    assert _restore(_at(s + 1), pitr_env) == [(1, 0), (2, 0)]  # row 3 is of S+1
    assert _restore(_at(s + 1.999), pitr_env) == [(1, 0), (2, 0)]  # fractions dropped
    assert _restore(_at(s + 2), pitr_env) == [(1, 0), (2, 0), (3, 0)]


def test_a_zone_offset_names_the_same_moment(
    seconds: dict[str, Any], pitr_env: SandboxHandle
) -> None:
    s = seconds["s"]
    for tz in (timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))):
        assert _restore(_at(s + 1, tz), pitr_env) == [(1, 0), (2, 0)]
    naive = datetime.fromtimestamp(s + 1, UTC).replace(tzinfo=None).isoformat(sep=" ")
    assert _restore(naive, pitr_env) == [(1, 0), (2, 0)]  # no zone: UTC


def test_a_long_statement_counts_from_its_start_and_a_transaction_from_its_commit(
    seconds: dict[str, Any], pitr_env: SandboxHandle
) -> None:
    """As documented: the UPDATE started in long_start and committed two seconds later; a
    target in between replays it. The BEGIN ... COMMIT counts from its COMMIT."""
    long_start, begin = seconds["long_start"], seconds["begin"]
    assert seconds["long_committed"] >= long_start + 2
    all_rows = [(1, 0), (2, 0), (3, 0), (4, 0)]
    assert _restore(_at(long_start), pitr_env) == all_rows
    assert _restore(_at(long_start + 1), pitr_env) == [(1, 1), *all_rows[1:]]
    assert _restore(_at(begin + 1), pitr_env) == [(1, 1), *all_rows[1:]]  # not yet committed
