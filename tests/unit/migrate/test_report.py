"""Plan text, keyset SQL, the CLI surface and an unreachable RethinkDB, without servers."""

from __future__ import annotations

import socket

import pytest

from datatier.cli import main
from datatier.config import RethinkDBSettings
from datatier.errors import ExitCode, ServiceUnavailable
from datatier.migrate.documents import DocumentBuilder
from datatier.migrate.mapping import EMPTY
from datatier.migrate.plan import build_plan
from datatier.migrate.reader import TableReader
from datatier.migrate.report import plan_text, plans_summary
from datatier.migrate.sampler import analyse
from datatier.migrate.target import connect_rethinkdb
from tests.unit.migrate.test_plan import ITEMS, NOKEY, ORDERS


def test_plan_text_shows_key_columns_indexes_and_verdicts() -> None:
    orders = build_plan(ORDERS, EMPTY, "migrated")
    orders.apply_sample(analyse(DocumentBuilder(orders), [], "first rows"), 0)
    text = plan_text(orders)
    assert text.splitlines()[0] == "shop.orders -> rethinkdb migrated.orders: READY WITH WARNINGS"
    assert "key: id <- order_id (PRIMARY)" in text
    assert "documents: 0 (exact)" in text
    assert "index uq_email on (email) from uq_email, unique NOT enforced" in text
    assert "compound idx_placed_total on (placed, total)" in text
    nokey = build_plan(NOKEY, EMPTY, "m")
    summary = plans_summary([orders, nokey])
    assert "shop.log     BLOCKED (no primary key and no unique NOT NULL key)" in summary
    assert summary.endswith("verdict: 0 ready, 1 ready with warnings, 1 blocked")


def test_keyset_batches_follow_a_composite_key() -> None:
    plan = build_plan(ITEMS, EMPTY, "m")
    reader = TableReader(plan, ["order_id", "line"])
    where, args = reader._after([5, 2])
    assert where == "((`order_id` > %s) OR (`order_id` = %s AND `line` > %s))"
    assert args == [5, 5, 2]
    assert reader.order == "`order_id`, `line`"


def test_migrate_group_lists_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--help"]) == 0
    out = capsys.readouterr().out
    for command in ("plan", "run", "verify"):
        assert command in out
    assert main(["migrate", "run", "--conflict", "ignore"]) == ExitCode.USAGE


def test_unreachable_rethinkdb_is_exit_3() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServiceUnavailable, match=f"cannot connect to RethinkDB 127.0.0.1:{port}"):
        connect_rethinkdb(RethinkDBSettings(port=port, timeout=0.5))
