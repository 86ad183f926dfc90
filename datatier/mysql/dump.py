"""MySQL/MariaDB backup engine: one ``mariadb-dump --single-transaction`` split per table.

Consistency: a single mariadb-dump process reads everything inside one
``START TRANSACTION WITH CONSISTENT SNAPSHOT``; with ``--master-data=2 --gtid`` MariaDB
reports the binlog file/position and GTID of that very snapshot (from
``binlog_snapshot_*``, no global read lock needed). Those coordinates, parsed from the dump
header, go into the manifest. Objects are plain SQL the stock client loads after
``zstd -d``: every object starts with the dump's session prelude; none contains ``USE``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, ClassVar, cast
from urllib.parse import quote

from datatier.backup.engine import BackupEngine, DumpResult
from datatier.backup.manifest import TableRecord
from datatier.backup.objects import DEFAULT_CHUNK, ObjectWriter, OpenObject
from datatier.backup.policy import Policy
from datatier.errors import OperationFailed, ServiceUnavailable
from datatier.log import get_logger
from datatier.mysql.connection import Endpoint, client_options_file, connect, query_dicts
from datatier.mysql.dumpsplit import split_stream
from datatier.mysql.grants import dump_grants

log = get_logger(__name__)

DUMP_OPTIONS = (
    "--single-transaction",
    "--quick",
    "--master-data=2",
    "--gtid",
    "--routines",
    "--triggers",
    "--events",
    "--hex-blob",
    "--order-by-primary",
    "--skip-dump-date",
    "--skip-add-locks",
    "--skip-disable-keys",
    "--default-character-set=utf8mb4",
    "--max-allowed-packet=1G",
    "--net-buffer-length=1M",
)
"""Options that define the object format; `verify --restore-test` re-dumps with the same."""

CHANGE_MASTER = re.compile(rb"MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)")
GTID_POS = re.compile(rb"SET GLOBAL gtid_slave_pos='([^']*)'")
GRANTS_KEY = "@users/grants.sql.zst"
UNREACHABLE = ("Can't connect", "Lost connection", "Access denied", "gone away", "Got error: 2013")


def count_rows(chunk: bytes) -> int:
    """Rows in whole lines of a data section (mariadb-dump puts one row per line)."""
    return chunk.count(b"\n(") + (1 if chunk.startswith(b"(") else 0)


def object_path(database: str, name: str | None, leaf: str) -> str:
    """Relative key of an object; identifiers are percent-encoded (spaces, backticks, …)."""
    db = quote(database, safe="")
    return f"{db}/{leaf}" if name is None else f"{db}/{quote(name, safe='')}/{leaf}"


@dataclass
class _Table:
    database: str
    name: str
    digest: Any = field(default_factory=hashlib.sha256)
    rows: int = 0
    size: int = 0


class TableSplitSink:
    """Maps dump sections to objects; chunks data at statement ends; sums rows and hashes."""

    LEAVES: ClassVar[dict[str, str]] = {
        "database": "_database.sql.zst",
        "schema": "schema.sql.zst",
        "triggers": "triggers.sql.zst",
        "viewstubs": "viewstub.sql.zst",
        "views": "view.sql.zst",
        "events": "_events.sql.zst",
        "routines": "_routines.sql.zst",
    }

    def __init__(self, writer: ObjectWriter, chunk_bytes: int) -> None:
        self.writer = writer
        self.chunk_bytes = chunk_bytes
        self.prelude = b""
        self.tables: dict[tuple[str, str], _Table] = {}
        self._obj: OpenObject | None = None
        self._kind = ""
        self._db = ""
        self._name: str | None = None
        self._part = 0
        self._table: _Table | None = None

    def set_prelude(self, prelude: bytes) -> None:
        self.prelude = prelude

    def _new_object(self) -> OpenObject:
        if self._kind == "data":
            self._part += 1
            leaf = f"data-{self._part:05d}.sql.zst"
        else:
            leaf = self.LEAVES[self._kind]
        obj = self.writer.open(
            object_path(self._db, self._name, leaf), self._kind, self._db, self._name, self._part
        )
        obj.write(self.prelude)
        return obj

    def begin(self, kind: str, database: str, name: str | None) -> None:
        self._kind, self._db, self._name, self._part = kind, database, name, 0
        self._obj = None
        if kind == "data" and name is not None:
            self._table = self.tables.setdefault((database, name), _Table(database, name))
        else:
            self._table = None

    def write(self, data: bytes, rows: int) -> None:
        if self._table is not None:
            self._table.digest.update(data)
            self._table.size += len(data)
            self._table.rows += rows
        if self._kind == "data":
            data, rows = self._write_chunked(data, rows)
            if not data:
                return
        if self._obj is None:
            self._obj = self._new_object()
        self._obj.write(data, rows)

    def _write_chunked(self, data: bytes, rows: int) -> tuple[bytes, int]:
        """Fill and close full chunks; return what is left for the current one (and its
        rows). Rows are only recounted when a chunk boundary falls inside ``data``."""
        while True:
            current = self._obj.raw_size if self._obj else 0
            if current + len(data) <= self.chunk_bytes:
                return data, rows
            end = data.find(b";\n", max(0, self.chunk_bytes - current - 1))
            if end < 0:
                return data, rows
            head, data = data[: end + 2], data[end + 2 :]
            head_rows = count_rows(head)
            rows -= head_rows
            if self._obj is None:
                self._obj = self._new_object()
            self._obj.write(head, head_rows)
            self.writer.close(self._obj)
            self._obj = None

    def end(self) -> None:
        if self._obj is not None:
            self.writer.close(self._obj)
        elif self._kind == "data" and self._part == 0:
            pass  # an empty table has no data object; its schema recreates it
        self._obj = None


class _StderrTail(threading.Thread):
    """Drain a process's stderr, keeping the last lines for the error message."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: deque[str] = deque(maxlen=5)

    def run(self) -> None:
        for raw in self.stream:
            self.lines.append(raw.decode(errors="replace").strip())


class MySQLDumpEngine(BackupEngine):
    """Backs up the policy's databases from ``source`` (normally a replica)."""

    name = "mysql"

    def __init__(self, source: Endpoint, policy: Policy, chunk_bytes: int = DEFAULT_CHUNK) -> None:
        self.source = source
        self.policy = policy
        self.chunk_bytes = chunk_bytes

    def plan(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str], list[str]]:
        """Server facts, database charsets, databases to dump and tables to ignore."""
        with connect(self.source) as conn:
            server = query_dicts(
                conn,
                "SELECT @@server_id AS server_id, @@version AS version, @@hostname AS hostname, "
                "@@read_only AS read_only, @@gtid_current_pos AS gtid_current_pos",
            )[0]
            schemata = query_dicts(
                conn,
                "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
                "FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
            )
            databases = {
                r["SCHEMA_NAME"]: {
                    "charset": r["DEFAULT_CHARACTER_SET_NAME"],
                    "collation": r["DEFAULT_COLLATION_NAME"],
                }
                for r in schemata
                if self.policy.includes_database(r["SCHEMA_NAME"])
            }
            ignore: list[str] = []
            if databases:
                marks = ",".join(["%s"] * len(databases))
                rows = query_dicts(
                    conn,
                    "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                    f"WHERE TABLE_SCHEMA IN ({marks})",
                    tuple(databases),
                )
                ignore = [
                    f"{r['TABLE_SCHEMA']}.{r['TABLE_NAME']}"
                    for r in rows
                    if not self.policy.includes_table(r["TABLE_SCHEMA"], r["TABLE_NAME"])
                ]
        server["read_only"] = bool(server.get("read_only"))
        return server, databases, sorted(databases), ignore

    def dump(self, writer: ObjectWriter) -> DumpResult:
        server, charsets, databases, ignore = self.plan()
        if not databases:
            raise OperationFailed(
                f"policy {self.policy.name} matches no database on {self.source.label}"
            )
        binary = shutil.which("mariadb-dump") or shutil.which("mysqldump")
        if binary is None:
            raise OperationFailed("mariadb-dump is not installed (apt-get install mariadb-client)")
        sink = TableSplitSink(writer, self.chunk_bytes)
        started = time.monotonic()
        with client_options_file(self.source) as cnf:
            argv = [binary, f"--defaults-file={cnf}", *DUMP_OPTIONS]
            argv += [f"--ignore-table={t}" for t in ignore]
            argv += ["--databases", *databases]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdout is not None and proc.stderr is not None
            _widen_pipe(proc.stdout.fileno())
            tail = _StderrTail(proc.stderr)
            tail.start()
            try:
                splitter = split_stream(cast(BinaryIO, proc.stdout), sink, sink.set_prelude)
            except BaseException as exc:
                proc.kill()
                proc.wait()
                tail.join(timeout=2)
                if isinstance(exc, Exception):  # not for SIGTERM/Ctrl-C: those propagate
                    self._raise_for(proc.returncode, tail, during_split=True)
                raise
            code = proc.wait()
            tail.join(timeout=5)
        if code != 0:
            self._raise_for(code, tail, during_split=False)
        options: dict[str, Any] = {"dump_options": list(DUMP_OPTIONS), "ignored_tables": ignore}
        if self.policy.spec.source.include_grants:
            options["grants"] = self._dump_grants(writer)
        coordinates = _coordinates(splitter.header, splitter.trailer)
        tables = [
            TableRecord(t.database, t.name, t.rows, t.digest.hexdigest(), t.size)
            for t in sink.tables.values()
        ]
        log.info(
            "backup.dumped",
            source=self.source.label,
            databases=len(databases),
            tables=len(tables),
            rows=sum(t.rows for t in tables),
            seconds=round(time.monotonic() - started, 3),
        )
        return DumpResult(
            source={
                "engine": "mysql",
                "node": self.source.name,
                "host": self.source.host,
                "port": self.source.port,
                **server,
            },
            consistency={
                "method": "single transaction (mariadb-dump --single-transaction)",
                **coordinates,
            },
            tables=tables,
            databases=charsets,
            options=options,
        )

    def _dump_grants(self, writer: ObjectWriter) -> dict[str, Any]:
        """Accounts, roles and grants as one object (``@users/grants.sql.zst``: ``@`` is
        percent-encoded in database names, so no database can collide with it)."""
        with connect(self.source) as conn:
            text, skipped = dump_grants(conn)
        obj = writer.open(GRANTS_KEY, "grants", None, None)
        obj.write(text.encode())
        writer.close(obj)
        if skipped:
            log.warning(
                "backup.accounts_skipped",
                accounts=skipped,
                note="the server cannot describe them (e.g. host names with skip_name_resolve)",
            )
        return {"accounts": text.count("\nCREATE "), "skipped": skipped}

    def _raise_for(self, code: int | None, tail: _StderrTail, *, during_split: bool) -> None:
        message = self.source.scrub(" | ".join(tail.lines) or f"exit code {code}")
        if any(marker in message for marker in UNREACHABLE):
            raise ServiceUnavailable(f"mariadb-dump lost {self.source.label}: {message}")
        if code not in (0, None) or not during_split:
            raise OperationFailed(f"mariadb-dump failed on {self.source.label}: {message}")


def _widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """Ask Linux for a 1 MiB pipe buffer: fewer wake-ups between dumper and splitter."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


def _coordinates(header: bytes, trailer: bytes) -> dict[str, Any]:
    """Binlog file/position (header) and GTID position (trailer) of the dump's snapshot."""
    text = header + trailer
    found: dict[str, Any] = {}
    match = CHANGE_MASTER.search(text)
    if match:
        found["binlog_file"] = match.group(1).decode()
        found["binlog_pos"] = int(match.group(2))
    gtid = GTID_POS.search(text)
    if gtid:
        found["gtid_pos"] = gtid.group(1).decode()
    return found
