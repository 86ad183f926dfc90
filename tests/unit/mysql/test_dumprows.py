"""A key range's rows as framed INSERTs: what the restore's frame reader gets back, the
range digest, statement sizes and the refusal of a statement no server could load."""

from __future__ import annotations

import hashlib

import pytest

from datatier.errors import OperationFailed
from datatier.mysql import dumprows
from datatier.mysql.catalogue import Table
from datatier.mysql.frames import statements
from datatier.mysql.rowtext import STATEMENT_BYTES
from datatier.mysql.sqltext import PRELUDE, prelude_statements

TABLE = Table("d b", "t;`x", "table", "InnoDB", "CREATE TABLE x (a int)", (), ())
PREFIX = b"INSERT INTO `t;``x` (`a`) VALUES\n"


class Sink:
    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.raw_size = 0
        self.rows = 0

    def write(self, data: bytes, rows: int = 0) -> None:
        self.pieces.append(data)
        self.raw_size += len(data)
        self.rows += rows


def written(batches: list[list[bytes]]) -> tuple[dumprows.RangeWritten, Sink, int]:
    sink = Sink()
    calls = [0]

    def after(_: Sink) -> None:
        calls[0] += 1

    done = dumprows.write_range(iter(batches), TABLE, PREFIX, lambda: sink, after)
    return done, sink, calls[0]


def rows_of(sink: Sink) -> list[bytes]:
    """The row texts back, through the restore's own frame reader."""
    found = list(statements([PRELUDE, *sink.pieces]))[len(list(prelude_statements())) :]
    rows: list[bytes] = []
    for statement in found:
        assert statement.startswith(PREFIX) and statement.endswith(b";\n")
        rows.extend(statement[len(PREFIX) : -2].split(b",\n"))
    return rows


def test_rows_come_back_in_order_with_their_digest_and_counts() -> None:
    # values that look like statement ends, frames and separators stay inside their rows
    texts = [b"(1)", b"(';\\n-- 9 bytes')", b"(X'0A3B')", b"('),\\n(')"]
    done, sink, calls = written([texts[:2], texts[2:]])
    assert rows_of(sink) == texts
    assert done.digest == hashlib.sha256(b"\n".join(texts) + b"\n").digest()
    assert (done.rows, sink.rows, calls) == (4, 4, 2)
    assert done.data_bytes == sum(len(t) + 1 for t in texts)


def test_large_batches_are_cut_into_statements_near_the_cap_never_inside_a_row() -> None:
    row = b"('" + b"v" * 1000 + b"')"
    done, sink, calls = written([[row] * 3000])
    assert rows_of(sink) == [row] * 3000
    assert calls >= 3  # ~3 MB of rows, statements of about 1 MiB
    assert done.largest <= STATEMENT_BYTES + len(PREFIX) + len(row) + 64


def test_a_statement_over_the_largest_packet_fails_the_dump(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dumprows, "MAX_PACKET", 4096)
    with pytest.raises(OperationFailed, match="no server could load it") as caught:
        written([[b"('" + b"z" * 5000 + b"')"]])
    assert "`d b`.`t;``x`" in str(caught.value)
    assert "mariabackup" in (caught.value.hint or "")
