"""``provision replica``: seed a new MySQL replica from a backup, whatever its engine.

Contract. :func:`plan_seeding` finds the backup and asks the engine registry
(:func:`datatier.backup.engines.seed_planner`) for its engine's seeder: a logical backup is
loaded into the running target (:mod:`datatier.provision.replica`), a physical one replaces
the target's datadir (:mod:`datatier.provision.physical_seed`). The seeder checks everything
and returns a :class:`Seeding` that has changed nothing yet; :meth:`Seeding.run` seeds and
follows the primary until caught up. Both say what they would do / did in one line for
people (``describe``) and as a JSON document (``to_json``). A backup whose engine cannot
seed a MySQL replica is refused (UsageError) before anything is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from datatier.backup.engines import seed_planner
from datatier.backup.restore import locate_backup

if TYPE_CHECKING:
    from datatier.backup.catalog import Catalog
    from datatier.backup.manifest import Manifest
    from datatier.config import LoadedConfig
    from datatier.mysql.connection import Endpoint
    from datatier.provision.catchup import LagCallback


@dataclass(frozen=True)
class SeedOptions:
    """What ``provision replica`` was asked for; each seeder refuses (UsageError) what does
    not apply to it (``datadir``, ``start_command`` and ``external_dir`` are for physical
    backups)."""

    jobs: int = 4
    timeout: float = 600.0  # seconds per replication phase
    datadir: str | None = None
    start_command: str | None = None
    external_dir: str | None = None  # where the backup's DATA DIRECTORY tables go


class Seeded(Protocol):
    """What a seeding did."""

    def to_json(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


class Seeding(Protocol):
    """A checked seeding plan: nothing changed yet."""

    def to_json(self) -> dict[str, Any]: ...

    def describe(self) -> str:
        """What :meth:`run` would do, in one line."""
        ...

    def run(self, on_lag: LagCallback | None = None) -> Seeded:
        """Seed the target and wait until it has caught up (``on_lag`` sees each look)."""
        ...


Planner = Callable[["LoadedConfig", "Manifest", "Catalog", "Endpoint", SeedOptions], Seeding]
"""An engine's seeder, as the registry names it."""


def plan_seeding(
    loaded: LoadedConfig, backup_id: str, target: Endpoint, options: SeedOptions
) -> Seeding:
    """Check seeding ``target`` from ``backup_id`` (see module docstring); changes nothing."""
    catalog, manifest = locate_backup(loaded, backup_id)
    planner = cast(Planner, seed_planner(manifest))
    return planner(loaded, manifest, catalog, target, options)
