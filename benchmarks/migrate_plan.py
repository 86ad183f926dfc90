"""``migrate plan`` on a 2-million-row table (target: <= 10 s) and ``migrate run`` rows/s.

Run: ``.venv/bin/python benchmarks/migrate_plan.py [--rows 2000000] [--run-rows 20000]``

It brings up (or reuses) a sandbox in ``.sandbox-migrate`` (ports 28860+), generates
``bench_mig.big`` (BIGINT key, DECIMAL, DATETIME, JSON, VARCHAR, a secondary index) on the
primary, waits for replica1, and times the ``datatier migrate plan`` command (a process, as
a person runs it; it reads replica1 and samples) and ``plan --full`` for comparison. Then
it times ``run_tables`` on ``--run-rows`` rows into rethinkdb-mock (a MOCK: no RethinkDB
server can be installed here; the mock copies its table on every insert, so its rows/s
says little about a real server) and into a null target (datatier's own read + convert +
checksum-ready documents per second). Prints ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import timed  # noqa: E402
from benchmarks.null_target import NullTarget  # noqa: E402
from datatier.config import load  # noqa: E402
from datatier.migrate import service  # noqa: E402
from datatier.migrate.mapping import load_mapping  # noqa: E402
from datatier.migrate.runner import RunOptions, run_tables  # noqa: E402
from datatier.migrate.target import RethinkDBTarget  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

DB = "bench_mig"
PLAN_LIMIT_S = 10.0


def mysql(cnf: Path, statement: str) -> str:
    argv = ["mariadb", f"--defaults-file={cnf}", "-N", "-B", "-e", statement]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def generate(cnf: Path, table: str, rows: int) -> None:
    mysql(
        cnf,
        f"CREATE DATABASE IF NOT EXISTS {DB}; DROP TABLE IF EXISTS {DB}.{table}; "
        f"CREATE TABLE {DB}.{table} (id BIGINT PRIMARY KEY, account INT NOT NULL, "
        "amount DECIMAL(12,2), created DATETIME, name VARCHAR(64), doc JSON, KEY (account)); "
        f"INSERT INTO {DB}.{table} SELECT seq, seq % 9973, (seq % 100000) / 100, "
        "'2026-01-01' + INTERVAL (seq % 86400) MINUTE, CONCAT('customer-', seq), "
        "JSON_OBJECT('n', seq, 'tag', CHAR(65 + seq % 26 USING utf8mb4)) "
        f"FROM {DB}.seq_1_to_{rows}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--run-rows", type=int, default=20_000)
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-migrate"))
    parser.add_argument("--port-base", type=int, default=28860)
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up()
    config_path = sandbox.root / "datatier.toml"
    loaded = load(str(config_path), environ={})
    config = loaded.config
    cnf = sandbox.root / "bench-primary.cnf"
    spec = config.mysql.nodes["primary"]
    cnf.write_text(
        f"[client]\nhost={spec.host}\nport={spec.port}\nuser={config.mysql.user}\n"
        f"password={config.mysql.password.reveal()}\n"
    )
    cnf.chmod(0o600)
    print(f"generating {args.rows} rows ...", file=sys.stderr)
    generate(cnf, "big", args.rows)
    generate(cnf, "small", args.run_rows)
    gtid = mysql(cnf, "SELECT @@gtid_binlog_pos").strip()
    replica = sandbox.root / "bench-replica.cnf"
    r1 = config.mysql.nodes["replica1"]
    replica.write_text(cnf.read_text().replace(f"port={spec.port}", f"port={r1.port}"))
    replica.chmod(0o600)
    mysql(replica, f"SELECT MASTER_GTID_WAIT('{gtid}', 900)")
    mysql(replica, f"ANALYZE TABLE {DB}.big")

    env = {**os.environ, "DATATIER_CONFIG": str(config_path)}
    dt = str(ROOT / ".venv/bin/datatier")
    plan = timed([dt, "migrate", "plan", "--tables", f"{DB}.big", "--json"], env=env)
    doc = json.loads(plan.out)["tables"][0]
    full = timed([dt, "migrate", "plan", "--tables", f"{DB}.big", "--full", "--json"], env=env)

    mapping_path = sandbox.root / "bench-mapping.toml"
    mapping_path.write_text(f'[tables."{DB}.small"]\ntarget = "small"\n')
    mapping = load_mapping(mapping_path)
    results: dict[str, float] = {}
    for label, make in (
        ("null_target", lambda: NullTarget()),
        ("rethinkdb_mock", lambda: mock_target()),
    ):
        conn = service.open_source(loaded, "replica1")
        plans = service.make_plans(conn, loaded, [f"{DB}.small"], mapping)
        started = time.monotonic()
        report = run_tables(conn, "replica1", plans, make(), RunOptions(batch_size=500))
        seconds = time.monotonic() - started
        conn.close()
        results[label] = report.tables[0].rows / seconds

    print(f"plan_rows: {args.rows}")
    print(f"plan_sampled_rows: {doc['sample']['rows']}")
    print(f"plan_2m_rows_s: {plan.seconds:.2f}")
    print(f"plan_limit_s: {PLAN_LIMIT_S:.0f}")
    print(f"plan_within_limit: {plan.seconds <= PLAN_LIMIT_S}")
    print(f"plan_full_scan_s: {full.seconds:.2f}")
    print(f"plan_full_vs_sampled: {full.seconds / plan.seconds:.2f}")
    print(f"run_rows: {args.run_rows}")
    print(f"run_null_target_rows_per_s: {results['null_target']:.0f}")
    print(f"run_rethinkdb_mock_rows_per_s: {results['rethinkdb_mock']:.0f}")


def mock_target() -> RethinkDBTarget:
    from rethinkdb_mock import MockThink

    return RethinkDBTarget(MockThink({"dbs": {}}).get_conn(), "bench", label="rethinkdb-mock")


if __name__ == "__main__":
    main()
