"""The contracts between datatier's services and its engines (MySQL logical, MongoDB,
MariaDB physical): a backup engine plans (:class:`BackupPlan`) and dumps into an
:class:`ObjectWriter`, a restore engine plans (:class:`RestorePlan`) and applies verified
copies. Engines are chosen in :mod:`datatier.backup.engines`."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from datatier.backup.manifest import Manifest, ObjectRecord, TableRecord
from datatier.backup.names import show
from datatier.backup.objects import ObjectWriter
from datatier.errors import IntegrityFailure, UsageError
from datatier.storage.base import ObjectStore, RestoreTier

if TYPE_CHECKING:
    from datatier.backup.catalog import Catalog
    from datatier.backup.policy import Policy
    from datatier.config import LoadedConfig
    from datatier.pipeline.staging import Staged


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


@dataclass(frozen=True)
class PlannedTable:
    """One table, sequence, view or collection a backup would hold. ``rows`` and ``bytes``
    are the source's own estimates (``information_schema.TABLES``, ``collStats``; None where
    it has none), never counted; ``ranges``: the key ranges a parallel dump reads it in
    (None: the engine does not split tables)."""

    database: str
    name: str
    kind: str = "table"  # table | sequence | view | collection
    rows: int | None = None
    bytes: int | None = None
    ranges: int | None = None

    @property
    def qualified(self) -> str:
        return f"{self.database}.{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "name": self.name,
            "kind": self.kind,
            "rows_estimate": self.rows,
            "bytes_estimate": self.bytes,
            "ranges": self.ranges,
        }


HELD_KINDS = frozenset({"table", "sequence", "collection"})
"""Kinds a manifest lists in ``tables`` (views are recorded with their database)."""


@dataclass
class BackupPlan:
    """What a backup would read and how, decided before anything is written (reads only).

    ``source``: the node or server it reads (for MySQL with the lag measured on it);
    ``kind``: ``full`` or ``incremental`` on ``parent``; ``tables``: what is in scope, with
    estimates; ``jobs``: parallel readers; ``consistency``: the method it would use;
    ``store``: where objects would go (set by the service: url, storage class, encryption);
    ``details``: the engine's other facts for ``--json``; ``summary``: lines a person reads.
    """

    engine: str
    policy: str
    source: dict[str, Any]
    consistency: str
    tables: list[PlannedTable] = field(default_factory=list)
    kind: str = "full"
    parent: str | None = None
    jobs: int = 1
    store: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)

    def held(self) -> list[str]:
        """``db.name`` of every table or collection the manifest would list, sorted."""
        return sorted(t.qualified for t in self.tables if t.kind in HELD_KINDS)

    def estimates(self) -> dict[str, Any]:
        """Totals of the estimates (rows and bytes the source reports; not counted)."""
        return {
            "rows": sum(t.rows or 0 for t in self.tables),
            "bytes": sum(t.bytes or 0 for t in self.tables),
            "estimated": True,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "policy": self.policy,
            "engine": self.engine,
            "kind": self.kind,
            "parent": self.parent,
            "source": self.source,
            "consistency": self.consistency,
            "jobs": self.jobs,
            "store": self.store,
            "estimates": self.estimates(),
            "tables": [t.to_json() for t in self.tables],
            "details": self.details,
            "summary": self.summary,
        }


class BackupEngine(abc.ABC):
    """Abstract base of dump engines.

    Contract: :meth:`plan` decides what :meth:`dump` would take and reads only (the same
    refusals as a dump: UsageError, ConfigError, OperationFailed); after it, :meth:`dump`
    follows its decisions (full or incremental, parent, split rule), though what a dump
    holds is read again at its consistent point. :meth:`dump` writes every data object
    through ``writer`` (opening and closing objects in restore order) from one consistent
    point of the source, and returns a :class:`DumpResult`. It never writes the manifest.
    On any failure it raises (an :class:`~datatier.errors.DatatierError` where the cause is
    known) after releasing the source; the service then aborts the writer, so no manifest
    is ever written.
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
    def plan(self) -> BackupPlan:
        """What the next :meth:`dump` would read, from the source's catalogue; reads only."""

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


# -- the restore side ---------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreOptions:
    """What the user asked for (see ``datatier restore --help``). Each engine uses the
    options that apply to it and refuses (UsageError) those that cannot."""

    target: str | None = None  # MySQL: NODE or HOST:PORT (default: the primary); Mongo: NAME
    renames: dict[str, str] = field(default_factory=dict)
    tables: tuple[tuple[str, str], ...] = ()  # (database, table): see datatier.backup.names
    databases: tuple[str, ...] = ()
    jobs: int = 4
    dry_run: bool = False
    binlog: bool = True
    keys_after_data: bool = True  # MySQL logical: secondary indexes built after the rows
    force: bool = False
    allow_replica_target: bool = False
    drop: bool = False
    grants: bool = False
    wait: bool = False
    tier: RestoreTier = RestoreTier.STANDARD
    days: int = 3
    poll_seconds: float = 30.0
    timeout_seconds: float = 48 * 3600.0
    datadir: str | None = None  # physical: the datadir to restore into
    owner: str | None = None  # physical: USER[:GROUP] owning the restored files
    external_dir: str | None = None  # physical: where DATA DIRECTORY tables go (else their own)
    staging_dir: str | None = None  # where verified copies wait (default: the temp dir)
    until: datetime | None = None  # point in time: replay archived binlogs up to here
    until_gtid: str | None = None  # point in time: ... up to and including this GTID
    scan: bool = False  # dry run: also stage and check the engine's rehearsal objects

    def __post_init__(self) -> None:
        """UsageError when ``tables`` name a database ``databases`` leaves out: the two
        narrow each other, so such a table would be skipped without a word (a restore of
        nothing, exit 0)."""
        if not self.databases:
            return
        outside = [show(db, t) for db, t in self.tables if db not in self.databases]
        if outside:
            raise UsageError(
                f"--tables {', '.join(outside)}: not in the databases --databases restores "
                f"({', '.join(self.databases)}), so nothing of them would be restored",
                hint="add their databases to --databases, or leave --databases out",
            )

    def selects(self, database: str, table: str) -> bool:
        """Whether a restore with these options brings back ``database``.``table``: in
        ``databases`` and in ``tables``, each when given."""
        return (not self.databases or database in self.databases) and (
            not self.tables or (database, table) in self.tables
        )

    def targets(self, sources: Iterable[str]) -> dict[str, str]:
        """Each source database's target (``renames`` applied); UsageError naming both when
        two sources would land in one target (``--rename A=B`` while B is restored too):
        their tables would collide part-way through the load."""
        targets = {db: self.renames.get(db, db) for db in sources}
        claimed: dict[str, str] = {}
        for source, target in sorted(targets.items()):
            if target in claimed:
                raise UsageError(
                    f"--rename: databases {claimed[target]} and {source} would both be "
                    f"restored into {target}",
                    hint="rename the other one too (--rename), or restore only one (--databases)",
                )
            claimed[target] = source
        return targets


@dataclass
class RestorePlan:
    """What a restore fetches and where it goes, decided before anything is fetched or
    changed. ``objects`` are in apply order (for a chain: parents first); ``details`` are
    the engine's facts for ``--json``; ``summary`` the lines a person reads; ``touches``
    what an interrupted apply may leave partly written (default: ``target``)."""

    manifest: Manifest
    objects: list[ObjectRecord]
    target: str
    details: dict[str, Any] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)
    touches: str = ""
    stores: dict[str, ObjectStore] = field(default_factory=dict)
    """Objects kept outside the backup's own store (key -> store), e.g. archived binlogs."""


@dataclass(frozen=True)
class RestoreProgress:
    """Callbacks a restore reports progress through (all optional)."""

    on_wait: Callable[[int, int], None] | None = None  # archived objects: (readable, all)
    on_checked: Callable[[str, int], None] | None = None  # an object staged: (key, bytes)
    on_loaded: Callable[[ObjectRecord], None] | None = None  # an object applied
    on_replayed: Callable[[int, int], None] | None = None  # binlog replayed: (bytes, all)


class RestoreEngine(abc.ABC):
    """Abstract base of restore engines: decide what to fetch, apply verified copies.

    Contract (driven by :func:`datatier.backup.restore.restore_backup`, in this order):
    :meth:`plan` selects and validates (UsageError, IntegrityFailure) and only reads;
    :meth:`claim_target` holds the target against other restores from here to the end (a
    real run only; NotReadyYet, exit 5, while another holds it); :meth:`check_target`
    makes every refusal about the target (exit 2) and changes nothing,
    before any archive-restore request is sent (they cost money); :meth:`check_staged`
    makes the refusals that need the objects' content, once every one was downloaded and
    its SHA-256 checked, and changes nothing; :meth:`apply` applies the objects from
    ``staged`` (an engine never downloads or verifies); :meth:`post_check` confirms the
    result (row counts, a prepared datadir). Nothing but :meth:`apply` writes, so only its
    failure can leave a target partly loaded.
    """

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def for_manifest(
        cls, loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreOptions
    ) -> Self:
        """The engine for restoring ``manifest`` (found in ``catalog``) with ``options``."""

    @abc.abstractmethod
    def plan(self) -> RestorePlan:
        """What to fetch and where it goes."""

    def claim_target(self, plan: RestorePlan) -> contextlib.AbstractContextManager[None]:
        """Hold what the restore writes against other restores for the block (NotReadyYet
        when another holds it; changes nothing); no claim by default. A claim lost before
        the block ends stops the engine's writes and ends the block with OperationFailed."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def check_target(self, plan: RestorePlan) -> None:
        """Refuse a target that must not be written (UsageError); changes nothing."""

    @abc.abstractmethod
    def apply(
        self, plan: RestorePlan, staged: Staged, on_loaded: Callable[[ObjectRecord], None] | None
    ) -> None:
        """Apply the plan's objects from their verified local copies."""

    def changed_target(self) -> bool:
        """Whether the last :meth:`apply` (one that failed) may have changed the target;
        True unless the engine knows it stopped before its first change."""
        return True

    def check_staged(self, plan: RestorePlan, staged: Staged) -> None:  # noqa: B027 - optional
        """Refuse what the staged content shows cannot be applied (UsageError); changes
        nothing."""

    def rehearsal_objects(self, plan: RestorePlan) -> list[ObjectRecord]:
        """The plan's objects a dry run with ``scan`` stages and passes to :meth:`rehearse`
        (none by default: such a dry run then downloads nothing)."""
        return []

    def rehearse(self, plan: RestorePlan, staged: Staged) -> None:  # noqa: B027 - optional
        """The refusals of :meth:`check_staged` that need only :meth:`rehearsal_objects`
        (staged), made during a dry run; records what they learned in ``plan.details``;
        changes nothing."""

    def post_check(self, plan: RestorePlan) -> None:  # noqa: B027 - optional hook
        """Confirm what was applied (OperationFailed / IntegrityFailure)."""

    def watch_replay(self, callback: Callable[[int, int], None]) -> None:  # noqa: B027
        """Report a point-in-time replay's progress to ``callback`` (bytes of binlog read
        so far, all the bytes it will read) as :meth:`apply` goes; other engines have none."""

    def staging_failed(self, plan: RestorePlan, failure: IntegrityFailure) -> IntegrityFailure:
        """The error to report when staging ``plan``'s objects raised ``failure`` (nothing
        was applied): ``failure`` itself unless the engine can say more (which other backup
        could serve, say)."""
        return failure


@dataclass(frozen=True)
class RestoreTestOptions:
    """How ``backups verify --restore-test`` restores: logical engines into scratch
    databases on ``target``; physical ones into a scratch datadir served on a free port."""

    target: str | None = None
    allow_replica_target: bool = False
    scratch_port: int | None = None
    scratch_dir: str | None = None
    jobs: int = 4


@dataclass
class RestoreTestReport:
    """What a restore test proved: one line for people, ``details`` for ``--json``."""

    summary: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.details, "summary": self.summary, "seconds": self.seconds}
