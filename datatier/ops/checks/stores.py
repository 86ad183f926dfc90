"""Checks of where backups go: each store is reachable and writable, each S3 bucket is set
up as ``provision plan`` wants, each policy's newest good backup is as fresh as its schedule
allows, and the restore staging directory has room for it."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from datatier.backup.cron import previous_fire
from datatier.backup.stats import read_policy_stats
from datatier.backup.stores import store_for
from datatier.errors import DatatierError
from datatier.ops.checks.result import CheckContext, CheckResult, failed, passed, skipped
from datatier.storage.base import ObjectStore

PROBE_DIR = "_check"
DEFAULT_GRACE = timedelta(hours=6)
CLOCK_SLACK = timedelta(minutes=1)


def _stores(ctx: CheckContext) -> dict[str, ObjectStore]:
    found = ctx.extra.setdefault("stores", {})
    assert isinstance(found, dict)
    for policy in ctx.policies:
        if policy.store_url not in found:
            found[policy.store_url] = store_for(policy.store_url, ctx.loaded.config, lookup=True)
    return found


def check_store(ctx: CheckContext) -> Iterator[CheckResult]:
    """Put a probe object, read it back, delete it, see it gone, in every policy's store."""
    for url, store in sorted(_stores(ctx).items()):
        owner = next(p.name for p in ctx.policies if p.store_url == url)
        key = f"{owner}/{PROBE_DIR}/probe-{secrets.token_hex(6)}"
        body = secrets.token_bytes(64)
        try:
            store.put_bytes(key, body)
            try:
                if store.get_bytes(key) != body:
                    yield failed("store", url, f"{key} read back different bytes")
                    continue
            finally:
                store.delete([key])
            if store.exists(key):
                yield failed("store", url, f"{key} still exists after delete")
                continue
        except DatatierError as exc:
            yield failed("store", url, str(exc), exc.hint)
            continue
        yield passed("store", url, "reachable and writable (put, read back, delete)")


def check_buckets(ctx: CheckContext) -> Iterator[CheckResult]:
    """Versioning, default encryption, public-access block and datatier's lifecycle rules
    of every S3 bucket equal what ``provision plan`` wants."""
    from datatier.provision.service import provisioners  # lazy: boto3

    found = provisioners(ctx.loaded, ("bucket",))
    if not found:
        yield skipped("bucket", "s3", "no S3 store configured")
        return
    for provisioner in found:
        try:
            changes = provisioner.diff(provisioner.observe())
        except DatatierError as exc:
            yield failed("bucket", provisioner.resource, str(exc), exc.hint)
            continue
        if not changes:
            yield passed(
                "bucket", provisioner.resource, "versioning, encryption, public access, lifecycle"
            )
            continue
        listed = ", ".join(
            f"{c.item} is {_short(c.before)} (wanted {_short(c.after)})" for c in changes
        )
        yield failed(
            "bucket",
            provisioner.resource,
            listed,
            "review `datatier provision plan --only bucket`, then apply it",
        )


def _short(value: object) -> str:
    text = "none" if value in (None, [], {}) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _grace(ctx: CheckContext, schedule: str) -> timedelta:
    """How long a due run may still be running: ``--grace-hours``, else 6 h or the
    schedule's period if shorter."""
    if ctx.grace_hours is not None:
        return timedelta(hours=ctx.grace_hours)
    last = previous_fire(schedule, ctx.now)
    before = previous_fire(schedule, last - timedelta(seconds=1))
    return min(DEFAULT_GRACE, last - before)


def check_freshness(ctx: CheckContext) -> Iterator[CheckResult]:
    """The newest complete backup started at or after the last scheduled run that is due
    (older than the grace a running backup gets)."""
    stores = _stores(ctx)
    for policy in ctx.policies:
        target = f"{policy.name} ({policy.spec.schedule})"
        due = previous_fire(policy.spec.schedule, ctx.now - _grace(ctx, policy.spec.schedule))
        stats = read_policy_stats(stores[policy.store_url], policy.name)
        ctx.extra.setdefault("newest", {})[policy.name] = stats.newest
        if stats.error:
            yield failed("freshness", target, f"cannot read the store: {stats.error}")
            continue
        if stats.newest is None:
            yield failed("freshness", target, f"no complete backup (one was due {_at(due)})")
            continue
        started = datetime.fromtimestamp(stats.newest.started, UTC)
        age = ctx.now - started
        if started + CLOCK_SLACK < due:
            yield failed(
                "freshness",
                target,
                f"newest backup {stats.newest.backup_id} is {_hours(age)} old: the run due "
                f"{_at(due)} left no complete backup",
                f"see `datatier backups list {policy.name} --all` and the job's logs",
            )
            continue
        yield passed(
            "freshness",
            target,
            f"newest {stats.newest.backup_id} is {_hours(age)} old (due run {_at(due)})",
        )


def _at(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def check_free_space(ctx: CheckContext) -> Iterator[CheckResult]:
    """The staging directory has room for the largest newest backup of the policies."""
    newest = ctx.extra.get("newest", {})
    sizes = {name: n.bytes for name, n in newest.items() if n is not None}
    target = str(ctx.staging_dir)
    if not sizes:
        yield skipped("free space", target, "no complete backup to size a restore by")
        return
    name, need = max(sizes.items(), key=lambda item: item[1])
    try:
        free = shutil.disk_usage(ctx.staging_dir).free
    except OSError as exc:
        yield failed("free space", target, f"cannot stat: {exc.strerror}")
        return
    detail = f"{_mib(free)} free; the newest backup of {name} needs {_mib(need)}"
    if free < need:
        yield failed(
            "free space", target, detail, "free space there or give --staging-dir elsewhere"
        )
    else:
        yield passed("free space", target, detail)
