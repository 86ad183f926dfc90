"""Streaming query results through mysqlclient (the C client library), for bulk reads.

Why not pymysql (used for everything else): decoding rows in pure Python runs at ~130k
rows/s here, slower than memcached accepts keys; libmariadb decodes ~1.3M rows/s
(``benchmarks/cache_warm.py``). Values come back as the same Python types (int, Decimal,
datetime, str, bytes).

Contract: every read runs in a read-only session; connection failures raise
:class:`~datatier.errors.ServiceUnavailable` naming the node; query errors raise
:class:`QueryError` with MySQL's code and message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import Any

import MySQLdb
import MySQLdb.converters
import MySQLdb.cursors
from MySQLdb.constants import FIELD_TYPE

from datatier.mysql.connection import Endpoint

FETCH_ROWS = 1000


class QueryError(Exception):
    """MySQL refused or failed a query: ``code`` and ``message`` as the server gave them."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"MySQL error {code}: {message}")
        self.code = code
        self.message = message


def _query_error(exc: MySQLdb.MySQLError) -> QueryError:
    args = exc.args
    if len(args) >= 2 and isinstance(args[0], int):
        return QueryError(args[0], str(args[1]))
    return QueryError(0, str(exc))


def open_connection(ep: Endpoint, **options: Any) -> MySQLdb.Connection:
    """A mysqlclient connection to ``ep`` (utf8mb4, autocommit) over TCP; ``options`` go to
    ``MySQLdb.connect``. ServiceUnavailable naming the node (never the password) on failure.

    libmariadb takes the host name ``localhost`` for the default Unix socket and ignores the
    port, so ``localhost:3307`` would reach whatever server owns that socket; it goes to
    127.0.0.1 instead, the port honoured, as pymysql and the stock client (``protocol=tcp``)
    connect."""
    try:
        return MySQLdb.connect(
            host="127.0.0.1" if ep.host == "localhost" else ep.host,
            port=ep.port,
            user=ep.user,
            password=ep.password,
            connect_timeout=max(1, round(ep.connect_timeout)),
            charset="utf8mb4",
            autocommit=True,
            **(ep.tls.mysqlclient_options() if ep.tls else {}),
            **options,
        )
    except MySQLdb.OperationalError as exc:
        raise ep.unreachable(exc) from None


RawRow = tuple[bytes | None, ...]


class RawConnection:
    """A typed face over a mysqlclient connection that returns every value as raw bytes
    (the text protocol's own text), for readers that pass values on without decoding."""

    def __init__(self, ep: Endpoint) -> None:
        self.conn = open_connection(ep, use_unicode=False, conv={})

    def execute(self, sql: str) -> None:
        """Run a statement whose result (if any) is not needed."""
        self.conn.query(sql)
        result = self.conn.store_result()  # type: ignore[no-untyped-call]
        del result

    def rows(self, sql: str) -> tuple[RawRow, ...]:
        """Every row of ``sql`` (a small result)."""
        self.conn.query(sql)
        result = self.conn.store_result()  # type: ignore[no-untyped-call]
        return () if result is None else tuple(result.fetch_row(maxrows=0))

    def stream(self, sql: str, batch: Callable[[], int]) -> Iterator[tuple[RawRow, ...]]:
        """Rows of ``sql`` unbuffered, ``batch()`` rows at a time; consume it entirely
        before the next call on this connection."""
        self.conn.query(sql)
        result = self.conn.use_result()  # type: ignore[no-untyped-call]
        while True:
            rows = result.fetch_row(maxrows=batch())
            if not rows:
                return
            yield rows

    def thread_id(self) -> int:
        return int(self.conn.thread_id())  # type: ignore[no-untyped-call]

    def close(self) -> None:
        with contextlib.suppress(MySQLdb.MySQLError):  # already gone
            self.conn.close()  # type: ignore[no-untyped-call]


class RowReader:
    """One read-only connection; :meth:`stream` runs a query and yields rows lazily.

    ``decimals_as_text``: DECIMAL values come back as their exact text (``"12.30"``) instead
    of ``Decimal`` objects, for callers that would only turn them into text again.
    """

    def __init__(self, ep: Endpoint, *, decimals_as_text: bool = False) -> None:
        self.ep = ep
        conv = dict(MySQLdb.converters.conversions)
        if decimals_as_text:
            for code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
                conv[code] = str  # the driver's C fast path: the text, decoded, no call
        self.conn = open_connection(
            ep, conv=conv, init_command="SET SESSION tx_read_only = 1, time_zone = '+00:00'"
        )

    def close(self) -> None:
        self.conn.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> RowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def interpolate(self, sql: str, params: Mapping[str, Any] | None) -> str:
        """``sql`` with ``params`` substituted as the driver would send it."""
        with self.conn.cursor() as cur:
            return str(cur.mogrify(sql, params))

    def stream(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        limit: int | None = None,
        *,
        fetch: int = FETCH_ROWS,
        as_dicts: bool = False,
    ) -> tuple[list[str], Generator[Sequence[Any], None, None]]:
        """Execute ``sql``; (column names, batches of up to ``fetch`` rows). Rows are tuples,
        or with ``as_dicts`` dicts of column name to value, as ``dict(zip(columns, row))``
        (a name given twice keeps its last value). Reading stops after ``limit`` rows (the
        rest is drained). Consume or close the iterator before the next call on this
        reader."""
        cur = self.conn.cursor(MySQLdb.cursors.SSCursor)
        try:
            cur.execute(sql, params)
        except MySQLdb.MySQLError as exc:
            cur.close()
            raise _query_error(exc) from None
        columns = [d[0] for d in cur.description or ()]
        zipped = as_dicts and len(set(columns)) < len(columns)
        if as_dicts and not zipped:
            # the driver builds the dicts in C, as SSDictCursor (which sets this on its
            # class) does; it would key a repeated name "table.name", hence ``zipped``
            cur._fetch_type = 1

        def batches() -> Generator[Sequence[Any], None, None]:
            left = limit
            try:
                while left is None or left > 0:
                    size = fetch if left is None else min(fetch, left)
                    rows = cur.fetchmany(size)
                    if not rows:
                        return
                    if left is not None:
                        left -= len(rows)
                    yield [dict(zip(columns, r, strict=True)) for r in rows] if zipped else rows
            except MySQLdb.MySQLError as exc:
                raise _query_error(exc) from None
            finally:
                # drains what was not read; a gone connection has nothing left to drain
                with contextlib.suppress(MySQLdb.MySQLError):
                    cur.close()

        return columns, batches()
