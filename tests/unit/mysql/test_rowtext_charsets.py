"""Row text rules for character sets and ENUM: which text is QUOTEd, which goes as hex with
its charset's introducer, ENUM's error value, and the legacy rules of older backups."""

from __future__ import annotations

import pytest

from datatier.mysql.catalogue import Column, Table
from datatier.mysql.rowtext import (
    EXACT_CHARSETS,
    RowQuery,
    introducer,
    kind_of,
    literal_of,
    raw_sql,
    value_sql,
)


def text(charset: str | None, data_type: str = "varchar", *, nullable: bool = True) -> Column:
    return Column("v", data_type, charset, False, None, nullable=nullable)


@pytest.mark.parametrize(
    ("charset", "kind"),
    [
        (None, "text"),
        ("utf8mb4", "text"),
        ("utf8mb3", "text"),
        ("latin1", "text"),
        ("koi8r", "text"),
        ("armscii8", "hex"),  # 0xFF converts to a plain quote
        ("sjis", "hex"),  # 0x5C comes back as 0x815F
        ("cp932", "hex"),
        ("ascii", "hex"),  # bytes 0x80-0xFF become '?'
        ("swe7", "hex"),  # its 0x5C is a letter: QUOTE's escape would turn into one
        ("cp1250", "hex"),
        ("ucs2", "hex"),
        ("utf16", "hex"),
        ("utf32", "hex"),
        ("gbk", "hex"),
    ],
)
def test_only_charsets_proven_exact_are_quoted_the_rest_go_as_hex(
    charset: str | None, kind: str
) -> None:
    assert kind_of(text(charset)) == kind
    assert kind_of(text(charset), rules=1) == "text", "older backups quoted every text"


def test_hex_text_is_its_stored_bytes_with_the_introducer_of_its_charset() -> None:
    assert value_sql(text("sjis", nullable=False)) == "CONCAT('_sjis X''',HEX(`v`),'''')"
    assert value_sql(text("sjis")) == "IF(`v` IS NULL,'NULL',CONCAT('_sjis X''',HEX(`v`),''''))"
    assert raw_sql(text("sjis")) == "CAST(`v` AS BINARY)", "raw bytes, never converted"
    assert literal_of("hex", b"\x83\x5c'\0", "sjis") == b"_sjis X'835C2700'"
    assert literal_of("hex", b"", "armscii8") == b"_armscii8 X''"
    assert literal_of("hex", None, "sjis") == b"NULL"
    with pytest.raises(ValueError, match="charset"):
        literal_of("hex", b"x")


def test_an_introducer_is_only_ever_a_charset_name() -> None:
    assert introducer("utf16le") == "_utf16le"
    for bad in ("", "x'", "latin1 X", "a;b", "UTF8"):
        with pytest.raises(ValueError, match="not a character set name"):
            introducer(bad)


def test_exact_charsets_are_converted_then_quoted_as_bytes() -> None:
    """QUOTE of the converted value's bytes (the same bytes as QUOTE of its text, checked
    on the server by ``test_row_text_rules``); NULL converts to NULL, QUOTE renders it."""
    assert "utf8mb4" not in EXACT_CHARSETS, "utf8mb4 is quoted without a conversion"
    for charset in ("latin1", "utf8mb3"):
        assert value_sql(text(charset)) == "QUOTE(CAST(CONVERT(`v` USING utf8mb4) AS BINARY))"


def test_an_enum_s_error_value_renders_as_the_number_0() -> None:
    enum = Column("e", "enum", "utf8mb4", False, "utf8mb4_general_ci")
    assert value_sql(enum) == "IF(`e`+0=0,'0',QUOTE(CAST(`e` AS BINARY)))"
    assert value_sql(enum, binary=False) == value_sql(enum), "utf8mb4 is quoted as bytes"
    hexed = Column("e", "enum", "armscii8", False, "armscii8_general_ci", nullable=False)
    assert value_sql(hexed) == "IF(`e`+0=0,'0',CONCAT('_armscii8 X''',HEX(`e`),''''))"
    assert kind_of(enum) == "enum" and raw_sql(enum) == value_sql(enum), "server-rendered"
    assert literal_of("enum", b"0") == b"0" and literal_of("enum", b"'a'") == b"'a'"
    assert value_sql(enum, rules=1) == "CAST(QUOTE(`e`) AS BINARY)"


def test_a_set_renders_as_its_number_and_as_text_by_the_rules_before() -> None:
    """As text, a value holding the member '' loses it on load (',a' reads as 'a'); its
    number (the bits of its members) loads exactly. Backups of rules 2 and 1 quoted it."""
    sets = Column("s", "set", "utf8mb4", False, "utf8mb4_general_ci")
    assert kind_of(sets) == "set"
    assert value_sql(sets) == "IFNULL((`s`+0),'NULL')"
    required = Column("s", "set", "sjis", False, "sjis_japanese_ci", nullable=False)
    assert value_sql(required) == "(`s`+0)", "a number whatever its charset"
    assert raw_sql(sets) == "(`s`+0)" and literal_of("set", b"5") == b"5"
    assert literal_of("set", None) == b"NULL"
    assert kind_of(sets, rules=2) == "text"
    assert value_sql(sets, rules=2) == "QUOTE(CAST(`s` AS BINARY))"
    assert kind_of(sets, rules=1) == "text"


def test_legacy_rules_render_every_text_as_before() -> None:
    """The digests of backups made before the rules changed are recomputed with these."""
    for charset in ("sjis", "armscii8", "ucs2", "latin1"):
        assert value_sql(text(charset, nullable=False), rules=1) == (
            "IF(`v` IS NULL,'NULL',CAST(CONVERT(QUOTE(`v`) USING utf8mb4) AS BINARY))"
        )
        assert raw_sql(text(charset), rules=1) == "`v`"


def test_raw_rows_render_each_column_by_its_own_rules() -> None:
    columns = (
        Column("id", "int", None, False, nullable=False),
        Column("body", "longtext", "sjis", False, "sjis_japanese_ci"),
        Column("e", "enum", "utf8mb4", False, "utf8mb4_general_ci"),
        Column("l", "varchar", "latin1", False, "latin1_swedish_ci"),
    )
    table = Table("d", "t", "table", "InnoDB", "", columns, ("id",))
    query = RowQuery(table, raw_threshold=10)
    sql = query.select()
    assert "CAST(`body` AS BINARY)" in sql and "IF(`e`+0=0,'0'," in sql
    row = (None, b"1", b"7", b"\x83\x5c", b"0", b"it's")
    assert query.texts((row,)) == [b"(7,_sjis X'835C',0,'it\\'s')"]
    legacy = RowQuery(table, raw_threshold=10, rules=1)
    assert "CAST(`body` AS BINARY)" not in legacy.select()
    assert legacy.texts(((None, b"1", b"7", b"\\", b"", None),)) == [b"(7,'\\\\','',NULL)"]
