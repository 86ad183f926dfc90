"""Streaming stages for backup data: zstd compression and SHA-256 digest/verification
(age encryption: :mod:`datatier.pipeline.encrypt`; verified local copies:
:mod:`datatier.pipeline.staging`).

Every stage maps an iterator of byte chunks to another, in bounded memory, so a backup is
``store.put_stream(key, Digester(compress(dump_chunks)))`` and a restore is
``read_verified(store, key, size=..., sha256=..., decompress=True)``.
"""

from datatier.pipeline.compress import compress, decompress
from datatier.pipeline.digest import Digester, read_verified, verify, verify_object

__all__ = ["Digester", "compress", "decompress", "read_verified", "verify", "verify_object"]
