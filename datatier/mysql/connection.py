"""Connections to the configured MySQL/MariaDB nodes, and client option files for the CLIs.

Passwords never reach a command line or a process title: the stock clients
(mariadb-dump, mariadb) get them through a 0600 option file that lives only as long as the
call (:func:`client_options_file`). Connection failures raise
:class:`~datatier.errors.ServiceUnavailable` naming the node, never the password.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from datatier.config import MySQLSettings
from datatier.errors import ConfigError, ServiceUnavailable

Connection = pymysql.connections.Connection


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect (password kept out of repr)."""

    name: str
    host: str
    port: int
    user: str
    password: str = ""
    connect_timeout: float = 5.0

    def __repr__(self) -> str:
        return f"Endpoint({self.name}={self.user}@{self.host}:{self.port})"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"

    def scrub(self, text: str) -> str:
        """``text`` with this endpoint's password replaced by ``***`` (for error messages)."""
        return text.replace(self.password, "***") if self.password else text

    def unreachable(self, exc: BaseException) -> ServiceUnavailable:
        """The error for a failed connection attempt (any driver), password scrubbed."""
        reason = str(exc.args[1] if len(exc.args) > 1 else exc)
        return ServiceUnavailable(f"cannot connect to MySQL {self.label}: {self.scrub(reason)}")


def endpoint(settings: MySQLSettings, node: str) -> Endpoint:
    """The endpoint of a configured node; ConfigError naming the known nodes if unknown."""
    spec = settings.nodes.get(node)
    if spec is None:
        known = ", ".join(sorted(settings.nodes)) or "none configured"
        raise ConfigError("config", f"mysql.nodes.{node}", f"unknown node (known: {known})")
    return Endpoint(
        name=node,
        host=spec.host,
        port=spec.port,
        user=settings.user,
        password=settings.password.reveal(),
        connect_timeout=settings.connect_timeout,
    )


def parse_dsn(text: str, settings: MySQLSettings) -> Endpoint:
    """``NODE`` (a configured node) or ``HOST:PORT`` (the configured user and password)."""
    if text in settings.nodes:
        return endpoint(settings, text)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        known = ", ".join(sorted(settings.nodes)) or "none"
        raise ConfigError(
            "command line", "target", f"{text!r} is neither a node name ({known}) nor HOST:PORT"
        )
    return Endpoint(
        name=text,
        host=host,
        port=int(port),
        user=settings.user,
        password=settings.password.reveal(),
        connect_timeout=settings.connect_timeout,
    )


def connect(ep: Endpoint, *, database: str | None = None) -> Connection:
    """An autocommit connection (utf8mb4, UTC session); ServiceUnavailable on failure."""
    try:
        conn = pymysql.connect(
            host=ep.host,
            port=ep.port,
            user=ep.user,
            password=ep.password,
            database=database,
            connect_timeout=ep.connect_timeout,
            # pymysql drops connect_timeout once TCP is up: without these, the handshake
            # with a hung server (frozen, or its host partitioned) would wait forever.
            read_timeout=ep.connect_timeout,
            write_timeout=ep.connect_timeout,
            autocommit=True,
            charset="utf8mb4",
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.OperationalError as exc:
        raise ep.unreachable(exc) from None
    # Queries are not bounded (restores and replication waits take long): pymysql re-applies
    # these before every read and write.
    conn._read_timeout = None  # type: ignore[attr-defined]
    conn._write_timeout = None  # type: ignore[attr-defined]  # not in the stubs
    return conn


def query_dicts(conn: Connection, sql: str, args: Any = None) -> list[dict[str, Any]]:
    """Run ``sql`` and return its rows as dicts (column name -> value)."""
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(sql, args)
        return [dict(row) for row in cur.fetchall()]


@contextlib.contextmanager
def client_options_file(ep: Endpoint) -> Iterator[Path]:
    """A 0600 ``[client]`` option file for the stock clients; removed on exit.

    Pass it as the *first* argument: ``--defaults-file=PATH``.
    """
    fd, name = tempfile.mkstemp(prefix="datatier-", suffix=".cnf")
    path = Path(name)
    try:
        with os.fdopen(fd, "w") as out:
            out.write("[client]\n")
            out.write(f"host={ep.host}\nport={ep.port}\nuser={ep.user}\n")
            if ep.password:
                escaped = ep.password.replace("\\", "\\\\").replace('"', '\\"')
                out.write(f'password="{escaped}"\n')
            out.write("protocol=tcp\n")
        yield path
    finally:
        path.unlink(missing_ok=True)
