"""SQL text that the stock ``mariadb`` client loads exactly, whatever the names and bodies hold.

Everything a backup object contains is built here: identifiers, the session prelude every
object starts with, ``DELIMITER`` blocks for definitions, and the removal of a view's
own-database qualifiers. Contracts:

* :func:`ident` quotes any identifier (backticks doubled; newlines, ``--``, quotes and
  non-ASCII are kept verbatim inside the backticks, where the client never looks).
* :func:`block` joins statements with a delimiter that occurs nowhere in them, so no body
  text can end a statement early (mariadb-dump always uses ``;;``), and datatier's loader
  (:func:`parse_block`) executes each exactly as the server gave it: the stock client
  rewrites some bodies (it joins a body line starting with ``delimiter`` to the next one).
* :func:`strip_qualifier` removes `` `db`. `` only where it is an identifier qualifier, never
  inside a string literal or another identifier.
"""

from __future__ import annotations

import hashlib
import secrets

# The session every object sets for itself (it holds no USE: the loader picks the database).
# sql_mode keeps zero dates and explicit zeros in AUTO_INCREMENT columns; checks are off so
# objects load in any order; /*M!...*/ lines are MariaDB-only and ignored by MySQL.
PRELUDE = (
    b"/*!40101 SET NAMES utf8mb4 */;\n"
    b"/*!40103 SET TIME_ZONE='+00:00' */;\n"
    b"/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
    b"/*!40014 SET UNIQUE_CHECKS=0 */;\n"
    b"/*!40014 SET FOREIGN_KEY_CHECKS=0 */;\n"
    b"/*M!100201 SET CHECK_CONSTRAINT_CHECKS=0 */;\n"
    b"/*!40111 SET SQL_NOTES=0 */;\n"
)

DELIMITERS = (";;", "$$", "//", "@@", ";;;;")


def ident(name: str) -> str:
    """``name`` as a backtick-quoted identifier."""
    return "`" + name.replace("`", "``") + "`"


def qualified(database: str, name: str) -> str:
    return f"{ident(database)}.{ident(name)}"


def string_literal(value: str) -> str:
    """``value`` as a single-quoted SQL string (for SET statements of session variables)."""
    escaped = (
        value.replace("\\", "\\\\").replace("'", "\\'").replace("\0", "\\0").replace("\x1a", "\\Z")
    )
    return f"'{escaped}'"


def delimiter_for(statement: str) -> str:
    """A ``DELIMITER`` that does not occur anywhere in ``statement``."""
    for candidate in DELIMITERS:
        if candidate not in statement:
            return candidate
    while True:  # pathological bodies: a random token cannot be guessed in advance
        candidate = f"$dt{secrets.token_hex(8)}$"
        if candidate not in statement:
            return candidate


def creation_session(
    sql_mode: str, collation: str, time_zone: str | None = None, charset: str = "utf8mb4"
) -> list[str]:
    """The statements that recreate the session a routine, trigger, event or view was
    created in. Its text is sent in ``charset`` (its creator's character_set_client, a plain
    charset name); ``collation`` sets the character set and collation of its literals."""
    statements = [
        f"/*!50003 SET collation_connection = {string_literal(collation)} */",
        f"/*!50003 SET character_set_client = {charset} */",
        "/*!50003 SET character_set_results = utf8mb4 */",
        sql_mode_statement(sql_mode),
    ]
    if time_zone is not None:
        statements.append(f"/*!50106 SET time_zone = {string_literal(time_zone)} */")
    return statements


def sql_mode_statement(sql_mode: str) -> str:
    """The statement of :func:`creation_session` that sets ``sql_mode``."""
    return f"/*!50003 SET sql_mode = {string_literal(sql_mode)} */"


UTF8_CLIENT = "/*!50003 SET character_set_client = utf8mb4 */"
"""Sent after a definition created in another charset: what follows is UTF-8 again."""


def block(statements: list[str]) -> str:
    """``statements`` as one ``DELIMITER`` block whose delimiter occurs in none of them, so
    the stock client and :func:`parse_block` split it exactly where it was joined."""
    delimiter = delimiter_for("\n".join(statements))
    body = "".join(f"{statement}{delimiter}\n" for statement in statements)
    return f"DELIMITER {delimiter}\n{body}DELIMITER ;\n"


def parse_block(text: bytes) -> list[bytes] | None:
    """The statements of an object written as PRELUDE + :func:`block`; None for any other
    layout (objects of older backups), which the stock client then loads."""
    if not text.startswith(PRELUDE + b"DELIMITER ") or not text.endswith(b"DELIMITER ;\n"):
        return None
    head_end = text.index(b"\n", len(PRELUDE))
    delimiter = text[len(PRELUDE) + len(b"DELIMITER ") : head_end] + b"\n"
    body = text[head_end + 1 : -len(b"DELIMITER ;\n")]
    if not body.endswith(delimiter):
        return [] if not body else None
    return body[: -len(delimiter)].split(delimiter)


RESTORE_SQL_MODE = b"NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION,ALLOW_INVALID_DATES"
"""The sql_mode datatier's restore loads objects in, for the PRELUDE's (which a stock client
loading an object by hand keeps): a table of an engine the target lacks fails its CREATE
("Unknown storage engine") instead of becoming InnoDB silently, and a DATE the source
stored under ALLOW_INVALID_DATES (2020-02-31) loads as it is instead of as a zero date."""

_PRELUDE_SQL_MODE = b"/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */"


def prelude_statements() -> list[bytes]:
    """The session datatier's restore sets before an object's statements: the PRELUDE's
    statements (it holds no names, so lines are statements), one for one, its sql_mode
    :data:`RESTORE_SQL_MODE`."""
    restore_mode = b"/*!40101 SET SQL_MODE='" + RESTORE_SQL_MODE + b"' */"
    return [
        restore_mode if line[:-1] == _PRELUDE_SQL_MODE else line[:-1]
        for line in PRELUDE.splitlines()
        if line.endswith(b";")
    ]


def strip_qualifier(statement: str, database: str) -> str:
    """``statement`` with every `` `database`. `` qualifier removed, outside of string
    literals and other identifiers (server-generated view text quotes every name)."""
    target = ident(database) + "."
    out: list[str] = []
    i, n = 0, len(statement)
    while i < n:
        ch = statement[i]
        if ch in "'\"":
            end = _string_end(statement, i)
            out.append(statement[i:end])
            i = end
        elif ch == "`":
            if statement.startswith(target, i):
                i += len(target)
                continue
            end = _ident_end(statement, i)
            out.append(statement[i:end])
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _string_end(text: str, start: int) -> int:
    """Index after the string literal opened at ``start`` (backslash and doubled quotes)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(text)


def _ident_end(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "`":
            if i + 1 < len(text) and text[i + 1] == "`":
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return len(text)


MAX_SEGMENT = 160
"""Longest encoded key segment kept verbatim (S3 keys end at 1,024 bytes; file names at 255)."""


def key_segment(name: str) -> str:
    """An object-key segment for a database or table name: percent-encoded, injective.

    Every byte outside ``[A-Za-z0-9_.-]`` is encoded (``~`` too), so ``~`` only appears in
    shortened segments: a name whose encoding exceeds :data:`MAX_SEGMENT` bytes becomes a
    readable head plus ``~`` and a SHA-256 of the full name. ``.`` and ``..`` are encoded.
    """
    from urllib.parse import quote

    encoded = quote(name, safe="").replace("~", "%7E")
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    if len(encoded) <= MAX_SEGMENT:
        return encoded
    head = encoded[:96]
    cut = head.rfind("%")
    if cut > 90:  # never split a %XX escape
        head = head[:cut]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{head}~{digest}"
