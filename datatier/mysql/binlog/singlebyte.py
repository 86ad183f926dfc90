"""Single-byte client character sets: how the server reads a statement's bytes.

MariaDB reads a statement in its session's ``character_set_client``: in latin1 `café` is
the bytes ``63 61 66 e9``, in cp1251 `бд` is ``e1 e4``. A statement sent in a single-byte
set is scanned byte for byte (latin-1, positions kept, given back unchanged) and its names
read with the :class:`~datatier.mysql.binlog.multibyte.Charset` of :data:`SINGLE_BYTE`
(no lead bytes: every byte one character).

Checked on MariaDB 10.11 (``SELECT HEX(CONVERT(CONVERT(_binary X'nn' USING <set>) USING
utf8mb4))`` for all 256 bytes of each set whose ``MAXLEN`` is 1, ``?`` meaning unmapped)
against Python's codecs: they agree but for the exceptions recorded in :data:`CODECS`
(latin1 is cp1252 but for five C1 controls; bytes the server maps otherwise; bytes it
leaves unmapped, read as surrogates matching no name). Sets without a Python codec read
their upper half from the server's table (:data:`TABLES`, ``?`` unmapped); swe7 also reads
``@[\\]^`{|}~`` as Swedish letters (0x60 is a backtick to the lexer all the same, which
:meth:`~datatier.mysql.binlog.multibyte.Charset.unquoted` and
:meth:`~datatier.mysql.binlog.multibyte.Charset.quoted` follow).
"""

from __future__ import annotations

from datatier.mysql.binlog.multibyte import Charset

_FFFD = dict.fromkeys([0xA0, 0xDB, 0xDC, 0xDD, 0xDE, 0xFC, 0xFD, 0xFE, 0xFF], "\ufffd")

CODECS: dict[str, tuple[str, dict[int, str], tuple[int, ...]]] = {
    "ascii": ("ascii", {}, ()),
    "cp1250": ("cp1250", {}, ()),
    "cp1251": ("cp1251", {}, ()),
    "cp1256": ("cp1256", {}, (0x8A, 0x8F, 0x98, 0x9A, 0x9F, 0xAA, 0xC0, 0xFF)),
    "cp1257": ("cp1257", {}, ()),
    "cp850": ("cp850", {}, ()),
    "cp852": ("cp852", {}, ()),
    "cp866": ("cp866", {0xFC: "\u207f", 0xFD: "\xb2"}, ()),
    "greek": ("iso8859_7", {0xA1: "\u02bd", 0xA2: "\u02bc"}, (0xA4, 0xA5, 0xAA)),
    "hebrew": ("iso8859_8", {0xAF: "\u203e"}, ()),
    "hp8": ("hp_roman8", {}, ()),
    "koi8r": ("koi8_r", {}, ()),
    "koi8u": ("koi8_u", {0x95: "\u2022"}, ()),
    "latin1": ("cp1252", {b: chr(b) for b in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}, ()),
    "latin2": ("iso8859_2", {}, ()),
    "latin5": ("iso8859_9", {}, ()),
    "latin7": ("iso8859_13", {}, ()),
    "macce": ("mac_latin2", {}, ()),
    "macroman": ("mac_roman", {}, ()),
    "tis620": ("tis_620", _FFFD, ()),
}
"""Sets read with a Python codec: (codec, bytes the server reads otherwise, bytes the
server leaves unmapped)."""

TABLES: dict[str, str] = {
    "armscii8": (
        "\x80\x81\x82\x83\x84\x85\x86\x87"
        "\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f"
        "\x90\x91\x92\x93\x94\x95\x96\x97"
        "\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f"
        "\xa0\u2741\xa7\u0589)(\xbb\xab"
        "\u2014.\u055d,-\u055f\u2026\u055c"
        "\u055b\u055e\u0531\u0561\u0532\u0562\u0533\u0563"
        "\u0534\u0564\u0535\u0565\u0536\u0566\u0537\u0567"
        "\u0538\u0568\u0539\u0569\u053a\u056a\u053b\u056b"
        "\u053c\u056c\u053d\u056d\u053e\u056e\u053f\u056f"
        "\u0540\u0570\u0541\u0571\u0542\u0572\u0543\u0573"
        "\u0544\u0574\u0545\u0575\u0546\u0576\u0547\u0577"
        "\u0548\u0578\u0549\u0579\u054a\u057a\u054b\u057b"
        "\u054c\u057c\u054d\u057d\u054e\u057e\u054f\u057f"
        "\u0550\u0580\u0551\u0581\u0552\u0582\u0553\u0583"
        "\u0554\u0584\u0555\u0585\u0556\u0586\u2019'"
    ),
    "dec8": (
        "\x80\x81\x82\x83\x84\x85\x86\x87"
        "\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f"
        "\x90\x91\x92\x93\x94\x95\x96\x97"
        "\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f"
        "\xa0\xa1\xa2\xa3?\xa5?\xa7"
        "\xa4\xa9\xaa\xab????"
        "\xb0\xb1\xb2\xb3?\xb5\xb6\xb7"
        "?\xb9\xba\xbb\xbc\xbd?\xbf"
        "\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7"
        "\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf"
        "?\xd1\xd2\xd3\xd4\xd5\xd6\u0152"
        "\xd8\xd9\xda\xdb\xdc\u0178?\xdf"
        "\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7"
        "\xe8\xe9\xea\xeb\xec\xed\xee\xef"
        "?\xf1\xf2\xf3\xf4\xf5\xf6\u0153"
        "\xf8\xf9\xfa\xfb\xfc\xff??"
    ),
    "geostd8": (
        "\u20ac?\u201a?\u201e\u2026\u2020\u2021"
        "?\u2030?\u2039????"
        "?\u2018\u2019\u201c\u201d\u2022\u2013\u2014"
        "???\u203a????"
        "\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7"
        "\xa8\xa9\xaa\xab\xac\xad\xae\xaf"
        "\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7"
        "\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf"
        "\u10d0\u10d1\u10d2\u10d3\u10d4\u10d5\u10d6\u10f1"
        "\u10d7\u10d8\u10d9\u10da\u10db\u10dc\u10f2\u10dd"
        "\u10de\u10df\u10e0\u10e1\u10e2\u10f3\u10e3\u10e4"
        "\u10e5\u10e6\u10e7\u10e8\u10e9\u10ea\u10eb\u10ec"
        "\u10ed\u10ee\u10f4\u10ef\u10f0\u10f5??"
        "????????"
        "????????"
        "?????\u2116??"
    ),
    "keybcs2": (
        "\u010c\xfc\xe9\u010f\xe4\u010e\u0164\u010d"
        "\u011b\u011a\u0139\xcd\u013e\u013a\xc4\xc1"
        "\xc9\u017e\u017d\xf4\xf6\xd3\u016f\xda"
        "\xfd\xd6\xdc\u0160\u013d\xdd\u0158\u0165"
        "\xe1\xed\xf3\xfa\u0148\u0147\u016e\xd4"
        "\u0161\u0159\u0155\u0154\xbc\xa1\xab\xbb"
        "\u2591\u2592\u2593\u2502\u2524\u2561\u2562\u2556"
        "\u2555\u2563\u2551\u2557\u255d\u255c\u255b\u2510"
        "\u2514\u2534\u252c\u251c\u2500\u253c\u255e\u255f"
        "\u255a\u2554\u2569\u2566\u2560\u2550\u256c\u2567"
        "\u2568\u2564\u2565\u2559\u2558\u2552\u2553\u256b"
        "\u256a\u2518\u250c\u2588\u2584\u258c\u2590\u2580"
        "\u03b1\xdf\u0393\u03c0\u03a3\u03c3\xb5\u03c4"
        "\u03a6\u0398\u03a9\u03b4\u221e\u03c6\u03b5\u2229"
        "\u2261\xb1\u2265\u2264\u2320\u2321\xf7\u2248"
        "\xb0\u2219\xb7\u221a\u207f\xb2\u25a0\xa0"
    ),
    "swe7": "?" * 128,
}
"""Sets without a Python codec: the server's characters for bytes 0x80-0xFF (``?``:
unmapped)."""

SWE7_ASCII = dict(zip(b"@[\\]^`{|}~", "ÉÄÖÅÜéäöåü", strict=True))
"""The ASCII bytes swe7 reads as letters (0x7F is unmapped)."""


def _byte(value: int) -> bytes:
    return bytes([value])


def _from_codec(
    name: str, codec: str, otherwise: dict[int, str], unmapped: tuple[int, ...]
) -> Charset:
    server = {_byte(b): char for b, char in otherwise.items()}
    return Charset(name, (), (), codec, server, unmapped=frozenset(map(_byte, unmapped)))


def _from_table(name: str, high: str) -> Charset:
    server = {_byte(0x80 + i): char for i, char in enumerate(high) if char != "?"}
    unmapped = {_byte(0x80 + i) for i, char in enumerate(high) if char == "?"}
    if name == "swe7":
        server |= {_byte(b): char for b, char in SWE7_ASCII.items()}
        unmapped.add(b"\x7f")
    return Charset(name, (), (), "ascii", server, unmapped=frozenset(unmapped))


SINGLE_BYTE = {name: _from_codec(name, *spec) for name, spec in CODECS.items()} | {
    name: _from_table(name, high) for name, high in TABLES.items()
}
"""Every single-byte character set a client can use (binary aside), by the server's name."""
