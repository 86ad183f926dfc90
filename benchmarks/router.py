"""Router checkouts: pooled ``Router.connection("read")`` against the two usual alternatives.

Run: ``.venv/bin/python benchmarks/router.py [--seconds 2] [--rounds 3] [--query]``

It brings up (or reuses) a sandbox of MariaDB primary + 2 GTID replicas in ``.sandbox-router``
(ports 23160+, below the ephemeral range; memcached, S3 and Mongo are skipped), starts a
heartbeat writer, a monitor and a router on a topology of the primary and replica1 only (so
that every variant uses the same server: with two replicas the router would move between
them as their lags change), and times, on one thread,
one "request" after another, each getting a connection and giving it back (``--query``: and
running ``SELECT 1`` on it):

- ``connect``: a bare ``pymysql.connect`` + ``close`` per request (what applications do
  without a pool, and what the router did before it pooled);
- ``queuepool``: a plain SQLAlchemy ``QueuePool`` (defaults: 5 + 10 overflow, rollback on
  return) on replica1;
- ``router``: ``Router.connection("read")``, served by replica1's pool (routing decision from
  the monitor's snapshot, checkout, ``COM_RESET_CONNECTION`` on return).

The variants alternate for ``--rounds`` rounds of ``--seconds`` each (``connect`` gets
``--connect-seconds``); the median round's rate is reported with the p99 latency of one
request over all rounds. It prints ``name: value`` lines and the ratios the issue sets goals
for: ``router_vs_queuepool`` (goal >= 0.8) and ``router_vs_connect`` (goal >= 50). The machine
is shared: take figures on an idle one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402
from sqlalchemy.pool import QueuePool  # noqa: E402

from datatier.config import load  # noqa: E402
from datatier.mysql.connection import connect, endpoint  # noqa: E402
from datatier.mysql.heartbeat import HeartbeatWriter  # noqa: E402
from datatier.replication.monitor import Monitor  # noqa: E402
from datatier.replication.router import Router  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

Request = Callable[[], None]


def timed(request: Request, seconds: float, limit: int = 1_000_000) -> list[float]:
    """Latencies of ``request`` run back to back for ``seconds`` (at most ``limit``)."""
    out: list[float] = []
    clock = time.perf_counter
    deadline = clock() + seconds
    while len(out) < limit:
        started = clock()
        if started >= deadline:
            break
        request()
        out.append(clock() - started)
    return out


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def select_one(conn: object) -> None:
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT 1")
        cur.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-router"))
    parser.add_argument("--port-base", type=int, default=23160)
    parser.add_argument("--seconds", type=float, default=2.0, help="per round, pooled variants")
    parser.add_argument("--connect-seconds", type=float, default=3.0, help="per round, connect")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--query", action="store_true", help="run SELECT 1 in every request")
    parser.add_argument("--down", action="store_true", help="stop the sandbox at the end")
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up(skip=("memcached", "memcached2", "s3", "mongo"))
    config_path = sandbox.root / "datatier.toml"
    config = load(str(config_path), environ={}).config
    writer = HeartbeatWriter(endpoint(config.mysql, "primary"), interval=0.1)
    writer.start()
    one = replace(
        config,
        mysql=replace(
            config.mysql, nodes={n: config.mysql.nodes[n] for n in ("primary", "replica1")}
        ),
    )
    monitor = Monitor(one.mysql, one.health).start()
    try:
        with Router(one, monitor) as router:
            router.add_closer(monitor.stop)
            deadline = time.monotonic() + 15
            while True:
                try:
                    node = router.route("read").node
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            ep = endpoint(config.mysql, node)
            use = select_one if args.query else (lambda conn: None)

            def bare() -> None:
                conn = pymysql.connect(
                    host=ep.host, port=ep.port, user=ep.user, password=ep.password
                )
                use(conn)
                conn.close()

            def create() -> Any:  # a DB-API connection, as QueuePool's creator returns
                return connect(ep)

            queue = QueuePool(create, pool_size=5, max_overflow=10)

            def pooled() -> None:
                conn = queue.connect()
                use(conn)
                conn.close()

            def routed() -> None:
                conn = router.connection("read")
                use(conn)
                conn.close()

            variants: dict[str, tuple[Request, float]] = {
                "connect": (bare, args.connect_seconds),
                "queuepool": (pooled, args.seconds),
                "router": (routed, args.seconds),
            }
            for request, _ in variants.values():  # warm up: pools filled, code paths hot
                timed(request, 0.2, 200)
            rates: dict[str, list[float]] = {name: [] for name in variants}
            latencies: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, (request, seconds) in variants.items():
                    samples = timed(request, seconds)
                    rates[name].append(len(samples) / sum(samples))
                    latencies[name] += samples
            routes = {k: v for k, v in router.stats().routes.items() if v}
            queue.dispose()
    finally:
        writer.stop()
        if args.down:
            sandbox.down()

    what = "checkout + SELECT 1 + return" if args.query else "checkout + return"
    print(f"# one thread, {what}, read node {node}; median of {args.rounds} rounds")
    rate = {name: statistics.median(values) for name, values in rates.items()}
    for name in variants:
        print(f"{name}_per_second: {rate[name]:.1f}")
        print(f"{name}_p99_ms: {p99(latencies[name]) * 1000:.3f}")
    print(f"router_vs_queuepool: {rate['router'] / rate['queuepool']:.2f} (goal >= 0.8)")
    print(f"router_vs_connect: {rate['router'] / rate['connect']:.1f} (goal >= 50)")
    print(f"# routes taken: {routes}")


if __name__ == "__main__":
    main()
