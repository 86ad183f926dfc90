"""Statements a point-in-time replay leaves out (:func:`account_statement`: they act on the
server's accounts whatever database their session had as default) or refuses under
``--rename`` (:func:`ambiguous_qualifiers`: ``x.y`` where ``x`` is also a table)."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.sqlrefs import (
    account_statement,
    account_text,
    ambiguous_qualifiers,
    scan,
)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE USER 'app'@'%' IDENTIFIED BY 'x'",
        "create or replace user `app`@`%`",
        "CREATE USER IF NOT EXISTS app",
        "ALTER USER 'app'@'%' IDENTIFIED BY 'rotated'",
        "DROP USER 'app'@'%'",
        "DROP USER IF EXISTS app",
        "RENAME USER a TO b",
        "CREATE ROLE IF NOT EXISTS reader",
        "DROP ROLE reader",
        "GRANT SELECT ON shop.* TO 'app'@'%'",
        "REVOKE ALL PRIVILEGES ON *.* FROM app",
        "SET PASSWORD FOR 'app'@'%' = PASSWORD('x')",
        "SET DEFAULT ROLE reader FOR app",
        "/* note */ DROP USER app",
    ],
)
def test_account_statements_are_recognised(sql: str) -> None:
    assert account_statement(scan(sql))


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE user (id INT)",
        "CREATE TABLE `role` (id INT)",
        "DROP TABLE IF EXISTS user",
        "ALTER TABLE users ADD c INT",
        "RENAME TABLE user TO user2",
        "INSERT INTO grant_log VALUES ('GRANT ALL')",
        "UPDATE t SET password = 'x'",
        "SET @x = 1",
        "CREATE DATABASE `user`",
        "",
    ],
)
def test_other_statements_are_not(sql: str) -> None:
    assert not account_statement(scan(sql))


@pytest.mark.parametrize(
    ("sql", "unclear"),
    [
        ("CREATE VIEW v AS SELECT shop.id FROM shop", ["shop"]),
        ("SELECT shop.id FROM orders AS shop", ["shop"]),
        ("UPDATE shop SET shop.v = 1", ["shop"]),
        ("DROP TABLE shop, shop.t2", ["shop"]),
        ("SELECT * FROM shop.shop", []),
        ("SELECT o.id FROM shop.orders o JOIN crm.c ON c.id = o.c", []),
        ("INSERT INTO shop.t SELECT other.x FROM other", []),  # other is not renamed
        ("SELECT `shop`.id FROM `shop`", ["shop"]),
        ("UPDATE orders shop SET shop.x = 1", ["shop"]),  # an alias without AS
        ("UPDATE orders, shop SET shop.x = 1", ["shop"]),  # a comma join
        ("SELECT a.id FROM t1 a, shop WHERE shop.id = 1", ["shop"]),
        ("SELECT * FROM shop.a JOIN shop.b USING (id)", []),
        ("ALTER TABLE shop.t ADD COLUMN c INT", []),
        ("DROP TABLE shop.a, shop.b", []),
        ("SELECT * FROM shop.orders WHERE shop.orders.id = 1", []),
        # an alias without AS after a derived table, a partition list, a nested one
        ("CREATE VIEW v AS SELECT shop.id FROM (SELECT id FROM p) shop", ["shop"]),
        ("SELECT shop.id FROM (SELECT id FROM p) `shop`", ["shop"]),
        ("SELECT shop.id FROM a, (SELECT 1 AS id) shop", ["shop"]),
        ("SELECT shop.id FROM a JOIN ((SELECT 1 AS id)) shop ON 1", ["shop"]),
        ("SELECT shop.x FROM t PARTITION (p0) shop", ["shop"]),
        ("SELECT shop.id FROM p shop", ["shop"]),
        # a parenthesis of no derived table is followed by no alias
        ("SELECT COUNT(*) shop FROM shop.t", []),
        ("INSERT INTO shop.t (a) SELECT b FROM shop.u WHERE c IN (SELECT d FROM shop.w)", []),
        ("CREATE TABLE shop.t (a INT) ENGINE=InnoDB", []),
        ("SELECT shop.id FROM (SELECT id FROM p) AS d", []),
    ],
)
def test_two_part_names_whose_qualifier_is_also_a_table_are_ambiguous(
    sql: str, unclear: list[str]
) -> None:
    assert ambiguous_qualifiers(scan(sql), {"shop", "crm"}) == unclear


@pytest.mark.parametrize(
    ("sql", "shown"),
    [
        (
            "CREATE USER 'app'@'%' IDENTIFIED BY 'secret'",
            "CREATE USER 'app'@'%' IDENTIFIED BY '***'",
        ),
        (
            "ALTER USER app IDENTIFIED VIA ed25519 USING PASSWORD('secret')",
            "ALTER USER app IDENTIFIED VIA ed25519 USING PASSWORD('***')",
        ),
        (
            "GRANT ALL ON shop.*\n  TO 'a'@'%' IDENTIFIED BY PASSWORD '*AB12'",
            "GRANT ALL ON shop.* TO 'a'@'%' IDENTIFIED BY PASSWORD '***'",
        ),
        (
            "SET PASSWORD FOR 'app'@'%' = PASSWORD('secret')",
            "SET PASSWORD FOR 'app'@'%' = PASSWORD('***')",
        ),
        ("DROP USER 'app'@'%'", "DROP USER 'app'@'%'"),
    ],
)
def test_an_account_statement_is_shown_without_its_secrets(sql: str, shown: str) -> None:
    assert account_text(sql, scan(sql)) == shown
