"""Verified local copies of stored objects: every object is read from the store once.

A restore must prove every object intact before it applies any (a corrupt object found
midway would leave a half-restored database), and should not read the store twice to do so
(S3 requests and egress cost money; archived objects are slow). :func:`stage` downloads the
objects in parallel into a private directory, hashing as they stream to disk, and returns
only when every one matched its size and SHA-256; the apply phase then reads the local copies.
Free space is checked first. The directory is removed when the :class:`Staged` is closed,
also after a failure. :func:`verify_objects` makes the same checks, in parallel too, without
keeping the bytes (``backups verify``).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from datatier.errors import IntegrityFailure, UsageError
from datatier.pipeline.compress import decompress
from datatier.storage.base import MiB, ObjectNotFound, ObjectStore

HEADROOM = 64 * MiB
"""Free space kept beyond the objects themselves."""


@dataclass(frozen=True)
class Wanted:
    """An object to stage: its key and what it must be."""

    key: str
    size: int
    sha256: str


class Staged:
    """Verified copies under a private directory; a context manager that removes them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._paths: dict[str, Path] = {}
        self._urls: dict[str, str] = {}

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def path(self, key: str) -> Path:
        return self._paths[key]

    def name(self, key: str) -> str:
        """``key`` as people read it: its store's URL and the key."""
        return f"{self._urls[key]}/{key}"

    def read(self, key: str, chunk_size: int = MiB) -> Iterator[bytes]:
        """The staged (compressed) bytes of ``key``."""
        with self._paths[key].open("rb") as src:
            while chunk := src.read(chunk_size):
                yield chunk

    def decompressed(self, key: str) -> Iterator[bytes]:
        """The staged object, zstd-decompressed (IntegrityFailure on a corrupt frame)."""
        return decompress(self.read(key), name=self.name(key))


def stage(
    store: ObjectStore,
    objects: Sequence[Wanted],
    *,
    directory: Path | None = None,
    jobs: int = 4,
    on_object: Callable[[str, int], None] | None = None,
) -> Staged:
    """Download and check every object of ``objects``; the first bad one raises
    IntegrityFailure naming it (missing, truncated, replaced or corrupt) and nothing stays
    on disk. UsageError, before any download, when ``directory`` lacks the space."""
    return stage_from([(store, objects)], directory=directory, jobs=jobs, on_object=on_object)


def stage_from(
    groups: Sequence[tuple[ObjectStore, Sequence[Wanted]]],
    *,
    directory: Path | None = None,
    jobs: int = 4,
    on_object: Callable[[str, int], None] | None = None,
) -> Staged:
    """:func:`stage` for objects of several stores, into one directory (keys unique)."""
    parent = directory or Path(tempfile.gettempdir())
    count = sum(len(objects) for _, objects in groups)
    total = sum(o.size for _, objects in groups for o in objects)
    free = shutil.disk_usage(parent).free
    if free < total + HEADROOM:
        raise UsageError(
            f"not enough space to stage {count} objects ({total // MiB} MiB) in "
            f"{parent}: {free // MiB} MiB free",
            hint="free space there, or name another directory (--staging-dir)",
        )
    staged = Staged(Path(tempfile.mkdtemp(prefix="datatier-restore-", dir=parent)))
    try:
        work: list[tuple[ObjectStore, Wanted]] = []
        for store, objects in groups:
            for wanted in objects:
                staged._paths[wanted.key] = staged.root / f"{len(staged._paths):06d}.obj"
                staged._urls[wanted.key] = store.url
                work.append((store, wanted))
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="stage") as pool:
            futures = [
                pool.submit(_fetch, store, w, staged.path(w.key), on_object) for store, w in work
            ]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    except BaseException:
        staged.close()
        raise
    return staged


def verify_objects(
    store: ObjectStore,
    objects: Sequence[Wanted],
    *,
    jobs: int = 4,
    on_object: Callable[[str, int], None] | None = None,
) -> int:
    """Read every object of ``objects`` and check its size and SHA-256 as :func:`stage`
    does (``jobs`` at a time, the same checks and messages), keeping nothing. The first bad
    object *in the order given* raises IntegrityFailure naming it; ``on_object(key, size)``
    is called in that order too. Returns the bytes checked."""
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="verify") as pool:
        futures = [pool.submit(_check, store, wanted, None) for wanted in objects]
        try:
            for wanted, future in zip(objects, futures, strict=True):
                future.result()
                if on_object:
                    on_object(wanted.key, wanted.size)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return sum(o.size for o in objects)


def _fetch(
    store: ObjectStore, wanted: Wanted, path: Path, on_object: Callable[[str, int], None] | None
) -> None:
    with path.open("wb") as out:
        _check(store, wanted, out.write)
    if on_object:
        on_object(wanted.key, wanted.size)


def _check(store: ObjectStore, wanted: Wanted, write: Callable[[bytes], object] | None) -> None:
    """Read ``wanted`` from ``store`` (passing its bytes to ``write``); IntegrityFailure
    naming it unless it is there with its size and SHA-256."""
    name = f"{store.url}/{wanted.key}"
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in store.iter_read(wanted.key):
            size += len(chunk)
            if size > wanted.size:
                raise IntegrityFailure(f"{name}: longer than the expected {wanted.size} bytes")
            digest.update(chunk)
            if write is not None:
                write(chunk)
    except ObjectNotFound:
        raise IntegrityFailure(f"{name} is missing") from None
    if size != wanted.size:
        raise IntegrityFailure(f"{name}: truncated: {size} bytes, expected {wanted.size}")
    if digest.hexdigest() != wanted.sha256.strip().lower():
        raise IntegrityFailure(f"{name}: SHA-256 mismatch (corrupt object)")
