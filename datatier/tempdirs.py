"""Private temporary directories that a process holds while it lives, so a killed one's are
told from a running one's and swept.

A directory made by :func:`held_directory` (or marked by :func:`hold`) holds a file,
``HELD``, on which its process keeps an exclusive ``flock``. The kernel drops the lock when
the process dies, however it dies (SIGKILL, the OOM killer), so one no process holds is a
dead one's: :func:`sweep_dead` removes those, and :func:`held_directory` sweeps its prefix
in its parent before it makes a new one (the next run with the same temp directory, or the
same ``--scratch-dir`` or ``--staging-dir``, sweeps). What such directories hold (decrypted
copies, a scratch server's options with a key file's password, a backup's work files) never
outlives that next run. Directories without ``HELD`` (older releases', or one caught between
its creation and its hold) are left alone: a sweep never removes a live process's work.

``HELD`` goes last when a directory is removed, so a removal cut short (a sweep killed in
turn) leaves a directory the next sweep still recognises. Only a regular ``HELD`` file owned
by this user counts: another local user cannot make a sweep hang (a FIFO) or follow a link.
Local filesystems only: on NFS or CIFS ``flock`` is emulated with per-process POSIX locks,
and a second held directory in the same process would take the first for a dead one's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

HELD = ".held"


def hold(root: Path) -> int:
    """A descriptor holding ``root/HELD`` locked (close it to let go). The name appears
    only once locked, so a sweep never takes a directory still being set up. Descriptors are
    not inherited (PEP 446): a child that outlives the process does not keep the hold."""
    fd, temporary = tempfile.mkstemp(prefix=".holding-", dir=root)
    fcntl.flock(fd, fcntl.LOCK_EX)
    Path(temporary).rename(root / HELD)
    return fd


def remove(root: Path) -> None:
    """Remove ``root``, its ``HELD`` file last (see the module docstring); what cannot be
    removed is left."""
    with contextlib.suppress(OSError):
        for entry in root.iterdir():
            if entry.name == HELD:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
    with contextlib.suppress(OSError):
        (root / HELD).unlink()
    with contextlib.suppress(OSError):
        root.rmdir()


def _held_by_nobody(entry: Path) -> int | None:
    """An open descriptor locking ``entry/HELD`` when ``entry`` is a real directory, its
    ``HELD`` a regular file of this user and no process holds it; else None."""
    try:
        if not stat.S_ISDIR(entry.lstat().st_mode):
            return None
        fd = os.open(entry / HELD, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)  # a running process holds it
        return None
    return fd


def sweep_dead(parent: Path, prefix: str) -> list[Path]:
    """Remove the directories ``parent/prefix*`` whose process died (see ``HELD``); the
    ones removed whole. Those a running process holds, those without a ``HELD`` file of this
    user and what this user may not remove are left."""
    swept = []
    for entry in parent.glob(f"{prefix}*"):
        fd = _held_by_nobody(entry)
        if fd is None:
            continue
        try:
            remove(entry)
        finally:
            os.close(fd)
        if not entry.exists():
            swept.append(entry)
    return swept


@contextlib.contextmanager
def held_directory(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """A private (0700) directory ``parent/prefix*`` (default: the temp directory), held
    for the block and removed after it; dead ones of the same prefix are swept first."""
    where = parent or Path(tempfile.gettempdir())
    sweep_dead(where, prefix)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
    fd = hold(root)
    try:
        yield root
    finally:
        remove(root)
        os.close(fd)
