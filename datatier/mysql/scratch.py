"""The scratch databases of a logical restore test: names, the run's lock, leftovers.

Each run restores into databases of its own, ``dtv_<backup id>_r<run>_<n>`` (``run``: six
random hex digits), and holds a lock for that run: the restore claim
(:mod:`datatier.mysql.claim`) of the name ``dtv_<backup id>_r<run>``, which no database
has, on a connection of its own that a watcher keeps busy (the server frees it when the run
dies; a run whose lock is lost meanwhile ends with ClaimLost, exit 1, never with a verdict
on the backup). Before it starts, a run looks at the target's scratch databases of the same
backup left by other runs:

* a run whose lock is free is dead (killed mid-way): its databases are dropped (they are
  copies of the backup's data, and nothing else may use these names);
* a run whose lock is held is running: this one is refused (NotReadyYet, exit 5) before it
  changes anything. Two restore tests of one backup at once would only double the load,
  and a refused run never touches the running one's databases.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterable, Iterator

from datatier.errors import NotReadyYet, OperationFailed
from datatier.log import get_logger
from datatier.mysql.claim import claim_databases, lock_name
from datatier.mysql.connection import Connection, Endpoint, connect
from datatier.mysql.lettercase import folds_names, name_key
from datatier.mysql.sqltext import ident

log = get_logger(__name__)


def stem(backup_id: str) -> str:
    """``dtv_<backup id>``, lower case, ``-`` as ``_`` (the start of every scratch name)."""
    return "dtv_" + backup_id.replace("-", "_").lower()


def new_run() -> str:
    return secrets.token_hex(3)


def names(backup_id: str, run: str, databases: Iterable[str]) -> dict[str, str]:
    """Source database -> this run's scratch database."""
    return {db: f"{stem(backup_id)}_r{run}_{i}" for i, db in enumerate(sorted(databases))}


def _run_name(backup_id: str, run: str) -> str:
    """The name whose restore claim is the run's lock (no database is named so)."""
    return f"{stem(backup_id)}_r{run}"


@contextlib.contextmanager
def run_held(target: Endpoint, backup_id: str, run: str) -> Iterator[None]:
    """Hold this run's lock on ``target`` while the block runs (the module docstring)."""
    with claim_databases(target, [_run_name(backup_id, run)]):
        yield


def clear_leftovers(target: Endpoint, backup_id: str, run: str) -> None:
    """Drop the scratch databases of ``backup_id`` that dead runs left on ``target``;
    NotReadyYet (nothing dropped) when another run of it is alive."""
    pattern = re.compile(re.escape(stem(backup_id)) + r"_r([0-9a-f]{6})_[0-9]+")
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT schema_name FROM information_schema.schemata "
            "WHERE schema_name LIKE %s ESCAPE '!'",
            (_like(stem(backup_id)) + "!_r%",),
        )
        runs: dict[str, list[str]] = {}
        for (name,) in cur.fetchall():
            found = pattern.fullmatch(str(name))
            if found and found.group(1) != run:
                runs.setdefault(found.group(1), []).append(str(name))
        fold = folds_names(cur)
        for other, databases in sorted(runs.items()):
            lock = lock_name(name_key(_run_name(backup_id, other), fold))
            cur.execute("SELECT GET_LOCK(%s, 0)", (lock,))
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
                cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))


def require(target: Endpoint, databases: Iterable[str]) -> None:
    """OperationFailed (exit 1, no verdict on the backup) when one of this run's scratch
    ``databases`` is gone from ``target`` after it was read back: dropped by someone else
    meanwhile, so what was read says nothing of the backup."""
    wanted = sorted(set(databases))
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SELECT schema_name FROM information_schema.schemata")
        present = {str(row[0]) for row in cur.fetchall()}
    gone = [db for db in wanted if db not in present]
    if gone:
        raise OperationFailed(
            f"the restore test's scratch database(s) {', '.join(gone)} on {target.label} "
            "were dropped by someone else while it ran: no verdict on the backup",
            hint="run it again",
        )


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
    """``text`` as a LIKE pattern (``ESCAPE '!'``: the same under any sql_mode) matching
    itself."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
