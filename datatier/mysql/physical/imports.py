"""Imported tablespaces: pages an incremental would never copy.

MariaDB's ``ALTER TABLE ... IMPORT TABLESPACE`` writes every page of the imported file with
``FIL_PAGE_LSN`` 0 and logs none of them (seen on 10.11). An incremental copies only pages
past its parent's LSN, so it leaves an imported file's pages out: the restore holds the
table as the parent had it, a mix of both, or no table. Each such page stays at LSN 0 until
InnoDB writes it again, and then carries an LSN past any earlier backup's, so it is copied.

:func:`imported_files` lists the live datadir's tablespace files that hold a page at LSN 0
(every page of a file up to :data:`WHOLE_PAGES` pages, else :data:`SPREAD` pages across
it); every physical manifest records that list, and :func:`imports_break` refuses the next
incremental while a file holds such pages that its parent did not list (imported since).
A file that already held them when the parent was taken was copied whole by the chain's
full backup or is listed since; a second import into it, while pages of the first are
still unwritten, is not told apart.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from datatier.mysql.physical.pages import header, live_file

FSP_HDR = 8  # FIL_PAGE_TYPE of a tablespace's page 0
PAGE_TYPE = struct.Struct(">H")  # FIL_PAGE_TYPE, at 24
WHOLE_PAGES = 64  # files up to this many pages are read whole
SPREAD = 16  # pages read across a larger file (its first four and last included)


def _positions(pages: int) -> list[int]:
    if pages <= WHOLE_PAGES:
        return list(range(pages))
    across = {pages * k // SPREAD for k in range(SPREAD)}
    return sorted({0, 1, 2, 3, pages - 1} | across)


def _unlogged(page: bytes, page_no: int) -> bool:
    """Whether ``page`` (read at ``page_no``) is a written page at LSN 0: its own number at
    4 (a page never written is zeros, number 0), page 0 an FSP header."""
    number, lsn, _ = header(page)
    if lsn != 0 or number != page_no:
        return False
    return page_no != 0 or PAGE_TYPE.unpack_from(page, 24)[0] == FSP_HDR


def _space(path: Path, size: int) -> tuple[int, bool] | None:
    """The space id of tablespace ``path`` (from its page 0) and whether it holds a page at
    LSN 0; None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        pages = os.fstat(fd).st_size // size
        if pages == 0:
            return None
        first = os.pread(fd, size, 0)
        if len(first) < size:
            return None
        space = header(first)[2]
        for page_no in _positions(pages):
            page = first if page_no == 0 else os.pread(fd, size, page_no * size)
            if len(page) == size and _unlogged(page, page_no):
                return space, True
        return space, False
    except OSError:
        return None
    finally:
        os.close(fd)


def imported_files(datadir: str | Path, page_size: int) -> list[list[Any]]:
    """``[path in the datadir, space id]`` of each tablespace file (``db/t.ibd``, a
    ``DATA DIRECTORY`` table's where its ``.isl`` points) holding a page at LSN 0, sorted."""
    root = Path(datadir)
    names = {p.relative_to(root).as_posix() for p in root.glob("*/*.ibd")}
    names |= {p.relative_to(root).with_suffix(".ibd").as_posix() for p in root.glob("*/*.isl")}
    found = []
    for rel in sorted(names):
        read = _space(live_file(root, rel), page_size)
        if read is not None and read[1]:
            found.append([rel, read[0]])
    return found


def imports_break(found: list[list[Any]], recorded: object, backup_id: str) -> str | None:
    """Why an incremental on backup ``backup_id`` (which recorded ``recorded``, its
    :func:`imported_files`) would leave pages out: a file of ``found`` (the live datadir's)
    it did not list. A manifest that lists none (made before this was recorded) knows of no
    file, so any imported file refuses once (one full backup)."""
    known = set()
    if isinstance(recorded, list):
        known = {
            (item[0], item[1])
            for item in recorded
            if isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
        }
    new = [rel for rel, space in found if (rel, space) not in known]
    if not new:
        return None
    more = f" and {len(new) - 1} other file(s)" if len(new) > 1 else ""
    return (
        f"{new[0]}{more}: pages at LSN 0 that {backup_id} did not have (a tablespace "
        "imported since: IMPORT TABLESPACE writes its pages at LSN 0, and an incremental "
        "copies only pages past its parent's LSN)"
    )
