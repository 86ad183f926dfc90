"""A view's, trigger's, routine's or event's statement in the bytes its creator sent.

The server keeps a definition's text in the creator's ``character_set_client``
(``CHARACTER_SET_CLIENT`` in ``information_schema``). Read over a utf8mb4 connection,
``SHOW CREATE`` converts it: characters survive, but the bytes of ``_binary'...'`` and
other introduced literals change, and so would the program's behaviour. Like
``mariadb-dump``, :func:`read_creator_row` reads it with ``character_set_results = binary``
and the backup recreates it with ``SET character_set_client`` set to that charset
(:func:`datatier.mysql.sqltext.creation_session`).

The text is returned decoded as UTF-8 with ``surrogateescape``: every consumer encodes it back
the same way, so the bytes reach the object, and the restored server, unchanged.

Verified on MariaDB 10.11: with binary results the whole statement of a routine, trigger or
view (names included) is in the creator's charset, while an event's own name is in UTF-8 (the
rest of its statement in the creator's charset); :func:`faithful_text` re-encodes that name.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from datatier.errors import OperationFailed
from datatier.mysql.connection import Connection, query_dicts
from datatier.mysql.sqltext import ident, qualified

UTF8_FAMILY = frozenset({"utf8", "utf8mb3", "utf8mb4"})
ASCII_UNSAFE = frozenset({"big5", "cp932", "gbk", "sjis", "gb18030"})
"""Charsets whose multi-byte characters can end in an ASCII byte (a quote, a backtick): a
view's own-database qualifiers cannot be removed from its text without their own lexer."""
CODECS = {
    "latin1": "cp1252",
    "utf8mb3": "utf-8",
    "utf8mb4": "utf-8",
    "koi8r": "koi8_r",
    "koi8u": "koi8_u",
}
CHARSET_NAME = re.compile(r"[a-z0-9_]{1,64}")
CLIENT_CHARSET = re.compile(rb"/\*!50003 SET character_set_client = (\w+) \*/")
"""How an object sets a definition's charset (:func:`datatier.mysql.sqltext.creation_session`)."""


def python_codec(charset: str) -> str | None:
    """The Python codec of MySQL ``charset`` (None when Python has none)."""
    try:
        return codecs.lookup(CODECS.get(charset, charset)).name
    except LookupError:
        return None


def as_text(data: bytes) -> str:
    """``data`` as a str that :func:`as_bytes` turns back into exactly ``data``."""
    return data.decode("utf-8", "surrogateescape")


def as_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def in_charset(name: str, charset: str) -> str | None:
    """``name`` as its bytes in ``charset`` appear in :func:`as_text` of a statement (None
    when ``charset`` cannot hold it)."""
    if name.isascii():
        return name
    codec = python_codec(charset)
    if codec is None:
        return None
    try:
        return as_text(name.encode(codec))
    except UnicodeEncodeError:
        return None


def read_creator_row(conn: Connection, what: str, db: str, name: str) -> dict[str, Any] | None:
    """The row of ``SHOW CREATE what db.name``, its text columns as the stored bytes (None
    when there is none). ``conn`` gets ``character_set_results`` utf8mb4 back afterwards."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION character_set_results = binary")
        try:
            rows = query_dicts(conn, f"SHOW CREATE {what} {qualified(db, name)}")
        finally:
            cur.execute("SET SESSION character_set_results = utf8mb4")
    return rows[0] if rows else None


def faithful_text(kind: str, database: str, name: str, charset: str, raw: bytes) -> str | None:
    """The statement ``raw``, created under ``charset``, as text to write (see module doc);
    None when a session of ``charset`` could not recreate it as it is: a charset name that is
    not one, a name that ``charset`` cannot hold or that ``raw`` does not hold as expected, a
    view whose own-database qualifiers cannot be found in ``charset``."""
    if not CHARSET_NAME.fullmatch(charset) or charset == "binary":
        return None
    if charset in UTF8_FAMILY:
        return as_text(raw)
    if kind == "view" and charset in ASCII_UNSAFE:
        return None
    encoded = in_charset(name, charset)
    if encoded is None:
        return None
    text = as_text(raw)
    if kind == "event" and not name.isascii():
        header = " EVENT " + as_text(ident(name).encode())
        if header not in text:
            return None
        text = text.replace(header, " EVENT " + ident(encoded), 1)
    elif encoded not in text:  # a trigger's statement is as written: its name may be bare
        return None
    if kind == "view" and in_charset(database, charset) is None:
        return None
    return text


def decoded(value: Any) -> str:
    """A text column of a binary-results row (an ASCII name: a charset, a collation)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def show_create(conn: Connection, what: str, db: str, name: str, column: str) -> str:
    """``column`` of ``SHOW CREATE what db.name`` as the server converts it to utf8mb4;
    a definition the account may not read fails loudly (a backup without it would
    silently restore less than the source had)."""
    rows = query_dicts(conn, f"SHOW CREATE {what} {qualified(db, name)}")
    text = rows[0].get(column) if rows else None
    if not text:
        raise OperationFailed(
            f"cannot read the definition of {what.lower()} {db}.{name}: the backup account "
            "lacks the privilege (SHOW VIEW, TRIGGER, EVENT, or SELECT on mysql.proc)",
        )
    return str(text)


def creator_statement(
    conn: Connection,
    what: str,
    db: str,
    name: str,
    column: str,
    charset: str,
    row: dict[str, Any] | None = None,
) -> tuple[str, str, str | None]:
    """``column`` of ``SHOW CREATE what db.name`` (``row`` when already read) as its
    creator's bytes, and ``charset``, the session to recreate it in, and None. When a
    ``charset`` session cannot recreate it as it is (:func:`faithful_text`): the server's
    utf8mb4 conversion, utf8mb4 and ``charset`` (its characters survive, not the bytes of
    its introduced literals; the writer warns)."""
    if row is None:
        row = read_creator_row(conn, what, db, name)
    raw = row.get(column) if row else None
    if not raw:
        show_create(conn, what, db, name, column)  # raises, naming the privilege
        raise OperationFailed(f"cannot read the definition of {what.lower()} {db}.{name}")
    raw = raw if isinstance(raw, bytes) else str(raw).encode()
    text = faithful_text(what.lower(), db, name, charset, raw)
    if text is not None:
        return text, charset, None
    return show_create(conn, what, db, name, column), "utf8mb4", charset
