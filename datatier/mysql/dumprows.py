"""One key range of a table as framed INSERT statements.

Rows come as literal texts (:mod:`datatier.mysql.rowtext`), in key order, and go out as
INSERTs of about :data:`~datatier.mysql.rowtext.STATEMENT_BYTES` (a row is never split),
each after the frame giving its size (:mod:`datatier.mysql.frames`). The range's digest is
the SHA-256 of its row texts, one per line. An INSERT no server could load (past
:data:`MAX_PACKET`) fails the dump: the backup would succeed and never restore.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from datatier.errors import OperationFailed
from datatier.mysql.catalogue import Table
from datatier.mysql.frames import frame
from datatier.mysql.rowtext import STATEMENT_BYTES
from datatier.mysql.sqltext import qualified

MAX_PACKET = 1 << 30
"""The largest ``max_allowed_packet`` MariaDB and MySQL accept: a longer statement cannot be
loaded anywhere (a restore asks for 1 KiB over the statement, :mod:`datatier.mysql.target`)."""


class RowSink(Protocol):
    """Where statements go: an open object, or a bundle's spool."""

    raw_size: int

    def write(self, data: bytes, rows: int = 0) -> None: ...


S = TypeVar("S", bound=RowSink)


@dataclass(frozen=True)
class RangeWritten:
    """What one range wrote: the digest of its row texts, its rows, their bytes (a newline
    each) and its largest framed statement."""

    digest: bytes
    rows: int
    data_bytes: int
    largest: int


def write_range(
    batches: Iterable[list[bytes]],
    table: Table,
    prefix: bytes,
    target: Callable[[], S],
    written: Callable[[S], None],
) -> RangeWritten:
    """``batches`` of row texts as INSERTs (``prefix`` then the rows) into the sink
    ``target()`` returns at each statement, ``written(sink)`` after each."""
    digest = hashlib.sha256()
    rows_done = bytes_done = largest = 0
    for texts in batches:
        # Pieces are hashed and written as they are rather than concatenated: these
        # buffers are large, and each copy of one costs fresh pages.
        joined = b"\n".join(texts)
        digest.update(joined)
        digest.update(b"\n")
        rows_done += len(texts)
        bytes_done += len(joined) + 1
        for group in _statements(texts, len(joined) + 1, STATEMENT_BYTES):
            body = b",\n".join(group)
            size = len(prefix) + len(body) + 2
            _check_loadable(table, size)
            sink = target()
            head = frame(size)
            largest = max(largest, len(head) + size)
            sink.write(head)
            sink.write(prefix)
            sink.write(body, len(group))
            sink.write(b";\n")
            written(sink)
    return RangeWritten(digest.digest(), rows_done, bytes_done, largest)


def _check_loadable(table: Table, size: int) -> None:
    """OperationFailed when an INSERT of ``size`` bytes (one row, past the usual statement
    size) is too long for any server."""
    if size + 1024 > MAX_PACKET:
        raise OperationFailed(
            f"{qualified(table.database, table.name)}: a row renders to an INSERT of {size} "
            f"bytes (binary values as hex, 2 bytes each); no server could load it "
            f"(max_allowed_packet is at most {MAX_PACKET} bytes), so this backup would never "
            "restore",
            hint='back this table up with a physical policy (engine = "mariabackup"), or '
            "leave it out of this one (source.exclude_tables)",
        )


def _statements(texts: list[bytes], size: int, cap: int) -> Iterator[list[bytes]]:
    """``texts`` (``size`` bytes with one separator byte each) grouped into INSERT
    statements of about ``cap`` bytes (a row never split)."""
    if size + len(texts) <= cap:
        yield texts
        return
    group: list[bytes] = []
    size = 0
    for text in texts:
        if group and size + len(text) > cap:
            yield group
            group, size = [], 0
        group.append(text)
        size += len(text) + 2
    if group:
        yield group
