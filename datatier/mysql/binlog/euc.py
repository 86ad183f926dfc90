"""EUC client character sets (euckr, gb2312, ujis, eucjpms): how the server reads them.

None of their characters has an ASCII byte but euckr's, whose second bytes may be letters
(no token changes), so the tokenizer reads them as they are; their names are read with
the :class:`~datatier.mysql.binlog.multibyte.Charset` of :data:`EUC`, as the server reads
them. Lead and second bytes are those of the sequences the server maps (as MariaDB's ctype-*.c
have them: in ujis and eucjpms 0x8E is followed by one byte, 0x8F by two).

Checked on MariaDB 10.11: every two-byte sequence (lead 0x81-0xFE, second 0x40-0xFE) and
every 0x8F three-byte one converted to utf8mb4 on the server, against Python's codecs:
euckr is cp949 and gb2312 is gb2312 on every character the server maps; ujis is euc_jp
but for the user-defined rows 0xF5-0xFE (and 0x8F 0xF5-0xFE), which the server maps to
U+E000-U+E757 in order, and 0xA1 0xC0 (``\\``); eucjpms is euc_jp but for those rows and
the characters of :data:`EUCJPMS_SERVER_TEXT` (NEC and IBM extensions, as cp932 has
them). Python decodes no sequence the server leaves unmapped; every character the server
maps is written back (:meth:`~datatier.mysql.binlog.multibyte.Charset.encode`) so it
reads it back.
"""

from __future__ import annotations

from datatier.mysql.binlog.multibyte import Charset

EUCJPMS_SERVER_TEXT = (
    "a1c1:\uff5e a1c2:\u2225 a1dd:\uff0d a1f1:\uffe0 a1f2:\uffe1 a2cc:\uffe2 "
    "ada1:\u2460 ada2:\u2461 ada3:\u2462 ada4:\u2463 ada5:\u2464 ada6:\u2465 "
    "ada7:\u2466 ada8:\u2467 ada9:\u2468 adaa:\u2469 adab:\u246a adac:\u246b "
    "adad:\u246c adae:\u246d adaf:\u246e adb0:\u246f adb1:\u2470 adb2:\u2471 "
    "adb3:\u2472 adb4:\u2473 adb5:\u2160 adb6:\u2161 adb7:\u2162 adb8:\u2163 "
    "adb9:\u2164 adba:\u2165 adbb:\u2166 adbc:\u2167 adbd:\u2168 adbe:\u2169 "
    "adc0:\u3349 adc1:\u3314 adc2:\u3322 adc3:\u334d adc4:\u3318 adc5:\u3327 "
    "adc6:\u3303 adc7:\u3336 adc8:\u3351 adc9:\u3357 adca:\u330d adcb:\u3326 "
    "adcc:\u3323 adcd:\u332b adce:\u334a adcf:\u333b add0:\u339c add1:\u339d "
    "add2:\u339e add3:\u338e add4:\u338f add5:\u33c4 add6:\u33a1 addf:\u337b "
    "ade0:\u301d ade1:\u301f ade2:\u2116 ade3:\u33cd ade4:\u2121 ade5:\u32a4 "
    "ade6:\u32a5 ade7:\u32a6 ade8:\u32a7 ade9:\u32a8 adea:\u3231 adeb:\u3232 "
    "adec:\u3239 aded:\u337e adee:\u337d adef:\u337c adf0:\u2252 adf1:\u2261 "
    "adf2:\u222b adf3:\u222e adf4:\u2211 adf5:\u221a adf6:\u22a5 adf7:\u2220 "
    "adf8:\u221f adf9:\u22bf adfa:\u2235 adfb:\u2229 adfc:\u222a 8fa2b7:\uff5e "
    "8fa2c3:\uffe4 8ff3f3:\u2170 8ff3f4:\u2171 8ff3f5:\u2172 8ff3f6:\u2173 "
    "8ff3f7:\u2174 8ff3f8:\u2175 8ff3f9:\u2176 8ff3fa:\u2177 8ff3fb:\u2178 "
    "8ff3fc:\u2179 8ff3fd:\u2160 8ff3fe:\u2161 8ff4a1:\u2162 8ff4a2:\u2163 "
    "8ff4a3:\u2164 8ff4a4:\u2165 8ff4a5:\u2166 8ff4a6:\u2167 8ff4a7:\u2168 "
    "8ff4a8:\u2169 8ff4a9:\uff07 8ff4aa:\uff02 8ff4ab:\u3231 8ff4ac:\u2116 "
    "8ff4ad:\u2121 8ff4ae:\u70bb 8ff4af:\u4efc 8ff4b0:\u50f4 8ff4b1:\u51ec "
    "8ff4b2:\u5307 8ff4b3:\u5324 8ff4b4:\ufa0e 8ff4b5:\u548a 8ff4b6:\u5759 "
    "8ff4b7:\ufa0f 8ff4b8:\ufa10 8ff4b9:\u589e 8ff4ba:\u5bec 8ff4bb:\u5cf5 "
    "8ff4bc:\u5d53 8ff4bd:\ufa11 8ff4be:\u5fb7 8ff4bf:\u6085 8ff4c0:\u6120 "
    "8ff4c1:\u654e 8ff4c2:\u663b 8ff4c3:\u6665 8ff4c4:\ufa12 8ff4c5:\uf929 "
    "8ff4c6:\u6801 8ff4c7:\ufa13 8ff4c8:\ufa14 8ff4c9:\u6a6b 8ff4ca:\u6ae2 "
    "8ff4cb:\u6df8 8ff4cc:\u6df2 8ff4cd:\u7028 8ff4ce:\ufa15 8ff4cf:\ufa16 "
    "8ff4d0:\u7501 8ff4d1:\u7682 8ff4d2:\u769e 8ff4d3:\ufa17 8ff4d4:\u7930 "
    "8ff4d5:\ufa18 8ff4d6:\ufa19 8ff4d7:\ufa1a 8ff4d8:\ufa1b 8ff4d9:\u7ae7 "
    "8ff4da:\ufa1c 8ff4db:\ufa1d 8ff4dc:\u7da0 8ff4dd:\u7dd6 8ff4de:\ufa1e "
    "8ff4df:\u8362 8ff4e0:\ufa1f 8ff4e1:\u85b0 8ff4e2:\ufa20 8ff4e3:\ufa21 "
    "8ff4e4:\u8807 8ff4e5:\ufa22 8ff4e6:\u8b7f 8ff4e7:\u8cf4 8ff4e8:\u8d76 "
    "8ff4e9:\ufa23 8ff4ea:\ufa24 8ff4eb:\ufa25 8ff4ec:\u90de 8ff4ed:\ufa26 "
    "8ff4ee:\u9115 8ff4ef:\ufa27 8ff4f0:\ufa28 8ff4f1:\u9592 8ff4f2:\uf9dc "
    "8ff4f3:\ufa29 8ff4f4:\u973b 8ff4f5:\u974d 8ff4f6:\u9751 8ff4f7:\ufa2a "
    "8ff4f8:\ufa2b 8ff4f9:\ufa2c 8ff4fa:\u999e 8ff4fb:\u9ad9 8ff4fc:\u9b72 "
    "8ff4fd:\ufa2d 8ff4fe:\u9ed1 "
)
"""eucjpms characters the server reads otherwise than euc_jp (hex bytes:character)."""


def _user_defined() -> dict[bytes, str]:
    """The user-defined rows 0xF5-0xFE, two-byte then 0x8F three-byte: U+E000 onwards."""
    cells = [bytes([row, cell]) for row in range(0xF5, 0xFF) for cell in range(0xA1, 0xFF)]
    cells += [b"\x8f" + two for two in cells]
    return {raw: chr(0xE000 + i) for i, raw in enumerate(cells)}


def _parsed(text: str) -> dict[bytes, str]:
    return {bytes.fromhex(raw): char for raw, char in (e.split(":") for e in text.split())}


_UJIS = _user_defined() | {b"\xa1\xc0": "\\"}
_JIS = (((0x8E, 0x8E), (0xA1, 0xFE)), ((0xA1, 0xFE),))
EUC = {
    "euckr": Charset("euckr", ((0x81, 0xFE),), ((0x41, 0x5A), (0x61, 0x7A), (0x81, 0xFE)), "cp949"),
    "gb2312": Charset("gb2312", ((0xA1, 0xF7),), ((0xA1, 0xFE),), "gb2312"),
    "ujis": Charset("ujis", *_JIS, "euc_jp", _UJIS, triples=((0x8F, 0x8F),)),
    "eucjpms": Charset(
        "eucjpms",
        *_JIS,
        "euc_jp",
        _user_defined() | _parsed(EUCJPMS_SERVER_TEXT),
        triples=((0x8F, 0x8F),),
    ),
}
"""The EUC client character sets, by the server's name."""
