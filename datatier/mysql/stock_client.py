"""Feeding objects to the stock ``mariadb --binary-mode`` client: objects of older backups
(unframed data, bundles whose definitions are not framed, definitions not written as one
``DELIMITER`` block), and anything else a restore cannot cut into statements itself.

A client must not outlive its restore: the stock client runs whatever it has read when its
input ends, even a statement cut off mid-way, and an orphan left blocked on a lock would
load the rest of its input later, possibly into tables a second restore has just replaced.
Each client therefore starts under ``setpriv --pdeathsig KILL`` (util-linux, essential on
Debian): it is killed when the thread feeding it dies, with the process or alone.

A client's death does not end the statement it has sent (one waiting on a lock runs when
the lock is released): so each client first prints its connection id, which it registers
with the restore's :class:`~datatier.mysql.interrupt.Interrupter`, and a stopped restore
kills that connection on the server too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator

from datatier.backup.manifest import ObjectRecord
from datatier.errors import OperationFailed
from datatier.mysql.connection import ClientOptions
from datatier.mysql.interrupt import ClientHandle, Interrupter
from datatier.mysql.labels import object_label
from datatier.mysql.sections import SectionLines, table_label

AT_LINE = re.compile(rb"ERROR(?: \d+ \([^)]*\))? at line (\d+)")
"""The client's error line (its last; it echoes the failing statement, any text, before)."""
WHO_AM_I = b"SELECT CONNECTION_ID();\n"
"""What each client runs first: its connection id, for a stopped restore to kill (one line,
before the objects' own)."""


def die_with_parent() -> list[str]:
    """The argv prefix that makes a client get SIGKILL when the thread that started it
    dies (none where util-linux's ``setpriv`` is missing: not Linux)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def client_binary() -> str:
    binary = shutil.which("mariadb") or shutil.which("mysql")
    if binary is None:
        raise OperationFailed(
            "the mariadb client is not installed (apt-get install mariadb-client)"
        )
    return binary


class StockClient:
    """Runs stock clients for a restore, each registered with ``interrupter``;
    ``binlog=False`` keeps what they load out of the target's binlog."""

    def __init__(self, interrupter: Interrupter, *, binlog: bool) -> None:
        self.interrupter = interrupter
        self.binlog = binlog
        self._binary = client_binary()
        self._guard = die_with_parent()

    def feed(
        self,
        objs: list[ObjectRecord],
        database: str | None,
        cnf: ClientOptions,
        fetch: Callable[[ObjectRecord], Iterator[bytes]],
    ) -> None:
        """Feed ``objs``' decompressed bytes (from ``fetch``), one after another, to one
        client bound to ``database`` (none when None). OperationFailed names the object
        (and for a bundle the table) the client's error points at, with its line there."""
        argv = [
            *self._guard,
            self._binary,
            f"--defaults-file={cnf}",
            "--binary-mode",
            "--batch",
            "--comments",
            "--skip-column-names",
            "--unbuffered",  # its connection id leaves at once
            "--max-allowed-packet=1G",
            "--default-character-set=utf8mb4",
            *([f"--database={database}"] if database is not None else []),
        ]
        if not self.binlog:
            argv.append("--init-command=SET SESSION sql_log_bin = 0")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=cnf.pass_fds,
        )
        with self.interrupter.client(proc) as handle:
            self._run(proc, handle, objs, database, fetch)

    def _run(
        self,
        proc: subprocess.Popen[bytes],
        handle: ClientHandle,
        objs: list[ObjectRecord],
        database: str | None,
        fetch: Callable[[ObjectRecord], Iterator[bytes]],
    ) -> None:
        assert proc.stdin is not None and proc.stderr is not None
        errors: list[bytes] = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        threading.Thread(target=_learn_id, args=(handle,), daemon=True).start()
        lines = [1]  # lines before each object (WHO_AM_I's first), to name the one that failed
        marks = SectionLines(objs[0].sections) if len(objs) == 1 and objs[0].sections else None
        try:
            proc.stdin.write(WHO_AM_I)
            for obj in objs:
                count = lines[-1]
                for chunk in fetch(obj):
                    proc.stdin.write(chunk)
                    if len(objs) > 1:
                        count += chunk.count(b"\n")
                    elif marks is not None:
                        marks.feed(chunk)
                lines.append(count)
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
            text = b"".join(errors)
            message = text.decode(errors="replace").strip().splitlines()
            detail = message[-1] if message else f"exit code {code}"
            failed = failed_object(objs, lines, text, marks, database)
            error = OperationFailed(f"loading {failed} failed: {detail}")
            error.details["objects"] = [o.key for o in objs]
            raise error


def _learn_id(handle: ClientHandle) -> None:
    """Read the client's first output line (its connection id, :data:`WHO_AM_I`), then drain
    the rest (a statement of the objects may print something)."""
    out = handle.proc.stdout
    assert out is not None
    first = out.readline().strip()
    handle.learned(int(first) if first.isdigit() else None)
    while out.read(1 << 16):
        pass


def failed_object(
    objs: list[ObjectRecord],
    lines: list[int],
    stderr: bytes,
    marks: SectionLines | None = None,
    database: str | None = None,
) -> str:
    """What the object of ``objs`` a client's error (``at line N`` of the stream, whose
    objects began after ``lines[i]`` lines) points at holds (:func:`object_label`, in
    ``database``), with its own line number; for one bundle object (after ``lines[0]``
    lines), the table whose section (``marks``) that line falls in."""
    found = AT_LINE.match(stderr.strip().rsplit(b"\n", 1)[-1])
    if marks is not None and found is not None:
        where = marks.where(int(found.group(1)) - lines[0])
        if where is not None:
            table = table_label(where[0])
            return f"{object_label(objs[0], database)} (table {table}, its line {where[1]})"
    if len(objs) == 1 or found is None:
        first = object_label(objs[0], database)
        return first if len(objs) == 1 else f"one of {len(objs)} objects from {first}"
    line = int(found.group(1))
    for obj, before, after in zip(objs, lines, lines[1:], strict=False):
        if line <= after:
            return f"{object_label(obj, database)} (its line {line - before})"
    return object_label(objs[-1], database)
