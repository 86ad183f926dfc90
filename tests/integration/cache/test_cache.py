"""``datatier cache``: warm, copy and stats against the sandbox's real MariaDB replicas and
real memcached processes (own nodes per test, so restarts do not disturb the sandbox)."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import pickle
import shutil
import subprocess
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier import cli as cli_module
from datatier.cache.census import shortfall, take_census
from datatier.cache.copy import CacheCopier, CopyPass, CopyReport
from datatier.cache.protocol import MemcachedNode, NodeUnavailable, StoreBatch, StoreItem
from datatier.cache.source import heartbeat_running
from datatier.cache.writer import CacheWriter, WriteOutcome
from datatier.mysql.connection import endpoint
from datatier.mysql.heartbeat import HeartbeatWriter
from tests.integration.conftest import SandboxHandle, sql, unavailable, wait_for

pytestmark = pytest.mark.integration

ROWS = 300


class Memcached:
    """A memcached process on loopback that a test may stop and start again."""

    def __init__(self, port: int, item_mb: int = 1) -> None:
        self.port = port
        self.item_mb = item_mb
        self.address = f"127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Memcached:
        binary = shutil.which("memcached")
        if binary is None:
            unavailable("memcached is not installed")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "-u", "root", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
             "-m", "64", "-I", f"{self.item_mb}m"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._ready, 10)
        return self

    def _ready(self) -> bool:
        """Our process answers ``stats`` (a port that merely accepts may be someone else's,
        e.g. a memcached left on it); AssertionError at once if it exited (port taken)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"memcached on port {self.port} exited at start-up")
        try:
            return self.stats().get("pid") == str(self.proc.pid)
        except NodeUnavailable:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def node(self) -> MemcachedNode:
        return MemcachedNode(self.address)

    def get(self, key: str) -> bytes | None:
        with self.node() as node:
            found = node.get_many([key.encode()])
        return found[key.encode()][1] if key.encode() in found else None

    def stats(self) -> dict[str, str]:
        with self.node() as node:
            return node.stats()

    def exptimes(self, wanted: Collection[bytes] = ()) -> dict[bytes, int]:
        """Every key's expiry, by ``lru_crawler metadump``. The crawler walks LRUs that
        memcached's maintainer thread is relinking and can miss a key now and then (seen
        on a slow machine: a key just read back was not in the dump), so the dump is taken
        again, for up to 5 s, until every ``wanted`` key is in it."""
        deadline = time.monotonic() + 5
        while True:
            with self.node() as node:
                found = {e.key: e.exp for e in node.metadump()}
            if all(k in found for k in wanted) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


@pytest.fixture
def mc(test_port_base: int) -> Iterator[Memcached]:
    node = Memcached(test_port_base + 50).start()
    yield node
    node.stop()


@pytest.fixture
def mc2(test_port_base: int) -> Iterator[Memcached]:
    node = Memcached(test_port_base + 51).start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def games(sandbox: SandboxHandle) -> SandboxHandle:
    """``games.game`` (every awkward type) and ``games.player``, replicated."""
    sql(sandbox, "primary", "DROP DATABASE IF EXISTS games")
    sql(sandbox, "primary", "CREATE DATABASE games CHARACTER SET utf8mb4")
    sql(
        sandbox,
        "primary",
        "CREATE TABLE games.game (id INT PRIMARY KEY, title VARCHAR(80), plays INT, "
        "price DECIMAL(8,2), released DATETIME, genre VARCHAR(20), body LONGTEXT)",
    )
    sql(
        sandbox,
        "primary",
        f"INSERT INTO games.game SELECT seq, CONCAT('Game ', seq, ' ☃'), seq * 7 % 1000, "
        f"seq / 4, '2020-01-01' + INTERVAL seq HOUR, ELT(1 + seq % 3, 'rpg', 'fps', 'puzzle'), "
        f"'short' FROM games.seq_1_to_{ROWS}",
    )
    sql(
        sandbox,
        "primary",
        "CREATE TABLE games.player (id INT PRIMARY KEY, name VARCHAR(40), level INT)",
    )
    sql(
        sandbox,
        "primary",
        "INSERT INTO games.player SELECT seq, CONCAT('p', seq), seq % 60 FROM games.seq_1_to_50",
    )
    sandbox.wait_replicated()
    return sandbox


@pytest.fixture
def sets_dir(games: SandboxHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATATIER_CONFIG", str(games.config_path))
    monkeypatch.setenv("DATATIER_CACHE__WARM_SETS_DIR", str(tmp_path))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    """Run the CLI; (exit code, parsed JSON stdout or text, stderr)."""
    code = cli_module.main(list(args))
    out, err = capsys.readouterr()
    try:
        return code, json.loads(out), err
    except json.JSONDecodeError:
        return code, out, err


GAMES = """
description = "game pages"
[queries.top]
sql = "SELECT id, title, plays, price, released FROM games.game WHERE genre = %(genre)s ORDER BY id"
params_sql = "SELECT DISTINCT genre FROM games.game ORDER BY genre"
key = "games:q:{md5}"
ttl = 600
ttl_jitter = 0.1

[queries.players]
mode = "row"
sql = "SELECT id, name, level FROM games.player ORDER BY id"
key = "player:{id}"
serializer = "pickle"
pickle_protocol = 4
ttl = 0
"""


def expected_md5(sql_text: str, params: dict[str, Any]) -> str:
    """The documented key digest, computed here independently of datatier."""
    normalized = " ".join(sql_text.split()).rstrip(";").strip()
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.md5(f"{normalized}\n{canonical}".encode(), usedforsecurity=False).hexdigest()


def query_rows(sandbox: SandboxHandle, statement: str, args: Any = None) -> list[Any]:
    with sandbox.connect("replica1") as conn, conn.cursor() as cur:
        cur.execute(statement, args)
        return list(cur.fetchall())


def test_warm_writes_what_the_app_would_cache(
    sets_dir: Path, mc: Memcached, games: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    (sets_dir / "games.toml").write_text(GAMES)
    started = int(time.time())
    code, report, err = run(capsys, "cache", "warm", "games", "--server", mc.address, "--json")
    assert code == 0, err
    assert report["source"].startswith("replica1")  # a replica, never the primary by default
    assert report["keys_written"] == 3 + 50 and report["failed"] == 0

    top_sql = GAMES.split('sql = "')[1].split('"')[0]
    for genre in ("fps", "puzzle", "rpg"):
        value = mc.get(f"games:q:{expected_md5(top_sql, {'genre': genre})}")
        assert value is not None, genre
        rows = query_rows(
            games,
            "SELECT id, title, plays, price, released FROM games.game WHERE genre = %s ORDER BY id",
            (genre,),
        )
        assert json.loads(value) == [
            {
                "id": r[0],
                "title": r[1],
                "plays": r[2],
                "price": str(r[3]),
                "released": r[4].isoformat(),
            }
            for r in rows
        ]
    player = mc.get("player:7")
    assert player is not None
    assert pickle.loads(player) == {"id": 7, "name": "p7", "level": 7}
    assert player[1] == 4  # pickle protocol 4 as configured

    exps = mc.exptimes()
    for key, exp in exps.items():
        if key.startswith(b"games:q:"):  # 600 s +/- 10 %
            assert started + 540 - 2 <= exp <= started + 660 + 2, (key, exp)
        else:
            assert exp == -1, key  # ttl = 0: no expiry

    # A second run skips what is cached; --overwrite replaces
    with mc.node() as node:
        node.store_many([StoreItem(b"player:7", b"stale")])
    code, again, _ = run(capsys, "cache", "warm", "games", "--server", mc.address, "--json")
    assert code == 0
    assert again["keys_written"] == 0 and again["skipped_present"] == 53
    assert mc.get("player:7") == b"stale"
    code, over, _ = run(
        capsys, "cache", "warm", "games", "--server", mc.address, "--overwrite", "--json"
    )
    assert code == 0 and over["keys_written"] == 53
    assert pickle.loads(mc.get("player:7") or b"") == {
        "id": 7,
        "name": "p7",
        "level": 7,
    }


def test_pickle_keeps_driver_types(
    sets_dir: Path, mc: Memcached, capsys: pytest.CaptureFixture[str]
) -> None:
    (sets_dir / "typed.toml").write_text(
        """
[queries.g]
mode = "row"
sql = "SELECT id, price, released FROM games.game WHERE id <= 3"
key = "typed:{id}"
serializer = "pickle"
"""
    )
    code, _, err = run(capsys, "cache", "warm", "typed", "--server", mc.address)
    assert code == 0, err
    assert pickle.loads(mc.get("typed:2") or b"") == {
        "id": 2,
        "price": decimal.Decimal("0.50"),
        "released": dt.datetime(2020, 1, 1, 2, 0),
    }


def test_dry_run_lists_keys_and_writes_nothing(
    sets_dir: Path, mc: Memcached, capsys: pytest.CaptureFixture[str]
) -> None:
    (sets_dir / "games.toml").write_text(GAMES)
    before = mc.stats()
    code, out, err = run(capsys, "cache", "warm", "games", "--server", mc.address, "--dry-run")
    assert code == 0, err
    assert isinstance(out, str)
    lines = [line for line in out.splitlines() if line.startswith(("top\t", "players\t"))]
    assert len(lines) == 53
    assert any(line.startswith("players\tplayer:50\t") for line in lines)
    assert "would write 53 keys" in out
    after = mc.stats()
    assert after["curr_items"] == before["curr_items"] == "0"
    assert after["cmd_set"] == before["cmd_set"]

    code, doc, _ = run(
        capsys, "cache", "warm", "games", "--server", mc.address, "--dry-run", "--json"
    )
    assert code == 0 and doc["planned"] == 53 and doc["keys_written"] == 0
    assert {p["query"] for p in doc["planned_keys"]} == {"top", "players"}
    assert mc.stats()["curr_items"] == "0"


def test_one_bad_query_does_not_stop_the_others(
    sets_dir: Path, mc: Memcached, capsys: pytest.CaptureFixture[str]
) -> None:
    (sets_dir / "mixed.toml").write_text(
        """
[queries.broken]
mode = "row"
sql = "SELECT id, no_such_column FROM games.game"
key = "b:{id}"

[queries.fine]
mode = "row"
sql = "SELECT id, name FROM games.player"
key = "fine:{id}"
"""
    )
    code, _, err = run(capsys, "cache", "warm", "mixed", "--server", mc.address)
    assert code == 1
    assert "query broken: MySQL error 1054" in err and "no_such_column" in err
    assert mc.get("fine:50") is not None
    assert mc.stats()["curr_items"] == "50"


def test_bad_keys_are_rejected_naming_the_query(
    sets_dir: Path, mc: Memcached, capsys: pytest.CaptureFixture[str]
) -> None:
    (sets_dir / "keys.toml").write_text(
        """
[queries.spaced]
mode = "row"
sql = "SELECT id, CONCAT('a b', id) AS k FROM games.player WHERE id <= 3"
key = "{k}"

[queries.long]
mode = "row"
sql = "SELECT id, REPEAT('x', 260) AS k FROM games.player WHERE id <= 2"
key = "{k}"

[queries.ok]
mode = "row"
sql = "SELECT id FROM games.player WHERE id <= 4"
key = "ok:{id}"

[queries.unknown_field]
mode = "row"
sql = "SELECT id FROM games.player WHERE id <= 4"
key = "x:{nope}"
"""
    )
    code, report, err = run(capsys, "cache", "warm", "keys", "--server", mc.address, "--json")
    assert code == 1
    by_name = {q["name"]: q for q in report["queries"]}
    assert by_name["spaced"]["failed"] == 3
    assert (
        "query spaced: key 'a b1' rejected: the key contains whitespace"
        in (by_name["spaced"]["key_errors"][0])
    )
    assert by_name["long"]["failed"] == 2
    assert "query long" in by_name["long"]["key_errors"][0]
    assert "260 bytes" in by_name["long"]["key_errors"][0]
    assert "{nope}" in by_name["unknown_field"]["error"]
    assert by_name["ok"]["keys_written"] == 4
    assert mc.stats()["curr_items"] == "4"
    assert "spaced" in err and "long" in err


def test_values_over_the_item_limit_are_skipped_and_counted(
    sets_dir: Path, mc: Memcached, games: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    sql(games, "primary", "UPDATE games.game SET body = REPEAT('y', 1100000) WHERE id = 5")
    games.wait_replicated()
    try:
        (sets_dir / "big.toml").write_text(
            """
[queries.bodies]
mode = "row"
sql = "SELECT id, body AS value FROM games.game WHERE id <= 10"
key = "body:{id}"
serializer = "raw"
"""
        )
        code, report, err = run(capsys, "cache", "warm", "big", "--server", mc.address, "--json")
        assert code == 0, err
        assert report["skipped_too_large"] == 1 and report["keys_written"] == 9
        assert mc.get("body:5") is None and mc.get("body:6") == b"short"
    finally:
        sql(games, "primary", "UPDATE games.game SET body = 'short' WHERE id = 5")
        games.wait_replicated()


def test_memcached_down_at_start_exits_3(
    sets_dir: Path, test_port_base: int, capsys: pytest.CaptureFixture[str]
) -> None:
    (sets_dir / "games.toml").write_text(GAMES)
    code, _, err = run(
        capsys, "cache", "warm", "games", "--server", f"127.0.0.1:{test_port_base + 59}"
    )
    assert code == 3
    assert f"memcached 127.0.0.1:{test_port_base + 59}" in err


def _restart_later(
    node: Memcached, monkeypatch: pytest.MonkeyPatch, after_items: int, down_for: float
) -> threading.Thread:
    """Restart ``node`` once the run's writer has had ``after_items`` keys acknowledged.

    The restart falls between two writes: the write that crosses ``after_items`` returns
    only after ``node`` is killed, so every key acknowledged before is gone for certain and
    the next write meets the restart. (Counting items on the server raced: under load the
    writer merges queued batches, so the first write, with ``slow:1``, could hold 40 keys and
    be killed before its replies were read; it was then retried whole on the new process.)
    ``CacheWriter.write`` is wrapped, not replaced: every write still goes to ``node``."""
    acknowledged = threading.Event()
    killed = threading.Event()
    write = CacheWriter.write
    stored = 0

    def counting(writer: CacheWriter, batch: StoreBatch, overwrite: bool) -> WriteOutcome:
        nonlocal stored
        outcome = write(writer, batch, overwrite)
        stored += outcome.stored
        if stored >= after_items and not acknowledged.is_set():
            acknowledged.set()
            killed.wait(30)
        return outcome

    monkeypatch.setattr(CacheWriter, "write", counting)

    def bounce() -> None:
        try:
            if not acknowledged.wait(30):
                return  # never reached: the test's restart assertions fail
            node.stop()
        finally:
            killed.set()
        time.sleep(down_for)
        node.start()

    thread = threading.Thread(target=bounce)
    thread.start()
    return thread


SLOW = """
batch_size = 20
[queries.games]
mode = "row"
sql = "SELECT id, title FROM games.game ORDER BY id"
key = "slow:{id}"
"""


def test_memcached_restart_mid_warm_continue(
    sets_dir: Path,
    mc: Memcached,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (sets_dir / "slow.toml").write_text(SLOW)
    bouncer = _restart_later(mc, monkeypatch, after_items=40, down_for=0.5)
    code, report, err = run(
        capsys, "cache", "warm", "slow", "--server", mc.address, "--rate", "100", "--json"
    )
    bouncer.join()
    assert report["restarts"] == [mc.address]
    assert report["memcached_errors"] >= 1
    assert report["keys_written"] == ROWS
    # keys written before the restart are gone; the rest are there
    assert mc.get(f"slow:{ROWS}") is not None
    assert mc.get("slow:1") is None
    remaining = int(mc.stats()["curr_items"])
    assert 0 < remaining < ROWS
    # Reproduction: this exited 0 and counted every key as written while only `remaining`
    # were left. The report counts the lost keys exactly, and the warm failed (exit 1).
    assert report["keys_lost"] == ROWS - remaining > 0, report
    assert report["keys_lost_by_node"] == {mc.address: ROWS - remaining}
    assert code == 1, err
    assert f"{ROWS - remaining} of the {ROWS} keys written were lost" in err


def test_memcached_restart_mid_warm_stop(
    sets_dir: Path,
    mc: Memcached,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (sets_dir / "slow.toml").write_text(SLOW)
    bouncer = _restart_later(mc, monkeypatch, after_items=40, down_for=0.3)
    code, report, err = run(
        capsys,
        "cache", "warm", "slow", "--server", mc.address, "--rate", "100",
        "--on-error", "stop", "--json",
    )  # fmt: skip
    bouncer.join()
    assert code == 3
    assert report["stopped"] and mc.address in report["stopped"]
    assert 0 < report["keys_written"] < ROWS
    assert "warm stopped" in err
    assert mc.stats()["curr_items"] == "0"  # restarted, and nothing written since
    assert report["keys_lost"] == 0  # the restart was not ridden out, so not seen


def test_lagging_replica_is_refused_or_warned(
    sets_dir: Path, mc: Memcached, games: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    (sets_dir / "games.toml").write_text(GAMES)
    sql(games, "replica2", "STOP SLAVE SQL_THREAD")
    try:
        code, _, err = run(
            capsys, "cache", "warm", "games", "--server", mc.address, "--node", "replica2"
        )
        assert code == 5
        assert "replica2 lag unknown (sql thread stopped)" in err
        assert mc.stats()["curr_items"] == "0"
        code, report, err = run(
            capsys,
            "cache", "warm", "games", "--server", mc.address, "--node", "replica2",
            "--on-lag", "warn", "--json",
        )  # fmt: skip
        assert code == 0, err
        assert "sql thread stopped" in report["warning"]
        assert report["keys_written"] == 53
    finally:
        sql(games, "replica2", "START SLAVE SQL_THREAD")


def test_heartbeat_lag_over_the_threshold_is_refused(
    sets_dir: Path, mc: Memcached, games: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `replication heartbeat` running, lag is the heartbeat's (a few ms here, never
    0): --max-lag 0 refuses, a generous threshold warms."""
    (sets_dir / "games.toml").write_text(GAMES)
    writer = HeartbeatWriter(endpoint(games.config.mysql, "primary"), interval=0.05).start()
    try:
        wait_for(lambda: heartbeat_running(endpoint(games.config.mysql, "primary")), 10)
        code, _, err = run(
            capsys, "cache", "warm", "games", "--server", mc.address, "--max-lag", "0"
        )
        assert code == 5 and "(heartbeat) is over --max-lag 0 s" in err
        assert mc.stats()["curr_items"] == "0"
        code, report, err = run(
            capsys, "cache", "warm", "games", "--server", mc.address, "--max-lag", "5", "--json"
        )
        assert code == 0, err
        assert report["lag_method"] == "heartbeat" and 0 < report["lag"] < 5
    finally:
        writer.stop()


def test_primary_only_when_allowed(
    sets_dir: Path, mc: Memcached, capsys: pytest.CaptureFixture[str]
) -> None:
    (sets_dir / "games.toml").write_text(GAMES)
    code, _, err = run(
        capsys, "cache", "warm", "games", "--server", mc.address, "--node", "primary"
    )
    assert code == 2 and "primary is the primary" in err and "--allow-primary" in err
    assert mc.stats()["curr_items"] == "0"
    code, report, _ = run(
        capsys,
        "cache", "warm", "games", "--server", mc.address, "--node", "primary",
        "--allow-primary", "--json",
    )  # fmt: skip
    assert code == 0 and report["source"].startswith("primary")


def test_unknown_set_and_query(sets_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (sets_dir / "games.toml").write_text(GAMES)
    code, _, err = run(capsys, "cache", "warm", "nope")
    assert code == 2 and "no warm set 'nope' (known: games)" in err
    code, _, err = run(capsys, "cache", "warm", "games", "--query", "nope")
    assert code == 2 and "has no query nope" in err


def test_copy_keeps_values_flags_and_ttls(
    mc: Memcached, mc2: Memcached, sets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    forty_days = 40 * 24 * 3600
    now = int(time.time())
    with mc.node() as node:
        answers = node.store_many(
            [
                StoreItem(b"app:plain", b"v1"),
                StoreItem(b"app:flags", b"\x80\x04K\x01.", flags=1, exptime=300),
                StoreItem(b"app:long", b"v3", exptime=now + forty_days),
                *[StoreItem(b"app:n%d" % i, b"x" * i) for i in range(200)],
                StoreItem(b"other:1", b"no"),
            ]
        )
        assert set(answers) == {b"STORED"}
    with mc2.node() as node:
        node.store_many([StoreItem(b"app:plain", b"target keeps this")])

    code, report, err = run(
        capsys, "cache", "copy", "--from", mc.address, "--to", mc2.address,
        "--match", "app:", "--batch-size", "50", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert report["matched"] == 203 and report["scanned"] == 204
    assert report["copied"] == 202 and report["skipped_present"] == 1
    # the source's item count, checked against the crawler's dump
    assert report["source_items_before"] == report["source_items_after"] == 204
    assert report["missed"] == 0 and report["unlisted"] <= report["recovered"]
    with mc2.node() as node:
        got = node.get_many([b"app:plain", b"app:flags", b"app:n199", b"other:1"])
    assert got[b"app:plain"] == (0, b"target keeps this")
    assert got[b"app:flags"] == (1, b"\x80\x04K\x01.")
    assert got[b"app:n199"] == (0, b"x" * 199)
    assert b"other:1" not in got
    exps = mc2.exptimes([b"app:flags", b"app:long", b"app:n5"])
    assert now + 295 <= exps[b"app:flags"] <= now + 302
    assert abs(exps[b"app:long"] - (now + forty_days)) <= 2
    assert exps[b"app:n5"] == -1


def test_second_pass_copies_only_the_keys_the_target_lacks(mc: Memcached, mc2: Memcached) -> None:
    """The pass a copy runs when the crawler listed fewer keys than the source held: here
    the target lacks 10 of the source's 100 keys (as if the first pass had missed them)
    and holds 5 with other values; exactly the 10 are fetched and added."""
    with mc.node() as node:
        node.store_many([StoreItem(b"k:%d" % i, b"src%d" % i, flags=3) for i in range(100)])
    with mc2.node() as node:
        node.store_many([StoreItem(b"k:%d" % i, b"src%d" % i, flags=3) for i in range(85)])
        node.store_many([StoreItem(b"k:%d" % i, b"mine") for i in range(85, 90)])
    copier = CacheCopier(mc.address, mc2.address, batch_size=7)
    writer = CacheWriter([mc2.address])
    writer.open()
    report = CopyReport(mc.address, mc2.address, None)
    with mc.node() as dumper, mc.node() as reader, mc2.node() as target:
        CopyPass(copier, dumper, reader, writer, (0, 0)).run(report, target)
    writer.close()
    assert (report.scanned, report.copied, report.skipped_present) == (100, 10, 90)
    with mc2.node() as node:
        got = node.get_many([b"k:%d" % i for i in range(100)])
        assert node.present([b"k:1", b"nope", b"k:99"]) == [True, False, True]
    assert len(got) == 100
    assert got[b"k:95"] == (3, b"src95") and got[b"k:86"] == (0, b"mine")


def test_census_counts_live_items_only(mc: Memcached) -> None:
    """Expired items stay in curr_items until the crawler frees them, while the dump skips
    them: the census frees them first, so they do not read as keys the dump missed."""
    with mc.node() as node:
        node.store_many([StoreItem(b"short:%d" % i, b"v", exptime=1) for i in range(20)])
        node.store_many([StoreItem(b"long:%d" % i, b"v") for i in range(30)])
        time.sleep(2.2)
        census = take_census(node)
        assert census.items == 30
        assert shortfall(census, take_census(node), len(list(node.metadump()))) == (0, False)


def test_copy_counts_values_the_target_cannot_hold(
    test_port_base: int, mc: Memcached, sets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = Memcached(test_port_base + 52, item_mb=2).start()
    try:
        with big.node() as node:
            node.store_many([StoreItem(b"huge", b"h" * 1_500_000), StoreItem(b"small", b"s")])
        code, report, err = run(
            capsys, "cache", "copy", "--from", big.address, "--to", mc.address, "--json"
        )
        assert code == 0, err
        assert report["too_large"] == 1 and report["copied"] == 1
        assert mc.get("small") == b"s" and mc.get("huge") is None
    finally:
        big.stop()


def test_memcached_restart_mid_copy_counts_the_lost_keys(
    mc: Memcached,
    mc2: Memcached,
    sets_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The target restarts mid-copy (ridden out): the keys copied to it before the restart
    are gone, and the copy says so (keys_lost, exit 1) as the warm does."""
    with mc.node() as node:
        node.store_many([StoreItem(b"c:%d" % i, b"v%d" % i) for i in range(ROWS)])
    bouncer = _restart_later(mc2, monkeypatch, after_items=40, down_for=0.5)
    code, report, err = run(
        capsys, "cache", "copy", "--from", mc.address, "--to", mc2.address,
        "--batch-size", "20", "--rate", "100", "--json",
    )  # fmt: skip
    bouncer.join()
    assert report["restarts"] == [mc2.address]
    assert report["memcached_errors"] >= 1
    assert report["copied"] == ROWS
    remaining = int(mc2.stats()["curr_items"])
    assert 0 < remaining < ROWS
    # Reproduction: this exited 0 with every key counted as copied while only `remaining`
    # were left on the target.
    assert report["keys_lost"] == ROWS - remaining > 0, report
    assert report["keys_lost_by_node"] == {mc2.address: ROWS - remaining}
    assert code == 1, err
    assert f"{ROWS - remaining} of the {ROWS} keys copied were lost" in err


def test_copy_bad_input(capsys: pytest.CaptureFixture[str], mc: Memcached) -> None:
    code, _, err = run(capsys, "cache", "copy", "--from", "nohost", "--to", mc.address)
    assert code == 2 and "is not HOST:PORT" in err
    code, _, err = run(capsys, "cache", "copy", "--from", mc.address, "--to", mc.address)
    assert code == 2 and "same node" in err


def test_stats(
    mc: Memcached, mc2: Memcached, sets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with mc.node() as node:
        node.store_many([StoreItem(b"k1", b"v"), StoreItem(b"k2", b"v")])
        node.get_many([b"k1", b"k2", b"k3", b"k4"])
    code, doc, err = run(
        capsys, "cache", "stats", "--server", mc.address, "--server", mc2.address, "--json"
    )
    assert code == 0, err
    assert doc["ok"] is True and doc["up"] == 2 and doc["down"] == 0
    nodes = doc["nodes"]
    first = nodes[0]
    assert first["items"] == 2 and first["get_hits"] == 2 and first["get_misses"] == 2
    assert first["hit_ratio"] == 0.5 and first["limit_bytes"] == 64 * 1024 * 1024
    assert nodes[1]["items"] == 0 and nodes[1]["hit_ratio"] is None
    with pytest.MonkeyPatch.context() as env:  # deprecated: the bare list of before 0.2.0
        env.setenv("DATATIER_JSON_LISTS", "1")
        code, legacy, err = run(capsys, "cache", "stats", "--server", mc.address, "--json")
    assert code == 0 and isinstance(legacy, list) and legacy[0]["address"] == mc.address
    assert legacy[0]["items"] == 2 and "DATATIER_JSON_LISTS=1 is deprecated" in err
    (sets_dir / "games.toml").write_text(GAMES)
    code, sets, _ = run(capsys, "cache", "sets", "--json")
    assert code == 0 and sets["count"] == 1
    assert sets["sets"][0]["name"] == "games" and sets["sets"][0]["description"] == "game pages"
    mc2.stop()
    code, doc, err = run(
        capsys, "cache", "stats", "--server", mc.address, "--server", mc2.address, "--json"
    )
    assert code == 3 and doc["nodes"][1]["up"] is False and "unreachable" in err
    assert doc["ok"] is False and doc["up"] == 1 and doc["down"] == 1
    assert [n["address"] for n in doc["nodes"]] == [mc.address, mc2.address]
