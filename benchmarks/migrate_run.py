"""``migrate run --execute`` against ``rethinkdb import`` of the same rows, and datatier's
own rows/s.

Run: ``.venv/bin/python benchmarks/migrate_run.py [--rows 100000] [--clients 8]``

It brings up (or reuses) a sandbox in ``.sandbox-migrate`` (ports 28860+, MariaDB only;
``--down`` stops it afterwards) and generates ``bench_mig.run``
(BIGINT key, INT, DECIMAL, DATETIME, VARCHAR, JSON, SET, a secondary index) on the primary,
then reads it from replica1 as ``migrate run`` does.

Measured here, always (no RethinkDB server needed):

- ``null_target``: read + convert into a target that drops documents (datatier's side
  without the driver);
- ``null_server``: the production :class:`RethinkDBTarget` (prebuilt terms, ``--connections``
  writer connections, soft durability and syncs, a checkpoint file) on stand-in
  connections that serialize every query exactly as the driver's socket connection does
  and answer like a server that takes no time: the whole client side of ``migrate run``;
- ``null_server_driver``: the same with one connection and the driver's own ``r.expr``
  encoding (how ``migrate run`` wrote before it used prebuilt terms and writer threads).

Measured only against a real server, named by ``DATATIER_BENCH_RETHINKDB=host:port`` (no
RethinkDB server can be installed on these machines): the rows exported as JSON (ReQL
pseudo-types for times) and loaded by ``rethinkdb import`` (the driver package's tool,
``--clients N``), then the same rows copied by the ``datatier migrate run --execute``
command, each into a fresh database of its own that is dropped afterwards; both are timed
as processes, as a person runs them. Without the variable, or with the server unreachable,
the script says so and why, prints the figures it could measure, and exits 0.
Prints ``name: value`` lines.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import timed  # noqa: E402
from benchmarks.null_target import NullTarget  # noqa: E402
from datatier.config import LoadedConfig, load  # noqa: E402
from datatier.migrate import service  # noqa: E402
from datatier.migrate.documents import DocumentBuilder  # noqa: E402
from datatier.migrate.mapping import load_mapping  # noqa: E402
from datatier.migrate.plan import TablePlan  # noqa: E402
from datatier.migrate.reader import TableReader  # noqa: E402
from datatier.migrate.runner import RunOptions, run_tables  # noqa: E402
from datatier.migrate.target import MigrationTarget, RethinkDBTarget  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

DB = "bench_mig"
TABLE = "run"


class NullServer:
    """A stand-in for the driver's connection (what ``query.run(conn)`` calls): every query
    is serialized as ``rethinkdb.net`` does before writing it to its socket; inserts are
    answered as fully inserted, anything else as empty."""

    def __init__(self) -> None:
        self.token = 0

    def _start(self, term: Any, **optargs: Any) -> Any:
        from rethinkdb import ql2_pb2
        from rethinkdb.net import Query

        self.token += 1
        start = ql2_pb2.Query.QueryType.START
        Query(start, self.token, term, optargs or None).serialize()
        kinds = ql2_pb2.Term.TermType
        if term.term_type == kinds.INSERT:
            return {"inserted": len(term._args[1].build()[1]), "errors": 0}
        if term.term_type in (kinds.DB_LIST, kinds.TABLE_LIST, kinds.INDEX_LIST):
            return ["run", DB]
        return {"synced": 1} if term.term_type == kinds.SYNC else []

    def is_open(self) -> bool:
        return True

    def close(self, noreply_wait: bool = False) -> None:
        return None


def mysql(cnf: Path, statement: str) -> str:
    argv = ["mariadb", f"--defaults-file={cnf}", "-N", "-B", "-e", statement]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def generate(cnf: Path, rows: int) -> None:
    mysql(
        cnf,
        f"CREATE DATABASE IF NOT EXISTS {DB}; DROP TABLE IF EXISTS {DB}.{TABLE}; "
        f"CREATE TABLE {DB}.{TABLE} (id BIGINT PRIMARY KEY, account INT NOT NULL, "
        "amount DECIMAL(12,2), created DATETIME, name VARCHAR(64), doc JSON, "
        "tags SET('red','green','blue'), KEY (account)); "
        f"INSERT INTO {DB}.{TABLE} SELECT seq, seq % 9973, (seq % 100000) / 100, "
        "'2026-01-01' + INTERVAL (seq % 86400) MINUTE, CONCAT('customer-', seq), "
        "JSON_OBJECT('n', seq, 'tag', CHAR(65 + seq % 26 USING utf8mb4)), "
        "ELT(1 + seq % 3, 'red', 'green,blue', '') "
        f"FROM {DB}.seq_1_to_{rows}",
    )


def client_file(loaded: LoadedConfig, node: str, path: Path) -> Path:
    config = loaded.config
    spec = config.mysql.nodes[node]
    path.write_text(
        f"[client]\nhost={spec.host}\nport={spec.port}\nuser={config.mysql.user}\n"
        f"password={config.mysql.password.reveal()}\n"
    )
    path.chmod(0o600)
    return path


def server_problem(address: str | None) -> str | None:
    """Why the real-server comparison cannot run (None: it can)."""
    if not address:
        return (
            "DATATIER_BENCH_RETHINKDB is not set (no RethinkDB server can be installed on "
            "this machine; name one as host:port)"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return f"DATATIER_BENCH_RETHINKDB={address!r} is not host:port"
    from rethinkdb import r
    from rethinkdb.errors import ReqlError

    try:
        r.connect(host=host, port=int(port), timeout=5).close()
    except (ReqlError, OSError) as exc:
        return f"RethinkDB {address} is unreachable: {exc}"
    return None


def pseudo(value: Any) -> Any:
    """A document value as JSON for ``rethinkdb import`` (ReQL pseudo-types)."""
    if isinstance(value, dict):
        return {k: pseudo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pseudo(v) for v in value]
    if isinstance(value, datetime):
        offset = value.strftime("%z") or "+0000"
        zone = f"{offset[:3]}:{offset[3:]}"
        return {"$reql_type$": "TIME", "epoch_time": value.timestamp(), "timezone": zone}
    if isinstance(value, bytes):
        return {"$reql_type$": "BINARY", "data": base64.b64encode(value).decode("ascii")}
    return value


def documents(conn: Any, plan: TablePlan, batch: int = 5000) -> Iterator[dict[str, Any]]:
    builder = DocumentBuilder(plan)
    reader = TableReader(plan, builder.select_columns)
    after = None
    while rows := reader.batch(conn, after, batch):
        yield from (builder.build(row) for row in rows)
        after = [rows[-1][i] for i in builder.key_positions]


def export_json(conn: Any, plan: TablePlan, path: Path) -> int:
    """The documents ``migrate run`` would write, as a JSON array file; how many."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for doc in documents(conn, plan):
            out.write(("," if n else "") + json.dumps(pseudo(doc), ensure_ascii=False) + "\n")
            n += 1
        out.write("]\n")
    return n


def run_in_process(
    loaded: LoadedConfig, mapping: Path, target: MigrationTarget, options: RunOptions
) -> float:
    """rows/s of ``run_tables`` from replica1 into ``target``, with a checkpoint file."""
    conn = service.open_source(loaded, "replica1")
    try:
        plans = service.make_plans(conn, loaded, [f"{DB}.{TABLE}"], load_mapping(mapping))
        with tempfile.TemporaryDirectory(prefix="dt-bench-") as tmp:
            options = replace(options, checkpoint=Path(tmp) / "cp.json", restart=True)
            started = time.monotonic()
            report = run_tables(conn, "replica1", plans, target, options)
            seconds = time.monotonic() - started
    finally:
        conn.close()
    return report.tables[0].rows / seconds


def compare_on_server(
    address: str,
    loaded: LoadedConfig,
    config_path: Path,
    mapping_text: str,
    rows: int,
    clients: int,
    extra: list[str],
) -> None:
    """``rethinkdb import`` vs ``datatier migrate run --execute`` on the real server."""
    from rethinkdb import r

    host, _, port = address.rpartition(":")
    suffix = secrets.token_hex(4)
    import_db, run_db = f"bench_import_{suffix}", f"bench_run_{suffix}"
    conn = r.connect(host=host, port=int(port))
    with tempfile.TemporaryDirectory(prefix="dt-bench-") as tmp:
        work = Path(tmp)
        mapping = work / "mapping.toml"
        mapping.write_text(f'target_db = "{run_db}"\n{mapping_text}')
        source = service.open_source(loaded, "replica1")
        try:
            plans = service.make_plans(source, loaded, [f"{DB}.{TABLE}"], load_mapping(mapping))
            exported = export_json(source, plans[0], work / "rows.json")
        finally:
            source.close()
        assert exported == rows, (exported, rows)
        try:
            stock = timed(
                [
                    str(ROOT / ".venv/bin/rethinkdb-import"),
                    *("-c", address, "--format", "json", "--clients", str(clients)),
                    *("--file", str(work / "rows.json"), "--table", f"{import_db}.{TABLE}"),
                ]
            )
            env = {
                **os.environ,
                "DATATIER_CONFIG": str(config_path),
                "DATATIER_RETHINKDB__HOST": host,
                "DATATIER_RETHINKDB__PORT": port,
            }
            ours = timed(
                [
                    str(ROOT / ".venv/bin/datatier"),
                    *("migrate", "run", "--mapping", str(mapping), "--execute", "--json"),
                    *("--checkpoint", str(work / "cp.json"), *extra),
                ],
                env=env,
            )
            counts = [r.db(d).table(TABLE).count().run(conn) for d in (import_db, run_db)]
            if counts != [rows, rows]:
                raise SystemExit(f"row counts differ: import {counts[0]}, run {counts[1]}")
        finally:
            for db in (import_db, run_db):
                if db in r.db_list().run(conn):
                    r.db_drop(db).run(conn)
            conn.close()
    report = json.loads(ours.out)
    print(f"rethinkdb_import_rows_per_s: {rows / stock.seconds:.0f}")
    print(f"migrate_run_rows_per_s: {rows / ours.seconds:.0f}")
    print(f"migrate_run_copy_only_rows_per_s: {report['rows_per_second']:.0f}")
    print(f"migrate_run_vs_import: {stock.seconds / ours.seconds:.2f}")
    print(f"migrate_run_peak_rss_mb: {ours.rss_mb:.0f}")
    print(f"rethinkdb_import_peak_rss_mb: {stock.rss_mb:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8, help="rethinkdb import --clients")
    parser.add_argument("--batch-size", type=int, default=RunOptions.batch_size)
    parser.add_argument("--connections", type=int, default=RunOptions.connections)
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-migrate"))
    parser.add_argument("--port-base", type=int, default=28860)
    parser.add_argument("--down", action="store_true", help="Stop the sandbox afterwards.")
    args = parser.parse_args()

    address = os.environ.get("DATATIER_BENCH_RETHINKDB")
    problem = server_problem(address)
    if problem:
        print(f"rethinkdb_import: cannot run here: {problem}")

    sandbox = Sandbox(Path(args.dir), args.port_base)
    try:
        sandbox.up(skip=("memcached", "memcached2", "s3", "mongo", "mongo2"))
        config_path = sandbox.root / "datatier.toml"
        loaded = load(str(config_path), environ={})
        cnf = client_file(loaded, "primary", sandbox.root / "bench-primary.cnf")
        print(f"generating {args.rows} rows ...", file=sys.stderr)
        generate(cnf, args.rows)
        gtid = mysql(cnf, "SELECT @@gtid_binlog_pos").strip()
        replica = client_file(loaded, "replica1", sandbox.root / "bench-replica.cnf")
        mysql(replica, f"SELECT MASTER_GTID_WAIT('{gtid}', 900)")

        mapping_text = f'[tables."{DB}.{TABLE}"]\ntarget = "{TABLE}"\n'
        mapping = sandbox.root / "bench-run-mapping.toml"
        mapping.write_text(mapping_text)
        options = RunOptions(batch_size=args.batch_size, connections=args.connections)
        null_target = run_in_process(loaded, mapping, NullTarget(), options)
        server = RethinkDBTarget(NullServer(), DB, label="null", connect=NullServer, prebuilt=True)
        null_server = run_in_process(loaded, mapping, server, options)
        driver = RethinkDBTarget(NullServer(), DB, label="null")
        null_server_driver = run_in_process(loaded, mapping, driver, options)
        print(f"rows: {args.rows}")
        print(f"batch_size: {args.batch_size}")
        print(f"connections: {args.connections}")
        print(f"null_target_rows_per_s: {null_target:.0f}")
        print(f"null_server_rows_per_s: {null_server:.0f}")
        print(f"null_server_driver_rows_per_s: {null_server_driver:.0f}")
        print(f"null_server_vs_driver: {null_server / null_server_driver:.2f}")
        if address and not problem:
            extra = ["--batch-size", str(args.batch_size), "--connections", str(args.connections)]
            compare_on_server(
                address, loaded, config_path, mapping_text, args.rows, args.clients, extra
            )
    finally:
        if args.down:
            sandbox.down()


if __name__ == "__main__":
    main()
