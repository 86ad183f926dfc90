"""``cache warm``: run a warm set's queries on a replica and write the results to memcached.

Contract:
- rows are streamed (server-side cursor), encoded and written in batches of the set's
  ``batch_size``; memory does not grow with the number of rows;
- a key that memcached would refuse (over 250 bytes, whitespace) is counted as failed with
  an error naming the query; a value over the node's item size limit is skipped and counted;
  a result over ``max_rows`` is skipped, never cut;
- an SQL error fails that query only; the others still warm;
- ``dry_run`` reads MySQL but never writes to memcached; it reports each key and its size;
- the report says what was written, skipped and failed; :meth:`WarmReport.exit_code`
  maps it to the process exit code.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from datatier import log
from datatier.cache.keys import KeyBuilder, load_key_function
from datatier.cache.pipe import WritePipe
from datatier.cache.protocol import (
    BAD_KEY_BYTE,
    MAX_KEY_BYTES,
    NodeUnavailable,
    StoreItem,
    key_problem,
)
from datatier.cache.serialize import Serializer, UnserializableResult, serializer_for
from datatier.cache.warmset import WarmQuery, WarmSet
from datatier.cache.writer import CacheWriter, WriteOutcome
from datatier.errors import ExitCode
from datatier.mysql.connection import Endpoint
from datatier.mysql.fastreader import QueryError, RowReader
from datatier.ratelimit import RateLimit

EVENTS = log.get_logger("cache")
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
class WarmReport:
    """The outcome of one ``cache warm``."""

    set: str
    source: str
    servers: list[str]
    dry_run: bool
    overwrite: bool
    lag: float | None = None
    lag_method: str = ""
    warning: str | None = None
    queries: list[QueryReport] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)
    memcached_errors: int = 0
    stopped: str | None = None
    seconds: float = 0.0

    def total(self, name: str) -> int:
        return sum(int(getattr(q, name)) for q in self.queries)

    def exit_code(self) -> ExitCode:
        """3 if stopped by an unreachable memcached, 1 if a query or key failed, else 0."""
        if self.stopped:
            return ExitCode.UNREACHABLE
        if any(q.error or q.failed for q in self.queries):
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


Encoded = tuple[bytes, bytes, int]  # key, value, ttl


class CacheWarmer:
    """Warms one set from one MySQL endpoint into a :class:`CacheWriter` (None: dry run)."""

    def __init__(
        self,
        warm_set: WarmSet,
        source: Endpoint,
        writer: CacheWriter | None,
        options: WarmOptions,
        *,
        on_planned: Callable[[PlannedKey], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        item_limit: int = 1 << 20,
    ) -> None:
        self.warm_set = warm_set
        self.source = source
        self.writer = writer
        self.options = options
        self.on_planned = on_planned
        self.on_progress = on_progress
        self.item_limit = item_limit
        self.query_rate = RateLimit(options.query_rate)
        self.random = random.Random(options.seed)  # noqa: S311 (TTL jitter, not crypto)
        self.pipe: WritePipe | None = None

    def run(self, report: WarmReport) -> WarmReport:
        """Warm every query (or ``options.only``); fills and returns ``report``."""
        started = time.monotonic()
        self.pipe = (
            WritePipe(self.writer, self.options.overwrite) if self.writer is not None else None
        )
        try:
            for name, query in self.warm_set.spec.queries.items():
                if self.options.only and name not in self.options.only:
                    continue
                qr = QueryReport(name)
                report.queries.append(qr)
                try:
                    self._warm_query(name, query, qr)
                except NodeUnavailable as exc:
                    report.stopped = str(exc)
                    EVENTS.error("cache_warm_stopped", query=name, error=str(exc))
                    break
                except QueryError as exc:
                    qr.error = f"query {name}: {exc}"
                    EVENTS.error("cache_warm_query_failed", query=name, error=qr.error)
                except (UnserializableResult, KeyError, TypeError, ValueError) as exc:
                    qr.error = f"query {name}: {_describe(exc)}"
                    EVENTS.error("cache_warm_query_failed", query=name, error=qr.error)
        finally:
            if self.pipe is not None:
                self.pipe.close()
            report.seconds = time.monotonic() - started
            if self.writer is not None:
                report.restarts = list(self.writer.restarts)
                report.memcached_errors = self.writer.errors_seen
        return report

    # -- one query ----------------------------------------------------------------------------
    def _warm_query(self, name: str, query: WarmQuery, qr: QueryReport) -> None:
        try:
            self._read_and_queue(name, query, qr)
        finally:
            if self.pipe is not None:
                outcomes, error = self.pipe.drain()
                for outcome in outcomes:
                    qr.add(outcome)
                if error is not None:
                    raise error

    def _read_and_queue(self, name: str, query: WarmQuery, qr: QueryReport) -> None:
        # JSON writes DECIMAL as its exact text anyway: skip the Decimal round trip
        with RowReader(self.source, decimals_as_text=query.serializer == "json") as reader:
            function = (
                load_key_function(query.key_function, str(self.warm_set.path), name)
                if query.key_function
                else None
            )
            keys = KeyBuilder(
                set_name=self.warm_set.name,
                query_name=name,
                sql=query.sql,
                template=query.key,
                function=function,
                interpolate=reader.interpolate,
            )
            encoded = (
                self._rows(reader, name, query, keys, qr)
                if query.mode == "row"
                else self._results(reader, name, query, keys, qr)
            )
            with contextlib.closing(encoded):  # close the cursor before the connection
                batch: list[Encoded] = []
                for item in encoded:
                    batch.append(item)
                    if len(batch) >= self.warm_set.spec.batch_size:
                        self._flush(name, batch, qr)
                        batch = []
                if batch:
                    self._flush(name, batch, qr)

    def _ttl(self, query: WarmQuery) -> int:
        if not query.ttl_jitter or not query.ttl:
            return query.ttl
        spread = query.ttl * query.ttl_jitter
        return max(1, round(query.ttl + self.random.uniform(-spread, spread)))

    def _rows(
        self, reader: RowReader, name: str, query: WarmQuery, keys: KeyBuilder, qr: QueryReport
    ) -> Generator[Encoded, None, None]:
        """Row mode: one key per row, up to ``row_limit()`` rows."""
        self.query_rate.take()
        columns, batches = reader.stream(query.sql, None, query.row_limit())
        qr.executions += 1
        ser = serializer_for(query.serializer, columns, query.row_format, query.pickle_protocol)
        encode, ttl, fixed = ser.encode_row, self._ttl, not (query.ttl and query.ttl_jitter)
        fast = keys.row_key if keys.plain else None
        for rows in batches:  # the hot loop: locals only
            qr.rows += len(rows)
            for row in rows:
                mapping = dict(zip(columns, row, strict=True))
                key = fast(mapping) if fast is not None else None
                if key is None or len(key) > MAX_KEY_BYTES or BAD_KEY_BYTE.search(key):
                    key = self._key(keys, None, mapping, name, qr)
                    if key is None:
                        continue
                yield key, encode(row, mapping), query.ttl if fixed else ttl(query)

    def _results(
        self, reader: RowReader, name: str, query: WarmQuery, keys: KeyBuilder, qr: QueryReport
    ) -> Generator[Encoded, None, None]:
        """Result mode: one key per execution (once per ``params_sql`` row, or once)."""
        if query.params_sql is None:
            yield from self._one_result(reader, name, query, keys, qr, None)
            return
        with RowReader(self.source) as params_reader:
            columns, batches = params_reader.stream(query.params_sql)
            for rows in batches:
                for row in rows:
                    params = dict(zip(columns, row, strict=True))
                    yield from self._one_result(reader, name, query, keys, qr, params)

    def _one_result(
        self,
        reader: RowReader,
        name: str,
        query: WarmQuery,
        keys: KeyBuilder,
        qr: QueryReport,
        params: Mapping[str, Any] | None,
    ) -> Generator[Encoded, None, None]:
        self.query_rate.take()
        limit = query.row_limit()
        columns, batches = reader.stream(query.sql, params, limit + 1)
        qr.executions += 1
        rows = [row for batch in batches for row in batch]
        if len(rows) > limit:
            qr.skipped_too_many_rows += 1
            return
        qr.rows += len(rows)
        ser: Serializer = serializer_for(
            query.serializer, columns, query.row_format, query.pickle_protocol
        )
        key = self._key(keys, params, None, name, qr)
        if key is not None:
            yield key, ser.encode_result(rows), self._ttl(query)

    def _key(
        self,
        keys: KeyBuilder,
        params: Mapping[str, Any] | None,
        row: Mapping[str, Any] | None,
        name: str,
        qr: QueryReport,
    ) -> bytes | None:
        try:
            key = keys.build(params, row)
        except KeyError as exc:
            raise KeyError(
                f"the key template uses {{{exc.args[0]}}}, which is neither a column nor a "
                f"built-in field"
            ) from None
        problem = key_problem(key)
        if problem is None:
            return key
        qr.failed += 1
        qr.key_error(f"query {name}: key {_show(key)!r} rejected: {problem}")
        return None

    # -- writing ------------------------------------------------------------------------------
    def _flush(self, name: str, batch: Sequence[Encoded], qr: QueryReport) -> None:
        writer = self.writer
        uniform = self.item_limit if writer is None else writer.uniform_limit()
        items: list[StoreItem] = []
        planned = self.on_planned
        for key, value, ttl in batch:
            if uniform is not None:  # the hot path: one node, one limit
                fits = len(value) + len(key) + 64 <= uniform
            else:
                fits = writer is not None and writer.fits(key, len(value))
            if planned is not None:
                planned(PlannedKey(name, _show(key), len(value), ttl, fits))
            if not fits:
                qr.skipped_too_large += 1
                continue
            items.append(StoreItem(key, value, 0, ttl))
        if writer is None:
            qr.planned += len(items)
            qr.bytes += sum(len(i.value) for i in items)
        if self.pipe is not None and items:
            self.pipe.put(items)
        if self.on_progress is not None:
            self.on_progress(len(batch))


def _describe(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _show(key: bytes) -> str:
    text = key.decode("utf-8", "backslashreplace")
    return text if len(text) <= 80 else f"{text[:60]}...({len(key)} bytes)"
