"""``cache warm``: run a warm set's queries on a replica and write the results to memcached.

Contract:
- rows are streamed (server-side cursor), encoded and written in batches of the set's
  ``batch_size``; memory does not grow with the number of rows;
- a key that memcached would refuse (over 250 bytes, whitespace), or whose template field
  (or column a key function reads) is NULL or binary that is not UTF-8, or that a key
  function did not return as str or bytes (:mod:`datatier.cache.keys`), is counted as
  failed with an error naming the query (and the column); a value over the node's item size limit is
  skipped and counted; a result over ``max_rows`` is skipped, never cut;
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
from typing import Any

from datatier import log
from datatier.cache.keys import KeyBuilder, KeyValueRefused, load_key_function
from datatier.cache.pipe import WritePipe
from datatier.cache.protocol import (
    BAD_KEY_BYTE,
    MAX_KEY_BYTES,
    NodeUnavailable,
    StoreBatch,
    key_problem,
)
from datatier.cache.report import PlannedKey, QueryReport, WarmOptions, WarmReport
from datatier.cache.serialize import (
    Serializer,
    UnserializableResult,
    serializer_for,
    takes_dicts,
)
from datatier.cache.warmset import WarmQuery, WarmSet
from datatier.cache.writer import CacheWriter
from datatier.mysql.connection import Endpoint
from datatier.mysql.fastreader import QueryError, RowReader
from datatier.ratelimit import RateLimit

EVENTS = log.get_logger("cache")


Encoded = tuple[bytes, bytes, int]  # key, value, ttl
Chunk = tuple[list[bytes], list[bytes], int | list[int]]  # keys, values, one ttl or one each


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
        started, cpu_started = time.monotonic(), time.process_time()
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
            report.cpu_seconds = time.process_time() - cpu_started
            if self.writer is not None:
                report.record(self.writer)
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
            chunks = (
                self._rows(reader, name, query, keys, qr)
                if query.mode == "row"
                else _chunked(self._results(reader, name, query, keys, qr), self._size)
            )
            with contextlib.closing(chunks):  # close the cursor before the connection
                for chunk in chunks:
                    self._flush(name, *chunk, qr)

    @property
    def _size(self) -> int:
        return self.warm_set.spec.batch_size

    def _ttl(self, query: WarmQuery) -> int:
        if not query.ttl_jitter or not query.ttl:
            return query.ttl
        spread = query.ttl * query.ttl_jitter
        return max(1, round(query.ttl + self.random.uniform(-spread, spread)))

    def _rows(
        self, reader: RowReader, name: str, query: WarmQuery, keys: KeyBuilder, qr: QueryReport
    ) -> Generator[Chunk, None, None]:
        """Row mode: one key per row, up to ``row_limit()`` rows, a batch at a time (the hot
        path: each step runs over the whole batch, at C speed where it can)."""
        self.query_rate.take()
        dicts = takes_dicts(query.serializer, query.row_format)
        columns, batches = reader.stream(
            query.sql, None, query.row_limit(), fetch=self._size, as_dicts=dicts
        )
        qr.executions += 1
        with contextlib.closing(batches):
            ser = serializer_for(query.serializer, columns, query.row_format, query.pickle_protocol)
            fast = keys.batch_keys(columns, dicts)
            jitter = bool(query.ttl and query.ttl_jitter)
            for rows in batches:
                qr.rows += len(rows)
                built = _try(fast, rows) if fast is not None else None
                if built is None or not _all_valid(built):
                    built, rows = self._one_by_one(rows, columns, dicts, keys, name, qr)
                    if not rows:
                        continue
                ttl = [self._ttl(query) for _ in rows] if jitter else query.ttl
                yield built, ser.encode_rows(rows), ttl

    def _one_by_one(
        self,
        rows: Sequence[Any],
        columns: list[str],
        dicts: bool,
        keys: KeyBuilder,
        name: str,
        qr: QueryReport,
    ) -> tuple[list[bytes], list[Any]]:
        """The keys of ``rows`` built and checked one by one (a key function, a built-in
        field, a key memcached would refuse): (good keys, their rows)."""
        good: list[bytes] = []
        kept: list[Any] = []
        for row in rows:
            mapping = row if dicts else dict(zip(columns, row, strict=True))
            key = self._key(keys, None, mapping, name, qr)
            if key is not None:
                good.append(key)
                kept.append(row)
        return good, kept

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
            if keys.function is not None:
                raise KeyError(
                    f"the key function read {exc.args[0]!r}, which is no column"
                ) from None
            raise KeyError(
                f"the key template uses {{{exc.args[0]}}}, which is neither a column nor a "
                f"built-in field"
            ) from None
        except KeyValueRefused as exc:
            qr.failed += 1
            qr.key_error(f"query {name}: key rejected: {exc}")
            return None
        problem = key_problem(key)
        if problem is None:
            return key
        qr.failed += 1
        qr.key_error(f"query {name}: key {_show(key)!r} rejected: {problem}")
        return None

    # -- writing ------------------------------------------------------------------------------
    def _flush(
        self,
        name: str,
        keys: list[bytes],
        values: list[bytes],
        ttl: int | list[int],
        qr: QueryReport,
    ) -> None:
        writer = self.writer
        uniform = self.item_limit if writer is None else writer.uniform_limit()
        planned = self.on_planned
        batch = StoreBatch(keys, values, 0, ttl)
        if (
            planned is not None
            or uniform is None
            or not keys
            or (max(map(len, values)) + max(map(len, keys)) + 64 > uniform)
        ):  # not every item surely fits: item by item
            kept: list[int] = []
            for i, (key, value) in enumerate(zip(keys, values, strict=True)):
                if uniform is not None:
                    fits = len(value) + len(key) + 64 <= uniform
                else:
                    fits = writer is not None and writer.fits(key, len(value))
                if planned is not None:
                    planned(
                        PlannedKey(
                            name, _show(key), len(value), ttl if isinstance(ttl, int) else
                            ttl[i], fits,
                        )
                    )  # fmt: skip
                if fits:
                    kept.append(i)
                else:
                    qr.skipped_too_large += 1
            if len(kept) < len(keys):
                batch = batch.take(kept)
        if writer is None:
            qr.planned += len(batch)
            qr.bytes += sum(map(len, batch.values))
        if self.pipe is not None and len(batch):
            self.pipe.put(batch)
        if self.on_progress is not None:
            self.on_progress(len(keys))


def _chunked(items: Generator[Encoded, None, None], size: int) -> Generator[Chunk, None, None]:
    """Items gathered into chunks of ``size`` (closing the chunks closes ``items``)."""
    with contextlib.closing(items):
        keys: list[bytes] = []
        values: list[bytes] = []
        ttls: list[int] = []
        for key, value, ttl in items:
            keys.append(key)
            values.append(value)
            ttls.append(ttl)
            if len(keys) >= size:
                yield keys, values, ttls
                keys, values, ttls = [], [], []
        if keys:
            yield keys, values, ttls


def _try(build: Callable[[Sequence[Any]], list[bytes]], rows: Sequence[Any]) -> list[bytes] | None:
    try:
        return build(rows)
    except (KeyError, KeyValueRefused):  # a row without a field or with a NULL or binary
        return None  # value: one by one, to say which


def _all_valid(keys: list[bytes]) -> bool:
    """Whether memcached takes every key (one scan of them all; :func:`key_problem` per key
    says why not)."""
    return bool(keys) and (
        min(map(len, keys)) > 0
        and max(map(len, keys)) <= MAX_KEY_BYTES
        and BAD_KEY_BYTE.search(b"".join(keys)) is None
    )


def _describe(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _show(key: bytes) -> str:
    text = key.decode("utf-8", "backslashreplace")
    return text if len(text) <= 80 else f"{text[:60]}...({len(key)} bytes)"
