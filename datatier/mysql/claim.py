"""One restore at a time into a database: ``GET_LOCK`` advisory locks on the target.

Two restores into the same database at once interleave their DROP/CREATE and INSERTs (a
table one of them created gets the other's rows, or loses its own), and each may still end
with exit 0. A restore therefore holds, from its first check of the target until its last
(the row counts), one named lock per target database on a connection of its own; a second
restore into any of them is refused at once (NotReadyYet, exit 5) before it changes
anything. A lock is named by the database's name as the target compares it
(:func:`~datatier.mysql.lettercase.name_key`: with ``lower_case_table_names`` 1 or 2,
`Shop` and `shop` are one database and share one lock). The server frees the locks when
that connection ends, so a restore that is killed
leaves none behind; if the server restarts mid-restore they are gone (the restore itself
then fails on its own connections).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator

from datatier.errors import NotReadyYet
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.lettercase import folds_names, name_key

PREFIX = "datatier.restore."
LONGEST_WAIT = 31536000
"""The session's ``wait_timeout`` (MariaDB's maximum, a year): the connection sits idle
while the restore downloads (or waits for Glacier), and must not be dropped."""


def lock_name(database: str) -> str:
    """The lock of target database ``database`` (as the target compares it: see the
    module docstring): a digest, since names may hold any character and lock names are
    limited to 64."""
    digest = hashlib.sha256(database.encode("utf-8", "surrogateescape")).hexdigest()
    return PREFIX + digest[:40]


@contextlib.contextmanager
def claim_databases(target: Endpoint, databases: Iterable[str]) -> Iterator[None]:
    """Hold the locks of ``databases`` on ``target`` for the block; NotReadyYet naming the
    first one another session holds (none is then kept)."""
    wanted = sorted(set(databases))
    if not wanted:
        yield
        return
    with connect(target) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION wait_timeout = %s", (LONGEST_WAIT,))
        fold = folds_names(cur)
        for database in wanted:
            cur.execute("SELECT GET_LOCK(%s, 0)", (lock_name(name_key(database, fold)),))
            row = cur.fetchone()
            if row is None or row[0] != 1:
                raise NotReadyYet(
                    f"another restore into {database!r} on {target.label} is running "
                    "(it holds the database's restore lock)",
                    hint="wait for it to finish, or restore elsewhere with --rename SRC=DST",
                )
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # closing the connection frees them too
                cur.execute("SELECT RELEASE_ALL_LOCKS()")
