"""The datadir a physical restore writes: one restore at a time, refusals first, then a
private work area inside it.

:func:`check_datadir` refuses (UsageError, exit 2, nothing changed) a path that is not a
directory, a non-empty directory without ``force``, a non-empty directory that does not
look like a MariaDB datadir even with ``force`` (a slip such as ``--datadir /`` or
``$HOME`` would delete it), a directory with a filesystem mounted below it (``force`` would
empty that filesystem, then fail on the mount point), a datadir a running server holds,
or one holding such a datadir (InnoDB's lock on ``ibdata1``; even with ``force``), and a
filesystem without the space.
:class:`WorkArea` extracts and prepares under ``DIR/.datatier-restore-<random suffix>`` (the same
filesystem, so the final move is a rename), and :meth:`WorkArea.install` replaces DIR's
contents only once the datadir is prepared: a failure before leaves DIR as it was. Files
end up owned by the datadir's owner (DIR's owner, else the ``mysql`` user, else us), with
the modes ``mariadbd`` itself uses: directories 0700, files 0660.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import os
import pwd
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from datatier.errors import NotReadyYet, UsageError
from datatier.storage.base import MiB

HEADROOM = 64 * MiB
WORK_PREFIX = ".datatier-restore-"
DIR_MODE = 0o700
FILE_MODE = 0o660
LOCK_DIR = Path("/run/lock")
RESERVED = ".datatier-"  # our work areas and staging: with lost+found, never what DIR is
# What every MariaDB datadir holds at least one of (InnoDB's system tablespace and redo
# log, Aria's control file, the system schema, a prepared backup's checkpoints). Files must
# be files; ``mysql`` must be the system schema (a directory of ``.frm`` files): /var/lib
# and /etc hold a ``mysql`` entry too, and --force would delete all of them.
FILE_MARKS = ("ibdata1", "ib_logfile0", "aria_log_control", "xtrabackup_checkpoints")
SCHEMA_MARK = "mysql"
DATADIR_MARKS = (*FILE_MARKS[:3], f"{SCHEMA_MARK}/ with .frm files", FILE_MARKS[3])


def looks_like_datadir(datadir: Path) -> bool:
    """Whether ``datadir`` holds one of :data:`DATADIR_MARKS`, each of its kind: a file
    mark as a regular file, ``mysql`` as a directory holding a ``.frm`` file (the system
    schema; not a datadir nested one level down, nor a config directory)."""
    if any((datadir / mark).is_file() for mark in FILE_MARKS):
        return True
    schema = datadir / SCHEMA_MARK
    if not schema.is_dir():
        return False
    return any(p.suffix == ".frm" and p.is_file() for p in schema.iterdir())


@dataclass(frozen=True)
class Owner:
    """Who owns the restored files."""

    uid: int
    gid: int

    @property
    def name(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)


def resolve_owner(datadir: Path, spec: str | None = None) -> Owner:
    """``spec`` (``USER[:GROUP]``), else DIR's owner if it exists, else the ``mysql`` user,
    else the current user; UsageError for an unknown user or group."""
    if spec:
        user, _, group = spec.partition(":")
        try:
            entry = pwd.getpwnam(user)
            gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
        except KeyError:
            raise UsageError(f"--owner {spec!r}: no such user or group on this host") from None
        return Owner(entry.pw_uid, gid)
    if datadir.is_dir():
        st = datadir.stat()
        return Owner(st.st_uid, st.st_gid)
    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam("mysql")
        return Owner(entry.pw_uid, entry.pw_gid)
    return Owner(os.geteuid(), os.getegid())


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent (where free space is measured)."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


MOUNTINFO = Path("/proc/self/mountinfo")


def unescape_mount(field: str) -> str:
    """A mountinfo path field with its octal escapes (``\\040`` for a space, ...) undone."""
    raw = field.encode("utf-8", "surrogateescape")
    plain = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8) & 0xFF]), raw)
    return plain.decode("utf-8", "surrogateescape")


def mounts_within(datadir: Path, mountinfo: Path = MOUNTINFO) -> list[Path]:
    """Mount points strictly below ``datadir`` (DIR itself may be one: that is the usual
    dedicated volume), from this process's mount table; none where the table cannot be
    read. Hand-written: five lines of the kernel's documented format, where psutil's
    partition list would be a new dependency that keeps the escapes."""
    try:
        lines = mountinfo.read_text("utf-8", "surrogateescape").splitlines()
    except OSError:
        return []
    top = datadir.resolve()
    found = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = Path(unescape_mount(fields[4]))
        if point != top and point.is_relative_to(top):
            found.append(point)
    return sorted(set(found))


def server_holds(datadir: Path) -> bool:
    """Whether a running server holds ``datadir`` (InnoDB locks ``ibdata1`` while it runs)."""
    system = datadir / "ibdata1"
    if not system.is_file():
        return False
    try:
        fd = os.open(system, os.O_RDONLY)
    except OSError:
        return False
    try:  # a shared lock conflicts with the server's exclusive one; read access suffices
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def held_within(datadir: Path) -> Path | None:
    """The first directory at or below ``datadir`` that a running server holds (a
    ``--force`` restore replaces the whole tree, a live datadir inside it included)."""
    for top, _dirs, files in os.walk(datadir):
        if "ibdata1" in files and server_holds(Path(top)):
            return Path(top)
    return None


def check_datadir(datadir: Path, needed: int, *, force: bool, running_ok: bool = False) -> None:
    """UsageError (nothing changed) unless a restore of ``needed`` bytes may go to
    ``datadir``; see the module docstring. ``running_ok`` skips the running-server check
    (for a plan made before the caller stops that server itself)."""
    if datadir.exists() and not datadir.is_dir():
        raise UsageError(f"--datadir {datadir} exists and is not a directory")
    if not datadir.exists() and not existing_ancestor(datadir.parent).is_dir():
        raise UsageError(f"--datadir {datadir}: no parent directory to create it in")
    if datadir.is_dir():
        busy = "stop that server first; --force never replaces a running server's files"
        if not running_ok and server_holds(datadir):
            raise UsageError(f"--datadir {datadir} is in use by a running server", hint=busy)
        entries = sorted(p.name for p in datadir.iterdir() if not p.name.startswith(WORK_PREFIX))
        if entries and not force:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise UsageError(
                f"--datadir {datadir} is not empty ({len(entries)} entries: {shown})",
                hint="restore into an empty or new directory, or --force to replace its contents",
            )
        held = None if running_ok or not entries else held_within(datadir)
        if held is not None:  # what --force would delete holds a live datadir
            raise UsageError(
                f"--datadir {datadir} is in use by a running server (its datadir {held} is inside)",
                hint=busy,
            )
        mounted = mounts_within(datadir) if entries else []
        if mounted:
            shown = ", ".join(str(m) for m in mounted[:3]) + (", ..." if len(mounted) > 3 else "")
            raise UsageError(
                f"--datadir {datadir} has a filesystem mounted inside it ({shown}); a restore "
                "replaces all of DIR and would delete that filesystem's contents",
                hint="unmount it first, or restore into another --datadir",
            )
        own = [e for e in entries if not e.startswith(RESERVED) and e != "lost+found"]
        if own and not looks_like_datadir(datadir):
            shown = ", ".join(own[:5]) + (", ..." if len(own) > 5 else "")
            raise UsageError(
                f"--datadir {datadir} does not look like a MariaDB datadir (none of "
                f"{', '.join(DATADIR_MARKS)}; it holds {len(own)} entries: {shown}), and "
                "--force would delete all of it",
                hint="check the path; --force replaces only a datadir's contents (empty the "
                "directory yourself if it really is meant to go)",
            )
    where = existing_ancestor(datadir)
    if not os.access(where, os.W_OK | os.X_OK):
        raise UsageError(f"--datadir {datadir}: {where} is not writable by this user")
    free = shutil.disk_usage(where).free
    if free < needed + HEADROOM:
        raise UsageError(
            f"not enough space for the restore in {where}: {free // MiB} MiB free, "
            f"{(needed + HEADROOM) // MiB} MiB needed",
            hint="free space there, or restore into a directory on another filesystem",
        )


@contextlib.contextmanager
def claim_datadir(datadir: Path) -> Iterator[None]:
    """Hold ``datadir`` against other restores on this host for the block (NotReadyYet,
    exit 5, when one holds it; changes nothing in DIR): an exclusive ``flock`` on a lock file
    named by DIR's resolved path, in ``/run/lock`` (one for the host: systemd's PrivateTmp
    gives each service a /tmp of its own), else the temp directory. Two restores into one
    DIR would otherwise delete each other's work area, and the one that created DIR remove
    it on failure, with the other's finished datadir in it."""
    key = hashlib.sha256(str(datadir.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    where = LOCK_DIR if os.access(LOCK_DIR, os.W_OK | os.X_OK) else Path(tempfile.gettempdir())
    path = where / f".datatier-datadir-{key[:32]}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise NotReadyYet(
                f"another restore into {datadir} is running (it holds {path})",
                hint="wait for it to finish, or restore into another --datadir",
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_ino == os.fstat(fd).st_ino:
                break  # not a file a finishing holder unlinked: ours
        os.close(fd)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


class WorkArea:
    """``DIR/.datatier-restore-<random suffix>``: where the chain is extracted and prepared.

    A context manager: on an exception the work area is removed, and DIR too if this
    restore created it, so a failed restore changes nothing.
    """

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.created = False
        self.root: Path | None = None

    def __enter__(self) -> WorkArea:
        if not self.datadir.exists():
            self.datadir.mkdir(parents=True, mode=0o750)
            self.created = True
        self.root = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=self.datadir))
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        if exc_type is not None and self.created:
            shutil.rmtree(self.datadir, ignore_errors=True)

    @property
    def data(self) -> Path:
        """Where the full backup is extracted and every incremental applied."""
        assert self.root is not None
        return self.root / "data"

    def increment(self, number: int) -> Path:
        assert self.root is not None
        return self.root / f"incremental-{number}"

    @property
    def stage(self) -> Path:
        """Beside the copy, outside its datadir: where a replay's server finds the
        ``DATA DIRECTORY`` tables (:class:`~datatier.mysql.physical.external.Stage`)."""
        assert self.root is not None
        return self.root / "external"

    def install(self, owner: Owner, before_changes: Callable[[], None] | None = None) -> None:
        """Replace DIR's contents with the prepared datadir, owned and moded as the
        server expects; ``before_changes`` is called once the last refusal passed, right
        before the first entry of DIR is deleted."""
        assert self.root is not None
        mounted = mounts_within(self.datadir)
        if mounted:  # mounted since the check: refuse before anything is deleted
            raise UsageError(
                f"--datadir {self.datadir} has a filesystem mounted inside it ({mounted[0]}); "
                "nothing was replaced",
                hint="unmount it first, or restore into another --datadir",
            )
        if before_changes is not None:
            before_changes()
        for entry in list(self.datadir.iterdir()):
            if entry == self.root:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for entry in list(self.data.iterdir()):
            entry.rename(self.datadir / entry.name)
        set_ownership(self.datadir, owner)


def set_ownership(datadir: Path, owner: Owner) -> None:
    """Own everything under ``datadir`` by ``owner``; directories 0700, files 0660."""
    for top, dirs, files in os.walk(datadir):
        root = Path(top)
        for name in dirs:
            os.lchown(root / name, owner.uid, owner.gid)
            (root / name).chmod(DIR_MODE)
        for name in files:
            path = root / name
            os.lchown(path, owner.uid, owner.gid)
            if not path.is_symlink():
                path.chmod(FILE_MODE)
    os.chown(datadir, owner.uid, owner.gid)  # DIR itself, through a symlink naming it
