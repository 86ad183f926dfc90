"""Bundle objects whose every statement is framed, so a restore runs them on its own
connection (:class:`~datatier.mysql.direct.StatementRunner`) instead of a stock client.

Layout (format 1)::

    PRELUDE
    -- datatier bundle format 1: each statement follows its size
    then per table (one manifest section each):
    DELIMITER d                      (d occurs in neither statement, see sqltext.block)
    -- next statement: N bytes       N counts the statement, d and the newline
    DROP TABLE IF EXISTS `t`d
    -- next statement: N bytes
    CREATE TABLE `t` (...)d
    DELIMITER ;
    -- next statement: N bytes       the table's INSERTs, as in data objects
    INSERT INTO `t` ... ;

The stock client reads the frames as comments and the ``DELIMITER`` lines as its own
commands, so ``zstd -d < bundle | mariadb DB`` loads it as before.

Why the format line cannot be forged: it is the writer's own bytes at a fixed offset (right
after the PRELUDE), written before any name or value of any table, and a restore compares
only that fixed prefix (:func:`is_framed_bundle`), never searches for it. Bundles written
before frames covered definitions have ``DELIMITER`` at that offset (what
:func:`~datatier.mysql.sqltext.block` starts with): they, and any other head (a later
format), go to the stock client as before. Inside a format-1 bundle, statements are cut by
their sizes only; the one text matched is at a statement boundary (a frame or a
``DELIMITER`` line), where the writer, not the data, put the bytes.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence

from datatier.mysql.frames import FRAME_LINE_MAX, Buffer, FrameError, frame, take_framed
from datatier.mysql.sqltext import PRELUDE, delimiter_for, prelude_statements

BUNDLE_HEAD = b"-- datatier bundle format 1: each statement follows its size\n"
BUNDLE_HEAD_BYTES = len(PRELUDE) + len(BUNDLE_HEAD)
"""How much of an object :func:`is_framed_bundle` needs."""
_DELIMITER = re.compile(rb"DELIMITER ([^\s]{1,40})\n")
_DELIMITER_MAX = len(b"DELIMITER ") + 40 + 1
_STATEMENTS = (b"DROP TABLE IF EXISTS ", b"CREATE TABLE ", b"INSERT INTO ")
"""What a bundle's statements start with (a table's DROP and CREATE, its INSERTs)."""


def is_framed_bundle(head: bytes) -> bool:
    """Whether a bundle whose first :data:`BUNDLE_HEAD_BYTES` bytes are ``head`` is format 1."""
    return head.startswith(PRELUDE + BUNDLE_HEAD)


def framed_block(statements: list[str]) -> bytes:
    """``statements`` (a table's DROP and CREATE) as a ``DELIMITER`` block, each framed;
    the block ends with ``DELIMITER ;`` for the table's INSERTs."""
    delimiter = delimiter_for("\n".join(statements)).encode()
    out = [b"DELIMITER " + delimiter + b"\n"]
    for statement in statements:
        body = statement.encode("utf-8", "surrogateescape") + delimiter + b"\n"
        out += [frame(len(body)), body]
    out.append(b"DELIMITER ;\n")
    return b"".join(out)


class BundleStatements:
    """The statements of a format-1 bundle streamed as ``chunks``, whose sections (tables)
    start at the byte offsets ``starts`` of that stream; iterate once. Yields the PRELUDE's
    statements, then each framed statement without its delimiter. :attr:`section` and
    :attr:`number` say where the statement last yielded came from. Raises
    :class:`~datatier.mysql.frames.FrameError` at the first byte that is not where the
    layout says, before yielding a statement that would include it: a frame that does not
    fit, or runs past its section's end, or a body that is not one bundle statement ending
    in the current delimiter."""

    def __init__(self, chunks: Iterable[bytes], starts: Sequence[int]) -> None:
        self._chunks = chunks
        self._starts = list(starts)
        self.section = -1  # -1: the prelude
        self.number = 0  # within the section

    def __iter__(self) -> Iterator[bytes]:
        buf = Buffer(iter(self._chunks))
        if buf.take(BUNDLE_HEAD_BYTES) != PRELUDE + BUNDLE_HEAD:
            raise FrameError("the bundle does not start with the prelude and its format line")
        for statement in prelude_statements():
            self.number += 1
            yield statement
        starts = self._starts
        if starts and starts[0] != buf.offset:
            raise FrameError(f"its first section does not start at byte {buf.offset}")
        delimiter = b";"
        while not buf.at_end():
            at = buf.offset
            head = buf.head(max(FRAME_LINE_MAX, _DELIMITER_MAX))
            found = _DELIMITER.match(head)
            if found is not None:
                buf.take(found.end())
                delimiter = found.group(1)
                continue
            body = take_framed(buf, head)
            index = bisect.bisect_right(starts, at) - 1
            if index + 1 < len(starts) and buf.offset > starts[index + 1]:
                raise FrameError(f"the statement framed at byte {at} runs into the next table")
            tail = delimiter + b"\n"
            if not body.endswith(tail) or not body.startswith(_STATEMENTS):
                raise FrameError(f"the statement framed at byte {at} is not one statement")
            if index != self.section:
                self.section, self.number = index, 0
            self.number += 1
            yield body[: -len(tail)]
