"""How :class:`~datatier.storage.local.LocalStore` names objects on disk: every key segment
as a file or directory name, reversibly, whatever the segment.

Most segments are used as they are, so a person can find and ``zstd -d`` an object by its
key. A segment that would pass for one of the store's own files (it starts with
``.datatier-``) or is longer than :data:`MAX_SEGMENT` bytes (file names hold 255 bytes, and
the temp and sidecar files add affixes) is stored as ``.datatier-h.<40 hex digits of its
SHA-256>``, and the segment itself is kept in ``.datatier-name.<the same hex>`` beside it,
written before the entry it names. A stored literal name never starts with ``.datatier-``,
so a hashed name and a literal one cannot collide; two segments whose hashes collide are
caught (the name file disagrees) and refused. Object keys themselves are unchanged.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from contextlib import suppress
from pathlib import Path

from datatier.errors import OperationFailed

RESERVED = ".datatier-"
TMP = ".datatier-tmp."
META = ".datatier-meta."
HASHED = ".datatier-h."
NAME = ".datatier-name."
MAX_SEGMENT = 200  # bytes; leaves room for the temp and sidecar affixes within NAME_MAX


def disk_name(segment: str) -> str:
    """The on-disk name of key segment ``segment``."""
    if segment.startswith(RESERVED) or len(segment.encode()) > MAX_SEGMENT:
        return HASHED + hashlib.sha256(segment.encode()).hexdigest()[:40]
    return segment


def disk_path(root: Path, key: str) -> Path:
    """Where ``key`` (or a key prefix ending at a segment) lives under ``root``."""
    return root.joinpath(*(disk_name(seg) for seg in key.split("/"))) if key else root


def _name_file(directory: Path, disk: str) -> Path:
    return directory / (NAME + disk[len(HASHED) :])


def remember(directory: Path, segment: str) -> None:
    """Record ``segment``'s real name in ``directory`` before its entry is created there
    (no-op for a literal name). OperationFailed on a hash collision."""
    disk = disk_name(segment)
    if not disk.startswith(HASHED):
        return
    target = _name_file(directory, disk)
    try:
        known = target.read_bytes()
    except FileNotFoundError:
        known = None
    if known is not None:
        if known != segment.encode():
            raise OperationFailed(f"{directory}: {disk} already names another key segment")
        return
    tmp = directory / f"{TMP}{secrets.token_hex(4)}.{target.name}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(segment.encode())
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
    finally:
        with suppress(FileNotFoundError):
            tmp.unlink()


def real_name(directory: Path, disk: str) -> str | None:
    """The key segment stored as ``disk`` in ``directory``; None for the store's own files
    and for a hashed entry whose name file is missing (left by a crash: not an object)."""
    if not disk.startswith(RESERVED):
        return disk
    if not disk.startswith(HASHED):
        return None
    try:
        return _name_file(directory, disk).read_bytes().decode()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def forget(directory: Path, disk: str) -> None:
    """Remove the name file of entry ``disk`` once the entry itself is gone."""
    if disk.startswith(HASHED):
        with suppress(FileNotFoundError):
            _name_file(directory, disk).unlink()
