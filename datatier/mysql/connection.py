"""Connections to the configured MySQL/MariaDB nodes, and client option files for the CLIs.

Passwords never reach a command line, a process title or a named file: the stock clients
(mariadb-dump, mariadb, mariadb-binlog...) get them through an option file that exists only
as an anonymous in-memory file (``memfd``), inherited as a file descriptor and read as
``--defaults-file=/dev/fd/N`` (:func:`client_options_file`). Nothing is left on disk when
datatier is killed. TLS (``[mysql] ssl_ca``, ``ssl_cert``, ``ssl_key``,
``ssl_verify_server_cert``) applies to every connection: pymysql (:func:`connect`, the
monitor), mysqlclient (the fast reader) and the stock clients' option file. Connection
failures raise
:class:`~datatier.errors.ServiceUnavailable` naming the node, never the password.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from datatier.config import MySQLSettings, Role, split_host_port
from datatier.errors import ConfigError, ServiceUnavailable

Connection = pymysql.connections.Connection
MySQLError = pymysql.MySQLError
"""Any error the server or the driver reports on a query (callers outside ``mysql/`` catch
this name, never the driver's)."""


@dataclass(frozen=True)
class ClientTLS:
    """TLS for MySQL connections; ``verify`` checks the server's certificate chain against
    ``ca`` and its name against the host connected to."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    verify: bool = True

    def ssl_context(self) -> ssl.SSLContext:
        """For pymysql."""
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.check_hostname = self.verify
        ctx.verify_mode = ssl.CERT_REQUIRED if self.verify else ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def mysqlclient_options(self) -> dict[str, Any]:
        """Keyword arguments for ``MySQLdb.connect``."""
        files = {k: v for k, v in (("ca", self.ca), ("cert", self.cert), ("key", self.key)) if v}
        return {"ssl": files, "ssl_mode": "VERIFY_IDENTITY" if self.verify else "REQUIRED"}

    def option_lines(self) -> list[str]:
        """Lines of a ``[client]`` option file for the stock clients."""
        lines = ["ssl"]
        for name, value in (("ssl-ca", self.ca), ("ssl-cert", self.cert), ("ssl-key", self.key)):
            if value:
                lines.append(f"{name}={value}")
        lines.append("ssl-verify-server-cert" if self.verify else "skip-ssl-verify-server-cert")
        return lines


def client_tls(settings: MySQLSettings) -> ClientTLS | None:
    """The ``[mysql]`` TLS settings, or None when TLS is not configured."""
    if not settings.tls:
        return None
    return ClientTLS(
        settings.ssl_ca, settings.ssl_cert, settings.ssl_key, settings.ssl_verify_server_cert
    )


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect (password kept out of repr)."""

    name: str
    host: str
    port: int
    user: str
    password: str = ""
    connect_timeout: float = 5.0
    tls: ClientTLS | None = None

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
        if isinstance(exc, ssl.SSLError):
            reason = f"TLS: {exc.reason or exc}" + (
                f" ({exc.verify_message})" if isinstance(exc, ssl.SSLCertVerificationError) else ""
            )
        else:
            reason = str(exc.args[1] if len(exc.args) > 1 else exc)
        return ServiceUnavailable(f"cannot connect to MySQL {self.label}: {self.scrub(reason)}")

    def tls_options(self) -> dict[str, Any]:
        """pymysql's TLS arguments: the configured context, or TLS off. Off, not pymysql's
        own default (>= 1.2: try unverified TLS, building a context per connection, ~20 ms
        of CPU each), so an unconfigured node is plaintext as with the stock 10.x client."""
        context = self.tls_context()
        return {"ssl": context, "ssl_disabled": context is None}

    def tls_context(self) -> ssl.SSLContext | None:
        """An SSL context for pymysql, or None without TLS; ConfigError naming the setting
        when a certificate or key file cannot be read."""
        if self.tls is None:
            return None
        try:
            return self.tls.ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "config", "mysql.ssl_ca / ssl_cert / ssl_key", f"cannot load TLS files: {exc}"
            ) from None


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
        tls=client_tls(settings),
    )


def parse_dsn(text: str, settings: MySQLSettings) -> Endpoint:
    """``NODE`` (a configured node) or ``HOST:PORT`` (the configured user and password)."""
    if text in settings.nodes:
        return endpoint(settings, text)
    try:
        host, port = split_host_port(text)
    except ValueError as exc:
        known = ", ".join(sorted(settings.nodes)) or "none"
        problem = f"{text!r} is neither a node name ({known}) nor HOST:PORT"
        if ":" in text:
            problem = f"{exc}; a target is a node name ({known}) or HOST:PORT"
        raise ConfigError("command line", "target", problem) from None
    return Endpoint(
        name=text,
        host=host,
        port=port,
        user=settings.user,
        password=settings.password.reveal(),
        connect_timeout=settings.connect_timeout,
        tls=client_tls(settings),
    )


def primary_name(settings: MySQLSettings, *, hint: str | None = None) -> str:
    """The name of the node whose role is ``primary``; the one ConfigError (exit 2) when
    none is configured (``hint``: what the caller needed it for)."""
    found = settings.primary()
    if found is None:
        raise ConfigError(
            "config",
            "mysql.nodes",
            "no node has role = primary",
            hint=hint or 'set role = "primary" on the node that takes writes',
        )
    return found[0]


def primary_endpoint(settings: MySQLSettings, *, hint: str | None = None) -> Endpoint:
    """The endpoint of the configured primary (see :func:`primary_name`)."""
    return endpoint(settings, primary_name(settings, hint=hint))


def resolve_target(settings: MySQLSettings, text: str | None) -> tuple[Endpoint, Role | None]:
    """A restore target: ``NODE`` or ``HOST:PORT`` (None: the configured primary), and its
    role in ``[mysql.nodes]`` (None for a HOST:PORT that is no configured node)."""
    if text:
        node = settings.nodes.get(text)
        return parse_dsn(text, settings), node.role if node else None
    name = primary_name(settings, hint="no --target given: name one, or configure a primary")
    return endpoint(settings, name), settings.nodes[name].role


def connect(ep: Endpoint, *, database: str | None = None) -> Connection:
    """An autocommit connection (utf8mb4, UTC session); ServiceUnavailable on failure
    (a TLS handshake or certificate check included)."""
    tls = ep.tls_options()
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
            **tls,
        )
    except (pymysql.OperationalError, ssl.SSLError) as exc:
        raise ep.unreachable(exc) from None
    # Queries are not bounded (restores and replication waits take long): pymysql re-applies
    # these before every read and write.
    conn._read_timeout = None  # type: ignore[attr-defined]
    conn._write_timeout = None  # type: ignore[attr-defined]  # not in the stubs
    return conn


LOST_CONNECTION = frozenset({2003, 2006, 2013, 2055})
"""Client errors that mean the server went away (CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR,
CR_SERVER_LOST, CR_SERVER_LOST_EXTENDED)."""


def connection_lost(exc: BaseException) -> bool:
    """Whether a query failed because the connection is gone (the driver's interface errors,
    or one of :data:`LOST_CONNECTION`), not because of the query."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return isinstance(exc, pymysql.err.OperationalError) and code in LOST_CONNECTION


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
    if ep.tls:
        lines += ep.tls.option_lines()
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
