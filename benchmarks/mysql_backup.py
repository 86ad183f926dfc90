"""MySQL backup and restore: datatier against mariadb-dump|zstd, mydumper, the mysql client and
myloader, on the same data in one run.

Run: ``.venv/bin/python benchmarks/mysql_backup.py [--rows 2000000] [--tables 8] [--skew]
[--jobs 4] [--repeat 3] [--restore-repeat 1] [--double] [--s3 moto|gofakes3] [--s3-latency-ms N]``

It brings up (or reuses) a sandbox in ``.sandbox-bench`` (ports 23060+), generates the
dataset on the primary (``--skew``: one table holds 80 % of the rows), waits for replica1,
then times, from replica1 and into the primary:

* backups, interleaved over ``--repeat`` rounds (medians): ``mariadb-dump | zstd -3``
  (into a local file, and piped on into the same S3 server by ``aws s3 cp -`` as a cron
  script would, where the AWS CLI is installed);
  ``mydumper -t N`` then ``zstd -3`` of its files (the same compression as datatier);
  ``mydumper -t N -c`` (its own gzip); ``datatier backup run`` (``jobs = N``) into the S3
  server and into a ``file://`` store (datatier's own cost without moto, a Python S3 server
  sharing these two cores);
* restores, once per ``--restore-repeat`` round (medians): the stock client
  (``zstd -dc | mariadb``), ``myloader -t N`` (no binlog, its default) and
  ``myloader -t N -e`` (binlog on), ``datatier restore --jobs N`` with and without
  ``--no-binlog``, and ``--no-binlog --keys-with-data`` (indexes built row by row, to show
  what building them after the data gains), and both again from the ``file://`` store
  (myloader reads local files; moto is a Python server on these cores).
  The local replicas' SQL threads are paused while a restore runs (they share the two cores;
  in production they are other hosts) unless ``--replicas-live``. Every restore is checked
  against the source with CHECKSUM TABLE.

``--s3 gofakes3`` (a Go S3 server, ``make bench-tools``) and ``--s3-latency-ms N`` change the
S3 server datatier and ``aws s3 cp`` use (ports ``--port-base``+60, +61;
:mod:`benchmarks.s3_server`). Prints ``name: value`` lines, then the ratios the issue asks
for. Peak RSS is the largest single process of a command (datatier's Python process), MiB, by
GNU ``time``;
``--double`` measures datatier again at twice the rows to show memory stays flat. Each
timed command's CPU seconds (user + system, its children included: ``*_cpu``) and those the
server it reads or loads spent meanwhile (``*_server_cpu``) are printed too: on two shared
cores they vary less than wall times, and they show whose work a difference is. Their sums
(``*_total_cpu``) are compared too: with two cores busy, a backup whose sum is higher cannot
finish first, however its work is spread over threads.
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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import print_results, timed  # noqa: E402
from benchmarks.s3_server import add_arguments as add_s3_arguments  # noqa: E402
from benchmarks.s3_server import benchmark_s3  # noqa: E402
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


def generate(primary: Path, tables: int, rows: int, skew: bool) -> None:
    """``tables`` tables of ``rows`` rows in all (``skew``: the first holds 80 %)."""
    mysql(primary, f"DROP DATABASE IF EXISTS {DB}; CREATE DATABASE {DB}")
    sizes = [rows // tables] * tables
    if skew and tables > 1:
        big = rows * 8 // 10
        sizes = [big] + [(rows - big) // (tables - 1)] * (tables - 1)
    for i, per in enumerate(sizes):
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


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) the server process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_with_server(
    argv: list[str] | str, server: int, *, shell: bool = False, env: dict[str, str] | None = None
) -> tuple[Any, float]:
    """``timed(argv)`` and the CPU seconds the server process ``server`` spent meanwhile."""
    before = server_cpu(server)
    run = timed(argv, shell=shell, env=env)
    return run, server_cpu(server) - before


def wait_replicated(primary: Path, replica: Path) -> None:
    gtid = mysql(primary, "SELECT @@gtid_binlog_pos").strip()
    mysql(replica, f"SELECT MASTER_GTID_WAIT('{gtid}', 900)")


def purge_binlogs(nodes: list[Path]) -> None:
    """Drop the binlogs the generation and the restores wrote (every run adds GBs; the
    benchmark never reads them), once the replicas have applied them."""
    for cnf in nodes:
        try:
            mysql(cnf, "FLUSH BINARY LOGS")
            current = mysql(cnf, "SHOW MASTER STATUS").split("\t")[0]
            for _ in range(40):  # a log is kept until its binlog checkpoint is written
                mysql(cnf, f"PURGE BINARY LOGS TO '{current}'")
                if len(mysql(cnf, "SHOW BINARY LOGS").splitlines()) <= 1:
                    break
                time.sleep(0.25)
        except subprocess.CalledProcessError as exc:
            print(f"binlogs of {cnf.name} not purged: {exc.stderr.strip()}", file=sys.stderr)


def checksum(cnf: Path, database: str, tables: int) -> str:
    names = ", ".join(f"{database}.t{i}" for i in range(tables))
    return " ".join(
        line.split("\t")[1] for line in mysql(cnf, f"CHECKSUM TABLE {names}").splitlines()
    )


@contextlib.contextmanager
def replicas_paused(replicas: list[Path], enabled: bool) -> Iterator[None]:
    """Stop the replicas' SQL threads while a restore is timed (see module docstring)."""
    if enabled:
        for cnf in replicas:
            mysql(cnf, "STOP SLAVE SQL_THREAD")
    try:
        yield
    finally:
        if enabled:
            for cnf in replicas:
                mysql(cnf, "START SLAVE SQL_THREAD")


def aws_env(config: Any) -> dict[str, str] | None:
    """The environment for ``aws s3 cp`` into the sandbox's S3 server (None without the AWS
    CLI: that baseline is then left out)."""
    if shutil.which("aws") is None:
        return None
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": config.s3.access_key_id.reveal(),
        "AWS_SECRET_ACCESS_KEY": config.s3.secret_access_key.reveal(),
        "AWS_DEFAULT_REGION": config.s3.region,
    }


def run_backups(
    config_path: Path, replica: Path, tmp: Path, rounds: int, jobs: int, server: int
) -> dict[str, float]:
    """Backup-side timings, interleaved per round (so drift hits all alike); medians."""
    env = {**os.environ, "DATATIER_CONFIG": str(config_path)}
    config = load(str(config_path), environ={}).config
    upload_env = aws_env(config)
    bucket = config.backup.default_store.removeprefix("s3://").split("/")[0]
    dt = str(ROOT / ".venv/bin/datatier")
    runs: dict[str, list[float]] = {}
    rss: list[float] = []
    mydumper = f"mydumper --defaults-file={replica} -B {DB} -t {jobs} --trx-consistency-only -v 0"
    for _ in range(rounds):
        steps: dict[str, tuple[list[str] | str, bool, dict[str, str] | None]] = {
            "mariadb_dump_zstd_s": (
                f"mariadb-dump --defaults-file={replica} --single-transaction --quick "
                "--master-data=2 --gtid --routines --triggers --events --hex-blob "
                f"--databases {DB} | zstd -q -3 > {tmp / 'dump.sql.zst'}",
                True,
                None,
            ),
            **(
                {
                    "mariadb_dump_zstd_s3_s": (
                        f"mariadb-dump --defaults-file={replica} --single-transaction --quick "
                        "--master-data=2 --gtid --routines --triggers --events --hex-blob "
                        f"--databases {DB} | zstd -q -3 | aws --endpoint-url "
                        f"{config.s3.endpoint_url} s3 cp - s3://{bucket}/baseline/dump.sql.zst",
                        True,
                        upload_env,
                    )
                }
                if upload_env is not None
                else {}
            ),
            "mydumper_zstd_s": (
                f"rm -rf {tmp / 'mydz'} && {mydumper} -o {tmp / 'mydz'} && "
                f"zstd -q -3 -T0 --rm {tmp / 'mydz'}/*.sql",
                True,
                None,
            ),
            "mydumper_gzip_s": (
                f"rm -rf {tmp / 'mydumper'} && {mydumper} -c -o {tmp / 'mydumper'}",
                True,
                None,
            ),
            "backup_s": ([dt, "backup", "run", "bench"], False, env),
            "backup_local_store_s": ([dt, "backup", "run", "bench-local"], False, env),
        }
        for name, (argv, shell, step_env) in steps.items():
            run, spent = timed_with_server(argv, server, shell=shell, env=step_env)
            runs.setdefault(name, []).append(run.seconds)
            runs.setdefault(name.removesuffix("_s") + "_cpu", []).append(run.cpu_s)
            runs.setdefault(name.removesuffix("_s") + "_server_cpu", []).append(spent)
            if name == "backup_s":
                rss.append(run.rss_mb)
    found = {name: statistics.median(values) for name, values in runs.items()}
    found["backup_rss"] = max(rss)
    return found


def run_restores(
    config_path: Path,
    tables: int,
    primary: Path,
    replicas: list[Path],
    jobs: int,
    pause: bool,
    server: int,
) -> dict[str, float]:
    env = {**os.environ, "DATATIER_CONFIG": str(config_path)}
    dt = str(ROOT / ".venv/bin/datatier")
    replica = replicas[0]
    made = subprocess.run(
        [dt, "backup", "run", "bench", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    backup_id = json.loads(made.stdout)["id"]
    local = subprocess.run(
        [dt, "backup", "run", "bench-local", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    local_id = json.loads(local.stdout)["id"]
    found: dict[str, float] = {}
    restore_cmd = [dt, "restore", "--rename", f"{DB}=bench_dt", "--jobs", str(jobs)]
    variants: tuple[tuple[str, list[str]], ...] = (
        ("restore", [backup_id]),
        ("restore_nobinlog", [backup_id, "--no-binlog"]),
        ("restore_nobinlog_keys_with_data", [backup_id, "--no-binlog", "--keys-with-data"]),
        # from the file:// store: datatier's own cost, without moto sharing the two cores
        ("restore_local_store", [local_id]),
        ("restore_local_store_nobinlog", [local_id, "--no-binlog"]),
    )
    for label, extra in variants:
        mysql(primary, "DROP DATABASE IF EXISTS bench_dt")
        wait_replicated(primary, replica)
        with replicas_paused(replicas, pause and "--no-binlog" not in extra):
            run, spent = timed_with_server([*restore_cmd, *extra], server, env=env)
        wait_replicated(primary, replica)
        if checksum(primary, "bench_dt", tables) != checksum(replica, DB, tables):
            raise SystemExit(f"datatier {label} does not match the source")
        found[f"{label}_s"], found[f"{label}_rss"] = run.seconds, run.rss_mb
        found[f"{label}_cpu"], found[f"{label}_server_cpu"] = run.cpu_s, spent
    mysql(primary, "DROP DATABASE IF EXISTS bench_dt")
    return found


def run_baseline_restores(
    tmp: Path,
    primary: Path,
    replicas: list[Path],
    tables: int,
    jobs: int,
    pause: bool,
    server: int,
) -> dict[str, float]:
    """The stock client and myloader, with and without binlogging, into fresh databases."""
    replica = replicas[0]
    source = checksum(replica, DB, tables)
    found: dict[str, float] = {}

    def fresh(name: str) -> None:
        mysql(primary, f"DROP DATABASE IF EXISTS {name}")
        wait_replicated(primary, replica)

    # The stock client loads mariadb-dump's file, whose CREATE DATABASE/USE name `bench`:
    # renamed to bench_client (the generated data holds no such text).
    dump = tmp / "dump.sql.zst"
    client_sql = tmp / "client.sql"
    with client_sql.open("wb") as out:
        text = subprocess.run(["zstd", "-dc", str(dump)], capture_output=True, check=True).stdout
        out.write(text.replace(b"`bench`", b"`bench_client`"))
    for label, init in (
        ("client_restore_s", ""),
        ("client_restore_nobinlog_s", "SET SESSION sql_log_bin=0"),
    ):
        fresh("bench_client")
        flag = f"'--init-command={init}'" if init else ""
        with replicas_paused(replicas, pause and not init):
            run, spent = timed_with_server(
                f"mariadb --defaults-file={primary} {flag} < {client_sql}", server, shell=True
            )
        found[label] = run.seconds
        stem = label.removesuffix("_s")
        found[f"{stem}_cpu"], found[f"{stem}_server_cpu"] = run.cpu_s, spent
        wait_replicated(primary, replica)
        assert checksum(primary, "bench_client", tables) == source, f"{label} differs"
    mysql(primary, "DROP DATABASE IF EXISTS bench_client")
    for label, extra in (("myloader_s", []), ("myloader_binlog_s", ["-e"])):
        fresh("bench_myloader")
        argv = [
            "myloader", f"--defaults-file={primary}", "-d", str(tmp / "mydz_plain"),
            "-B", "bench_myloader", "-t", str(jobs), "-o", *extra,
        ]  # fmt: skip
        with replicas_paused(replicas, pause and bool(extra)):
            run, spent = timed_with_server(argv, server)
        found[label] = run.seconds
        stem = label.removesuffix("_s")
        found[f"{stem}_cpu"], found[f"{stem}_server_cpu"] = run.cpu_s, spent
        wait_replicated(primary, replica)
        assert checksum(primary, "bench_myloader", tables) == source, f"{label} differs"
    mysql(primary, "DROP DATABASE IF EXISTS bench_myloader")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--tables", type=int, default=8)
    parser.add_argument("--skew", action="store_true", help="one table holds 80 %% of the rows")
    parser.add_argument("--jobs", type=int, default=4, help="threads/connections for everyone")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of backup timings (median)")
    parser.add_argument(
        "--restore-repeat", type=int, default=1, help="rounds of restore timings (median)"
    )
    parser.add_argument("--replicas-live", action="store_true")
    parser.add_argument("--double", action="store_true", help="also measure at twice the rows")
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-bench"))
    parser.add_argument("--port-base", type=int, default=23060)
    add_s3_arguments(parser)
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up()
    config_path = sandbox.root / "datatier.toml"
    config = load(str(config_path), environ={}).config
    (sandbox.root / "backups" / "bench.toml").write_text(
        f'engine = "mysql"\ncompression_level = 3\njobs = {args.jobs}\n'
        f'[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )
    tmp = Path(tempfile.mkdtemp(prefix="dt-bench-"))
    (sandbox.root / "backups" / "bench-local.toml").write_text(
        f'engine = "mysql"\njobs = {args.jobs}\nstore = "file://{tmp}/store"\n'
        f'[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )
    primary, replica = cnf_for(config, "primary", tmp), cnf_for(config, "replica1", tmp)
    replicas = [replica, cnf_for(config, "replica2", tmp)]
    pause = not args.replicas_live
    primary_pid, replica_pid = (
        int((sandbox.root / node / "mysqld.pid").read_text()) for node in ("primary", "replica1")
    )
    results: dict[str, float] = {}
    if args.s3_latency_ms:
        results["s3_latency_ms"] = args.s3_latency_ms
    stack = contextlib.ExitStack()
    try:
        config_path = stack.enter_context(  # the S3 server datatier and `aws s3 cp` use
            benchmark_s3(config_path, args.port_base + 60, args.s3, args.s3_latency_ms)
        )
        print(f"generating {args.rows} rows in {args.tables} tables ...", file=sys.stderr)
        generate(primary, args.tables, args.rows, args.skew)
        wait_replicated(primary, replica)
        results.update(run_backups(config_path, replica, tmp, args.repeat, args.jobs, replica_pid))
        subprocess.run(  # an uncompressed mydumper copy for myloader
            f"rm -rf {tmp / 'mydz_plain'} && mydumper --defaults-file={replica} -B {DB} "
            f"-t {args.jobs} --trx-consistency-only -v 0 -o {tmp / 'mydz_plain'}",
            shell=True,
            check=True,
        )
        restores: dict[str, list[float]] = {}
        for _ in range(args.restore_repeat):  # interleaved rounds, as the backups
            for found in (
                run_baseline_restores(
                    tmp, primary, replicas, args.tables, args.jobs, pause, primary_pid
                ),
                run_restores(
                    config_path, args.tables, primary, replicas, args.jobs, pause, primary_pid
                ),
            ):
                for key, value in found.items():
                    restores.setdefault(key, []).append(value)
        for key, values in restores.items():
            results[key] = max(values) if key.endswith("_rss") else statistics.median(values)
        if args.double:
            generate(primary, args.tables, args.rows * 2, args.skew)
            wait_replicated(primary, replica)
            results["backup_rss_2x"] = run_backups(
                config_path, replica, tmp, 1, args.jobs, replica_pid
            )["backup_rss"]
            doubled = run_restores(
                config_path, args.tables, primary, replicas, args.jobs, pause, primary_pid
            )
            results["restore_rss_2x"] = doubled["restore_rss"]
    finally:
        stack.close()
        for node in replicas:
            with contextlib.suppress(subprocess.CalledProcessError):
                wait_replicated(primary, node)
        purge_binlogs([primary, *replicas])
        shutil.rmtree(tmp, ignore_errors=True)  # the option files above live here

    r = results
    n = args.jobs
    for name in ("backup", "backup_local_store", "mariadb_dump_zstd", "mydumper_zstd"):
        if f"{name}_cpu" in r and f"{name}_server_cpu" in r:
            # what the two cores had to do: the backup's CPU and its source server's
            r[f"{name}_total_cpu"] = r[f"{name}_cpu"] + r[f"{name}_server_cpu"]
    # (label, numerator, denominator): ratios below 1 are faster backups; speedups above 1
    # are faster restores
    ratios = [
        ("ratio backup / mariadb-dump|zstd (target <= 1.0)", "backup_s", "mariadb_dump_zstd_s"),
        (f"ratio backup / mydumper -t {n} + zstd -3 (target <= 1.0)", "backup_s",
         "mydumper_zstd_s"),
        (f"ratio backup / mydumper -t {n} -c (gzip)", "backup_s", "mydumper_gzip_s"),
        ("ratio backup into file:// / mariadb-dump|zstd", "backup_local_store_s",
         "mariadb_dump_zstd_s"),
        ("ratio backup / mariadb-dump|zstd|aws s3 cp - (the cron script's upload too)",
         "backup_s", "mariadb_dump_zstd_s3_s"),
        ("cpu backup into file:// / mariadb-dump|zstd, its own + the server's",
         "backup_local_store_total_cpu", "mariadb_dump_zstd_total_cpu"),
        (f"cpu backup into file:// / mydumper -t {n} + zstd -3, its own + the server's",
         "backup_local_store_total_cpu", "mydumper_zstd_total_cpu"),
        ("speedup restore vs client (target >= 1.5)", "client_restore_s", "restore_s"),
        ("speedup restore --no-binlog vs client without binlog", "client_restore_nobinlog_s",
         "restore_nobinlog_s"),
        ("speedup restore vs myloader -e, both binlogged (target >= 1.0)", "myloader_binlog_s",
         "restore_s"),
        ("speedup restore --no-binlog vs myloader (target >= 1.0)", "myloader_s",
         "restore_nobinlog_s"),
        ("speedup restore from file:// vs myloader -e, both binlogged", "myloader_binlog_s",
         "restore_local_store_s"),
        ("speedup restore from file:// --no-binlog vs myloader", "myloader_s",
         "restore_local_store_nobinlog_s"),
        ("speedup of indexes after the data (--no-binlog, vs --keys-with-data)",
         "restore_nobinlog_keys_with_data_s", "restore_nobinlog_s"),
    ]  # fmt: skip
    print_results(results, ratios)
    if args.double:
        print(f"backup_rss_growth_2x: {r['backup_rss_2x'] / r['backup_rss']:.2f}")
        print(f"restore_rss_growth_2x: {r['restore_rss_2x'] / r['restore_rss']:.2f}")


if __name__ == "__main__":
    main()
