"""The one place engines are chosen: an engine name -> its backup (and restore) classes.

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
from typing import TYPE_CHECKING

from datatier.errors import UsageError

if TYPE_CHECKING:
    from datatier.backup.engine import BackupEngine
    from datatier.backup.policy import Policy
    from datatier.config import LoadedConfig


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine's classes live, as ``module:Class``."""

    backup: str
    summary: str


ENGINES: Mapping[str, EngineEntry] = MappingProxyType(
    {
        "mysql": EngineEntry(
            "datatier.mysql.pdump:ParallelDumpEngine",
            "MySQL/MariaDB logical: parallel dump from one snapshot, plain SQL objects",
        ),
        "mariabackup": EngineEntry(
            "datatier.mysql.physical.engine:MariabackupEngine",
            "MariaDB physical: mariadb-backup stream (full or incremental), run on the DB host",
        ),
        "mongo": EngineEntry(
            "datatier.mongo.dump:MongoDumpEngine",
            "MongoDB logical: raw BSON per collection, oplog slice on replica sets",
        ),
    }
)


def _load(target: str) -> type:
    module, _, name = target.partition(":")
    found = getattr(importlib.import_module(module), name)
    assert isinstance(found, type)
    return found


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
    engine: BackupEngine = cls.for_policy(loaded, policy, max_lag=max_lag)  # type: ignore[attr-defined]
    return engine
