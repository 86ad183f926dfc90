"""The one place engines are chosen: an engine name -> its backup and restore classes, and
what else reads its backups (the restore test, point-in-time restores, seeding a replica).

Engines live in their own packages (``mysql/``, ``mongo/``) and depend on the interfaces of
:mod:`datatier.backup.engine`; ``backup/`` never imports an engine's module by name. Entries
name ``module:Class`` and are imported on first use (pymongo alone costs 0.2 s of start-up).
A policy's ``engine`` and a manifest's ``engine`` are keys of :data:`ENGINES`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from datatier.errors import UsageError

if TYPE_CHECKING:
    from datatier.backup.catalog import Catalog
    from datatier.backup.engine import (
        BackupEngine,
        RestoreEngine,
        RestoreOptions,
        RestoreTestOptions,
        RestoreTestReport,
    )
    from datatier.backup.manifest import Manifest
    from datatier.backup.policy import Policy
    from datatier.config import LoadedConfig


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine's backup and restore classes live, as ``module:Class``."""

    backup: str
    restore: str
    summary: str
    restore_test: str | None = None  # module:function of ``backups verify --restore-test``
    point_in_time: str | None = None  # module:Class restoring up to ``--until``
    seed: str | None = None  # module:function planning ``provision replica`` from a backup


ENGINES: Mapping[str, EngineEntry] = MappingProxyType(
    {
        "mysql": EngineEntry(
            "datatier.mysql.pdump:ParallelDumpEngine",
            "datatier.mysql.restore:LogicalRestore",
            "MySQL/MariaDB logical: parallel dump from one snapshot, plain SQL objects",
            "datatier.mysql.restoretest:restore_test",
            "datatier.binlog.restore:PitrRestore",
            seed="datatier.provision.replica:plan_logical_seeding",
        ),
        "mariabackup": EngineEntry(
            "datatier.mysql.physical.engine:MariabackupEngine",
            "datatier.mysql.physical.restore:PhysicalRestore",
            "MariaDB physical: mariadb-backup stream (full or incremental), run on the DB host",
            "datatier.mysql.physical.restoretest:physical_restore_test",
            point_in_time="datatier.binlog.physical:PhysicalPitrRestore",
            seed="datatier.provision.physical_seed:plan_physical_seeding",
        ),
        "mongo": EngineEntry(
            "datatier.mongo.dump:MongoDumpEngine",
            "datatier.mongo.restore:MongoRestore",
            "MongoDB logical: raw BSON per collection, oplog slice on replica sets",
        ),
    }
)


def point_in_time(engine: str) -> bool:
    """Whether backups of ``engine`` can be the base of a point-in-time restore."""
    found = ENGINES.get(engine)
    return found is not None and found.point_in_time is not None


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def entry(name: str) -> EngineEntry:
    """The registry entry of engine ``name``; UsageError naming the known engines."""
    try:
        return ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise UsageError(f"engine {name!r} is not available (known: {known})") from None


def backup_engine(
    loaded: LoadedConfig, policy: Policy, *, max_lag: float | None = None
) -> BackupEngine:
    """The backup engine for ``policy``, built by the engine class itself."""
    cls = _load(entry(policy.spec.engine).backup)
    engine: BackupEngine = cls.for_policy(loaded, policy, max_lag=max_lag)
    return engine


def restore_engine(
    loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreOptions
) -> RestoreEngine:
    """The restore engine for ``manifest`` (its ``engine``; the engine's point-in-time one
    with ``--until``/``--until-gtid``), built by the engine class."""
    found = entry(manifest.engine)
    target = found.restore
    if options.until is not None or options.until_gtid is not None:
        if found.point_in_time is None:
            raise UsageError(f"point-in-time restores are not available for {manifest.engine}")
        target = found.point_in_time
    cls = _load(target)
    engine: RestoreEngine = cls.for_manifest(loaded, manifest, catalog, options)
    return engine


def restore_test(
    loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreTestOptions
) -> RestoreTestReport:
    """Run the restore test of ``manifest``'s engine; UsageError if it has none."""
    target = entry(manifest.engine).restore_test
    if target is None:
        raise UsageError(f"--restore-test is not available for {manifest.engine} backups")
    report: RestoreTestReport = _load(target)(loaded, manifest, catalog, options)
    return report


def seed_planner(manifest: Manifest) -> Any:
    """The function planning ``provision replica`` from ``manifest``'s backup (its contract
    is :data:`datatier.provision.seeding.Planner`); UsageError if its engine cannot seed a
    MySQL replica."""
    target = entry(manifest.engine).seed
    if target is None:
        raise UsageError(f"backup {manifest.backup_id} is a {manifest.engine} backup, not MySQL")
    return _load(target)
