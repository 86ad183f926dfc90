"""Run one backup of a policy: dump -> objects -> manifest last.

Contract: data objects are written first; the manifest (``POLICY/ID/manifest.json``, in
STANDARD) only after every object is stored and checksummed. Any failure (dump, network,
signal) leaves no manifest, so the backup never appears in the catalog; prune removes its
leftover objects later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from datatier import __version__
from datatier.backup.catalog import Catalog, store_urls
from datatier.backup.engines import backup_engine
from datatier.backup.manifest import (
    CHAIN_FORMAT_VERSION,
    FORMAT_VERSION,
    Manifest,
    backup_prefix,
    manifest_key,
    new_backup_id,
    utc_now_iso,
)
from datatier.backup.objects import ObjectWriter
from datatier.backup.policy import Policy, find_policies, get_policy
from datatier.backup.stores import store_for
from datatier.config import LoadedConfig
from datatier.log import get_logger
from datatier.storage.base import StorageClass

log = get_logger(__name__)

DATA_TAGS = {"datatier-kind": "data"}
MANIFEST_TAGS = {"datatier-kind": "manifest"}


def policies_dir(loaded: LoadedConfig) -> Path:
    """``backup.policies_dir``, relative to the config file's directory."""
    return loaded.resolve(loaded.config.backup.policies_dir)


def open_catalogs(loaded: LoadedConfig) -> list[Catalog]:
    """One catalog per store to scan: the default store and every policy's store."""
    policies = find_policies(policies_dir(loaded), loaded.config.backup.default_store)
    return [
        Catalog(store_for(url, loaded.config), [p.name for p in policies if p.store_url == url])
        for url in store_urls(policies, loaded.config.backup.default_store)
    ]


def open_policy_catalog(loaded: LoadedConfig, policy: Policy) -> Catalog:
    """The catalog of ``policy``'s store alone, with only ``policy`` looked up first."""
    return Catalog(store_for(policy.store_url, loaded.config), [policy.name])


def load_policy(loaded: LoadedConfig, name: str) -> Policy:
    return get_policy(policies_dir(loaded), name, loaded.config.backup.default_store)


def run_backup(
    loaded: LoadedConfig,
    policy: Policy,
    *,
    on_progress: Callable[[int], None] | None = None,
    incremental: bool | None = None,
) -> Manifest:
    """Take one backup of ``policy``; return its manifest (already stored).

    ``incremental``: True asks for an incremental, False for a full backup, None lets the
    policy decide (see :meth:`~datatier.backup.engine.BackupEngine.choose`)."""
    config = loaded.config
    store = store_for(policy.store_url, config)
    store.check()
    engine = backup_engine(loaded, policy)
    engine.choose(incremental)
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
    )
    try:
        result = engine.dump(writer)
        dumped = time.monotonic()
        records = writer.finish()
    except BaseException:
        writer.abort()
        log.error("backup.failed", policy=policy.name, backup_id=backup_id)
        raise
    finished = time.monotonic()
    records.sort(key=lambda r: r.key)
    manifest = Manifest(
        policy=policy.name,
        backup_id=backup_id,
        engine=engine.name,
        tool_version=__version__,
        started_at=started_at,
        finished_at=utc_now_iso(),
        source=result.source,
        consistency=result.consistency,
        objects=records,
        tables=result.tables,
        databases=result.databases,
        timings={
            "dump_seconds": round(dumped - t0, 3),
            "total_seconds": round(finished - t0, 3),
            "upload_busy_seconds": round(writer.upload_seconds, 3),
        },
        options={
            **result.options,
            "compression": "zstd",
            "compression_level": policy.spec.compression_level,
            "store": store.url,
        },
        parent=result.parent,
        format_version=FORMAT_VERSION if result.parent is None else CHAIN_FORMAT_VERSION,
    )
    store.put_bytes(
        manifest_key(policy.name, backup_id),
        manifest.to_json(),
        storage_class=StorageClass.STANDARD,
        tags=MANIFEST_TAGS,
    )
    log.info(
        "backup.completed",
        policy=policy.name,
        backup_id=backup_id,
        objects=len(records),
        bytes=manifest.total_bytes,
        raw_bytes=manifest.raw_bytes,
        seconds=round(time.monotonic() - t0, 3),
    )
    return manifest
