"""A minimal memcached text-protocol client for bulk work: pipelined stores with a flags and
expiry per item, multi-get with flags, ``stats`` and the LRU crawler's ``metadump``.

Why not pymemcache's ``set_many``: it applies one expiry and one flags value to a whole batch,
and a copy between nodes needs both per key (remaining TTLs, the app's serializer flags).

Contract: every network failure (refused, reset, timeout, closed mid-reply) raises
:class:`NodeUnavailable` naming the node, and the connection is dropped so that the next call
reconnects. A per-item server answer (``NOT_STORED``, ``SERVER_ERROR object too large``) is
returned, never raised.
"""

from __future__ import annotations

import re
import socket
import time
import typing
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import BinaryIO, NamedTuple
from urllib.parse import unquote_to_bytes

from datatier.config import split_host_port
from datatier.errors import OperationFailed, ServiceUnavailable

MAX_KEY_BYTES = 250
FLUSH_BYTES = 128 << 10  # pipeline writes in slices; one slice in flight ahead of its replies
SLICE_ITEMS = 4096  # ...and at most this many items a slice (their replies: 32 KiB at most)
STORED = b"STORED\r\n"
RELATIVE_TTL_LIMIT = 30 * 24 * 3600  # memcached reads larger expiry values as unix times
BAD_KEY_BYTE = re.compile(rb"[\x00-\x20\x7f]")


class NodeUnavailable(ServiceUnavailable):
    """A memcached node cannot be reached or dropped the connection."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"memcached {address}: {reason}")
        self.address = address


class StoreItem(NamedTuple):
    """One value to store: ``exptime`` 0 means no expiry (relative seconds up to 30 days,
    else an absolute unix time, as memcached defines it). A tuple: built once per key."""

    key: bytes
    value: bytes
    flags: int = 0
    exptime: int = 0


@dataclass(frozen=True)
class StoreBatch:
    """Values to store, by column (no object per item): ``flags`` and ``exptime`` are one
    value for every key or one per key (as in :class:`StoreItem`)."""

    keys: Sequence[bytes]
    values: Sequence[bytes]
    flags: int | Sequence[int] = 0
    exptime: int | Sequence[int] = 0

    @classmethod
    def of(cls, items: Sequence[StoreItem]) -> StoreBatch:
        return cls(
            [i.key for i in items],
            [i.value for i in items],
            [i.flags for i in items],
            [i.exptime for i in items],
        )

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, indexes: Sequence[int]) -> StoreBatch:
        """The items at ``indexes``, in that order."""

        def pick(column: int | Sequence[int]) -> int | list[int]:
            return column if isinstance(column, int) else [column[i] for i in indexes]

        keys, values = self.keys, self.values
        return StoreBatch(
            [keys[i] for i in indexes], [values[i] for i in indexes],
            pick(self.flags), pick(self.exptime),
        )  # fmt: skip

    def wire(self, verb: bytes, start: int, end: int) -> bytes:
        """The text-protocol requests for items ``start:end``."""
        keys, values = self.keys[start:end], self.values[start:end]
        flags, exptime = self.flags, self.exptime
        if isinstance(flags, int) and isinstance(exptime, int):  # the hot path: one format
            head = b"%s %%s %d %d %%d\r\n%%s\r\n" % (verb, flags, exptime)
            return b"".join(map(head.__mod__, zip(keys, map(len, values), values, strict=True)))
        every_flags = [flags] * len(keys) if isinstance(flags, int) else flags[start:end]
        every_exp = [exptime] * len(keys) if isinstance(exptime, int) else exptime[start:end]
        return b"".join(
            b"%s %s %d %d %d\r\n%s\r\n" % (verb, key, flag, exp, len(value), value)
            for key, flag, exp, value in zip(keys, every_flags, every_exp, values, strict=True)
        )


def slices(values: Sequence[bytes]) -> Iterator[tuple[int, int]]:
    """``(start, end)`` runs of ``values`` of about :data:`FLUSH_BYTES` (at least one item,
    at most :data:`SLICE_ITEMS`)."""
    ends = list(accumulate(map(len, values)))
    start = 0
    while start < len(values):
        before = ends[start - 1] if start else 0
        end = max(start + 1, bisect_right(ends, before + FLUSH_BYTES, start))
        end = min(end, start + SLICE_ITEMS)
        yield start, end
        start = end


class MetaEntry(NamedTuple):
    """One line of ``lru_crawler metadump``: ``exp`` is an absolute unix time, -1 for never.
    A tuple: one is built per key of the node."""

    key: bytes
    exp: int
    size: int

    @classmethod
    def parse(cls, line: bytes) -> MetaEntry:
        """``key=K exp=E la=.. cas=.. fetch=.. cls=.. size=S`` (the key URI-encoded): the
        fields in memcached's order are read by position, any other order by name."""
        parts = line.split(b" ")
        first, second, last = parts[0], parts[1] if len(parts) > 1 else b"", parts[-1]
        if first[:4] == b"key=" and second[:4] == b"exp=" and last[:5] == b"size=":
            key = first[4:]
            return cls(
                unquote_to_bytes(key) if b"%" in key else key, int(second[4:]), int(last[5:])
            )
        fields = dict(part.split(b"=", 1) for part in parts if b"=" in part)
        return cls(
            unquote_to_bytes(fields[b"key"]),
            int(fields.get(b"exp", b"-1")),
            int(fields.get(b"size", b"0")),
        )


def key_problem(key: bytes) -> str | None:
    """Why memcached's text protocol would refuse ``key``, or None if it is fine."""
    if not key:
        return "the key is empty"
    if len(key) > MAX_KEY_BYTES:
        return f"the key is {len(key)} bytes (memcached allows {MAX_KEY_BYTES})"
    if BAD_KEY_BYTE.search(key):
        return "the key contains whitespace or control characters"
    return None


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); ValueError otherwise (:func:`split_host_port`)."""
    return split_host_port(text)


class MemcachedNode:
    """One connection to one memcached server (not thread-safe; one per worker)."""

    def __init__(self, address: str, *, timeout: float = 2.0) -> None:
        self.address = address
        self.host, self.port = parse_address(address)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None

    # -- connection -------------------------------------------------------------------------
    def _connect(self) -> tuple[socket.socket, BinaryIO]:
        if self._sock is None or self._reader is None:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except OSError as exc:
                raise NodeUnavailable(self.address, exc.strerror or str(exc)) from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = typing.cast(BinaryIO, sock.makefile("rb", buffering=1 << 16))
            self._sock, self._reader = sock, reader
            return sock, reader
        return self._sock, self._reader

    def close(self) -> None:
        """Drop the connection (the next call reconnects)."""
        if self._reader is not None:
            self._reader.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None

    def __enter__(self) -> MemcachedNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, exc: BaseException | str) -> NodeUnavailable:
        self.close()
        reason = exc if isinstance(exc, str) else (getattr(exc, "strerror", None) or repr(exc))
        return NodeUnavailable(self.address, str(reason))

    def _line(self, reader: BinaryIO) -> bytes:
        """One reply line without its terminator (metadump lines end in a bare LF)."""
        line = reader.readline()
        if not line.endswith(b"\n"):
            raise self._fail("connection closed mid-reply")
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    # -- commands ---------------------------------------------------------------------------
    def stats(self, group: str = "") -> dict[str, str]:
        """``stats [group]`` as a dict (``settings`` gives ``item_size_max`` and friends)."""
        sock, reader = self._connect()
        try:
            sock.sendall(f"stats {group}".strip().encode() + b"\r\n")
            found: dict[str, str] = {}
            while (line := self._line(reader)) != b"END":
                parts = line.decode(errors="replace").split(" ", 2)
                if parts[0] != "STAT" or len(parts) < 3:
                    raise self._fail(f"unexpected stats reply {line[:80]!r}")
                found[parts[1]] = parts[2]
            return found
        except OSError as exc:
            raise self._fail(exc) from None

    def item_size_max(self) -> int:
        """The largest item the server accepts (bytes; default 1 MiB)."""
        return int(self.stats("settings").get("item_size_max", 1 << 20))

    def store_many(self, items: Sequence[StoreItem], command: str = "set") -> list[bytes]:
        """:meth:`store_batch` of ``items``."""
        return self.store_batch(StoreBatch.of(items), command)

    def store_batch(self, batch: StoreBatch, command: str = "set") -> list[bytes]:
        """Pipeline ``set`` or ``add`` of every item; the server's answer per item, in order
        (``STORED``, ``NOT_STORED`` for an ``add`` of a present key, ``SERVER_ERROR ...``).

        Requests go in slices of about :data:`FLUSH_BYTES`; the next slice is sent before the
        replies to the previous one are read, so the server never waits for us between
        slices (at most two slices' replies are pending: a few KiB, no deadlock)."""
        if command not in ("set", "add"):
            raise ValueError(command)
        verb = command.encode()
        sock, reader = self._connect()
        answers: list[bytes] = []
        try:
            pending = 0  # items sent whose replies are not read yet
            for start, end in slices(batch.values):
                sock.sendall(batch.wire(verb, start, end))
                self._replies(reader, pending, answers)
                pending = end - start
            self._replies(reader, pending, answers)
        except OSError as exc:
            raise self._fail(exc) from None
        return answers

    def _replies(self, reader: BinaryIO, count: int, answers: list[bytes]) -> None:
        """Read ``count`` store replies. Every reply to a well-formed store is 8 bytes or
        more (``STORED``, ``NOT_STORED``, ``SERVER_ERROR ...``), so reading ``8 * count``
        bytes never reaches into later replies; when they are all ``STORED`` (the common
        case) that one read is all."""
        if not count:
            return
        data = reader.read(8 * count)
        if data == STORED * count:
            answers += [b"STORED"] * count
            return
        lines = data.split(b"\r\n")
        partial = lines.pop()
        if len(lines) > count or (len(lines) == count and partial):
            raise self._fail(f"unexpected store replies {data[:80]!r}")
        for line in lines:
            answers.append(line)
        for _ in range(count - len(lines)):
            line = partial + reader.readline()
            partial = b""
            if line[-2:] != b"\r\n":
                raise self._fail("connection closed mid-reply")
            answers.append(line[:-2])

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, tuple[int, bytes]]:
        """``get`` of ``keys`` in one request: key -> (flags, value) for the keys present."""
        if not keys:
            return {}
        sock, reader = self._connect()
        found: dict[bytes, tuple[int, bytes]] = {}
        try:
            sock.sendall(b"get " + b" ".join(keys) + b"\r\n")
            while (line := self._line(reader)) != b"END":
                parts = line.split(b" ")
                if parts[0] != b"VALUE" or len(parts) < 4:
                    raise self._fail(f"unexpected get reply {line[:80]!r}")
                size = int(parts[3])
                data = reader.read(size + 2)
                if len(data) != size + 2:
                    raise self._fail("connection closed mid-value")
                found[parts[1]] = (int(parts[2]), data[:-2])
        except OSError as exc:
            raise self._fail(exc) from None
        return found

    def present(self, keys: Sequence[bytes]) -> list[bool]:
        """Whether each key is on this node, by pipelined ``mg KEY`` (no value is sent back;
        memcached >= 1.6). A server without meta commands answers ERROR: every key then
        reads as absent (an ``add`` still leaves a present key alone)."""
        if not keys:
            return []
        sock, reader = self._connect()
        try:
            sock.sendall(b"".join(b"mg %s\r\n" % key for key in keys))
            return [self._line(reader).startswith(b"HD") for _ in keys]
        except OSError as exc:
            raise self._fail(exc) from None

    def reclaim_expired(self, *, wait: float = 5.0) -> None:
        """Run ``lru_crawler crawl all`` (frees expired items, so that ``curr_items`` counts
        live ones) and wait, up to ``wait`` seconds, until the crawler is idle again."""
        sock, reader = self._connect()
        try:
            sock.sendall(b"lru_crawler crawl all\r\n")
            self._line(reader)  # OK, or BUSY when a crawl already runs: waited for below
        except OSError as exc:
            raise self._fail(exc) from None
        deadline = time.monotonic() + wait
        while self.stats().get("lru_crawler_running", "0") != "0":
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)

    def metadump(self, *, busy_wait: float = 5.0) -> Iterator[MetaEntry]:
        """Stream every key's metadata via ``lru_crawler metadump all``, on this connection
        (use a dedicated node object; memory stays flat whatever the number of keys)."""
        sock, reader = self._connect()
        deadline = time.monotonic() + busy_wait
        try:
            while True:
                sock.sendall(b"lru_crawler metadump all\r\n")
                first = self._line(reader)
                if not first.startswith(b"BUSY"):
                    break
                if time.monotonic() > deadline:
                    raise self._fail("the LRU crawler stayed busy")
                time.sleep(0.1)
            line = first
            while line != b"END":
                if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
                    raise OperationFailedByServer(self.address, line.decode(errors="replace"))
                yield MetaEntry.parse(line)
                line = self._line(reader)
        except OSError as exc:
            raise self._fail(exc) from None


class OperationFailedByServer(OperationFailed):
    """The server refused a command that should work (e.g. the LRU crawler is disabled)."""

    def __init__(self, address: str, answer: str) -> None:
        super().__init__(f"memcached {address} refused: {answer}")
