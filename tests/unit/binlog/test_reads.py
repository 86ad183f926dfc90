"""What a view DDL names and what a new table or view reads
(:mod:`datatier.mysql.binlog.reads`), and how a replay restoring some tables uses it
(:func:`~datatier.mysql.binlog.selection.tables_kept`): the view DDL of a restored view
replays, of another view stays out; a restored table or view made from one the restore
leaves out is refused. (On the real server: tests/integration/binlog/
test_pitr_tables_ddl.py.)"""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.reads import read_tables, view_names
from datatier.mysql.binlog.selection import ReplayRefused, Selection, tables_kept
from datatier.mysql.binlog.sqlrefs import scan

BINLOGGED = (
    "CREATE OR REPLACE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER "
    "VIEW `vc` AS SELECT c.id, c.v FROM cafe c"
)


@pytest.mark.parametrize(
    ("text", "views"),
    [
        (BINLOGGED, [("db", "vc")]),
        ("CREATE DEFINER=CURRENT_USER() VIEW x.v AS SELECT 1", [("x", "v")]),
        ("CREATE DEFINER='a'@'%' VIEW IF NOT EXISTS v AS SELECT 1", [("db", "v")]),
        ("ALTER SQL SECURITY INVOKER VIEW v AS SELECT 1", [("db", "v")]),
        ("DROP VIEW IF EXISTS a, x.b CASCADE", [("db", "a"), ("x", "b")]),
        ("CREATE TABLE view (i INT)", None),
        ("CREATE DEFINER=`a`@`%` TRIGGER g BEFORE INSERT ON t FOR EACH ROW SET @a = 1", None),
        ("SELECT 1 FROM view", None),
    ],
)
def test_view_ddl_names_its_views(text: str, views: list[tuple[str, str]] | None) -> None:
    assert view_names(scan(text), "db") == views


@pytest.mark.parametrize(
    ("text", "read"),
    [
        (BINLOGGED, [("db", "cafe")]),
        (
            "ALTER VIEW v AS SELECT o.id FROM cafe JOIN x.other o USING (id)",
            [("db", "cafe"), ("x", "other")],
        ),
        ("CREATE TABLE copy LIKE secret", [("db", "secret")]),
        ("CREATE TABLE IF NOT EXISTS copy (LIKE x.secret)", [("x", "secret")]),
        (
            "CREATE TABLE c SELECT * FROM a, (SELECT 1 FROM b) d, (e JOIN f) "
            "WHERE x IN (SELECT y FROM g)",
            [("db", n) for n in "abefg"],
        ),
        ("CREATE VIEW v AS SELECT * FROM a JOIN b ON a.x = b.x, c", [("db", n) for n in "abc"]),
        ("CREATE VIEW v AS WITH w AS (SELECT id FROM a) SELECT * FROM w, DUAL", [("db", "a")]),
        (
            "CREATE VIEW v AS SELECT STRAIGHT_JOIN a FROM t STRAIGHT_JOIN u",
            [("db", "t"), ("db", "u")],
        ),
        ("CREATE VIEW v AS SELECT * FROM JSON_TABLE(@j, '$' COLUMNS (a INT PATH '$')) jt", []),
        ("CREATE TABLE t (a INT, b INT, CHECK (a LIKE b))", []),
        ("CREATE TRIGGER g BEFORE INSERT ON t FOR EACH ROW SET NEW.a = (SELECT 1 FROM z)", []),
        ("DROP VIEW v", []),
        ("INSERT INTO t SELECT * FROM u", []),
    ],
)
def test_a_new_table_or_view_reads_its_like_table_and_its_from_lists(
    text: str, read: list[tuple[str, str]]
) -> None:
    assert read_tables(scan(text), "db") == read


TABLES = Selection(frozenset({"db"}), tables=frozenset({("db", "cafe"), ("db", "vc")}))
POLICY = Selection(frozenset({"db"}), includes=lambda _d, table: table != "secret")


def kept(selection: Selection, text: str) -> bool:
    return tables_kept(selection, scan(text), "db", "at 0-1-1")


def test_view_ddl_of_a_restored_view_replays_and_of_another_stays_out() -> None:
    assert kept(TABLES, BINLOGGED)
    assert kept(TABLES, "DROP VIEW vc")
    assert not kept(TABLES, "CREATE VIEW vx AS SELECT id FROM other")
    assert not kept(TABLES, "DROP VIEW IF EXISTS vold")
    assert not kept(POLICY, "DROP VIEW secret")
    with pytest.raises(ReplayRefused, match="restored and other tables"):
        kept(TABLES, "DROP VIEW vc, vold")


@pytest.mark.parametrize(
    ("selection", "text"),
    [
        (TABLES, "ALTER VIEW vc AS SELECT o.id FROM cafe JOIN other o USING (id)"),
        (POLICY, "CREATE TABLE copy LIKE secret"),
        (POLICY, "CREATE TABLE copy (LIKE secret)"),
        (POLICY, "CREATE TABLE copy AS SELECT * FROM kept k JOIN secret USING (id)"),
        (POLICY, "CREATE VIEW v AS SELECT id FROM kept WHERE id IN (SELECT id FROM secret)"),
    ],
)
def test_a_restored_table_or_view_made_from_one_left_out_is_refused(
    selection: Selection, text: str
) -> None:
    with pytest.raises(
        ReplayRefused, match=r"from db\.(other|secret), which the restore leaves out"
    ):
        kept(selection, text)


def test_what_is_made_from_restored_tables_replays_and_what_is_not_restored_stays_out() -> None:
    assert kept(POLICY, "CREATE TABLE copy LIKE kept")
    assert kept(POLICY, "CREATE VIEW v AS SELECT id FROM kept")
    assert not kept(TABLES, "CREATE TABLE copy LIKE cafe")  # copy is not restored
    assert not kept(TABLES, "CREATE TABLE copy LIKE other")


def test_statement_format_insert_select_stays_refused() -> None:
    """Already refused before: a statement-format change reading other tables cannot be
    limited to the restored ones."""
    for selection in (TABLES, POLICY):
        with pytest.raises(ReplayRefused, match="cannot be limited"):
            kept(selection, "INSERT INTO kept SELECT id FROM secret")
