"""Which privileges the configured account holds, and which each datatier job needs.

Contract. :func:`account_privileges` reads the current account's (and its active role's)
global and per-schema privileges from ``information_schema`` (MariaDB and MySQL 8 alike;
schema grants with ``%``/``_`` wildcards are matched as LIKE patterns); table- and
column-level grants are not counted. :data:`NEEDS` lists, per job, the privileges it
needs; each requirement is a tuple of names any one of which suffices (MariaDB renamed some:
``SLAVE MONITOR`` is MySQL's ``REPLICATION CLIENT``; ``SUPER`` covers the admin ones).
:data:`OPTIONAL` names the requirements a job runs without, doing less.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from datatier.mysql.connection import Connection, query_dicts

Requirement = tuple[str, ...]

NEEDS: dict[str, tuple[tuple[Requirement, str], ...]] = {
    # mariadb-dump --single-transaction --master-data=2 --gtid --routines --triggers --events;
    # without TRIGGER or SHOW VIEW the dump leaves triggers or views out *silently*.
    "dump": (
        (("SELECT",), "read tables, routines and the users table"),
        (("SHOW VIEW",), "dump views (missing: views silently left out)"),
        (("TRIGGER",), "dump triggers (missing: triggers silently left out)"),
        (("EVENT",), "dump events"),
    ),
    # the stock client loading a backup into the target (the primary by default)
    "restore": (
        (("CREATE",), "create databases and tables"),
        (("DROP",), "replace tables (DROP TABLE IF EXISTS)"),
        (("INSERT",), "load rows"),
        (("ALTER",), "alter tables"),
        (("INDEX",), "create indexes"),
        (("CREATE VIEW",), "create views"),
        (("CREATE ROUTINE",), "create routines"),
        (("ALTER ROUTINE",), "replace routines"),
        (("TRIGGER",), "create triggers"),
        (("EVENT",), "create events"),
        (("SET USER", "SUPER"), "keep other accounts as DEFINER"),
        (("BINLOG ADMIN", "SUPER"), "restore --no-binlog (SET sql_log_bin = 0)"),
    ),
    # the monitor (health serve, replication status) on every node
    "replication": (
        (
            ("SLAVE MONITOR", "REPLICA MONITOR", "REPLICATION CLIENT", "SUPER"),
            "read SHOW REPLICA STATUS",
        ),
    ),
    # the binlog archiver on its source (binlog.node, else the primary)
    "binlog": (
        (("REPLICATION SLAVE", "SUPER"), "read the binlog stream"),
        (
            ("BINLOG MONITOR", "REPLICATION CLIENT", "SUPER"),
            "list the binlogs (SHOW BINARY LOGS, SHOW MASTER STATUS)",
        ),
        (
            ("PROCESS",),
            "see running statements, to vouch for idle time (missing: restore --until a "
            "moment after the last write is refused)",
        ),
    ),
    # the heartbeat writer on the primary (database `datatier`)
    "heartbeat": (
        (("CREATE",), "create the datatier.heartbeat table"),
        (("INSERT",), "write heartbeats"),
        (("UPDATE",), "write heartbeats"),
    ),
}

OPTIONAL: frozenset[tuple[str, Requirement]] = frozenset({("binlog", ("PROCESS",))})
"""(job, requirement) pairs the job runs without: the archiver without PROCESS archives
everything, but vouches for no idle time."""


@dataclass(frozen=True)
class AccountPrivileges:
    """The account's global privileges and its schema privileges (LIKE pattern -> names)."""

    account: str
    global_privileges: frozenset[str]
    schema_privileges: dict[str, frozenset[str]] = field(default_factory=dict)

    def holds(self, names: Iterable[str], databases: Iterable[str] = ()) -> bool:
        """Whether any of ``names`` is held globally, or on every one of ``databases``."""
        wanted = set(names)
        if wanted & self.global_privileges:
            return True
        dbs = list(databases)
        return bool(dbs) and all(wanted & self.on_schema(db) for db in dbs)

    def on_schema(self, database: str) -> frozenset[str]:
        found: set[str] = set()
        for pattern, names in self.schema_privileges.items():
            if _like(pattern).fullmatch(database):
                found |= names
        return frozenset(found)

    def missing(self, job: str, databases: Iterable[str] = ()) -> list[tuple[Requirement, str]]:
        """The requirements of ``job`` the account does not meet (on ``databases``)."""
        dbs = list(databases)
        return [(names, why) for names, why in NEEDS[job] if not self.holds(names, dbs)]


def _like(pattern: str) -> re.Pattern[str]:
    """A LIKE pattern (``%``, ``_``, backslash escapes) as a regular expression."""
    out, escaped = [], False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _grantee(name: str, host: str | None) -> str:
    return f"'{name}'@'{host}'" if host is not None else f"'{name}'"


def account_privileges(conn: Connection) -> AccountPrivileges:
    """The privileges of the connection's account (see module docstring)."""
    row = query_dicts(conn, "SELECT CURRENT_USER() AS account")[0]
    account = str(row["account"])
    user, _, host = account.rpartition("@")
    grantees = [_grantee(user, host)]
    try:
        role = query_dicts(conn, "SELECT CURRENT_ROLE() AS role")[0]["role"]
    except Exception:
        role = None
    if role and str(role).upper() != "NONE":
        for name in str(role).replace("`", "").split(","):
            role_user, _, role_host = name.strip().partition("@")
            grantees += [_grantee(role_user, role_host or ""), _grantee(role_user, None)]
    # GRANTEE compares collation-blind (`'DT'@'%'` = `'dt'@'%'`, two accounts): the rows
    # are kept by the exact grantee, as the server stored it and CURRENT_USER() gives it.
    marks = ",".join(["%s"] * len(grantees))
    found = [
        r
        for r in query_dicts(
            conn,
            f"SELECT GRANTEE AS g, PRIVILEGE_TYPE AS p FROM information_schema.USER_PRIVILEGES "
            f"WHERE GRANTEE IN ({marks})",
            grantees,
        )
        if r["g"] in grantees
    ]
    schemas: dict[str, set[str]] = {}
    for item in query_dicts(
        conn,
        "SELECT GRANTEE AS g, TABLE_SCHEMA AS db, PRIVILEGE_TYPE AS p "
        f"FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE IN ({marks})",
        grantees,
    ):
        if item["g"] in grantees:
            schemas.setdefault(str(item["db"]), set()).add(str(item["p"]).upper())
    return AccountPrivileges(
        account=account,
        global_privileges=frozenset(str(r["p"]).upper() for r in found),
        schema_privileges={db: frozenset(names) for db, names in schemas.items()},
    )
