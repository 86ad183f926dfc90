"""Backup and restore: datatier against mariadb-dump|zstd, mydumper, zstd -dc|mariadb, myloader.

Run: ``.venv/bin/python benchmarks/mysql_backup.py [--rows 2000000] [--tables 8] [--double]``

It brings up (or reuses) a sandbox in ``.sandbox-bench`` (ports 23060+), generates the
dataset on the primary, waits for replica1, then times in one run, on the same data, from
the same replica: each baseline and datatier, and prints ``name: value`` lines. Backup-side
timings are the median of ``--repeat`` interleaved rounds. Restores are timed once each,
with the local replicas' SQL threads paused unless ``--replicas-live`` (see
``replicas_paused``). Peak RSS is ``wait4``'s ``ru_maxrss``: the largest single process of
the measured command (datatier's Python process), in MiB. ``--double`` repeats the datatier
measurements on twice the rows to show memory stays flat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import timed  # noqa: E402
from datatier.config import load  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

DB = "bench"


def mysql(cnf: Path, sql: str, database: str = "") -> str:
    argv = ["mariadb", f"--defaults-file={cnf}", "-N", "-B", "-e", sql]
    if database:
        argv.append(database)
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def cnf_for(config: Any, node: str, tmp: Path) -> Path:
    spec = config.mysql.nodes[node]
    path = tmp / f"{node}.cnf"
    path.write_text(
        f"[client]\nhost={spec.host}\nport={spec.port}\nuser={config.mysql.user}\n"
        f"password={config.mysql.password.reveal()}\n"
    )
    path.chmod(0o600)
    return path


def generate(primary: Path, tables: int, rows: int) -> None:
    per = rows // tables
    mysql(primary, f"DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB}")
    for i in range(tables):
        mysql(
            primary,
            f"CREATE TABLE t{i} (id BIGINT PRIMARY KEY, account INT, name VARCHAR(64), "
            "amount DECIMAL(12,2), created DATETIME, note TEXT, KEY (account)); "
            f"INSERT INTO t{i} SELECT seq, seq % 9973, CONCAT('customer-', seq, '-', {i}), "
            "(seq % 100000) / 100, '2026-01-01' + INTERVAL (seq % 86400) MINUTE, "
            "REPEAT(CHAR(65 + seq % 26), 20 + seq % 40) "
            f"FROM seq_1_to_{per}",
            DB,
        )


def wait_replicated(primary: Path, replica: Path) -> None:
    gtid = mysql(primary, "SELECT @@gtid_binlog_pos").strip()
    mysql(replica, f"SELECT MASTER_GTID_WAIT('{gtid}', 600)")


def checksum(cnf: Path, database: str, tables: int) -> str:
    names = ", ".join(f"{database}.t{i}" for i in range(tables))
    return " ".join(
        line.split("\t")[1] for line in mysql(cnf, f"CHECKSUM TABLE {names}").splitlines()
    )


@contextlib.contextmanager
def replicas_paused(replicas: list[Path], enabled: bool) -> Iterator[None]:
    """Stop the replicas' SQL threads while a restore is timed.

    In production the replicas run on other hosts; here they share the primary's two cores
    and replaying every restored row on both would eat the CPU the restore is measured on.
    The binlog is still written on the primary; replication catches up afterwards.
    """
    if enabled:
        for cnf in replicas:
            mysql(cnf, "STOP SLAVE SQL_THREAD")
    try:
        yield
    finally:
        if enabled:
            for cnf in replicas:
                mysql(cnf, "START SLAVE SQL_THREAD")


def median(values: list[float]) -> float:
    return statistics.median(values)


def run_backups(config_path: Path, replica: Path, tmp: Path, rounds: int) -> dict[str, float]:
    """Backup-side timings, interleaved per round (so drift hits all alike); medians."""
    env = {**os.environ, "DATATIER_CONFIG": str(config_path)}
    dt = str(ROOT / ".venv/bin/datatier")
    runs: dict[str, list[float]] = {}
    rss: list[float] = []
    for _ in range(rounds):
        steps: dict[str, tuple[list[str] | str, bool, dict[str, str] | None]] = {
            "mariadb_dump_zstd_s": (
                f"mariadb-dump --defaults-file={replica} --single-transaction --quick "
                "--master-data=2 --gtid --routines --triggers --events --hex-blob "
                f"--databases {DB} | zstd -q -3 > {tmp / 'dump.sql.zst'}",
                True,
                None,
            ),
            "mydumper_s": (
                f"rm -rf {tmp / 'mydumper'} && mydumper --defaults-file={replica} -B {DB} "
                f"-o {tmp / 'mydumper'} -t 2 -c --trx-consistency-only -v 0",
                True,
                None,
            ),
            "backup_s": ([dt, "backup", "run", "bench"], False, env),
            # Into a local directory: datatier's own cost without the S3 server (moto
            # runs in Python on these same two cores).
            "backup_local_store_s": ([dt, "backup", "run", "bench-local"], False, env),
        }
        for name, (argv, shell, step_env) in steps.items():
            run = timed(argv, shell=shell, env=step_env)
            seconds, peak = run.seconds, run.rss_mb
            runs.setdefault(name, []).append(seconds)
            if name == "backup_s":
                rss.append(peak)
    found = {name: median(values) for name, values in runs.items()}
    found["backup_rss"] = max(rss)
    return found


def run_restores(
    config_path: Path,
    tables: int,
    primary: Path,
    replicas: list[Path],
    jobs: int,
    pause: bool,
) -> dict[str, float]:
    env = {**os.environ, "DATATIER_CONFIG": str(config_path)}
    dt = str(ROOT / ".venv/bin/datatier")
    replica = replicas[0]
    listing = subprocess.run(
        [dt, "backup", "run", "bench", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    backup_id = json.loads(listing.stdout)["id"]
    found: dict[str, float] = {}
    restore_cmd = [dt, "restore", backup_id, "--rename", f"{DB}=bench_dt", "--jobs", str(jobs)]
    for label, extra in (("restore", []), ("restore_nobinlog", ["--no-binlog"])):
        mysql(primary, "DROP DATABASE IF EXISTS bench_dt")
        wait_replicated(primary, replica)
        with replicas_paused(replicas, pause and not extra):
            run = timed([*restore_cmd, *extra], env=env)
        wait_replicated(primary, replica)
        if checksum(primary, "bench_dt", tables) != checksum(replica, DB, tables):
            raise SystemExit(f"datatier {label} does not match the source")
        found[f"{label}_s"], found[f"{label}_rss"] = run.seconds, run.rss_mb
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--tables", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=4, help="datatier restore --jobs")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of backup timings (median)")
    parser.add_argument(
        "--replicas-live",
        action="store_true",
        help="keep the local replicas applying during restore timings (default: paused, as "
        "if they ran on other hosts)",
    )
    parser.add_argument("--double", action="store_true", help="also measure at twice the rows")
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-bench"))
    parser.add_argument("--port-base", type=int, default=23060)
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up()
    config_path = sandbox.root / "datatier.toml"
    config = load(str(config_path), environ={}).config
    (sandbox.root / "backups" / "bench.toml").write_text(
        'engine = "mysql"\ncompression_level = 3\n'
        f'[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )
    tmp = Path(tempfile.mkdtemp(prefix="dt-bench-"))
    (sandbox.root / "backups" / "bench-local.toml").write_text(
        f'engine = "mysql"\nstore = "file://{tmp}/store"\n'
        f'[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )
    primary, replica = cnf_for(config, "primary", tmp), cnf_for(config, "replica1", tmp)
    replicas = [replica, cnf_for(config, "replica2", tmp)]
    results: dict[str, float] = {}
    try:
        print(f"generating {args.rows} rows in {args.tables} tables ...", file=sys.stderr)
        generate(primary, args.tables, args.rows)
        wait_replicated(primary, replica)
        source_sum = checksum(replica, DB, args.tables)

        results.update(run_backups(config_path, replica, tmp, args.repeat))
        dump_file, mydumper_dir = tmp / "dump.sql.zst", tmp / "mydumper"
        mysql(primary, f"DROP DATABASE {DB}; CREATE DATABASE {DB}")
        wait_replicated(primary, replica)
        with replicas_paused(replicas, not args.replicas_live):
            results["client_restore_s"] = timed(
                f"zstd -dc {dump_file} | mariadb --defaults-file={primary}", shell=True
            ).seconds
        wait_replicated(primary, replica)
        assert checksum(primary, DB, args.tables) == source_sum, "baseline restore differs"
        mysql(primary, "SET SESSION sql_log_bin=0; DROP DATABASE bench; CREATE DATABASE bench")
        results["client_restore_nobinlog_s"] = timed(
            f"zstd -dc {dump_file} | mariadb --defaults-file={primary} "
            "'--init-command=SET SESSION sql_log_bin=0'",
            shell=True,
        ).seconds
        assert checksum(primary, DB, args.tables) == source_sum, "baseline restore differs"
        results["myloader_s"] = timed(
            [
                "myloader",
                f"--defaults-file={primary}",
                "-d",
                str(mydumper_dir),
                "-B",
                "bench_myloader",
                "-t",
                "2",
                "-o",
            ]
        ).seconds
        wait_replicated(primary, replica)
        pause = not args.replicas_live
        results.update(run_restores(config_path, args.tables, primary, replicas, args.jobs, pause))
        if args.double:
            generate(primary, args.tables, args.rows * 2)
            wait_replicated(primary, replica)
            results["backup_rss_2x"] = run_backups(config_path, replica, tmp, 1)["backup_rss"]
            doubled = run_restores(config_path, args.tables, primary, replicas, args.jobs, pause)
            results["restore_rss_2x"] = doubled["restore_rss"]
    finally:
        mysql(primary, "DROP DATABASE IF EXISTS bench_dt; DROP DATABASE IF EXISTS bench_myloader")
        shutil.rmtree(tmp, ignore_errors=True)

    for key, value in results.items():
        print(f"{key}: {value:.2f}")
    print(
        f"backup_vs_mariadb_dump_zstd: {results['backup_s'] / results['mariadb_dump_zstd_s']:.2f}"
    )
    print(f"backup_vs_mydumper: {results['backup_s'] / results['mydumper_s']:.2f}")
    print(
        "backup_local_store_vs_mariadb_dump_zstd: "
        f"{results['backup_local_store_s'] / results['mariadb_dump_zstd_s']:.2f}"
    )
    print(f"restore_speedup_vs_client: {results['client_restore_s'] / results['restore_s']:.2f}")
    print(
        "restore_nobinlog_speedup_vs_client_nobinlog: "
        f"{results['client_restore_nobinlog_s'] / results['restore_nobinlog_s']:.2f}"
    )
    print(
        "restore_nobinlog_speedup_vs_myloader (myloader skips the binlog by default): "
        f"{results['myloader_s'] / results['restore_nobinlog_s']:.2f}"
    )
    print(f"backup_peak_rss_mb: {results['backup_rss']:.1f}")
    print(f"restore_peak_rss_mb: {results['restore_rss']:.1f}")
    if args.double:
        print(f"backup_rss_growth_2x: {results['backup_rss_2x'] / results['backup_rss']:.2f}")
        print(f"restore_rss_growth_2x: {results['restore_rss_2x'] / results['restore_rss']:.2f}")


if __name__ == "__main__":
    main()
