"""The SQL text rules of backup objects: quoting, delimiters, qualifiers, key segments."""

from __future__ import annotations

import pytest

from datatier.mysql.catalogue import Column, Table
from datatier.mysql.rowtext import RowQuery, literal_of, range_filters, uniform_text, value_sql
from datatier.mysql.sqltext import (
    MAX_SEGMENT,
    PRELUDE,
    block,
    creation_session,
    delimiter_for,
    ident,
    key_segment,
    parse_block,
    string_literal,
    strip_qualifier,
)


def test_ident_doubles_backticks_and_keeps_everything_else() -> None:
    assert ident("a`b") == "`a``b`"
    assert (
        ident("line\n-- Dumping data for table `t1`") == "`line\n-- Dumping data for table ``t1```"
    )


def test_delimiter_never_occurs_in_the_statement() -> None:
    assert delimiter_for("BEGIN SELECT 1; END") == ";;"
    body = "BEGIN SELECT ';;', '$$', '//', '@@', ';;;;'; END"
    chosen = delimiter_for(body)
    assert chosen not in body and chosen.startswith("$dt")


def test_block_round_trips_bodies_holding_every_usual_delimiter() -> None:
    body = "CREATE PROCEDURE p() BEGIN SELECT ';;'; SELECT '$$';\ndelimiter\n END"
    statements = ["DROP PROCEDURE IF EXISTS `p`", *creation_session("ANSI", "utf8mb4_bin"), body]
    text = block(statements)
    delimiter = text.splitlines()[0].split(" ", 1)[1]
    assert delimiter not in body and f"{body}{delimiter}\n" in text
    assert text.endswith("DELIMITER ;\n")
    parsed = parse_block(PRELUDE + text.encode())
    assert parsed == [s.encode() for s in statements]


def test_parse_block_refuses_other_layouts() -> None:
    assert parse_block(b"CREATE TABLE t (a INT);\n") is None
    assert parse_block(PRELUDE + b"INSERT INTO t VALUES (1);\n") is None
    assert parse_block(PRELUDE + b"DELIMITER ;;\nSELECT 1\nDELIMITER ;\n") is None
    assert parse_block(PRELUDE + block([]).encode()) == []


def test_event_sessions_carry_their_time_zone() -> None:
    assert any("time_zone = 'Europe/Paris'" in s for s in creation_session("", "x", "Europe/Paris"))


def test_string_literal_escapes_like_quote() -> None:
    assert string_literal("a'b\\c\0d\x1a") == "'a\\'b\\\\c\\0d\\Z'"


def test_strip_qualifier_touches_identifiers_only() -> None:
    view = (
        "CREATE VIEW `v` AS select `shop`.`t`.`id` AS `id`,'`shop`.`t`' AS `s`,"
        "`shop`.`t`.`x` AS `shop`.`y` from `shop`.`t` join `shopx`.`u`"
    )
    out = strip_qualifier(view, "shop")
    assert out == (
        "CREATE VIEW `v` AS select `t`.`id` AS `id`,'`shop`.`t`' AS `s`,"
        "`t`.`x` AS `y` from `t` join `shopx`.`u`"
    )
    tricky = "select 'it''s `shop`.' AS `a``shop`.`b`, \"`shop`.\" from `shop`.`t`"
    assert strip_qualifier(tricky, "shop") == (
        "select 'it''s `shop`.' AS `a``shop`.`b`, \"`shop`.\" from `t`"
    )


def test_key_segments_are_injective_short_and_never_dot_segments() -> None:
    names = ["t", "T", "a~b", "a%7Eb", "..", ".", ".hidden", "a/b", "ünï", "x" * 300, "x" * 301]
    segments = [key_segment(n) for n in names]
    assert len(set(segments)) == len(names)
    assert key_segment("..") == "%2E%2E" and key_segment(".") == "%2E"
    assert key_segment("a~b") == "a%7Eb"
    assert all(len(s) <= MAX_SEGMENT and "/" not in s for s in segments)
    cjk = "数" * 64  # 576 bytes percent-encoded
    assert len(key_segment(cjk)) <= MAX_SEGMENT and "~" in key_segment(cjk)
    assert key_segment(cjk) != key_segment("数" * 63 + "据")


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("number", b"-12.50", b"-12.50"),
        ("number", b"0.3333333432674408", b"0.3333333432674408"),
        ("bit", b"101", b"b'101'"),
        ("bit", b"0", b"b'0'"),
        ("binary", b"\x00\xff'", b"X'00FF27'"),
        ("binary", b"", b"X''"),
        ("text", b"a'b\\c\0d\x1ae\n", b"'a\\'b\\\\c\\0d\\Ze\n'"),
        ("text", None, b"NULL"),
    ],
)
def test_client_side_rendering_matches_the_server_rules(
    kind: str, raw: bytes | None, expected: bytes
) -> None:
    assert literal_of(kind, raw) == expected


def _table(key: tuple[str, ...], key_type: str = "int") -> Table:
    return Table(
        database="d",
        name="t",
        kind="table",
        engine="InnoDB",
        create="",
        columns=(
            Column("id", key_type, None, False),
            Column("body", "longblob", None, False),
            Column("total", "int", None, True),
        ),
        order_key=key,
    )


def test_range_filters_cover_the_key_space_without_overlap() -> None:
    table = _table(("id",))
    assert range_filters(table, ()) == [""]
    assert range_filters(table, (10, 20)) == ["`id` < 10", "`id` >= 10 AND `id` < 20", "`id` >= 20"]
    assert range_filters(_table(("id",), "varchar"), (10,)) == [""], "only integer keys split"


def test_row_query_skips_generated_columns_and_orders_by_the_key() -> None:
    query = RowQuery(_table(("id",)), raw_threshold=100)
    assert query.insert_prefix() == b"INSERT INTO `t` (`id`,`body`) VALUES\n"
    sql = query.select("`id` < 10")
    assert "`total`" not in sql and sql.endswith("WHERE `id` < 10 ORDER BY `id`")
    assert "> 100" in sql, "large values switch to client-side rendering"


def test_unrendered_rows_stop_the_dump_instead_of_writing_nulls() -> None:
    from datatier.errors import OperationFailed

    query = RowQuery(_table(("id",)), raw_threshold=100)
    assert query.texts(((None, b"1", b"7", b"\x01"),)) == [b"(7,X'01')"]
    with pytest.raises(OperationFailed, match="could not render a row"):
        query.texts(((None, b"0", None, None),))


def test_text_values_stay_uncast_only_when_every_character_column_shares_one_collation() -> None:
    def col(name: str, charset: str | None, collation: str | None) -> Column:
        return Column(name, "varchar" if charset else "datetime", charset, False, collation)

    uniform = (col("a", "utf8mb4", "utf8mb4_unicode_ci"), col("b", "utf8mb4", "utf8mb4_unicode_ci"))
    assert uniform_text((*uniform, col("d", None, None)))
    assert not uniform_text((*uniform, col("c", "utf8mb4", "utf8mb4_bin")))
    assert not uniform_text((*uniform, col("l", "latin1", "latin1_swedish_ci")))
    stamp = col("d", None, None)
    assert value_sql(stamp, binary=False) == "QUOTE(`d`)"
    assert value_sql(stamp) == "CAST(QUOTE(`d`) AS BINARY)"
    assert value_sql(uniform[0], binary=False) == "QUOTE(CAST(`a` AS BINARY))", "always bytes"
    latin = col("l", "latin1", "latin1_swedish_ci")
    assert value_sql(latin, binary=False) == value_sql(latin), "converted text is always cast"


def test_not_null_columns_go_without_the_null_test() -> None:
    """The NULL test costs the server per value; a NOT NULL column never needs it."""
    for data_type, bare in (
        ("int", "`v`"),
        ("float", "CAST(`v` AS DOUBLE)"),
        ("year", "(`v`+0)"),
        ("bit", "CONCAT('b''',BIN(`v`+0),'''')"),
        ("varbinary", "CONCAT('X''',HEX(`v`),'''')"),
    ):
        strict = Column("v", data_type, None, False, None, nullable=False)
        loose = Column("v", data_type, None, False, None)
        assert value_sql(strict) == bare, data_type
        assert value_sql(loose) != bare and "NULL" in value_sql(loose), data_type
    text = Column("v", "varchar", "utf8mb4", False, "utf8mb4_bin", nullable=False)
    assert value_sql(text) == "QUOTE(CAST(`v` AS BINARY))", "QUOTE renders NULL by itself"
