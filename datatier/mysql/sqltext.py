"""SQL text that the stock ``mariadb`` client loads exactly, whatever the names and bodies hold.

Everything a backup object contains is built here: identifiers, the session prelude every
object starts with, ``DELIMITER`` blocks for compound statements, and the removal of a view's
own-database qualifiers. Contracts:

* :func:`ident` quotes any identifier (backticks doubled; newlines, ``--``, quotes and
  non-ASCII are kept verbatim inside the backticks, where the client never looks).
* :func:`delimiter_for` picks a delimiter that occurs nowhere in the statement, so no body
  text can end a statement early (mariadb-dump always uses ``;;``).
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


def compound(statement: str, *, sql_mode: str, collation: str) -> str:
    """``statement`` (a CREATE TRIGGER/PROCEDURE/FUNCTION/EVENT/VIEW) wrapped with the
    session settings it was created under, in its own DELIMITER block. The text is sent in
    utf8mb4 (how the server gave it to us); ``collation`` sets the collation of its literals."""
    delimiter = delimiter_for(statement)
    return (
        f"/*!50003 SET collation_connection = {string_literal(collation)} */;\n"
        f"/*!50003 SET character_set_client = utf8mb4 */;\n"
        f"/*!50003 SET character_set_results = utf8mb4 */;\n"
        f"/*!50003 SET sql_mode = {string_literal(sql_mode)} */;\n"
        f"DELIMITER {delimiter}\n"
        f"{statement}{delimiter}\n"
        "DELIMITER ;\n"
        "/*!40101 SET NAMES utf8mb4 */;\n"
        "/*!40101 SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
    )


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
