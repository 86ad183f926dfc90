"""Store URLs: ``s3://bucket[/prefix]`` and ``file:///absolute/path``.

:func:`open_store` validates the URL and returns the matching :class:`ObjectStore`; a bad
URL raises :class:`~datatier.errors.UsageError` naming the URL (credentials in it redacted)
and the problem. Opening does no I/O; call ``store.check()`` to probe the store.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from datatier.errors import UsageError
from datatier.storage.base import ObjectStore
from datatier.storage.local import LocalStore

if TYPE_CHECKING:
    from datatier.storage.s3settings import S3Settings

SCHEMES = ("s3", "file")
# S3 bucket naming rules (general purpose buckets): 3-63 chars, lower case, digits, '.', '-'.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@``."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1***@", url)


def open_store(url: str, s3_settings: S3Settings | None = None) -> ObjectStore:
    """The store for ``url``; ``s3_settings`` applies to ``s3://`` URLs only."""
    scheme, where, prefix = parse_store_url(url)
    if scheme == "s3":
        from datatier.storage.s3 import S3Store  # lazy: botocore costs ~0.1 s to import

        return S3Store(where, prefix, s3_settings)
    return LocalStore(Path(where))


def parse_store_url(url: str) -> tuple[str, str, str]:
    """``("s3", bucket, prefix)`` or ``("file", absolute path, "")``; UsageError naming the
    URL (credentials redacted) and the problem. No I/O."""

    def bad(problem: str) -> UsageError:
        return UsageError(f"bad store URL {redact_url(url)!r}: {problem}")

    if not url or url != url.strip():
        raise bad("empty or surrounded by spaces")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise bad(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise bad("use s3://bucket/prefix or file:///absolute/path")
    if parts.query or parts.fragment:
        raise bad("query strings and fragments are not allowed")
    if "@" in parts.netloc:
        raise bad("credentials do not belong in the URL; use the [s3] settings")

    if scheme == "s3":
        bucket = parts.netloc
        if not bucket:
            raise bad("missing bucket name")
        if not _BUCKET.match(bucket) or ".." in bucket or _IP_LIKE.match(bucket):
            raise bad(f"{bucket!r} is not a valid S3 bucket name")
        prefix = parts.path.strip("/")
        if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
            raise bad("the prefix has an empty, '.' or '..' segment")
        return "s3", bucket, prefix

    if parts.netloc not in ("", "localhost"):
        raise bad("a file URL needs an absolute path: file:///path (three slashes)")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise bad("the path must be absolute")
    if any(seg in (".", "..") for seg in path.split("/")):
        raise bad("the path has a '.' or '..' segment")
    if path.rstrip("/") == "":
        raise bad("refusing to use the filesystem root as a store")
    return "file", path, ""
