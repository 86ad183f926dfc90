"""Open the object store a policy names, with the [s3] settings of the config.

Read-only work (listing, inspecting, looking a backup up) opens it with ``lookup=True``:
each S3 request then gives up within about ``s3.lookup_timeout`` seconds, where uploads
and downloads keep ``s3.max_attempts`` attempts of ``s3.read_timeout``.
"""

from __future__ import annotations

from datatier.config import Config
from datatier.storage.base import MiB, ObjectStore
from datatier.storage.deferred import DeferredStore
from datatier.storage.s3settings import S3Settings
from datatier.storage.url import open_store, parse_store_url


def s3_settings(config: Config) -> S3Settings:
    """The storage layer's S3 settings from the ``[s3]`` config section (UsageError when
    one is out of range; no botocore import)."""
    s3 = config.s3
    return S3Settings(
        endpoint_url=s3.endpoint_url,
        region=s3.region,
        access_key_id=s3.access_key_id.reveal() or None,
        secret_access_key=s3.secret_access_key.reveal() or None,
        max_attempts=s3.max_attempts,
        part_size=s3.part_size_mb * MiB,
        max_concurrency=s3.max_concurrency,
        connect_timeout=s3.connect_timeout,
        read_timeout=s3.read_timeout,
        server_side_encryption=server_side_encryption(config),
        kms_key_id=s3.kms_key_id,
        ca_bundle=s3.ca_bundle,
    )


def server_side_encryption(config: Config) -> str | None:
    """``s3.encryption`` resolved: ``auto`` is aws:kms with ``s3.kms_key_id``, else AES256."""
    s3 = config.s3
    if s3.encryption == "none":
        return None
    if s3.encryption == "auto":
        return "aws:kms" if s3.kms_key_id else "AES256"
    return s3.encryption


def store_for(url: str, config: Config, *, lookup: bool = False) -> ObjectStore:
    """The store at ``url`` (``s3://`` or ``file://``); UsageError on a bad URL.

    ``lookup``: for read-only work only, each request bounded by ``s3.lookup_timeout``
    (never for uploads or a restore's downloads: a slow store must not fail them)."""
    if url.partition("://")[0].lower() != "s3":
        return open_store(url)  # file://: no botocore import
    settings = s3_settings(config)
    return open_store(url, settings.bounded(config.s3.lookup_timeout) if lookup else settings)


def store_in_background(url: str, config: Config) -> ObjectStore:
    """The store at ``url``, as :func:`store_for` opens it for a backup, with an ``s3://``
    store's client built in a background thread (a :class:`DeferredStore`): botocore's
    import and the client cost ~0.2 s the caller spends on other work meanwhile.

    A bad URL or ``[s3]`` setting raises UsageError here, as from :func:`store_for`; an
    error of the opening itself is raised by the store's first use."""
    if url.partition("://")[0].lower() != "s3":
        return open_store(url)
    parse_store_url(url)
    settings = s3_settings(config)
    return DeferredStore(lambda: open_store(url, settings))


def for_transfers(store: ObjectStore, config: Config) -> ObjectStore:
    """``store`` (opened with ``lookup=True``) with the full ``[s3]`` settings, for a
    restore's downloads, on the same botocore session; a ``file://`` store as it is."""
    if not store.url.startswith("s3://"):
        return store
    from datatier.storage.s3 import S3Store  # lazy: botocore costs ~0.1 s to import

    assert isinstance(store, S3Store)
    return store.with_settings(s3_settings(config))
