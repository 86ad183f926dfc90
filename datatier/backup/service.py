"""Plan and run one backup of a policy: plan (reads only) -> dump -> objects -> manifest last.

:func:`plan_backup` is what ``backup run --dry-run`` shows and what every run decides
first (and logs as ``backup.planned``): the same refusals, nothing written.

Contract: data objects are written first; the manifest (``POLICY/ID/manifest.json``, in
STANDARD) only after every object is stored and checksummed, the object list accounts for
every table and row (:mod:`datatier.backup.completeness`) and a listing of the store shows
every object with its size. After the manifest is written the prefix is listed once more:
a missing object or a prune claim (a concurrent ``backups prune`` deleting this run, see
:mod:`datatier.backup.prune`) withdraws the manifest and fails the backup (exit 4); so does,
for an incremental, a parent that prune has deleted or claimed meanwhile
(:mod:`datatier.backup.parents`).

Any failure (dump, storage, signal) leaves no manifest, so the backup never appears in the
catalog. What the run wrote is then deleted, best effort; what cannot be deleted (the store
is unreachable) is left for prune. The exception carries a note saying which. A storage
failure is reported as itself even when it made the dump engine fail (the dump process is
killed when the writer fails).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datatier import __version__
from datatier.backup.catalog import Catalog, store_urls
from datatier.backup.completeness import missing_parts
from datatier.backup.confirm import confirm_listed
from datatier.backup.encryption import policy_recipients
from datatier.backup.engine import BackupEngine, BackupPlan, DumpResult
from datatier.backup.engines import backup_engine
from datatier.backup.manifest import (
    BUNDLE_FORMAT_VERSION,
    CHAIN_FORMAT_VERSION,
    ENCRYPTED_FORMAT_VERSION,
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    ObjectRecord,
    backup_prefix,
    manifest_key,
    new_backup_id,
    utc_now_iso,
)
from datatier.backup.objects import ObjectWriter
from datatier.backup.parents import confirm_parents
from datatier.backup.policy import Policy, check_max_lag, get_policy, scan_policies
from datatier.backup.preflight import beside, check_store
from datatier.backup.stores import store_for
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, ServiceUnavailable, failure_fields
from datatier.log import get_logger
from datatier.pipeline.encrypt import METHOD, Recipients
from datatier.pipeline.gcpause import collector_paused
from datatier.storage.base import ObjectStore, StorageClass

log = get_logger(__name__)

DATA_TAGS = {"datatier-kind": "data"}
MANIFEST_TAGS = {"datatier-kind": "manifest"}


def policies_dir(loaded: LoadedConfig) -> Path:
    """``backup.policies_dir``, relative to the config file's directory."""
    return loaded.resolve(loaded.config.backup.policies_dir)


def usable_policies(loaded: LoadedConfig) -> list[Policy]:
    """Every policy that loads; each broken file is logged as a warning and skipped, so one
    bad file does not stop commands about the others (naming it still fails, exit 2)."""
    good, broken = scan_policies(
        policies_dir(loaded), loaded.config.backup.default_store, loaded.config.mysql.nodes
    )
    for bad in broken:
        log.warning("policy.invalid", policy=bad.name, path=str(bad.path), error=str(bad.error))
    return good


def open_catalogs(loaded: LoadedConfig, *, lookup: bool = False) -> list[Catalog]:
    """One catalog per store to scan: the default store and every usable policy's store.
    ``lookup``: read-only use, each request bounded by ``s3.lookup_timeout``."""
    policies = usable_policies(loaded)
    return [
        Catalog(
            store_for(url, loaded.config, lookup=lookup),
            [p.name for p in policies if p.store_url == url],
        )
        for url in store_urls(policies, loaded.config.backup.default_store)
    ]


def open_policy_catalog(loaded: LoadedConfig, policy: Policy, *, lookup: bool = False) -> Catalog:
    """The catalog of ``policy``'s store alone, with only ``policy`` looked up first.
    ``lookup``: read-only use, each request bounded by ``s3.lookup_timeout``."""
    return Catalog(store_for(policy.store_url, loaded.config, lookup=lookup), [policy.name])


def load_policy(loaded: LoadedConfig, name: str) -> Policy:
    config = loaded.config
    return get_policy(policies_dir(loaded), name, config.backup.default_store, config.mysql.nodes)


@dataclass(frozen=True)
class Planned:
    """A backup decided and not yet begun: its engine (bound to the plan's decisions), the
    plan, the opened store and the recipients new objects are encrypted to."""

    engine: BackupEngine
    plan: BackupPlan
    store: ObjectStore
    recipients: Recipients | None


def plan_backup(
    loaded: LoadedConfig,
    policy: Policy,
    *,
    max_lag: float | None = None,
    incremental: bool | None = None,
    store: ObjectStore | None = None,
) -> BackupPlan:
    """What a backup of ``policy`` would take, without writing anything (see
    :func:`run_backup` for the arguments and refusals, which are the same)."""
    return _prepare(loaded, policy, max_lag, incremental, store).plan


def _prepare(
    loaded: LoadedConfig,
    policy: Policy,
    max_lag: float | None,
    incremental: bool | None,
    store: ObjectStore | None,
) -> Planned:
    """Check ``max_lag``, resolve the encryption, then check the store (read) while the
    engine is built and plans (:func:`~datatier.backup.preflight.beside`: a store error is
    raised before an engine error, as when the store was checked first)."""
    if max_lag is not None:
        max_lag = check_max_lag(max_lag)
    config = loaded.config
    recipients = policy_recipients(config, policy)
    if store is None:
        store = store_for(policy.store_url, config)
    opened = store

    def start_engine() -> tuple[BackupEngine, BackupPlan]:
        engine = backup_engine(loaded, policy, max_lag=max_lag)
        engine.choose(incremental)
        return engine, engine.plan()

    engine, plan = beside(lambda: check_store(opened), start_engine)
    plan.store = {
        "url": store.url,
        "prefix": f"{policy.name}/",
        "storage_class": str(StorageClass(policy.spec.storage.initial_class)),
        "compression": f"zstd level {policy.spec.compression_level}",
        "encrypted": recipients is not None,
        "recipients": 0 if recipients is None else len(recipients.keys),
    }
    return Planned(engine, plan, store, recipients)


def run_backup(
    loaded: LoadedConfig,
    policy: Policy,
    *,
    max_lag: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    incremental: bool | None = None,
    store: ObjectStore | None = None,
) -> Manifest:
    """Take one backup of ``policy``; return its manifest (already stored).

    ``max_lag`` is checked first (UsageError unless a finite number >= 0), then the
    policy's encryption is resolved (ConfigError for ``encrypt = true`` without
    recipients), then the engine is built (for MySQL that chooses the source node, see
    :mod:`datatier.mysql.source`; ``max_lag`` defaults to the policy's
    ``source.max_lag_seconds``): NotReadyYet (exit 5) when no listed node is fresh enough,
    before anything is written. ``incremental``: True asks for an incremental, False for a
    full backup, None lets the policy decide (:meth:`~datatier.backup.engine.BackupEngine.choose`).
    ``store`` is the policy's store, already opened or opening
    (:func:`~datatier.backup.stores.store_in_background`); None opens it here.
    The engine plans first (:func:`plan_backup`), and the dump follows that plan.
    """
    config = loaded.config
    planned = _prepare(loaded, policy, max_lag, incremental, store)
    engine, store, recipients = planned.engine, planned.store, planned.recipients
    plan = planned.plan
    totals = plan.estimates()
    log.info(
        "backup.planned",
        policy=policy.name,
        engine=plan.engine,
        kind=plan.kind,
        parent=plan.parent,
        source=plan.source.get("node") or plan.source.get("server") or plan.source.get("uri"),
        tables=len(plan.held()),
        jobs=plan.jobs,
        consistency=plan.consistency,
        estimated_rows=totals["rows"],
        estimated_bytes=totals["bytes"],
    )
    backup_id = new_backup_id()
    prefix = backup_prefix(policy.name, backup_id)
    started_at, t0 = utc_now_iso(), time.monotonic()
    log.info("backup.started", policy=policy.name, backup_id=backup_id, store=store.url)
    writer = ObjectWriter(
        store,
        prefix,
        level=policy.spec.compression_level,
        storage_class=StorageClass(policy.spec.storage.initial_class),
        tags={**DATA_TAGS, "datatier-policy": policy.name},
        concurrency=config.s3.max_concurrency,
        on_progress=on_progress,
        recipients=recipients,
    )
    try:
        try:
            with collector_paused():
                result = engine.dump(writer)
            dumped = time.monotonic()
            records = writer.finish()
        finally:
            writer.abort()  # no-op after finish; on failure: stop and wait for uploads
        manifest = _manifest(policy, backup_id, engine.name, started_at, result, records)
        if recipients is not None:
            manifest.encryption = {"method": METHOD, "recipients": list(recipients.keys)}
            manifest.format_version = max(manifest.format_version, ENCRYPTED_FORMAT_VERSION)
        manifest.timings = {
            "dump_seconds": round(dumped - t0, 3),
            "total_seconds": round(time.monotonic() - t0, 3),
            "upload_busy_seconds": round(writer.upload_seconds, 3),
        }
        manifest.options["store"] = store.url
        _store_manifest(store, manifest)
    except BaseException as exc:
        failure = writer.failure
        error = failure if failure is not None and isinstance(exc, Exception) else exc
        unreachable = isinstance(failure, ServiceUnavailable)
        error.add_note(_discard(store, prefix, storage_failed=unreachable))
        log.error("backup.failed", policy=policy.name, backup_id=backup_id, **failure_fields(error))
        if error is exc:
            raise
        raise error from None
    log.info(
        "backup.completed",
        policy=policy.name,
        backup_id=backup_id,
        objects=len(manifest.objects),
        bytes=manifest.total_bytes,
        raw_bytes=manifest.raw_bytes,
        seconds=round(time.monotonic() - t0, 3),
    )
    return manifest


def _format_version(parent: str | None, records: list[ObjectRecord]) -> int:
    """The oldest manifest format that says what this backup needs of its reader."""
    if any(r.sections for r in records):
        return BUNDLE_FORMAT_VERSION
    return FORMAT_VERSION if parent is None else CHAIN_FORMAT_VERSION


def _manifest(
    policy: Policy,
    backup_id: str,
    engine: str,
    started_at: str,
    result: DumpResult,
    records: list[ObjectRecord],
) -> Manifest:
    """The manifest of a dump that wrote ``records``; IntegrityFailure when they do not
    account for every table and row the engine recorded."""
    manifest = Manifest(
        policy=policy.name,
        backup_id=backup_id,
        engine=engine,
        tool_version=__version__,
        started_at=started_at,
        finished_at=utc_now_iso(),
        source=result.source,
        consistency=result.consistency,
        objects=records,
        tables=result.tables,
        databases=result.databases,
        options={
            **result.options,
            "compression": "zstd",
            "compression_level": policy.spec.compression_level,
        },
        parent=result.parent,
        format_version=_format_version(result.parent, records),
    )
    problems = missing_parts(manifest)
    if problems:
        raise IntegrityFailure(
            f"backup {backup_id} of {policy.name}: the objects written do not account for "
            f"every table and row: {'; '.join(problems[:5])}",
            hint="no manifest was written",
        )
    return manifest


def _store_manifest(store: ObjectStore, manifest: Manifest) -> None:
    """Confirm the objects by listing, write the manifest, confirm again (module docstring);
    IntegrityFailure (manifest withdrawn) on a mismatch or a prune claim."""
    prefix = backup_prefix(manifest.policy, manifest.backup_id)
    key = manifest_key(manifest.policy, manifest.backup_id)
    confirm_listed(store, prefix, manifest.objects)
    store.put_bytes(key, manifest.encode(), storage_class=StorageClass.STANDARD, tags=MANIFEST_TAGS)
    try:
        confirm_listed(store, prefix, manifest.objects)
        confirm_parents(store, manifest.policy, manifest.backup_id, manifest.parent)
    except IntegrityFailure:
        store.delete([key])
        raise


def _discard(store: ObjectStore, prefix: str, *, storage_failed: bool) -> str:
    """Delete what a failed run wrote (manifest first), best effort; says what happened."""
    leftover = (
        f"objects this run wrote may remain under {store.url}/{prefix}; "
        "`datatier backups prune` removes them after its grace period"
    )
    if storage_failed:
        return leftover  # the store is what failed: do not wait on it again
    try:
        keys = [o.key for o in store.list_objects(prefix)]
        store.delete(sorted(keys, key=lambda k: not k.endswith(MANIFEST_NAME)))
    except Exception as exc:  # a note about cleanup must never hide the real error
        log.warning("backup.cleanup_failed", prefix=prefix, error=str(exc))
        return leftover
    log.info("backup.cleaned_up", prefix=prefix, objects=len(keys))
    return f"the {len(keys)} object(s) this run had written were deleted"
