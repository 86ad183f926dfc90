"""Object storage behind one contract: :class:`ObjectStore` (S3, local directory).

Open a store from a URL with :func:`open_store`; see :mod:`datatier.storage.base` for the
contract and :mod:`datatier.storage.s3` / :mod:`datatier.storage.local` for the backends.
"""

from typing import TYPE_CHECKING, Any

from datatier.storage.base import (
    IncompleteUpload,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    RestoreState,
    RestoreTier,
    StorageClass,
)
from datatier.storage.url import open_store

if TYPE_CHECKING:
    from datatier.storage.s3 import S3Settings


def __getattr__(name: str) -> Any:
    """``S3Settings`` is imported on first use: botocore is slow to import and most commands
    (health, cache, replication) never touch S3."""
    if name == "S3Settings":
        from datatier.storage.s3 import S3Settings

        return S3Settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "IncompleteUpload",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "RestoreState",
    "RestoreTier",
    "S3Settings",
    "StorageClass",
    "open_store",
]
