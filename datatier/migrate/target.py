"""Where documents go: the :class:`MigrationTarget` contract and its RethinkDB implementation.

Contract for every target: ``ensure_table``/``ensure_index`` are idempotent (an existing
table or index is kept); ``insert`` writes a batch with a conflict policy (``error``: an
existing id is an error, ``replace``: the document replaces it, ``update``: fields are
merged into it) and returns counts, raising nothing for per-document errors (they are in
the result); ``get_many`` returns the documents with the given ids that exist; ``count``
counts a table. Unreachable servers raise :class:`~datatier.errors.ServiceUnavailable`.

Several writers: :meth:`MigrationTarget.writer` opens another handle with a connection of
its own (one per writer thread: the driver's connections are not thread-safe) whose
inserts use a durability: ``hard`` (durable when acknowledged) or ``soft`` (acknowledged
from the server's memory, durable once a later :meth:`~MigrationTarget.sync` of the table
has returned: a sync covers every write acknowledged before it was sent, on any
connection). A target without such handles returns None and is written by one writer, with
its own durability; its ``sync`` does nothing.

:class:`RethinkDBTarget` takes an open connection, so tests can pass rethinkdb-mock's.
What only a real RethinkDB server exercises (rethinkdb-mock 0.10.1 cannot): binary values
(BLOB columns), compound indexes (the mock accepts ``index_create`` with a list and
never builds it), ``index_wait`` semantics, durability, and the server's 127-byte key and
millisecond time limits (enforced here before writing, in :mod:`.casts`/:mod:`.documents`).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from datatier.config import RethinkDBSettings
from datatier.errors import OperationFailed, ServiceUnavailable

Conflict = Literal["error", "replace", "update"]
"""What an insert does with a document whose id exists: fail, replace it, or merge into it."""
CONFLICT_POLICIES: tuple[Conflict, ...] = get_args(Conflict)
DURABILITIES = ("soft", "hard")


@dataclass(frozen=True)
class InsertResult:
    inserted: int
    replaced: int
    unchanged: int
    errors: int
    first_error: str | None = None


class MigrationTarget(abc.ABC):
    """A document store to migrate into (see module docstring)."""

    MAX_KEY_BYTES = 127
    TIME_PRECISION = "ms"

    @abc.abstractmethod
    def describe(self) -> str:
        """Where, for messages: ``rethinkdb host:port/db``."""

    @abc.abstractmethod
    def ensure_table(self, table: str) -> bool:
        """Create the table (primary key ``id``) if missing; True if it was created."""

    @abc.abstractmethod
    def ensure_index(self, table: str, name: str, fields: Sequence[str]) -> bool:
        """Create a (compound, for several fields) secondary index if missing."""

    @abc.abstractmethod
    def insert(self, table: str, docs: list[dict[str, Any]], conflict: Conflict) -> InsertResult:
        """Write one batch with a conflict policy."""

    @abc.abstractmethod
    def get_many(self, table: str, ids: Sequence[Any]) -> list[dict[str, Any]]:
        """The documents with these ids that exist (any order)."""

    @abc.abstractmethod
    def count(self, table: str) -> int:
        """Documents in the table; 0 if the table does not exist."""

    def writer(self, durability: str) -> MigrationTarget | None:
        """Another handle with a connection of its own, inserting with ``durability``
        (closed with :meth:`close`); None: this target has no such handles."""
        return None

    def sync(self, table: str) -> None:
        """Make every write to ``table`` acknowledged so far durable (default: they are)."""
        return None

    def close(self) -> None:
        """Close this handle's connection (default: nothing to close)."""
        return None


class RethinkDBTarget(MigrationTarget):
    """RethinkDB through the official driver (``rethinkdb`` 2.4).

    ``connect`` opens another connection (for :meth:`writer`; without it there are no
    writer handles); ``durability`` is given to every insert (None: the table's own,
    ``hard`` unless configured); ``prebuilt`` sends documents as terms built by
    :mod:`datatier.migrate.wire` (the same bytes for far less client CPU; only for the
    driver's socket connections, not for rethinkdb-mock's)."""

    def __init__(
        self,
        conn: Any,
        db: str,
        *,
        label: str = "rethinkdb",
        connect: Callable[[], Any] | None = None,
        durability: str | None = None,
        prebuilt: bool = False,
    ) -> None:
        from rethinkdb import r

        if durability is not None and durability not in DURABILITIES:
            raise ValueError(durability)
        self.r = r
        self.conn = conn
        self.db = db
        self.label = label
        self.connect = connect
        self.durability = durability
        self.prebuilt = prebuilt

    def describe(self) -> str:
        return f"{self.label}/{self.db}"

    def _run(self, query: Any) -> Any:
        from rethinkdb.errors import ReqlDriverError, ReqlError

        try:
            return query.run(self.conn)
        except ReqlDriverError as exc:
            raise ServiceUnavailable(f"RethinkDB {self.label}: {exc}") from None
        except ReqlError as exc:
            raise OperationFailed(f"RethinkDB {self.label}: {exc}") from None

    def _ensure_db(self) -> None:
        if self.db not in (self._run(self.r.db_list()) or []):
            self._run(self.r.db_create(self.db))

    def ensure_table(self, table: str) -> bool:
        self._ensure_db()
        if table in (self._run(self.r.db(self.db).table_list()) or []):
            return False
        self._run(self.r.db(self.db).table_create(table))
        return True

    def ensure_index(self, table: str, name: str, fields: Sequence[str]) -> bool:
        t = self.r.db(self.db).table(table)
        if name in (self._run(t.index_list()) or []):
            return False
        if len(fields) == 1:
            self._run(t.index_create(name, self.r.row[fields[0]]))
        else:
            self._run(t.index_create(name, [self.r.row[f] for f in fields]))
        self._run(t.index_wait(name))
        return True

    def insert(self, table: str, docs: list[dict[str, Any]], conflict: Conflict) -> InsertResult:
        from rethinkdb.errors import ReqlDriverCompileError

        from datatier.migrate.wire import documents_term

        if conflict not in CONFLICT_POLICIES:
            raise ValueError(conflict)
        opts: dict[str, str] = {"conflict": conflict}
        if self.durability is not None:
            opts["durability"] = self.durability
        try:
            term = documents_term(docs) if self.prebuilt else docs
            query = self.r.db(self.db).table(table).insert(term, **opts)
        except ReqlDriverCompileError as exc:
            raise OperationFailed(f"RethinkDB {self.label}: {table}: {exc}") from None
        res = self._run(query)
        return InsertResult(
            inserted=int(res.get("inserted", 0)),
            replaced=int(res.get("replaced", 0)),
            unchanged=int(res.get("unchanged", 0)),
            errors=int(res.get("errors", 0)),
            first_error=res.get("first_error"),
        )

    def get_many(self, table: str, ids: Sequence[Any]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return list(self._run(self.r.db(self.db).table(table).get_all(*ids)))

    def writer(self, durability: str) -> RethinkDBTarget | None:
        if self.connect is None:
            return None
        return RethinkDBTarget(
            self.connect(),
            self.db,
            label=self.label,
            connect=self.connect,
            durability=durability,
            prebuilt=self.prebuilt,
        )

    def sync(self, table: str) -> None:
        res = self._run(self.r.db(self.db).table(table).sync())
        # The server answers {"synced": 1}; rethinkdb-mock answers the table's rows.
        if isinstance(res, dict) and res.get("synced") != 1:
            raise OperationFailed(f"RethinkDB {self.label}: sync of {table} answered {res}")

    def close(self) -> None:
        from rethinkdb.errors import ReqlError

        close = getattr(self.conn, "close", None)
        if close is not None:
            with contextlib.suppress(ReqlError, OSError):
                close(noreply_wait=False)

    def count(self, table: str) -> int:
        if self.db not in (self._run(self.r.db_list()) or []):
            return 0
        if table not in (self._run(self.r.db(self.db).table_list()) or []):
            return 0
        return int(self._run(self.r.db(self.db).table(table).count()))


def connect_rethinkdb(settings: RethinkDBSettings) -> RethinkDBTarget:
    """A target on the configured server; ServiceUnavailable (exit 3) if unreachable."""
    from rethinkdb import r
    from rethinkdb.errors import ReqlError

    label = f"{settings.host}:{settings.port}"

    def connect() -> Any:
        try:
            return r.connect(
                host=settings.host,
                port=settings.port,
                db=settings.db,
                user=settings.user,
                password=settings.password.reveal(),
                timeout=settings.timeout,
            )
        except (ReqlError, OSError) as exc:
            reason = str(exc)
            if settings.password:
                reason = reason.replace(settings.password.reveal(), "***")
            raise ServiceUnavailable(f"cannot connect to RethinkDB {label}: {reason}") from None

    return RethinkDBTarget(connect(), settings.db, label=label, connect=connect, prebuilt=True)
