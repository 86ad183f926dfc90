"""What a replayed DDL creates by name (:mod:`datatier.mysql.binlog.created`): a forced
point-in-time restore drops these from the target before loading, so a wrong reading drops
the wrong object or leaves one the replay then meets."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.created import created_objects
from datatier.mysql.binlog.sqlrefs import scan


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("CREATE TABLE IF NOT EXISTS log (a INT)", [("table", "d", "log")]),
        ("CREATE OR REPLACE TABLE x.t LIKE u", [("table", "x", "t")]),
        ("CREATE TABLE `a b`.`c``d` (a INT)", [("table", "a b", "c`d")]),
        ("RENAME TABLE a TO b, x.c TO x.e", [("table", "d", "b"), ("table", "x", "e")]),
        ("ALTER TABLE a RENAME TO b", [("table", "d", "b")]),
        ("CREATE DEFINER=`root`@`%` PROCEDURE `p`() SELECT 1", [("procedure", "d", "p")]),
        (
            "CREATE DEFINER='u'@'localhost' TRIGGER x.trg BEFORE INSERT ON t "
            "FOR EACH ROW SET NEW.n = 1",
            [("trigger", "x", "trg")],
        ),
        (
            "CREATE DEFINER=u@localhost EVENT IF NOT EXISTS e ON SCHEDULE EVERY 1 DAY DO SELECT 1",
            [("event", "d", "e")],
        ),
        (
            "CREATE OR REPLACE ALGORITHM=MERGE DEFINER=CURRENT_USER() SQL SECURITY DEFINER "
            "VIEW v AS SELECT 1",
            [("view", "d", "v")],
        ),
        ("CREATE SQL SECURITY INVOKER VIEW x.v AS SELECT 1", [("view", "x", "v")]),
        ("CREATE AGGREGATE FUNCTION f(x INT) RETURNS INT RETURN 1", [("function", "d", "f")]),
        ("CREATE PACKAGE BODY pk AS BEGIN END", [("package body", "d", "pk")]),
        ("CREATE SEQUENCE IF NOT EXISTS s", [("sequence", "d", "s")]),
        ("/*!50003 CREATE*/ /*!50003 PROCEDURE q() SELECT 1 */", [("procedure", "d", "q")]),
    ],
)
def test_the_object_a_statement_creates(statement: str, expected: list[object]) -> None:
    assert created_objects(scan(statement), "d") == expected


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TEMPORARY TABLE t (a INT)",  # a session's table, no object of the database
        "ALTER TABLE a ADD COLUMN c INT",
        "ALTER TABLE a RENAME COLUMN b TO c",
        "CREATE INDEX i ON t (a)",
        "CREATE DATABASE x",
        "CREATE USER u",
        "DROP TABLE t",
        "INSERT INTO t VALUES ('CREATE TABLE x (a INT)')",
        "CREATE DEFINER=`view`@`h` ROLE r",
    ],
)
def test_statements_creating_no_named_object(statement: str) -> None:
    assert created_objects(scan(statement), "d") == []


def test_folded_names_come_back_folded() -> None:
    """A selection folding names scans folded: the created names compare with its keys."""
    found = created_objects(scan("CREATE VIEW Shop.V AS SELECT 1", fold=True), "d")
    assert found == [("view", "shop", "v")]
