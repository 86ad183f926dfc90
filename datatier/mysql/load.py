"""Apply verified SQL objects to a MySQL/MariaDB server.

Data objects are fed, decompressed, to one stock ``mariadb --binary-mode`` process bound to
the target database (objects hold no ``USE``, which is how ``--rename`` works). Definition
objects (schemas, triggers, routines, events, views) written as one ``DELIMITER`` block are
executed statement by statement on a connection of datatier's own, exactly as the server
gave them at backup time: the stock client rewrites some routine bodies. Objects of older
backups go to the stock client. Phases run in restore order; within the schema and data
phases objects load in parallel (``jobs``).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import pymysql

from datatier.backup.manifest import ObjectRecord
from datatier.errors import OperationFailed
from datatier.mysql.connection import ClientOptions, Endpoint, client_options_file, connect
from datatier.mysql.sqltext import parse_block, prelude_statements

Fetch = Callable[[ObjectRecord], Iterator[bytes]]
"""Yields an object's *decompressed* bytes, after checking its SHA-256."""

PARALLEL_KINDS = ("schema", "data")


def client_binary() -> str:
    binary = shutil.which("mariadb") or shutil.which("mysql")
    if binary is None:
        raise OperationFailed(
            "the mariadb client is not installed (apt-get install mariadb-client)"
        )
    return binary


class SQLLoader:
    """Loads objects into ``target``; ``database_for`` maps a source database to its target."""

    def __init__(
        self,
        target: Endpoint,
        fetch: Fetch,
        database_for: Callable[[str], str],
        *,
        jobs: int = 4,
        binlog: bool = True,
        on_loaded: Callable[[ObjectRecord], None] | None = None,
    ) -> None:
        self.target = target
        self.fetch = fetch
        self.database_for = database_for
        self.jobs = max(1, jobs)
        self.binlog = binlog
        self.on_loaded = on_loaded
        self._binary = client_binary()
        self._stop = threading.Event()

    def load_all(self, objects: Iterable[ObjectRecord], kinds: Iterable[str]) -> None:
        """Load ``objects`` phase by phase in ``kinds`` order; stop at the first failure."""
        pending = list(objects)
        with client_options_file(self.target) as cnf:
            for kind in kinds:
                batch = [o for o in pending if o.kind == kind]
                if not batch:
                    continue
                if kind in PARALLEL_KINDS and self.jobs > 1:
                    self._parallel(batch, cnf)
                else:
                    for obj in batch:
                        self._load_one(obj, cnf)

    def _parallel(self, batch: list[ObjectRecord], cnf: ClientOptions) -> None:
        """``batch`` on ``jobs`` threads, largest first so the tail stays short. A table's
        first part loads before its other parts start: InnoDB fills an empty table in bulk
        under a table lock, and two first inserts into one empty table deadlock (ERROR
        1213); once it holds rows, its other parts load alongside each other."""
        groups: dict[tuple[str | None, str | None], list[ObjectRecord]] = {}
        for obj in sorted(batch, key=lambda o: o.part):
            groups.setdefault((obj.database, obj.table), []).append(obj)
        leaders = sorted((parts[0] for parts in groups.values()), key=lambda o: -o.raw_size)
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="load") as pool:
            running: dict[Future[None], ObjectRecord] = {
                pool.submit(self._load_one, obj, cnf): obj for obj in leaders
            }
            try:
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        obj = running.pop(future)
                        future.result()  # the first failure stops everything
                        followers = groups[(obj.database, obj.table)]
                        if followers and followers[0] is obj:
                            for other in sorted(followers[1:], key=lambda o: -o.raw_size):
                                running[pool.submit(self._load_one, other, cnf)] = other
            except BaseException:
                self._stop.set()
                for future in running:
                    future.cancel()
                raise

    def _load_one(self, obj: ObjectRecord, cnf: ClientOptions) -> None:
        if self._stop.is_set():
            return
        # Objects without a database (accounts and grants) run with none selected.
        database = None if obj.database is None else self.database_for(obj.database)
        if obj.kind != "data":
            text = b"".join(self.fetch(obj))
            statements = parse_block(text)
            if statements is not None:
                self._execute(obj, database, statements)
                return
            self._pipe(obj, database, cnf, iter([text]))
            return
        self._pipe(obj, database, cnf, self.fetch(obj))

    def _execute(self, obj: ObjectRecord, database: str | None, statements: list[bytes]) -> None:
        """Run a definitions object's statements on a connection of our own."""
        try:
            with connect(self.target, database=database) as conn, conn.cursor() as cur:
                if not self.binlog:
                    cur.execute("SET SESSION sql_log_bin = 0")
                for statement in [*prelude_statements(), *statements]:
                    cur.execute(statement.decode("utf-8", "surrogateescape"))
        except pymysql.MySQLError as exc:
            detail = self.target.scrub(str(exc.args[-1] if exc.args else exc))
            where = database or "the server"
            raise OperationFailed(f"loading {obj.key} into {where} failed: {detail}") from None
        if self.on_loaded:
            self.on_loaded(obj)

    def _pipe(
        self,
        obj: ObjectRecord,
        database: str | None,
        cnf: ClientOptions,
        chunks: Iterator[bytes],
    ) -> None:
        """Feed ``chunks`` to a stock client bound to ``database`` (none when None)."""
        argv = [
            self._binary,
            f"--defaults-file={cnf}",
            "--binary-mode",
            "--batch",
            "--comments",
            "--max-allowed-packet=1G",
            "--default-character-set=utf8mb4",
            *([f"--database={database}"] if database is not None else []),
        ]
        if not self.binlog:
            argv.append("--init-command=SET SESSION sql_log_bin = 0")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=cnf.pass_fds,
        )
        assert proc.stdin is not None and proc.stderr is not None
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the client died; its stderr says why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        reader.join(timeout=5)
        if code != 0:
            message = b"".join(errors).decode(errors="replace").strip().splitlines()
            detail = message[-1] if message else f"exit code {code}"
            raise OperationFailed(
                f"loading {obj.key} into {database or 'the server'} failed: {detail}"
            )
        if self.on_loaded:
            self.on_loaded(obj)
