"""A package's ``DROP`` runs in the sql_mode its ``CREATE`` runs in.

MariaDB parses ``DROP PACKAGE [BODY]`` only where it parses ``CREATE PACKAGE``: in
``sql_mode = ORACLE`` (10.3 to 11.3). A routines object (:mod:`datatier.mysql.dumpdefs`)
holds each definition as its ``DROP ... IF EXISTS``, the session it was created in
(:func:`~datatier.mysql.sqltext.creation_session`, its sql_mode included) and its
``CREATE``. Backups set a package's sql_mode before its DROP too (:func:`drop_statements`);
older ones sent the DROP first, in whatever mode the session had, and failed after the
tables had loaded. On restore, :func:`drops_in_their_mode` sends before such a DROP the
sql_mode statement of the creation session that follows it (nothing else changes: that
session sets the mode again right after). Either way a server that takes the CREATE takes
the DROP. :data:`DROP_MODE` is the mode a package of the target is dropped in when no
creation session says (:mod:`datatier.mysql.window_objects`).
"""

from __future__ import annotations

import re

from datatier.mysql.sqltext import ident, sql_mode_statement

PACKAGE_KINDS = ("package", "package body")
"""The definition kinds (as :class:`~datatier.mysql.catalogue.Definition` spells them)
whose DROP needs their mode."""

DROP_MODE = "ORACLE"
"""A sql_mode in which every MariaDB that has packages parses ``DROP PACKAGE``."""

_PACKAGE_DROP = re.compile(rb"DROP PACKAGE (?:BODY )?IF EXISTS `")
_SESSION = re.compile(rb"/\*!5\d{4} SET ")  # a statement of a creation session
_SQL_MODE = re.compile(rb"/\*!50003 SET sql_mode = '")


def drop_statements(kind: str, name: str, sql_mode: str) -> list[str]:
    """``DROP <kind> IF EXISTS `name```, a package's after the statement setting its
    ``sql_mode`` (every other kind's alone, as it always was)."""
    drop = f"DROP {kind.upper()} IF EXISTS {ident(name)}"
    return [sql_mode_statement(sql_mode), drop] if kind in PACKAGE_KINDS else [drop]


def drops_in_their_mode(statements: list[bytes]) -> list[bytes]:
    """A routines object's ``statements`` with each package DROP that is not already
    preceded by a sql_mode statement preceded by its definition's: the first one of the
    creation session after it. A DROP no creation session follows is left as it is."""
    out: list[bytes] = []
    for i, statement in enumerate(statements):
        if _PACKAGE_DROP.match(statement) and not (out and _SQL_MODE.match(out[-1])):
            mode = _session_mode(statements, i + 1)
            if mode is not None:
                out.append(mode)
        out.append(statement)
    return out


def _session_mode(statements: list[bytes], start: int) -> bytes | None:
    """The sql_mode statement of the creation session at ``start``; None if none is there."""
    for statement in statements[start:]:
        if _SQL_MODE.match(statement):
            return statement
        if not _SESSION.match(statement):
            return None
    return None
