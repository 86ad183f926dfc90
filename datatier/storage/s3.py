"""Amazon S3 (or an S3-compatible server) as an :class:`ObjectStore`, through botocore
(boto3's client layer; boto3 itself would add s3transfer and ~60 ms to every command's start,
for transfer helpers this module does not use).

Small objects go up with one PutObject; larger ones with the bounded-parallel multipart
uploader of :mod:`datatier.storage.s3stream` (memory near ``part_size * (concurrency + 1)``
whatever the object size; the first failure aborts the upload). Every write is then checked:
a PutObject of up to :data:`ETAG_CHECK_MAX` bytes by its reply's ETag, which must be the MD5
of the bytes sent (true of a single PUT in clear or with SSE-S3); anything else by a HEAD
whose size must be the bytes sent. Transient errors (5xx,
throttling, SlowDown) are retried by botocore's ``standard`` retry mode with backoff, up to
``max_attempts`` tries per request; reads that break mid-stream resume with a ranged GET
pinned to the object's ETag. Errors are mapped by :class:`~datatier.storage.s3wire.ErrorMapper`.

Every write (put, multipart upload, re-class copy) asks for server-side encryption
(``server_side_encryption``: AES256, or aws:kms with ``kms_key_id``), so no object is stored
in clear even where the bucket has no default encryption; :meth:`S3Store.encryption_warning`
says when the bucket has none (objects other tools write would be in clear).
``ca_bundle`` verifies the endpoint's TLS certificate against a private CA.

Read-only work (listing, inspecting, a restore's lookup of its backup) opens the store with
:meth:`S3Settings.bounded`: every request then gives up within about ``lookup_timeout``
seconds (an endpoint that accepts connections and never answers would otherwise hold a
command for ``max_attempts`` read timeouts, minutes). Uploads and downloads keep the full
settings: a slow store must not fail a backup. A timeout is ServiceUnavailable (exit 3)
naming the endpoint and the timeout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from datatier.errors import IntegrityFailure, NotReadyYet, OperationFailed, UsageError
from datatier.storage.base import (
    GiB,
    IncompleteUpload,
    MiB,
    ObjectInfo,
    ObjectStore,
    ProgressCallback,
    RestoreState,
    RestoreTier,
    StorageClass,
    TiB,
)
from datatier.storage.s3settings import MAX_PART_SIZE, MIN_PART_SIZE, S3Settings
from datatier.storage.s3stream import (
    S3Object,
    copy_parts,
    cut_parts,
    resumable_read,
    upload_parts,
)
from datatier.storage.s3wire import ErrorMapper, parse_restore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NO_BUCKET_ENCRYPTION = "ServerSideEncryptionConfigurationNotFoundError"
ETAG_CHECK_MAX = 4 * MiB
"""Up to this size a PutObject is confirmed by its ETag (an MD5 here) rather than by a HEAD
(a round trip per object: a third of a many-table backup's upload time); above it hashing
costs more CPU than the HEAD costs time."""


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``. ``client`` is exposed for event hooks in tests."""

    MIN_PART_SIZE = MIN_PART_SIZE
    MAX_PART_SIZE = MAX_PART_SIZE
    MAX_PARTS = 10_000
    MAX_OBJECT_SIZE = 5 * TiB
    MAX_COPY_SIZE = 5 * GiB  # larger objects are re-classed by multipart copy
    MAX_DELETE_BATCH = 1000

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        settings: S3Settings | None = None,
        *,
        session: botocore.session.Session | None = None,
    ) -> None:
        """``session``: share another store's botocore session (each new session loads and
        keeps its own copy of the S3 service model, some 14 MB)."""
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.settings = settings or S3Settings()
        s = self.settings
        config = Config(
            retries={"mode": "standard", "total_max_attempts": s.max_attempts},
            # Connections kept for reuse. A backup uploads up to c objects of c parts each
            # plus 4c small objects at once (c = max_concurrency); a restore fetches 5 x jobs
            # (datatier.pipeline.lanes). A connection past the pool is closed after use.
            max_pool_connections=max(64, s.max_concurrency * (s.max_concurrency + 4)),
            connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout,
            s3={"addressing_style": "path" if s.endpoint_url else "auto"},
            user_agent_extra="datatier",
        )
        self.session = session or botocore.session.get_session()
        self.client = cast(
            "S3Client",
            self.session.create_client(
                "s3",
                endpoint_url=s.endpoint_url,
                region_name=s.region,
                aws_access_key_id=s.access_key_id,
                aws_secret_access_key=s.secret_access_key,
                config=config,
                verify=s.ca_bundle if s.ca_bundle else None,
            ),
        )
        secrets = [x for x in (s.access_key_id, s.secret_access_key) if x]
        self._errors = ErrorMapper(
            self.url, bucket, s.endpoint_url, s.max_attempts, secrets, timeout=_timeout_text(s)
        )

    def with_settings(self, settings: S3Settings) -> S3Store:
        """This bucket and prefix with other settings, on the same botocore session."""
        return S3Store(self.bucket, self.prefix, settings, session=self.session)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def validate_key(self, key: str) -> str:
        """The key rules, with S3's 1,024-byte limit applied to the key under the prefix."""
        super().validate_key(key)
        if len(self._full(key).encode()) > self.MAX_KEY_LENGTH:
            raise UsageError(
                f"object key {key!r} is longer than {self.MAX_KEY_LENGTH} bytes under the "
                f"store prefix {self.prefix!r}"
            )
        return key

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def check(self) -> None:
        with self._errors("check bucket", None, bucket_op=True):
            self.client.head_bucket(Bucket=self.bucket)

    def encryption_warning(self) -> str | None:
        """A warning when the bucket has no default encryption (None when it has one, or
        when datatier may not read the bucket's configuration)."""
        try:
            self.client.get_bucket_encryption(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != NO_BUCKET_ENCRYPTION:
                return None
            return (
                f"bucket {self.bucket} has no default encryption: datatier asks for "
                f"{self.settings.server_side_encryption or 'no'} server-side encryption on "
                "its own uploads, but objects other tools write there are stored in clear "
                "(`datatier provision apply` sets it)"
            )
        except BotoCoreError:
            return None
        return None

    def _sse(self) -> dict[str, Any]:
        """Server-side encryption arguments of every write."""
        s = self.settings
        if not s.server_side_encryption:
            return {}
        args: dict[str, Any] = {"ServerSideEncryption": s.server_side_encryption}
        if s.server_side_encryption == "aws:kms" and s.kms_key_id:
            args["SSEKMSKeyId"] = s.kms_key_id
        return args

    # -- writing ---------------------------------------------------------------------------

    def put_stream(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        storage_class: StorageClass = StorageClass.STANDARD,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        size_hint: int | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        full = self._full(self.validate_key(key))
        self.validate_labels(metadata, tags)
        extra = {**_write_args(storage_class, metadata, tags), **self._sse()}
        parts = cut_parts(chunks, self.part_size_for(self.settings.part_size, size_hint))
        first = next(parts)
        second = next(parts, None)
        if second is None:
            with self._errors("upload", key):
                reply = self.client.put_object(Bucket=self.bucket, Key=full, Body=first, **extra)
            total = len(first)
            if on_progress:
                on_progress(total)
            if total <= ETAG_CHECK_MAX and reply.get("ETag") == _md5_etag(first):
                return ObjectInfo(
                    key=key,
                    size=total,
                    storage_class=StorageClass.parse(storage_class).value,
                    etag=reply["ETag"],
                    metadata=dict(metadata or {}),
                )
        else:
            head = [first, second]
            del first, second
            total = upload_parts(
                S3Object(self.client, self._errors, self.bucket, full, key),
                _drain(head, parts),
                extra,
                concurrency=self.settings.max_concurrency,
                max_parts=self.MAX_PARTS,
                on_progress=on_progress,
            )
        info = self.head(key)
        if info.size != total:
            raise IntegrityFailure(f"{self.url}/{key}: stored {info.size} bytes, sent {total}")
        return info

    # -- reading ---------------------------------------------------------------------------

    def iter_read(
        self, key: str, chunk_size: int = ObjectStore.DEFAULT_CHUNK_SIZE
    ) -> Iterator[bytes]:
        full = self._full(self.validate_key(key))
        obj = S3Object(self.client, self._errors, self.bucket, full, key)
        return resumable_read(obj, chunk_size, self.settings.max_attempts)

    def head(self, key: str, *, tags: bool = False) -> ObjectInfo:
        full = self._full(self.validate_key(key))
        with self._errors("inspect", key, missing_bucket_check=self.check):
            reply = self.client.head_object(Bucket=self.bucket, Key=full)
        tag_map = None
        if tags:  # moto (not AWS) refuses tags of unrestored archived objects: None then
            with self._errors("read tags of", key, ignore=("InvalidObjectState",)):
                tag_set = self.client.get_object_tagging(Bucket=self.bucket, Key=full)["TagSet"]
                tag_map = {t["Key"]: t["Value"] for t in tag_set}
        state, expires = parse_restore(reply.get("Restore"))
        return ObjectInfo(
            key=key,
            size=reply["ContentLength"],
            storage_class=reply.get("StorageClass", StorageClass.STANDARD.value),
            etag=reply.get("ETag"),
            last_modified=reply.get("LastModified"),
            metadata=reply.get("Metadata", {}),
            tags=tag_map,
            restore=state,
            restore_expires=expires,
        )

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = self._full(self.validate_prefix(prefix))
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, OptionalObjectAttributes=["RestoreStatus"]
        )
        with self._errors("list", prefix or None):
            for page in pages:
                for obj in page.get("Contents", []):
                    state, expires = parse_restore(obj.get("RestoreStatus"))
                    yield ObjectInfo(
                        key=self._rel(obj["Key"]),
                        size=obj["Size"],
                        storage_class=obj.get("StorageClass", StorageClass.STANDARD.value),
                        etag=obj.get("ETag"),
                        last_modified=obj.get("LastModified"),
                        restore=state,
                        restore_expires=expires,
                    )

    # -- managing --------------------------------------------------------------------------

    def delete(self, keys: Iterable[str]) -> None:
        batch: list[str] = []
        for key in keys:
            batch.append(self._full(self.validate_key(key)))
            if len(batch) == self.MAX_DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, fulls: list[str]) -> None:
        with self._errors("delete objects in", None):
            reply = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in fulls], "Quiet": True},
            )
        if errors := reply.get("Errors"):
            first = errors[0]
            raise OperationFailed(
                f"{self.url}: could not delete {len(errors)} object(s), e.g. "
                f"{self._rel(first.get('Key', '?'))}: {first.get('Code', '?')}"
            )

    def set_storage_class(self, key: str, storage_class: StorageClass) -> ObjectInfo:
        target = StorageClass.parse(storage_class)
        info = self.head(key)
        if info.storage_class == target:
            return info
        if not info.readable:
            raise NotReadyYet(
                f"{self.url}/{key} is in {info.storage_class} and not restored",
                hint="request a restore first, then run again later",
            )
        full = self._full(key)
        with self._errors(f"re-class to {target.value}", key):
            if info.size <= self.MAX_COPY_SIZE:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=full,
                    CopySource={"Bucket": self.bucket, "Key": full},
                    CopySourceIfMatch=info.etag or "*",
                    StorageClass=target.value,
                    MetadataDirective="COPY",
                    TaggingDirective="COPY",
                    **self._sse(),  # a copy is encrypted only as asked, not as its source
                )
            else:
                copy_parts(
                    S3Object(self.client, self._errors, self.bucket, full, key),
                    info.size,
                    info.etag or "*",
                    {
                        **_write_args(target, info.metadata, self.head(key, tags=True).tags),
                        **self._sse(),
                    },
                    part_size=min(
                        self.MAX_COPY_SIZE, self.part_size_for(self.settings.part_size, info.size)
                    ),
                )
        return self.head(key)

    def request_restore(
        self, key: str, *, days: int, tier: RestoreTier = RestoreTier.STANDARD
    ) -> ObjectInfo:
        if days < 1:
            raise UsageError(f"restore days must be at least 1, got {days}")
        info = self.head(key)
        if not info.is_archived or info.restore is not RestoreState.NONE:
            return info
        if info.storage_class == StorageClass.DEEP_ARCHIVE and tier is RestoreTier.EXPEDITED:
            raise UsageError("DEEP_ARCHIVE objects cannot be restored with the Expedited tier")
        with self._errors("request restore of", key, ignore=("RestoreAlreadyInProgress",)):
            self.client.restore_object(
                Bucket=self.bucket,
                Key=self._full(key),
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier.value}},
            )
        return self.head(key)

    def list_incomplete_uploads(self, prefix: str = "") -> Iterator[IncompleteUpload]:
        full = self._full(self.validate_prefix(prefix))
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=full
        )
        with self._errors("list incomplete uploads in", prefix or None):
            for page in pages:
                for up in page.get("Uploads", []):
                    yield IncompleteUpload(
                        key=self._rel(up["Key"]),
                        upload_id=up["UploadId"],
                        initiated=up.get("Initiated"),
                    )

    def abort_incomplete_uploads(
        self, prefix: str = "", *, initiated_before: datetime | None = None
    ) -> int:
        count = 0
        for up in list(self.list_incomplete_uploads(prefix)):
            if initiated_before and up.initiated and up.initiated >= initiated_before:
                continue
            with self._errors("abort upload of", up.key, ignore=("NoSuchUpload",)):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._full(up.key), UploadId=up.upload_id
                )
            count += 1
        return count


def _write_args(
    storage_class: StorageClass, metadata: Mapping[str, str] | None, tags: Mapping[str, str] | None
) -> dict[str, Any]:
    """PutObject/CreateMultipartUpload arguments for class, metadata and tags."""
    args: dict[str, Any] = {"StorageClass": StorageClass.parse(storage_class).value}
    if metadata:
        args["Metadata"] = dict(metadata)
    if tags:
        args["Tagging"] = urlencode(dict(tags))
    return args


def _timeout_text(s: S3Settings) -> str:
    """The timeout a request that timed out was given, as its error names it."""
    each = f"{s.max_attempts} attempt(s) of {s.read_timeout:g} s"
    if s.bound is not None:
        return f"s3.lookup_timeout {s.bound:g} s: {each}"
    return f"s3.read_timeout: {each}"


def _md5_etag(body: bytes) -> str:
    """The ETag S3 gives a single PUT of ``body`` in clear or with SSE-S3."""
    return f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'


def _drain(head: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    """Yield ``head``'s items (dropping each reference as it goes), then ``rest``."""
    while head:
        yield head.pop(0)
    yield from rest
