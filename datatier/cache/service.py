"""The cache commands as services over the loaded configuration (the CLI stays thin)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from datatier.cache.protocol import MemcachedNode, NodeUnavailable, parse_address
from datatier.cache.report import PlannedKey, WarmOptions, WarmReport
from datatier.cache.source import OnLag, choose_source, enforce_lag, measure_lag
from datatier.cache.warmer import CacheWarmer
from datatier.cache.warmset import WarmSet, list_warm_sets, load_warm_set, warm_set_path
from datatier.cache.writer import CacheWriter, OnError
from datatier.config import LoadedConfig
from datatier.errors import UsageError
from datatier.mysql.connection import connect, endpoint
from datatier.ratelimit import RateLimit


def warm_sets_dir(loaded: LoadedConfig) -> Path:
    """``cache.warm_sets_dir``, relative to the config file's directory."""
    return loaded.resolve(loaded.config.cache.warm_sets_dir)


def find_warm_sets(loaded: LoadedConfig) -> list[WarmSet]:
    """Every warm set, validated (ConfigError on the first bad file)."""
    return [load_warm_set(p) for p in list_warm_sets(warm_sets_dir(loaded))]


def open_warm_set(loaded: LoadedConfig, name: str) -> WarmSet:
    """The set called ``name`` (or at the path ``name``)."""
    path = warm_set_path(warm_sets_dir(loaded), name)
    if not path.is_file():
        known = ", ".join(p.stem for p in list_warm_sets(warm_sets_dir(loaded))) or "none"
        raise UsageError(f"no warm set {name!r} (known: {known})", hint=f"looked for {path}")
    return load_warm_set(path)


def cache_servers(loaded: LoadedConfig, servers: Sequence[str]) -> list[str]:
    """``servers`` if given, else ``[memcached] servers``; UsageError if none or malformed."""
    chosen = list(servers) or list(loaded.config.memcached.servers)
    if not chosen:
        raise UsageError("no memcached servers", hint="set [memcached] servers or --server")
    for text in chosen:
        try:
            parse_address(text)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return chosen


@dataclass(frozen=True)
class WarmRequest:
    """What ``cache warm`` was asked to do."""

    set_name: str
    options: WarmOptions
    servers: tuple[str, ...] = ()
    node: str | None = None
    allow_primary: bool = False
    max_lag: float | None = None
    on_lag: OnLag = "refuse"
    on_error: OnError = "continue"
    retry_for: float = 10.0


def warm(
    loaded: LoadedConfig,
    request: WarmRequest,
    *,
    on_planned: Callable[[PlannedKey], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> WarmReport:
    """Check the source's lag, connect to memcached (not in a dry run), warm the set.

    Raises before anything is written: UsageError (bad set, primary not allowed),
    NotReadyYet (lagging replica with on_lag=refuse), ServiceUnavailable (MySQL or
    memcached unreachable).
    """
    config = loaded.config
    warm_set = open_warm_set(loaded, request.set_name)
    unknown = set(request.options.only) - set(warm_set.spec.queries)
    if unknown:
        raise UsageError(
            f"warm set {warm_set.name} has no query {', '.join(sorted(unknown))}",
            hint=f"its queries: {', '.join(warm_set.spec.queries)}",
        )
    source, role = choose_source(
        config, request.node, warm_set.spec.source_node, request.allow_primary
    )
    servers = cache_servers(loaded, request.servers)
    primary = config.mysql.primary()
    conn = connect(source)
    try:
        lag = measure_lag(conn, role, endpoint(config.mysql, primary[0]) if primary else None)
    finally:
        conn.close()
    max_lag = config.cache.max_replica_lag if request.max_lag is None else request.max_lag
    warning = enforce_lag(source.name, lag, max_lag, request.on_lag)
    report = WarmReport(
        set=warm_set.name,
        source=source.label,
        servers=servers,
        dry_run=request.options.dry_run,
        overwrite=request.options.overwrite,
        lag=lag.lag,
        lag_method=lag.method,
        warning=warning,
    )
    writer: CacheWriter | None = None
    item_limit = 1 << 20
    if request.options.dry_run:
        try:  # read-only: the real limit makes the dry run's "fits" exact
            with MemcachedNode(servers[0], timeout=config.memcached.timeout) as node:
                item_limit = node.item_size_max()
        except NodeUnavailable:
            pass
    else:
        writer = CacheWriter(
            servers,
            timeout=config.memcached.timeout,
            on_error=request.on_error,
            retry_for=request.retry_for,
            rate=RateLimit(request.options.rate),
        )
        writer.open()
    try:
        warmer = CacheWarmer(
            warm_set,
            source,
            writer,
            request.options,
            on_planned=on_planned,
            on_progress=on_progress,
            item_limit=item_limit,
        )
        return warmer.run(report)
    finally:
        if writer is not None:
            writer.close()
