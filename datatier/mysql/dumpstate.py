"""What a dump learnt about each table while its tasks ran, and the manifest's per-table
records made from it, checked against the catalogue.

A table's ``data_sha256`` is the SHA-256 of the concatenated SHA-256s of its key ranges
(``split_points``), each over the range's row texts in key order, one per line;
``verify --restore-test`` re-reads a restored copy the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from datatier.backup.manifest import TableRecord
from datatier.errors import OperationFailed
from datatier.mysql.catalogue import Catalogue, Table


@dataclass
class TableState:
    """Per table: ranges' digests, rows, parts handed out (guarded by the engine's lock)."""

    table: Table
    split_points: tuple[int, ...] = ()
    range_digests: dict[int, bytes] = field(default_factory=dict)
    rows: int = 0
    data_bytes: int = 0
    parts: int = 0
    part_rows: dict[int, int] = field(default_factory=dict)
    bundled: bool = False


def table_records(
    catalogue: Catalogue, states: dict[tuple[str, str], TableState]
) -> list[TableRecord]:
    """Per table of the catalogue, checked against what was written: every range read,
    parts 1..N each closed, their rows adding up to the table's (OperationFailed if not:
    the backup must not get a manifest)."""
    records = []
    for table in catalogue.tables:
        state = states[(table.database, table.name)]
        name = f"{table.database}.{table.name}"
        ranges = len(state.split_points) + 1
        if state.bundled:
            if sorted(state.range_digests) != [0]:
                raise OperationFailed(f"{name}: its bundle section was not written")
        elif table.has_rows and table.kind == "table":
            if sorted(state.range_digests) != list(range(ranges)):
                raise OperationFailed(f"{name}: not every key range was read (internal error)")
            if sorted(state.part_rows) != list(range(1, state.parts + 1)):
                raise OperationFailed(f"{name}: data objects are not numbered 1..N")
            if sum(state.part_rows.values()) != state.rows:
                raise OperationFailed(f"{name}: data objects do not hold every row read")
        combined = hashlib.sha256(
            b"".join(state.range_digests[i] for i in sorted(state.range_digests))
        ).hexdigest()
        records.append(
            TableRecord(
                database=table.database,
                name=table.name,
                rows=state.rows,
                data_sha256=combined,
                data_bytes=state.data_bytes,
                split_points=state.split_points,
                kind=table.kind,
            )
        )
    return records
