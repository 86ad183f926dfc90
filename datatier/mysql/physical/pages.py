"""Page LSNs as a datadir's history: what a backup saw, and whether the datadir still holds it.

On one timeline a page on disk only moves forward: InnoDB writes a page with its newest
LSN (``FIL_PAGE_LSN``, 8 bytes at offset 16) and never an older version. A datadir put back
from a filesystem snapshot or a cold copy holds older versions of the pages written since,
with older LSNs, or, when the same statements ran again, other bytes under the same LSN;
the next incremental copies only pages past its parent's ``to_lsn`` and would keep those.

:class:`PageSampler` watches a backup's stream (the data files of a full backup, the
``.delta`` files of an incremental) and keeps, per tablespace file, the pages with the
highest LSNs (where the file was written last before the copy) and a few drawn uniformly
from all of them (a timeline that wrote the same pages again a little later moves the
last-written ones past the checkpoint the backup began from, the others not).
:func:`pages_break` reads the same pages from the live datadir before the next
incremental: one older than it was, or with the same LSN and other bytes, means the datadir
left the history the backup copied.
A page that cannot be compared (file gone or rebuilt, a compressed or encrypted page whose
header fields do not check out, a short file) is skipped; a check cannot become a refusal
by what it cannot read.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import random
import re
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE_NO = struct.Struct(">I")  # FIL_PAGE_OFFSET, at 4
PAGE_LSN = struct.Struct(">Q")  # FIL_PAGE_LSN, at 16
SPACE_AT = 34  # FIL_PAGE_SPACE_ID
HEADER_END = 38  # the fields header() reads end here
DELTA_MAGICS = (b"xtra", b"XTRA")  # a .delta block's header page (page numbers follow)
TABLESPACE = re.compile(r"(?:^|/)(?:[^/]+\.ibd|ibdata\d+|undo\d+)$")
PAGE_SIZES = (4096, 8192, 16384, 32768, 65536)  # what innodb_page_size can be
PER_FILE = 4  # pages written last kept per tablespace file
SPREAD = 4  # and pages of any age, drawn uniformly
META_BYTES = 4096  # an incremental's ``.meta`` (page_size, zip_size, space_id lines)
META_SPACE = re.compile(rb"(?m)^space_id\s*=\s*(\d+)\s*$")
META_ZIP = re.compile(rb"(?m)^zip_size\s*=\s*(\d+)\s*$")
FSP_FLAGS = struct.Struct(">I")  # FSP_SPACE_FLAGS, at 54 of page 0 (FSP header at 38, +16)
FLAGS_END = 58
ZIP_SIZES = (1024, 2048, 4096, 8192, 16384)  # what KEY_BLOCK_SIZE can be
MAX_FILES = 256  # files kept (those written last)
REREADS = 3  # reads of a page whose bytes differ under the same LSN (a write in flight)


def physical_size(first: bytes | memoryview, page_size: int) -> int:
    """The size of a tablespace's pages on disk, from the flags on its page 0 (``first``,
    at least its first 58 bytes): a ``ROW_FORMAT=COMPRESSED`` table's ``KEY_BLOCK_SIZE``
    (``ZIP_SSIZE``, bits 1-4, in the format without the full_crc32 marker, bit 4, which no
    compressed table uses), else ``page_size`` (the server's ``innodb_page_size``)."""
    if len(first) < FLAGS_END:
        return page_size
    flags = FSP_FLAGS.unpack_from(first, FLAGS_END - 4)[0]
    zip_ssize = (flags >> 1) & 0xF
    if flags & 0x10 or not zip_ssize:
        return page_size
    size = 512 << zip_ssize
    return size if size in ZIP_SIZES and size <= page_size else page_size


def _listed(head: memoryview) -> list[int]:
    """The page numbers a ``.delta`` block's header page lists after its magic, up to the
    ``0xFFFFFFFF`` that ends a short list."""
    numbers = []
    for at in range(4, len(head) - 3, 4):
        number = PAGE_NO.unpack_from(head, at)[0]
        if number == 0xFFFFFFFF:
            break
        numbers.append(number)
    return numbers


def fingerprint(page: bytes | memoryview) -> str:
    """The page's bytes without the fields the server rewrites without a new LSN (the
    checksums at either end, the flush LSN / key version at 26..33)."""
    size = len(page)
    digest = hashlib.blake2b(digest_size=12)
    digest.update(page[4:26])
    digest.update(page[34 : size - 8])
    return digest.hexdigest()


def header(page: bytes | memoryview) -> tuple[int, int, int]:
    """``(page_no, lsn, space_id)`` from a page's header."""
    return (
        PAGE_NO.unpack_from(page, 4)[0],
        PAGE_LSN.unpack_from(page, 16)[0],
        PAGE_NO.unpack_from(page, SPACE_AT)[0],
    )


@dataclass
class _File:
    delta: bool
    size: int = 0  # its pages' size on disk (compressed: KEY_BLOCK_SIZE); 0 until known
    head: bytearray = field(default_factory=bytearray)  # its first bytes, until size known
    kept: list[tuple[int, int, bytes]] = field(default_factory=list)  # heap by lsn
    spread: list[tuple[int, int, bytes]] = field(default_factory=list)  # any LSN
    seen: int = 0  # pages that could be kept
    listed: deque[int] = field(default_factory=deque)  # a .delta block's page numbers due
    digests: list[tuple[int, int, str]] = field(default_factory=list)  # once ended
    space: int | None = None  # the file's space id (its page 0's: never encrypted)
    partial: bytearray = field(default_factory=bytearray)
    at: int = -1  # the file offset ``partial`` starts at


class PageSampler:
    """Fed the payload of an mbstream's files as it flows past (``feed(path, offset,
    data)``); :meth:`sample` is what :func:`pages_break` checks later. ``page_size`` is the
    server's ``innodb_page_size``; a file's own page size is read from its page 0 (a
    ``.delta``'s from its ``.meta``, which mariabackup streams first), so the pages of
    compressed tables are cut where they are. A page cut elsewhere fails the header
    checks and is not kept."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.files: dict[str, _File] = {}
        self.metas: dict[str, bytearray] = {}  # ``X.meta`` of each ``X.delta``
        self.rng = random.Random()  # noqa: S311 - which pages to sample, not a secret

    @staticmethod
    def wants(path: str) -> bool:
        return TABLESPACE.search(path.removesuffix(".delta")) is not None

    def feed(self, path: str, offset: int, data: bytes | memoryview) -> None:
        """Account for ``data``, the bytes of ``path`` from ``offset`` on."""
        entry = self.files.get(path)
        if entry is None:
            if path.endswith(".meta") and self.wants(path.removesuffix(".meta")):
                kept = self.metas.setdefault(path, bytearray())  # an incremental's space_id
                kept += bytes(data)[: max(0, META_BYTES - len(kept))]
                return
            if not self.wants(path):
                return
            entry = self.files[path] = _File(path.endswith(".delta"))
        if not entry.size:
            known = self._size(path, entry, offset, data)
            if known is None:
                return  # fewer than page 0's first 58 bytes so far
            entry.size, offset, data = known
        size = entry.size
        view = memoryview(data)
        if entry.at + len(entry.partial) != offset:
            entry.partial.clear()  # not a continuation: start at the next page boundary
            skip = -offset % size
            view, entry.at = view[skip:], offset + skip
        if entry.partial:  # complete the page a previous piece began
            need = size - len(entry.partial)
            entry.partial += view[:need]
            view = view[need:]
            if len(entry.partial) < size:
                return
            self._page(path, entry, entry.at // size, memoryview(bytes(entry.partial)))
            entry.partial.clear()
            entry.at += size
        whole = len(view) // size * size
        for start in range(0, whole, size):  # whole pages straight from the piece
            self._page(path, entry, (entry.at + start) // size, view[start : start + size])
        entry.at += whole
        entry.partial += view[whole:]

    def _size(
        self, path: str, entry: _File, offset: int, data: bytes | memoryview
    ) -> tuple[int, int, bytes | memoryview] | None:
        """The page size of file ``path``, and the bytes to go on with (``offset``,
        ``data``: what was held back first), or None while its page 0's flags have not all
        come: a piece may end anywhere, even right after a chunk's header."""
        if entry.delta:
            meta = self.metas.get(path.removesuffix(".delta") + ".meta", bytearray())
            found = META_ZIP.search(bytes(meta))
            zipped = int(found[1]) if found else 0
            size = zipped if zipped in ZIP_SIZES and zipped <= self.page_size else self.page_size
            return size, offset, data
        if offset != len(entry.head):  # not the start of the file: its page 0 unseen
            entry.head.clear()
            return self.page_size, offset, data
        entry.head += data
        if len(entry.head) < FLAGS_END:
            return None
        whole, entry.head = bytes(entry.head), bytearray()
        return physical_size(whole, self.page_size), 0, whole

    def _page(self, path: str, entry: _File, slot: int, page: memoryview) -> None:
        if entry.delta and bytes(page[:4]) in DELTA_MAGICS:
            entry.listed = deque(_listed(page))  # the numbers of the block's pages, in order
            return
        page_no, lsn, space = header(page)
        if entry.delta:  # where the page sits in the file, as the block's list says
            slot = entry.listed.popleft() if entry.listed else -1
        elif slot == 0 and page_no == 0:
            entry.space = space  # page 0 is never encrypted nor compressed
        if page_no == 0 or lsn == 0 or page_no != slot:
            return  # page 0 (flush LSN written in place), never written, or another page's
            # copy (the doublewrite buffer in ibdata1 holds other pages under their numbers)
        entry.seen += 1
        if len(entry.spread) < SPREAD:  # a uniform sample of the file's pages (reservoir)
            entry.spread.append((lsn, page_no, bytes(page)))
        elif (pick := self.rng.randrange(entry.seen)) < SPREAD:
            entry.spread[pick] = (lsn, page_no, bytes(page))
        if len(entry.kept) == PER_FILE and lsn <= entry.kept[0][0]:
            return
        item = (lsn, page_no, bytes(page))  # hashed once the file ends
        if len(entry.kept) < PER_FILE:
            heapq.heappush(entry.kept, item)
        else:
            heapq.heapreplace(entry.kept, item)

    def end(self, path: str) -> None:
        """``path`` is complete: its kept pages become digests (a few open files' pages are
        held at a time, however many files the stream has)."""
        entry = self.files.get(path)
        if entry is not None and (entry.kept or entry.spread):
            pages = {n: (lsn, n, b) for lsn, n, b in (*entry.spread, *entry.kept)}
            entry.digests = [(lsn, n, fingerprint(b)) for lsn, n, b in pages.values()]
            entry.kept, entry.spread = [], []
            entry.partial = bytearray()

    def sample(self) -> dict[str, Any]:
        """``{"page_size": N, "pages": [[path, page_no, space_id, lsn, fingerprint], ...],
        "sizes": {path: its page size}}``: the kept pages of the :data:`MAX_FILES` files
        written last, paths as in the datadir; ``sizes`` lists the files whose pages are
        not ``page_size`` long (compressed tables)."""
        for path, entry in self.files.items():
            self.end(path)
            if entry.delta:
                meta = self.metas.get(path.removesuffix(".delta") + ".meta", bytearray())
                found = META_SPACE.search(bytes(meta))
                entry.space = int(found[1]) if found else None
        ranked = sorted(
            (
                (max(e.digests)[0], path, e)
                for path, e in self.files.items()
                if e.digests and e.space is not None  # a file it cannot tell: not kept
            ),
            reverse=True,
        )[:MAX_FILES]
        pages = [
            [path.removeprefix("./").removesuffix(".delta"), page_no, entry.space, lsn, digest]
            for _, path, entry in sorted(ranked, key=lambda r: r[1])
            for lsn, page_no, digest in sorted(entry.digests, key=lambda k: k[1])
        ]
        sizes = {
            path.removeprefix("./").removesuffix(".delta"): entry.size
            for _, path, entry in ranked
            if entry.size != self.page_size
        }
        return {"page_size": self.page_size, "pages": pages, "sizes": sizes}


def read_page(path: Path, page_no: int, size: int) -> bytes | None:
    """Page ``page_no`` of ``path``, or None if the file or the page is not there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        page = os.pread(fd, size, page_no * size)
    except OSError:
        return None
    finally:
        os.close(fd)
    return page if len(page) == size else None


def live_file(datadir: Path, rel: str) -> Path:
    """Where the live server keeps the tablespace a stream named ``rel``: ``datadir/rel``,
    or, for a table created with ``DATA DIRECTORY`` (the stream holds it as ``db/t.ibd``
    beside ``db/t.isl``), the absolute path its ``.isl`` file in the datadir holds."""
    where = datadir / rel
    if not rel.endswith(".ibd") or where.exists():
        return where
    try:
        text = where.with_suffix(".isl").read_bytes().rstrip(b"\n")
    except OSError:
        return where
    return Path(os.fsdecode(text)) if text.startswith(b"/") else where


def _well_formed(item: object) -> bool:
    """Whether ``item`` is ``[relative path inside the datadir, page, space, LSN, digest]``."""
    if not isinstance(item, list) or len(item) != 5:
        return False
    rel, numbers, digest = item[0], item[1:4], item[4]
    return (
        isinstance(rel, str)
        and bool(rel)
        and not rel.startswith("/")
        and ".." not in rel.split("/")
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers)
        and isinstance(digest, str)
    )


def pages_break(
    datadir: str | Path, sample: object, backup_id: str, checkpoint: int | None = None
) -> str | None:
    """Why the live ``datadir`` no longer holds the pages backup ``backup_id`` copied
    (``sample``: its :meth:`PageSampler.sample`), or None when every comparable page is the
    one it copied, or one written after ``checkpoint``, or there is no sample.

    ``checkpoint`` is the checkpoint LSN the backup's copy began from
    (:func:`~datatier.mysql.physical.lineage.copy_checkpoint`): every change at or below it
    was on disk before any page was copied, so on one timeline a version the copy missed
    carries a later LSN. An older LSN, the same LSN with other bytes, or an LSN between the
    copied one and ``checkpoint`` (the same statements run again after the datadir was put
    back) is another timeline. (mariabackup's ``to_lsn`` is no such bound: it is read after
    the copy, and a page copied early may be written and checkpointed before then.)"""
    if not isinstance(sample, dict) or not isinstance(sample.get("pages"), list):
        return None
    page_size = sample.get("page_size")
    if type(page_size) is not int or page_size not in PAGE_SIZES:
        return None
    listed = sample.get("sizes")
    sizes: dict[Any, Any] = listed if isinstance(listed, dict) else {}
    spaces: dict[str, int | None] = {}
    for item in sample["pages"]:
        if not _well_formed(item):
            continue  # not what a sampler writes: never a refusal
        rel, page_no, space, lsn, digest = item
        size = sizes.get(rel, page_size)
        if type(size) is not int or (size not in ZIP_SIZES and size != page_size):
            continue  # not what a sampler writes
        where = live_file(Path(datadir), rel)
        if rel not in spaces:
            first = read_page(where, 0, size)
            spaces[rel] = None if first is None else header(first)[2]
        if spaces[rel] != space:
            continue  # gone, or rebuilt since (another space id)
        for attempt in range(REREADS):
            page = read_page(where, page_no, size)
            if page is None or header(page)[0] != page_no:
                break  # truncated, or not readable as that page
            now = header(page)[1]
            if now == lsn and fingerprint(page) == digest:
                break
            if now > lsn and (checkpoint is None or now > checkpoint):
                break
            if now < lsn:
                return (
                    f"page {page_no} of {rel} is at LSN {now} in the datadir, older than "
                    f"LSN {lsn} it had when {backup_id} was copied ("
                    + (
                        "a tablespace imported since: IMPORT TABLESPACE writes its pages at LSN 0"
                        if now == 0
                        else "a snapshot or a copy of the datadir put back"
                    )
                    + ")"
                )
            if now > lsn:
                return (
                    f"page {page_no} of {rel} was written at LSN {now}, after {backup_id} "
                    f"copied it at LSN {lsn} but at or before checkpoint {checkpoint}, which "
                    "that copy began from: another timeline (the datadir was put back and "
                    "written again)"
                )
            if attempt == REREADS - 1:
                return (
                    f"page {page_no} of {rel} holds other bytes under LSN {lsn} than when "
                    f"{backup_id} was copied (the datadir was put back and the same "
                    "statements ran again)"
                )
            time.sleep(0.05)
    return None
