"""Rows as SQL value tuples: ``(1,'it\\'s',X'00FF',NULL)``, rendered by the server.

The SELECT built here makes the server write each row's literal text in C (``QUOTE``,
``HEX``, ``BIN``), so Python only joins bytes. Rules per column type:

* integers, DECIMAL, DOUBLE: the server's own text (exact); YEAR as its number; FLOAT via
  DOUBLE, whose shortest text gives back the very same float (the 6-digit text of a FLOAT
  would not);
* BIT: ``b'1011'``; binary strings, BLOBs and spatial values: ``X'...'`` (hex);
* ENUM: its index 0 (the error value a non-strict session stores for a value not in the
  list) as the number ``0``, which the restore's non-strict session stores as that error
  value again (as text it would read as the member ``''`` where the list has one);
* SET: its number (the bits of its members), which loads exactly; as text a value holding
  the member ``''`` (a list may have one) would load without it: ``',a'`` reads as ``'a'``;
* other text (text, ENUM/SET, dates and times, JSON, INET6, UUID) in utf8mb4, or in a
  charset of :data:`EXACT_CHARSETS`: ``QUOTE()`` in utf8mb4 (those charsets converted,
  which is exact for them); text in any other charset: its stored bytes in hex with their
  charset's introducer, ``_sjis X'835C'``, which loads byte for byte (its conversion to
  utf8mb4 and back is not: sjis 0x5C becomes 0x815F, undefined bytes ``?``; armscii8's
  0xFF even becomes a plain quote inside the literal); NULL is ``NULL``.

The restore test's digests (:mod:`datatier.mysql.table_digest`) hash these same texts, so
they compare stored bytes. Backups made by earlier rules (the manifest's ``row_text``
option, see :data:`ROW_TEXT_VERSION`) are re-read with theirs (``rules``), so their digests
still compare.

Generated columns are left out (the server recomputes them). A row whose large values would
push its rendered text past the server's ``max_allowed_packet`` (the server would return
NULL) is fetched raw instead and rendered here with the same rules, byte for byte; a row the
server failed to render for any other reason stops the dump (never a row of NULLs).

Tables with large-object columns and a unique order key are read with a cheaper query
first: each large value is guarded on its own (a row with one too large renders as NULL)
and no raw columns ride along. At the first such row the reader switches, for the rest of
the range, to the query that carries raw columns, skipping the rows already read by their
count (the order key is unique and the snapshot fixed, so the order is too). Either way the
rows come in key order with the same bytes.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from datatier.errors import OperationFailed
from datatier.mysql.catalogue import LOB_TYPES, Column, Table
from datatier.mysql.fastreader import RawConnection
from datatier.mysql.sqltext import ident, qualified

_first = operator.itemgetter(0)

STATEMENT_BYTES = 1 << 20
"""An INSERT statement holds rows up to about this many bytes (mariadb-dump's default)."""

NUMBER_TYPES = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "double", "float", "year"}
)
BINARY_TYPES = frozenset(
    {
        "binary",
        "varbinary",
        "tinyblob",
        "blob",
        "mediumblob",
        "longblob",
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
    }
)


ROW_TEXT_VERSION = 3
"""The rules above, recorded as ``options["row_text"]`` in a backup's manifest. Earlier:
1 (no option) every text ``QUOTE()`` converted to utf8mb4 and ENUM's error value ``''``;
2 SET as text (its members joined)."""

EXACT_CHARSETS = frozenset(
    {
        "utf8",
        "utf8mb3",
        "latin1",
        "latin2",
        "latin5",
        "latin7",
        "koi8r",
        "koi8u",
        "macroman",
        "macce",
        "cp850",
        "cp852",
        "cp866",
        "keybcs2",
    }
)
"""Charsets whose text ``QUOTE()`` converted to utf8mb4 renders exactly: utf8mb3 is
utf8mb4's own encoding (a value's bytes stay the same, surrogates included); in each of the
single-byte ones the 256 bytes convert to 256 distinct characters and back unchanged, and
only 0x00, 0x1A, 0x27 and 0x5C (the bytes ``QUOTE()`` escapes) become NUL, ^Z, ``'`` and
a backslash (checked for every byte on MariaDB 10.11). Any other charset renders as hex."""

_CHARSET_NAME = re.compile(r"[a-z0-9_]+")


def kind_of(column: Column, *, rules: int = ROW_TEXT_VERSION) -> str:
    """``number``, ``bit``, ``binary``, ``enum`` (rendered by the server on either path),
    ``set`` (its number), ``text`` (``QUOTE()`` in utf8mb4) or ``hex`` (text as its
    charset's bytes); by the row text ``rules`` of that version."""
    if column.data_type in NUMBER_TYPES:
        return "number"
    if column.data_type == "bit":
        return "bit"
    if column.data_type in BINARY_TYPES:
        return "binary"
    if rules < 2:
        return "text"
    if column.data_type == "enum":
        return "enum"
    if column.data_type == "set" and rules >= 3:
        return "set"
    if column.charset is None or column.charset == "utf8mb4" or column.charset in EXACT_CHARSETS:
        return "text"
    return "hex"


def introducer(charset: str) -> str:
    """``_charset``, the introducer of a string literal in ``charset``."""
    if not _CHARSET_NAME.fullmatch(charset):
        raise ValueError(f"not a character set name: {charset!r}")
    return "_" + charset


def _number(column: Column) -> str:
    """A numeric column as the number whose text reloads exactly: FLOAT widened to DOUBLE,
    YEAR as its number (0 for 0000: a numeric 0 reloads as 0000, the string '0' would not)."""
    c = ident(column.name)
    if column.data_type == "float":
        return f"CAST({c} AS DOUBLE)"
    if column.data_type == "year":
        return f"({c}+0)"
    return c


def _text(column: Column, binary: bool, legacy: bool) -> tuple[str, bool]:
    """The text expression of a character column, and whether it needs a NULL test (one
    that gives the bare word NULL for NULL does not)."""
    c = ident(column.name)
    if column.charset == "utf8mb4" and not legacy:
        # QUOTE of the value's bytes, the same bytes as QUOTE of its utf8mb4 text (the four
        # escaped bytes are ASCII, never part of a multi-byte character): QUOTE walks a
        # binary string byte by byte, but decodes and re-encodes each character of text,
        # which cost the server ~0.15 s of CPU per million rows of the benchmark's tables.
        # QUOTE(NULL) is the bare word NULL, as wanted.
        return f"QUOTE(CAST({c} AS BINARY))", False
    if column.charset in (None, "utf8mb4"):  # utf8mb4 here: only by the legacy rules
        # As binary, CONCAT never mixes collations (utf8mb4_bin JSON next to _unicode_ci).
        return (f"CAST(QUOTE({c}) AS BINARY)" if binary else f"QUOTE({c})"), False
    if not legacy and column.charset in EXACT_CHARSETS:
        # Converted first, then QUOTEd as bytes (as above); NULL converts to NULL.
        return f"QUOTE(CAST(CONVERT({c} USING utf8mb4) AS BINARY))", False
    if legacy:
        # NULL is tested first: QUOTE(NULL) is ASCII 'NULL' even for a ucs2 column, which
        # CONVERT would then read as two UCS-2 characters.
        return f"CAST(CONVERT(QUOTE({c}) USING utf8mb4) AS BINARY)", True
    return f"CONCAT('{introducer(column.charset)} X''',HEX({c}),'''')", True


def value_sql(column: Column, *, binary: bool = True, rules: int = ROW_TEXT_VERSION) -> str:
    """The server-side expression giving ``column``'s value as SQL literal text (bytes).

    ``binary=False`` leaves the text of a value without a charset (dates, INET6...) and, by
    the legacy rules, utf8mb4 text uncast, which costs the server less; only for tables
    whose text columns share one utf8mb4 collation (see :func:`uniform_text`), or CONCAT
    would mix collations. utf8mb4 text is otherwise always QUOTEd as bytes. A NOT NULL
    column goes without the NULL test (were one NULL all the same, the row's CONCAT would be
    NULL, and a NULL row stops the dump: :meth:`RowQuery.texts`). ``rules``: the row text
    rules of that version (of the backup whose rows are re-read)."""
    c = ident(column.name)
    kind = kind_of(column, rules=rules)
    legacy = rules < 2
    if kind in ("number", "set"):
        number = _number(column) if kind == "number" else f"({c}+0)"
        return f"IFNULL({number},'NULL')" if column.nullable else number
    if kind in ("bit", "binary"):
        if kind == "bit":
            literal = f"CONCAT('b''',BIN({c}+0),'''')"
        else:
            literal = f"CONCAT('X''',HEX({c}),'''')"
        return f"IF({c} IS NULL,'NULL',{literal})" if column.nullable else literal
    text, test_null = _text(column, binary, legacy)
    if kind == "enum":
        text = f"IF({c}+0=0,'0',{text})"  # NULL+0=0 is NULL: NULL goes on to the text
    if test_null and (column.nullable or legacy):
        return f"IF({c} IS NULL,'NULL',{text})"
    return text


def uniform_text(columns: Sequence[Column]) -> bool:
    """Whether every character column is utf8mb4 in one collation (so a row's CONCAT can
    leave them uncast, see :func:`value_sql`)."""
    charsets = {c.charset for c in columns if c.charset is not None}
    collations = {c.collation for c in columns if c.charset is not None}
    return charsets <= {"utf8mb4"} and len(collations) <= 1 and None not in collations


def raw_sql(column: Column, *, rules: int = ROW_TEXT_VERSION) -> str:
    """The raw value fetched for client-side rendering, shaped like the server path's (a
    bare BIT inside IF() would turn into a number, so it comes as binary digits; hex text
    as its stored bytes, unconverted; an ENUM as its literal, which is short)."""
    kind = kind_of(column, rules=rules)
    if kind == "number":
        return _number(column)
    if kind == "set":
        return f"({ident(column.name)}+0)"
    if kind == "bit":
        return f"BIN({ident(column.name)}+0)"
    if kind == "hex":
        return f"CAST({ident(column.name)} AS BINARY)"
    if kind == "enum":
        return value_sql(column, rules=rules)
    return ident(column.name)


def literal_of(kind: str, raw: bytes | None, charset: str | None = None) -> bytes:
    """``raw`` (as :func:`raw_sql` has the text protocol send it) rendered exactly as
    :func:`value_sql` would; ``charset`` is the column's (used by ``hex``)."""
    if raw is None:
        return b"NULL"
    if kind in ("number", "enum", "set"):
        return raw
    if kind == "bit":
        return b"b'" + raw + b"'"  # raw_sql sends the binary digits
    if kind == "binary":
        return b"X'" + raw.hex().upper().encode() + b"'"
    if kind == "hex":
        if charset is None:
            raise ValueError("hex text needs its column's charset")
        return introducer(charset).encode() + b" X'" + raw.hex().upper().encode() + b"'"
    escaped = (
        raw.replace(b"\\", b"\\\\")
        .replace(b"'", b"\\'")
        .replace(b"\0", b"\\0")
        .replace(b"\x1a", b"\\Z")
    )
    return b"'" + escaped + b"'"


@dataclass(frozen=True)
class RowQuery:
    """The SELECT of a table's rows as literal text, and how to read its result rows.

    Result columns: ``text`` alone, or for tables with large-object columns ``text, big,
    raw...`` where ``big`` is 1 (and ``text`` NULL, the raw values set) when the row's large
    values exceed ``raw_threshold`` bytes. ``rules``: the row text rules of that version
    (of a backup whose digests are recomputed).
    """

    table: Table
    raw_threshold: int
    rules: int = ROW_TEXT_VERSION

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.table.dumped_columns

    @property
    def has_lobs(self) -> bool:
        return any(c.data_type in LOB_TYPES for c in self.columns)

    def insert_prefix(self) -> bytes:
        names = ",".join(ident(c.name) for c in self.columns)
        return f"INSERT INTO {ident(self.table.name)} ({names}) VALUES\n".encode()

    @property
    def has_fast_path(self) -> bool:
        """Whether :meth:`fast_select` applies (large-object columns and a unique key)."""
        return self.has_lobs and bool(self.table.order_key)

    def select(self, where: str = "", skip: int = 0) -> str:
        """Rows as ``text`` (or ``text, big, raw...`` with large objects), in key order;
        ``skip`` leaves out that many leading rows (only with an order key)."""
        row = "CONCAT('('," + ",',',".join(self._values()) + ",')')"
        outputs = [row]
        if self.has_lobs:
            lengths = "+".join(
                f"IFNULL(LENGTH({ident(c.name)}),0)"
                for c in self.columns
                if c.data_type in LOB_TYPES
            )
            big = f"({lengths}) > {int(self.raw_threshold)}"
            outputs = [f"IF({big},NULL,{row})", f"IF({big},1,0)"]
            outputs += [f"IF({big},{raw_sql(c, rules=self.rules)},NULL)" for c in self.columns]
        return self._query(outputs, where, skip)

    def fast_select(self, where: str = "") -> str:
        """Rows as ``text`` alone, NULL for a row with any large value over its share of
        ``raw_threshold`` (that row and the rest then come from :meth:`select`)."""
        lobs = [c for c in self.columns if c.data_type in LOB_TYPES]
        share = int(self.raw_threshold) // max(1, len(lobs))
        values = [
            f"IF(LENGTH({ident(c.name)}) > {share},NULL,{value})"
            if c.data_type in LOB_TYPES
            else value
            for c, value in zip(self.columns, self._values(), strict=True)
        ]
        return self._query(["CONCAT('('," + ",',',".join(values) + ",')')"], where, 0)

    def _values(self) -> list[str]:
        binary = not uniform_text(self.columns)
        return [value_sql(c, binary=binary, rules=self.rules) for c in self.columns]

    def _query(self, outputs: list[str], where: str, skip: int) -> str:
        order = ""
        if self.table.order_key:
            order = " ORDER BY " + ",".join(ident(k) for k in self.table.order_key)
        elif skip:
            raise ValueError("rows can only be skipped in key order")
        source = qualified(self.table.database, self.table.name)
        clause = f" WHERE {where}" if where else ""
        limit = f" LIMIT {int(skip)},18446744073709551615" if skip else ""
        return f"SELECT {', '.join(outputs)} FROM {source}{clause}{order}{limit}"

    def texts(self, rows: tuple[tuple[bytes | None, ...], ...]) -> list[bytes]:
        """The literal text of each fetched row."""
        if not self.has_lobs:
            texts = list(map(_first, rows))
            if not all(texts):  # a text is never empty: only a NULL is false
                raise self._unrendered()
            return texts
        out: list[bytes] = []
        kinds = [(kind_of(c, rules=self.rules), c.charset) for c in self.columns]
        for row in rows:
            text = row[0]
            if text is not None:
                out.append(text)
            elif row[1] == b"1":
                values = (literal_of(k, v, cs) for (k, cs), v in zip(kinds, row[2:], strict=True))
                out.append(b"(" + b",".join(values) + b")")
            else:
                raise self._unrendered()
        return out

    def _unrendered(self) -> OperationFailed:
        return OperationFailed(
            f"{self.table.database}.{self.table.name}: the server could not render a row "
            "(larger than max_allowed_packet?); stopping rather than writing a wrong row"
        )


def range_filters(table: Table, split_points: Sequence[int]) -> list[str]:
    """The WHERE clauses of the key ranges that ``split_points`` cut ``table`` into, in key
    order (one empty clause when it is not split)."""
    column = table.split_column
    if not split_points or column is None:
        return [""]
    col = ident(column.name)
    edges: list[int | None] = [None, *split_points, None]
    filters = []
    for lo, hi in itertools.pairwise(edges):
        parts = ([f"{col} >= {lo}"] if lo is not None else []) + (
            [f"{col} < {hi}"] if hi is not None else []
        )
        filters.append(" AND ".join(parts))
    return filters


def read_texts(conn: RawConnection, query: RowQuery, where: str = "") -> Iterator[list[bytes]]:
    """The rows of ``query`` (restricted by ``where``) as literal texts, in batches sized
    toward one INSERT statement (one row at a time until sizes are known for tables with
    large values, so memory stays near a statement whatever the rows hold)."""
    size = [1 if query.has_lobs else 256]

    def sized(texts: list[bytes]) -> list[bytes]:
        average = max(1, sum(map(len, texts)) // len(texts))
        size[0] = max(1, min(10_000, STATEMENT_BYTES // average))
        return texts

    done = 0
    if query.has_fast_path:
        stream = conn.stream(query.fast_select(where), lambda: size[0])
        for rows in stream:
            texts = list(map(_first, rows))
            if all(texts):  # a text is never empty: only a NULL is false
                done += len(texts)
                yield sized(texts)
                continue
            ready = texts[: texts.index(None)]
            done += len(ready)
            if ready:
                yield ready
            size[0] = 10_000
            for _ in stream:  # the connection must read the rest before its next query
                pass
            break
        else:
            return
        size[0] = 1
    for rows in conn.stream(query.select(where, done), lambda: size[0]):
        yield sized(query.texts(rows))
