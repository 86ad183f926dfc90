"""The contract between the backup service and a dump engine (MySQL, MongoDB)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self

from datatier.backup.manifest import TableRecord
from datatier.backup.objects import ObjectWriter
from datatier.errors import UsageError

if TYPE_CHECKING:
    from datatier.backup.policy import Policy
    from datatier.config import LoadedConfig


@dataclass
class DumpResult:
    """What an engine learned while dumping, for the manifest."""

    source: dict[str, Any]
    consistency: dict[str, Any]
    tables: list[TableRecord]
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    """For an incremental: the backup it builds on (the manifest names it)."""


class BackupEngine(abc.ABC):
    """Abstract base of dump engines.

    Contract: :meth:`dump` writes every data object through ``writer`` (opening and closing
    objects in restore order) from one consistent point of the source, and returns a
    :class:`DumpResult`. It never writes the manifest. On any failure it raises (an
    :class:`~datatier.errors.DatatierError` where the cause is known) after releasing the
    source; the service then aborts the writer, so no manifest is ever written.
    """

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def for_policy(
        cls, loaded: LoadedConfig, policy: Policy, *, max_lag: float | None = None
    ) -> Self:
        """The engine for ``policy``'s source, as configured (ConfigError if it is not).
        Engines reading replicas choose a node lagging at most ``max_lag`` seconds (None:
        the policy's limit), or raise NotReadyYet (exit 5) before anything is written."""

    @abc.abstractmethod
    def dump(self, writer: ObjectWriter) -> DumpResult:
        """Dump the source into ``writer``."""

    def choose(self, incremental: bool | None) -> None:
        """What the next :meth:`dump` takes: True an incremental, False a full backup, None
        what the policy says. Engines without incrementals refuse True (UsageError)."""
        if incremental:
            raise UsageError(
                f"the {self.name} engine takes full backups only",
                hint='incrementals are for physical policies (engine = "mariabackup")',
            )
