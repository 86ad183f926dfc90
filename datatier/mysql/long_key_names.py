"""Foreign-key names SHOW CREATE TABLE writes that CREATE TABLE refuses, made restorable.

A key declared without a name is ``<table>_ibfk_<n>``, and RENAME TABLE renames such keys
with their table, with no length check: renamed to a 58+ character name, the key's name is
over 64 characters. SHOW CREATE TABLE writes it whole, but CREATE TABLE refuses any
identifier over 64 characters (characters, not bytes: 64 ``é`` pass), error 1059 "Identifier
name ... is too long"; left unnamed, the server's own name for it is refused just the same
(an unnamed key on a table of 57+ characters cannot be created). All checked on MariaDB
10.11. So such a key is written with :func:`short_key_name` instead: its first 55
characters, ``_`` and 8 hex digits of its full name's SHA-256, 64 characters in all, unique
as the full names are. Only the name changes (``ALTER TABLE ... DROP FOREIGN KEY`` must use
the new one); information_schema shows either cut to 64 characters.
"""

from __future__ import annotations

import hashlib

from datatier.mysql.binlog.sqlrefs import IDENTS, scan
from datatier.mysql.sqltext import ident

MAX_NAME = 64
"""The longest identifier CREATE TABLE accepts, in characters."""


def short_key_name(name: str) -> str:
    """The name a key named ``name`` (over :data:`MAX_NAME` characters) is written with."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def restorable_create(create: str) -> tuple[str, list[tuple[str, str]]]:
    """``create`` (a CREATE TABLE as SHOW CREATE TABLE writes it) with each foreign key
    named over :data:`MAX_NAME` characters (``CONSTRAINT `name` FOREIGN KEY``) renamed by
    :func:`short_key_name`, and the (old, new) names changed, in order; ``create`` itself
    when there are none."""
    if len(create) <= MAX_NAME or "FOREIGN" not in create.upper():
        return create, []
    tokens = scan(create).tokens
    spots: list[tuple[int, int, str, str]] = []
    for k in range(2, len(tokens) - 1):
        kind, start, end, value = tokens[k - 1]
        if not (_word(tokens, k) == "FOREIGN" and _word(tokens, k + 1) == "KEY"):
            continue
        if kind in IDENTS and _word(tokens, k - 2) == "CONSTRAINT" and len(value) > MAX_NAME:
            spots.append((start, end, value, short_key_name(value)))
    if not spots:
        return create, []
    out, at = [], 0
    for start, end, _, new in spots:
        out += [create[at:start], ident(new)]
        at = end
    out.append(create[at:])
    return "".join(out), [(old, new) for _, _, old, new in spots]


def _word(tokens: list[tuple[str, int, int, str]], i: int) -> str | None:
    return tokens[i][3].upper() if tokens[i][0] == "ident" else None
