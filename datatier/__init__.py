"""datatier: keeps a company's data tier healthy and recoverable.

The public library API is the names in ``__all__`` (listed in the README's "Library API"
section); everything else is internal and may change between minor versions. Names are
imported on first use, so ``import datatier`` stays cheap (the command line starts with it)
and pulls in no database driver.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from datatier.backup.engine import BackupPlan, RestoreOptions
    from datatier.backup.manifest import Manifest
    from datatier.backup.policy import Policy
    from datatier.backup.restore import RestoreReport, locate_backup, restore_backup
    from datatier.backup.service import load_policy, plan_backup, run_backup
    from datatier.config import Config, LoadedConfig
    from datatier.config import load as load_config
    from datatier.errors import (
        ConfigError,
        DatatierError,
        ExitCode,
        IntegrityFailure,
        NotReadyYet,
        OperationFailed,
        ServiceUnavailable,
        UsageError,
        exit_code_of,
    )
    from datatier.replication.monitor import Monitor
    from datatier.replication.router import Router

_HOMES: Mapping[str, str] = MappingProxyType(
    {
        "load_config": "datatier.config:load",
        "Config": "datatier.config:Config",
        "LoadedConfig": "datatier.config:LoadedConfig",
        "Monitor": "datatier.replication.monitor:Monitor",
        "Router": "datatier.replication.router:Router",
        "Policy": "datatier.backup.policy:Policy",
        "load_policy": "datatier.backup.service:load_policy",
        "run_backup": "datatier.backup.service:run_backup",
        "plan_backup": "datatier.backup.service:plan_backup",
        "BackupPlan": "datatier.backup.engine:BackupPlan",
        "Manifest": "datatier.backup.manifest:Manifest",
        "locate_backup": "datatier.backup.restore:locate_backup",
        "restore_backup": "datatier.backup.restore:restore_backup",
        "RestoreOptions": "datatier.backup.engine:RestoreOptions",
        "RestoreReport": "datatier.backup.restore:RestoreReport",
        "DatatierError": "datatier.errors:DatatierError",
        "ConfigError": "datatier.errors:ConfigError",
        "UsageError": "datatier.errors:UsageError",
        "OperationFailed": "datatier.errors:OperationFailed",
        "ServiceUnavailable": "datatier.errors:ServiceUnavailable",
        "IntegrityFailure": "datatier.errors:IntegrityFailure",
        "NotReadyYet": "datatier.errors:NotReadyYet",
        "ExitCode": "datatier.errors:ExitCode",
        "exit_code_of": "datatier.errors:exit_code_of",
    }
)

__all__ = [  # the README's Library API section lists the same names
    "BackupPlan",
    "Config",
    "ConfigError",
    "DatatierError",
    "ExitCode",
    "IntegrityFailure",
    "LoadedConfig",
    "Manifest",
    "Monitor",
    "NotReadyYet",
    "OperationFailed",
    "Policy",
    "RestoreOptions",
    "RestoreReport",
    "Router",
    "ServiceUnavailable",
    "UsageError",
    "__version__",
    "exit_code_of",
    "load_config",
    "load_policy",
    "locate_backup",
    "plan_backup",
    "restore_backup",
    "run_backup",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its home module on use (module docstring)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'datatier' has no attribute {name!r}")
    module, _, attr = home.partition(":")
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
