"""``datatier cache``: warm, copy and inspect the Memcached query cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, get_args

import click

from datatier.cache.copy import CacheCopier
from datatier.cache.protocol import parse_address
from datatier.cache.report import PlannedKey, WarmOptions, WarmReport
from datatier.cache.service import WarmRequest, cache_servers, find_warm_sets, warm
from datatier.cache.source import OnLag
from datatier.cache.stats import NodeStats, node_stats
from datatier.cache.writer import OnError, RestartLosses
from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option, say, table
from datatier.cli.params import FiniteFloatRange
from datatier.cli.progress import Progress
from datatier.display import human_bytes
from datatier.errors import ExitCode, OperationFailed, ServiceUnavailable, UsageError

PLANNED_JSON_LIMIT = 1000
F = TypeVar("F", bound=Callable[..., Any])


@click.group("cache")
def cache_group() -> None:
    """Warm the Memcached query cache from a replica, copy a warm node, show stats."""


@cache_group.command("sets")
@json_option("Print JSON.")
@pass_app
def sets(app: AppContext) -> None:
    """List the warm sets (cache.warm_sets_dir) and validate every file."""
    rows = [
        {
            "name": s.name,
            "queries": ", ".join(s.spec.queries),
            "source": s.spec.source_node or "-",
            "description": s.spec.description,
        }
        for s in find_warm_sets(app.loaded())
    ]
    emit(
        Output(
            {"sets": rows, "count": len(rows)},
            lambda: table(rows, ["name", "queries", "source", "description"]),
            legacy_list="sets",
        )
    )


def _on_error_options(command: F) -> F:
    """``--on-error`` and ``--retry-for``: what a warm or copy does when memcached goes away."""
    command = click.option(
        "--retry-for",
        type=FiniteFloatRange(0),
        default=10.0,
        show_default=True,
        help="With --on-error continue: how long to retry an unreachable node.",
    )(command)
    return click.option(
        "--on-error",
        type=click.Choice(get_args(OnError)),
        default="continue",
        show_default=True,
        help="memcached unreachable mid-run: retry for --retry-for seconds, or stop (exit 3).",
    )(command)


def _rate(_ctx: click.Context, _param: click.Parameter, value: float | None) -> float | None:
    if value is not None and value <= 0:
        raise click.BadParameter("must be above 0")
    return value


@cache_group.command("warm")
@click.argument("warm_set", metavar="SET")
@click.option("--dry-run", is_flag=True, help="Print the keys and sizes; write nothing.")
@click.option("--overwrite", is_flag=True, help="Replace keys already cached (default: skip).")
@click.option("--rate", type=float, callback=_rate, help="At most N keys written per second.")
@click.option("--query-rate", type=float, callback=_rate, help="At most N queries per second.")
@click.option("--query", "only", multiple=True, help="Warm only this query (repeatable).")
@click.option("--node", help="MySQL node to read (default: the set's, else a replica).")
@click.option("--allow-primary", is_flag=True, help="Allow reading from the primary.")
@click.option("--server", "servers", multiple=True, help="memcached HOST:PORT (repeatable).")
@click.option(
    "--max-lag", type=FiniteFloatRange(0), help="Seconds (default cache.max_replica_lag)."
)
@click.option(
    "--on-lag",
    type=click.Choice(get_args(OnLag)),
    default="refuse",
    show_default=True,
    help="A replica over --max-lag: exit 5, or warm anyway with a warning.",
)
@_on_error_options
@json_option("Print the report as JSON.")
@pass_app
def warm_cmd(
    app: AppContext,
    warm_set: str,
    dry_run: bool,
    overwrite: bool,
    rate: float | None,
    query_rate: float | None,
    only: tuple[str, ...],
    node: str | None,
    allow_primary: bool,
    servers: tuple[str, ...],
    max_lag: float | None,
    on_lag: OnLag,
    on_error: OnError,
    retry_for: float,
) -> None:
    """Run the queries of warm set SET on a replica and write the results to memcached.

    Keys already cached are skipped unless --overwrite; values over the item size limit
    are skipped and counted; an SQL error fails only its query. A memcached restart
    ridden out (--on-error continue) wipes the keys written to that node before it: the
    report counts them (keys_lost) and the exit code is 1, the cache being only partly
    warm. Exit 0 when every key was written or skipped (and is still there), 1 when a query
    or key failed or keys were lost, 3 when memcached or MySQL could not be reached (or
    --on-error stop stopped the warm), 5 when the replica lags more than --max-lag (with
    --on-lag refuse).
    """
    loaded = app.loaded()
    request = WarmRequest(
        set_name=warm_set,
        options=WarmOptions(
            dry_run=dry_run, overwrite=overwrite, rate=rate, query_rate=query_rate, only=only
        ),
        servers=servers,
        node=node,
        allow_primary=allow_primary,
        max_lag=max_lag,
        on_lag=on_lag,
        on_error=on_error,
        retry_for=retry_for,
    )
    planned: list[PlannedKey] = []

    def on_planned(key: PlannedKey) -> None:
        if len(planned) < PLANNED_JSON_LIMIT:
            planned.append(key)
        mark = "" if key.fits else "  (too large: would be skipped)"
        say(f"{key.query}\t{key.key}\t{key.bytes}\tttl={key.ttl}{mark}")

    progress = Progress(f"warm {warm_set}", unit="keys")
    try:
        report = warm(
            loaded,
            request,
            on_planned=on_planned if dry_run else None,
            on_progress=progress.advance,
        )
    finally:
        progress.close()
    doc = report.to_json()
    if dry_run:
        doc["planned_keys"] = [vars(p) for p in planned]
        doc["planned_truncated"] = len(planned) >= PLANNED_JSON_LIMIT
    emit(Output(doc, lambda: _warm_text(report), _warm_notes(report)))
    _raise_for(report)


def _raise_for(report: WarmReport) -> None:
    """The exit code the report calls for, as the matching error (the report is printed)."""
    code = report.exit_code()
    if code == ExitCode.UNREACHABLE:
        raise ServiceUnavailable(f"warm stopped: {report.stopped}")
    if code != ExitCode.OK:
        failed = [q for q in report.queries if q.error or q.failed]
        problems = [
            f"{len(failed)} of {len(report.queries)} queries had errors: "
            + "; ".join(q.error or f"{q.name}: {q.failed} keys failed" for q in failed)
        ] if failed else []  # fmt: skip
        if report.keys_lost:
            problems.append(_lost(report, report.total("keys_written"), "written"))
        raise OperationFailed("; ".join(problems))


def _lost(report: RestartLosses, done: int, verb: str) -> str:
    """The failure line for keys a memcached restart wiped after they were ``verb``."""
    return (
        f"{report.keys_lost} of the {done} keys {verb} were lost to a memcached restart: "
        "the cache is only partly warm"
    )


def _restart_notes(report: RestartLosses, job: str) -> list[str]:
    """One warning per node that restarted during the ``job`` (warm or copy)."""
    return [
        f"warning: memcached {address} restarted during the {job}; the "
        f"{report.keys_lost_by_node.get(address, 0)} keys written to it before the restart "
        f"are gone: run the {job} again"
        for address in dict.fromkeys(report.restarts)
    ]


def _warm_text(report: WarmReport) -> str:
    rows = [
        {
            "query": q.name,
            "rows": q.rows,
            "written": q.keys_written,
            "present": q.skipped_present,
            "too_large": q.skipped_too_large,
            "too_many_rows": q.skipped_too_many_rows,
            "failed": q.failed,
            "bytes": human_bytes(q.bytes),
            "error": q.error or (q.key_errors[0] if q.key_errors else ""),
        }
        for q in report.queries
    ]
    columns = ["query", "rows", "written", "present", "too_large", "too_many_rows", "failed",
               "bytes", "error"]  # fmt: skip
    verb = "would write" if report.dry_run else "wrote"
    keys = report.total("planned") if report.dry_run else report.total("keys_written")
    return (
        table(rows, columns) + "\n"
        f"{report.set}: {verb} {keys} keys ({human_bytes(report.total('bytes'))}) from "
        f"{report.source} to {', '.join(report.servers)} in {report.seconds:.2f} s"
    )


def _warm_notes(report: WarmReport) -> list[str]:
    notes = [f"warning: {report.warning}"] if report.warning else []
    notes += _restart_notes(report, "warm")
    if report.stopped:
        notes.append(f"stopped: {report.stopped}")
    return notes


@cache_group.command("copy")
@click.option("--from", "source", required=True, metavar="HOST:PORT", help="The warm node.")
@click.option("--to", "target", required=True, metavar="HOST:PORT", help="The node to warm.")
@click.option("--match", metavar="PREFIX", help="Copy only keys starting with PREFIX.")
@click.option("--overwrite", is_flag=True, help="Replace keys the target already has.")
@click.option("--rate", type=float, callback=_rate, help="At most N keys per second.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True)
@_on_error_options
@json_option("Print the report as JSON.")
@pass_app
def copy_cmd(
    app: AppContext,
    source: str,
    target: str,
    match: str | None,
    overwrite: bool,
    rate: float | None,
    batch_size: int,
    on_error: OnError,
    retry_for: float,
) -> None:
    """Warm the node --to from the warm node --from: every key (or --match PREFIX) with its
    flags and remaining TTL, enumerated with `lru_crawler metadump` (memcached >= 1.4.31).

    Keys the target already has are kept unless --overwrite. A restart of the target
    ridden out (--on-error continue) wipes the keys copied to it before: the report counts
    them (keys_lost) and the exit code is 1. The crawler's dump can miss keys: the source's
    item count is compared with it, a second pass copies the keys the target lacks, and a
    remaining shortfall is reported (unlisted, recovered, missed). Exit 0 when every key
    was copied or skipped (and is still there), 1 when a key failed, keys were lost or keys
    were certainly missed (source unchanged meanwhile), 3 when a node could not be reached.
    """
    for text in (source, target):
        try:
            parse_address(text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if source == target:
        raise UsageError("--from and --to are the same node")
    timeout = app.loaded().config.memcached.timeout
    # Without --match every item of the source is copied: its item count is the total.
    total = None if match else _item_count(source, timeout)
    progress = Progress(f"copy {source} -> {target}", total, unit="keys")
    try:
        report = CacheCopier(
            source,
            target,
            match=match,
            overwrite=overwrite,
            rate=rate,
            batch_size=batch_size,
            timeout=max(timeout, 5.0),
            on_error=on_error,
            retry_for=retry_for,
            on_progress=progress.advance,
        ).run()
    finally:
        progress.close()
    text = (
        f"copied {report.copied} of {report.matched} keys ({human_bytes(report.bytes)}) "
        f"from {source} to {target} in {report.seconds:.2f} s; present {report.skipped_present}, "
        f"expiring {report.skipped_expiring}, vanished {report.vanished}, "
        f"too large {report.too_large}, failed {report.failed}"
    )
    if report.second_pass:
        text += (
            f"\nthe source held {report.unlisted} more keys than its LRU crawler listed: a "
            f"second pass listed {report.second_pass_listed} and copied {report.recovered}"
        )
    notes = _restart_notes(report, "copy")
    if (shortfall := report.shortfall_note()) is not None:
        notes.append(f"warning: {shortfall}")
    emit(Output(report.to_json(), text, notes))
    if report.exit_code() != ExitCode.OK:
        problems = []
        if report.failed:
            problems.append(f"{report.failed} keys could not be written to {target}")
        if report.keys_lost:
            problems.append(_lost(report, report.copied, "copied"))
        if report.missed:
            problems.append(f"{report.missed} keys were missed by the LRU crawler")
        raise OperationFailed("; ".join(problems))


def _item_count(address: str, timeout: float) -> int | None:
    """The node's ``curr_items`` (None when it is down: the copy reports that)."""
    found = node_stats(address, timeout)
    return found.items if found.up else None


@cache_group.command("stats")
@click.option("--server", "servers", multiple=True, help="memcached HOST:PORT (repeatable).")
@json_option("Print JSON.")
@pass_app
def stats_cmd(app: AppContext, servers: tuple[str, ...]) -> None:
    """Hit ratio, evictions, items and memory of each memcached node.

    Exit 3 when a node cannot be reached (the others are still shown).
    """
    loaded = app.loaded()
    found = [node_stats(s, loaded.config.memcached.timeout) for s in cache_servers(loaded, servers)]
    down = [n for n in found if not n.up]
    doc = {
        "nodes": [n.to_json() for n in found],
        "ok": not down,
        "up": len(found) - len(down),
        "down": len(down),
    }
    emit(Output(doc, lambda: _stats_text(found), legacy_list="nodes"))
    if down:
        raise ServiceUnavailable(f"{len(down)} memcached node(s) unreachable: {down[0].error}")


def _stats_text(found: list[NodeStats]) -> str:
    rows = [
        {
            "node": n.address,
            "up": "yes" if n.up else "NO",
            "items": n.items,
            "memory": f"{human_bytes(n.bytes)} / {human_bytes(n.limit_bytes)}" if n.up else "-",
            "hit_ratio": "-" if n.hit_ratio is None else f"{n.hit_ratio:.1%}",
            "evictions": n.evictions,
            "uptime_s": n.uptime,
            "version": n.version or (n.error or ""),
        }
        for n in found
    ]
    columns = ["node", "up", "items", "memory", "hit_ratio", "evictions", "uptime_s", "version"]
    return table(rows, columns)
