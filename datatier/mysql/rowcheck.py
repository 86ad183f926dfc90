"""After a restore: every restored table holds as many rows as the backup recorded; another
count is an integrity failure (exit 4): the copy is not the backup."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from datatier.backup.manifest import Manifest
from datatier.errors import IntegrityFailure
from datatier.mysql.catalogue import NO_DATA_ENGINES
from datatier.mysql.connection import Connection, Endpoint, connect
from datatier.mysql.lettercase import apart
from datatier.mysql.sqltext import qualified


def check_row_counts(
    target: Endpoint,
    manifest: Manifest,
    restored: set[tuple[str, str]],
    targets: dict[str, str],
    jobs: int = 2,
) -> None:
    """IntegrityFailure if a ``restored`` table's row count differs from the manifest
    (tables counted in parallel, one connection per worker). Tables of engines whose rows
    live in other tables or nowhere (a MERGE table counts its underlying tables' rows; the
    backup holds none of its own) are not counted when the backup holds no rows of them."""
    expected = {(t.database, t.name): t.rows for t in manifest.tables}
    wanted = sorted((db, t) for db, t in restored if db and t and (db, t) in expected)
    elsewhere = _no_data_tables(target, sorted({targets[db] for db, _ in wanted}))
    wanted = [k for k in wanted if expected[k] or (targets[k[0]], k[1]) not in elsewhere]
    local = threading.local()
    opened: list[Connection] = []

    def count(key: tuple[str, str]) -> None:
        database, table = key
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = connect(target)
            opened.append(conn)
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {qualified(targets[database], table)}")
            row = cur.fetchone()
        found = int(row[0]) if row else -1
        if found != expected[key]:
            raise IntegrityFailure(
                f"{targets[database]}.{table}: {found} rows after restore, "
                f"the backup has {expected[key]}",
                hint=f"`datatier backups verify {manifest.backup_id} --restore-test` says "
                "whether the backup itself is wrong; check that nothing else writes to the "
                "target's tables",
            )

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, 4))) as pool:
            for future in [pool.submit(count, key) for key in wanted]:
                future.result()
    finally:
        for conn in opened:
            conn.close()


def _no_data_tables(target: Endpoint, databases: list[str]) -> set[tuple[str, str]]:
    """The tables of ``databases`` on ``target`` whose engine keeps no rows of its own."""
    if not databases:
        return set()
    found: set[tuple[str, str]] = set()
    with connect(target) as conn, conn.cursor() as cur:
        for batch in apart(databases):  # IN ('Shop', 'shop') would ask for Shop alone
            marks = ", ".join(["%s"] * len(batch))
            cur.execute(
                "SELECT TABLE_SCHEMA, TABLE_NAME, ENGINE FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA IN ({marks})",
                batch,
            )
            found |= {
                (str(db), str(t)) for db, t, engine in cur.fetchall() if engine in NO_DATA_ENGINES
            }
    return found
