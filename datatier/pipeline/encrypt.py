"""age encryption as streaming stages (X25519 recipients), with pyrage (the ``age`` crate).

Data objects are compressed, then encrypted: a stored ``*.zst.age`` object is a standard age
v1 file, so ``age -d -i KEY OBJECT | zstd -d`` gives the plain data back. The *plaintext*
of an object is what age decrypts to (the zstd stream); its size and SHA-256 are recorded
beside those of the stored bytes.

* :func:`seal` encrypts a list of byte chunks, consuming the list as it reads it, so an
  object is held about once (plus one 64 KiB age chunk) while it turns into ciphertext.
* :func:`unseal_into` decrypts a stream of chunks into a binary file, hashing the plaintext.
  Any failure raises :class:`Unsealable`; ``no_key`` tells "none of the identities opens
  the header" from a corrupt or truncated body (age authenticates every 64 KiB chunk).
* Keys: :func:`parse_recipients` (public ``age1...`` keys) and :func:`parse_identities`
  (an age identity file: ``AGE-SECRET-KEY-1...`` lines, ``#`` comments, several keys).
  Errors name a position, never the secret text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from io import BufferedIOBase
from typing import BinaryIO, cast

import pyrage
from pyrage import x25519

SUFFIX = ".age"
"""Appended to the key of every encrypted object (``data-00001.sql.zst.age``)."""
METHOD = "age"
"""The manifest's name for the format (age v1, X25519 recipients)."""
_NO_KEY = "No matching keys found"


@dataclass(frozen=True)
class Recipients:
    """Public keys new objects are encrypted to (any one of their identities opens them)."""

    keys: tuple[str, ...]
    parsed: tuple[x25519.Recipient, ...]


def parse_recipients(keys: Sequence[str]) -> Recipients:
    """``keys`` as age X25519 recipients; ValueError naming the first bad one (public
    keys are not secret) or saying there are none."""
    if not keys:
        raise ValueError("no recipients")
    parsed = []
    for i, key in enumerate(keys):
        try:
            parsed.append(x25519.Recipient.from_str(key.strip()))
        except (pyrage.RecipientError, ValueError):
            shown = "a private key" if "SECRET-KEY" in key.upper() else repr(key)
            raise ValueError(f"[{i}] {shown} is not an age X25519 public key (age1...)") from None
    canonical = tuple(str(r) for r in parsed)
    if len(set(canonical)) != len(canonical):
        raise ValueError("the same recipient is listed twice")
    return Recipients(canonical, tuple(parsed))


@dataclass(frozen=True)
class Identities:
    """Private keys a restore may use, and the public key of each (``public[i]``)."""

    parsed: tuple[x25519.Identity, ...]
    public: tuple[str, ...]

    def opening(self, recipients: Iterable[str]) -> list[str]:
        """Our public keys among ``recipients``: the identities that open such objects."""
        wanted = set(recipients)
        return [key for key in self.public if key in wanted]


def parse_identities(text: str) -> Identities:
    """An age identity file's keys (one per line; blank lines and ``#`` comments skipped;
    whitespace also separates keys, for an environment variable). ValueError naming the
    line of a bad entry, never its text, or saying there is none."""
    parsed: list[x25519.Identity] = []
    commented = 0  # the first comment line holding a private key
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line.startswith("#") and "AGE-SECRET-KEY-" in line.upper():
            commented = commented or number
        if not line or line.startswith("#"):
            continue
        for word in line.split():
            try:
                parsed.append(x25519.Identity.from_str(word))
            except (pyrage.IdentityError, ValueError):
                raise ValueError(
                    f"line {number} is not an age X25519 identity (AGE-SECRET-KEY-1...)"
                ) from None
    if not parsed and commented:  # age-keygen's lines joined into one, say
        raise ValueError(
            f"it holds no identity: line {commented} is a comment holding a private key "
            "(lines joined into one?); give the key on a line of its own"
        )
    if not parsed:
        raise ValueError("it holds no identity")
    return Identities(tuple(parsed), tuple(str(i.to_public()) for i in parsed))


@dataclass
class Sealed:
    """An encrypted object: its ciphertext chunks and what its plaintext was."""

    chunks: list[bytes]
    plain_size: int
    plain_sha256: str


def seal(chunks: list[bytes], recipients: Recipients) -> Sealed:
    """Encrypt the concatenation of ``chunks`` to ``recipients``. ``chunks`` is emptied
    first and each chunk released once read, so the object is not held twice."""
    source = _Source(chunks)
    chunks.clear()
    sink = _ListSink()
    keys: list[x25519.Recipient] = list(recipients.parsed)
    pyrage.encrypt_io(cast("BufferedIOBase", source), cast("BufferedIOBase", sink), [*keys])
    return Sealed(sink.chunks, source.size, source.digest.hexdigest())


class Unsealable(Exception):
    """An object cannot be decrypted: ``no_key`` when no identity opens its header."""

    def __init__(self, reason: str, *, no_key: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.no_key = no_key


def unseal_into(chunks: Iterable[bytes], out: BinaryIO, identities: Identities) -> tuple[int, str]:
    """Decrypt the age stream ``chunks`` into ``out``; (plaintext size, SHA-256 hex).

    An exception raised while reading ``chunks`` (the store failing, say) propagates as
    itself; a decryption failure raises :class:`Unsealable`. ``out`` may then hold part of
    the plaintext: the caller discards it."""
    keys: list[x25519.Identity] = list(identities.parsed)
    source = _IterSource(chunks)
    sink = _FileSink(out)
    try:
        pyrage.decrypt_io(cast("BufferedIOBase", source), cast("BufferedIOBase", sink), [*keys])
    except (pyrage.DecryptError, OSError, ValueError) as exc:
        failure = source.error or sink.error
        if failure is not None:
            raise failure from None
        reason = str(exc) or type(exc).__name__
        raise Unsealable(reason, no_key=_NO_KEY in reason) from None
    if source.error is not None:
        raise source.error
    return sink.size, sink.digest.hexdigest()


class _Source:
    """``read(n)`` over a list of chunks (taken over, released as read), hashing them."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._pending = chunks[::-1]  # popped from the end: O(1) per chunk
        self._view = memoryview(b"")
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._view:
            if not self._pending:
                return b""
            chunk = self._pending.pop()
            self.digest.update(chunk)
            self.size += len(chunk)
            self._view = memoryview(chunk)
        take = len(self._view) if size < 0 else min(size, len(self._view))
        out = bytes(self._view[:take])
        self._view = self._view[take:]
        return out


class _IterSource:
    """``read(n)`` over an iterator of chunks. An exception from the iterator is kept in
    ``error`` and reads as end of data (pyrage would replace it by an I/O error)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._view = memoryview(b"")
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._view:
            if self.error is not None:
                return b""
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:  # re-raised by unseal_into
                self.error = exc
                return b""
            if chunk is None:
                return b""
            self._view = memoryview(chunk)
        take = len(self._view) if size < 0 else min(size, len(self._view))
        out = bytes(self._view[:take])
        self._view = self._view[take:]
        return out


class _ListSink:
    """``write`` appending to a list of chunks."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


class _FileSink:
    """``write`` into a binary file, counting and hashing; a write error is kept in
    ``error`` (re-raised by :func:`unseal_into`)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        try:
            self._out.write(data)
        except BaseException as exc:  # kept: pyrage would report it as an I/O error
            self.error = exc
            raise
        return len(data)

    def flush(self) -> None:
        pass
