"""Replay archived binlog transactions into a private scratch server with the stock tools.

A point-in-time restore from a physical base replays the whole server, as a replica would:
the chosen transactions (their events as archived, unchanged) are written into binlog files
(magic, the format description, the events) and fed through ``mariadb-binlog`` into one
``mariadb`` client session on the scratch server's socket
(:class:`~datatier.mysql.physical.scratch.ScratchServer` with ``private``: no network, no
grant checks). The server applies row events through ``BINLOG`` statements and logged
statements as they were: every database, those created or dropped in the window, accounts
and routines included; one session, so temporary tables live on across files.

A statement the source logged with the error it met (``error_code`` of its query event: a
statement-format write to a non-transactional table that failed half-way, such as a
duplicate key in a multi-row INSERT into an Aria table) keeps the rows it wrote there: a
replica expects that error and goes on. The client would stop at it, so such a statement is
fed wrapped in a compound statement whose handler expects exactly that error (and fails
the replay if it does not occur); one the source interrupted (killed, timed out, shut
down) did an unknown part of its work and is refused, as is a LOAD DATA logged with its
error (no compound statement may hold one) (:func:`expected_errors`).

The session starts with ``FLUSH PRIVILEGES`` (account statements of the window then run on
the restored grant tables; the session keeps every privilege). The first error stops the
replay (OperationFailed naming the transactions being fed and the client's message): the
caller never installs such a datadir.
"""

from __future__ import annotations

import contextlib
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pymysql

from datatier.errors import OperationFailed, UsageError
from datatier.log import get_logger
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.groups import Group
from datatier.mysql.binlog.positions import Gtid, Position
from datatier.mysql.binlog.query import parse_query
from datatier.mysql.binlog.selection import ReplayRefused
from datatier.mysql.physical.tool import tail_of

log = get_logger(__name__)

FILE_BYTES = 64 << 20
"""A binlog file fed to ``mariadb-binlog`` once it holds this much (then the next)."""
BINLOG_TOOLS = ("mariadb-binlog", "mysqlbinlog")
CLIENT_TOOLS = ("mariadb", "mysql")
INTERRUPTED = {
    1053: "the server shut down",  # ER_SERVER_SHUTDOWN
    1317: "it was interrupted",  # ER_QUERY_INTERRUPTED
    1927: "its connection was killed",  # ER_CONNECTION_KILLED
    1969: "it ran out of time (max_statement_time)",  # ER_STATEMENT_TIMEOUT
}
"""Errors a statement logged with met at an unknown point of its work: no replay can redo
just that part."""
SEEN = b"@datatier_logged_error"


def _logged_error(event: bytes) -> bool:
    """Whether ``event`` is a statement logged with the error it met (the type at offset 4
    of the header; a query's error code at offset 9 of its post-header)."""
    kind = event[4]
    if kind not in ev.QUERY_EVENTS and kind != ev.EXECUTE_LOAD_QUERY:
        return False
    return bool(struct.unpack_from("<H", event, ev.HEADER_LEN + 9)[0])


def expected_errors(events: list[bytes], checksum: bool, gtid: Gtid) -> list[bytes]:
    """``events`` with each query event that carries the source's error rewritten (see
    the module docstring); ReplayRefused for a statement the source interrupted."""
    if not any(_logged_error(e) for e in events):  # nearly always: as they are
        return events
    out = []
    for event in events:
        if not _logged_error(event):
            out.append(event)
            continue
        head = ev.header(event)
        if head.type == ev.EXECUTE_LOAD_QUERY:
            raise ReplayRefused(
                f"transaction {gtid} holds a LOAD DATA the source logged with the error it "
                f"met (error {struct.unpack_from('<H', event, ev.HEADER_LEN + 9)[0]}) after "
                "loading part of the file into a non-transactional table: the client "
                "replaying it would stop at that error, and no statement loads just that part",
                hint="choose a target before that transaction (--until-gtid), or restore "
                "without one and load the rest by hand",
            )
        query = parse_query(event, checksum)
        code = query.error_code
        if code in INTERRUPTED:
            raise ReplayRefused(
                f"transaction {gtid} holds a statement the source logged after "
                f"{INTERRUPTED[code]} (error {code}) part-way through a non-transactional "
                "table: the binlog does not tell how much of it was done, so no replay can "
                "reproduce it",
                hint="choose a target before that transaction (--until-gtid), or restore "
                "without one and repair that table by hand",
            )
        text = query.text.rstrip().rstrip(b";")
        wrapped = (
            b"BEGIN NOT ATOMIC DECLARE CONTINUE HANDLER FOR %d SET %s = NULL; SET %s = %d; "
            b"%s\n; IF %s IS NOT NULL THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = "
            b"'the statement failed on the source with error %d, not here'; END IF; END"
        ) % (code, SEEN, SEEN, code, text, SEEN, code)
        _t, _e, db_len, _err, vars_len = struct.unpack_from("<IIBHH", event, ev.HEADER_LEN)
        at = ev.HEADER_LEN + 13 + vars_len + db_len + 1  # the statement's text
        post = bytearray(event[ev.HEADER_LEN : at])
        struct.pack_into("<H", post, 9, 0)  # no error expected of the wrapper
        body = bytes(post) + wrapped
        size = ev.HEADER_LEN + len(body) + (ev.CRC_LEN if checksum else 0)
        raw = ev.HEADER.pack(
            head.timestamp, ev.QUERY, head.server_id, size, head.log_pos, head.flags
        )
        out.append(ev.with_crc(raw + body) if checksum else raw + body)
    return out


def replay_tools() -> tuple[str, str]:
    """(``mariadb-binlog``, ``mariadb``) as found on PATH; UsageError naming the package."""
    found = []
    for names in (BINLOG_TOOLS, CLIENT_TOOLS):
        path = next((p for p in map(shutil.which, names) if p), None)
        if path is None:
            raise UsageError(
                f"{names[0]} is not installed on this host: a point-in-time restore from a "
                "physical backup replays the binlog with it",
                hint="install mariadb-client",
            )
        found.append(path)
    return found[0], found[1]


@dataclass
class ReplayReport:
    """What a replay fed: transactions, files, bytes of events, the position reached."""

    transactions: int = 0
    files: int = 0
    bytes: int = 0
    first: str = ""
    last: str = ""
    reached: Position = field(default_factory=Position)
    seconds: float = 0.0  # from the session's start to its end (the server's start and
    # shutdown not included)

    def to_json(self) -> dict[str, object]:
        return {
            "transactions": self.transactions,
            "files": self.files,
            "bytes": self.bytes,
            "first": self.first,
            "last": self.last,
            "gtid_pos": str(self.reached),
            "session_seconds": round(self.seconds, 3),
        }


class Replayer:
    """One client session on ``socket``, a context manager (leaving it stops the client);
    :meth:`add` each transaction in order, then :meth:`finish` (OperationFailed on the
    first error). ``finish`` ends the session by setting ``gtid_slave_pos`` to the position
    reached: the restored server, which has no binlog, then replicates from there."""

    def __init__(self, socket: Path, workdir: Path, start: Position) -> None:
        self.binlog_tool, self.client_tool = replay_tools()
        self.socket = socket
        self.workdir = workdir
        self.report = ReplayReport(reached=start)
        self._fde: bytes | None = None
        self._events: list[bytes] = []
        self._size = 0
        self._gtids: list[Gtid] = []
        self._spans: list[str] = []  # of the files fed, the newest last
        self._errors = workdir / "replay-client.err"
        self._err: IO[bytes] | None = None
        self._client: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    def __enter__(self) -> Replayer:
        self._started = time.monotonic()
        self._err = self._errors.open("wb")
        self._client = subprocess.Popen(
            [
                self.client_tool,
                "--no-defaults",
                f"--socket={self.socket}",
                "--user=root",
                "--binary-mode",
                "--max-allowed-packet=1G",
                "--local-infile=1",
                "--batch",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
        )
        self._write(b"FLUSH PRIVILEGES;\n")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _stdin(self) -> IO[bytes]:
        assert self._client is not None and self._client.stdin is not None, "entered"
        return self._client.stdin

    def add(self, fde: ev.FormatDescription, group: Group) -> None:
        """Queue ``group`` (read under ``fde``); feeds a file once it is large enough."""
        if self._fde is not None and (fde.event != self._fde or self._size >= FILE_BYTES):
            self._feed()
        self._fde = fde.event
        self._events.extend(expected_errors(group.events, fde.checksum, group.gtid))
        self._size += sum(len(e) for e in group.events)
        self._gtids.append(group.gtid)
        report = self.report
        report.transactions += 1
        report.first = report.first or str(group.gtid)
        report.last = str(group.gtid)
        report.reached = report.reached.with_gtid(group.gtid)

    def finish(self) -> ReplayReport:
        """Feed what is queued, set ``gtid_slave_pos``, end the session and wait for it;
        OperationFailed on an error."""
        assert self._client is not None, "entered"
        if self._events:
            self._feed()
        reached = str(self.report.reached)
        self._write(f"SET GLOBAL gtid_slave_pos = '{reached}';\n".encode(), "")
        with contextlib.suppress(BrokenPipeError):  # the client's exit code tells
            self._stdin.close()
        code = self._client.wait()
        if code != 0:
            raise self._failed()
        self.report.seconds = time.monotonic() - self._started
        return self.report

    def close(self) -> None:
        """Stop the client if it still runs (after a failure); idempotent."""
        if self._client is not None:
            if self._client.poll() is None:
                self._client.kill()
                self._client.wait()
            with contextlib.suppress(BrokenPipeError, ValueError):
                self._stdin.close()
        if self._err is not None:
            self._err.close()

    def _write(self, data: bytes, where: str = "the start") -> None:
        try:
            self._stdin.write(data)
            self._stdin.flush()
        except BrokenPipeError:
            raise self._failed(where) from None

    def _feed(self) -> None:
        """One binlog file of the queued transactions through ``mariadb-binlog`` into the
        session (a client that stopped fails it); the tool's warnings are logged."""
        assert self._fde is not None and self._client is not None
        path = self.workdir / "replay.bin"
        with path.open("wb") as out:
            out.write(ev.MAGIC)
            out.write(self._fde)
            out.writelines(self._events)
        span = f"{self._gtids[0]}..{self._gtids[-1]}"
        self._spans = [*self._spans[-1:], span]
        done = subprocess.run(
            [
                self.binlog_tool,
                "--no-defaults",
                "--skip-gtid-strict-mode",  # domains of several servers interleave
                f"--local-load={self.workdir}",
                str(path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._stdin,
            stderr=subprocess.PIPE,
            check=False,
        )
        path.unlink()
        self.report.files += 1
        self.report.bytes += self._size
        self._events, self._size, self._gtids = [], 0, []
        said = done.stderr.decode(errors="replace").strip()
        if done.returncode != 0:  # a client that stopped closed the pipe: its error first
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._client.wait(timeout=10)
        if self._client.poll() is not None:
            raise self._failed()
        if done.returncode != 0:
            raise OperationFailed(f"mariadb-binlog failed reading transactions {span}: {said}")
        if said:
            log.warning("restore.replay_tool_said", transactions=span, stderr=said[-2000:])
        log.info("restore.replay_fed", transactions=span, files=self.report.files)

    def _failed(self, where: str = "") -> OperationFailed:
        """The client's error as the replay's failure: in the transactions of the last two
        files fed (the client runs behind the feed), or at ``where``."""
        said = tail_of(self._errors)
        if not where and self._spans:
            first = self._spans[0].split("..")[0]
            last = self._spans[-1].split("..")[-1]
            where = f"in transactions {first}..{last}"
        hint = "nothing was installed; the datadir being prepared was removed"
        if "ERROR 1146" in said:
            hint += (
                ". A table it says does not exist is usually a temporary table its session "
                "created before the base backup (statement format; no backup holds temporary "
                "tables): name an older backup as the base (datatier restore OLDER_ID "
                "--policy P --until ...)"
            )
        return OperationFailed(
            f"the binlog replay failed ({where or 'at the start'}): {said}", hint=hint
        )


REPLAY_SERVER_ARGS = (
    "--innodb-flush-log-at-trx-commit=0",  # a copy that did not shut down cleanly is never kept
    "--innodb-doublewrite=0",
)
"""What the private server replaying on a copy runs with besides its defaults (and those of
``ScratchServer(private=True)``: no network, no grant checks, no symbolic links)."""


def plugin_args(socket: Path) -> list[str]:
    """``--plugin-load-add`` for each plugin the copy installed (``mysql.plugin``: without
    grant tables the server loads none of them, and a table of such an engine could not be
    opened). UDFs (``mysql.func``) are not loaded either: logged, a replay calling one fails."""
    conn = pymysql.connect(unix_socket=str(socket), user="root", connect_timeout=30)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT name, dl FROM mysql.plugin ORDER BY name")
        plugins = [f"--plugin-load-add={name}={dl}" for name, dl in cur.fetchall()]
        cur.execute("SELECT name FROM mysql.func ORDER BY name")
        udfs = [str(r[0]) for r in cur.fetchall()]
    if udfs:
        log.warning(
            "restore.replay_udfs_not_loaded",
            functions=udfs,
            note="the replay's server runs without grant tables, which also leaves UDFs "
            "unloaded: a replayed statement calling one fails the restore",
        )
    return plugins
