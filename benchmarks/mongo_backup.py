"""Mongo backup and restore: datatier against a bare raw scan and a plain insert_many loop.

Run: ``.venv/bin/python benchmarks/mongo_backup.py [--docs 200000] [--single]``

Uses (or starts) the sandbox in ``.sandbox-bench`` (ports 23060+; its MongoDB-protocol
server is FerretDB/SQLite unless a mongod is installed), generates the data, then in one run
prints ``name: value`` lines: backup wall time against a bare ``find_raw_batches`` scan of
the same collections (the server's own read limit), restore documents/s against a plain
``insert_many`` loop of decoded dicts, and datatier's peak RSS (GNU ``time``, see measure.py).
Then (unless ``--single``) the same backup and restore of twice the data, and the peak RSS
of both restores side by side: it must stay flat (issue 17: at most 200 MB, either size).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pymongo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import timed  # noqa: E402
from datatier.config import load  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

DB, COLLECTIONS = "mbench", 4


def generate(client: pymongo.MongoClient[Any], docs: int) -> None:
    client.drop_database(DB)
    per = docs // COLLECTIONS
    for c in range(COLLECTIONS):
        coll = client[DB][f"events{c}"]
        for start in range(0, per, 5000):
            coll.insert_many(
                [
                    {
                        "_id": i,
                        "user": i % 9973,
                        "kind": "click",
                        "page": f"/p/{i % 500}",
                        "ts": i * 1000,
                        "tags": ["a", "b", str(i % 7)],
                        "payload": "x" * 120,
                    }
                    for i in range(start, min(start + 5000, per))
                ]
            )


def bare_scan(client: pymongo.MongoClient[Any]) -> float:
    started = time.monotonic()
    for c in range(COLLECTIONS):
        for _ in client[DB][f"events{c}"].find_raw_batches(sort=[("_id", 1)]):
            pass
    return time.monotonic() - started


def plain_restore(client: pymongo.MongoClient[Any]) -> float:
    client.drop_database("mbench_plain")
    started = time.monotonic()
    for c in range(COLLECTIONS):
        batch: list[dict[str, Any]] = []
        target = client["mbench_plain"][f"events{c}"]
        for doc in client[DB][f"events{c}"].find():
            batch.append(doc)
            if len(batch) == 1000:
                target.insert_many(batch)
                batch = []
        if batch:
            target.insert_many(batch)
    seconds = time.monotonic() - started
    client.drop_database("mbench_plain")
    return seconds


def run_datatier(config: Path, docs: int, client: pymongo.MongoClient[Any]) -> dict[str, float]:
    env = {**os.environ, "DATATIER_CONFIG": str(config)}
    dt = str(ROOT / ".venv/bin/datatier")
    backup = timed([dt, "backup", "run", "mbench", "--json"], env=env)
    backup_s, backup_rss = backup.seconds, backup.rss_mb
    backup_id = json.loads(backup.out)["id"]
    client.drop_database("mbench_dt")
    restore = timed(
        [dt, "restore", backup_id, "--rename", f"{DB}=mbench_dt", "--jobs", "4"], env=env
    )
    restore_s, restore_rss = restore.seconds, restore.rss_mb
    client.drop_database("mbench_dt")
    return {
        "backup_s": backup_s,
        "backup_rss": backup_rss,
        "restore_s": restore_s,
        "restore_docs_per_s": docs / restore_s,
        "restore_rss": restore_rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument(
        "--single", action="store_true", help="skip the second run on twice the data"
    )
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-bench"))
    parser.add_argument("--port-base", type=int, default=23060)
    args = parser.parse_args()
    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up()
    config_path = sandbox.root / "datatier.toml"
    config = load(str(config_path), environ={}).config
    (sandbox.root / "backups" / "mbench.toml").write_text(
        f'engine = "mongo"\n[source]\ndatabases = ["{DB}"]\n'
    )
    results: dict[str, float] = {}
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(config.mongo.uri)
    with mongo as client:
        print(f"generating {args.docs} documents ...", file=sys.stderr)
        generate(client, args.docs)
        results["bare_scan_s"] = bare_scan(client)
        results["plain_insert_many_s"] = plain_restore(client)
        results["plain_insert_many_docs_per_s"] = args.docs / results["plain_insert_many_s"]
        results.update(run_datatier(config_path, args.docs, client))
        if not args.single:
            generate(client, args.docs * 2)
            doubled = run_datatier(config_path, args.docs * 2, client)
            results["backup_rss_2x"] = doubled["backup_rss"]
            results["restore_rss_2x"] = doubled["restore_rss"]
        client.drop_database(DB)
    for key, value in results.items():
        print(f"{key}: {value:.2f}")
    print(f"backup_vs_bare_scan: {results['backup_s'] / results['bare_scan_s']:.2f}")
    print(
        "restore_speedup_vs_insert_many: "
        f"{results['restore_docs_per_s'] / results['plain_insert_many_docs_per_s']:.2f}"
    )
    print(f"backup_peak_rss_mb: {results['backup_rss']:.1f}")
    print(f"restore_peak_rss_mb: {results['restore_rss']:.1f}")
    if not args.single:
        print(f"restore_peak_rss_mb_1x: {results['restore_rss']:.1f}")
        print(f"restore_peak_rss_mb_2x: {results['restore_rss_2x']:.1f}")
        print(f"restore_rss_2x_vs_1x: {results['restore_rss_2x'] / results['restore_rss']:.2f}")


if __name__ == "__main__":
    main()
