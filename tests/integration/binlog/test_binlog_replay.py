"""Replay of statements whose row events outgrow one BINLOG statement (real MariaDB, S3).

A single INSERT of 120,000 rows and an UPDATE of half of them are one statement each: their
row events are far larger than the replay's BINLOG statement limit (lowered here to 256 KiB
so the test stays small). Every row must arrive: the restored copy's checksum equals the
source's. (Regression: pieces after the first were sent without their table map, and the
server skipped their rows without an error.)
"""

from __future__ import annotations

import zstandard

from datatier.binlog.chain import load_chain
from datatier.binlog.replay import Target, apply, scan
from datatier.mysql.binlog.applier import Applier
from datatier.mysql.binlog.positions import Position
from datatier.mysql.binlog.selection import Selection
from datatier.mysql.connection import endpoint
from tests.integration.binlog_support import ArchiverProcess, fresh_policy, query
from tests.integration.conftest import SandboxHandle

DB = "bigrow_db"
POLICY = "bigrow"
ENV = {"DATATIER_BINLOG__POLICY": POLICY}


def test_large_statements_are_replayed_whole(sandbox: SandboxHandle, tmp_path: object) -> None:
    config = sandbox.config
    loaded, _, store = fresh_policy(sandbox, POLICY, DB, ENV, "bigrow_r")
    query(config, "primary", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, pad VARCHAR(100))")
    query(config, "primary", f"CREATE TABLE {DB}.u (id INT PRIMARY KEY, n INT)")
    start = Position.parse(str(query(config, "primary", "SELECT @@gtid_binlog_pos")[0][0]))
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION max_recursive_iterations = 1000000")
        cur.execute(
            f"INSERT INTO {DB}.t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 "
            "FROM s WHERE n < 120000) SELECT n, REPEAT('x', 60) FROM s"
        )
        cur.execute(f"INSERT INTO {DB}.u SELECT id, id FROM {DB}.t WHERE id <= 30000")
        # one statement, two tables: both tables' row events in one statement
        cur.execute(
            f"UPDATE {DB}.t JOIN {DB}.u USING (id) SET t.pad = REPEAT('y', 70), u.n = u.n + 1 "
            "WHERE t.id % 2 = 0"
        )
    archiver = ArchiverProcess(sandbox.config_path, ENV, sandbox.root / "bigrow.log")
    result = archiver.once()
    assert result.returncode == 0, result.stderr
    segments = load_chain(store, POLICY).segments
    selection = Selection(databases=frozenset({DB}), renames={DB: "bigrow_r"})

    def loader(record: object) -> bytes:
        key = record.key  # type: ignore[attr-defined]
        return zstandard.ZstdDecompressor().decompressobj().decompress(store.get_bytes(key))

    query(config, "primary", "CREATE DATABASE bigrow_r")
    query(config, "primary", f"CREATE TABLE bigrow_r.t LIKE {DB}.t")
    query(config, "primary", f"CREATE TABLE bigrow_r.u LIKE {DB}.u")
    limit = 256 * 1024
    scanned = scan(
        segments, loader, start, Target(), selection, lambda _id: "utf8mb4", max_binlog=limit
    )
    assert scanned.transactions == 3
    ep = endpoint(loaded.config.mysql, "primary")
    applied = apply(
        segments,
        loader,
        start,
        Target(),
        selection,
        Applier(ep),
        lambda _: "utf8mb4",
        max_binlog=limit,
    )
    assert applied.transactions == 3 and applied.round_trips > 10  # split into many pieces
    for table in ("t", "u"):
        source = query(config, "primary", f"CHECKSUM TABLE {DB}.{table}")[0][1]
        copy = query(config, "primary", f"CHECKSUM TABLE bigrow_r.{table}")[0][1]
        assert copy == source, f"{table}: rows lost in the replay"
