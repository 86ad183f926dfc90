"""SQL that reads a table in key order: all rows, keyset batches, samples.

Contract: every query selects exactly the reader's ``columns``, in order.
:meth:`KeysetReader.batch` returns up to ``limit`` rows after a key (``None``: from the
start) and, if given, up to and including ``upto``, ordered by the key, so a run can resume
from a checkpointed key and a verify can fetch the matching rows by key. Keyset paging
(``key > last``) is only complete when the key is unique and NOT NULL: rows sharing a key
across a batch boundary, or with NULL in a key column, would be skipped (the migration plan
blocks any other key: :func:`datatier.migrate.plan.build_plan`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import pymysql.cursors

from datatier.mysql.connection import Connection
from datatier.mysql.introspect import INTEGER_TYPES, TableSchema


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class KeysetReader:
    """Queries for one table, its ``columns`` and its ``key`` (see module docstring)."""

    def __init__(self, schema: TableSchema, columns: Sequence[str], key: Sequence[str]) -> None:
        self.schema = schema
        self.table = f"{quote(schema.db)}.{quote(schema.name)}"
        self.select = ", ".join(quote(c) for c in columns)
        self.key = list(key)
        self.order = ", ".join(quote(c) for c in self.key)

    def _after(self, after: Sequence[Any]) -> tuple[str, list[Any]]:
        terms, args = [], []
        for i, col in enumerate(self.key):
            eq = [f"{quote(c)} = %s" for c in self.key[:i]]
            terms.append("(" + " AND ".join([*eq, f"{quote(col)} > %s"]) + ")")
            args.extend([*after[:i], after[i]])
        return "(" + " OR ".join(terms) + ")", args

    def batch(
        self,
        conn: Connection,
        after: Sequence[Any] | None,
        limit: int,
        upto: Sequence[Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` rows after key ``after`` (and not after ``upto``) in key order."""
        terms: list[str] = []
        args: list[Any] = []
        if after is not None:
            where, more = self._after(after)
            terms.append(where)
            args.extend(more)
        if upto is not None:
            where, more = self._after(upto)
            terms.append(f"NOT {where}")
            args.extend(more)
        sql = f"SELECT {self.select} FROM {self.table}"
        if terms:
            sql += " WHERE " + " AND ".join(terms)
        sql += f" ORDER BY {self.order} LIMIT {int(limit)}"
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def count(self, conn: Connection) -> int:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {self.table}")
            row = cur.fetchone()
            assert row is not None
            return int(row[0])

    def stream(self, conn: Connection) -> Iterator[tuple[Any, ...]]:
        """Every row, unbuffered (``--full``)."""
        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(f"SELECT {self.select} FROM {self.table}")
            yield from cur

    def sample(
        self, conn: Connection, n: int, rng: random.Random
    ) -> tuple[list[tuple[Any, ...]], str]:
        """About ``n`` rows spread over the table, and how they were chosen.

        Small tables (estimate <= 2n) are read up to n rows. With an integer first key
        column: 10 runs of n/10 rows from random points between MIN and MAX (index range
        reads: fast at any size). Otherwise ``RAND() < p`` (one scan without sorting).
        """
        est = self.schema.rows_estimate
        with conn.cursor() as cur:
            if est <= 2 * n:
                cur.execute(f"SELECT {self.select} FROM {self.table} LIMIT {int(n)}")
                return list(cur.fetchall()), "first rows"
            first = self.schema.column(self.key[0]) if self.key else None
            if first is not None and first.data_type in INTEGER_TYPES:
                col = quote(first.name)
                cur.execute(f"SELECT MIN({col}), MAX({col}) FROM {self.table}")
                bounds = cur.fetchone()
                assert bounds is not None
                low, high = bounds
                if low is None:
                    return [], "empty table"
                rows: list[tuple[Any, ...]] = []
                runs = 10
                for _ in range(runs):
                    start = rng.randint(int(low), int(high))
                    cur.execute(
                        f"SELECT {self.select} FROM {self.table} WHERE {col} >= %s "
                        f"ORDER BY {col} LIMIT {max(1, n // runs)}",
                        (start,),
                    )
                    rows.extend(cur.fetchall())
                return rows, f"{runs} runs from random {first.name}"
            p = min(1.0, 2.0 * n / max(est, 1))
            cur.execute(
                f"SELECT {self.select} FROM {self.table} WHERE RAND() < {p:.8f} LIMIT {int(n)}"
            )
            return list(cur.fetchall()), "random rows"
