"""Streaming zstd: iterators of byte chunks in, iterators of byte chunks out.

:func:`compress` writes one zstd frame with a content checksum, so corruption is caught on
decompression. :func:`decompress` accepts any sequence of zstd frames (e.g. ``zstd`` CLI
output, or concatenated files) and raises :class:`~datatier.errors.IntegrityFailure` naming
the source when the data is corrupt, not zstd, empty, or truncated inside a frame. Memory is
bounded on both sides: outputs come in pieces of at most ``chunk_size`` bytes, however
compressible the data (zstd's stream reader does the work; :class:`_FrameTracker` follows
frame boundaries in the compressed bytes, because that reader is silent about truncation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import IO, cast

import zstandard

from datatier.errors import IntegrityFailure, UsageError

DEFAULT_LEVEL = 3
OUT_CHUNK = 1024 * 1024


def compress(
    chunks: Iterable[bytes],
    *,
    level: int = DEFAULT_LEVEL,
    threads: int = 0,
    chunk_size: int = OUT_CHUNK,
) -> Iterator[bytes]:
    """zstd-compress ``chunks`` (one frame, checksummed) into pieces of ``chunk_size`` bytes.

    ``level`` is 1..22 (or negative for the fast levels); ``threads`` > 0 compresses in
    that many zstd worker threads, -1 uses one per CPU. Invalid values raise UsageError.
    """
    if not -(1 << 17) <= level <= zstandard.MAX_COMPRESSION_LEVEL or level == 0:
        raise UsageError(
            f"zstd level {level} is invalid; use 1..{zstandard.MAX_COMPRESSION_LEVEL} "
            "or a negative fast level"
        )
    if threads < -1:
        raise UsageError(f"zstd threads must be -1, 0 or positive, got {threads}")
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, threads=threads)
    chunker = cctx.chunker(chunk_size=chunk_size)
    for chunk in chunks:
        if chunk:
            yield from chunker.compress(chunk)
    yield from chunker.finish()  # type: ignore[no-untyped-call]


def decompress(
    chunks: Iterable[bytes], *, name: str = "stream", chunk_size: int = OUT_CHUNK
) -> Iterator[bytes]:
    """Decompress a zstd stream of one or more frames into pieces of at most ``chunk_size``;
    ``name`` (an object URL) is used in error messages."""
    tracker = _FrameTracker(name)
    source = _ChunkReader(chunks, tracker.feed)
    reader = zstandard.ZstdDecompressor().stream_reader(
        cast("IO[bytes]", source), read_across_frames=True
    )
    try:
        while out := reader.read(chunk_size):
            yield out
    except zstandard.ZstdError as exc:
        raise IntegrityFailure(f"{name}: corrupt zstd data ({exc})") from None
    tracker.finish()


class _ChunkReader:
    """The ``read(n)`` file interface zstd's stream reader needs, over an iterator of chunks;
    every byte handed out is shown to ``observe`` first."""

    def __init__(self, chunks: Iterable[bytes], observe: Callable[[bytes], None]) -> None:
        self._chunks = iter(chunks)
        self._observe = observe
        self._view = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        while not self._view:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._view = memoryview(chunk)
        take = len(self._view) if size < 0 else min(size, len(self._view))
        out = bytes(self._view[:take])
        self._view = self._view[take:]
        self._observe(out)
        return out


_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE_MASK, _SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50


class _FrameTracker:
    """Follows zstd frame structure (RFC 8878) in compressed bytes without decompressing,
    to tell a complete stream from one that ends inside a frame."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.frames = 0
        self._state, self._need = "magic", 4
        self._field = bytearray()
        self._checksum = self._last = False

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            take = min(self._need, len(data) - pos)
            if self._state not in ("block", "skip"):  # small fields are kept, bodies skipped
                self._field += data[pos : pos + take]
            pos += take
            self._need -= take
            if self._need == 0:
                value = int.from_bytes(self._field, "little")
                self._field.clear()
                self._advance(value)

    def _goto(self, state: str, need: int) -> None:
        self._state, self._need = state, need
        if need == 0:
            self._advance(0)

    def _advance(self, value: int) -> None:
        state = self._state
        if state == "magic":
            if value == _ZSTD_MAGIC:
                self._goto("descriptor", 1)
            elif value & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
                self._goto("skip_size", 4)
            else:
                raise IntegrityFailure(f"{self.name}: corrupt zstd data (not a zstd frame)")
        elif state == "descriptor":
            single = bool(value & 0x20)
            self._checksum = bool(value & 0x04)
            size = (0 if single else 1) + (0, 1, 2, 4)[value & 3]
            size += ((1 if single else 0), 2, 4, 8)[value >> 6]
            self._goto("header", size)
        elif state == "header":
            self._goto("block_header", 3)
        elif state == "block_header":
            self._last, kind, size = bool(value & 1), (value >> 1) & 3, value >> 3
            if kind == 3:
                raise IntegrityFailure(f"{self.name}: corrupt zstd data (reserved block type)")
            self._goto("block", 1 if kind == 1 else size)
        elif state == "block":
            if not self._last:
                self._goto("block_header", 3)
            else:
                self._goto("checksum", 4 if self._checksum else 0)
        elif state == "checksum":
            self.frames += 1
            self._goto("magic", 4)
        elif state == "skip_size":
            self._goto("skip", value)
        elif state == "skip":
            self._goto("magic", 4)

    def finish(self) -> None:
        """Raise IntegrityFailure unless the stream ended cleanly after at least one frame."""
        if self._state != "magic" or self._field:
            raise IntegrityFailure(
                f"{self.name}: truncated zstd data (the stream ends inside a frame)"
            )
        if self.frames == 0:
            raise IntegrityFailure(f"{self.name}: empty zstd data (no frame)")
