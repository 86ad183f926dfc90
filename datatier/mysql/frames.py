"""Statement frames in data objects: each INSERT is preceded by a comment line giving its
size, so a restore can cut the statements apart without reading into their values.

A data object is :data:`~datatier.mysql.sqltext.PRELUDE`, then for each statement
``-- next statement: N bytes`` and a newline, then the N bytes of ``INSERT INTO ...;`` and
its newline. The stock client takes the line for a comment (the README's by-hand path is
unchanged); :func:`statements` reads the sizes instead of scanning for a ``;`` that a value
could hold. Objects of older backups carry no frames (:func:`is_framed`) and go to the stock
client, which parses them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

from datatier.mysql.sqltext import PRELUDE, prelude_statements

FRAME_TAG = b"-- next statement: "
FRAME_LINE = re.compile(rb"-- next statement: ([1-9][0-9]{0,11}) bytes\n")
FRAME_LINE_MAX = len(FRAME_TAG) + 12 + len(b" bytes\n")
HEAD_BYTES = len(PRELUDE) + len(FRAME_TAG)
"""How much of an object :func:`is_framed` needs."""


class FrameError(ValueError):
    """The bytes are not laid out as framed statements (the message says where)."""


def frame(size: int) -> bytes:
    """The line written before a statement of ``size`` bytes (its ``;`` and newline too)."""
    return b"%s%d bytes\n" % (FRAME_TAG, size)


def is_framed(head: bytes) -> bool:
    """Whether an object whose first :data:`HEAD_BYTES` bytes are ``head`` holds frames."""
    return head.startswith(PRELUDE + FRAME_TAG)


def peek(chunks: Iterable[bytes], size: int = HEAD_BYTES) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes of ``chunks`` (fewer if it is shorter) and an iterator over
    all of its chunks again."""
    it = iter(chunks)
    taken: list[bytes] = []
    have = 0
    while have < size:
        chunk = next(it, None)
        if chunk is None:
            break
        taken.append(chunk)
        have += len(chunk)
    return b"".join(taken)[:size], itertools.chain(taken, it)


def take_framed(buf: Buffer, head: bytes) -> bytes:
    """The statement framed at ``buf``'s position (``head``: its next bytes, at least
    :data:`FRAME_LINE_MAX` of them where there are), frame line and body taken from ``buf``;
    FrameError when no frame line starts there or the body is cut short."""
    at = buf.offset
    found = FRAME_LINE.match(head)
    if found is None:
        raise FrameError(f"no statement frame at byte {at}")
    buf.take(found.end())
    size = int(found.group(1))
    body = buf.take(size)
    if len(body) != size:
        raise FrameError(f"the statement framed at byte {at} is cut short")
    return body


def statements(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The statements of a framed object: the PRELUDE's, then each framed INSERT in order
    (with its ``;`` and newline, which the server accepts after a single statement).
    Raises :class:`FrameError` at the first byte that is not where the frames say (before
    yielding a statement that would include it)."""
    buf = Buffer(iter(chunks))
    if buf.take(len(PRELUDE)) != PRELUDE:
        raise FrameError("the object does not start with the session prelude")
    yield from prelude_statements()
    while not buf.at_end():
        at = buf.offset
        body = take_framed(buf, buf.head(FRAME_LINE_MAX))
        if not body.startswith(b"INSERT INTO ") or not body.endswith(b";\n"):
            raise FrameError(f"the statement framed at byte {at} is not one INSERT")
        yield body


class Buffer:
    """Bytes of an iterator of chunks, taken from the front."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._data = bytearray()
        self.offset = 0  # bytes taken so far

    def _fill(self, size: int) -> None:
        while len(self._data) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._data += chunk

    def head(self, size: int) -> bytes:
        """Up to ``size`` bytes from the front, left in place."""
        self._fill(size)
        return bytes(self._data[:size])

    def take(self, size: int) -> bytes:
        """Up to ``size`` bytes from the front (fewer only at the end)."""
        self._fill(size)
        with memoryview(self._data) as view:
            out = bytes(view[:size])
        del self._data[:size]
        self.offset += len(out)
        return out

    def at_end(self) -> bool:
        self._fill(1)
        return not self._data
