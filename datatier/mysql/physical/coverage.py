"""Every tablespace the server kept through a copy is in the backup.

mariabackup may skip a tablespace and still exit 0: one it takes for dropped during the
copy (a ``DISCARD``/``IMPORT TABLESPACE`` after the last checkpoint reads so in the redo),
one an option or a version leaves out. Its log says so in words that change between
versions, so the check does not read them: :func:`tablespaces` lists the datadir's
tablespace files with their inodes before the copy and again after it, and
:func:`left_out` names each file that was there both times, as the same inode, and is not
in the stream. A file the server created, dropped, renamed or rebuilt meanwhile (a new
inode, or a new space id where the filesystem handed the inode number on) is left to
mariabackup, which copies such changes from the redo.

Files of tables named ``#sql...`` are left out: an ``ALTER`` in progress or its remains,
which InnoDB drops on recovery and no restore holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from datatier.mysql.physical.pages import HEADER_END, header, live_file

Identity = tuple[int, int, int]  # (st_dev, st_ino, space id)


def tablespace_names(datadir: Path) -> set[str]:
    """The datadir's per-table tablespaces as ``db/t.ibd``: its ``*/*.ibd`` files and the
    tables created with ``DATA DIRECTORY`` (their ``*/*.isl`` links)."""
    names = {p.relative_to(datadir).as_posix() for p in datadir.glob("*/*.ibd")}
    links = datadir.glob("*/*.isl")
    return names | {p.relative_to(datadir).with_suffix(".ibd").as_posix() for p in links}


def tablespaces(datadir: str | Path) -> dict[str, Identity]:
    """``{db/t.ibd: (device, inode, space id)}`` of the datadir's tablespace files (a
    ``DATA DIRECTORY`` table's where its ``.isl`` points), ``#sql`` tables left out; a file
    gone meanwhile is absent."""
    root = Path(datadir)
    found = {}
    for rel in tablespace_names(root):
        if rel.partition("/")[2].startswith("#sql"):
            continue
        try:
            with live_file(root, rel).open("rb") as file:
                st = os.fstat(file.fileno())
                head = file.read(HEADER_END)
        except OSError:
            continue
        space = header(head)[2] if len(head) == HEADER_END else -1
        found[rel] = (st.st_dev, st.st_ino, space)
    return found


def left_out(
    before: dict[str, Identity], after: dict[str, Identity], streamed: Callable[[str], bool]
) -> list[str]:
    """The tablespaces (``db/t.ibd``, sorted) present as the same file ``before`` and
    ``after`` the copy that ``streamed(rel)`` says the stream lacks."""
    return sorted(
        rel for rel, same in before.items() if after.get(rel) == same and not streamed(rel)
    )
