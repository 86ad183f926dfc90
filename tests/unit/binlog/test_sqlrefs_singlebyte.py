"""The binlog scanner reads a statement sent in a single-byte character set as MariaDB
does (:mod:`datatier.mysql.binlog.singlebyte`): byte for byte, each name's value in the
statement's charset, new names written in it; the characters below were checked on a
MariaDB 10.11 server (``CONVERT(_binary X'nn' USING <set>)``)."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.multibyte import UnspelledName
from datatier.mysql.binlog.singlebyte import SINGLE_BYTE
from datatier.mysql.binlog.sqlrefs import rewrite, scan

LATIN1 = SINGLE_BYTE["latin1"]
SWE7 = SINGLE_BYTE["swe7"]


def renamed(text: bytes, charset: str, renames: dict[str, str]) -> bytes:
    read = SINGLE_BYTE[charset]
    found = scan(text.decode("latin-1"), charset=read)
    out = rewrite(text.decode("latin-1"), found, renames, set(renames), charset=read)
    return out.encode("latin-1")


@pytest.mark.parametrize(
    ("charset", "codec", "name"),
    [("latin1", "cp1252", "tf_café"), ("cp1251", "cp1251", "tf_бд"), ("koi8r", "koi8_r", "бд")],
)
def test_a_name_is_read_in_the_statements_charset(charset: str, codec: str, name: str) -> None:
    """`tf_café` sent in latin1 (``e9``, not UTF-8's ``c3 a9``) is the restored database:
    renamed, quoted or not; the rest of the statement goes back byte for byte."""
    text = f"CREATE VIEW v AS SELECT '{name}' AS x, id FROM {name}.t JOIN `{name}`.u".encode(codec)
    got = renamed(text, charset, {name: "tf_r"})
    assert got == f"CREATE VIEW v AS SELECT '{name}' AS x, id FROM `tf_r`.t JOIN `tf_r`.u".encode(
        codec
    )


def test_a_new_name_is_written_in_the_statements_charset() -> None:
    """Renamed to `tf_été`, a latin1 statement spells it in latin1 bytes."""
    got = renamed(b"SELECT * FROM cr.t", "latin1", {"cr": "tf_été"})
    assert got == "SELECT * FROM `tf_été`.t".encode("latin-1")


def test_a_new_name_the_charset_cannot_write_is_refused() -> None:
    with pytest.raises(UnspelledName, match="cannot be written in latin1"):
        renamed(b"SELECT * FROM cr.t", "latin1", {"cr": "tf_表"})
    with pytest.raises(UnspelledName):
        SINGLE_BYTE["greek"].quoted("€")  # iso8859_7 has it at 0xA4, the server has not


@pytest.mark.parametrize(
    ("charset", "byte", "char"),
    [
        ("latin1", 0x80, "€"),  # cp1252, not ISO 8859-1
        ("latin1", 0x81, "\x81"),  # undefined in cp1252, a C1 control on the server
        ("koi8u", 0x95, "•"),
        ("hebrew", 0xAF, "‾"),
        ("cp866", 0xFC, "ⁿ"),
        ("greek", 0xA1, "\u02bd"),
        ("tis620", 0xDB, "\ufffd"),
        ("armscii8", 0xB2, "Ա"),  # no Python codec: the server's table
        ("keybcs2", 0x80, "Č"),
        ("geostd8", 0xC0, "ა"),
        ("swe7", 0x5B, "Ä"),
    ],
)
def test_bytes_are_read_as_the_server_reads_them(charset: str, byte: int, char: str) -> None:
    read = SINGLE_BYTE[charset]
    assert read.decode(chr(byte)) == char
    assert read.decode(read.encode(char).decode("latin-1")) == char  # tis620: 0xA0 too


@pytest.mark.parametrize(("charset", "byte"), [("greek", 0xA4), ("cp1256", 0xFF), ("dec8", 0xA4)])
def test_a_byte_the_server_leaves_unmapped_matches_no_name(charset: str, byte: int) -> None:
    """Python's codec may map it (iso8859_7 0xA4 is `€`): read as a surrogate."""
    value = SINGLE_BYTE[charset].decode(f"a{chr(byte)}")
    assert value == "a" + chr(0xDC00 + byte)


@pytest.mark.parametrize("charset", sorted(SINGLE_BYTE))
def test_ascii_names_read_and_write_as_themselves(charset: str) -> None:
    """In every single-byte set (swe7 but for ``@[\\]^`{|}~``) an ASCII name is itself."""
    read = SINGLE_BYTE[charset]
    name = "Tf_db$1"
    assert read.decode(name) == name
    assert read.quoted(name) == f"`{name}`"
    assert (
        renamed(b"SELECT * FROM cr.t", charset, {"cr": name})
        == f"SELECT * FROM `{name}`.t".encode()
    )


def test_swe7_reads_ascii_punctuation_as_letters() -> None:
    """swe7 0x5B is `Ä`, 0x60 `é` (still a backtick to the lexer: doubled inside a quoted
    name, written so); a name holding a backtick or `[` cannot be written in it."""
    assert scan("SELECT * FROM `a[b`.t", charset=SWE7).qualifiers[0][0].value == "aÄb"
    found = scan("SELECT * FROM `a``b`.t", charset=SWE7)
    assert found.qualifiers[0][0].value == "aéb"
    assert SWE7.quoted("aéb") == "`a``b`"
    for name in ("a`b", "a[b"):
        with pytest.raises(UnspelledName):
            SWE7.quoted(name)


def test_a_0xa0_byte_is_a_space_in_latin1_and_part_of_a_name_in_cp1251() -> None:
    """latin1's no-break space separates names (the translator passes it as ``space``);
    cp1251 0xA0 is one too there, koi8r 0xA0 a box-drawing letter of a name."""
    found = scan("SELECT * FROM\xa0cr.t", charset=LATIN1, space="\xa0")
    assert [n.value for n, _ in found.qualifiers] == ["cr"]
    found = scan("SELECT * FROM cr\xa0.t", charset=SINGLE_BYTE["koi8r"])
    assert [n.value for n, _ in found.qualifiers] == ["cr═"]
