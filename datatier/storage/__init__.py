"""Object storage behind one contract: :class:`ObjectStore` (S3, local directory).

Open a store from a URL with :func:`open_store`; see :mod:`datatier.storage.base` for the
contract and :mod:`datatier.storage.s3` / :mod:`datatier.storage.local` for the backends.
"""

from datatier.storage.base import (
    IncompleteUpload,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    RestoreState,
    RestoreTier,
    StorageClass,
)
from datatier.storage.s3settings import S3Settings  # no botocore: that is imported on use
from datatier.storage.url import open_store

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
