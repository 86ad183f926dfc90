"""Physical backups: datatier (mariabackup engine) against the bare mariabackup pipeline, and
physical restore against the logical restore of the same data.

Run: ``.venv/bin/python benchmarks/mysql_physical.py [--rows 2000000] [--tables 8] [--double]``

It brings up (or reuses) a sandbox in ``.sandbox-bench`` (ports 23060+), generates the
dataset on the primary (the same tables as ``benchmarks/mysql_backup.py``), waits for
replica1, and backs up replica1's datadir (this host). In one run, on the same data:

* ``backup_vs_bare``: ``datatier backup run`` (full) against ``mariadb-backup --backup
  --stream=mbstream | zstd -3 > /dev/null`` with the same mariabackup options datatier
  passes (``--parallel``, ``--innodb-log-checkpoint-now``); medians of ``--repeat``
  interleaved rounds; also into a local ``file://`` store (no S3 server on these cores).
* ``physical_restore_speedup_vs_logical``: the logical restore (``datatier restore``
  ``--no-binlog`` of a logical backup of the same tables) divided by the physical one
  (fetch + verify + extract + prepare into a new datadir, then ``mariadbd`` started on it
  until it accepts connections). Both restores are checked against the source's checksums.
* ``incremental_vs_full_bytes``: stored bytes of an incremental taken after ~1 % of the
  rows changed, over the full backup's; ``clustered`` changes the newest 1 % of each table's
  rows (as inserts and recent updates do), ``scattered`` every 100th row (touches nearly
  every page: the worst case for a page-level incremental). Both are printed.
* ``backup_peak_rss_mb`` / ``restore_peak_rss_mb`` (GNU ``time``'s peak of datatier's
  process) and, with ``--double``, their growth when the rows double.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import timed  # noqa: E402
from benchmarks.mysql_backup import (  # noqa: E402
    DB,
    checksum,
    cnf_for,
    generate,
    mysql,
    wait_replicated,
)
from datatier.config import load  # noqa: E402
from datatier.mysql.physical.scratch import ScratchServer, free_port  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

JOBS = 2
DT = str(ROOT / ".venv/bin/datatier")


def datatier(env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run a datatier command with ``--json`` and return its document."""
    done = subprocess.run(
        [DT, *args, "--json"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"datatier {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def write_policies(root: Path, store_dir: Path) -> None:
    physical = f'engine = "mariabackup"\njobs = {JOBS}\n[source]\nnode = "replica1"\n'
    (root / "backups" / "bench-phys.toml").write_text(physical)
    (root / "backups" / "bench-phys-local.toml").write_text(
        f'store = "file://{store_dir}"\n{physical}'
    )
    (root / "backups" / "bench-logical.toml").write_text(
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )


def run_backups(
    env: dict[str, str], replica: Path, datadir: str, tmp: Path, rounds: int
) -> dict[str, float]:
    """Full backups, interleaved per round; medians, and datatier's peak RSS."""
    bare = (
        f"mariadb-backup --defaults-file={replica} --backup --stream=mbstream "
        f"--target-dir={tmp / 'bare'} --datadir={datadir} --parallel={JOBS} "
        "--innodb-log-checkpoint-now 2>/dev/null | zstd -q -3 > /dev/null"
    )
    steps: dict[str, tuple[list[str] | str, bool]] = {
        "bare_mariabackup_zstd_s": (bare, True),
        "backup_s": ([DT, "backup", "run", "bench-phys", "--full"], False),
        "backup_local_store_s": ([DT, "backup", "run", "bench-phys-local", "--full"], False),
    }
    runs: dict[str, list[float]] = {}
    rss: list[float] = []
    for _ in range(rounds):
        for name, (argv, shell) in steps.items():
            shutil.rmtree(tmp / "bare", ignore_errors=True)
            run = timed(argv, shell=shell, env=env)
            runs.setdefault(name, []).append(run.seconds)
            if name == "backup_s":
                rss.append(run.rss_mb)
    found = {name: statistics.median(values) for name, values in runs.items()}
    found["backup_rss"] = max(rss)
    return found


def physical_restore(env: dict[str, str], backup_id: str, tmp: Path, port: int, replica: Path,
                     tables: int) -> tuple[float, float]:  # fmt: skip
    """Seconds and peak RSS of restore + first connection to mariadbd on the datadir."""
    datadir = tmp / "restored"
    shutil.rmtree(datadir, ignore_errors=True)
    argv = [DT, "restore", backup_id, "--datadir", str(datadir), "--owner", getpass.getuser(),
            "--jobs", "4"]  # fmt: skip
    started = time.monotonic()
    run = timed(argv, env=env)
    with ScratchServer(datadir, port) as server:
        seconds = time.monotonic() - started
        lines = replica.read_text().splitlines()
        cnf = tmp / "scratch.cnf"
        cnf.write_text(
            "\n".join(f"port={server.port}" if ln.startswith("port=") else ln for ln in lines)
        )
        if checksum(cnf, DB, tables) != checksum(replica, DB, tables):
            raise SystemExit("the physical restore does not match the source")
    shutil.rmtree(datadir, ignore_errors=True)
    return seconds, run.rss_mb


def logical_restore(env: dict[str, str], primary: Path, replica: Path, tables: int) -> float:
    """Seconds of a logical backup's restore (no binlog) of the same tables."""
    backup_id = datatier(env, "backup", "run", "bench-logical")["id"]
    mysql(primary, "SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS bench_logical")
    run = timed([DT, "restore", backup_id, "--rename", f"{DB}=bench_logical", "--no-binlog",
                 "--target", "primary", "--jobs", "4"], env=env)  # fmt: skip
    if checksum(primary, "bench_logical", tables) != checksum(replica, DB, tables):
        raise SystemExit("the logical restore does not match the source")
    mysql(primary, "SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS bench_logical")
    return run.seconds


def incremental_ratio(env: dict[str, str], primary: Path, replica: Path, tables: int,
                      rows: int, where: str) -> float:  # fmt: skip
    """Stored bytes of an incremental after ``where`` changed ~1 % of rows, over the full's."""
    full = datatier(env, "backup", "run", "bench-phys", "--full")
    per = rows // tables
    for i in range(tables):
        cond = where.format(low=int(per * 0.99))
        mysql(primary, f"UPDATE t{i} SET amount = amount + 1, note = CONCAT(note, 'x') "
                       f"WHERE {cond}", DB)  # fmt: skip
    wait_replicated(primary, replica)
    inc = datatier(env, "backup", "run", "bench-phys", "--incremental")
    assert inc["parent"] == full["id"]
    return float(inc["bytes"]) / float(full["bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--tables", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of backup timings (median)")
    parser.add_argument("--double", action="store_true", help="also measure at twice the rows")
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-bench"))
    parser.add_argument("--port-base", type=int, default=23060)
    parser.add_argument("--scratch-port", type=int, default=0, help="default: port-base + 40")
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up()
    config_path = sandbox.root / "datatier.toml"
    config = load(str(config_path), environ={}).config
    env = {**os.environ, "DATATIER_CONFIG": str(config_path)}
    tmp = Path(tempfile.mkdtemp(prefix="dt-bench-phys-"))
    write_policies(sandbox.root, tmp / "store")
    primary, replica = cnf_for(config, "primary", tmp), cnf_for(config, "replica1", tmp)
    datadir = str(sandbox.root / "replica1" / "data")
    port = free_port([args.scratch_port or args.port_base + 40])
    results: dict[str, float] = {}
    try:
        print(f"generating {args.rows} rows in {args.tables} tables ...", file=sys.stderr)
        generate(primary, args.tables, args.rows, skew=False)
        wait_replicated(primary, replica)
        results.update(run_backups(env, replica, datadir, tmp, args.repeat))
        full = datatier(env, "backup", "run", "bench-phys", "--full")
        results["full_backup_bytes"] = float(full["bytes"])
        results["physical_restore_s"], results["restore_rss"] = physical_restore(
            env, full["id"], tmp, port, replica, args.tables
        )
        results["logical_restore_s"] = logical_restore(env, primary, replica, args.tables)
        results["incremental_clustered_ratio"] = incremental_ratio(
            env, primary, replica, args.tables, args.rows, "id > {low}"
        )
        results["incremental_scattered_ratio"] = incremental_ratio(
            env, primary, replica, args.tables, args.rows, "id % 100 = 7"
        )
        if args.double:
            generate(primary, args.tables, args.rows * 2, skew=False)
            wait_replicated(primary, replica)
            results["backup_rss_2x"] = run_backups(env, replica, datadir, tmp, 1)["backup_rss"]
            doubled = datatier(env, "backup", "run", "bench-phys", "--full")
            results["restore_rss_2x"] = physical_restore(
                env, doubled["id"], tmp, port, replica, args.tables
            )[1]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    for key, value in results.items():
        print(f"{key}: {value:.2f}")
    print(f"backup_vs_bare: {results['backup_s'] / results['bare_mariabackup_zstd_s']:.2f}")
    print(
        "backup_local_store_vs_bare: "
        f"{results['backup_local_store_s'] / results['bare_mariabackup_zstd_s']:.2f}"
    )
    print(
        "physical_restore_speedup_vs_logical: "
        f"{results['logical_restore_s'] / results['physical_restore_s']:.2f}"
    )
    print(f"incremental_vs_full_bytes_clustered: {results['incremental_clustered_ratio']:.3f}")
    print(f"incremental_vs_full_bytes_scattered: {results['incremental_scattered_ratio']:.3f}")
    print(f"backup_peak_rss_mb: {results['backup_rss']:.1f}")
    print(f"restore_peak_rss_mb: {results['restore_rss']:.1f}")
    if args.double:
        print(f"backup_rss_growth_2x: {results['backup_rss_2x'] / results['backup_rss']:.2f}")
        print(f"restore_rss_growth_2x: {results['restore_rss_2x'] / results['restore_rss']:.2f}")


if __name__ == "__main__":
    main()
