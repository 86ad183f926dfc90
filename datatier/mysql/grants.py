"""Accounts, roles and grants as SQL a restore can replay without harming existing accounts.

Contract. :func:`dump_grants` reads every account and role of the server (``mysql.user``)
with ``SHOW CREATE USER`` and ``SHOW GRANTS FOR`` (MariaDB and MySQL 8 alike) and returns
SQL text, one statement per line, every account and role created before any grant:

- ``CREATE USER IF NOT EXISTS ...`` (``CREATE ROLE IF NOT EXISTS`` for MariaDB roles), with
  the password hash: a new account gets it, an existing one is left as it is;
- every ``GRANT`` (and ``SET DEFAULT ROLE``) line, with any ``IDENTIFIED ...`` clause
  removed, so replaying never changes an existing account's password or plugin.

The server's own accounts (:data:`SYSTEM_USERS`: ``root``, ``mariadb.sys``, ``mysql.*``)
and ``GRANT PROXY`` lines (only an account holding that proxy may grant it) are left out.

Accounts the server cannot describe (e.g. a ``root@HOSTNAME`` entry while
``skip_name_resolve`` is on, which makes ``mariadb-dump --system=users`` abort, as seen on
the sandbox) are skipped and named in the returned list.
"""

from __future__ import annotations

import re

import pymysql

from datatier.mysql.connection import Connection, query_dicts
from datatier.mysql.flavor import detect

IDENTIFIED = re.compile(
    r"\s+IDENTIFIED\s+(?:BY\s+PASSWORD\s+'[^']*'|VIA\s+.*?|WITH\s+.*?)(?=\s+(?:REQUIRE|WITH|PASSWORD|ACCOUNT)\b|$)",
    re.IGNORECASE | re.DOTALL,
)
CANNOT_DESCRIBE = (1133, 1141, 1396)  # no such user / no such grant / operation failed
SYSTEM_USERS = frozenset(
    {"root", "mariadb.sys", "mysql.sys", "mysql.session", "mysql.infoschema", "debian-sys-maint"}
)
"""Accounts every server has of its own; theirs are never backed up or replayed."""


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _account(user: str, host: str) -> str:
    return f"{_quote(user)}@{_quote(host)}"


def _first_column(conn: Connection, sql: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return [str(row[0]) for row in cur.fetchall()]


def dump_grants(conn: Connection) -> tuple[str, list[str]]:
    """(SQL text, skipped accounts) for every account and role (see module docstring)."""
    version = str(query_dicts(conn, "SELECT @@version AS v")[0]["v"])
    flavor = detect(version)
    for statement in flavor.grants_session:
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        except pymysql.MySQLError:
            pass
    accounts = query_dicts(conn, flavor.accounts_query)
    creates: list[str] = []
    granted: list[str] = []
    skipped: list[str] = []
    for row in accounts:
        user, host, role = str(row["u"]), str(row["h"]), str(row["r"]).upper() == "Y"
        if user in SYSTEM_USERS or (not user and not role):
            continue
        who = _quote(user) if role else _account(user, host)
        try:
            if role:
                create = [f"CREATE ROLE IF NOT EXISTS {who}"]
            else:
                create = _first_column(conn, f"SHOW CREATE USER {who}")
            grants = _first_column(conn, f"SHOW GRANTS FOR {who}")
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in CANNOT_DESCRIBE:
                skipped.append(f"{user}@{host}")
                continue
            raise
        for statement in create:
            creates.append(re.sub(r"^CREATE USER ", "CREATE USER IF NOT EXISTS ", statement) + ";")
        for statement in grants:
            if not statement.upper().startswith("GRANT PROXY "):
                granted.append(IDENTIFIED.sub("", statement).strip() + ";")
    # Every account and role exists before any GRANT names it (roles are granted to users).
    header = f"-- accounts and grants of a {version} server, written by datatier"
    return "\n".join([header, *creates, *granted]) + "\n", skipped
