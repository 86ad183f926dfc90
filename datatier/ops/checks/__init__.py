"""``datatier check``: preflight checks of everything an unattended backup relies on.

Contract. :func:`run_checks` runs the checks in :data:`CHECKS` order (one or more
:class:`~datatier.ops.checks.result.CheckResult` lines each; ``free space`` sizes by what
``freshness`` found) and returns every line; it raises only for bugs. A check that cannot
reach what it checks FAILs with the reason; one that does not apply (no replicas, no S3
store, no binlog archive) is SKIPped. Nothing is changed, except the store check's
probe object, which is deleted again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from datatier.errors import DatatierError, UsageError
from datatier.ops.checks.binlogs import check_binlog_retention
from datatier.ops.checks.result import (
    CheckContext,
    CheckResult,
    Status,
    failed,
    skipped,
)
from datatier.ops.checks.stores import (
    check_buckets,
    check_free_space,
    check_freshness,
    check_store,
)
from datatier.ops.checks.topology import (
    check_heartbeat,
    check_privileges,
    check_replicas,
)

CheckFn = Callable[[CheckContext], Iterator[CheckResult]]

CHECKS: tuple[tuple[str, CheckFn, bool], ...] = (
    # name, function, needs MySQL nodes
    ("privileges", check_privileges, True),
    ("store", check_store, False),
    ("bucket", check_buckets, False),
    ("freshness", check_freshness, False),
    ("heartbeat", check_heartbeat, True),
    ("binlog retention", check_binlog_retention, True),
    ("replica lag", check_replicas, True),
    ("free space", check_free_space, False),
)
NAMES = tuple(name for name, _, _ in CHECKS)


def run_checks(ctx: CheckContext, only: Iterable[str] = ()) -> list[CheckResult]:
    """Run the checks named in ``only`` (all when empty); UsageError for an unknown name."""
    wanted = set(only)
    unknown = sorted(wanted - set(NAMES))
    if unknown:
        raise UsageError(
            f"unknown check(s): {', '.join(unknown)}", hint=f"known: {', '.join(NAMES)}"
        )
    results: list[CheckResult] = []
    has_mysql = bool(ctx.loaded.config.mysql.nodes)
    for name, fn, needs_mysql in CHECKS:
        if wanted and name not in wanted and not (name == "freshness" and "free space" in wanted):
            continue
        if needs_mysql and not has_mysql:
            results.append(skipped(name, "mysql", "no MySQL nodes configured"))
            continue
        try:
            found = list(fn(ctx))
        except DatatierError as exc:
            found = [failed(name, "-", str(exc), exc.hint)]
        if not wanted or name in wanted:
            results.extend(found)
    return results


__all__ = ["CHECKS", "NAMES", "CheckContext", "CheckResult", "Status", "run_checks"]
