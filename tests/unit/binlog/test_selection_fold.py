"""A replay's table selection on a server folding names (``lower_case_table_names`` 1 or
2: ``Shop.Orders`` is ``shop.orders``), given the fold explicitly; with 0 names stay
case-sensitive. (The real server's case: tests/integration/binlog/
test_pitr_lower_case_names.py.)"""

from __future__ import annotations

import pytest

from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.groups import Group
from datatier.mysql.binlog.positions import Gtid
from datatier.mysql.binlog.selection import Selection
from datatier.mysql.binlog.translate import Translator
from tests.unit.binlog.test_binlog_units import event, query_event, table_map

FDE = ev.FormatDescription(event=b"fde", server_version="10.11.6-MariaDB", checksum=True)


def selection(fold: bool, **kwargs: object) -> Selection:
    base = Selection(frozenset({"shop"}), {"shop": "shop_r"}, **kwargs)  # type: ignore[arg-type]
    return base.folded(fold)


def replayed(chosen: Selection, text: bytes, default: bytes = b"shop") -> list[bytes]:
    group = Group(Gtid(0, 1, 9), ev.FL_STANDALONE, 0, events=[b"gtid", query_event(text, default)])
    return Translator(chosen, lambda _id: "utf8mb4").statements(FDE, group)


def test_held_tables_match_whatever_their_spelling_only_when_names_fold() -> None:
    picked = frozenset({("shop", "orders")})
    assert selection(True, tables=picked).holds("Shop", "ORDERS")
    assert selection(True, tables=picked).target_of("SHOP", "Orders") == "shop_r"
    assert not selection(False, tables=picked).holds("Shop", "ORDERS")
    assert selection(False, tables=picked).holds("shop", "orders")


@pytest.mark.parametrize("default", [b"shop", b"Shop"])
def test_a_table_ddl_spelling_a_picked_table_otherwise_is_replayed_renamed(default: bytes) -> None:
    chosen = selection(True, tables=frozenset({("shop", "orders")}))
    out = replayed(chosen, b"ALTER TABLE Shop.Orders ADD note INT", default)
    assert out[-1] == b"ALTER TABLE `shop_r`.Orders ADD note INT"
    assert b"USE `shop_r`" in out
    assert replayed(chosen, b"ALTER TABLE SHOP.Audit ADD note INT", default) == []


def test_without_folding_another_spelling_is_another_table() -> None:
    chosen = selection(False, tables=frozenset({("shop", "orders")}))
    assert replayed(chosen, b"ALTER TABLE shop.Orders ADD note INT") == []
    assert replayed(chosen, b"ALTER TABLE shop.orders ADD note INT")[-1] == (
        b"ALTER TABLE `shop_r`.orders ADD note INT"
    )


def test_a_statement_format_insert_follows_the_policy_whatever_its_spelling() -> None:
    """``includes`` (a policy's selection) is asked with folded names: ``audit`` left out
    stays out, ``orders`` is kept, however the statement spells them."""
    asked: list[tuple[str, str]] = []

    def includes(database: str, table: str) -> bool:
        asked.append((database, table))
        return table != "audit"

    chosen = selection(True, includes=includes)
    assert replayed(chosen, b"INSERT INTO SHOP.Orders VALUES (2)")[-1] == (
        b"INSERT INTO `shop_r`.Orders VALUES (2)"
    )
    assert replayed(chosen, b"INSERT INTO Shop.AUDIT VALUES (2)") == []
    assert asked == [("shop", "orders"), ("shop", "audit")]


def test_row_events_of_a_table_map_spelled_otherwise_are_kept_when_names_fold() -> None:
    rows = event(ev.WRITE_ROWS_V1, (18).to_bytes(6, "little") + b"\x00\x00\x01\xff")
    xid = event(ev.XID, (1).to_bytes(8, "little"))
    mapped = table_map(b"Shop", b"Orders")
    group = Group(Gtid(0, 1, 9), 0, 0, events=[b"gtid", mapped, ev.with_stmt_end(rows, True), xid])
    picked = frozenset({("shop", "orders")})
    kept = Translator(selection(True, tables=picked), lambda _id: "utf8mb4").rows_only(FDE, group)
    assert kept is not None and len(kept) == 1
    assert ev.table_map(kept[0][0]).database == "shop_r"
    plain = Translator(selection(False, tables=picked), lambda _id: "utf8mb4")
    assert plain.rows_only(FDE, group) == []
