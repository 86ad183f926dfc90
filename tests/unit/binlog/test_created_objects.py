"""What a replayed DDL creates or names (:mod:`datatier.mysql.binlog.created`): a forced
point-in-time restore drops these from the target before loading (unless the base creates
them), so a wrong reading drops the wrong object or leaves one the replay then meets."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.created import declared_foreign_keys, named_objects
from datatier.mysql.binlog.sqlrefs import scan


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("CREATE TABLE IF NOT EXISTS log (a INT)", [("table", "d", "log")]),
        ("CREATE OR REPLACE TABLE x.t LIKE u", [("table", "x", "t")]),
        ("CREATE TABLE `a b`.`c``d` (a INT)", [("table", "a b", "c`d")]),
        (
            "RENAME TABLE a TO b, x.c TO x.e",
            [("table", "d", "a"), ("table", "d", "b"), ("table", "x", "c"), ("table", "x", "e")],
        ),
        # IF EXISTS names no table (a table named EXISTS, made later, was dropped)
        ("RENAME TABLE IF EXISTS log0 TO log", [("table", "d", "log0"), ("table", "d", "log")]),
        ("ALTER TABLE a RENAME TO b", [("table", "d", "a"), ("table", "d", "b")]),
        ("ALTER TABLE a ADD COLUMN c INT", [("table", "d", "a")]),
        (
            "ALTER TABLE p CONVERT PARTITION p0 TO TABLE p0t",
            [("table", "d", "p"), ("table", "d", "p0t")],
        ),
        (
            "ALTER TABLE p CONVERT TABLE x.p0t TO PARTITION p0 VALUES LESS THAN (10)",
            [("table", "d", "p"), ("table", "x", "p0t")],
        ),
        ("DROP TABLE IF EXISTS later, x.y", [("table", "d", "later"), ("table", "x", "y")]),
        ("DROP VIEW IF EXISTS v1, x.v2", [("view", "d", "v1"), ("view", "x", "v2")]),
        ("DROP PROCEDURE IF EXISTS x.p", [("procedure", "x", "p")]),
        ("DROP PACKAGE BODY pk", [("package body", "d", "pk")]),
        ("DROP EVENT e", [("event", "d", "e")]),
        (
            "ALTER DEFINER=`u`@`h` EVENT ev ON SCHEDULE EVERY 2 DAY RENAME TO x.ev2",
            [("event", "d", "ev"), ("event", "x", "ev2")],
        ),
        ("CREATE DEFINER=`root`@`%` PROCEDURE `p`() SELECT 1", [("procedure", "d", "p")]),
        (
            "CREATE DEFINER='u'@'localhost' TRIGGER x.trg BEFORE INSERT ON t "
            "FOR EACH ROW SET NEW.n = 1",
            [("table", "d", "t"), ("trigger", "x", "trg")],
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
        ("CREATE INDEX i ON t (a)", [("table", "d", "t")]),
        ("/*!50003 CREATE*/ /*!50003 PROCEDURE q() SELECT 1 */", [("procedure", "d", "q")]),
        # SET STATEMENT ... FOR runs the statement after FOR (read as a SET, unseen)
        (
            "SET STATEMENT max_statement_time=0, sql_mode=(SELECT 'x') FOR DROP TABLE IF "
            "EXISTS later",
            [("table", "d", "later")],
        ),
    ],
)
def test_the_objects_a_statement_names(statement: str, expected: list[object]) -> None:
    assert named_objects(scan(statement), "d") == expected


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TEMPORARY TABLE t (a INT)",  # a session's table, no object of the database
        "DROP TEMPORARY TABLE IF EXISTS t",
        "CREATE DATABASE x",
        "CREATE USER u",
        "INSERT INTO t VALUES ('CREATE TABLE x (a INT)')",
        "CREATE DEFINER=`view`@`h` ROLE r",
        "SET STATEMENT max_statement_time=0 FOR SELECT 1",
    ],
)
def test_statements_naming_no_object(statement: str) -> None:
    assert named_objects(scan(statement), "d") == []


def test_folded_names_come_back_folded() -> None:
    """A selection folding names scans folded: the names compare with its keys."""
    found = named_objects(scan("CREATE VIEW Shop.V AS SELECT 1", fold=True), "d")
    assert found == [("view", "shop", "v")]


@pytest.mark.parametrize(
    ("statement", "names", "unnamed"),
    [
        ("CREATE TABLE c (a INT, CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id))", {"fk"}, False),
        (
            "CREATE TABLE c (a INT, CONSTRAINT `f``k` FOREIGN KEY (a) REFERENCES p (id))",
            {"f`k"},
            False,
        ),
        # without CONSTRAINT, the index name names the key (MariaDB 10.11)
        ("CREATE TABLE c (a INT, FOREIGN KEY ix (a) REFERENCES p (id))", {"ix"}, False),
        ("CREATE TABLE c (a INT, CONSTRAINT FOREIGN KEY (a) REFERENCES p (id))", set(), True),
        ("CREATE TABLE c (a INT REFERENCES p (id))", set(), True),  # a column's: generated
        (
            "ALTER TABLE c ADD CONSTRAINT s FOREIGN KEY IF NOT EXISTS (a) REFERENCES p (id), "
            "ADD FOREIGN KEY IF NOT EXISTS ix (b) REFERENCES p (id)",
            {"s", "ix"},
            False,
        ),
        # in a comment or a string, or a column named references: no key
        (
            "CREATE TABLE c (a INT COMMENT 'CONSTRAINT x FOREIGN KEY (a) REFERENCES p', "
            "`references` INT) /* FOREIGN KEY y (a) */",
            set(),
            False,
        ),
        ("CREATE TABLE c (a INT, CONSTRAINT ck CHECK (a > 0))", set(), False),
        # an executable comment is code; one the server skipped reaches the binlog as a
        # plain comment (``/*!110000`` written ``/* 110000`` by MariaDB 10.11)
        (
            "CREATE TABLE c (a INT, /*!50000 CONSTRAINT fk */ FOREIGN KEY (a) REFERENCES p (id))",
            {"fk"},
            False,
        ),
        (
            "CREATE TABLE c (a INT, /* 110000 CONSTRAINT fk */ FOREIGN KEY (a) REFERENCES p (id))",
            set(),
            True,
        ),
    ],
)
def test_the_foreign_keys_a_statement_declares(
    statement: str, names: set[str], unnamed: bool
) -> None:
    """Names clash per database on InnoDB: a kept table holding one fails the restore's
    CREATE (:mod:`datatier.mysql.foreign_key_names`)."""
    assert declared_foreign_keys(scan(statement).tokens) == (names, unnamed)


def test_a_table_ddl_names_its_foreign_keys_with_its_table() -> None:
    found = named_objects(
        scan("CREATE TABLE x.c (a INT, CONSTRAINT fk FOREIGN KEY (a) REFERENCES p (id), "
             "b INT REFERENCES p (id))"),
        "d",
    )  # fmt: skip
    assert found == [
        ("table", "x", "c"),
        ("foreign key", "x", "fk"),
        ("generated foreign key", "x", "c"),
    ]
    assert named_objects(scan("CREATE TEMPORARY TABLE t (a INT REFERENCES p (id))"), "d") == []
