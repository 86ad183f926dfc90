"""S3 side of issue 12's "Also": uploads ask for server-side encryption, `backup run` warns
about a bucket without default encryption, and ``s3.ca_bundle`` verifies an endpoint signed
by a private CA. Against the sandbox's moto server, and a real TLS endpoint: a small
TLS-terminating relay in front of moto with a certificate from the test's own CA."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.backup.stores import store_for
from datatier.cli import main
from datatier.config import load
from datatier.errors import ServiceUnavailable
from datatier.storage.base import StorageClass
from tests.integration.conftest import SandboxHandle, unavailable
from tests.integration.integrity import (  # noqa: F401  (integ_data: fixture)
    DB,
    integ_data,
)
from tests.integration.tlscerts import Certs, ca_files_fixture  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("integ_data")
RELAY_PORT = int(os.environ.get("DATATIER_TEST_PORT_BASE", "24060")) + 72


def raw_s3(sandbox: SandboxHandle) -> Any:
    s3 = sandbox.config.s3
    return boto3.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=s3.access_key_id.reveal(),
        aws_secret_access_key=s3.secret_access_key.reveal(),
    )


@pytest.fixture
def clear_bucket(sandbox: SandboxHandle) -> Iterator[str]:
    """A bucket without default encryption and a policy storing there."""
    name = "integ-clear"
    client = raw_s3(sandbox)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=name)
    with contextlib.suppress(Exception):
        client.delete_bucket_encryption(Bucket=name)
    path = sandbox.write_policy(
        "integ-sse",
        f'engine = "mysql"\nstore = "s3://{name}/p"\n[source]\nnode = "primary"\n'
        f'databases = ["{DB}"]\n',
    )
    yield name
    path.unlink()


def test_every_object_asks_for_encryption_and_an_unencrypted_bucket_is_warned_about(
    use_sandbox_config: SandboxHandle, clear_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    client = raw_s3(sandbox)
    assert main(["backup", "run", "integ-sse"]) == 0
    err = capsys.readouterr().err
    assert f"bucket {clear_bucket} has no default encryption" in err
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=clear_bucket)["Contents"]]
    assert any(k.endswith("manifest.json") for k in keys) and len(keys) > 3
    for key in keys:
        assert client.head_object(Bucket=clear_bucket, Key=key)["ServerSideEncryption"] == "AES256"

    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(f"s3://{clear_bucket}/p", loaded.config)
    data_key = next(k for k in keys if "/data/" in k).removeprefix("p/")
    store.set_storage_class(data_key, StorageClass.GLACIER)  # a copy: asks again
    head = client.head_object(Bucket=clear_bucket, Key=f"p/{data_key}")
    assert head["StorageClass"] == "GLACIER" and head["ServerSideEncryption"] == "AES256"

    client.put_bucket_encryption(
        Bucket=clear_bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    assert main(["backup", "run", "integ-sse"]) == 0
    assert "no default encryption" not in capsys.readouterr().err


def test_a_kms_key_is_asked_for_when_configured(
    sandbox: SandboxHandle, clear_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATATIER_S3__KMS_KEY_ID", "alias/datatier-test")
    loaded = load(str(sandbox.config_path))
    manifest = run_backup(loaded, load_policy(loaded, "integ-sse"))
    head = raw_s3(sandbox).head_object(Bucket=clear_bucket, Key="p/" + manifest.objects[0].key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/datatier-test")


class TLSRelay:
    """Accepts TLS on RELAY_PORT with ``cert``/``key`` and relays the bytes to ``target``."""

    def __init__(self, certs: Certs, target: tuple[str, int]) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(certs["server"], certs["server-key"])
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", RELAY_PORT))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(raw,), daemon=True).start()

    def _relay(self, raw: socket.socket) -> None:
        try:
            client = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the client refused our certificate: that is the point
            return
        upstream = socket.create_connection(self.target)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join(timeout=30)
        client.close()
        upstream.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def relay(sandbox: SandboxHandle, ca_files: Certs) -> Iterator[TLSRelay]:
    endpoint = sandbox.config.s3.endpoint_url
    assert endpoint
    host, port = endpoint.removeprefix("http://").split(":")
    try:
        server = TLSRelay(ca_files, (host, int(port)))
    except OSError as exc:
        unavailable(f"port {RELAY_PORT} for the TLS relay: {exc}")
        raise
    yield server
    server.close()


def test_ca_bundle_verifies_an_s3_endpoint_signed_by_a_private_ca(
    sandbox: SandboxHandle, ca_files: Certs, relay: TLSRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATATIER_S3__ENDPOINT_URL", f"https://127.0.0.1:{RELAY_PORT}")
    monkeypatch.setenv("DATATIER_S3__MAX_ATTEMPTS", "1")
    url = sandbox.config.backup.default_store
    untrusted = store_for(url, load(str(sandbox.config_path)).config)
    with pytest.raises(ServiceUnavailable, match="TLS to S3") as info:
        untrusted.check()
    assert "ca_bundle" in str(info.value)

    monkeypatch.setenv("DATATIER_S3__CA_BUNDLE", ca_files["ca"])
    store = store_for(url, load(str(sandbox.config_path)).config)
    store.check()
    store.put_bytes("integ-tls/probe", b"over TLS")
    assert store.get_bytes("integ-tls/probe") == b"over TLS"
    store.delete(["integ-tls/probe"])
