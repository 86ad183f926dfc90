"""What a ``cache warm`` did: per query and in total, and how to run one (options).

Contract: :meth:`WarmReport.exit_code` maps the outcome to the process exit code;
:meth:`WarmReport.to_json` is the ``--json`` document (totals over the queries included).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from datatier.cache.writer import RestartLosses, WriteOutcome
from datatier.errors import ExitCode

MAX_ERRORS_KEPT = 5


@dataclass
class QueryReport:
    """What happened to one query of the set."""

    name: str
    executions: int = 0
    rows: int = 0
    keys_written: int = 0
    skipped_present: int = 0
    skipped_too_large: int = 0
    skipped_too_many_rows: int = 0
    failed: int = 0
    planned: int = 0
    bytes: int = 0
    error: str | None = None
    key_errors: list[str] = field(default_factory=list)

    def add(self, outcome: WriteOutcome) -> None:
        self.keys_written += outcome.stored
        self.skipped_present += outcome.present
        self.skipped_too_large += outcome.too_large
        self.failed += outcome.failed
        self.bytes += outcome.bytes
        for text in outcome.errors:
            self.key_error(text)

    def key_error(self, text: str) -> None:
        if len(self.key_errors) < MAX_ERRORS_KEPT:
            self.key_errors.append(text)


@dataclass(frozen=True)
class PlannedKey:
    """A key a dry run would write."""

    query: str
    key: str
    bytes: int
    ttl: int
    fits: bool


@dataclass
class WarmReport(RestartLosses):
    """The outcome of one ``cache warm`` (with its :class:`RestartLosses`)."""

    set: str
    source: str
    servers: list[str]
    dry_run: bool
    overwrite: bool
    lag: float | None = None
    lag_method: str = ""
    warning: str | None = None
    queries: list[QueryReport] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of this process meanwhile, every thread (user + system)

    def total(self, name: str) -> int:
        return sum(int(getattr(q, name)) for q in self.queries)

    def exit_code(self) -> ExitCode:
        """3 if stopped by an unreachable memcached, 1 if a query or key failed or a
        memcached restart wiped keys this warm wrote (the cache is only partly warm), else 0."""
        if self.stopped:
            return ExitCode.UNREACHABLE
        if self.keys_lost or any(q.error or q.failed for q in self.queries):
            return ExitCode.FAILED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for name in (
            "keys_written",
            "skipped_present",
            "skipped_too_large",
            "skipped_too_many_rows",
            "failed",
            "planned",
            "bytes",
            "rows",
        ):
            doc[name] = self.total(name)
        doc["keys_per_second"] = round(self.total("keys_written") / max(self.seconds, 1e-9), 1)
        return doc


@dataclass(frozen=True)
class WarmOptions:
    """How to warm: ``rate`` keys/s and ``query_rate`` queries/s (None: unlimited)."""

    dry_run: bool = False
    overwrite: bool = False
    rate: float | None = None
    query_rate: float | None = None
    only: tuple[str, ...] = ()
    seed: int | None = None
