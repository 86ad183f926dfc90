"""MySQL backup and restore of a schema with many small tables: datatier against
``mariadb-dump | zstd`` and ``mydumper`` + zstd, on the same data in one run.

Run: ``.venv/bin/python benchmarks/mysql_many_tables.py [--databases 10] [--tables 2000]
[--rows 5] [--jobs 4] [--repeat 1] [--port-base 23500] [--dir .sandbox-many]
[--s3 moto|gofakes3] [--s3-latency-ms 20]``

It brings up (or reuses) a sandbox in ``--dir`` (ports ``--port-base``+; MongoDB and the
second memcached are skipped), creates ``--databases`` databases ``many_NN`` holding
``--tables`` tables in all (``--rows`` rows each; four shapes in turn: an integer primary
key with a secondary index, a composite primary key with a unique key, no key at all, and a
TEXT column with a prefix index), plus per database two views, a trigger, a function and a
procedure. It waits for replica1, then times, from replica1 (backups interleaved over
``--repeat`` rounds, medians):

* ``mariadb-dump --single-transaction ... | zstd -3``;
* ``mydumper -t N --trx-consistency-only -G -R -E`` then ``zstd -3`` of its files;
* ``datatier backup run --dry-run`` (the plan alone) and ``datatier backup run``
  (``jobs = N``) into the sandbox's S3 server (moto, a Python server sharing the cores);
* ``datatier restore --jobs N`` of that backup into renamed databases on the primary, and
  the stock client (``zstd -dc | mariadb``) loading mariadb-dump's file, likewise renamed,
  each checked against the source with CHECKSUM TABLE (replicas' SQL threads paused
  meanwhile, both binlogged). The manifest's size is read from the store.

``--s3 gofakes3`` and ``--s3-latency-ms`` change the S3 server datatier uses (port-base+60,
+61; :mod:`benchmarks.s3_server`). Prints ``name: value`` lines (seconds, MiB, counts), then
the ratios. Peak RSS is datatier's Python process, by GNU ``time`` (:mod:`benchmarks.measure`).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import print_results, timed  # noqa: E402
from benchmarks.mysql_backup import (  # noqa: E402
    cnf_for,
    mysql,
    purge_binlogs,
    replicas_paused,
    wait_replicated,
)
from benchmarks.s3_server import add_arguments as add_s3_arguments  # noqa: E402
from benchmarks.s3_server import benchmark_s3  # noqa: E402
from datatier.backup.manifest import manifest_key  # noqa: E402
from datatier.backup.stores import store_for  # noqa: E402
from datatier.config import load  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

PREFIX = "many_"
SHAPES = (
    "CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, n INT, KEY (name))",
    "CREATE TABLE {t} (a INT, b INT, code CHAR(8) NOT NULL, PRIMARY KEY (a, b), UNIQUE KEY (code))",
    "CREATE TABLE {t} (id INT, name VARCHAR(32), n INT)",
    "CREATE TABLE {t} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, body TEXT, KEY (body(16)))",
)
ROWS = (
    "INSERT INTO {t} SELECT seq, CONCAT('n', seq), seq * 7 FROM seq_1_to_{n}",
    "INSERT INTO {t} SELECT seq, seq % 3, CONCAT('c', seq) FROM seq_1_to_{n}",
    "INSERT INTO {t} SELECT seq, CONCAT('n', seq), NULL FROM seq_1_to_{n}",
    "INSERT INTO {t} SELECT seq, REPEAT('x', seq * 10) FROM seq_1_to_{n}",
)


def database_names(count: int) -> list[str]:
    return [f"{PREFIX}{i:02d}" for i in range(count)]


def table_names(tables: int, databases: int, index: int) -> list[str]:
    """The tables of database number ``index`` (``tables`` spread evenly)."""
    per = tables // databases + (1 if index < tables % databases else 0)
    return [f"t{j:04d}" for j in range(per)]


def generate(primary: Path, databases: int, tables: int, rows: int, tmp: Path) -> None:
    """The dataset (module docstring), one client run per database."""
    for i, db in enumerate(database_names(databases)):
        lines = [f"DROP DATABASE IF EXISTS {db};", f"CREATE DATABASE {db};", f"USE {db};"]
        names = table_names(tables, databases, i)
        for j, name in enumerate(names):
            lines.append(SHAPES[j % 4].format(t=name) + ";")
            lines.append(ROWS[j % 4].format(t=name, n=rows) + ";")
        first, second = names[0], names[min(1, len(names) - 1)]
        lines += [
            f"CREATE VIEW v_first AS SELECT id, name FROM {first};",
            "CREATE VIEW v_count AS SELECT COUNT(*) AS c FROM v_first;",
            f"CREATE TRIGGER trg BEFORE INSERT ON {first} FOR EACH ROW SET NEW.n = NEW.id;",
            "CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;",
            f"CREATE PROCEDURE bump() UPDATE {second} SET b = b WHERE a = 0;",
        ]
        script = tmp / f"{db}.sql"
        script.write_text("\n".join(lines) + "\n")
        with script.open() as stdin:
            subprocess.run(
                ["mariadb", f"--defaults-file={primary}"], stdin=stdin, check=True, text=True
            )


def checksums(cnf: Path, databases: list[str], tables: int, names: dict[str, str]) -> str:
    """CHECKSUM TABLE of every table, ``names`` mapping source database names to the ones
    read."""
    found = []
    count = len(databases)
    for i, db in enumerate(databases):
        listed = ", ".join(f"{names.get(db, db)}.{t}" for t in table_names(tables, count, i))
        found += [
            line.split("\t")[1] for line in mysql(cnf, f"CHECKSUM TABLE {listed}").splitlines()
        ]
    return " ".join(found)


def run_backups(
    config_path: Path, replica: Path, tmp: Path, dbs: list[str], rounds: int, jobs: int
) -> tuple[dict[str, float], str]:
    """Backup-side timings, interleaved per round; medians, and the last backup's ID."""
    env = {**os.environ, "DATATIER_CONFIG": str(config_path)}
    dt = str(ROOT / ".venv/bin/datatier")
    runs: dict[str, list[float]] = {}
    rss: dict[str, list[float]] = {}
    mydumper = (
        f"mydumper --defaults-file={replica} --regex '^{PREFIX}' -t {jobs} -G -R -E "
        "--trx-consistency-only -v 0"
    )
    for _ in range(rounds):
        steps: dict[str, tuple[list[str] | str, bool, dict[str, str] | None]] = {
            "mariadb_dump_zstd_s": (
                f"mariadb-dump --defaults-file={replica} --single-transaction --quick "
                "--master-data=2 --gtid --routines --triggers --events --hex-blob "
                f"--databases {' '.join(dbs)} | zstd -q -3 > {tmp / 'dump.sql.zst'}",
                True,
                None,
            ),
            "mydumper_zstd_s": (
                f"rm -rf {tmp / 'mydz'} && {mydumper} -o {tmp / 'mydz'} && "
                f"zstd -q -3 -T0 --rm {tmp / 'mydz'}/*.sql",
                True,
                None,
            ),
            "dry_run_s": ([dt, "backup", "run", "many", "--dry-run"], False, env),
            "backup_s": ([dt, "backup", "run", "many", "--json"], False, env),
        }
        for name, (argv, shell, step_env) in steps.items():
            run = timed(argv, shell=shell, env=step_env)
            runs.setdefault(name, []).append(run.seconds)
            if not shell:
                rss.setdefault(name.replace("_s", "_rss"), []).append(run.rss_mb)
            if name == "backup_s":
                made = json.loads(run.out)
                backup_id = made["id"]
                runs.setdefault("backup_objects", []).append(made["objects"])
                ddl = made["consistency"].get("ddl_block_seconds") or 0.0
                runs.setdefault("backup_ddl_block_s", []).append(ddl)
    found = {name: statistics.median(values) for name, values in runs.items()}
    found.update({name: max(values) for name, values in rss.items()})
    return found, backup_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=10)
    parser.add_argument("--tables", type=int, default=2000, help="tables in all")
    parser.add_argument("--rows", type=int, default=5, help="rows per table")
    parser.add_argument("--jobs", type=int, default=4, help="threads/connections for everyone")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of backup timings (median)")
    parser.add_argument("--replicas-live", action="store_true")
    parser.add_argument("--keep-data", action="store_true", help="reuse the generated data")
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-many"))
    parser.add_argument("--port-base", type=int, default=23500)
    add_s3_arguments(parser)
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up(skip=("mongo", "mongo2", "memcached2"))
    config_path = sandbox.root / "datatier.toml"
    config = load(str(config_path), environ={}).config
    dbs = database_names(args.databases)
    (sandbox.root / "backups" / "many.toml").write_text(
        f'engine = "mysql"\ncompression_level = 3\njobs = {args.jobs}\n'
        f'[source]\nnode = "replica1"\ndatabases = {json.dumps(dbs)}\n'
    )
    tmp = Path(tempfile.mkdtemp(prefix="dt-many-"))
    primary, replica = cnf_for(config, "primary", tmp), cnf_for(config, "replica1", tmp)
    replicas = [replica, cnf_for(config, "replica2", tmp)]
    dt = str(ROOT / ".venv/bin/datatier")
    renames = {db: f"r{db}" for db in dbs}
    results: dict[str, float] = {}
    if args.s3_latency_ms:
        results["s3_latency_ms"] = args.s3_latency_ms
    stack = contextlib.ExitStack()
    try:
        bench_config = stack.enter_context(
            benchmark_s3(config_path, args.port_base + 60, args.s3, args.s3_latency_ms)
        )
        env = {**os.environ, "DATATIER_CONFIG": str(bench_config)}
        have = mysql(
            replica,
            f"SELECT COUNT(*) FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA LIKE '{PREFIX}%' AND TABLE_TYPE='BASE TABLE'",
        ).strip()
        if not (args.keep_data and int(have) == args.tables):
            print(
                f"generating {args.tables} tables in {args.databases} databases ...",
                file=sys.stderr,
            )
            generate(primary, args.databases, args.tables, args.rows, tmp)
        wait_replicated(primary, replica)
        found, backup_id = run_backups(bench_config, replica, tmp, dbs, args.repeat, args.jobs)
        results.update(found)
        source = checksums(replica, dbs, args.tables, {})
        for db in renames.values():
            mysql(primary, f"DROP DATABASE IF EXISTS {db}")
        wait_replicated(primary, replica)
        argv = [dt, "restore", backup_id, "--jobs", str(args.jobs)]
        argv += [f"--rename={src}={dst}" for src, dst in renames.items()]
        with replicas_paused(replicas, not args.replicas_live):
            run = timed(argv, env=env)
        results["restore_s"], results["restore_rss"] = run.seconds, run.rss_mb
        results["restore_cpu_s"] = run.cpu_s  # datatier and any clients it waited for
        if checksums(primary, dbs, args.tables, renames) != source:
            raise SystemExit("datatier restore does not match the source")
        client = {db: f"c{db}" for db in dbs}  # the stock client loads mariadb-dump's file
        for db in client.values():
            mysql(primary, f"DROP DATABASE IF EXISTS {db}")
        wait_replicated(primary, replica)
        loader = f"zstd -dc {tmp / 'dump.sql.zst'} | sed 's/`{PREFIX}/`c{PREFIX}/g' | mariadb "
        with replicas_paused(replicas, not args.replicas_live):
            results["client_restore_s"] = timed(
                f"{loader} --defaults-file={primary}", shell=True
            ).seconds
        if checksums(primary, dbs, args.tables, client) != source:
            raise SystemExit("the stock client's restore does not match the source")
        for db in client.values():
            mysql(primary, f"DROP DATABASE IF EXISTS {db}")
        bench = load(str(bench_config), environ={}).config
        store = store_for(bench.backup.default_store, bench)
        manifest = b"".join(store.iter_read(manifest_key("many", backup_id)))
        results["manifest_bytes"] = len(manifest)
        for db in renames.values():
            mysql(primary, f"DROP DATABASE IF EXISTS {db}")
    finally:
        stack.close()
        for node in replicas:
            with contextlib.suppress(subprocess.CalledProcessError):
                wait_replicated(primary, node)
        purge_binlogs([primary, *replicas])
        shutil.rmtree(tmp, ignore_errors=True)  # the option files above live here

    n = args.jobs
    ratios = [
        ("ratio backup / mariadb-dump|zstd", "backup_s", "mariadb_dump_zstd_s"),
        (f"ratio backup / mydumper -t {n} + zstd -3", "backup_s", "mydumper_zstd_s"),
        ("ratio dry-run / mariadb-dump|zstd", "dry_run_s", "mariadb_dump_zstd_s"),
        ("speedup restore vs client (zstd -dc | mariadb)", "client_restore_s", "restore_s"),
    ]
    print_results(results, ratios)


if __name__ == "__main__":
    main()
