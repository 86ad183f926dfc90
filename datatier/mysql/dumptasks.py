"""The objects of one dump task (:class:`Task`): a key range of a table into data objects,
a sequence into its schema object, or a bundle of small tables into one object with a
section per table. :class:`TaskDumper` is shared by a dump's worker threads: each table's
state (:class:`~datatier.mysql.dumpstate.TableState`: rows, range digests, part numbers)
is updated under its lock, and a set ``stop`` event makes every task give up at the next
batch. The engine that plans and runs the tasks: :mod:`datatier.mysql.pdump`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from datatier.backup.manifest import Section
from datatier.backup.objects import ObjectWriter, OpenObject
from datatier.log import get_logger
from datatier.mysql.bundle_frames import BUNDLE_HEAD, framed_block
from datatier.mysql.catalogue import Table
from datatier.mysql.dumpdefs import (
    database_path,
    put_definitions,
    put_schema,
    table_path,
    table_statements,
)
from datatier.mysql.dumpplan import bundle_limit
from datatier.mysql.dumprows import write_range
from datatier.mysql.dumpstate import TableState
from datatier.mysql.fastreader import RawConnection
from datatier.mysql.rowtext import RowQuery, read_texts
from datatier.mysql.sqltext import PRELUDE, ident, qualified

log = get_logger(__name__)


@dataclass
class Task:
    """One unit of parallel work: a key range of a table (or the whole table), or a bundle
    of small tables of one database (``bundle``, its number in ``number``)."""

    table: Table
    index: int  # range number within the table, from 0
    where: str
    estimate: int
    bundle: tuple[Table, ...] = ()
    number: int = 0


@dataclass
class _Spool:
    """A bundled table's statements, held until they are known to fit its bundle."""

    pieces: list[bytes] = field(default_factory=list)
    raw_size: int = 0
    rows: int = 0

    def write(self, data: bytes, rows: int = 0) -> None:
        self.pieces.append(data)
        self.raw_size += len(data)
        self.rows += rows


class TaskDumper:
    """Writes tasks' objects through ``writer``: data objects cut at ``chunk_bytes``, rows
    whose large values pass ``threshold`` bytes rendered client-side (:mod:`rowtext`).
    ``states`` holds every table of the dump; ``largest_statement`` is the longest INSERT
    written so far."""

    def __init__(
        self,
        writer: ObjectWriter,
        states: dict[tuple[str, str], TableState],
        *,
        chunk_bytes: int,
        threshold: int,
        stop: threading.Event,
    ) -> None:
        self.writer = writer
        self.states = states
        self.chunk_bytes = chunk_bytes
        self.threshold = threshold
        self.largest_statement = 0
        self._stop = stop
        self._lock = threading.Lock()

    def dump(self, conn: RawConnection, task: Task) -> None:
        """Write ``task``'s objects, reading on ``conn`` (a worker of the snapshot)."""
        table = task.table
        if task.bundle:
            self._dump_bundle(conn, task)
            return
        if table.kind == "sequence":
            self._dump_sequence(conn, table)
            return
        current: list[OpenObject] = []

        def target() -> OpenObject:
            if not current:
                current.append(self._open_data(table))
            return current[0]

        def written(obj: _Spool | OpenObject) -> None:
            if obj.raw_size >= self.chunk_bytes:
                self._close_data(table, current.pop())

        self._dump_rows(conn, table, task.index, task.where, target, written)
        if current:
            self._close_data(table, current.pop())

    def _dump_bundle(self, conn: RawConnection, task: Task) -> None:
        """The tables of ``task.bundle`` into one object, each its DROP/CREATE then its
        rows, as one section; each table's metadata lock is released after it. A table
        whose rows outgrow a bundle (its statistics were stale) gets its own objects."""
        database = task.table.database
        bundle: OpenObject | None = None
        for table in task.bundle:
            if self._stop.is_set():
                return
            spool = self._bundle_member(conn, table)
            conn.execute("ROLLBACK TO SAVEPOINT datatier")
            if spool is None:
                continue
            if bundle is None:
                key = database_path(database, f"_bundle-{task.number:05d}.sql.zst")
                bundle = self.writer.open(key, "bundle", database, None)
                bundle.write(PRELUDE + BUNDLE_HEAD)
            start = bundle.raw_size
            bundle.write(framed_block(table_statements(table)))
            bundle.write(b"".join(spool.pieces), spool.rows)
            bundle.sections.append(Section(table.name, start, bundle.raw_size, spool.rows))
        if bundle is not None:
            self.writer.close(bundle)

    def _bundle_member(self, conn: RawConnection, table: Table) -> _Spool | None:
        """``table``'s rows held in memory while they fit a bundle; None when they did not
        and went to data objects of its own, with a schema object of its own."""
        spool = _Spool()
        current: list[_Spool | OpenObject] = [spool]
        limit = bundle_limit(self.chunk_bytes)

        def target() -> _Spool | OpenObject:
            if not current:
                current.append(self._open_data(table))
            return current[0]

        def written(sink: _Spool | OpenObject) -> None:
            if isinstance(sink, _Spool):
                if sink.raw_size > limit:
                    data = self._open_data(table)
                    data.write(b"".join(sink.pieces), sink.rows)
                    current[0] = data
                    sink.pieces.clear()
            elif sink.raw_size >= self.chunk_bytes:
                self._close_data(table, sink)
                current.pop()

        self._dump_rows(conn, table, 0, "", target, written)
        if current and current[0] is spool:
            return spool
        if current:
            obj = current.pop()
            assert isinstance(obj, OpenObject)
            self._close_data(table, obj)
        with self._lock:
            self.states[(table.database, table.name)].bundled = False
        log.info("backup.bundle_spilled", table=f"{table.database}.{table.name}")
        put_schema(self.writer, table)
        return None

    def _dump_rows(
        self,
        conn: RawConnection,
        table: Table,
        index: int,
        where: str,
        target: Callable[[], _Spool | OpenObject],
        written: Callable[[_Spool | OpenObject], None],
    ) -> None:
        """Range ``index`` (``where``) of ``table`` as INSERT statements into the object
        ``target()`` returns, ``written(obj)`` after each; records its digest and rows."""
        query = RowQuery(table, self.threshold)
        done = write_range(
            self._batches(conn, query, where), table, query.insert_prefix(), target, written
        )
        with self._lock:
            state = self.states[(table.database, table.name)]
            state.range_digests[index] = done.digest
            state.rows += done.rows
            state.data_bytes += done.data_bytes
            self.largest_statement = max(self.largest_statement, done.largest)

    def _batches(self, conn: RawConnection, query: RowQuery, where: str) -> Iterator[list[bytes]]:
        """Fetched rows as literal texts; stops early (leaving the connection unusable) when
        another worker failed."""
        for texts in read_texts(conn, query, where):
            if self._stop.is_set():
                return
            yield texts

    def _dump_sequence(self, conn: RawConnection, table: Table) -> None:
        rows = conn.rows(
            f"SELECT next_not_cached_value FROM {qualified(table.database, table.name)}"
        )
        value = int(rows[0][0] or b"1") if rows else 1
        put_definitions(
            self.writer,
            table_path(table.database, table.name, "schema.sql.zst"),
            "schema",
            table.database,
            table.name,
            f"DROP SEQUENCE IF EXISTS {ident(table.name)}",
            table.create,
            f"DO SETVAL({ident(table.name)}, {value}, 0)",
        )
        with self._lock:
            self.states[(table.database, table.name)].rows = 1  # COUNT(*) of a sequence

    def _open_data(self, table: Table) -> OpenObject:
        with self._lock:
            state = self.states[(table.database, table.name)]
            state.parts += 1
            part = state.parts
        key = table_path(table.database, table.name, f"data-{part:05d}.sql.zst")
        obj = self.writer.open(key, "data", table.database, table.name, part)
        obj.write(PRELUDE)
        return obj

    def _close_data(self, table: Table, obj: OpenObject) -> None:
        with self._lock:
            self.states[(table.database, table.name)].part_rows[obj.part] = obj.rows
        self.writer.close(obj)
