"""Read the chunk headers of an mbstream (xbstream) as it flows past, without copying it.

``mariabackup --stream=mbstream`` writes a sequence of chunks::

    "XBSTCK01" flags:u8 type:u8 path_len:u32le path
      type 'P': payload_len:u64le offset:u64le crc32:u32le payload
      type 'E': (nothing: the file named by path is complete)

:class:`StreamIndex` is fed the stream in arbitrary pieces and learns every file it holds,
its size, whether each ``.frm`` is a view, and the whole of the small metadata files in
:data:`KEPT` (``xtrabackup_info``: the backup's uuid). :meth:`StreamIndex.finish` raises
:class:`~datatier.errors.OperationFailed` when the stream stopped mid-chunk, has a chunk
that is not one, or left a file without its end chunk: a truncated stream never becomes a
backup. Payload checksums are left to ``mbstream -x``, which checks them on extraction.
A :class:`~datatier.mysql.physical.pages.PageSampler`, if given, sees every payload byte
with its file and offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from datatier.errors import OperationFailed
from datatier.mysql.physical.pages import PageSampler

MAGIC = b"XBSTCK01"
HEAD = struct.Struct("<8sBBI")  # magic, flags, type, path length
PAYLOAD = struct.Struct("<QQI")  # length, offset, crc32
MAX_PATH = 4096
VIEW_FRM = b"TYPE=VIEW"
KEPT = {"xtrabackup_info": 64 * 1024}  # files kept whole (up to this many bytes)


@dataclass
class StreamFile:
    """One file of the stream: bytes of payload seen and its first ``keep`` bytes (enough
    to tell a view's ``.frm``; a :data:`KEPT` file whole)."""

    size: int = 0
    head: bytes = b""
    ended: bool = False
    keep: int = len(VIEW_FRM)


@dataclass
class StreamIndex:
    """What the stream holds so far; feed it with :meth:`feed`, close it with :meth:`finish`."""

    files: dict[str, StreamFile] = field(default_factory=dict)
    chunks: int = 0
    total: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _skip: int = 0  # payload bytes of the current chunk still to pass
    _current: StreamFile | None = None
    sampler: PageSampler | None = None
    _path: str = ""  # the current chunk's file, and the file offset its next byte has
    _at: int = 0

    def feed(self, data: bytes) -> None:
        """Account for the next bytes of the stream."""
        self.total += len(data)
        view = memoryview(data)
        while view:
            if self._skip:
                take = min(self._skip, len(view))
                current = self._current
                if current is not None and len(current.head) < current.keep:
                    current.head += bytes(view[: min(take, current.keep - len(current.head))])
                if self.sampler is not None:
                    self.sampler.feed(self._path, self._at, view[:take])
                    self._at += take
                self._skip -= take
                view = view[take:]
                continue
            self._buffer += view
            view = memoryview(b"")
            self._parse_headers()

    def _parse_headers(self) -> None:
        """Consume every complete header in the buffer; payload bytes there are skipped."""
        buf = self._buffer
        pos = 0
        while True:
            if len(buf) - pos < HEAD.size:
                break
            magic, _flags, kind, path_len = HEAD.unpack_from(buf, pos)
            if magic != MAGIC or path_len > MAX_PATH:
                raise OperationFailed(
                    f"mariabackup wrote something that is not an mbstream at byte "
                    f"{self.total - len(buf) + pos}"
                )
            end = pos + HEAD.size + path_len
            extra = PAYLOAD.size if kind == ord("P") else 0
            if len(buf) < end + extra:
                break
            path = bytes(buf[pos + HEAD.size : end]).decode("utf-8", "surrogateescape")
            entry = self.files.get(path)
            if entry is None:
                keep = KEPT.get(path.removeprefix("./"), len(VIEW_FRM))
                entry = self.files[path] = StreamFile(keep=keep)
            self.chunks += 1
            if kind == ord("E"):
                entry.ended = True
                if self.sampler is not None:
                    self.sampler.end(path)
                pos = end
                continue
            if kind != ord("P"):
                raise OperationFailed(f"mbstream chunk of unknown type {kind!r} for {path}")
            length, offset, _crc = PAYLOAD.unpack_from(buf, end)
            entry.size += length
            pos = end + extra
            available = min(length, len(buf) - pos)
            if len(entry.head) < entry.keep:
                entry.head += bytes(buf[pos : pos + min(available, entry.keep - len(entry.head))])
            if self.sampler is not None:
                with memoryview(buf) as whole:
                    self.sampler.feed(path, offset, whole[pos : pos + available])
                self._path, self._at = path, offset + available
            pos += available
            if available < length:
                self._skip = length - available
                self._current = entry
                break
        del buf[:pos]

    def finish(self) -> None:
        """OperationFailed unless the stream ended exactly after a complete chunk and every
        file got its end chunk."""
        if self._skip or self._buffer:
            raise OperationFailed("the mbstream ended in the middle of a chunk (truncated)")
        open_files = sorted(p for p, f in self.files.items() if not f.ended)
        if open_files:
            raise OperationFailed(
                f"the mbstream ended before {len(open_files)} file(s) were complete, "
                f"first {open_files[0]}"
            )
        if not self.files:
            raise OperationFailed("mariabackup wrote an empty stream")

    # -- what the stream holds ------------------------------------------------------------

    def tables(self) -> dict[str, dict[str, list[str]]]:
        """Per database directory (file-name encoded; an empty database has its ``db.opt``):
        its tables and views, from the ``.frm`` files (a view's starts with ``TYPE=VIEW``)."""
        found: dict[str, dict[str, list[str]]] = {}
        for path, entry in sorted(self.files.items()):
            parts = path.removeprefix("./").split("/")
            if len(parts) != 2:
                continue
            slot = found.setdefault(parts[0], {"tables": [], "views": []})
            if not parts[1].endswith(".frm") or parts[1].startswith("#"):
                continue
            kind = "views" if entry.head.startswith(VIEW_FRM) else "tables"
            slot[kind].append(parts[1].removesuffix(".frm"))
        return found

    def database_bytes(self) -> dict[str, int]:
        """Bytes of payload per database directory (file-name encoded)."""
        sizes: dict[str, int] = {}
        for path, entry in self.files.items():
            parts = path.removeprefix("./").split("/")
            if len(parts) == 2:
                sizes[parts[0]] = sizes.get(parts[0], 0) + entry.size
        return sizes

    def has(self, name: str) -> bool:
        return name in self.files

    def kept(self, name: str) -> bytes | None:
        """The content of the :data:`KEPT` file ``name`` (None if the stream has none)."""
        for path in (name, f"./{name}"):
            entry = self.files.get(path)
            if entry is not None:
                return entry.head
        return None
