"""Checks of the MySQL topology: the account's privileges per job, the heartbeat writer,
the replicas' lag. One round of the replication monitor measures the
nodes (no SQL here: it lives in :mod:`datatier.mysql` and :mod:`datatier.replication`)."""

from __future__ import annotations

from collections.abc import Iterator

from datatier.errors import DatatierError
from datatier.mysql.connection import connect, endpoint
from datatier.mysql.privileges import OPTIONAL, AccountPrivileges, account_privileges
from datatier.ops.checks.result import (
    CheckContext,
    CheckResult,
    failed,
    passed,
    skipped,
    warned,
)
from datatier.replication.monitor import Monitor
from datatier.replication.snapshot import Snapshot

GRANT_HINT = "GRANT the missing privileges to the account in mysql.user (see `datatier check`)"


def _privileges(ctx: CheckContext, node: str) -> AccountPrivileges:
    conn = connect(endpoint(ctx.loaded.config.mysql, node))
    try:
        return account_privileges(conn)
    finally:
        conn.close()


def _verdict(
    name: str, target: str, found: AccountPrivileges, job: str, databases: list[str]
) -> CheckResult:
    """Pass; warn when only :data:`~datatier.mysql.privileges.OPTIONAL` ones are missing
    (the job runs, doing less); else fail. Either lists every missing one."""
    missing = found.missing(job, databases)
    if not missing:
        return passed(name, target, f"{found.account} holds what {job} needs")
    listed = "; ".join(f"{' or '.join(names)} ({why})" for names, why in missing)
    if all((job, names) in OPTIONAL for names, _ in missing):
        return warned(name, target, f"{found.account} lacks {listed}", GRANT_HINT)
    return failed(name, target, f"{found.account} lacks {listed}", GRANT_HINT)


def check_privileges(ctx: CheckContext) -> Iterator[CheckResult]:
    """dump on each MySQL policy's source (its databases), restore on the primary, the
    monitor's needs on every node, the heartbeat writer's on the primary, and (with
    ``binlog.policy`` set) the binlog archiver's on its source."""
    mysql = ctx.loaded.config.mysql
    cache: dict[str, AccountPrivileges | DatatierError] = {}

    def on(node: str) -> AccountPrivileges | DatatierError:
        if node not in cache:
            try:
                cache[node] = _privileges(ctx, node)
            except DatatierError as exc:
                cache[node] = exc
        return cache[node]

    for policy in ctx.policies:
        if policy.spec.engine != "mysql" or policy.spec.source.node is None:
            continue
        node = policy.spec.source.node
        target = f"backup {policy.name} on {node}"
        found = on(node)
        if isinstance(found, DatatierError):
            yield failed("privileges", target, str(found))
            continue
        databases = list(policy.spec.source.databases) or policy.listed_databases()
        yield _verdict("privileges", target, found, "dump", databases)
    primary = mysql.primary()
    for node in sorted(mysql.nodes):
        found = on(node)
        if isinstance(found, DatatierError):
            yield failed("privileges", f"monitor on {node}", str(found))
            continue
        yield _verdict("privileges", f"monitor on {node}", found, "replication", [])
        if primary is not None and node == primary[0]:
            yield _verdict("privileges", f"restore on {node}", found, "restore", [])
            yield _verdict("privileges", f"heartbeat on {node}", found, "heartbeat", ["datatier"])
    binlog = ctx.loaded.config.binlog
    source = binlog.node or (primary[0] if primary is not None else None)
    if binlog.policy and source is not None:
        found = on(source)
        if isinstance(found, DatatierError):
            yield failed("privileges", f"binlog archive on {source}", str(found))
        else:
            yield _verdict("privileges", f"binlog archive on {source}", found, "binlog", [])


def measure(ctx: CheckContext) -> Snapshot:
    """One monitor round over the topology (cached in the context for the other checks)."""
    snap = ctx.extra.get("snapshot")
    if not isinstance(snap, Snapshot):
        config = ctx.loaded.config
        monitor = Monitor(config.mysql, config.health)
        try:
            snap = monitor.measure_once()
        finally:
            monitor.stop()
        ctx.extra["snapshot"] = snap
    return snap


def check_heartbeat(ctx: CheckContext) -> Iterator[CheckResult]:
    """The newest heartbeat on the primary is younger than 3 beats + 1 s."""
    mysql = ctx.loaded.config.mysql
    primary = mysql.primary()
    if primary is None:
        yield skipped("heartbeat", "primary", "no primary configured")
        return
    node = measure(ctx).nodes[primary[0]]
    limit = ctx.loaded.config.health.heartbeat_stale_after
    target = f"writer on {node.name}"
    hint = "run `datatier replication heartbeat` (or `health serve --heartbeat`) as a service"
    if not node.reachable:
        yield failed("heartbeat", target, f"primary unreachable: {node.error}")
    elif node.lag is None:
        yield failed("heartbeat", target, "no heartbeat on the primary", hint)
    elif node.lag > limit:
        yield failed("heartbeat", target, f"heartbeat writer stopped {node.lag:.0f} s ago", hint)
    else:
        yield passed("heartbeat", target, f"newest heartbeat {node.lag:.2f} s old (<= {limit:g})")


def check_replicas(ctx: CheckContext) -> Iterator[CheckResult]:
    """Each replica replicates, with heartbeat lag at most ``ctx.max_lag``, and has
    ``read_only`` set (writes through HAProxy's read port would fork its data)."""
    replicas = sorted(ctx.loaded.config.mysql.replicas())
    if not replicas:
        yield skipped("replica lag", "replicas", "no replicas configured")
        return
    snap = measure(ctx)
    for name in replicas:
        ok, reason = snap.replica_check(name, ctx.max_lag)
        target = f"{name} (max {ctx.max_lag:g} s)"
        if ok and snap.nodes[name].read_only is False:
            yield failed(
                "replica lag",
                target,
                f"{reason}, but read_only is off: a write through the read port forks its data",
                f"switch read_only on for {name}, and set it in its my.cnf",
            )
            continue
        yield passed("replica lag", target, reason) if ok else failed("replica lag", target, reason)
