"""Imported tablespaces: pages an incremental would never copy.

MariaDB's ``ALTER TABLE ... IMPORT TABLESPACE`` writes every page of the imported file with
``FIL_PAGE_LSN`` 0 and logs none of them (seen on 10.11). An incremental copies only pages
past its parent's LSN, so it leaves an imported file's pages out: the restore holds the
table as the parent had it, a mix of both, or no table. Each such page stays at LSN 0 until
InnoDB writes it again, and then carries an LSN past any earlier backup's, so it is copied.

:func:`imported_files` lists the live datadir's tablespace files that hold a page at LSN 0
among pages at fixed numbers (0-7, then 2^k and 3*2^k: the same pages whatever the file
grows to), each such page with a digest of its bytes; every physical manifest records that
list. :func:`imports_break` refuses the next incremental while a file holds a page at LSN 0
its parent did not list with the same bytes: imported since, or imported again. Files whose
inode has not changed since the parent was taken (``st_ctime``: a copy or an import sets it,
and no tool can set it back) keep the parent's entry unread.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datatier.mysql.physical.coverage import tablespace_names
from datatier.mysql.physical.pages import (
    FLAGS_END,
    fingerprint,
    header,
    live_file,
    physical_size,
)

FSP_HDR = 8  # FIL_PAGE_TYPE of a tablespace's page 0
PAGE_TYPE = struct.Struct(">H")  # FIL_PAGE_TYPE, at 24
CTIME_MARGIN = 120.0  # seconds: files changed this long before the parent are read again


def positions(pages: int) -> list[int]:
    """The page numbers read in a file of ``pages`` pages: 0-7, then 2^k and 3*2^k."""
    found = set(range(min(pages, 8)))
    power = 8
    while power < pages:
        found.add(power)
        if power * 3 // 2 < pages:
            found.add(power * 3 // 2)
        power *= 2
    return sorted(found)


def _unlogged(page: bytes, page_no: int) -> bool:
    """Whether ``page`` (read at ``page_no``) is a written page at LSN 0: its own number at
    4 (a page never written is zeros, number 0), page 0 an FSP header."""
    number, lsn, _ = header(page)
    if lsn != 0 or number != page_no:
        return False
    return page_no != 0 or PAGE_TYPE.unpack_from(page, 24)[0] == FSP_HDR


def _read(path: Path, size: int) -> tuple[int, list[list[Any]]] | None:
    """The space id of tablespace ``path`` (from its page 0) and ``[page, digest]`` of its
    pages at LSN 0 among :func:`positions`, pages of ``size`` (``innodb_page_size``) or of
    the file's own size (a compressed table's); None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = physical_size(os.pread(fd, FLAGS_END, 0), size)  # compressed: KEY_BLOCK_SIZE
        pages = os.fstat(fd).st_size // size
        first = os.pread(fd, size, 0) if pages else b""
        if len(first) < size:
            return None
        unlogged = []
        for page_no in positions(pages):
            page = first if page_no == 0 else os.pread(fd, size, page_no * size)
            if len(page) == size and _unlogged(page, page_no):
                unlogged.append([page_no, fingerprint(page)])
        return header(first)[2], unlogged
    except OSError:
        return None
    finally:
        os.close(fd)


def _entries(recorded: object) -> dict[str, list[Any]]:
    """A manifest's files (:func:`scan`'s ``files``, or that list) by path; entries not of
    the shape this module writes are left out."""
    if isinstance(recorded, dict):
        recorded = recorded.get("files")
    if not isinstance(recorded, list):
        return {}
    return {
        item[0]: item
        for item in recorded
        if isinstance(item, list)
        and len(item) == 3
        and isinstance(item[0], str)
        and isinstance(item[1], int)
        and isinstance(item[2], list)
    }


def imported_files(
    datadir: str | Path, page_size: int, since: float | None = None, before: object = None
) -> list[list[Any]]:
    """``[path in the datadir, space id, [[page, digest], ...]]`` of each tablespace file
    (``db/t.ibd``; a ``DATA DIRECTORY`` table's read where its ``.isl`` points) holding a
    page at LSN 0, sorted. With ``since`` (a time): a file whose ``st_ctime`` is older keeps
    its entry of ``before`` (a manifest's list) unread, or has none."""
    root = Path(datadir)
    known = _entries(before)
    found = []
    for rel in sorted(tablespace_names(root)):
        path = live_file(root, rel)
        if since is not None:
            try:
                unchanged = path.stat().st_ctime < since - CTIME_MARGIN
            except OSError:
                continue
            if unchanged:
                if rel in known:
                    found.append(known[rel])
                continue
        read = _read(path, page_size)
        if read is not None and read[1]:
            found.append([rel, read[0], read[1]])
    return found


def scan(datadir: str | Path, page_size: int, parent: object = None) -> dict[str, Any]:
    """``{"at": when the scan began (epoch seconds), "files": imported_files(...)}``, what a
    manifest records; with ``parent`` (a manifest's record of this shape), files unchanged
    since its scan keep their entries unread."""
    at = time.time()
    since = before = None
    if (
        isinstance(parent, dict)
        and isinstance(parent.get("at"), (int, float))
        and isinstance(parent.get("files"), list)
    ):
        since, before = float(parent["at"]), parent["files"]
    return {"at": at, "files": imported_files(datadir, page_size, since, before)}


def imports_break(found: Sequence[list[Any]], recorded: object, backup_id: str) -> str | None:
    """Why an incremental on backup ``backup_id`` (which recorded ``recorded``, its
    :func:`scan`) would leave pages out: a file of ``found`` (the live datadir's
    :func:`imported_files`) with a page at LSN 0 that backup did not list with the same
    bytes, or another space id.
    A manifest that lists none (made before this was recorded) knows of no file, so any
    imported file refuses once (one full backup)."""
    known = _entries(recorded)
    new = []
    for rel, space, pages in found:
        entry = known.get(rel)
        listed = {}
        if entry is not None and entry[1] == space:
            listed = {p[0]: p[1] for p in entry[2] if isinstance(p, list) and len(p) == 2}
        if entry is None or entry[1] != space or any(listed.get(n) != d for n, d in pages):
            new.append(rel)
    if not new:
        return None
    more = f" and {len(new) - 1} other file(s)" if len(new) > 1 else ""
    return (
        f"{new[0]}{more}: pages at LSN 0 that {backup_id} did not have (a tablespace "
        "imported since: IMPORT TABLESPACE writes its pages at LSN 0, and an incremental "
        "copies only pages past its parent's LSN)"
    )
