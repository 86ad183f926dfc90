"""Per-table data digests of a live server, computed exactly as a backup computes them.

Used by ``backups verify --restore-test``: the backup's manifest records, per table, the
row count and the SHA-256 of its data statements as mariadb-dump wrote them; re-dumping a
restored copy with the same options must give the same bytes, hence the same digest.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from datatier.errors import OperationFailed
from datatier.mysql.connection import Endpoint, client_options_file
from datatier.mysql.dump import DUMP_OPTIONS
from datatier.mysql.dumpsplit import split_stream

# Coordinates do not change the data statements and need a binlog; leave them out.
DIGEST_OPTIONS = tuple(o for o in DUMP_OPTIONS if o not in ("--master-data=2", "--gtid"))


@dataclass
class DigestSink:
    """A SectionSink that keeps only (rows, SHA-256) of each table's data section."""

    found: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    _key: tuple[str, str] | None = None
    _hash: Any = None
    _rows: int = 0

    def begin(self, kind: str, database: str, name: str | None) -> None:
        self._key = (database, name) if kind == "data" and name is not None else None
        self._hash, self._rows = hashlib.sha256(), 0

    def write(self, data: bytes, rows: int) -> None:
        if self._key is not None:
            self._hash.update(data)
            self._rows += rows

    def end(self) -> None:
        if self._key is not None:
            self.found[self._key] = (self._rows, self._hash.hexdigest())
        self._key = None


def table_digests(target: Endpoint, databases: list[str]) -> dict[tuple[str, str], tuple[int, str]]:
    """(rows, SHA-256 of the data statements) for every table of ``databases``."""
    binary = shutil.which("mariadb-dump") or shutil.which("mysqldump")
    if binary is None:
        raise OperationFailed("mariadb-dump is not installed (apt-get install mariadb-client)")
    sink = DigestSink()
    with client_options_file(target) as cnf:
        argv = [binary, f"--defaults-file={cnf}", *DIGEST_OPTIONS, "--databases", *databases]
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=cnf.pass_fds
        )
        assert proc.stdout is not None and proc.stderr is not None
        try:
            split_stream(cast(BinaryIO, proc.stdout), sink, lambda _: None)
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode(errors="replace").strip()
            code = proc.wait()
    if code != 0:
        raise OperationFailed(f"mariadb-dump of {', '.join(databases)} failed: {err[-300:]}")
    return sink.found
