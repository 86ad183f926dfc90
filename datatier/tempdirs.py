"""Private temporary directories that a process holds while it lives, so a killed one's are
told from a running one's and swept.

A directory made by :func:`held_directory` (or marked by :func:`hold`) holds a file,
``HELD``, on which its process keeps an exclusive ``flock``. The kernel drops the lock when
the process dies, however it dies (SIGKILL, the OOM killer), so one no process holds is a
dead one's: :func:`sweep_dead` removes those, and :func:`held_directory` sweeps its prefix
before it makes a new one. What such directories hold (decrypted copies, a scratch server's
options with a key file's password, a backup's work files) never outlives the next run.
Directories without ``HELD`` (older releases', or one caught between its creation and its
hold) are left alone: a sweep never removes a live process's work.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
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


def sweep_dead(parent: Path, prefix: str) -> list[Path]:
    """Remove the directories ``parent/prefix*`` whose process died (see ``HELD``); the
    ones removed. Those a running process holds, those without ``HELD`` and those this user
    may not remove are left."""
    swept = []
    for entry in parent.glob(f"{prefix}*"):
        try:
            fd = os.open(entry / HELD, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a running process holds it
        else:
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                swept.append(entry)
        finally:
            os.close(fd)
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
        shutil.rmtree(root, ignore_errors=True)
        os.close(fd)
