"""Binlog archiving and PITR replay: archive lag under load, archiver RSS, replay speed.

Run: ``.venv/bin/python benchmarks/binlog_pitr.py [--seconds 600] [--rate 1200]``

It brings up a fresh sandbox in ``.sandbox-bench-binlog`` (ports 23160+; MariaDB and S3
only; an earlier one there is removed) and, in one run:

1. starts ``datatier binlog archive`` (a process of its own) and a write load of
   ``--rate`` small transactions per second (``--threads`` writers, mysqlclient) for
   ``--seconds``; every 10th transaction notes its GTID and commit time. A transaction's
   archive lag is the time its segment's index record was published minus its commit time:
   ``archive_lag_p50/p99/max_s``. The archiver's RSS is sampled twice a second:
   ``archiver_peak_rss_mb`` and ``archiver_rss_growth_mb`` (last third's mean minus the
   first third's);
2. downloads the archived segments once, then replays the load's transactions into two
   empty copies of its tables on the primary, not binlogged: the stock pipeline
   (``zstd -dc SEG | mariadb-binlog --start-position=GTID --rewrite-db ... -`` per segment,
   all into one ``mariadb``; ``gtid_strict_mode`` off meanwhile, as its output sets the
   original ``gtid_seq_no``) and datatier's replay (the scan and the apply of ``restore
   --until``), and checks that both copies equal the source. ``replay_ratio`` is stock
   seconds / datatier seconds (above 1: datatier is faster).

Goals (issue 14): lag p99 <= 2 s at >= 1,000 tx/s (with the default ``--max-archive-lag 2``:
partial segments every second); replay ratio >= 1.0; peak RSS <= 100 MB and flat.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import MySQLdb  # noqa: E402
import zstandard  # noqa: E402

from datatier.backup.stores import store_for  # noqa: E402
from datatier.binlog.chain import load_chain  # noqa: E402
from datatier.binlog.replay import Target, apply, scan  # noqa: E402
from datatier.config import Config, load  # noqa: E402
from datatier.mysql.binlog.applier import Applier  # noqa: E402
from datatier.mysql.binlog.positions import Position  # noqa: E402
from datatier.mysql.binlog.selection import Selection  # noqa: E402
from datatier.mysql.binlog.source import charset_names  # noqa: E402
from datatier.mysql.connection import endpoint  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

DB = "binbench"
POLICY = "bench-binlog"
TABLES = (
    "CREATE TABLE {db}.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT, "
    "amount DECIMAL(12,2), note VARCHAR(64), KEY (customer))",
    "CREATE TABLE {db}.stock (id INT PRIMARY KEY, qty INT, updated DATETIME(6))",
)


def connect(config: Config, node: str = "primary") -> Any:
    spec = config.mysql.nodes[node]
    return MySQLdb.connect(
        host=spec.host, port=spec.port, user=config.mysql.user,
        password=config.mysql.password.reveal(), autocommit=True,
    )  # fmt: skip


def run(config: Config, sql: str) -> list[tuple[Any, ...]]:
    conn = connect(config)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return list(cur.fetchall())
    finally:
        conn.close()


def prepare(config: Config, db: str) -> None:
    run(config, f"DROP DATABASE IF EXISTS {db}")
    run(config, f"CREATE DATABASE {db}")
    for statement in TABLES:
        run(config, statement.format(db=db))
    values = ",".join(f"({i}, 100, '2026-01-01 00:00:00')" for i in range(1, 1001))
    run(config, f"INSERT INTO {db}.stock VALUES {values}")


def writer(
    config: Config, rate: float, until: float, notes: list[tuple[int, float]], i: int
) -> int:
    conn = connect(config)
    cur = conn.cursor()
    done = 0
    started = time.monotonic()
    while time.monotonic() < until:
        if i % 3:
            cur.execute(
                f"INSERT INTO {DB}.orders (customer, amount, note) VALUES (%s, %s, 'bench')",
                (done % 997, (done % 10000) / 100),
            )
        else:
            cur.execute(
                f"UPDATE {DB}.stock SET qty = qty + 1, updated = NOW(6) WHERE id = %s",
                (done % 1000 + 1,),
            )
        committed = time.time()
        done += 1
        if done % 10 == 0:
            cur.execute("SELECT @@last_gtid")
            gtid = str(cur.fetchone()[0])
            notes.append((int(gtid.rsplit("-", 1)[1]), committed))
        ahead = done / rate - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
    conn.close()
    return done


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def archive_phase(
    args: argparse.Namespace, config_path: Path, config: Config, env: dict[str, str]
) -> tuple[Position, list[Any]]:
    prepare(config, DB)
    start = Position.parse(str(run(config, "SELECT @@gtid_binlog_pos")[0][0]))
    log = open(Path(args.dir) / "archiver.log", "ab")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "datatier", "--json-logs", "binlog", "archive"],
        env={**os.environ, "DATATIER_CONFIG": str(config_path), **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    samples: list[float] = []
    notes: list[tuple[int, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append(rss_mb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    time.sleep(2.0)
    until = time.monotonic() + args.seconds
    counts: list[int] = []
    threads = [
        threading.Thread(
            target=lambda i=i: counts.append(
                writer(config, args.rate / args.threads, until, notes, i)
            )
        )
        for i in range(args.threads)
    ]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    end = Position.parse(str(run(config, "SELECT @@gtid_binlog_pos")[0][0]))
    store = store_for(config.backup.default_store, config)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        chain = load_chain(store, POLICY, check_objects=False)
        if chain.records and chain.end.covers(end):
            break
        time.sleep(0.5)
    stop.set()
    proc.terminate()
    proc.wait(60)
    chain = load_chain(store, POLICY)
    published = [
        (
            r.last_gtids[0].seq if r.last_gtids else 0,
            datetime.fromisoformat(r.published_at).timestamp(),
        )
        for r in chain.segments
    ]
    lags = []
    for seq, committed in notes:
        at = next((p for last, p in published if last >= seq), None)
        if at is not None:
            lags.append(at - committed)
    lags.sort()
    third = max(1, len(samples) // 3)
    print(f"archive_tx_per_s: {sum(counts) / elapsed:.0f}")
    print(f"archive_segments: {len(chain.segments)}")
    print(f"archive_lag_p50_s: {statistics.median(lags):.3f}")
    print(f"archive_lag_p99_s: {lags[int(len(lags) * 0.99) - 1]:.3f}")
    print(f"archive_lag_max_s: {lags[-1]:.3f}")
    print(f"archiver_peak_rss_mb: {max(samples):.1f}")
    growth = statistics.mean(samples[-third:]) - statistics.mean(samples[:third])
    print(f"archiver_rss_growth_mb: {growth:.1f}")
    return start, [r for r in chain.segments if not start.covers(r.gtid_end)]


def checksum(config: Config, db: str) -> list[Any]:
    return [run(config, f"CHECKSUM TABLE {db}.{t}")[0][1] for t in ("orders", "stock")]


def replay_phase(config: Config, start: Position, segments: list[Any], tmp: Path) -> None:
    store = store_for(config.backup.default_store, config)
    files = []
    for record in segments:
        path = tmp / record.key.rsplit("/", 1)[-1]
        path.write_bytes(store.get_bytes(record.key))
        files.append(path)
    raw_mb = sum(r.raw_size for r in segments) / (1 << 20)
    transactions = sum(r.transactions for r in segments)
    ep = endpoint(config.mysql, "primary")
    cnf = tmp / "client.cnf"
    cnf.write_text(
        f"[client]\nhost={ep.host}\nport={ep.port}\nuser={ep.user}\npassword={ep.password}\n"
    )
    cnf.chmod(0o600)
    # The stock pipeline.
    prepare(config, "bin_stock")
    decode = " ; ".join(
        f"zstd -dcq {f} | mariadb-binlog --no-defaults --start-position={start} "
        f"--rewrite-db='{DB}->bin_stock' -"
        for f in files
    )
    # The stock output sets each transaction's original gtid_seq_no, which strict mode
    # refuses on a server that is past them: off for the stock run (datatier's needs nothing).
    run(config, "SET GLOBAL gtid_strict_mode = 0")
    try:
        began = time.monotonic()
        subprocess.run(
            f"( {decode} ) | mariadb --defaults-file={cnf} --init-command='SET sql_log_bin=0'",
            shell=True, check=True,
        )  # fmt: skip
        stock = time.monotonic() - began
    finally:
        run(config, "SET GLOBAL gtid_strict_mode = 1")
    # datatier's replay: the scan and the apply of a restore, from the same files.
    prepare(config, "bin_dt")
    paths = {r.key: p for r, p in zip(segments, files, strict=True)}

    def loader(record: Any) -> bytes:
        return (
            zstandard.ZstdDecompressor().decompressobj().decompress(paths[record.key].read_bytes())
        )

    selection = Selection(databases=frozenset({DB}), renames={DB: "bin_dt"})
    began = time.monotonic()
    charsets = charset_names(ep)

    def charset(c: int) -> str:
        return charsets.get(c, "utf8mb4")

    scan(segments, loader, start, Target(), selection, charset)
    apply(segments, loader, start, Target(), selection, Applier(ep, binlog=False), charset)
    ours = time.monotonic() - began
    source = checksum(config, DB)
    assert checksum(config, "bin_stock") == source, "the stock replay differs from the source"
    assert checksum(config, "bin_dt") == source, "datatier's replay differs from the source"
    print(f"replay_transactions: {transactions}")
    print(f"replay_binlog_mb: {raw_mb:.1f}")
    print(f"replay_stock_s: {stock:.2f}")
    print(f"replay_datatier_s: {ours:.2f}")
    print(f"replay_ratio: {stock / ours:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-bench-binlog"))
    parser.add_argument("--port-base", type=int, default=23160)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=1200.0, help="transactions per second")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-archive-lag", type=float, default=2.0)
    args = parser.parse_args()
    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.down(purge=True)  # a fresh binlog: the measured range is this run's load only
    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up(skip=("memcached", "memcached2", "mongo"))
    config_path = Path(args.dir) / "datatier.toml"
    (Path(args.dir) / "backups" / f"{POLICY}.toml").write_text(
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )
    env = {
        "DATATIER_BINLOG__POLICY": POLICY,
        "DATATIER_BINLOG__MAX_ARCHIVE_LAG": str(args.max_archive_lag),
    }
    config = load(str(config_path), environ=env).config
    store = store_for(config.backup.default_store, config)
    store.delete([o.key for o in store.list_objects(f"{POLICY}/")])  # a fresh archive
    print(f"max_archive_lag_s: {args.max_archive_lag}")
    start, segments = archive_phase(args, config_path, config, env)
    with tempfile.TemporaryDirectory(prefix="binbench-") as tmp:
        replay_phase(config, start, segments, Path(tmp))
    print(f"sandbox: {args.dir} (stop it with: datatier sandbox down --dir {args.dir})")


if __name__ == "__main__":
    main()
