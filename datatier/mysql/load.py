"""Apply verified SQL objects to a MySQL/MariaDB server.

Data objects hold no ``USE`` (which is how ``--rename`` works). Their statements are framed
(:mod:`datatier.mysql.frames`): each loading thread runs them, one by one as the frames cut
them, on a connection of its own in the target database (:mod:`datatier.mysql.direct`). Data
objects of older backups, without frames, are fed decompressed to one stock
``mariadb --binary-mode`` process bound to the target database. Definition objects (schemas,
triggers, routines, events, views) written as one ``DELIMITER`` block are executed statement
by statement on a connection of datatier's own, exactly as the server gave them at backup
time: the stock client rewrites some routine bodies (a routines object's package DROPs,
which older backups sent before their sql_mode, first get it:
:mod:`datatier.mysql.package_drops`). Objects of older backups go to the stock client.
Phases run in restore order; within the schema and data phases objects load in parallel
(``jobs``). Each thread keeps one connection for the definition objects it runs (every
object starts with the PRELUDE, which resets the session they set). Tables whose data is one
object of at most :data:`BUNDLE_MAX_BYTES` load in batches on one thread (a job per table
cost more than its rows): framed ones on its connection, unframed ones through one client
process that runs the batch's objects one after another, as separate clients would (a
failure names the object the client's line number falls in). Bundle objects (small tables
the backup wrote together, each its definition then its rows) load in the data phase:
format-1 bundles, every statement framed (:mod:`datatier.mysql.bundle_frames`), on the
thread's connection like framed data, a failure naming the table and the statement within
its section; older bundles through one client each, a failure naming the table whose section
the client's line number falls in, and that line's number within the section. How clients
are run, and why none outlives its restore: :mod:`datatier.mysql.stock_client`.

With ``keys_after_data`` an InnoDB table holding at least :data:`DEFER_MIN_BYTES` of data is
created without its plain secondary indexes (:mod:`datatier.mysql.deferred_keys`), which
are added by one ``ALTER TABLE`` as soon as the table's last data object has loaded: InnoDB
then builds each index by one sort instead of row by row. The restored table ends up defined
exactly as backed up; a restore that fails before the ALTER leaves the table without those
indexes (as it leaves it without some rows).

The first failure of any job, Ctrl-C or SIGTERM stops the restore at once: every statement
still running on the target is killed (:mod:`datatier.mysql.interrupt`), and the failure
that stopped it (or the signal) is what is raised, never a killed sibling's error. An
object is reported loaded (``on_loaded``) only once all its statements have succeeded.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import pymysql

from datatier.backup.manifest import ObjectRecord
from datatier.errors import OperationFailed
from datatier.log import get_logger
from datatier.mysql.bundle_frames import BUNDLE_HEAD_BYTES, BundleStatements, is_framed_bundle
from datatier.mysql.connection import (
    ClientOptions,
    Connection,
    Endpoint,
    client_options_file,
    connect,
)
from datatier.mysql.deferred_keys import defer_secondary_keys
from datatier.mysql.direct import StatementRunner
from datatier.mysql.frames import is_framed, peek, statements
from datatier.mysql.interrupt import Interrupter
from datatier.mysql.labels import name_label, object_label, table_label
from datatier.mysql.long_key_names import MAX_NAME, restorable_create
from datatier.mysql.package_drops import drops_in_their_mode
from datatier.mysql.referenced import referenced_tables
from datatier.mysql.sqltext import ident, parse_block, prelude_statements
from datatier.mysql.stock_client import StockClient

log = get_logger(__name__)

Fetch = Callable[[ObjectRecord], Iterator[bytes]]
"""Yields an object's *decompressed* bytes, after checking its SHA-256."""

PARALLEL_KINDS = ("schema", "data")
PHASE_OF = {"bundle": "data"}
"""Kinds loaded in another kind's phase: bundles (small tables, definition and rows) run
alongside the data objects."""
DEFER_MIN_BYTES = 4 << 20
"""Tables with less data than this keep their indexes while loading (an ALTER costs more)."""
BUNDLE_MAX_BYTES = 1 << 20
"""Tables whose only data object holds at most this are loaded in bundles (module docstring),"""
BUNDLE_OBJECTS = 64
"""of up to this many objects."""


class SQLLoader:
    """Loads objects into ``target``; ``database_for`` maps a source database to its target.
    Within a phase, the objects ``first`` picks are all loaded before the others start.
    ``rewrite_create`` replaces each CREATE TABLE statement of schema objects and bundles
    (``--rename`` requalifying references to renamed databases), and the whole text of a
    schema object of the older unframed layout (its DROP and CREATE). With
    ``keys_after_data``, a large table's plain indexes are built after its rows, but for
    those led by a column list ``referenced((database, table))`` gives (foreign keys of
    other tables reference them: the child's CREATE TABLE needs such an index); it gives
    None for a table to keep whole."""

    def __init__(
        self,
        target: Endpoint,
        fetch: Fetch,
        database_for: Callable[[str], str],
        *,
        jobs: int = 4,
        binlog: bool = True,
        keys_after_data: bool = True,
        on_loaded: Callable[[ObjectRecord], None] | None = None,
        first: Callable[[ObjectRecord], bool] = lambda _: False,
        rewrite_create: Callable[[bytes], bytes] | None = None,
        referenced: Callable[
            [tuple[str | None, str | None]], Collection[tuple[str, ...]] | None
        ] = lambda _: None,
    ) -> None:
        self.target = target
        self.first = first
        self.rewrite_create = rewrite_create
        self.fetch = fetch
        self.database_for = database_for
        self.jobs = max(1, jobs)
        self.binlog = binlog
        self.keys_after_data = keys_after_data
        self.referenced = referenced
        self.on_loaded = on_loaded
        self._interrupter = Interrupter(target)
        self._client = StockClient(self._interrupter, binlog=binlog)
        self._stop = self._interrupter.stop
        self._large: set[tuple[str | None, str | None]] = set()
        self._alters: dict[tuple[str | None, str | None], str] = {}
        self._alters_lock = threading.Lock()
        self._local = threading.local()  # per thread: conn, database
        self._sessions: list[Connection] = []
        self._runners: list[StatementRunner] = []
        self._texts: dict[str, bytes] = {}  # schema objects fetched by _drop_tables_first
        self.started = False
        """Whether any statement of an object was sent (the target may have changed)."""

    def stop(self) -> None:
        """Stop the loading from any thread: statements in progress killed, none started
        after (:meth:`~datatier.mysql.interrupt.Interrupter.fire`); :meth:`load_all` then
        returns without loading the rest (a caller stopping it says why)."""
        self._interrupter.fire()

    def load_all(self, objects: Iterable[ObjectRecord], kinds: Iterable[str]) -> None:
        """Load ``objects`` phase by phase in ``kinds`` order; stop at the first failure."""
        pending = list(objects)
        sizes: dict[tuple[str | None, str | None], int] = {}
        for obj in pending:
            if obj.kind == "data":
                sizes[(obj.database, obj.table)] = sizes.get((obj.database, obj.table), 0) + (
                    obj.raw_size
                )
        self._large = {t for t, size in sizes.items() if size >= DEFER_MIN_BYTES}
        try:
            self._interrupter.supervise(lambda: self._load_phases(pending, kinds))
        finally:
            for conn in self._sessions:
                with contextlib.suppress(pymysql.MySQLError):  # killed by a stop
                    conn.close()
            self._sessions.clear()
            for runner in self._runners:
                runner.close()
            self._runners.clear()

    def _load_phases(self, pending: list[ObjectRecord], kinds: Iterable[str]) -> None:
        with client_options_file(self.target) as cnf:
            for kind in kinds:
                if kind in PHASE_OF:
                    continue
                phase = [o for o in pending if PHASE_OF.get(o.kind, o.kind) == kind]
                if kind == "schema" and self.jobs > 1:
                    self._drop_tables_first(phase)
                leading = [o for o in phase if self.first(o)]
                for batch in (leading, [o for o in phase if not self.first(o)]):
                    if not batch:
                        continue
                    if kind in PARALLEL_KINDS and self.jobs > 1:
                        self._parallel(batch, cnf)
                    else:
                        for obj in batch:
                            self._load_one(obj, cnf)
                if kind == "data":
                    for table in list(self._alters):
                        self._add_keys(table)
            for table in list(self._alters):  # tables whose data phase never came
                self._add_keys(table)

    def _drop_tables_first(self, phase: list[ObjectRecord]) -> None:
        """Run the ``DROP TABLE IF EXISTS`` of each schema object of ``phase`` whose table
        is linked by a foreign key to another table of the phase (its CREATE TABLE declares
        one to it, or it to that table), one after another on one connection, before any
        object of the phase loads. Dropped and created in parallel, a parent and its child
        fail InnoDB's table locks on each other at once ("Lock wait timeout exceeded") with
        the restore half done; once dropped, each object's own DROP finds nothing. Other
        tables keep loading in parallel (a DROP waiting on a lock still ends with the first
        failing sibling). Objects of the older unframed layout keep their DROP."""
        parsed: dict[str, tuple[ObjectRecord, list[bytes]]] = {}
        for obj in phase:
            if obj.kind != "schema" or obj.table is None or self._stop.is_set():
                continue
            text = b"".join(self.fetch(obj))
            self._texts[obj.key] = text
            parsed[obj.key] = (obj, parse_block(text) or [])
        tables = {(o.database, o.table) for o, _ in parsed.values()}
        linked: set[tuple[str | None, str | None]] = set()
        for obj, texts in parsed.values():
            for statement in texts:
                if statement.startswith(b"CREATE TABLE "):
                    for parent in referenced_tables(statement, obj.database):
                        if parent in tables and parent != (obj.database, obj.table):
                            linked |= {parent, (obj.database, obj.table)}
        for obj, texts in parsed.values():
            drops = [st for st in texts if st.startswith(b"DROP TABLE IF EXISTS ")]
            if (obj.database, obj.table) not in linked or not drops:
                continue
            if self._stop.is_set():
                return
            database = None if obj.database is None else self.database_for(obj.database)
            self._execute(obj, database, drops, loaded=False)

    def _parallel(self, batch: list[ObjectRecord], cnf: ClientOptions) -> None:
        """``batch`` on ``jobs`` threads, largest first so the tail stays short. A table's
        first part loads before its other parts start: InnoDB fills an empty table in bulk
        under a table lock, and two first inserts into one empty table deadlock (ERROR
        1213); once it holds rows, its other parts load alongside each other."""
        groups: dict[tuple[str | None, str | None], list[ObjectRecord]] = {}
        for obj in sorted(batch, key=lambda o: o.part):
            groups.setdefault(_owner(obj), []).append(obj)
        leaders = sorted((parts[0] for parts in groups.values()), key=lambda o: -o.raw_size)
        left = {table: len(parts) for table, parts in groups.items()}
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="load") as pool:
            running: dict[Future[None], list[ObjectRecord]] = {
                pool.submit(self._load_many, objs, cnf): objs for objs in _bundles(leaders, groups)
            }
            try:
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        loaded = running.pop(future)
                        future.result()  # the first failure stops everything
                        for obj in loaded:  # none: an ALTER adding deferred indexes
                            table = _owner(obj)
                            followers = groups[table]
                            if followers and followers[0] is obj:
                                for other in sorted(followers[1:], key=lambda o: -o.raw_size):
                                    running[pool.submit(self._load_one, other, cnf)] = [other]
                            left[table] -= 1
                            if left[table] == 0 and obj.kind == "data" and table in self._alters:
                                running[pool.submit(self._add_keys, table)] = []
            except BaseException:
                for future in running:
                    future.cancel()
                self._interrupter.fire()  # siblings blocked in a statement never see _stop
                raise

    def _load_many(self, objs: list[ObjectRecord], cnf: ClientOptions) -> None:
        """One object as :meth:`_load_one`; a batch of small data objects one after another."""
        if len(objs) == 1:
            self._load_one(objs[0], cnf)
        elif not self._stop.is_set():
            assert objs[0].database is not None
            self._load_data(objs, self.database_for(objs[0].database), cnf)

    def _load_data(self, objs: list[ObjectRecord], database: str, cnf: ClientOptions) -> None:
        """Data objects of ``database``, in order: framed ones statement by statement on this
        thread's connection (:mod:`datatier.mysql.direct`), others (older backups) through
        one stock client."""
        first = objs[0]
        head, chunks = peek(self.fetch(first))
        if not is_framed(head):
            self._pipe(objs, database, cnf, lambda o: chunks if o is first else self.fetch(o))
            return
        for obj in objs:
            if obj is not first:
                head, chunks = peek(self.fetch(obj))
            if not is_framed(head):
                self._pipe([obj], database, cnf, lambda _, c=chunks: c)  # type: ignore[misc]
                continue
            if not self._run(obj, database, statements(chunks)):
                return

    def _load_bundle(self, obj: ObjectRecord, database: str, cnf: ClientOptions) -> None:
        """A bundle: a format-1 one statement by statement on this thread's connection,
        older ones (their head says which, see :mod:`datatier.mysql.bundle_frames`) through
        a stock client. ``obj.sections`` are where its tables are in the fetched stream."""
        head, chunks = peek(self.fetch(obj), BUNDLE_HEAD_BYTES)
        if not is_framed_bundle(head):
            self._pipe([obj], database, cnf, lambda _: chunks)
            return
        parsed = BundleStatements(chunks, [s.start for s in obj.sections])

        def locate() -> str | None:
            if not 0 <= parsed.section < len(obj.sections):
                return None
            table = name_label(obj.sections[parsed.section].table)
            return f"table {table}, its statement {parsed.number}"

        self._run(obj, database, map(self._create, parsed), locate)

    def _create(self, statement: bytes) -> bytes:
        """``statement``; a CREATE TABLE with its foreign keys' names CREATE refuses made
        restorable (a backup taken before it did so, :func:`_restorable`), then through
        :attr:`rewrite_create`."""
        if not statement.startswith(b"CREATE TABLE "):
            return statement
        statement = _restorable(statement)
        return statement if self.rewrite_create is None else self.rewrite_create(statement)

    def _run(
        self,
        obj: ObjectRecord,
        database: str,
        statements: Iterable[bytes],
        locate: Callable[[], str | None] | None = None,
    ) -> bool:
        """Run ``obj``'s framed ``statements`` on this thread's runner; False when stopped."""
        runner = self._runner()
        self.started = True
        try:
            done = runner.run(obj, database, statements, self._stop, locate)
        except BaseException:
            self._local.runner = None  # in an unknown state: the next object opens another
            runner.close()
            raise
        if done and self.on_loaded:
            self.on_loaded(obj)
        return done

    def _runner(self) -> StatementRunner:
        """This thread's connection for framed data objects and bundles."""
        runner: StatementRunner | None = getattr(self._local, "runner", None)
        if runner is None:
            runner = StatementRunner(self.target, binlog=self.binlog, interrupter=self._interrupter)
            with self._alters_lock:
                self._runners.append(runner)
            self._local.runner = runner
        return runner

    def _load_one(self, obj: ObjectRecord, cnf: ClientOptions) -> None:
        if self._stop.is_set():
            return
        # Objects without a database (accounts and grants) run with none selected.
        database = None if obj.database is None else self.database_for(obj.database)
        if obj.kind not in ("data", "bundle"):
            text = self._texts.pop(obj.key, None)
            if text is None:
                text = b"".join(self.fetch(obj))
            statements = parse_block(text)
            if statements is not None:
                if obj.kind == "schema":
                    statements = [self._create(st) for st in statements]
                    statements = self._without_deferred_keys(obj, statements)
                elif obj.kind == "routines":  # older backups: a package's DROP in its mode
                    statements = drops_in_their_mode(statements)
                self._execute(obj, database, statements)
                return
            if obj.kind == "schema":
                # an older layout (plain statements after the prelude: a table's DROP and
                # CREATE, a sequence's SETVAL too), made restorable and requalified as a whole
                text = _restorable(text)
                if self.rewrite_create is not None:
                    text = self.rewrite_create(text)
            self._pipe([obj], database, cnf, lambda _: iter([text]))
            return
        if obj.kind == "data" and database is not None:
            self._load_data([obj], database, cnf)
            return
        if obj.kind == "bundle" and database is not None:
            self._load_bundle(obj, database, cnf)
            return
        self._pipe([obj], database, cnf)

    def _without_deferred_keys(self, obj: ObjectRecord, statements: list[bytes]) -> list[bytes]:
        """The schema object's statements, its CREATE TABLE without plain secondary indexes
        when the table qualifies (see module docstring); the ALTER is kept for later."""
        table = (obj.database, obj.table)
        if not self.keys_after_data or table not in self._large or obj.table is None:
            return statements
        referenced = self.referenced(table)
        if referenced is None:
            return statements
        out = []
        for statement in statements:
            text = statement.decode("utf-8", "surrogateescape")
            if text.startswith("CREATE TABLE "):
                deferred = defer_secondary_keys(text, ident(obj.table), referenced)
                if deferred.alter is not None:
                    with self._alters_lock:
                        self._alters[table] = deferred.alter
                    statement = deferred.create.encode("utf-8", "surrogateescape")
            out.append(statement)
        return out

    def _add_keys(self, table: tuple[str | None, str | None]) -> None:
        """Add the indexes deferred for ``table`` (once), in the session objects load in."""
        with self._alters_lock:
            alter = self._alters.pop(table, None)
        if alter is None or self._stop.is_set():
            return
        self.started = True
        database = None if table[0] is None else self.database_for(table[0])
        try:
            with connect(self.target, database=database) as conn, conn.cursor() as cur:
                conn_id: int = conn.thread_id()  # type: ignore[no-untyped-call]
                self._interrupter.watch(conn_id)
                try:
                    # the session the CREATE TABLE and the rows had (not the target's global
                    # sql_mode: a strict one fails a zero DEFAULT or a truncating virtual
                    # column the table legally holds)
                    for statement in prelude_statements():
                        conn.query(statement)
                    if not self.binlog:
                        cur.execute("SET SESSION sql_log_bin = 0")
                    cur.execute(alter)
                finally:
                    self._interrupter.forget(conn_id)
        except pymysql.MySQLError as exc:
            detail = self.target.scrub(str(exc.args[-1] if exc.args else exc))
            raise OperationFailed(
                f"adding the secondary indexes of {table_label(database, table[1] or '')} "
                f"after its data failed: {detail}"
            ) from None

    def _execute(
        self,
        obj: ObjectRecord,
        database: str | None,
        statements: list[bytes],
        *,
        loaded: bool = True,
    ) -> None:
        """Run a definitions object's statements (all of them when ``loaded``, which reports
        it loaded) on a connection of our own."""
        try:
            conn = self._session(database)
            self.started = True
            try:
                for statement in [*prelude_statements(), *statements]:
                    conn.query(statement)  # its bytes as they are: a definition's charset
            except BaseException:
                self._local.conn = None  # in an unknown state: the next object opens another
                raise
        except pymysql.MySQLError as exc:
            detail = self.target.scrub(str(exc.args[-1] if exc.args else exc))
            error = OperationFailed(f"loading {object_label(obj, database)} failed: {detail}")
            error.details["objects"] = [obj.key]
            raise error from None
        if loaded and self.on_loaded:
            self.on_loaded(obj)

    def _session(self, database: str | None) -> Connection:
        """This thread's connection (a new one for no database: none can be unselected)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or database is None:
            conn = connect(self.target, database=database)
            with self._alters_lock:
                self._sessions.append(conn)
            self._interrupter.watch(conn.thread_id())  # type: ignore[no-untyped-call]
            if not self.binlog:
                with conn.cursor() as cur:
                    cur.execute("SET SESSION sql_log_bin = 0")
            if database is None:
                return conn
            self._local.conn, self._local.database = conn, database
        elif self._local.database != database:
            conn.select_db(database)
            self._local.database = database
        return conn

    def _pipe(
        self,
        objs: list[ObjectRecord],
        database: str | None,
        cnf: ClientOptions,
        fetch: Fetch | None = None,
    ) -> None:
        """Feed ``objs``, one after another, to one stock client bound to ``database``
        (none when None); each object's bytes come from ``fetch`` (default: the loader's)."""
        self.started = True
        self._client.feed(objs, database, cnf, fetch or self.fetch)
        if self.on_loaded:
            for obj in objs:
                self.on_loaded(obj)


def _restorable(statement: bytes) -> bytes:
    """``statement`` with each foreign key named over 64 characters renamed as a backup now
    writes it (:mod:`datatier.mysql.long_key_names`), said in a warning."""
    text = statement.decode("utf-8", "surrogateescape")
    create, renamed = restorable_create(text)
    if not renamed:
        return statement
    log.warning(
        "restore.foreign_keys_renamed",
        renamed={old: new for old, new in renamed},
        note=f"names over {MAX_NAME} characters, which CREATE TABLE refuses (the backup took "
        "them as the server wrote them): created under these names",
    )
    return create.encode("utf-8", "surrogateescape")


def _owner(obj: ObjectRecord) -> tuple[str | None, str | None]:
    """The table whose parts ``obj`` is among (a bundle is its own)."""
    return (obj.database, obj.key if obj.kind == "bundle" else obj.table)


def _bundles(
    leaders: list[ObjectRecord], groups: dict[tuple[str | None, str | None], list[ObjectRecord]]
) -> list[list[ObjectRecord]]:
    """``leaders`` (largest first) as jobs: data objects that are their table's only part
    and small (:data:`BUNDLE_MAX_BYTES`) bundled per database, each other object alone."""
    jobs: list[list[ObjectRecord]] = []
    open_bundles: dict[str, list[ObjectRecord]] = {}
    for obj in leaders:
        small = obj.raw_size <= BUNDLE_MAX_BYTES and len(groups[_owner(obj)]) == 1
        if obj.kind != "data" or obj.database is None or not small:
            jobs.append([obj])
            continue
        bundle = open_bundles.setdefault(obj.database, [])
        if not bundle:
            jobs.append(bundle)
        bundle.append(obj)
        if len(bundle) >= BUNDLE_OBJECTS:
            del open_bundles[obj.database]
    return jobs
