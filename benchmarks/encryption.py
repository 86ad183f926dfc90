"""Encryption on against off: MySQL backup and restore wall time and peak RSS (issue 18).

Run: ``.venv/bin/python benchmarks/encryption.py [--rows 2000000] [--tables 8] [--jobs 4]
[--repeat 3]``

Same sandbox and data as ``benchmarks/mysql_backup.py`` (``.sandbox-bench``, ports
23060+): two policies over the same database, ``bench-plain`` (``encrypt = false``) and
``bench-age`` (encrypted to a fresh age key), both into the sandbox's S3 server. Backups
from replica1 and restores into the primary (``--rename``, the replicas' SQL threads paused
as in mysql_backup.py) alternate plain/encrypted over ``--repeat`` rounds (so drift hits
both alike); every restore is checked against the source with CHECKSUM TABLE. Prints
``name: value`` lines (medians; peak RSS is GNU time's ``%M`` of datatier's process,
MiB, the largest of the rounds, see ``benchmarks/measure.py``), then the ratios the issue
sets: wall time with encryption on at most 1.1x off, peak RSS within 10 %.
"""

from __future__ import annotations

import argparse
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

from pyrage import x25519  # noqa: E402

from benchmarks.measure import timed  # noqa: E402
from benchmarks.mysql_backup import (  # noqa: E402
    DB,
    checksum,
    cnf_for,
    generate,
    mysql,
    replicas_paused,
    wait_replicated,
)
from datatier.config import load  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

MODES = ("plain", "age")


def age_env(tmp: Path, config_path: Path) -> dict[str, str]:
    """The environment of every datatier call: a fresh key, recipients and identity."""
    identity = x25519.Identity.generate()
    key = tmp / "age.key"
    key.write_text(f"{identity}\n")
    key.chmod(0o600)
    return {
        **os.environ,
        "DATATIER_CONFIG": str(config_path),
        "DATATIER_ENCRYPTION__RECIPIENTS": str(identity.to_public()),
        "DATATIER_ENCRYPTION__IDENTITY_FILE": str(key),
    }


def measure(
    env: dict[str, str], primary: Path, replicas: list[Path], args: argparse.Namespace
) -> dict[str, list[float]]:
    dt = str(ROOT / ".venv/bin/datatier")
    source = checksum(replicas[0], DB, args.tables)
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for mode in MODES:
            backup = timed([dt, "backup", "run", f"bench-{mode}", "--json"], env=env)
            backup_id = json.loads(backup.out)["id"]
            runs.setdefault(f"backup_{mode}_s", []).append(backup.seconds)
            runs.setdefault(f"backup_{mode}_rss", []).append(backup.rss_mb)
            mysql(primary, "DROP DATABASE IF EXISTS bench_crypt")
            wait_replicated(primary, replicas[0])
            argv = [dt, "restore", backup_id, "--rename", f"{DB}=bench_crypt"]
            with replicas_paused(replicas, True):
                restore = timed([*argv, "--jobs", str(args.jobs)], env=env)
            wait_replicated(primary, replicas[0])
            if checksum(primary, "bench_crypt", args.tables) != source:
                raise SystemExit(f"the {mode} restore does not match the source")
            runs.setdefault(f"restore_{mode}_s", []).append(restore.seconds)
            runs.setdefault(f"restore_{mode}_rss", []).append(restore.rss_mb)
    mysql(primary, "DROP DATABASE IF EXISTS bench_crypt")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--tables", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (medians)")
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-bench"))
    parser.add_argument("--port-base", type=int, default=23060)
    args = parser.parse_args()

    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up()
    config_path = sandbox.root / "datatier.toml"
    config = load(str(config_path), environ={}).config
    policy = f'jobs = {args.jobs}\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    policies = sandbox.root / "backups"
    (policies / "bench-plain.toml").write_text(f'engine = "mysql"\nencrypt = false\n{policy}')
    (policies / "bench-age.toml").write_text(f'engine = "mysql"\nencrypt = true\n{policy}')
    tmp = Path(tempfile.mkdtemp(prefix="dt-bench-crypt-"))
    primary, replica = cnf_for(config, "primary", tmp), cnf_for(config, "replica1", tmp)
    replicas = [replica, cnf_for(config, "replica2", tmp)]
    try:
        print(f"generating {args.rows} rows in {args.tables} tables ...", file=sys.stderr)
        generate(primary, args.tables, args.rows, False)
        wait_replicated(primary, replica)
        runs = measure(age_env(tmp, config_path), primary, replicas, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(  # the benchmark's backups, not the sandbox's others
            [str(ROOT / ".venv/bin/python"), "-c", _CLEANUP, str(config_path)], check=False
        )

    results = {
        name: (max(values) if name.endswith("_rss") else statistics.median(values))
        for name, values in runs.items()
    }
    for key, value in results.items():
        print(f"{key}: {value:.2f}")
    for what in ("backup", "restore"):
        time_ratio = results[f"{what}_age_s"] / results[f"{what}_plain_s"]
        rss_ratio = results[f"{what}_age_rss"] / results[f"{what}_plain_rss"]
        print(f"ratio {what} time encrypted / plain (target <= 1.10): {time_ratio:.2f}")
        print(f"ratio {what} peak RSS encrypted / plain (target <= 1.10): {rss_ratio:.2f}")


_CLEANUP = """
import sys
from datatier.backup.stores import store_for
from datatier.config import load
config = load(sys.argv[1], environ={}).config
store = store_for(config.backup.default_store, config)
for policy in ("bench-plain", "bench-age"):
    store.delete([o.key for o in store.list_objects(policy + "/")])
"""


if __name__ == "__main__":
    main()
