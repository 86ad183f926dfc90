"""Helpers of the binlog archive and PITR tests: a write load, an archiver process, what
the archive and the server each hold (events and GTIDs), read independently, and the
set-up most PITR tests share (``pitr_window``: a fresh policy, a backup, a noted target,
the archive caught up, the databases dropped afterwards)."""

from __future__ import annotations

import itertools
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pymysql
import pytest
import zstandard

from datatier.backup.manifest import Manifest
from datatier.backup.policy import Policy
from datatier.backup.service import load_policy, run_backup
from datatier.backup.stores import store_for
from datatier.binlog.archiver import Archiver
from datatier.binlog.chain import load_chain
from datatier.binlog.state import read_state
from datatier.cli.progress import Progress
from datatier.config import Config, LoadedConfig, load
from datatier.mysql.binlog import events as ev
from datatier.mysql.binlog.positions import Position
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle, wait_for
from tests.integration.encryption_support import cli
from tests.integration.physical_support import Result

GTID_INFO = re.compile(r"GTID (\d+-\d+-\d+)")


def connect(config: Config, node: str) -> Any:
    spec = config.mysql.nodes[node]
    return pymysql.connect(
        host=spec.host,
        port=spec.port,
        user=config.mysql.user,
        password=config.mysql.password.reveal(),
        autocommit=True,
        connect_timeout=5,
    )


def query(config: Config, node: str, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with connect(config, node) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


class Load:
    """A writer thread on ``database``: inserts, updates and deletes on several tables, a
    multi-statement transaction every few rounds; ``pause``/``resume`` stop it between
    transactions (so a GTID and a time can be noted at a quiet moment)."""

    TABLES = ("orders", "items", "events")

    def __init__(
        self,
        config: Config,
        node: str,
        database: str,
        *,
        rate: float = 200.0,
        tolerate_outages: bool = False,
    ) -> None:
        self.config = config
        self.tolerate_outages = tolerate_outages
        self.outages = 0
        self.node = node
        self.database = database
        self.rate = rate
        self.transactions = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def create(self) -> None:
        db = self.database
        with connect(self.config, self.node) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(
                f"CREATE TABLE {db}.orders (id INT AUTO_INCREMENT PRIMARY KEY, "
                "customer INT, amount DECIMAL(12,2), note VARCHAR(64))"
            )
            cur.execute(
                f"CREATE TABLE {db}.items (id BIGINT PRIMARY KEY, sku VARCHAR(32), qty INT, "
                "price DOUBLE, data BLOB)"
            )
            cur.execute(f"CREATE TABLE {db}.events (k VARCHAR(40), v TEXT, at DATETIME(6))")
            cur.executemany(
                f"INSERT INTO {db}.items VALUES (%s, %s, %s, %s, %s)",
                [(i, f"sku-{i}", i % 7, i / 3, os.urandom(20)) for i in range(1, 201)],
            )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        self._thread.join(timeout=30)
        if self.errors:
            raise self.errors[0]

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._idle.clear()
        self._running.clear()
        self._idle.wait(10)
        try:
            yield
        finally:
            self._running.set()

    def _run(self) -> None:
        rnd = random.Random(7)
        while not self._stop.is_set():
            try:
                self._session(rnd)
            except pymysql.OperationalError as exc:
                if not self.tolerate_outages:
                    self.errors.append(exc)
                    return
                self.outages += 1
                time.sleep(0.3)  # the server restarts: write again once it is back
            except BaseException as exc:  # handed to stop()
                self.errors.append(exc)
                return

    def _session(self, rnd: random.Random) -> None:
        with connect(self.config, self.node) as conn, conn.cursor() as cur:
            while not self._stop.is_set():
                if not self._running.is_set():
                    self._idle.set()
                    self._running.wait()
                    continue
                self._one(cur, rnd, self.database)
                self.transactions += 1
                time.sleep(1 / self.rate)

    def _one(self, cur: Any, rnd: random.Random, db: str) -> None:
        kind = self.transactions % 10
        if kind < 4:
            cur.execute(
                f"INSERT INTO {db}.orders (customer, amount, note) VALUES (%s, %s, %s)",
                (rnd.randint(1, 50), rnd.randint(1, 99999) / 100, f"n{rnd.random()}"),
            )
        elif kind < 6:
            cur.execute(
                f"UPDATE {db}.items SET qty = qty + %s, price = price * 1.01 WHERE id = %s",
                (rnd.randint(-3, 5), rnd.randint(1, 200)),
            )
        elif kind == 6:
            cur.execute(
                f"DELETE FROM {db}.orders WHERE customer = %s LIMIT 1", (rnd.randint(1, 50),)
            )
        elif kind == 7:
            cur.execute(
                f"INSERT INTO {db}.events (k, v, at) VALUES (%s, %s, NOW(6))",
                (f"k{rnd.randint(1, 9)}", "x" * rnd.randint(0, 300)),
            )
        else:  # a multi-statement transaction across tables
            cur.execute("START TRANSACTION")
            cur.execute(
                f"INSERT INTO {db}.orders (customer, amount, note) VALUES (%s, 1.00, 'tx')",
                (rnd.randint(1, 50),),
            )
            cur.execute(
                f"UPDATE {db}.items SET sku = CONCAT(sku, '+') WHERE id = %s",
                (rnd.randint(1, 200),),
            )
            cur.execute(f"DELETE FROM {db}.events WHERE k = %s LIMIT 2", (f"k{rnd.randint(1, 9)}",))
            cur.execute("COMMIT")


class ArchiverProcess:
    """``datatier binlog archive`` as a real process (killable with SIGKILL)."""

    def __init__(self, config_path: Path, env: dict[str, str], log: Path) -> None:
        self.config_path = config_path
        self.env = {**os.environ, "DATATIER_CONFIG": str(config_path), **env}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "datatier", "--json-logs", "binlog", "archive"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill(signal.SIGTERM)

    def once(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "datatier", "binlog", "archive", "--once", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def archived(config: Config, policy: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """(segment records, their events) of ``policy``'s archive: every object downloaded,
    decompressed and split into events: ``{"seq", "server_id", "file", "pos", "end",
    "type", "gtid"}`` (the copied format event of a segment not starting at 4 left out)."""
    store = store_for(config.backup.default_store, config)
    chain = load_chain(store, policy)
    assert not chain.gaps, [g.describe() for g in chain.gaps]
    found: list[dict[str, Any]] = []
    for record in chain.segments:
        assert record.key is not None
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(store.get_bytes(record.key))
        assert raw[:4] == ev.MAGIC
        events = ev.split_events(raw[4:], record.key)
        if record.start_pos != 4:
            events = events[1:]
        for view in events:
            head = ev.header(view)
            gtid = str(ev.gtid_event(bytes(view))[0]) if head.type == ev.GTID else None
            found.append(
                {
                    "seq": record.seq,
                    "server_id": record.server_id,
                    "file": record.file,
                    "pos": head.start,
                    "end": head.log_pos,
                    "type": head.type,
                    "gtid": gtid,
                }
            )
    return chain.segments, found


def server_events(config: Config, node: str) -> dict[str, list[tuple[int, int, str | None]]]:
    """Per binlog file of ``node``: (pos, end, gtid) of every event, from SHOW BINLOG EVENTS."""
    files = [r[0] for r in query(config, node, "SHOW BINARY LOGS")]
    out: dict[str, list[tuple[int, int, str | None]]] = {}
    for name in files:
        rows = query(config, node, f"SHOW BINLOG EVENTS IN '{name}'")
        out[name] = [
            (
                int(r[1]),
                int(r[4]),
                (m.group(1) if (m := GTID_INFO.search(str(r[5]))) and r[2] == "Gtid" else None),
            )
            for r in rows
        ]
    return out


def server_gtids(config: Config, node: str) -> list[str]:
    return [g for events in server_events(config, node).values() for _, _, g in events if g]


def check_segments_match_server(
    config: Config, node: str, server_id: int, segments: list[Any], events: list[dict[str, Any]]
) -> int:
    """Every segment of ``server_id`` holds exactly the server's events of its byte range;
    per file the segments are contiguous. Returns how many events were compared."""
    on_server = server_events(config, node)
    compared = 0
    by_file: dict[str, list[Any]] = {}
    for record in segments:
        if record.server_id == server_id:
            by_file.setdefault(record.file, []).append(record)
    for file, records in by_file.items():
        records.sort(key=lambda r: r.start_pos)
        for before, after in itertools.pairwise(records):
            assert after.start_pos == before.end_pos, (
                f"{file}: hole {before.end_pos}..{after.start_pos}"
            )
        start, end = records[0].start_pos, records[-1].end_pos
        mine = [
            (e["pos"], e["end"], e["gtid"])
            for e in events
            if e["file"] == file and e["server_id"] == server_id
        ]
        theirs = [e for e in on_server[file] if start <= e[0] < end]
        assert mine == theirs, f"{file}: archived events differ from the server's"
        compared += len(mine)
    return compared


def wait_archived(config: Config, policy: str, node: str, timeout: float = 90.0) -> None:
    """Until the archive's end position covers ``node``'s whole GTID position."""
    from datatier.mysql.binlog.positions import Position

    target = Position.parse(str(query(config, node, "SELECT @@gtid_binlog_pos")[0][0]))
    store = store_for(config.backup.default_store, config)

    def done() -> bool:
        chain = load_chain(store, policy, check_objects=False)
        return bool(chain.records) and chain.end.covers(target)

    wait_for(done, timeout, step=0.5)


def checksums(config: Config, node: str, database: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for (table,) in query(
        config,
        node,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
        "AND TABLE_TYPE='BASE TABLE' ORDER BY 1",
        (database,),
    ):
        found[table] = query(config, node, f"CHECKSUM TABLE `{database}`.`{table}` EXTENDED")[0][1]
        found[f"{table}#rows"] = query(
            config, node, f"SELECT COUNT(*) FROM `{database}`.`{table}`"
        )[0][0]
        found[f"{table}#columns"] = [
            r[0] for r in query(
                config, node, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
                "TABLE_SCHEMA=%s AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION", (database, table)
            )
        ]  # fmt: skip
    return found


def until(predicate: Callable[[], bool], timeout: float) -> None:
    wait_for(predicate, timeout, step=0.2)


def binlog_env(policy: str) -> dict[str, str]:
    """The settings every PITR test runs with: ``policy`` owns the binlog archive, and the
    archive counts as lagging after 2 s."""
    return {"DATATIER_BINLOG__POLICY": policy, "DATATIER_BINLOG__MAX_ARCHIVE_LAG": "2"}


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """``env`` in the process environment for this test (CLI calls through ``main``)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def drop_databases(config: Config, *names: str) -> None:
    """Drop each of ``names`` on the primary, if it exists."""
    for name in names:
        query(config, "primary", f"DROP DATABASE IF EXISTS {name}")


def database_rows(sandbox: SandboxHandle, database: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table and view of ``database`` on the primary (exact names, SHOW TABLES)
    with its rows, sorted."""
    found = {}
    for (table,) in query(sandbox.config, "primary", f"SHOW TABLES FROM `{database}`"):
        found[table] = sorted(
            query(sandbox.config, "primary", f"SELECT * FROM `{database}`.`{table}`")
        )
    return found


def fresh_policy(
    sandbox: SandboxHandle,
    policy: str,
    database: str,
    env: dict[str, str],
    *scratch: str,
    text: str | None = None,
) -> tuple[LoadedConfig, Policy, ObjectStore]:
    """Policy ``policy`` (its file's ``text``; by default backing up ``database`` from
    replica1) with nothing stored under it yet (the sandbox is reused), ``database`` created
    empty and the ``scratch`` databases (restore targets) dropped: (the loaded config with
    ``env``, the policy, its store)."""
    sandbox.write_policy(
        policy,
        text or f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{database}"]\n',
    )
    loaded = load(str(sandbox.config_path), environ=env)
    chosen = load_policy(loaded, policy)
    store = store_for(chosen.store_url, loaded.config)
    store.delete([o.key for o in store.list_objects(f"{policy}/")])
    drop_databases(sandbox.config, database, *scratch)
    query(sandbox.config, "primary", f"CREATE DATABASE {database}")
    return loaded, chosen, store


@dataclass
class PitrWindow:
    """A fresh policy on the sandbox and the steps of a point-in-time test: write on the
    primary, back up, note a target, archive the binlog up to now."""

    sandbox: SandboxHandle
    loaded: LoadedConfig
    policy: Policy
    store: ObjectStore
    database: str

    @property
    def config(self) -> Config:
        return self.sandbox.config

    def sql(self, *statements: str) -> None:
        """Each statement on the primary, committed on its own."""
        for sql in statements:
            query(self.config, "primary", sql)

    def backup(self) -> Manifest:
        """A backup of the policy once the replicas (its source is replica1) hold every
        write so far."""
        self.sandbox.wait_replicated(60)
        return run_backup(self.loaded, self.policy)

    @contextmanager
    def session(
        self, database: str | None = None, *, binlog_format: str | None = None, **kw: Any
    ) -> Iterator[Any]:
        """A cursor on the primary (autocommit) whose default database is ``database``
        (the window's by default), logging in ``binlog_format`` if given; ``kw`` go to
        the connection."""
        with self.sandbox.connect("primary", **kw) as conn, conn.cursor() as cur:
            cur.execute(f"USE {database or self.database}")
            if binlog_format:
                cur.execute(f"SET SESSION binlog_format = '{binlog_format}'")
            yield cur

    def gtid(self) -> str:
        """The primary's ``@@gtid_binlog_pos``: an ``--until-gtid`` after every write so far."""
        return str(query(self.config, "primary", "SELECT @@gtid_binlog_pos")[0][0])

    def until_now(self) -> str:
        """An ``--until`` time after every write so far and before any later one; the
        archive, once archived after this returns, reaches past it (~3 s)."""
        time.sleep(2.1)
        moment = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        time.sleep(1.1)
        return moment

    def archive(self, node: str = "primary") -> None:
        """The binlog of ``node`` archived up to now (``binlog archive --once``)."""
        Archiver(self.loaded, self.policy, node=node, once=True).run()


@contextmanager
def pitr_window(
    sandbox: SandboxHandle,
    policy: str,
    database: str,
    *scratch: str,
    monkeypatch: pytest.MonkeyPatch | None = None,
    env: dict[str, str] | None = None,
    text: str | None = None,
) -> Iterator[PitrWindow]:
    """``fresh_policy`` run with ``binlog_env(policy)`` and ``env``, also set (with
    DATATIER_CONFIG) for the test's CLI calls when ``monkeypatch`` is given; ``database``
    and the ``scratch`` databases are dropped when the block ends, and the replicas caught
    up (the next test backs up from replica1)."""
    settings = {**binlog_env(policy), **(env or {})}
    if monkeypatch is not None:
        set_env(monkeypatch, {"DATATIER_CONFIG": str(sandbox.config_path), **settings})
    loaded, chosen, store = fresh_policy(sandbox, policy, database, settings, *scratch, text=text)
    try:
        yield PitrWindow(sandbox, loaded, chosen, store, database)
    finally:
        drop_databases(sandbox.config, database, *scratch)
        sandbox.wait_replicated(60)


@contextmanager
def own_server_policy(
    config_path: Path, policy: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LoadedConfig, Policy, ObjectStore]]:
    """``policy`` of the config at ``config_path`` (an extra server's own), that config and
    ``binlog_env(policy)`` set for the test's CLI calls: (the loaded config, the policy, its
    store), nothing stored under the policy before the block nor after it (the sandbox's S3
    server is shared)."""
    env = binlog_env(policy)
    set_env(monkeypatch, {"DATATIER_CONFIG": str(config_path), **env})
    loaded = load(str(config_path), environ=env)
    chosen = load_policy(loaded, policy)
    store = store_for(chosen.store_url, loaded.config)
    store.delete([o.key for o in store.list_objects(f"{policy}/")])  # a reused sandbox
    try:
        yield loaded, chosen, store
    finally:
        store.delete([o.key for o in store.list_objects(f"{policy}/")])


def replay_progress(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None]]:
    """What ``restore`` will draw on its "replaying the binlog" line, as (done, total)
    pairs: the CLI's progress lines are recorded (a test's stderr is no terminal, where
    they draw nothing)."""
    drawn: list[tuple[int, int | None]] = []

    class Recorded(Progress):
        def set(self, done: int, total: int | None = None) -> None:
            if self.label == "replaying the binlog":
                drawn.append((done, total))
            super().set(done, total)

    monkeypatch.setattr("datatier.cli.restore_cmd.Progress", Recorded)
    return drawn


def assert_replay_progress(drawn: list[tuple[int, int | None]]) -> None:
    """The replay's line went from nothing to all of its bytes, never backwards."""
    assert drawn, "no replay progress"
    total = drawn[0][1]
    assert total and drawn[0] == (0, total), drawn[:3]
    dones = [done for done, _ in drawn]
    assert dones == sorted(dones) and drawn[-1] == (total, total), drawn[-3:]
    assert {t for _, t in drawn} == {total}


def archiver_state(sandbox: SandboxHandle, env: dict[str, str], policy: str) -> dict[str, Any]:
    """The archiver's state (``archiver.json``) of ``policy``'s archive, read with ``env``."""
    loaded = load(str(sandbox.config_path), environ=env)
    return read_state(store_for(loaded.config.backup.default_store, loaded.config), policy)


def archive_has_primary(sandbox: SandboxHandle, env: dict[str, str], policy: str) -> bool:
    """Whether the archiver's state says it published the primary's whole position."""
    ((server,),) = query(sandbox.config, "primary", "SELECT @@gtid_binlog_pos")
    published = Position.parse(str(archiver_state(sandbox, env, policy).get("position") or ""))
    return published.same_state(Position.parse(server))


def wait_said(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (0.1 s steps) until ``predicate()``; AssertionError saying ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def restore_until(
    sandbox: SandboxHandle,
    env: dict[str, str],
    policy: str,
    target: datetime,
    rename: str,
    *extra: str,
) -> Result:
    """``restore --policy P --until TARGET --rename RENAME [EXTRA...]`` in-process (the CLI
    result)."""
    when = target.strftime("%Y-%m-%dT%H:%M:%SZ")
    return cli(
        sandbox.config_path, env, "restore", "--policy", policy, "--until", when,
        "--rename", rename, *extra,
    )  # fmt: skip


def started_query(config: Config, sql: str) -> threading.Thread:
    """``sql`` running on the primary in a thread of its own, already started (join it)."""
    runner = threading.Thread(target=query, args=(config, "primary", sql))
    runner.start()
    return runner
