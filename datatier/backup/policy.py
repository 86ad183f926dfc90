"""Backup policies: one TOML file per protected dataset, in ``backup.policies_dir``.

A policy names its engine and source, what to include, where to store, how to compress,
how objects age into archive classes, what to keep, and when it runs (a cron expression
or an alias such as ``@daily``; see :mod:`datatier.backup.cron`).
Loading validates everything and raises :class:`~datatier.errors.ConfigError` naming the file
and key, including settings that parse but cannot work: a number that is not finite, a node
the config does not have, a store URL datatier cannot open, a schedule that never fires.
:func:`scan_policies` loads a whole directory and reports broken files beside the good ones,
so that one bad file does not stop commands about the others. Example
(``backups/shop.toml``)::

    engine = "mysql"
    schedule = "15 2 * * *"
    jobs = 4                     # connections dumping in parallel from one snapshot
    store = "s3://company-backups/mysql"

    [source]
    nodes = ["replica2", "replica1"]  # the first healthy one under max_lag_seconds is read;
                                      # "any-replica" = every replica; or node = "replica1"
                                      # (Mongo: server = NAME of [mongo.servers])
    max_lag_seconds = 300        # heartbeat lag; a stopped SQL thread is refused (exit 5)
    databases = ["shop", "crm"]  # empty: every non-system database
    exclude_tables = ["shop.sessions"]
    include_grants = true        # accounts and grants too (restore --grants)

    [storage]
    initial_class = "STANDARD"   # or GLACIER_IR / GLACIER / DEEP_ARCHIVE (straight there)
    archive_class = "GLACIER"    # data objects move here...
    archive_after_days = 30      # ...after this many days (0: never)

    [archive]
    min_object_kb = 128          # smaller objects stay (the newest backup always stays)

    [retention]
    keep_last = 7
    keep_daily = 7
    keep_weekly = 4
    keep_monthly = 6
    min_age_days = 1
    recovery_window_days = 14     # every backup needed to restore to any point of 14 days

``tables = ["shop.orders", ...]`` alone picks what is backed up (its entries' databases
included; ``databases`` may be left out). A ``databases`` entry no ``tables`` entry names,
or a ``tables`` entry in a database ``databases``/``exclude_databases`` leave out, is
refused (ConfigError): that database would silently not be backed up.

``encrypt = false`` stores a policy's objects unencrypted although ``[encryption]`` names
recipients (``encrypt = true`` without recipients is refused when a backup runs).

A physical policy (``engine = "mariabackup"``, run on the database host) copies the node's
datadir with ``jobs`` parallel threads; ``full_every_days = 7`` makes ``backup run`` take
incrementals on the newest backup until the chain's full backup is 7 days old (0: always
full unless ``--incremental``); ``source.datadir`` overrides the server's ``@@datadir``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from datatier.backup.engines import ENGINES
from datatier.backup.names import QUOTE_HINT, TableName, parse_tables, show
from datatier.errors import ConfigError, UsageError
from datatier.storage.base import StorageClass
from datatier.storage.url import parse_store_url
from datatier.typedtoml import Binder, option, read_toml

POLICY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Never part of "every database": the server's own schemas, and datatier's heartbeat
# (restoring an old heartbeat row would fake replica lag). Name them in `databases` to
# include them anyway.
SYSTEM_DATABASES = frozenset(
    {"mysql", "information_schema", "performance_schema", "sys", "datatier"}
)
MONGO_SYSTEM = frozenset({"admin", "local", "config"})
InitialClass = Literal["STANDARD", "STANDARD_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"]
"""Storage classes a policy may write data objects in, warmest first."""
ArchiveClass = Literal["GLACIER", "DEEP_ARCHIVE"]
"""Storage classes data objects may be archived to."""
ARCHIVE_ORDER: dict[str, int] = {name: rank for rank, name in enumerate(get_args(InitialClass))}
"""How cold each class is (0: STANDARD)."""
ANY_REPLICA = "any-replica"


def check_max_lag(max_lag: float) -> float:
    """``max_lag`` (seconds of replica lag a backup accepts); UsageError (exit 2) unless it
    is a finite number >= 0: ``nan`` would admit any lag (``lag > nan`` is never true)."""
    if not isinstance(max_lag, int | float) or not math.isfinite(max_lag) or max_lag < 0:
        raise UsageError(f"max_lag must be a finite number of seconds >= 0, not {max_lag!r}")
    return float(max_lag)


@dataclass(frozen=True)
class SourceSettings:
    """``[source]``: what to back up. MySQL: the config nodes to read from, in order of
    preference (``node`` or ``nodes``; ``"any-replica"`` stands for every replica of the
    config), and how stale a replica may be; Mongo: ``server``, a ``[mongo.servers]`` name
    (unset: the config's ``[mongo]`` itself). ``include_grants`` (MySQL) also stores the
    server's accounts, roles and grants as their own object, restored only with
    ``restore --grants``."""

    node: str | None = None
    nodes: list[str] = option([])
    max_lag_seconds: float = option(300.0, min=0)
    server: str | None = None
    databases: list[str] = option([])
    exclude_databases: list[str] = option([])
    tables: list[str] = option([])
    exclude_tables: list[str] = option([])
    include_grants: bool = False
    datadir: str | None = None  # mariabackup: the node's datadir on this host (default @@datadir)


@dataclass(frozen=True)
class StorageSettings:
    """``[storage]``: storage classes of data objects (manifests always stay STANDARD)."""

    initial_class: InitialClass = "STANDARD"
    archive_class: ArchiveClass = "GLACIER"
    archive_after_days: int = option(0, min=0)


@dataclass(frozen=True)
class ArchiveSettings:
    """``[archive]``: what ``backups archive`` leaves in its class. Objects under
    ``min_object_kb`` stay (as S3 lifecycle rules leave objects under 128 KiB: in Glacier
    a tiny object costs more than in STANDARD, with 40 KiB of overhead each); so does the
    newest complete backup of the policy, the one a restore most likely needs."""

    min_object_kb: int = option(128, min=0)


@dataclass(frozen=True)
class RetentionSettings:
    """``[retention]``: generations to keep; anything else older than min_age_days may go.
    ``recovery_window_days`` (Barman's recovery window; 0 = off) keeps every backup needed
    to restore to any point of the last N days: all backups of the window plus the newest
    one at or before its start."""

    keep_last: int = option(7, min=1)
    keep_daily: int = option(0, min=0)
    keep_weekly: int = option(0, min=0)
    keep_monthly: int = option(0, min=0)
    min_age_days: float = option(1.0, min=0)
    recovery_window_days: float = option(0.0, min=0)


@dataclass(frozen=True)
class PolicyFile:
    """The TOML document of a policy."""

    engine: str = option("mysql", choices=tuple(ENGINES))
    store: str | None = None
    schedule: str = "0 2 * * *"
    compression_level: int = option(3, min=1)
    chunk_mb: int = option(32, min=1)
    bundle_tables: bool = True  # MySQL: small tables share objects (False: each its own)
    jobs: int = option(4, min=1)
    full_every_days: int = option(0, min=0)  # mariabackup: incrementals until the full is this old
    encrypt: bool | None = None  # age-encrypt objects (default: when [encryption] has recipients)
    source: SourceSettings = field(default_factory=SourceSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)


@dataclass(frozen=True)
class Policy:
    """A validated policy: its name (the file's stem), its file and its settings."""

    name: str
    path: Path
    spec: PolicyFile
    store_url: str

    def includes_database(self, database: str) -> bool:
        """Whether ``database`` is part of this policy's source."""
        src = self.spec.source
        if database in src.exclude_databases:
            return False
        if src.tables:
            return database in self.listed_databases()
        if src.databases:
            return database in src.databases
        system = MONGO_SYSTEM if self.spec.engine == "mongo" else SYSTEM_DATABASES
        return database not in system

    def listed_databases(self) -> list[str]:
        """The databases ``source.tables`` entries can name (both of an unquoted ``a.b.c``)."""
        return sorted({db for db, _ in _readings(tuple(self.spec.source.tables))})

    def includes_table(self, database: str, table: str) -> bool:
        """Whether ``database.table`` is part of this policy's source (an unquoted entry
        such as ``a.b.c`` includes both of its readings; :meth:`listing_problems` then
        refuses it if the source has both)."""
        src = self.spec.source
        if (database, table) in _readings(tuple(src.exclude_tables)):
            return False
        if src.tables:
            return (database, table) in _readings(tuple(src.tables))
        return self.includes_database(database)

    def listing_problems(self, held: Collection[TableName]) -> list[str]:
        """What is wrong with ``source.tables`` given ``held``, the tables and views of the
        source this policy includes: an entry naming none of them (a typo, a table dropped
        or renamed since the policy was written), or fitting two (an unquoted dot). A
        backup must refuse either rather than quietly leave a listed table out."""
        problems: list[str] = []
        for entry in parse_tables(self.spec.source.tables, "source.tables"):
            fits = [r for r in entry.candidates if r in held]
            if not fits:
                problems.append(f"{entry.text!r} names no table or view there")
            elif len(fits) > 1:
                both = ", ".join(show(db, t, always=True) for db, t in fits)
                problems.append(f"{entry.text!r} fits {both}: quote one with backticks")
        return problems

    def missing_databases(self, present: Collection[str]) -> list[str]:
        """``source.databases`` entries not in ``present`` (and not excluded): a typo, or a
        database the source lacks; a backup must not quietly go without one."""
        src = self.spec.source
        return [d for d in src.databases if d not in present and d not in src.exclude_databases]

    def exclusion_problems(self, seen: Collection[TableName]) -> list[str]:
        """``source.exclude_tables`` entries that fit two of ``seen`` (every table and view
        of the included databases): an unquoted dot would leave both out. An entry fitting
        none is no problem (the table is gone; there is nothing to leave out)."""
        problems: list[str] = []
        for entry in parse_tables(self.spec.source.exclude_tables, "source.exclude_tables"):
            fits = [r for r in entry.candidates if r in seen]
            if len(fits) > 1:
                both = ", ".join(show(db, t, always=True) for db, t in fits)
                problems.append(f"{entry.text!r} fits {both}: quote one with backticks")
        return problems


@lru_cache(maxsize=256)
def _readings(entries: tuple[str, ...]) -> frozenset[TableName]:
    """Every (database, table) pair the policy entries can mean."""
    return frozenset(r for e in parse_tables(entries, "source.tables") for r in e.candidates)


def _check_selection(src: SourceSettings, source: str) -> None:
    """``source.tables``, when set, alone picks what is backed up: ConfigError (exit 2)
    when ``databases`` or ``exclude_databases`` would be silently overridden (a database
    listed that no ``tables`` entry names, or an entry in a database left out)."""
    if not src.tables:
        return
    entries = parse_tables(src.tables, "source.tables")
    hint = "source.tables alone picks the tables backed up; databases may be left out"
    for db in src.databases:
        if not any(reading[0] == db for e in entries for reading in e.candidates):
            raise ConfigError(source, "source.databases", f"{db!r} is named by no source.tables "
                              "entry, so it would not be backed up", hint=hint)  # fmt: skip
    for e in entries:
        dbs = {reading[0] for reading in e.candidates}
        if (src.databases and not dbs & set(src.databases)) or dbs <= set(src.exclude_databases):
            problem = f"{e.text!r} is in a database source.databases/exclude_databases leave out"
            raise ConfigError(source, "source.tables", problem, hint=hint)


def load_policy(path: Path, default_store: str, nodes: Collection[str] | None = None) -> Policy:
    """Read and validate one policy file; ``nodes`` (the config's MySQL nodes), when given,
    are the names ``source.node(s)`` may use."""
    name = path.stem
    source = str(path)
    if not POLICY_NAME.match(name):
        raise ConfigError(source, None, f"policy name {name!r} must match {POLICY_NAME.pattern}")
    data = read_toml(path, "policy file")
    spec = Binder(source, path.parent).bind(PolicyFile, data)
    # lazy: croniter (~8 ms to import) only for commands that load a policy file
    from datatier.backup.cron import validate_cron

    try:
        validate_cron(spec.schedule)
    except ValueError as exc:
        raise ConfigError(source, "schedule", str(exc)) from None
    for key, number in (
        ("retention.min_age_days", spec.retention.min_age_days),
        ("retention.recovery_window_days", spec.retention.recovery_window_days),
    ):
        if not math.isfinite(number):
            raise ConfigError(source, key, f"{number!r} is not a finite number of days")
    if spec.jobs > 64:
        raise ConfigError(source, "jobs", "at most 64 parallel connections")
    if spec.compression_level > 22:
        raise ConfigError(source, "compression_level", "zstd levels go from 1 to 22")
    storage = spec.storage
    if (
        storage.archive_after_days
        and ARCHIVE_ORDER[storage.initial_class] >= ARCHIVE_ORDER[storage.archive_class]
    ):
        raise ConfigError(
            source,
            "storage.archive_class",
            f"{storage.archive_class} is not colder than initial_class {storage.initial_class}",
        )
    lists = {
        "source.tables": spec.source.tables,
        "source.exclude_tables": spec.source.exclude_tables,
    }
    for key, items in lists.items():
        try:
            parse_tables(items, key)
        except UsageError as exc:
            problem = exc.message.removeprefix(f"{key} ")  # ConfigError names the key
            raise ConfigError(source, key, problem, hint=exc.hint or QUOTE_HINT) from None
    _check_selection(spec.source, source)
    if spec.engine != "mysql" and spec.source.include_grants:
        raise ConfigError(source, "source.include_grants", "only MySQL backups have grants")
    if spec.engine == "mariabackup" and (
        spec.source.node in (None, ANY_REPLICA) or spec.source.nodes
    ):
        raise ConfigError(
            source,
            "source.node",
            "a physical backup copies the datadir of one node on this host: name it",
            hint="source.node = a [mysql.nodes] name (source.nodes is for logical backups)",
        )
    if spec.engine == "mysql" and spec.source.node is None and not spec.source.nodes:
        raise ConfigError(
            source,
            "source.nodes",
            "missing required value",
            hint=f'[mysql.nodes] names in order of preference, or ["{ANY_REPLICA}"]',
        )
    if spec.source.node is not None and spec.source.nodes:
        raise ConfigError(source, "source.node", "give source.node or source.nodes, not both")
    if spec.engine in ("mysql", "mariabackup") and nodes is not None:
        key = "source.nodes" if spec.source.nodes else "source.node"
        for node in spec.source.nodes or [spec.source.node or ""]:
            if node != ANY_REPLICA and node not in nodes:
                known = ", ".join(sorted(nodes)) or "none configured"
                raise ConfigError(
                    source, key, f"unknown node {node!r}", hint=f"[mysql.nodes]: {known}"
                )
    if spec.store is not None:
        try:
            parse_store_url(spec.store)
        except UsageError as exc:
            raise ConfigError(source, "store", exc.message) from None
    if spec.engine != "mongo" and spec.source.server is not None:
        raise ConfigError(
            source, "source.server", f"names a MongoDB server, but the engine is {spec.engine}"
        )
    if spec.engine == "mongo" and spec.source.node is not None:
        raise ConfigError(
            source,
            "source.node",
            "names a MySQL node, but the engine is mongo",
            hint="source.server names a [mongo.servers] deployment",
        )
    return Policy(name=name, path=path, spec=spec, store_url=spec.store or default_store)


def policy_path(policies_dir: Path, name: str) -> Path:
    """The file of policy ``name``; UsageError if the name is malformed."""
    if not POLICY_NAME.match(name):
        raise UsageError(f"{name!r} is not a policy name")
    return policies_dir / f"{name}.toml"


def find_policies(
    policies_dir: Path, default_store: str, nodes: Collection[str] | None = None
) -> list[Policy]:
    """Every policy in ``policies_dir``, sorted by name; the first invalid one raises (for
    commands that act on all of them, such as rendering deploy artifacts)."""
    good, broken = scan_policies(policies_dir, default_store, nodes)
    if broken:
        raise broken[0].error
    return good


@dataclass(frozen=True)
class BrokenPolicy:
    """A policy file that does not load, and why."""

    name: str
    path: Path
    error: ConfigError


def scan_policies(
    policies_dir: Path, default_store: str, nodes: Collection[str] | None = None
) -> tuple[list[Policy], list[BrokenPolicy]]:
    """Every policy of ``policies_dir`` that loads, and every file that does not, by name."""
    if not policies_dir.is_dir():
        return [], []
    good: list[Policy] = []
    broken: list[BrokenPolicy] = []
    for path in sorted(policies_dir.glob("*.toml")):
        try:
            good.append(load_policy(path, default_store, nodes))
        except ConfigError as exc:
            broken.append(BrokenPolicy(path.stem, path, exc))
    return good, broken


def get_policy(
    policies_dir: Path, name: str, default_store: str, nodes: Collection[str] | None = None
) -> Policy:
    """The named policy; UsageError if it does not exist, naming the defined ones (and the
    closest), or saying where to create one when none is defined."""
    path = policy_path(policies_dir, name)
    if not path.is_file():
        defined = [p.stem for p in sorted(policies_dir.glob("*.toml"))]
        if not defined:
            raise UsageError(
                f"no backup policy {name!r}: no backup policies are defined",
                hint=f"create one in {policies_dir}: a TOML file per policy, e.g. {path.name}",
            )
        close = difflib.get_close_matches(name, defined, n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"no backup policy {name!r} in {policies_dir}",
            hint=f"{guess}known: {', '.join(defined)}",
        )
    return load_policy(path, default_store, nodes)


__all__ = [
    "BrokenPolicy",
    "Policy",
    "PolicyFile",
    "StorageClass",
    "find_policies",
    "get_policy",
    "load_policy",
    "scan_policies",
]
