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

:func:`find_external` reads and removes the links of the prepared copy. A point-in-time
replay runs its private server on the copy with the files in a :class:`Stage` beside it
(outside that server's datadir, so it rebuilds and renames them as the source did);
:meth:`Stage.collect` reads the links back. :func:`refuse_destinations` refuses
(UsageError, exit 2, nothing changed) what cannot be placed; :class:`ExternalFiles` moves
the files (never over a file: a link, not a rename), writes the links, and undoes that if
the restore fails before DIR is touched.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import glob
import os
import pwd
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from datatier.errors import UsageError
from datatier.log import get_logger
from datatier.mysql.physical.datadir import (
    DIR_MODE,
    FILE_MODE,
    HEADROOM,
    Owner,
    existing_ancestor,
    looks_like_datadir,
)
from datatier.storage.base import MiB

log = get_logger(__name__)

EXTERNAL = "external_tables"  # manifest ``source``: {db/t: path} of the backup's datadir
ASIDE = ".datatier-replaced-"  # a replaced datadir's own file, kept until DIR is installed
PARTIAL = ".datatier-partial"  # a copy across filesystems, until it is whole
NEW = ".datatier-new-"  # a --force restore's file, swapped in once DIR is being replaced
HINT = "name a directory outside the datadir for them: --external-dir ROOT"


@dataclass(frozen=True)
class External:
    """One ``DATA DIRECTORY`` table of the prepared copy: ``rel`` (``db/t``), where its
    file is now, and the path the source kept it at (for a table the replay renamed: the
    source's directory with the new name)."""

    rel: str
    file: Path
    source_path: Path


def read_link(link: Path) -> Path:
    """The path an ``.isl`` file holds (the server writes it without a newline); UsageError
    for one holding more than one line or a NUL byte."""
    raw = link.read_bytes()
    text = raw[:-1] if raw.endswith(b"\n") else raw
    if not text or any(c in text for c in (b"\0", b"\n", b"\r")):
        raise UsageError(f"{link}: not one path ({raw[:80]!r})")
    return Path(os.fsdecode(text))


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
            found.append(External(rel, ibd, target))
        else:
            log.warning(
                "restore.tablespace_absent",
                table=rel,
                note="created with DATA DIRECTORY and without its tablespace in the backup "
                "(discarded on the source); its .isl was removed so the restored server never "
                "opens the source's file",
            )
    return found


class Stage:
    """The files of ``tables`` beside the copy ``data`` (``stage/N/db/t.ibd``, one N per
    source directory), each named by an ``.isl`` in ``data``, while a replay's server runs
    on the copy; :meth:`collect` then reads the links that server left."""

    def __init__(self, tables: list[External], data: Path, stage: Path, owner: Owner) -> None:
        self.data = data
        self.stage = stage
        self.roots: dict[str, Path] = {}  # N -> the source's DATA DIRECTORY
        numbers: dict[Path, str] = {}
        for table in tables:
            source_root = table.source_path.parent.parent
            number = numbers.setdefault(source_root, str(len(numbers)))
            self.roots[number] = source_root
            db, _, name = table.rel.partition("/")
            staged = stage / number / db / f"{name}.ibd"
            staged.parent.mkdir(parents=True, exist_ok=True)
            table.file.rename(staged)
            (data / f"{table.rel}.isl").write_bytes(os.fsencode(str(staged)))
        for top, dirs, files in os.walk(stage):
            for name in [*dirs, *files]:
                os.lchown(Path(top) / name, owner.uid, owner.gid)
        if stage.exists():
            os.chown(stage, owner.uid, owner.gid)

    def collect(self) -> list[External]:
        """The tables whose links name a staged file after the replay (renamed ones under
        their new names), their links removed. UsageError for a link naming anything else
        (the replay's server keeps new ``DATA DIRECTORY`` tables inside the copy)."""
        found = []
        for link in sorted(self.data.glob("*/*.isl")):
            rel = link.relative_to(self.data).with_suffix("").as_posix()
            target = read_link(link)
            if not target.is_relative_to(self.stage) or not target.is_file():
                raise UsageError(f"the replay left {rel}.isl naming {target}, not a staged file")
            number = target.relative_to(self.stage).parts[0]
            db, _, name = rel.partition("/")
            found.append(External(rel, target, self.roots[number] / db / f"{name}.ibd"))
            link.unlink()
        return found


def external_links(datadir: Path) -> dict[str, str]:
    """``{db/t: the path its .isl names}`` of a live datadir (what a backup records, so a
    restore can refuse before it fetches anything); unreadable links are left out."""
    found = {}
    for link in sorted(datadir.glob("*/*.isl")):
        with contextlib.suppress(OSError, UsageError):
            found[link.relative_to(datadir).with_suffix("").as_posix()] = str(read_link(link))
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


def owner_may(path: Path, owner: Owner, want: int) -> bool:
    """Whether ``owner`` has the permission bits ``want`` (``os.X_OK`` and so on) on
    ``path`` by its mode (ACLs and MAC profiles are not read)."""
    if owner.uid == 0:
        return True
    st = path.stat()
    if st.st_uid == owner.uid:
        bits = st.st_mode >> 6
    elif st.st_gid in _groups(owner):
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & want == want


@functools.cache
def _groups(owner: Owner) -> frozenset[int]:
    """``owner``'s groups (its primary group alone when the user has no passwd entry)."""
    try:
        return frozenset(os.getgrouplist(pwd.getpwuid(owner.uid).pw_name, owner.gid))
    except KeyError:
        return frozenset({owner.gid})


def refuse_destinations(
    planned: dict[str, Path], datadir: Path, *, root: Path | None, force: bool, owner: Owner
) -> set[str]:
    """UsageError (nothing changed) unless the file of each table ``db/t`` of ``planned``
    may go to its path: absolute and ending in ``db/t.ibd``, one per table, outside
    ``datadir`` (as ``root`` must be, a directory if it exists), no file there, a place we
    may write and the server (``owner``) may reach (search on every directory above, write
    on an existing ``db`` directory: a rebuild makes its new file there). A regular file
    there is allowed (and returned: the tables whose file the restore replaces) with
    ``force`` when the datadir being replaced has its own ``.isl`` naming it."""
    top = datadir.resolve()
    if root is not None and (root.resolve().is_relative_to(top) or root.is_file()):
        raise UsageError(f"--external-dir {root} must be a directory outside --datadir {datadir}",
                         hint="the server cannot rebuild such tables inside it")  # fmt: skip
    if root is not None and root.is_dir() and looks_like_datadir(root):
        raise UsageError(f"--external-dir {root} is a MariaDB datadir: its server would find "
                         "these tables twice", hint=HINT)  # fmt: skip
    seen: dict[Path, str] = {}
    replaced = set()
    occupied = []
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
            raise UsageError(f"{rel}: its file would go to {dest}, inside --datadir {datadir}",
                             hint=HINT)  # fmt: skip
        beside = [dest.with_suffix(x) for x in (".frm", ".isl") if dest.with_suffix(x).exists()]
        if beside:  # the db directory of some server's datadir
            raise UsageError(f"{rel}: its file would go beside {beside[0]}, a table of a "
                             "MariaDB datadir", hint=HINT)  # fmt: skip
        if os.path.lexists(dest):
            if (
                force
                and dest.is_file()
                and not dest.is_symlink()
                and (_linked_from(datadir, rel) == dest)
            ):
                replaced.add(rel)
            else:
                occupied.append(dest)
        _refuse_unreachable(rel, dest, owner)
    if occupied:
        shown = ", ".join(str(p) for p in occupied[:5]) + (", ..." if len(occupied) > 5 else "")
        raise UsageError(
            f"{len(occupied)} table(s) created with DATA DIRECTORY would go where something "
            f"is already: {shown} (the source's own files, on its host? files a killed "
            "restore placed?); nothing was replaced",
            hint=HINT,
        )
    return replaced


def leftovers(dest: Path) -> list[Path]:
    """What a killed restore of ours left beside ``dest``: its copy in progress and the
    new files it had not swapped in yet (private names; never the file itself)."""
    return [p for p in dest.parent.glob(f"{glob.escape(dest.name)}.datatier-*")
            if p.name.endswith(PARTIAL) or NEW in p.name]  # fmt: skip


def _refuse_unreachable(rel: str, dest: Path, owner: Owner) -> None:
    where = existing_ancestor(dest.parent)
    if not where.is_dir():
        raise UsageError(f"{rel}: {where} is not a directory", hint=HINT)
    if not os.access(where, os.W_OK | os.X_OK):
        raise UsageError(f"{rel}: {where} is not writable by this user", hint=HINT)
    blocked = [p for p in (where, *where.parents) if not owner_may(p, owner, os.X_OK)]
    if where == dest.parent and not owner_may(where, owner, os.W_OK | os.X_OK):
        blocked.insert(0, where)
    if blocked:
        raise UsageError(
            f"{rel}: the server's user ({owner.name}) cannot "
            f"{'write' if blocked[0] == dest.parent else 'reach'} {blocked[0]}, where its "
            "file would go",
            hint="give that user access there, or choose another place: --external-dir ROOT",
        )


def _linked_from(datadir: Path, rel: str) -> Path | None:
    """The path ``datadir``'s own ``rel.isl`` names (None: no such link)."""
    link = datadir / f"{rel}.isl"
    try:
        return read_link(link) if link.is_file() else None
    except (OSError, UsageError):
        return None


def open_by_any(path: Path) -> bool | None:
    """Whether a process holds ``path`` open (by device and inode, over ``/proc/*/fd``);
    None when some process's descriptors could not be read (not root)."""
    st = path.stat()
    wanted = (st.st_dev, st.st_ino)
    complete = True
    for fds in Path("/proc").glob("[0-9]*/fd"):
        try:
            entries = list(fds.iterdir())
        except PermissionError:
            complete = False
            continue
        except OSError:
            continue
        for fd in entries:
            with contextlib.suppress(OSError):
                held = fd.stat()
                if (held.st_dev, held.st_ino) == wanted:
                    return True
    return False if complete else None


@dataclass
class _Move:
    table: External
    dest: Path
    incoming: Path | None = None  # --force: the new file beside dest, until swapped in
    aside: Path | None = None  # --force: the replaced file, linked aside at the swap
    unseen: bool = False  # --force: no process could be seen to hold the replaced file
    placed: bool = False
    swapped: bool = False


class ExternalFiles:
    """Places the files of ``tables`` outside ``datadir`` and writes their links into
    ``data`` (the prepared copy); see the module docstring. Use: :meth:`check`, then, as a
    context manager, :meth:`place`, the install (calling :meth:`installing` right before it
    changes DIR) and :meth:`commit`. Until :meth:`installing`, no file the datadir being
    replaced uses is touched (a file ``--force`` replaces waits beside it under a private
    name), and an exception in the block removes what was placed; one in
    :meth:`installing` also puts replaced files back."""

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
        self.moves = [_Move(t, destination(t.rel, t.source_path, self.root)) for t in tables]
        self.created: list[Path] = []  # directories this restore made, outermost first
        self.orphaned: list[str] = []  # files the replaced datadir named that nothing will
        self._installing = False

    @property
    def tables(self) -> dict[str, str]:
        """``{db/t: where its file goes}``."""
        return {m.table.rel: str(m.dest) for m in self.moves}

    def check(self) -> None:
        """UsageError, before anything is moved, unless every file may go where planned
        (:func:`refuse_destinations`), no process holds a file it replaces open (a copied
        datadir's ``.isl`` can name another server's live file), and each filesystem has
        the space."""
        planned = {m.table.rel: m.dest for m in self.moves}
        replaced = refuse_destinations(
            planned, self.datadir, root=self.root, force=self.force, owner=self.owner
        )
        need: dict[int, tuple[Path, int]] = {}
        for move in self.moves:
            if move.table.rel in replaced:
                held = open_by_any(move.dest)
                if held:
                    raise UsageError(
                        f"{move.table.rel}: a running process holds {move.dest} open (the "
                        "datadir's .isl names another server's file?); nothing was replaced",
                        hint=HINT,
                    )
                move.unseen = held is False
                tag = uuid.uuid4().hex[:8]
                move.incoming = move.dest.with_name(f"{move.dest.name}{NEW}{tag}")
                move.aside = move.dest.with_name(f"{move.dest.name}{ASIDE}{tag}")
            where = existing_ancestor(move.dest.parent)
            device, copy = where.stat().st_dev, move.table.file.stat()
            if device != copy.st_dev:
                at, total = need.get(device, (where, 0))
                need[device] = (at, total + copy.st_size)
        for where, total in need.values():
            free = shutil.disk_usage(where).free
            if free < total + HEADROOM:
                raise UsageError(
                    f"not enough space for the DATA DIRECTORY tables in {where}: "
                    f"{free // MiB} MiB free, {(total + HEADROOM) // MiB} MiB needed",
                    hint=HINT,
                )
        if self.force:
            old = {str(p) for p in external_links(self.datadir).values()}
            self.orphaned = sorted(old - {str(m.dest) for m in self.moves})

    def __enter__(self) -> ExternalFiles:
        return self

    def place(self) -> None:
        """Put each file at its destination (a replaced one beside it, under a private
        name), never over a file, what a killed restore of ours left there removed first
        (directories made as needed, owned by the owner, 0700; the file owned so and 0660
        before it is there), and write its ``.isl`` into the prepared copy."""
        for move in self.moves:
            self._mkdirs(move.dest.parent)
            for left in leftovers(move.dest):
                left.unlink(missing_ok=True)
            _place_file(move.table.file, move.incoming or move.dest, self.owner)
            move.placed = True
            (self.data / f"{move.table.rel}.isl").write_bytes(os.fsencode(str(move.dest)))

    def installing(self) -> None:
        """DIR is about to change: each replaced file is linked aside and the new one
        renamed over it. From here a failure no longer removes what was placed."""
        for move in self.moves:
            if move.incoming is not None and move.aside is not None:
                os.link(move.dest, move.aside)
                move.incoming.rename(move.dest)
                move.swapped = True
        self._installing = True

    def commit(self) -> None:
        """DIR is installed: the replaced files go, unless some process's descriptors
        could not be read (kept then, and said)."""
        kept = []
        for move in self.moves:
            if move.aside is None:
                continue
            if move.unseen:
                move.aside.unlink(missing_ok=True)
            else:
                kept.append(str(move.aside))
        if kept:
            log.warning(
                "restore.replaced_files_kept",
                files=kept,
                note="not every process's open files could be read (run as root to check): "
                "delete these once no server uses them",
            )
        if self.orphaned:
            log.warning(
                "restore.external_files_left",
                files=self.orphaned,
                note="the replaced datadir's .isl files named these and the backup has no "
                "such table; delete them once no server uses them (a CREATE TABLE ... DATA "
                "DIRECTORY of that name there fails while they exist)",
            )
        if self.moves:
            log.warning(
                "restore.data_directory",
                tables=self.tables,
                note="these tables were created with DATA DIRECTORY; their files are there, "
                "outside the datadir, each named by its .isl",
            )
        moved = sorted(m.table.rel for m in self.moves if "#SP#" in m.table.rel.upper())
        if self.root is not None and moved:
            log.warning(
                "restore.subpartitions_elsewhere",
                tables=moved,
                note="these subpartitions' .frm still names the source's DATA DIRECTORY: a "
                "copying ALTER of their table on the restored server writes its new files "
                "there, not under --external-dir (MariaDB 10.11)",
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
            kept = [str(m.aside) for m in self.moves if m.aside and os.path.lexists(m.aside)]
            if kept:
                log.warning("restore.replaced_files_kept", files=kept)
            return
        for move in reversed(self.moves):
            if move.swapped and move.aside is not None:
                move.aside.rename(move.dest)  # the replaced file back
            elif move.placed:
                (move.incoming or move.dest).unlink(missing_ok=True)
        for made in reversed(self.created):
            with contextlib.suppress(OSError):
                made.rmdir()

    def _mkdirs(self, path: Path) -> None:
        missing = []
        current = path
        while not os.path.lexists(current):
            missing.append(current)
            current = current.parent
        for made in reversed(missing):
            made.mkdir(mode=DIR_MODE)
            self.created.append(made)
            os.lchown(made, self.owner.uid, self.owner.gid)


def _place_file(source: Path, dest: Path, owner: Owner) -> None:
    """``source`` (in the private work area) to ``dest``, owned by ``owner``, 0660: a hard
    link then the source unlinked on one filesystem, else a synced copy under a private
    name linked into place. Never over a file: one that appeared at ``dest`` since the
    check is UsageError."""
    os.lchown(source, owner.uid, owner.gid)
    source.chmod(FILE_MODE)
    try:
        _link_new(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
    else:
        source.unlink()
        _sync_directory(dest.parent)
        return
    partial = dest.with_name(f"{dest.name}{PARTIAL}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 8 * MiB)
            out.flush()
            os.fchown(out.fileno(), owner.uid, owner.gid)
            os.fchmod(out.fileno(), FILE_MODE)
            os.fsync(out.fileno())
        _link_new(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    source.unlink()
    _sync_directory(dest.parent)


def _link_new(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except FileExistsError:
        raise UsageError(f"{dest} appeared during the restore; nothing there was replaced",
                         hint=HINT) from None  # fmt: skip


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
