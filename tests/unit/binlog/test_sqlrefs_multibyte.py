"""The binlog scanner reads a statement sent in sjis, cp932, gbk or big5 as MariaDB's lexer
does (:mod:`datatier.mysql.binlog.multibyte`): a lead byte and its second byte are one
character, whatever that byte (0x5C, 0x60...), read left to right; each case below was
checked on a MariaDB 10.11 server."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.multibyte import CHARSETS, UnspelledName
from datatier.mysql.binlog.sqlrefs import rewrite, scan

RENAMES = {"cr": "cr_r", "表": "hyo"}
KNOWN = {"cr", "表"}
SJIS = CHARSETS["sjis"]


def raw(text: str, codec: str = "shift_jis") -> str:
    """``text`` as a statement in ``codec`` is read: byte for byte."""
    return text.encode(codec).decode("latin-1")


def renamed(text: str, charset: str = "sjis", *, escapes: bool = True) -> bytes:
    read = CHARSETS[charset]
    found = scan(text, escapes=escapes, charset=read)
    return rewrite(text, found, RENAMES, KNOWN, charset=read).encode("latin-1")


@pytest.mark.parametrize(
    ("charset", "codec", "char"),
    [
        ("sjis", "shift_jis", "表"),
        ("cp932", "cp932", "表"),
        ("gbk", "gbk", "乗"),
        ("big5", "big5", "許"),
    ],
)
def test_a_second_byte_0x5c_escapes_nothing(charset: str, codec: str, char: str) -> None:
    """``'表'`` is a whole string: the ``cr.t`` after it is a name."""
    text = raw(f"CREATE VIEW v AS SELECT '{char}' AS x FROM cr.t WHERE 'a' = 'a'", codec)
    assert char.encode(codec).endswith(b"\\")
    assert renamed(text, charset) == text.replace("cr.t", "`cr_r`.t").encode("latin-1")


def test_a_second_byte_0x60_closes_no_name() -> None:
    """```チ``` (0x83 0x60) is one name: ``cr.t`` after it is renamed."""
    text = raw("SELECT id AS `チ`, id FROM cr.t WHERE `id` > 0")
    found = scan(text, charset=SJIS)
    assert [n.value for n in found.names][:3] == ["SELECT", "id", "AS"]
    assert "チ" in [n.value for n in found.names if n.quoted]
    assert renamed(text) == text.replace("cr.t", "`cr_r`.t").encode("latin-1")


def test_characters_are_read_left_to_right() -> None:
    """0x95 0x95 is one character; the 0x5C after it escapes the quote, so ``cr.t`` is in
    the string up to the last quote (``SELECT LENGTH('<95><95>\\'), 1`` does not parse)."""
    text = "SELECT '\x95\x95\\', cr.t, '"
    assert scan(text, charset=SJIS).qualifiers == []
    assert renamed(text) == text.encode("latin-1")


@pytest.mark.parametrize("text", ["SELECT '\x95' FROM cr.t", "SELECT 'x\x80\\'' FROM cr.t"])
def test_a_byte_that_starts_no_character_is_one(text: str) -> None:
    """0x95 before a quote is no character with it (0x27 is no second byte); 0x80 starts
    none in big5: the quote after it ends the string, the backslash escapes."""
    assert renamed(text, "big5" if "\x80" in text else "sjis") == text.replace(
        "cr.t", "`cr_r`.t"
    ).encode("latin-1")


def test_names_are_read_in_the_charset() -> None:
    """A name's value is its characters as the server reads them, not its bytes."""
    text = raw("ALTER TABLE 表.`テ\u30fcブル` ADD COLUMN c INT")
    found = scan(text, charset=SJIS, fold=True)
    assert [(n.value, parts) for n, parts in found.qualifiers] == [("表", 2)]
    assert [n.value for n in found.names][2:4] == ["表", "テーブル"]
    assert renamed(text) == raw("ALTER TABLE `hyo`.`テ\u30fcブル` ADD COLUMN c INT").encode(
        "latin-1"
    )


def test_masking_keeps_every_position() -> None:
    text = raw("SELECT '表' AS `チ`") + "\x95"
    masked = SJIS.masked(text)
    assert len(masked) == len(text)
    assert "\\" not in masked
    assert "`" not in masked.replace("`\x83\x83`", "")


def test_the_servers_own_big5_characters() -> None:
    """The server reads big5 0xF9 0xD6 as U+7881 (Python's big5 codec has none there)."""
    assert CHARSETS["big5"].decode("\xf9\xd6") == "\u7881"
    assert SJIS.decode("\x85") == "\udc85"  # a lone lead byte: no character


def test_lower_cased_names_are_written_in_the_charset() -> None:
    """A fullwidth T and `ア` (sjis 0x82 0x73, 0x83 0x41) lower-cased: a fullwidth t
    (0x82 0x94); the ASCII second byte of `ア` is kept, not lower-cased."""
    upper, lower = "\uff34", "\uff54"
    text = raw(f"UPDATE `{upper}アB` SET x = 1")
    found = scan(text, charset=SJIS, fold=True)
    out = rewrite(text, found, {}, set(), {f"{lower}アb"}, SJIS)
    assert out.encode("latin-1") == raw(f"UPDATE `{lower}アb` SET x = 1").encode("latin-1")
    assert raw(upper + lower + "ア") == "\x82\x73\x82\x94\x83\x41"


def test_a_lower_case_the_charset_cannot_write_is_refused() -> None:
    """`Å` (U+212B, sjis 0x81 0xF0) lower-cases to `å`, which sjis has not."""
    text = raw("UPDATE `\u212b` SET x = 1")
    found = scan(text, charset=SJIS, fold=True)
    with pytest.raises(UnspelledName):
        rewrite(text, found, {}, set(), {"å"}, SJIS)
    with pytest.raises(UnspelledName):
        SJIS.encode("å")
    assert SJIS.encode("表") == b"\x95\x5c"
