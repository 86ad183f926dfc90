"""Per-table data digests of a live server, computed exactly as a backup computes them.

Used by ``backups verify --restore-test``: a backup's manifest records, per table, the rows
and the data SHA-256 of :mod:`datatier.mysql.pdump` (per key range, the SHA-256 of the row
texts in key order; then the SHA-256 of those). Reading a restored copy the same way, with
the backup's own split points and row text rules (``rules``: the version its manifest
records, see :data:`~datatier.mysql.rowtext.ROW_TEXT_VERSION`), must give the same values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from datatier.mysql.catalogue import read_catalogue
from datatier.mysql.connection import Endpoint, connect
from datatier.mysql.fastreader import RawConnection
from datatier.mysql.flavor import detect
from datatier.mysql.rowtext import ROW_TEXT_VERSION, RowQuery, range_filters, read_texts

RAW_THRESHOLD = 4 << 20  # either rendering path gives the same bytes; this bounds memory


def table_digests(
    target: Endpoint,
    databases: list[str],
    split_points: Mapping[tuple[str, str], Sequence[int]],
    *,
    rules: int = ROW_TEXT_VERSION,
) -> dict[tuple[str, str], tuple[int, str]]:
    """(rows, data SHA-256) for every base table of ``databases``; ``split_points`` per
    (database, table) as the manifest recorded them; ``rules``: the row text rules of that
    version (:data:`~datatier.mysql.rowtext.ROW_TEXT_VERSION`)."""
    wanted = set(databases)
    with connect(target) as conn:
        catalogue = read_catalogue(conn, lambda db: db in wanted, lambda db, t: db in wanted)
    found: dict[tuple[str, str], tuple[int, str]] = {}
    reader = RawConnection(target)
    try:
        version = reader.rows("SELECT VERSION()")[0][0] or b""
        for statement in detect(version.decode()).session_setup:
            reader.execute(statement)
        for table in catalogue.tables:
            if table.kind != "table":
                continue
            if not table.has_rows:  # MERGE and the like: as the backup records them
                found[(table.database, table.name)] = (0, hashlib.sha256().hexdigest())
                continue
            query = RowQuery(table, RAW_THRESHOLD, rules=rules)
            points = split_points.get((table.database, table.name), ())
            rows, combined = 0, hashlib.sha256()
            for where in range_filters(table, points):
                digest = hashlib.sha256()
                for texts in read_texts(reader, query, where):
                    digest.update(b"\n".join(texts) + b"\n")
                    rows += len(texts)
                combined.update(digest.digest())
            found[(table.database, table.name)] = (rows, combined.hexdigest())
    finally:
        reader.close()
    return found
