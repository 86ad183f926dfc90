"""Health endpoint and heartbeat lag: throughput, latency, lag accuracy, failover detection.

Run: ``.venv/bin/python benchmarks/health.py [--seconds 5] [--clients 32] [--interval 0.5]``

It brings up (or reuses) a sandbox of MariaDB primary + 2 GTID replicas in ``.sandbox-health``
(ports 29060+, below the ephemeral range; memcached, S3 and Mongo are skipped), then runs the
real commands as subprocesses: ``datatier replication heartbeat`` and ``datatier health serve``
(on 127.0.0.1:29100). It prints ``name: value`` lines:

- ``/replica?lag=2s`` requests/s and p50/p99 latency with ``--clients`` concurrent keep-alive
  HTTP/1.1 clients (threads with http.client, spread over ``--client-procs`` processes) for
  ``--seconds`` (bounded by ``--max-requests`` per client), loopback only. Client and server
  share the machine's cores, so the figures are a floor for the server alone;
- lag accuracy: ``MASTER_DELAY=5`` on replica2. MariaDB applies a delayed event when
  ``event timestamp + 5 s`` is reached, and binlog event timestamps are whole seconds, so the
  replica's data staleness really is a sawtooth from ~4 s up to 5 s (+ one heartbeat interval)
  once per second. The figure compared with 5 s is the peak of each second (the staleness just
  before the next batch applies); the mean is printed too. Sampled with datatier's
  ``read_lag`` every 20 ms and cross-checked against the endpoint's ``lag_seconds``;
- how long after ``STOP SLAVE SQL_THREAD`` on replica1 ``/replica`` answers 503, in seconds and
  in monitor intervals (median and max of ``--trials``; polled every 5 ms);
- datatier's heartbeat lag and pt-heartbeat's (Debian percona-toolkit, when installed:
  ``--update`` on the primary, ``--check`` on replica2, ``--utc --skew 0.001``) read at the
  same moments, without and with the 5 s delay.

Replication state (MASTER_DELAY, threads) is restored in ``finally``; the sandbox keeps running
for the next run unless ``--down``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datatier.config import Config, load  # noqa: E402
from datatier.mysql.connection import (  # noqa: E402
    ClientOptions,
    Connection,
    client_options_file,
    connect,
    endpoint,
)
from datatier.replication.heartbeat import read_lag  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

HOST = "127.0.0.1"
DELAY = 5
PT_DB = "pt_heartbeat"


# -- load generator ---------------------------------------------------------------------------
def _client(port: int, path: str, deadline: float, limit: int, out: list[float]) -> float:
    """Requests on one keep-alive connection until ``deadline`` or ``limit``; latencies go to
    ``out``. Returns the connect time (kept apart: it measures the listen backlog)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        started = time.perf_counter()
        conn.connect()
        connect_s = time.perf_counter() - started
        for _ in range(limit):
            if time.perf_counter() >= deadline:
                break
            started = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.status not in (200, 503):
                raise RuntimeError(f"{path} answered {resp.status}")
            out.append(time.perf_counter() - started)
    finally:
        conn.close()
    return connect_s


def _client_proc(args: tuple[int, str, int, float, int]) -> tuple[list[float], list[float]]:
    """One process running ``threads`` keep-alive clients until the shared deadline:
    (request latencies, connect times)."""
    port, path, threads, deadline_wall, limit = args
    deadline = time.perf_counter() + (deadline_wall - time.time())
    results: list[list[float]] = [[] for _ in range(threads)]
    connects = [0.0] * threads

    def run(i: int) -> None:
        connects[i] = _client(port, path, deadline, limit, results[i])

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [x for r in results for x in r], connects


def listen_overflows() -> int:
    """The kernel's TcpExt ListenOverflows counter (SYNs dropped: a full accept backlog)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in itertools.pairwise(lines):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split(), values.split(), strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


def load_test(
    port: int, path: str, clients: int, procs: int, seconds: float, limit: int
) -> dict[str, float]:
    procs = max(1, min(procs, clients))
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    ctx = multiprocessing.get_context("fork")
    overflows = listen_overflows()
    with ctx.Pool(procs) as pool:
        started = time.time()
        deadline = started + 0.5 + seconds  # 0.5 s for the processes to start
        parts = pool.map(_client_proc, [(port, path, n, deadline, limit) for n in per])
    latencies = sorted(x for part, _ in parts for x in part)
    connects = [x for _, part in parts for x in part]
    window = max(1e-9, min(seconds, time.time() - started - 0.5))
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / window,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "max_ms": latencies[-1] * 1000,
        "connect_max_ms": max(connects) * 1000,
        "listen_overflows": listen_overflows() - overflows,
    }


# -- helpers ----------------------------------------------------------------------------------
def get(port: int, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body.startswith(b"{") else None
    except OSError:
        return -1, None
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    raise SystemExit(f"benchmark: condition not met within {timeout} s")


def execute(config: Config, node: str, *statements: str) -> None:
    conn = connect(endpoint(config.mysql, node))
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def wait_replicated(config: Config, timeout: float = 30.0) -> None:
    conn = connect(endpoint(config.mysql, "primary"))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        gtid = cur.fetchone()[0]  # type: ignore[index]
    for node in ("replica1", "replica2"):
        conn = connect(endpoint(config.mysql, node))
        with conn, conn.cursor() as cur:
            cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (gtid, timeout))
            if cur.fetchone()[0] != 0:  # type: ignore[index]
                raise SystemExit(f"benchmark: {node} did not reach {gtid}")


def lag_of(conn: Connection, source_id: int) -> float:
    reading = read_lag(conn, source_id)
    if reading is None:
        raise SystemExit("benchmark: no heartbeat on the replica")
    return reading.lag


@contextlib.contextmanager
def process(
    argv: list[str], env: dict[str, str], log: Path, pass_fds: tuple[int, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (stdout and stderr to ``log``) for the block; SIGTERM, then wait."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, pass_fds=pass_fds
        )
    try:
        if proc.poll() is not None:
            raise SystemExit(f"benchmark: {argv[0]} exited at once; see {log}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- measurements -----------------------------------------------------------------------------
def detect_503(config: Config, port: int, interval: float, trials: int) -> list[float]:
    """Seconds from STOP SLAVE SQL_THREAD on replica1 until /replica answers 503, per trial."""
    path = "/replica?node=replica1&lag=2s"
    took: list[float] = []
    for _ in range(trials):
        wait_for(lambda: get(port, path)[0] == 200, 30)
        time.sleep(interval * (0.5 + 0.37 * len(took)) % interval)  # vary the phase
        try:
            execute(config, "replica1", "STOP SLAVE SQL_THREAD")
            started = time.monotonic()
            while get(port, path)[0] != 503:
                if time.monotonic() - started > 30:
                    raise SystemExit("benchmark: /replica never answered 503")
                time.sleep(0.005)
            took.append(time.monotonic() - started)
        finally:
            execute(config, "replica1", "START SLAVE")
        wait_replicated(config)
    return took


def sample_lag(conn: Connection, source_id: int, seconds: float) -> list[tuple[float, float]]:
    """(monotonic time, datatier heartbeat lag) every 20 ms for ``seconds``."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append((time.monotonic(), lag_of(conn, source_id)))
        time.sleep(0.02)
    return samples


def sawtooth_peaks(samples: list[tuple[float, float]]) -> list[float]:
    """The lag just before each drop (each batch of delayed events applied)."""
    peaks = []
    for (_, a), (_, b) in itertools.pairwise(samples):
        if b < a - 0.3:
            peaks.append(a)
    return peaks


def pt_pairs(
    pt: str, cnf: ClientOptions, conn: Connection, source_id: int, count: int
) -> list[tuple[float, float]]:
    """(datatier lag, pt-heartbeat lag) on replica2; datatier's is the mean of a reading just
    before and just after pt-heartbeat's (its own start-up takes ~0.2 s)."""
    pairs = []
    for _ in range(count):
        before = lag_of(conn, source_id)
        out = subprocess.run(
            [pt, f"--defaults-file={cnf}", "--check", "--database", PT_DB, "--utc",
             "--skew", "0.001", "--master-server-id", str(source_id)],
            capture_output=True, text=True, check=True, pass_fds=cnf.pass_fds,
        ).stdout  # fmt: skip
        after = lag_of(conn, source_id)
        pairs.append(((before + after) / 2, float(out.split()[0])))
    return pairs


def show(name: str, value: float | str, fmt: str = ".3f") -> None:
    print(f"{name}: {value if isinstance(value, str) else format(value, fmt)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-health"))
    parser.add_argument("--port-base", type=int, default=29060)
    parser.add_argument("--http-port", type=int, default=29100)
    parser.add_argument("--interval", type=float, default=0.5, help="monitor interval (s)")
    parser.add_argument("--heartbeat-interval", type=float, default=0.1)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=50_000, help="per client")
    parser.add_argument("--trials", type=int, default=5, help="SQL-thread-stop trials")
    parser.add_argument("--pt-checks", type=int, default=8)
    parser.add_argument("--down", action="store_true", help="stop the sandbox at the end")
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up(skip=("memcached", "s3", "mongo"))
    config_path = sandbox.root / "datatier.toml"
    config = load(str(config_path), environ={}).config
    env = {**os.environ, "DATATIER_CONFIG": str(config_path)}
    py = [sys.executable, "-m", "datatier"]
    port, interval = args.http_port, args.interval
    pt = shutil.which("pt-heartbeat")
    logs = sandbox.root / "bench-logs"
    logs.mkdir(exist_ok=True)
    heartbeat_cmd = [*py, "replication", "heartbeat", "--interval", str(args.heartbeat_interval)]
    serve_cmd = [*py, "health", "serve", "--listen", f"{HOST}:{port}", "--interval", str(interval)]
    print(f"# {os.cpu_count()} cores shared by the load generator and the server", flush=True)
    try:
        with (
            process(heartbeat_cmd, env, logs / "heartbeat.log"),
            process(serve_cmd, env, logs / "serve.log"),
        ):
            wait_for(lambda: get(port, "/replica?node=replica1&lag=2s")[0] == 200, 30)
            wait_for(lambda: get(port, "/replica?node=replica2&lag=2s")[0] == 200, 30)
            primary = get(port, "/primary")[1]
            source_id = int(primary["node"]["server_id"])

            # 1. throughput and latency of /replica?lag=2s
            path = "/replica?node=replica1&lag=2s"
            load_test(port, path, args.clients, args.client_procs, 1.0, 2_000)  # warm-up
            show("replica_endpoint_path", path, "")
            for clients, seconds in ((args.clients, args.seconds), (1, min(2.0, args.seconds))):
                res = load_test(port, path, clients, args.client_procs, seconds, args.max_requests)
                tag = f"replica_endpoint_c{clients}"
                show(f"{tag}_requests", res["requests"], ".0f")
                show(f"{tag}_rps", res["rps"], ".0f")
                show(f"{tag}_p50_ms", res["p50_ms"])
                show(f"{tag}_p99_ms", res["p99_ms"])
                show(f"{tag}_max_ms", res["max_ms"])
                show(f"{tag}_connect_max_ms", res["connect_max_ms"])
                show(f"{tag}_listen_overflows", res["listen_overflows"], ".0f")
                print(
                    f"# c{clients}: mean latency >= clients / rps = "
                    f"{clients / res['rps'] * 1000:.2f} ms (Little's law: queueing, not service)",
                    flush=True,
                )

            # 2. time to 503 after the SQL thread stops
            took = detect_503(config, port, interval, args.trials)
            show("monitor_interval_s", interval)
            show("sql_stop_to_503_median_s", statistics.median(took))
            show("sql_stop_to_503_max_s", max(took))
            show("sql_stop_to_503_median_intervals", statistics.median(took) / interval, ".2f")
            show("sql_stop_to_503_max_intervals", max(took) / interval, ".2f")

            # 3 + 4. lag accuracy under MASTER_DELAY=5 and pt-heartbeat side by side
            with contextlib.ExitStack() as stack:
                replica2 = connect(endpoint(config.mysql, "replica2"))
                stack.callback(replica2.close)
                cnf: ClientOptions | None = None
                if pt:
                    execute(config, "primary", f"CREATE DATABASE IF NOT EXISTS {PT_DB}")
                    primary_cnf = stack.enter_context(
                        client_options_file(endpoint(config.mysql, "primary"))
                    )
                    cnf = stack.enter_context(
                        client_options_file(endpoint(config.mysql, "replica2"))
                    )
                    stack.enter_context(
                        process(
                            [pt, f"--defaults-file={primary_cnf}", "--update", "--database",
                             PT_DB, "--create-table", "--utc", "--interval", "0.1"],
                            env, logs / "pt-heartbeat.log", primary_cnf.pass_fds,
                        )
                    )  # fmt: skip
                    time.sleep(1.0)
                    wait_replicated(config)
                    pairs = pt_pairs(pt, cnf, replica2, source_id, args.pt_checks)
                    show(
                        "pt_heartbeat_no_delay_datatier_lag_s",
                        statistics.median(p[0] for p in pairs),
                    )
                    show("pt_heartbeat_no_delay_pt_lag_s", statistics.median(p[1] for p in pairs))
                else:
                    show("pt_heartbeat", "not installed (Debian package percona-toolkit)")
                try:
                    execute(
                        config,
                        "replica2",
                        "STOP SLAVE",
                        f"CHANGE MASTER TO MASTER_DELAY={DELAY}",
                        "START SLAVE",
                    )
                    wait_for(lambda: lag_of(replica2, source_id) >= DELAY - 1.2, 30, 0.02)
                    time.sleep(1.0)
                    samples = sample_lag(replica2, source_id, 6.0)
                    peaks = sawtooth_peaks(samples)
                    lags = [lag for _, lag in samples]
                    if peaks:
                        peak = statistics.median(peaks)
                        show("delay_injected_s", DELAY, "d")
                        show("delay_lag_peak_median_s", peak)
                        show("delay_lag_peak_error_s", peak - DELAY, "+.3f")
                        show("delay_lag_peaks_seen", len(peaks), "d")
                    show("delay_lag_mean_s", statistics.fmean(lags))
                    show("delay_lag_min_s", min(lags))
                    show("delay_lag_max_s", max(lags))
                    _, doc = get(port, "/replica?node=replica2&lag=10s")
                    show("delay_endpoint_lag_s", float(doc["node"]["lag_seconds"]))
                    show("delay_endpoint_seconds_behind_master",
                         str(doc["node"]["replication"]["seconds_behind"]))  # fmt: skip
                    if pt and cnf is not None:
                        pairs = pt_pairs(pt, cnf, replica2, source_id, args.pt_checks)
                        diffs = [p[1] - p[0] for p in pairs]
                        show(
                            "pt_heartbeat_delay_datatier_lag_s",
                            statistics.median(p[0] for p in pairs),
                        )
                        show("pt_heartbeat_delay_pt_lag_s", statistics.median(p[1] for p in pairs))
                        show(
                            "pt_heartbeat_delay_pt_minus_datatier_median_s",
                            statistics.median(diffs),
                            "+.3f",
                        )
                        show("pt_heartbeat_delay_pt_minus_datatier_max_abs_s", max(map(abs, diffs)))
                finally:
                    execute(
                        config,
                        "replica2",
                        "STOP SLAVE",
                        "CHANGE MASTER TO MASTER_DELAY=0",
                        "START SLAVE",
                    )
                    wait_replicated(config)
            if pt:
                execute(config, "primary", f"DROP DATABASE IF EXISTS {PT_DB}")
                wait_replicated(config)
    finally:
        if args.down:
            sandbox.down()


if __name__ == "__main__":
    main()
