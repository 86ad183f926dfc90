"""Verified local copies of stored objects: every object is read from the store once.

A restore must prove every object intact before it applies any (a corrupt object found
midway would leave a half-restored database), and should not read the store twice to do so
(S3 requests and egress cost money; archived objects are slow). :func:`stage` downloads the
objects in parallel (``jobs`` large ones at once and more small ones, see
:mod:`datatier.pipeline.lanes`) into a private directory, hashing as they stream to disk, and
returns only when every one matched its size and SHA-256; the apply phase then reads the
local copies.
Free space is checked first. The directory is removed when the :class:`Staged` is closed,
also after a failure; one left by a restore that was killed is removed by the next staging
into the same parent (:func:`sweep_dead`). :func:`verify_objects` makes the same checks on
the stored bytes, in parallel too, without keeping them or needing a key (``backups
verify``).

Encrypted objects (age) are decrypted as they stream in, with the identities given: the
local copy is the plaintext (the zstd stream; the directory is private, mode 0700), whose
size and SHA-256 must match the record too. So every engine reads decrypted copies through
:meth:`Staged.decompressed`, and before anything is applied every object has been proven
to open with the key and to be the plaintext the backup wrote: a wrong key, a corrupt,
truncated or replaced ciphertext raises IntegrityFailure naming the object.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from datatier.errors import IntegrityFailure, UsageError
from datatier.pipeline.compress import decompress
from datatier.pipeline.encrypt import Identities, Unsealable, unseal_into
from datatier.pipeline.lanes import Lanes
from datatier.storage.base import MiB, ObjectNotFound, ObjectStore
from datatier.tempdirs import hold, remove, sweep_dead

HEADROOM = 64 * MiB
"""Free space kept beyond the objects themselves."""


@dataclass(frozen=True)
class Wanted:
    """An object to stage: its key and what it must be (stored bytes; for an encrypted
    object, also its plaintext)."""

    key: str
    size: int
    sha256: str
    plain_size: int | None = None
    plain_sha256: str | None = None


class Staged:
    """Verified copies under a private directory; a context manager that removes them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._paths: dict[str, Path] = {}
        self._urls: dict[str, str] = {}
        self._held = hold(root)

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        remove(self.root)
        if self._held >= 0:
            os.close(self._held)
            self._held = -1

    def path(self, key: str) -> Path:
        return self._paths[key]

    def name(self, key: str) -> str:
        """``key`` as people read it: its store's URL and the key."""
        return f"{self._urls[key]}/{key}"

    def read(self, key: str, chunk_size: int = MiB) -> Iterator[bytes]:
        """The staged (compressed, decrypted) bytes of ``key``."""
        with self._paths[key].open("rb") as src:
            while chunk := src.read(chunk_size):
                yield chunk

    def decompressed(self, key: str) -> Iterator[bytes]:
        """The staged object, decrypted and zstd-decompressed (IntegrityFailure on a corrupt
        frame, with ``key`` in its ``details["key"]``)."""
        try:
            yield from decompress(self.read(key), name=self.name(key))
        except IntegrityFailure as exc:
            exc.details.setdefault("key", key)
            raise


PREFIX = "datatier-restore-"
"""A staging directory's prefix: held while its restore lives (:mod:`datatier.tempdirs`), so
a dead restore's, which may hold decrypted plaintext, is swept by the next staging into the
same parent."""


def stage(
    store: ObjectStore,
    objects: Sequence[Wanted],
    *,
    directory: Path | None = None,
    jobs: int = 4,
    on_object: Callable[[str, int], None] | None = None,
    identities: Identities | None = None,
) -> Staged:
    """Download and check every object of ``objects`` (decrypting encrypted ones with
    ``identities``); the first bad one raises IntegrityFailure naming it (missing,
    truncated, replaced, corrupt or not opened by the key) and nothing stays on disk.
    UsageError, before any download, when ``directory`` lacks the space or an object is
    encrypted and no identity is given."""
    return stage_from(
        [(store, objects)],
        directory=directory,
        jobs=jobs,
        on_object=on_object,
        identities=identities,
    )


def stage_from(
    groups: Sequence[tuple[ObjectStore, Sequence[Wanted]]],
    *,
    directory: Path | None = None,
    jobs: int = 4,
    on_object: Callable[[str, int], None] | None = None,
    identities: Identities | None = None,
) -> Staged:
    """:func:`stage` for objects of several stores, into one directory (keys unique). An
    IntegrityFailure carries the bad object's key in ``details["key"]``."""
    if identities is None:
        sealed = next((w for _, objects in groups for w in objects if w.plain_sha256), None)
        if sealed is not None:
            raise UsageError(f"{sealed.key} is encrypted and no age identity was given")
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
    sweep_dead(parent, PREFIX)
    staged = Staged(Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent)))
    try:
        work: list[tuple[ObjectStore, Wanted]] = []
        for store, objects in groups:
            for wanted in objects:
                staged._paths[wanted.key] = staged.root / f"{len(staged._paths):06d}.obj"
                staged._urls[wanted.key] = store.url
                work.append((store, wanted))
        with Lanes("stage", jobs) as lanes:
            futures = [
                lanes.submit(w.size, _fetch, store, w, staged.path(w.key), identities, on_object)
                for store, w in work
            ]
            try:
                for (_, wanted), future in zip(work, futures, strict=True):
                    try:
                        future.result()
                    except IntegrityFailure as exc:
                        exc.details.setdefault("key", wanted.key)
                        raise
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
    """Read every object of ``objects`` and check its stored size and SHA-256 as
    :func:`stage` does (``jobs`` at a time, the same checks and messages), keeping nothing and
    decrypting nothing (no key needed). The first bad object *in the order given* raises
    IntegrityFailure naming it; ``on_object(key, size)`` is called in that order too. Returns
    the bytes checked."""
    with Lanes("verify", jobs) as lanes:
        futures = [lanes.submit(wanted.size, _check, store, wanted) for wanted in objects]
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


def _check(store: ObjectStore, wanted: Wanted) -> None:
    """IntegrityFailure naming ``wanted`` unless it is in ``store`` with its size and
    SHA-256 (of the stored bytes)."""
    name = f"{store.url}/{wanted.key}"
    source = _Measured(store.iter_read(wanted.key), name, wanted.size)
    try:
        for _ in source:
            pass
    except ObjectNotFound:
        raise IntegrityFailure(f"{name} is missing") from None
    _check_stored(source, wanted, name)


def _check_stored(source: _Measured, wanted: Wanted, name: str) -> None:
    if source.size != wanted.size:
        raise IntegrityFailure(f"{name}: truncated: {source.size} bytes, expected {wanted.size}")
    if source.digest.hexdigest() != wanted.sha256.strip().lower():
        raise IntegrityFailure(f"{name}: SHA-256 mismatch (corrupt object)")


def _fetch(
    store: ObjectStore,
    wanted: Wanted,
    path: Path,
    identities: Identities | None,
    on_object: Callable[[str, int], None] | None,
) -> None:
    name = f"{store.url}/{wanted.key}"
    source = _Measured(store.iter_read(wanted.key), name, wanted.size)
    plain: tuple[int, str] | None = None
    failure: Unsealable | None = None
    try:
        with path.open("wb") as out:
            if wanted.plain_sha256 is None:
                for chunk in source:
                    out.write(chunk)
            else:
                assert identities is not None  # stage_from refused that
                try:
                    plain = unseal_into(source, out, identities)
                except Unsealable as exc:
                    failure = exc
                for _ in source:  # the rest, to tell corruption from a key problem
                    pass
    except ObjectNotFound:
        raise IntegrityFailure(f"{name} is missing") from None
    _check_stored(source, wanted, name)
    if failure is not None and failure.no_key:
        raise IntegrityFailure(
            f"{name}: none of the identities opens it, though its record names one of their "
            "keys: the object was replaced by one encrypted to another key"
        )
    if failure is not None:
        raise IntegrityFailure(f"{name}: cannot be decrypted ({failure.reason}): corrupt object")
    if plain is not None and plain != (wanted.plain_size, wanted.plain_sha256):
        raise IntegrityFailure(
            f"{name}: the decrypted data is not what the backup wrote (plaintext size or "
            "SHA-256 mismatch): the object was replaced"
        )
    if on_object:
        on_object(wanted.key, source.size)


class _Measured:
    """Iterate once to pass ``chunks`` through, counting and hashing them; IntegrityFailure
    as soon as there are more than ``limit`` bytes."""

    def __init__(self, chunks: Iterable[bytes], name: str, limit: int) -> None:
        self._chunks = iter(chunks)
        self._name = name
        self._limit = limit
        self.digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._chunks)
        self.size += len(chunk)
        if self.size > self._limit:
            raise IntegrityFailure(f"{self._name}: longer than the expected {self._limit} bytes")
        self.digest.update(chunk)
        return chunk
