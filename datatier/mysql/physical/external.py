"""Tables created with ``DATA DIRECTORY`` in a physical restore: where their files go.

A prepared backup holds such a table's tablespace as ``db/t.ibd`` beside ``db/t.isl``, the
link naming where the source kept it. Neither place inside the restored datadir works on
MariaDB 10.11 (tried by hand): without the ``.isl`` the server opens the file, but the first
rebuild of the table (``ALTER TABLE ... FORCE``, a copying ``ALTER``) crashes it; an
``.isl`` naming a file in the datadir is dropped at start (the same crash follows), and one
naming a directory inside it fails the rebuild with error 1210. So the file goes outside
the datadir, with an ``.isl`` naming it:

* by default, to the path the source kept it at (what ``mariabackup --copy-back`` does);
* under ``--external-dir ROOT``, to ``ROOT/db/t.ibd`` (where ``DATA DIRECTORY = 'ROOT'``
  would put it), e.g. on the source's own host, where those paths hold the live files.

:func:`find_external` reads and removes the links before anything else runs on the copy (a
point-in-time replay's private server keeps such tables inside); :class:`ExternalFiles`
refuses (UsageError, exit 2, nothing changed) a destination inside the datadir, one a file
already holds (unless ``--force`` replaces a datadir whose own ``.isl`` names it), one not
of the ``.../db/t.ibd`` form the server writes, and a filesystem without the space; then it
moves the files, writes the links, and undoes that if the restore fails before the install.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from datatier.errors import UsageError
from datatier.log import get_logger
from datatier.mysql.physical.datadir import DIR_MODE, FILE_MODE, HEADROOM, Owner, existing_ancestor
from datatier.mysql.physical.pages import HEADER_END, header
from datatier.storage.base import MiB

log = get_logger(__name__)

ASIDE = ".datatier-replaced-"  # a replaced datadir's own file, kept until the install is done
EXTERNAL = "external_tables"  # manifest ``source``: {db/t: path} of the backup's datadir
HINT = "name a directory outside the datadir for them: --external-dir ROOT"


@dataclass(frozen=True)
class External:
    """One ``DATA DIRECTORY`` table of the prepared copy: ``rel`` (``db/t``), the path its
    ``.isl`` named, and its tablespace's space id (-1: unreadable)."""

    rel: str
    source_path: Path
    space: int


def space_id(path: Path) -> int:
    """The space id in ``path``'s first page header (-1 when it cannot be read)."""
    try:
        with path.open("rb") as file:
            head = file.read(HEADER_END)
    except OSError:
        return -1
    return header(head)[2] if len(head) == HEADER_END else -1


def read_link(link: Path) -> Path:
    """The absolute path an ``.isl`` file holds (the server writes it without a newline)."""
    return Path(os.fsdecode(link.read_bytes().rstrip(b"\n")))


def find_external(data: Path) -> list[External]:
    """The ``DATA DIRECTORY`` tables of the prepared datadir ``data``, their ``.isl`` files
    removed. A table without its ``.ibd`` (discarded on the source) is logged and left so."""
    found = []
    for link in sorted(data.glob("*/*.isl")):
        rel = link.relative_to(data).with_suffix("").as_posix()
        target = read_link(link)
        link.unlink()
        ibd = link.with_suffix(".ibd")
        if ibd.is_file():
            found.append(External(rel, target, space_id(ibd)))
        else:
            log.warning(
                "restore.tablespace_absent",
                table=rel,
                note="created with DATA DIRECTORY and without its tablespace in the backup "
                "(discarded on the source); its .isl was removed so the restored server never "
                "opens the source's file",
            )
    return found


def external_links(datadir: Path) -> dict[str, str]:
    """``{db/t: the path its .isl names}`` of a live datadir (what a backup records, so a
    restore can refuse before it fetches anything); unreadable links are left out."""
    found = {}
    for link in sorted(datadir.glob("*/*.isl")):
        try:
            found[link.relative_to(datadir).with_suffix("").as_posix()] = str(read_link(link))
        except OSError:
            continue
    return found


def recorded_links(source: Mapping[str, object]) -> dict[str, Path]:
    """The ``{db/t: path}`` a backup recorded (:data:`EXTERNAL`; empty for backups taken
    before 2026-12-05, which the check after the prepare still covers)."""
    links = source.get(EXTERNAL)
    if not isinstance(links, dict):
        return {}
    return {str(k): Path(v) for k, v in links.items() if isinstance(v, str)}


def destination(rel: str, source_path: Path, root: Path | None) -> Path:
    """Where table ``rel``'s file goes: ``root/db/t.ibd``, else the path it had."""
    db, _, name = rel.partition("/")
    return root / db / f"{name}.ibd" if root else source_path


def refuse_destinations(
    planned: dict[str, Path], datadir: Path, *, root: Path | None, force: bool
) -> set[str]:
    """UsageError (nothing changed) unless the file of each table ``db/t`` of ``planned``
    may go to its path: absolute and ending in ``db/t.ibd``, one per table, outside
    ``datadir`` (as ``root`` must be), no file there, and a writable place to make it.
    A file there is allowed (and returned: the tables whose file the restore replaces)
    with ``force`` when the datadir being replaced has its own ``.isl`` naming it."""
    top = datadir.resolve()
    if root is not None and root.resolve().is_relative_to(top):
        raise UsageError(f"--external-dir {root} is inside --datadir {datadir}: the server "
                         "cannot rebuild such tables there")  # fmt: skip
    seen: dict[Path, str] = {}
    replaced = set()
    for rel, dest in planned.items():
        db, _, name = rel.partition("/")
        if not dest.is_absolute() or dest.name != f"{name}.ibd" or dest.parent.name != db:
            raise UsageError(
                f"{rel}: its .isl names {dest}, not a {db}/{name}.ibd the server would write",
                hint=HINT,
            )
        if dest in seen:
            raise UsageError(f"{rel} and {seen[dest]}: both .isl files name {dest}", hint=HINT)
        seen[dest] = rel
        if dest.resolve().is_relative_to(top):
            raise UsageError(
                f"{rel} was created with DATA DIRECTORY at {dest.parent.parent}, inside "
                f"--datadir {datadir}",
                hint=HINT,
            )
        if dest.exists() or dest.is_symlink():
            if not (force and _linked_from(datadir, rel) == dest):
                raise UsageError(
                    f"{rel} was created with DATA DIRECTORY: its file goes to {dest}, and a "
                    "file is there (the source's own, on its host?); nothing was replaced",
                    hint=HINT,
                )
            replaced.add(rel)
        where = existing_ancestor(dest.parent)
        if not os.access(where, os.W_OK | os.X_OK):
            raise UsageError(f"{rel}: {where} is not writable by this user", hint=HINT)
    return replaced


def _linked_from(datadir: Path, rel: str) -> Path | None:
    """The path ``datadir``'s own ``rel.isl`` names (None: no such link)."""
    link = datadir / f"{rel}.isl"
    try:
        return read_link(link) if link.is_file() else None
    except OSError:
        return None


@dataclass
class _Move:
    table: External
    dest: Path
    aside: Path | None = None  # the replaced datadir's own file at dest, set aside
    placed: bool = False


class ExternalFiles:
    """Places the files of ``tables`` (found in ``data``, the prepared copy) outside
    ``datadir``; see the module docstring. Use: :meth:`check` (refusals), then, as a context
    manager, :meth:`place` before the install and :meth:`commit` after it. An exception in
    the block before :meth:`installing` removes what was placed and puts set-aside files back.
    """

    def __init__(
        self,
        tables: list[External],
        data: Path,
        datadir: Path,
        *,
        root: Path | None,
        owner: Owner,
        force: bool,
    ) -> None:
        self.data = data
        self.datadir = datadir
        self.root = root.absolute() if root else None
        self.owner = owner
        self.force = force
        self.moves: list[_Move] = []
        self.created: list[Path] = []  # directories this restore made, deepest last
        self.skipped: list[str] = []
        self._installing = False
        for table in tables:
            ibd = data / f"{table.rel}.ibd"
            now = space_id(ibd) if ibd.is_file() else None
            if now is None or now != table.space:  # dropped or created again by a replay
                self.skipped.append(table.rel)
                continue
            self.moves.append(_Move(table, destination(table.rel, table.source_path, self.root)))

    @property
    def tables(self) -> dict[str, str]:
        """``{db/t: where its file goes}``."""
        return {m.table.rel: str(m.dest) for m in self.moves}

    def check(self) -> None:
        """UsageError, before anything is moved, unless every file may go where planned
        (:func:`refuse_destinations`) and each filesystem has the space."""
        planned = {m.table.rel: m.dest for m in self.moves}
        replaced = refuse_destinations(planned, self.datadir, root=self.root, force=self.force)
        need: dict[int, tuple[Path, int]] = {}
        for move in self.moves:
            if move.table.rel in replaced:
                move.aside = move.dest.with_name(f"{move.dest.name}{ASIDE}{uuid.uuid4().hex[:8]}")
            where = existing_ancestor(move.dest.parent)
            device = where.stat().st_dev
            if device != self.data.stat().st_dev:
                size = (self.data / f"{move.table.rel}.ibd").stat().st_size
                at, total = need.get(device, (where, 0))
                need[device] = (at, total + size)
        for where, total in need.values():
            free = shutil.disk_usage(where).free
            if free < total + HEADROOM:
                raise UsageError(
                    f"not enough space for the DATA DIRECTORY tables in {where}: "
                    f"{free // MiB} MiB free, {(total + HEADROOM) // MiB} MiB needed",
                    hint=HINT,
                )

    def __enter__(self) -> ExternalFiles:
        return self

    def place(self) -> None:
        """Move each file to its destination (directories made as needed, owned by the
        owner, 0700; the file 0660) and write its ``.isl`` into the prepared copy."""
        for move in self.moves:
            self._mkdirs(move.dest.parent)
            if move.aside is not None:
                move.dest.rename(move.aside)
            source = self.data / f"{move.table.rel}.ibd"
            _move_file(source, move.dest)
            move.placed = True
            os.lchown(move.dest, self.owner.uid, self.owner.gid)
            move.dest.chmod(FILE_MODE)
            (self.data / f"{move.table.rel}.isl").write_bytes(os.fsencode(str(move.dest)))

    def installing(self) -> None:
        """From here DIR may name the placed files: a failure no longer removes them."""
        self._installing = True

    def commit(self) -> None:
        """The install is done: the replaced datadir's own files go."""
        for move in self.moves:
            if move.aside is not None:
                move.aside.unlink(missing_ok=True)
        if self.moves:
            log.warning(
                "restore.data_directory",
                tables=self.tables,
                note="these tables were created with DATA DIRECTORY; their files are there, "
                "outside the datadir, each named by its .isl",
            )
        if self.skipped:
            log.warning(
                "restore.data_directory_inside",
                tables=self.skipped,
                note="created with DATA DIRECTORY, then dropped or created again by the "
                "point-in-time replay: kept inside the datadir",
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            return
        if self._installing:  # DIR may name the placed files: keep them, and what was replaced
            kept = [str(m.aside) for m in self.moves if m.aside is not None and m.aside.exists()]
            if kept:
                log.warning("restore.replaced_files_kept", files=kept)
            return
        for move in reversed(self.moves):
            if move.placed:
                move.dest.unlink(missing_ok=True)
            if move.aside is not None and move.aside.exists():
                move.aside.rename(move.dest)
        for made in reversed(self.created):
            with contextlib.suppress(OSError):
                made.rmdir()

    def _mkdirs(self, path: Path) -> None:
        missing = []
        current = path
        while not current.exists():
            missing.append(current)
            current = current.parent
        for made in reversed(missing):
            made.mkdir(mode=DIR_MODE)
            self.created.append(made)
            os.lchown(made, self.owner.uid, self.owner.gid)


def _move_file(source: Path, dest: Path) -> None:
    """``source`` to ``dest``: a rename on one filesystem, else a synced copy (written
    under a temporary name, renamed into place) and the source removed."""
    try:
        source.rename(dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # another filesystem: copied
            raise
    partial = dest.with_name(f"{dest.name}.datatier-partial")
    try:
        with source.open("rb") as src, partial.open("xb") as out:
            shutil.copyfileobj(src, out, 8 * MiB)
            out.flush()
            os.fsync(out.fileno())
        partial.rename(dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    source.unlink()
