"""A package's DROP runs in its definition's sql_mode (:mod:`datatier.mysql.package_drops`):
outside ORACLE mode MariaDB 10.11 refuses ``DROP PACKAGE`` as a syntax error, so a
routines object that sends it first cannot be restored (tester3 finding 5)."""

from __future__ import annotations

from datatier.mysql.package_drops import drop_statements, drops_in_their_mode
from datatier.mysql.sqltext import PRELUDE, UTF8_CLIENT, block, creation_session, parse_block

MODE = "PIPES_AS_CONCAT,ANSI_QUOTES,ORACLE"


def session(sql_mode: str, charset: str = "utf8mb4") -> list[bytes]:
    return [s.encode() for s in creation_session(sql_mode, "utf8mb4_general_ci", None, charset)]


def test_a_packages_drop_follows_its_sql_mode_every_other_kinds_is_alone() -> None:
    assert drop_statements("package body", "p`é", MODE) == [
        "/*!50003 SET sql_mode = 'PIPES_AS_CONCAT,ANSI_QUOTES,ORACLE' */",
        "DROP PACKAGE BODY IF EXISTS `p``é`",
    ]
    assert drop_statements("package", "pk", "") == [
        "/*!50003 SET sql_mode = '' */",
        "DROP PACKAGE IF EXISTS `pk`",
    ]
    for kind in ("procedure", "function", "trigger", "event", "view"):
        assert drop_statements(kind, "x", MODE) == [f"DROP {kind.upper()} IF EXISTS `x`"]


def test_an_older_objects_package_drops_take_the_mode_of_the_session_after_them() -> None:
    """The older layout: each DROP, then its creation session (a latin1 creator's too),
    then its CREATE. Only the package DROPs gain a statement: the sql_mode one of their
    own definition's session, the same bytes."""
    latin1 = b"CREATE PACKAGE `p\xe2q` AS FUNCTION f RETURN INT; END"
    statements = [
        b"DROP PROCEDURE IF EXISTS `pr`",
        *session("ANSI"),
        b"CREATE PROCEDURE `pr`() SELECT 1",
        b"DROP PACKAGE IF EXISTS `p\xc3\xa2q`",
        *session(MODE, "latin1"),
        latin1,
        UTF8_CLIENT.encode(),
        b"DROP PACKAGE BODY IF EXISTS `pk`",
        *session("ORACLE"),
        b"CREATE PACKAGE BODY pk AS END",
    ]
    mended = drops_in_their_mode(statements)
    mode, oracle = session(MODE)[3], session("ORACLE")[3]
    assert mode == b"/*!50003 SET sql_mode = 'PIPES_AS_CONCAT,ANSI_QUOTES,ORACLE' */"
    assert mended == [*statements[:6], mode, *statements[6:13], oracle, *statements[13:]]


def test_objects_of_the_new_layout_and_lone_drops_are_left_as_they_are() -> None:
    new = [
        *(s.encode() for s in drop_statements("package", "pk", MODE)),
        *session(MODE),
        b"CREATE PACKAGE pk AS END",
    ]
    assert drops_in_their_mode(new) == new
    # no creation session follows (nothing datatier wrote): nothing to take the mode from
    lone = [b"DROP PACKAGE IF EXISTS `pk`", b"CREATE PACKAGE pk AS END"]
    assert drops_in_their_mode(lone) == lone
    # a body quoting such a DROP is no DROP of its own
    body = [b"CREATE PROCEDURE p() SELECT 'DROP PACKAGE IF EXISTS `x`'", *session(MODE)]
    assert drops_in_their_mode(body) == body


def test_the_statements_split_back_as_written() -> None:
    statements = [*drop_statements("package", "pk", MODE), "CREATE PACKAGE pk AS END"]
    text = PRELUDE + block(statements).encode()
    assert parse_block(text) == [s.encode() for s in statements]
