"""The binlog scanner reads names of a statement sent in euckr, gb2312, ujis or eucjpms as
MariaDB does (:mod:`datatier.mysql.binlog.euc`); the characters below were checked on a
MariaDB 10.11 server (``CONVERT(_binary X'...' USING <set>)``)."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.euc import EUC
from datatier.mysql.binlog.multibyte import UnspelledName
from datatier.mysql.binlog.sqlrefs import rewrite, scan


def renamed(text: bytes, charset: str, renames: dict[str, str]) -> bytes:
    read = EUC[charset]
    found = scan(text.decode("latin-1"), charset=read)
    out = rewrite(text.decode("latin-1"), found, renames, set(renames), charset=read)
    return out.encode("latin-1")


@pytest.mark.parametrize(
    ("charset", "codec", "name"),
    [
        ("euckr", "euc_kr", "tf_한국"),
        ("euckr", "cp949", "tf_똠"),  # 0x8C 0x63: an extended character, a letter second byte
        ("gb2312", "gb2312", "tf_中文"),
        ("ujis", "euc_jp", "tf_表"),
        ("eucjpms", "euc_jp", "tf_日本"),
    ],
)
def test_a_name_is_read_and_renamed_in_the_statements_charset(
    charset: str, codec: str, name: str
) -> None:
    text = f"CREATE VIEW v AS SELECT '{name}' AS x FROM {name}.t JOIN `{name}`.u".encode(codec)
    got = renamed(text, charset, {name: "tf_r"})
    want = f"CREATE VIEW v AS SELECT '{name}' AS x FROM `tf_r`.t JOIN `tf_r`.u"
    assert got == want.encode(codec)
    assert renamed(b"SELECT * FROM cr.t", charset, {"cr": name}) == (
        f"SELECT * FROM `{name}`.t".encode(codec)
    )


@pytest.mark.parametrize(
    ("charset", "raw", "char"),
    [
        ("ujis", b"\xa1\xc0", "\\"),  # euc_jp reads U+FF3C
        ("eucjpms", b"\xa1\xc0", "\uff3c"),
        ("ujis", b"\xf5\xa1", "\ue000"),  # user-defined rows, in order
        ("ujis", b"\x8f\xfe\xfe", "\ue757"),
        ("eucjpms", b"\xad\xa1", "\u2460"),  # NEC row 13: circled digit one
        ("eucjpms", b"\x8f\xf4\xfe", "\u9ed1"),  # IBM extension
        ("ujis", b"\x8f\xb0\xa1", "\u4e02"),  # JIS X 0212, three bytes
    ],
)
def test_characters_are_read_as_the_server_reads_them(charset: str, raw: bytes, char: str) -> None:
    read = EUC[charset]
    assert read.decode(raw.decode("latin-1")) == char
    assert read.characters(raw.decode("latin-1")) == [raw.decode("latin-1")]
    assert read.decode(read.encode(char).decode("latin-1")) == char  # ujis: b"\\" too


def test_a_name_the_charset_cannot_write_is_refused() -> None:
    with pytest.raises(UnspelledName, match="gb2312"):
        EUC["gb2312"].quoted("tf_한")
