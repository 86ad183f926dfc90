"""Helpers of the physical backup tests: CLI calls, scratch servers, table checksums,
a reference replica held at a GTID, and a writer running during backups.

Ports: scratch servers and the seeded fourth MariaDB use ``DATATIER_TEST_PORT_BASE + 400``
to ``+ 699`` (the sandbox uses +0..+9, other tests +20..+60).
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql

from datatier.cli import main
from datatier.mysql.physical.scratch import ScratchServer, free_port
from datatier.mysql.sqltext import qualified
from tests.integration.conftest import SandboxHandle

OWNER = getpass.getuser()


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli(sandbox: SandboxHandle, *args: str) -> Result:
    """``datatier --config SANDBOX ARGS`` in-process, with its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", str(sandbox.config_path), *args])
    return Result(code, out.getvalue(), err.getvalue())


def scratch_ports(port_base: int) -> range:
    return range(port_base + 400, port_base + 700)


@contextlib.contextmanager
def scratch(
    datadir: Path, port_base: int, make: Callable[[Path, int], ScratchServer] = ScratchServer
) -> Iterator[ScratchServer]:
    """A scratch mariadbd on ``datadir`` on a free port of this test run's range (``make``:
    a subclass with other options)."""
    with make(datadir, free_port(scratch_ports(port_base))) as server:
        yield server


def connect_port(sandbox: SandboxHandle, port: int) -> pymysql.connections.Connection[Any]:
    cfg = sandbox.config.mysql
    return pymysql.connect(
        host="127.0.0.1", port=port, user=cfg.user, password=cfg.password.reveal(),
        autocommit=True, connect_timeout=10,
    )  # fmt: skip


def table_state(conn: pymysql.connections.Connection[Any], database: str) -> dict[str, Any]:
    """Every base table of ``database``: ``CHECKSUM TABLE ... EXTENDED`` and row count."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
            "AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
            (database,),
        )
        names = [r[0] for r in cur.fetchall()]
        state: dict[str, Any] = {}
        for name in names:
            cur.execute(f"CHECKSUM TABLE {qualified(database, name)} EXTENDED")
            checksum = cur.fetchone()[1]
            cur.execute(f"SELECT COUNT(*) FROM {qualified(database, name)}")
            state[name] = (checksum, cur.fetchone()[0])
    return state


def hold_until(sandbox: SandboxHandle, node: str, gtid: str, timeout: float = 60.0) -> None:
    """Let replica ``node`` apply exactly up to ``gtid`` and stop there."""
    with sandbox.connect(node) as conn, conn.cursor() as cur:
        cur.execute("STOP SLAVE")
        cur.execute("START SLAVE UNTIL master_gtid_pos = %s", (gtid,))
        deadline = time.monotonic() + timeout
        while True:
            cur.execute("SHOW SLAVE STATUS")
            cols = [d[0] for d in cur.description]
            status = dict(zip(cols, cur.fetchone(), strict=True))
            assert not status["Last_SQL_Error"], status["Last_SQL_Error"]
            if status["Slave_SQL_Running"] == "No":
                break
            assert time.monotonic() < deadline, f"{node} did not reach {gtid}"
            time.sleep(0.05)
        cur.execute("SELECT @@gtid_slave_pos")
        assert cur.fetchone()[0] == gtid, f"{node} stopped elsewhere than {gtid}"


class Writer:
    """Inserts and updates rows of ``database.t`` on the primary until stopped."""

    def __init__(self, sandbox: SandboxHandle, database: str) -> None:
        self.sandbox = sandbox
        self.database = database
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.error is None, self.error

    def _run(self) -> None:
        try:
            with self.sandbox.connect() as conn, conn.cursor() as cur:
                n = 0
                while not self._stop.is_set():
                    n += 1
                    cur.execute(f"INSERT INTO {self.database}.t (v, n) VALUES ('w', %s)", (n,))
                    cur.execute(f"UPDATE {self.database}.t SET n = n + 1 WHERE id = %s", (n * 7,))
                    self.writes += 1
                    time.sleep(0.002)
        except BaseException as exc:  # reported by __exit__
            self.error = exc
