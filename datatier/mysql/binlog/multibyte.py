"""Statements sent in a multi-byte character set whose second bytes can be ASCII.

MariaDB reads a statement in its session's ``character_set_client``. In sjis, cp932, gbk
and big5 the second byte of a two-byte character may be 0x40-0x7E: sjis `表` is 0x95 0x5C,
`チ` 0x83 0x60. The server's lexer takes a lead byte and a second byte in range as one
character wherever it reads one (strings, quoted and unquoted names), so that 0x5C escapes
nothing and that 0x60 closes no name. Such a statement is scanned byte for byte (latin-1,
which gives the bytes back unchanged, positions kept): :meth:`Charset.masked` is the text
the tokenizer reads, each such ASCII second byte replaced by a copy of its lead byte (an
identifier character there); :meth:`Charset.decode` gives a name's value from the
statement's own bytes; :meth:`Charset.lowered` spells a name lower-cased in the charset.

Checked on MariaDB 10.11 (raw bytes sent with ``SET character_set_client``):

- Every multi-byte character set but ucs2, utf16, utf16le and utf32 can be the client's.
  Of them only these four take 0x5C, 0x60 or other ASCII punctuation (``@[]^{|}~``) as
  a second byte; euckr, gb2312, ujis, eucjpms and utf8 take none (letters change no
  token).
- Lead bytes (:data:`CHARSETS`): those L for which ``SELECT LENGTH('L\\'), 1`` parses
  (0x5C taken with L, the quote closes). Second bytes: for every two lead bytes L and T,
  ``SELECT LENGTH('LT\\'), 1`` parses exactly when T is not a second byte of L, as the
  ranges say; ```xL``` plus a backtick parses (or fails as an invalid character, error
  1300) for every lead L: the lexer takes 0x60 with it even where no character is
  assigned. ``_latin1'...'``, ``_binary'...'``, ``N'...'`` and ``"..."`` are read in the
  client character set too.
- A byte above 0x7F that starts no character (sjis half-width katakana, 0xA0...) is
  neither a space nor part of an unquoted name (a syntax error there): a logged
  statement holds it in a string, a quoted name or a comment only.
- Values: every character's conversion to utf8mb4 on the server against Python's codecs:
  shift_jisx0213 (sjis), cp932, gbk and big5 agree on every character the server maps,
  but for the big5 ones in :data:`BIG5_SERVER` (the server maps them so). shift_jisx0213
  also reads characters the server's sjis has not (`å` as 0x85 0x7A): sjis is written
  with shift_jis. Every character with a lower case that :meth:`Charset.lowered` writes
  is read back so by the server (83 in sjis, 103 in cp932, 93 in gbk, 73 in big5; the
  others are refused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, cached_property

from datatier.mysql.lettercase import name_key

BIG5_SERVER = {
    b"\xa1\x5a": "\ufffd", b"\xa1\xc3": "\ufffd", b"\xa1\xc5": "\ufffd", b"\xa1\xfe": "\ufffd",
    b"\xa2\x40": "\ufffd", b"\xa2\xcc": "\ufffd", b"\xa2\xce": "\ufffd", b"\xf9\xd6": "\u7881",
    b"\xf9\xd7": "\u92b9", b"\xf9\xd8": "\u88cf", b"\xf9\xd9": "\u58bb", b"\xf9\xda": "\u6052",
    b"\xf9\xdb": "\u7ca7", b"\xf9\xdc": "\u5afa",
}  # fmt: skip
"""big5 characters the server converts otherwise than Python's big5 codec (or at all)."""


class UnspelledName(ValueError):
    """A name has a character the charset cannot write so that the server reads it back."""


Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Charset:
    """A client character set whose statements are scanned byte for byte: its lead bytes
    and second bytes (ranges of byte values; none for a single-byte set,
    :mod:`~datatier.mysql.binlog.singlebyte`), the Python codec reading its characters,
    the characters the server reads otherwise than that codec, the codec writing
    characters (when the reading one writes some the server does not read), and the
    characters the server maps to nothing (read as surrogates, matching no name)."""

    name: str
    leads: Ranges
    seconds: Ranges
    codec: str
    server: dict[bytes, str] = field(default_factory=dict)
    writer: str = ""
    unmapped: frozenset[bytes] = frozenset()
    triples: Ranges = ()  # lead bytes of three-byte characters (two second bytes follow)

    @property
    def _mask(self) -> re.Pattern[str]:
        return _mask_pattern(self.leads, self.seconds)

    def masked(self, text: str) -> str:
        """``text`` (the statement read as latin-1) as the tokenizer reads it: each
        two-byte character whose second byte is ASCII written as its lead byte twice, so
        that byte is part of a name or string as on the server; as long as ``text``."""
        if not any(low < 0x80 for low, _ in self.seconds):
            return text
        return self._mask.sub(r"\1\1\2", text)

    def characters(self, text: str) -> list[str]:
        """``text`` (latin-1, starting at a character) cut into the server's characters."""
        if not self.leads:
            return [*text]
        return _chars_pattern(self.leads, self.seconds, self.triples).findall(text)

    def decode(self, text: str) -> str:
        """``text`` (latin-1, starting at a character) as the server reads it; a
        character that is not one of the charset's, byte by byte as surrogates (as
        ``surrogateescape`` does), matching no name given as text."""
        if text.isascii() and not self._ascii_read_otherwise:
            return text
        return "".join(self._char(c) for c in self.characters(text))

    def unquoted(self, inner: str, quote: str) -> str:
        """A quoted name's value: ``inner`` (latin-1, between its quotes) with each doubled
        ``quote`` character taken once, read as the server reads it (quotes undoubled
        first, character by character, as its lexer does)."""
        chars = self.characters(inner)
        kept, i = [], 0
        while i < len(chars):
            kept.append(chars[i])
            i += 2 if chars[i] == quote and chars[i + 1 : i + 2] == [quote] else 1
        return self.decode("".join(kept))

    @cached_property
    def _ascii_read_otherwise(self) -> bool:
        return any(len(raw) == 1 and raw[0] < 0x80 for raw in {*self.server, *self.unmapped})

    @cached_property
    def _written(self) -> dict[str, bytes]:
        """The bytes the server reads as each character of :attr:`server`."""
        return {char: raw for raw, char in sorted(self.server.items(), reverse=True)}

    def _char(self, char: str) -> str:
        raw = char.encode("latin-1")
        known = self.server.get(raw)
        if known is not None:
            return known
        if raw not in self.unmapped:
            if char.isascii():
                return char
            try:
                return raw.decode(self.codec)
            except UnicodeDecodeError:
                pass
        return raw.decode("ascii", "surrogateescape")

    def encode(self, text: str) -> bytes:
        """``text`` written in the charset, character by character (with the codec, else
        as the server's own conversions write it); :class:`UnspelledName` when the server
        would not read it back as ``text``."""
        out = []
        for char in text:
            try:
                out.append(char.encode(self.writer or self.codec))
            except UnicodeEncodeError:
                out.append(self._written.get(char, b""))
        raw = b"".join(out)
        if self.decode(raw.decode("latin-1")) != text:
            raise UnspelledName(f"{text!r} cannot be written in {self.name}")
        return raw

    def quoted(self, name: str) -> str:
        """``name`` as a backtick-quoted identifier written in the charset (latin-1, as
        statements are scanned), each byte the lexer takes for a backtick doubled;
        :class:`UnspelledName` when the server would not read it back as ``name``."""
        raw = b"".join(b"``" if c == b"`" else c for c in map(self.encode, name))
        return "`" + raw.decode("latin-1") + "`"

    def lowered(self, text: str) -> str:
        """``text`` (a name as the statement spells it, latin-1) with every character
        lower-cased as the server lower-cases names
        (:func:`~datatier.mysql.lettercase.name_key`), written in the charset; others
        kept byte for byte. :class:`UnspelledName` when a lower-cased character cannot be
        written so that the server reads it back."""
        out = []
        for char in self.characters(text):
            value = self._char(char)
            lower = name_key(value, True)
            if lower == value:
                out.append(char)
                continue
            out.append(self.encode(lower).decode("latin-1"))
        return "".join(out)


def _class(ranges: Ranges) -> str:
    return "[" + "".join(f"\\x{a:02x}-\\x{b:02x}" for a, b in ranges) + "]"


@cache
def _mask_pattern(leads: Ranges, seconds: Ranges) -> re.Pattern[str]:
    # left to right, as the server: a lead byte and a second byte are one character
    # (group 1 when the second byte is ASCII, group 2 otherwise); an unpaired byte is one
    low = _class(tuple(r for r in seconds if r[1] < 0x80))
    high = _class(tuple(r for r in seconds if r[0] >= 0x80))
    return re.compile(f"({_class(leads)}){low}|({_class(leads)}{high})")


@cache
def _chars_pattern(leads: Ranges, seconds: Ranges, triples: Ranges) -> re.Pattern[str]:
    three = f"{_class(triples)}{_class(seconds)}{{2}}|" if triples else ""
    return re.compile(f"{three}{_class(leads)}{_class(seconds)}|.", re.DOTALL)


_SJIS: tuple[Ranges, Ranges] = (((0x81, 0x9F), (0xE0, 0xFC)), ((0x40, 0x7E), (0x80, 0xFC)))
CHARSETS = {
    "sjis": Charset("sjis", *_SJIS, "shift_jisx0213", writer="shift_jis"),
    "cp932": Charset("cp932", *_SJIS, "cp932"),
    "gbk": Charset("gbk", ((0x81, 0xFE),), ((0x40, 0x7E), (0x80, 0xFE)), "gbk"),
    "big5": Charset("big5", ((0xA1, 0xF9),), ((0x40, 0x7E), (0xA1, 0xFE)), "big5", BIG5_SERVER),
}
"""The client character sets read by :class:`Charset`, by the server's name."""
