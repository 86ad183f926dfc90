"""What a parallel dump (:mod:`datatier.mysql.pdump`) of a policy would do, decided before it
runs, and the split rule the plan and the dump share.

Split rule: the transactional tables with rows share the dump; a table larger than
:func:`range_share` whose first clustered-key column is an integer is read in up to
:data:`MAX_RANGES` key ranges between its smallest and largest key (:func:`split_points`);
one job never splits. :func:`plan_dump` reads the server's catalogue outside any snapshot
(no lock, no transaction), so its sizes and row counts are ``information_schema``'s
estimates and the dump, which reads the catalogue again at its consistent point, may find a
little more or less. Its consistency method is what the account's privileges allow; the
dump still falls back to one snapshot if the lock is not granted in time.

Bundle rule (:func:`bundles`): small transactional tables of a database are dumped together,
a few dozen to an object, since one object per table costs a request and a client process
each, more than their rows.
"""

from __future__ import annotations

import math
from typing import Any

import pymysql
from pymysql.constants import ER

from datatier.backup.engine import BackupPlan, PlannedTable
from datatier.backup.policy import Policy
from datatier.display import human_bytes
from datatier.errors import OperationFailed
from datatier.mysql.catalogue import Catalogue, Table, read_catalogue
from datatier.mysql.connection import Connection, Endpoint, connect, query_dicts
from datatier.mysql.consistent import SINGLE_SNAPSHOT, lock_method
from datatier.mysql.flavor import detect
from datatier.mysql.privileges import account_privileges
from datatier.mysql.source import SourceChoice
from datatier.mysql.sqltext import ident, qualified

MIN_RANGE_BYTES = 16 << 20
MAX_RANGES = 64
SHOWN_SPLITS = 10  # split tables named in the summary (all are in the details)
BUNDLE_TABLE_BYTES = 1 << 20
"""Tables estimated at most this big (and at most a quarter of a data object) are bundled,"""
BUNDLE_TABLES = 64
"""at most this many to a bundle."""


def bundle_limit(chunk_bytes: int) -> int:
    """The most data (bytes) a bundled table may hold: :data:`BUNDLE_TABLE_BYTES`, and a
    quarter of a data object."""
    return min(BUNDLE_TABLE_BYTES, chunk_bytes // 4)


def bundles(tables: list[Table], jobs: int, chunk_bytes: int) -> list[tuple[Table, ...]]:
    """The small tables of ``tables`` grouped per database: InnoDB-like tables with rows
    (or none) estimated at most :data:`BUNDLE_TABLE_BYTES` and a quarter of
    ``chunk_bytes``, in groups of up to :data:`BUNDLE_TABLES` (fewer when that leaves
    ``jobs`` groups to a database). Sequences and tables read under the lock stay alone."""
    limit = bundle_limit(chunk_bytes)
    small: dict[str, list[Table]] = {}
    for table in tables:
        if table.kind == "table" and table.transactional and table.data_bytes <= limit:
            small.setdefault(table.database, []).append(table)
    groups: list[tuple[Table, ...]] = []
    for members in small.values():
        if len(members) < 2:
            continue
        size = min(BUNDLE_TABLES, max(8, -(-len(members) // max(1, jobs))))
        groups.extend(tuple(members[i : i + size]) for i in range(0, len(members), size))
    return groups


def range_share(total_bytes: int, jobs: int) -> int:
    """Bytes per key range: a quarter of each job's share of ``total_bytes``, at least
    :data:`MIN_RANGE_BYTES`; with one job more than the total (nothing splits)."""
    return max(MIN_RANGE_BYTES, total_bytes // (jobs * 4) if jobs > 1 else total_bytes + 1)


def range_count(table: Table, share: int) -> int:
    """How many key ranges ``table`` would be cut into (1: read whole)."""
    if table.split_column is None or share <= 0:
        return 1
    return max(1, min(MAX_RANGES, math.ceil(table.data_bytes / share)))


def split_points(low: int, high: int, pieces: int) -> tuple[int, ...]:
    """The lower bounds of ranges 2..``pieces`` of the keys ``low``..``high`` (fewer when the
    key space has fewer distinct steps)."""
    step = (high - low + 1) / pieces
    return tuple(sorted({low + int(step * i) for i in range(1, pieces)} - {low}))


def check_not_empty(catalogue: Catalogue, policy: Policy, source: Endpoint) -> None:
    """OperationFailed when the policy matches no database on ``source``, when one of its
    ``source.databases`` or ``source.tables`` names none there (a table: or two), or when
    an unquoted ``source.exclude_tables`` entry fits two (both would be left out)."""
    held = {(t.database, t.name) for t in catalogue.tables}
    held |= {(v.database, v.name) for v in catalogue.views}
    problems = policy.listing_problems(held)  # first: it names the entries (none may exist)
    if problems:
        raise OperationFailed(
            f"policy {policy.name}: source.tables on {source.label}: {'; '.join(problems)}",
            hint="correct the list (a table dropped on purpose: take it out of the policy)",
        )
    if not catalogue.databases:
        raise OperationFailed(f"policy {policy.name} matches no database on {source.label}")
    missing = policy.missing_databases(catalogue.databases)
    if missing:
        raise OperationFailed(
            f"policy {policy.name}: source.databases on {source.label}: "
            f"{', '.join(repr(d) for d in missing)} names no database there",
            hint="correct the list (a database dropped on purpose: take it out of the policy)",
        )
    problems = policy.exclusion_problems(held | set(catalogue.excluded_pairs))
    if problems:
        raise OperationFailed(
            f"policy {policy.name}: source.exclude_tables on {source.label}: {'; '.join(problems)}",
            hint="quote the entry MySQL style to leave out one table: `db`.`t.1`",
        )


def key_bounds(conn: Connection, table: Table) -> tuple[int, int] | None:
    """The smallest and largest value of ``table``'s split column (None: no rows)."""
    column = table.split_column
    if column is None:
        return None
    c, where = ident(column.name), qualified(table.database, table.name)
    row = query_dicts(conn, f"SELECT MIN({c}) AS low, MAX({c}) AS high FROM {where}")[0]
    if row["low"] is None or row["high"] is None:
        return None
    return int(row["low"]), int(row["high"])


def _bounds_if_still_there(conn: Connection, table: Table) -> tuple[int, int] | None:
    """:func:`key_bounds`, or None when the table or its key column is gone since the
    catalogue was read (DDL: the plan is an estimate, and the dump reads the catalogue again
    at its consistent point)."""
    try:
        return key_bounds(conn, table)
    except pymysql.MySQLError as exc:
        if exc.args and exc.args[0] in (ER.NO_SUCH_TABLE, ER.BAD_FIELD_ERROR):
            return None
        raise


def planned_consistency(conn: Connection, jobs: int) -> tuple[str, int]:
    """The snapshot method a dump with ``jobs`` connections would use and its real number
    of connections: the server's lock with RELOAD, else one transaction on one connection."""
    version = str(query_dicts(conn, "SELECT VERSION() AS v")[0]["v"])
    if account_privileges(conn).holds(("RELOAD",)):
        return lock_method(detect(version), jobs), jobs
    return SINGLE_SNAPSHOT, 1


def plan_dump(
    source: Endpoint, policy: Policy, choice: SourceChoice | None, jobs: int, chunk_bytes: int
) -> BackupPlan:
    """The plan of a parallel dump of ``policy`` from ``source`` (module docstring)."""
    with connect(source) as conn:
        method, jobs = planned_consistency(conn, jobs)
        facts = query_dicts(
            conn, "SELECT @@version AS version, @@read_only AS read_only, @@hostname AS hostname"
        )[0]
        catalogue = read_catalogue(conn, policy.includes_database, policy.includes_table)
        check_not_empty(catalogue, policy, source)
        splittable = [t for t in catalogue.tables if t.transactional and t.has_rows]
        share = range_share(sum(t.data_bytes for t in splittable), jobs)
        splits: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {}
        for table in splittable:
            pieces = range_count(table, share)
            bounds = _bounds_if_still_there(conn, table) if pieces > 1 else None
            if bounds is not None and table.split_column is not None:
                points = split_points(*bounds, pieces)
                splits[(table.database, table.name)] = (table.split_column.name, points)
    tables = [
        PlannedTable(
            t.database,
            t.name,
            t.kind,
            rows=t.rows_estimate,
            bytes=t.data_bytes,
            ranges=len(splits.get((t.database, t.name), ("", ()))[1]) + 1,
        )
        for t in catalogue.tables
    ]
    tables += [PlannedTable(v.database, v.name, "view") for v in catalogue.views]
    untransactional = [
        f"{t.database}.{t.name}" for t in catalogue.tables if not t.transactional and t.has_rows
    ]
    source_facts: dict[str, Any] = {
        "engine": "mysql",
        "node": source.name,
        "host": source.host,
        "port": source.port,
        "version": facts["version"],
        "hostname": facts["hostname"],
        "read_only": bool(facts["read_only"]),
        **(choice.manifest_fields() if choice else {}),
    }
    grouped = bundles(catalogue.tables, jobs, chunk_bytes) if policy.spec.bundle_tables else []
    plan = BackupPlan(
        engine="mysql",
        policy=policy.name,
        source=source_facts,
        consistency=method,
        tables=tables,
        jobs=jobs,
        details={
            "databases": sorted(catalogue.databases),
            "range_share_bytes": share,
            "max_ranges": MAX_RANGES,
            "chunk_bytes": chunk_bytes,
            "split_tables": [
                {"table": f"{db}.{name}", "column": column, "split_points": list(points)}
                for (db, name), (column, points) in splits.items()
            ],
            "untransactional_tables": untransactional,
            "bundles": len(grouped),
            "bundled_tables": sum(len(g) for g in grouped),
            "excluded_tables": catalogue.excluded,
            "views": len(catalogue.views),
            "triggers": len(catalogue.triggers),
            "routines": len(catalogue.routines),
            "events": len(catalogue.events),
            "grants": policy.spec.source.include_grants,
        },
    )
    plan.summary = _summary(plan, catalogue, splits, untransactional)
    return plan


def _summary(
    plan: BackupPlan,
    catalogue: Catalogue,
    splits: dict[tuple[str, str], tuple[str, tuple[int, ...]]],
    untransactional: list[str],
) -> list[str]:
    src = plan.source
    lag = src.get("lag_seconds")
    measured = f"lag {'unknown' if lag is None else f'{lag:g} s'} ({src.get('lag_method')})"
    lines = [
        f"source {src['node']} ({src.get('role', '?')}, {measured}, "
        f"limit {src.get('max_lag_seconds', 0):g} s)",
    ]
    lines += [f"  skipped {reason}" for reason in src.get("skipped", [])]
    totals = plan.estimates()
    lines.append(
        f"{len(catalogue.databases)} databases, {len(catalogue.tables)} tables, "
        f"{len(catalogue.views)} views: ~{totals['rows']} rows, "
        f"~{human_bytes(totals['bytes'])} (server estimates)"
    )
    lines.append(f"{plan.jobs} parallel jobs; consistency: {plan.consistency}")
    for (db, name), (column, points) in list(splits.items())[:SHOWN_SPLITS]:
        lines.append(f"  {db}.{name}: {len(points) + 1} key ranges on {column}")
    if len(splits) > SHOWN_SPLITS:
        lines.append(f"  ... and {len(splits) - SHOWN_SPLITS} more split tables")
    bundled, count = plan.details["bundled_tables"], plan.details["bundles"]
    if count:
        lines.append(f"{bundled} small tables written together in {count} bundle objects")
    if untransactional:
        lines.append(f"read first, under the lock (no transactions): {', '.join(untransactional)}")
    if catalogue.excluded:
        lines.append(f"excluded by the policy: {len(catalogue.excluded)} tables")
    return lines
