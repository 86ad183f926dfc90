"""The scratch databases of a logical restore test: names, the run's lock, leftovers.

Each run restores into databases of its own, ``dtv_<backup id>_r<run>_<n>`` (``run``: six
random hex digits), and holds a named lock for that run (``GET_LOCK`` on a connection of
its own, released by the server when the run dies). Before it starts, a run looks at the
target's scratch databases of the same backup left by other runs:

* a run whose lock is free is dead (killed mid-way): its databases are dropped (they are
  copies of the backup's data, and nothing else may use these names);
* a run whose lock is held is running: this one is refused (NotReadyYet, exit 5) before it
  changes anything. Two restore tests of one backup at once would only double the load,
  and a refused run never touches the running one's databases.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from collections.abc import Iterable, Iterator

from datatier.errors import NotReadyYet
from datatier.log import get_logger
from datatier.mysql.claim import LONGEST_WAIT
from datatier.mysql.connection import Connection, Endpoint, connect
from datatier.mysql.sqltext import ident

log = get_logger(__name__)

PREFIX = "datatier.verify."


def stem(backup_id: str) -> str:
    """``dtv_<backup id>``, lower case, ``-`` as ``_`` (the start of every scratch name)."""
    return "dtv_" + backup_id.replace("-", "_").lower()


def new_run() -> str:
    return secrets.token_hex(3)


def names(backup_id: str, run: str, databases: Iterable[str]) -> dict[str, str]:
    """Source database -> this run's scratch database."""
    return {db: f"{stem(backup_id)}_r{run}_{i}" for i, db in enumerate(sorted(databases))}


def _lock(backup_id: str, run: str) -> str:
    digest = hashlib.sha256(f"{stem(backup_id)}_r{run}".encode()).hexdigest()
    return PREFIX + digest[:40]


@contextlib.contextmanager
def run_held(target: Endpoint, backup_id: str, run: str) -> Iterator[None]:
    """Hold this run's lock on ``target`` while the block runs (the module docstring)."""
    conn = connect(target)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION wait_timeout = %s", (LONGEST_WAIT,))
            cur.execute("SELECT GET_LOCK(%s, 0)", (_lock(backup_id, run),))
            (got,) = cur.fetchone() or (0,)
        if got != 1:  # six random hex digits taken by a live run: never in practice
            raise NotReadyYet(f"restore test run {run} of {backup_id} is already running")
        yield
    finally:
        conn.close()


def clear_leftovers(target: Endpoint, backup_id: str, run: str) -> None:
    """Drop the scratch databases of ``backup_id`` that dead runs left on ``target``;
    NotReadyYet (nothing dropped) when another run of it is alive."""
    pattern = re.compile(re.escape(stem(backup_id)) + r"_r([0-9a-f]{6})_[0-9]+")
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (_like(stem(backup_id)) + "\\_r%",))
        runs: dict[str, list[str]] = {}
        for (name,) in cur.fetchall():
            found = pattern.fullmatch(str(name))
            if found and found.group(1) != run:
                runs.setdefault(found.group(1), []).append(str(name))
        for other, databases in sorted(runs.items()):
            cur.execute("SELECT GET_LOCK(%s, 0)", (_lock(backup_id, other),))
            (got,) = cur.fetchone() or (0,)
            if got != 1:
                raise NotReadyYet(
                    f"another restore test of {backup_id} is running on {target.label} "
                    f"(into {', '.join(sorted(databases))})",
                    hint="run it again once that one has finished",
                )
            try:
                drop(conn, databases)
                log.warning(
                    "verify.scratch_left_dropped",
                    backup_id=backup_id,
                    databases=sorted(databases),
                    note="left by a restore test that did not finish (killed?)",
                )
            finally:
                cur.execute("SELECT RELEASE_LOCK(%s)", (_lock(backup_id, other),))


def drop(conn: Connection, databases: Iterable[str]) -> None:
    """Drop ``databases`` without binlogging them."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        # a scratch child's foreign key may name a scratch parent (requalified under the
        # rename): with checks on, the parent could not be dropped first
        cur.execute("SET SESSION foreign_key_checks = 0")
        for database in databases:
            cur.execute(f"DROP DATABASE IF EXISTS {ident(database)}")


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching itself."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
