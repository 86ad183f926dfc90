"""Point-in-time restore from a physical base: datatier against the stock replay, same data.

Run: ``.venv/bin/python benchmarks/physical_pitr.py [--rows 200000] [--transactions 40000]
[--threads 2]``

It brings up a fresh sandbox in ``.sandbox-bench-ppitr`` (ports 23260+; MariaDB and S3
only; an earlier one there is removed) and, in one run:

1. a table of ``--rows`` rows on the primary, then a full physical backup of the primary
   (policy ``bench-pphys``, which also owns the binlog archive);
2. a write load of ``--transactions`` small autocommit transactions (inserts, updates,
   deletes; row format) from ``--threads`` writers; the target G is the primary's GTID
   after it; then ``datatier binlog archive --once``;
3. datatier: ``restore --policy bench-pphys --until-gtid G --datadir D1`` (GNU time: wall,
   peak RSS); its replay's client session (``replayed.session_seconds``: fed from the
   segments to the end of the session) and the replay with its server's start and clean
   shutdown (``replayed.seconds``);
4. the stock path: the same base restored into D2, the segments downloaded and
   decompressed once, then the README's by-hand lines as written there (a private
   ``mariadbd`` on D2, ``FLUSH PRIVILEGES``, ``mariadb-binlog --start-position=BASE
   --stop-position=G SEGMENTS | mariadb``, a clean shutdown), the client session timed; then
   again with datatier's server settings added (``--innodb-flush-log-at-trx-commit=0
   --innodb-doublewrite=0``: the same server work; datatier can afford them because a copy
   that does not shut down cleanly is never kept);
5. each datadir started and compared with the primary by ``CHECKSUM TABLE``.

Prints ``replay_ratio`` (the tuned stock session's seconds over datatier's: at least 1.0
means datatier's replay is no slower than the stock tools' on the same server work),
``replay_ratio_vs_readme_lines`` (against the README's lines as written: what a by-hand
restore costs), transactions per second, the whole restore's seconds and peak RSS.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402

from benchmarks.measure import timed  # noqa: E402
from datatier.backup.stores import store_for  # noqa: E402
from datatier.config import Config, load  # noqa: E402
from datatier.mysql.physical.scratch import ScratchServer, free_port  # noqa: E402
from datatier.sandbox.supervisor import Sandbox  # noqa: E402

DB = "ppbench"
POLICY = "bench-pphys"
DT = str(ROOT / ".venv/bin/datatier")


def connect(config: Config, node: str = "primary", port: int | None = None) -> Any:
    spec = config.mysql.nodes[node]
    return pymysql.connect(
        host=spec.host, port=port or spec.port, user=config.mysql.user,
        password=config.mysql.password.reveal(), autocommit=True,
    )  # fmt: skip


def sql(config: Config, statement: str) -> list[tuple[Any, ...]]:
    with connect(config) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return list(cur.fetchall())


def datatier(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([DT, *args, "--json"], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"datatier {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def generate(config: Config, rows: int) -> None:
    sql(config, f"DROP DATABASE IF EXISTS {DB}")
    sql(config, f"CREATE DATABASE {DB}")
    sql(config, f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, qty INT, note VARCHAR(64), KEY (qty))")
    with connect(config) as conn, conn.cursor() as cur:
        for low in range(0, rows, 10_000):
            values = ",".join(
                f"({i}, {i % 1000}, 'row {i}')" for i in range(low, min(rows, low + 10_000))
            )
            cur.execute(f"INSERT INTO {DB}.t VALUES {values}")


def load_phase(config: Config, rows: int, transactions: int, threads: int) -> float:
    """The write load; its transactions per second."""

    def writer(n: int) -> None:
        with connect(config) as conn, conn.cursor() as cur:
            for k in range(n, transactions, threads):
                kind = k % 4
                if kind == 0:
                    cur.execute(f"INSERT INTO {DB}.t VALUES (%s, %s, 'new')", (rows + k, k % 997))
                elif kind == 3:
                    cur.execute(f"DELETE FROM {DB}.t WHERE id = %s", ((k * 7919) % rows,))
                else:
                    cur.execute(
                        f"UPDATE {DB}.t SET qty = qty + 1, note = 'upd' WHERE id = %s",
                        ((k * 104729) % rows,),
                    )

    started = time.monotonic()
    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return transactions / (time.monotonic() - started)


def checksum_of(config: Config, port: int | None = None) -> tuple[Any, ...]:
    with connect(config, port=port) as conn, conn.cursor() as cur:
        cur.execute(f"CHECKSUM TABLE {DB}.t EXTENDED")
        found = cur.fetchone()
        cur.execute(f"SELECT COUNT(*) FROM {DB}.t")
        return (found[1] if found else None, cur.fetchone())


def check(config: Config, datadir: Path, port: int, expected: tuple[Any, ...], what: str) -> None:
    with ScratchServer(datadir, port):
        if checksum_of(config, port) != expected:
            raise SystemExit(f"{what} differs from the primary at the target")


TUNED = "--innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0"


def stock_replay(
    config: Config,
    env: dict[str, str],
    base: str,
    start: str,
    target: str,
    tmp: Path,
    server_args: str = "",
) -> float:
    """The README's by-hand replay on the base restored into ``tmp/stock`` (``server_args``
    added to its ``mariadbd`` line): seconds of its client session (``FLUSH PRIVILEGES``,
    ``mariadb-binlog | mariadb``, ``gtid_slave_pos``), as datatier's ``session_seconds``."""
    datadir = tmp / "stock"
    shutil.rmtree(datadir, ignore_errors=True)
    datatier(env, "restore", base, "--datadir", str(datadir), "--owner", getpass.getuser())
    plan = datatier(env, "restore", "--policy", POLICY, "--until-gtid", target,
                    "--datadir", str(tmp / "unused"), "--dry-run")  # fmt: skip
    store = store_for(config.backup.default_store, config)
    segments = []
    for n, segment in enumerate(plan["segments"]):
        path = tmp / f"segment{n}.binlog.zst"
        path.write_bytes(store.get_bytes(segment["key"]))
        subprocess.run(["zstd", "-dqf", "--rm", str(path)], check=True)
        segments.append(str(path.with_suffix("")))
    text = (ROOT / "README.md").read_text()
    first = text.index("mariadbd --no-defaults --datadir=full --socket=/tmp/replay.sock")
    script = text[first : text.index("```", first)]
    for was, now in (
        ("--datadir=full", f"--datadir={datadir}"),
        ("/tmp/replay.", f"{tmp}/replay."),
        ("--local-load=/tmp", f"--local-load={tmp}"),
        ("--user=mysql", f"--user={getpass.getuser()} {server_args}"),
        ("BASE", start),
        ("--stop-position=GTID", f"--stop-position={target}"),
        ("SEGMENT...", " ".join(segments)),
        ("'POS'", f"'{target}'"),
    ):
        script = script.replace(was, now)
    marked = script.replace('{ echo "FLUSH', 'date "+STAMP %s.%N" >&2\n{ echo "FLUSH').replace(
        "\nkill ", '\ndate "+STAMP %s.%N" >&2\nkill '
    )
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", marked], check=True, stderr=subprocess.PIPE
    )
    lines = done.stderr.decode(errors="replace").splitlines()
    stamps = [float(line.split()[1]) for line in lines if line.startswith("STAMP ")]
    return stamps[-1] - stamps[-2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", default=str(ROOT / ".sandbox-bench-ppitr"))
    parser.add_argument("--port-base", type=int, default=23260)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--transactions", type=int, default=40_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    Sandbox(Path(args.dir), args.port_base).down(purge=True)  # a fresh binlog and archive
    sandbox = Sandbox(Path(args.dir), args.port_base)
    sandbox.up(skip=("memcached", "memcached2", "mongo"))
    config_path = Path(args.dir) / "datatier.toml"
    (Path(args.dir) / "backups" / f"{POLICY}.toml").write_text(
        'engine = "mariabackup"\njobs = 2\n[source]\nnode = "primary"\n'
    )
    env = {**os.environ, "DATATIER_CONFIG": str(config_path), "DATATIER_BINLOG__POLICY": POLICY}
    config = load(str(config_path), environ=env).config
    store = store_for(config.backup.default_store, config)
    store.delete([o.key for o in store.list_objects(f"{POLICY}/")])
    port = free_port(range(args.port_base + 40, args.port_base + 60))
    tmp = Path(tempfile.mkdtemp(prefix="dt-bench-ppitr-"))
    try:
        print(f"generating {args.rows} rows ...", file=sys.stderr)
        generate(config, args.rows)
        base = datatier(env, "backup", "run", POLICY, "--full")
        print(f"load: {args.transactions} transactions ...", file=sys.stderr)
        rate = load_phase(config, args.rows, args.transactions, args.threads)
        target = str(sql(config, "SELECT @@gtid_binlog_pos")[0][0])
        expected = checksum_of(config)
        datatier(env, "binlog", "archive", "--once")
        print("datatier restore ...", file=sys.stderr)
        datadir = tmp / "datatier"
        run = timed([DT, "restore", "--policy", POLICY, "--until-gtid", target, "--datadir",
                     str(datadir), "--owner", getpass.getuser(), "--json"], env=env)  # fmt: skip
        doc = json.loads(run.out)
        replayed = doc["replayed"]
        if replayed["gtid_pos"] != target:
            raise SystemExit(f"datatier reports {replayed['gtid_pos']}, the target is {target}")
        check(config, datadir, port, expected, "datatier's restore")
        shutil.rmtree(datadir)
        print("stock replay ...", file=sys.stderr)
        stock = stock_replay(config, env, base["id"], doc["start"], target, tmp)
        check(config, tmp / "stock", port, expected, "the stock replay")
        tuned = stock_replay(config, env, base["id"], doc["start"], target, tmp, TUNED)
        check(config, tmp / "stock", port, expected, "the tuned stock replay")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours = float(replayed["session_seconds"])
    count = int(replayed["transactions"])
    print(f"load_tx_per_s: {rate:.0f}")
    print(f"replay_transactions: {count}")
    print(f"replay_binlog_mb: {replayed['bytes'] / (1 << 20):.1f}")
    print(f"datatier_replay_s: {ours:.2f}")
    print(f"datatier_replay_with_server_s: {float(replayed['seconds']):.2f}")
    print(f"stock_replay_s: {stock:.2f}")
    print(f"datatier_replay_tx_per_s: {count / ours:.0f}")
    print(f"stock_replay_tx_per_s: {count / stock:.0f}")
    print(f"stock_tuned_replay_s: {tuned:.2f}")
    print(f"replay_ratio: {tuned / ours:.2f}")
    print(f"replay_ratio_vs_readme_lines: {stock / ours:.2f}")
    print(f"restore_total_s: {run.seconds:.2f}")
    print(f"restore_peak_rss_mb: {run.rss_mb:.1f}")
    print(f"sandbox: {args.dir} (stop it with: datatier sandbox down --dir {args.dir})")


if __name__ == "__main__":
    main()
