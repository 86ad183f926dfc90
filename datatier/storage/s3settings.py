"""How to reach S3: :class:`S3Settings`, validated when built, without importing botocore
(~0.1 s), so a bad ``[s3]`` setting is refused before a store is opened in the background
(see :mod:`datatier.storage.deferred`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from datatier.errors import UsageError
from datatier.storage.base import GiB, MiB

LOOKUP_ATTEMPTS = 3
"""At most this many attempts per request of a bounded (read-only) store."""
MIN_PART_SIZE = 5 * MiB
"""S3's smallest multipart part (but the last)."""
MAX_PART_SIZE = 5 * GiB
"""S3's largest multipart part."""


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. Credentials None means boto3's default chain (env, profile, role)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    max_attempts: int = 8
    part_size: int = 16 * MiB
    max_concurrency: int = 4
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    server_side_encryption: str | None = "AES256"  # or "aws:kms"; None: ask for none
    kms_key_id: str | None = None
    ca_bundle: str | None = None
    bound: float | None = None
    """Set by :meth:`bounded`: the seconds each request's attempts fit in."""

    def __post_init__(self) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise UsageError(
                f"s3 part_size {self.part_size} is outside S3's limits "
                f"({MIN_PART_SIZE}..{MAX_PART_SIZE} bytes)"
            )
        if self.max_attempts < 1 or self.max_concurrency < 1:
            raise UsageError("s3 max_attempts and max_concurrency must be at least 1")
        if not (self.connect_timeout > 0 and self.read_timeout > 0):
            raise UsageError("s3 connect_timeout and read_timeout must be above 0 seconds")

    def bounded(self, total: float) -> S3Settings:
        """These settings for read-only work: at most :data:`LOOKUP_ATTEMPTS` attempts per
        request, each connect and read timeout cut to ``total / attempts`` seconds (so an
        endpoint that never answers is given up on after ``total`` seconds plus botocore's
        back-off between attempts, a fraction of a second). Never longer than the settings
        themselves."""
        if not total > 0:
            raise UsageError(f"s3 lookup_timeout must be above 0 seconds, got {total!r}")
        attempts = min(self.max_attempts, LOOKUP_ATTEMPTS)
        each = total / attempts
        return replace(
            self,
            max_attempts=attempts,
            connect_timeout=min(self.connect_timeout, each),
            read_timeout=min(self.read_timeout, each),
            bound=total,
        )
