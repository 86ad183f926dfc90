"""Connections to the configured MySQL/MariaDB nodes, and client option files for the CLIs.

Passwords never reach a command line, a process title or a named file: the stock clients
(mariadb-dump, mariadb, mariadb-binlog...) get them through an option file that exists only
as an anonymous in-memory file (``memfd``), inherited as a file descriptor and read as
``--defaults-file=/dev/fd/N`` (:func:`client_options_file`). Nothing is left on disk when
datatier is killed. Connection failures raise
:class:`~datatier.errors.ServiceUnavailable` naming the node, never the password.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
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
        return pymysql.connect(
            host=ep.host,
            port=ep.port,
            user=ep.user,
            password=ep.password,
            database=database,
            connect_timeout=ep.connect_timeout,
            autocommit=True,
            charset="utf8mb4",
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.OperationalError as exc:
        raise ep.unreachable(exc) from None


def query_dicts(conn: Connection, sql: str, args: Any = None) -> list[dict[str, Any]]:
    """Run ``sql`` and return its rows as dicts (column name -> value)."""
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(sql, args)
        return [dict(row) for row in cur.fetchall()]


@dataclass(frozen=True)
class ClientOptions:
    """A ``[client]`` option file that exists only as the open descriptor ``fd``.

    ``str(options)`` is its path for a child process, ``/dev/fd/N``: pass it as the
    *first* argument, ``--defaults-file={options}``, and start the child with
    ``pass_fds=options.pass_fds`` (the path means nothing to a process that did not
    inherit the descriptor).
    """

    fd: int

    @property
    def path(self) -> str:
        return f"/dev/fd/{self.fd}"

    @property
    def pass_fds(self) -> tuple[int]:
        return (self.fd,)

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path


def client_options_text(ep: Endpoint) -> str:
    """The ``[client]`` section for ``ep`` (contains the password: never log or store it)."""
    lines = ["[client]", f"host={ep.host}", f"port={ep.port}", f"user={ep.user}"]
    if ep.password:
        escaped = ep.password.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'password="{escaped}"')
    lines.append("protocol=tcp")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def client_options_file(ep: Endpoint) -> Iterator[ClientOptions]:
    """An anonymous, sealed, 0600 option file for the stock clients; closed on exit.

    It is a ``memfd`` (never on any filesystem), or where that is missing an unlinked
    temporary file; either way no name exists for a kill to leave behind.
    """
    try:
        fd = os.memfd_create("datatier-client-options", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        sealable = True
    except (AttributeError, OSError):  # not Linux, or an old kernel
        with tempfile.TemporaryFile(prefix="datatier-") as handle:  # O_TMPFILE or unlinked
            fd, sealable = os.dup(handle.fileno()), False
    try:
        os.fchmod(fd, 0o600)  # the clients ignore world-writable option files
        os.write(fd, client_options_text(ep).encode())
        if sealable:  # no process that inherits it can change it
            seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | fcntl.F_SEAL_SEAL)
        yield ClientOptions(fd)
    finally:
        os.close(fd)
