"""Cache warmer throughput and memory: ``cache warm`` and ``cache copy`` against baselines.

Run: ``.venv/bin/python benchmarks/cache_warm.py [--rows 200000] [--big 1000000]``

It brings up (or reuses) a sandbox in ``.sandbox-cache`` (ports 29460+; S3 and Mongo are
skipped) and starts two memcached nodes of its own (1 GiB each, ports 29490/29491). On the
same data, in one run, it prints ``name: value`` lines:

- ``cache warm`` keys/s for ``--rows`` rows of ``bench.items`` (row mode, JSON, one key per
  row) read from replica1 with the rows already in its buffer pool, as a subprocess (wall
  time includes start-up) and as the report's own duration;
- the baseline: a plain pymemcache ``set_many`` loop (its defaults: noreply, batches of 500)
  over the very same key/value pairs, prepared in memory beforehand; and a bare
  server-side-cursor scan of the same query (the MySQL side's own cost);
- the ratio warm keys/s / baseline keys/s (target >= 0.5), and the CPU seconds of both
  (steadier than wall time on a busy machine; the warm's as its report gives them and for
  the whole process, start-up included);
- ``cache copy`` keys/s of those keys to the second node;
- peak RSS of ``cache warm`` and ``cache copy`` at ``--rows`` and at ``--big`` keys: flat
  means the same few tens of MB at both sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402
import pymysql.cursors  # noqa: E402
from pymemcache.client.base import Client  # noqa: E402

from benchmarks.measure import Run, timed  # noqa: E402
from datatier.cache.protocol import MemcachedNode  # noqa: E402
from datatier.cache.serialize import serializer_for  # noqa: E402
from datatier.config import load  # noqa: E402
from datatier.mysql.connection import endpoint  # noqa: E402
from datatier.mysql.fastreader import RowReader  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

SQL = "SELECT id, name, price, qty FROM bench.items ORDER BY id LIMIT {limit}"
WARM_SET = """
batch_size = 500
[queries.items]
mode = "row"
sql = "{sql}"
key = "item:{{id}}"
serializer = "json"
ttl = 3600
"""


def start_memcached(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("memcached") or "memcached"
    proc = subprocess.Popen(
        [binary, "-u", "root", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with MemcachedNode(f"127.0.0.1:{port}") as node:
                node.stats()
            return proc
        except Exception:
            time.sleep(0.05)
    raise SystemExit(f"memcached on {port} did not start")


def flush(address: str) -> None:
    host, port = address.split(":")
    Client((host, int(port))).flush_all(noreply=False)


def items(address: str) -> int:
    with MemcachedNode(address) as node:
        return int(node.stats()["curr_items"])


def fill_table(conn: Any, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS bench")
        cur.execute(
            "CREATE TABLE IF NOT EXISTS bench.items (id INT PRIMARY KEY, name VARCHAR(40), "
            "price DECIMAL(8,2), qty INT)"
        )
        cur.execute("SELECT COUNT(*) FROM bench.items")
        have = cur.fetchone()[0]
        if have < rows:
            cur.execute(
                f"INSERT INTO bench.items SELECT seq, CONCAT('item ', seq), (seq % 10000) / 100, "
                f"seq % 97 FROM bench.seq_{have + 1}_to_{rows}"
            )


def dt(env: dict[str, str], *args: str) -> Run:
    return timed([str(ROOT / ".venv/bin/datatier"), *args], env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-cache"))
    parser.add_argument("--port-base", type=int, default=29460)
    parser.add_argument("--down", action="store_true", help="Stop the sandbox afterwards.")
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up(skip=("s3", "mongo", "memcached2"))
    config_path = Path(args.dir) / "datatier.toml"
    config = load(str(config_path), environ={}).config
    mc1, mc2 = f"127.0.0.1:{args.port_base + 30}", f"127.0.0.1:{args.port_base + 31}"
    procs = [start_memcached(args.port_base + 30), start_memcached(args.port_base + 31)]
    sets_dir = Path(args.dir) / "warm-sets"
    sets_dir.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        DATATIER_CONFIG=str(config_path),
        DATATIER_CACHE__WARM_SETS_DIR=str(sets_dir),
    )
    user, password = config.mysql.user, config.mysql.password.reveal()
    node = config.mysql.nodes["replica1"]

    def connect(port: int, **kw: Any) -> Any:
        return pymysql.connect(
            host="127.0.0.1", port=port, user=user, password=password, autocommit=True, **kw
        )

    try:
        with connect(config.mysql.nodes["primary"].port) as conn:
            fill_table(conn, max(args.rows, args.big))
        time.sleep(1)
        with connect(node.port) as conn, conn.cursor() as cur:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                cur.execute("SELECT COUNT(*) FROM bench.items")
                if cur.fetchone()[0] >= max(args.rows, args.big):
                    break
                time.sleep(0.5)
            cur.execute("SELECT SUM(LENGTH(name) + qty + price) FROM bench.items")  # warm pool

        results: dict[str, Any] = {}
        for label, n in (("rows", args.rows), ("big", args.big)):
            sql = SQL.format(limit=n)
            (sets_dir / f"bench{n}.toml").write_text(WARM_SET.format(sql=sql))
            flush(mc1)
            run = dt(env, "cache", "warm", f"bench{n}", "--server", mc1, "--json")
            report = json.loads(run.out)
            assert report["keys_written"] == n == items(mc1), report
            flush(mc2)
            copy = dt(env, "cache", "copy", "--from", mc1, "--to", mc2, "--json")
            copied = json.loads(copy.out)
            # metadump walks live LRUs: keys moving between segments meanwhile may be missed
            assert copied["copied"] >= n * 0.999 and copied["copied"] == items(mc2), copied
            results[label] = (n, run, report, copy, copied)

        # Baseline on the --rows data: the same pairs, prepared beforehand, set_many loop.
        n, run, report, copy, copied = results["rows"]
        sql = SQL.format(limit=n)
        ep = endpoint(config.mysql, "replica1")
        with RowReader(ep) as reader:  # the warmer's own reader (mysqlclient)
            started = time.monotonic()
            columns, batches = reader.stream(sql)
            rows = [row for batch in batches for row in batch]
            scan_s = time.monotonic() - started
        ser = serializer_for("json", columns, "dict", 5)
        pairs = {f"item:{r[0]}": ser.encode_row(r) for r in rows}
        host, port = mc1.split(":")
        client = Client((host, int(port)))
        flush(mc1)
        keys = list(pairs)
        # The batches are built before the clock starts (they used to be built inside the
        # timed loop, a few % of the baseline's time charged to it): only set_many is timed.
        chunks = [{k: pairs[k] for k in keys[i : i + 500]} for i in range(0, len(keys), 500)]
        started, cpu_started = time.monotonic(), time.process_time()
        for chunk in chunks:
            client.set_many(chunk, expire=3600)
        base_s = time.monotonic() - started
        base_cpu = time.process_time() - cpu_started
        assert client.get(f"item:{n}") == pairs[f"item:{n}"]

        warm_kps = n / report["seconds"]
        base_kps = n / base_s
        print(f"rows: {n}")
        print(f"bare scan (mysqlclient SSCursor) seconds: {scan_s:.3f}  ({n / scan_s:,.0f} rows/s)")
        print(f"baseline pymemcache set_many keys/s: {base_kps:,.0f}")
        print(f"cache warm keys/s (report): {warm_kps:,.0f}")
        print(f"cache warm keys/s (wall, incl. start-up): {n / run.seconds:,.0f}")
        print(f"ratio warm/baseline (target >= 0.5): {warm_kps / base_kps:.2f}")
        print(f"ratio warm wall/baseline: {(n / run.seconds) / base_kps:.2f}")
        # CPU seconds: steadier than wall time on a busy machine. The warm's (the report's,
        # every thread) include the MySQL reading; the baseline's are set_many's alone.
        print(f"CPU seconds cache warm (report): {report['cpu_seconds']:.2f}")
        print(f"CPU seconds cache warm (whole process, incl. start-up): {run.cpu_s:.2f}")
        print(f"CPU seconds baseline set_many loop: {base_cpu:.2f}")
        print(f"ratio baseline CPU/warm CPU (report): {base_cpu / report['cpu_seconds']:.2f}")
        print(f"cache copy keys/s (report): {n / copied['seconds']:,.0f}")
        print(f"cache copy keys/s (wall): {n / copy.seconds:,.0f}")
        big_n, big_run, big_report, big_copy, big_copied = results["big"]
        print(
            f"peak RSS cache warm MB: {run.rss_mb:.0f} at {n} keys, {big_run.rss_mb:.0f} at {big_n}"
        )
        print(f"peak RSS cache copy MB: {copy.rss_mb:.0f} at {n}, {big_copy.rss_mb:.0f} at {big_n}")
        for label, (count, *_, done) in results.items():
            print(f"cache copy keys missed by metadump ({label}): {count - done['copied']}")
        print(f"cache warm keys/s at {big_n}: {big_n / big_report['seconds']:,.0f}")
        print(f"cache copy keys/s at {big_n}: {big_n / big_copied['seconds']:,.0f}")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        if args.down:
            sandbox.down()


if __name__ == "__main__":
    main()
