"""S3's wire vocabulary translated into datatier's: error codes and the restore header.

:class:`ErrorMapper` turns boto3/botocore exceptions into the :mod:`datatier.errors`
hierarchy with one-line messages that name the store and never contain credentials. A
missing bucket is a UsageError (exit 2: the store URL is wrong or the bucket was never
created), not ServiceUnavailable: S3 itself answered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from datatier.errors import (
    DatatierError,
    IntegrityFailure,
    NotReadyYet,
    OperationFailed,
    ServiceUnavailable,
    UsageError,
)
from datatier.storage.base import ObjectNotFound, RestoreState

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "S3 does not know the access key id",
    "SignatureDoesNotMatch": "S3 rejected the request signature (wrong secret access key?)",
    "InvalidToken": "S3 rejected the session token",
    "ExpiredToken": "the S3 session token has expired",
    "AuthorizationHeaderMalformed": "S3 rejected the authorization header (wrong region?)",
}
_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "ServiceUnavailable",
    "InternalError",
}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound"}


def _endpoint_label(endpoint_url: str | None) -> str:
    """``host:port`` of a custom endpoint (never its userinfo), or ``AWS S3``."""
    if not endpoint_url:
        return "AWS S3"
    parts = urlsplit(endpoint_url)
    return parts.netloc.rpartition("@")[2] or endpoint_url


class ErrorMapper:
    """Context manager factory translating boto errors raised inside it."""

    def __init__(
        self,
        url: str,
        bucket: str,
        endpoint_url: str | None,
        max_attempts: int,
        secrets: Sequence[str],
        *,
        timeout: str = "",
    ) -> None:
        """``timeout`` describes the attempts and timeout a request is given, for the
        message of one that timed out."""
        self.url = url
        self.timeout = timeout
        self.bucket = bucket
        self.endpoint = _endpoint_label(endpoint_url)
        self.max_attempts = max_attempts
        self._secrets = [s for s in secrets if s]

    @contextmanager
    def __call__(
        self,
        action: str,
        key: str | None,
        *,
        ignore: Sequence[str] = (),
        bucket_op: bool = False,
        missing_bucket_check: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        """Translate errors; ``ignore`` lists error codes to swallow.

        ``missing_bucket_check`` runs before ObjectNotFound is raised, because a HEAD
        cannot tell a missing key from a missing bucket.
        """
        try:
            yield
        except ClientError as exc:
            if _code(exc) in ignore:
                return
            error = self.translate(exc, action, key, bucket_op=bucket_op)
            if isinstance(error, ObjectNotFound) and missing_bucket_check is not None:
                missing_bucket_check()
            raise error from exc
        except BotoCoreError as exc:
            raise self.translate(exc, action, key) from exc

    def translate(
        self, exc: Exception, action: str, key: str | None, *, bucket_op: bool = False
    ) -> DatatierError:
        """The datatier error for a boto exception raised while doing ``action`` on ``key``."""
        where = f"{self.url}/{key}" if key else self.url
        if isinstance(exc, ClientError):
            return self._client_error(exc, action, key, where, bucket_op)
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return ServiceUnavailable(
                f"no usable S3 credentials to {action} {where}",
                hint="set s3.access_key_id and s3.secret_access_key",
            )
        if isinstance(exc, SSLError):
            return ServiceUnavailable(
                f"TLS to S3 at {self.endpoint} failed to {action} {where}: {self.scrub(str(exc))}",
                hint="set s3.ca_bundle to the CA that signed the endpoint's certificate",
            )
        if isinstance(exc, FlexibleChecksumError):
            return IntegrityFailure(f"{where}: S3 checksum mismatch while reading")
        if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
            return ServiceUnavailable(
                f"cannot reach S3 at {self.endpoint} to {action} {where}",
                hint=f"gave up after {self.max_attempts} attempts",
            )
        if isinstance(exc, ReadTimeoutError):
            return ServiceUnavailable(
                f"S3 at {self.endpoint} did not answer to {action} {where} in time",
                hint=f"gave up after {self.timeout or f'{self.max_attempts} attempts'}",
            )
        if isinstance(exc, HTTPClientError | IncompleteReadError):
            return ServiceUnavailable(
                f"S3 connection at {self.endpoint} failed during {action} {where}: "
                f"{type(exc).__name__}"
            )
        return OperationFailed(f"S3 could not {action} {where}: {self.scrub(str(exc))}")

    def _client_error(
        self, exc: ClientError, action: str, key: str | None, where: str, bucket_op: bool
    ) -> DatatierError:
        code = _code(exc)
        status = _status(exc)
        error: Mapping[str, Any] = exc.response.get("Error", {})
        if code == "NoSuchBucket" or (bucket_op and code in _MISSING_CODES):
            # S3 answered: the store URL names a bucket that is not there, a config error
            return UsageError(
                f"S3 bucket {self.bucket!r} does not exist at {self.endpoint}",
                hint="create it with `datatier provision apply --only bucket --execute`, "
                f"or correct the store URL {self.url}",
            )
        if code in _CREDENTIAL_CODES:
            return ServiceUnavailable(
                f"{_CREDENTIAL_CODES[code]} ({code}) at {self.endpoint}",
                hint="check s3.access_key_id and s3.secret_access_key",
            )
        if code in _DENIED_CODES:
            return ServiceUnavailable(
                f"S3 denied access to {where} ({action}: HTTP 403)",
                hint="check the credentials and the bucket policy",
            )
        if code == "InvalidObjectState":
            klass = error.get("StorageClass", "archive storage")
            return NotReadyYet(
                f"{where} is in {klass} and not restored",
                hint="request a restore, then run again later",
            )
        if code in _MISSING_CODES and key is not None:
            return ObjectNotFound(f"{where} does not exist")
        if code in _TRANSIENT_CODES or status >= 500:
            return ServiceUnavailable(
                f"S3 at {self.endpoint} kept failing to {action} {where}: {code} (HTTP {status})",
                hint=f"gave up after {self.max_attempts} attempts",
            )
        if code in ("PreconditionFailed", "412"):
            return OperationFailed(f"{where} changed while datatier was working on it ({action})")
        message = self.scrub(str(error.get("Message", "")))
        return OperationFailed(f"S3 could not {action} {where}: {code}: {message}")

    def scrub(self, text: str) -> str:
        """``text`` with any credential replaced by ``***``, cut to one line."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())[:300]


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


_EXPIRY = re.compile(r'expiry-date="([^"]+)"')


def parse_restore(
    value: str | Mapping[str, Any] | None,
) -> tuple[RestoreState, datetime | None]:
    """Restore state from HeadObject's ``Restore`` header or ListObjects' ``RestoreStatus``."""
    if value is None:
        return RestoreState.NONE, None
    if isinstance(value, str):
        if 'ongoing-request="true"' in value:
            return RestoreState.ONGOING, None
        match = _EXPIRY.search(value)
        expires = parsedate_to_datetime(match.group(1)) if match else None
        return RestoreState.RESTORED, expires
    if value.get("IsRestoreInProgress"):
        return RestoreState.ONGOING, None
    expiry = value.get("RestoreExpiryDate")
    return RestoreState.RESTORED, expiry if isinstance(expiry, datetime) else None
