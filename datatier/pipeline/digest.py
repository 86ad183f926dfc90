"""Byte counting, SHA-256 and verification as pass-through stages over chunk iterators.

:class:`Digester` measures what flows through it (size, SHA-256) for the manifest.
:func:`verify` and :func:`read_verified` check a stream against those values and raise
:class:`~datatier.errors.IntegrityFailure` naming the object when they differ. Chunks are
yielded as they arrive, so data is only *proven* good once the iterator is exhausted
without error; use :func:`verify_object` to check an object before using any of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from datatier.errors import IntegrityFailure
from datatier.pipeline.compress import decompress as zstd_decompress
from datatier.storage.base import ObjectStore


class Digester:
    """Iterate over it to pass ``chunks`` through unchanged while counting and hashing.

    ``size`` and ``sha256`` (hex) describe the bytes seen so far; ``complete`` turns True
    when the source is exhausted. Single use: a second iteration raises RuntimeError.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._hash = hashlib.sha256()
        self._started = False
        self.size = 0
        self.complete = False

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a Digester can only be iterated once")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
            yield chunk
        self.complete = True

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes seen so far (of the whole stream once ``complete``)."""
        return self._hash.hexdigest()


def verify(chunks: Iterable[bytes], *, name: str, size: int, sha256: str) -> Iterator[bytes]:
    """Yield ``chunks`` unchanged; IntegrityFailure when they are not ``size`` bytes with
    SHA-256 ``sha256`` (raised as soon as the stream is too long, else at its end)."""
    expected = sha256.strip().lower()
    digest = hashlib.sha256()
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > size:
            raise IntegrityFailure(f"{name}: longer than the expected {size} bytes")
        digest.update(chunk)
        yield chunk
    if seen != size:
        raise IntegrityFailure(f"{name}: truncated: {seen} bytes, expected {size}")
    if digest.hexdigest() != expected:
        raise IntegrityFailure(
            f"{name}: SHA-256 mismatch: got {digest.hexdigest()[:16]}..., "
            f"expected {expected[:16]}..."
        )


def read_verified(
    store: ObjectStore,
    key: str,
    *,
    size: int,
    sha256: str,
    decompress: bool = False,
    chunk_size: int = ObjectStore.DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Stream ``key`` from ``store`` checking the stored bytes' size and SHA-256, then
    (``decompress=True``) zstd-decompress them, which also catches corrupt/truncated frames."""
    name = f"{store.url}/{key}"
    stream = verify(store.iter_read(key, chunk_size), name=name, size=size, sha256=sha256)
    return zstd_decompress(stream, name=name) if decompress else stream


def verify_object(store: ObjectStore, key: str, *, size: int, sha256: str) -> None:
    """Read all of ``key`` and check it; returns only if it is intact."""
    for _ in read_verified(store, key, size=size, sha256=sha256):
        pass
