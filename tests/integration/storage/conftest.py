"""A real S3 API server (moto_server) for the storage tests, one per session.

The port comes from ``DATATIER_TEST_MOTO_PORT`` (default 25500, below the ephemeral port
range). If the server cannot start the tests fail under ``CI=true`` and are skipped
elsewhere. Helpers here drive moto's own control API (``/moto-api/...``): IAM
enforcement and slow archive restores.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from datatier.storage.base import MiB
from datatier.storage.s3 import S3Store
from datatier.storage.s3settings import S3Settings
from tests.integration.conftest import unavailable

KEY_ID = "testing"
SECRET = "testing-secret"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class Moto:
    """A running moto server."""

    endpoint: str

    def post(self, path: str, body: bytes, content_type: str = "text/plain") -> Any:
        request = urllib.request.Request(
            self.endpoint + path, data=body, method="POST", headers={"Content-Type": content_type}
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            data = reply.read()
        return json.loads(data) if data else None

    def client(self, service: str = "s3", key_id: str = KEY_ID, secret: str = SECRET) -> Any:
        return boto3.session.Session().client(  # type: ignore[call-overload]
            service,  # any service name (s3, iam): the stubs want a literal one
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def settings(self, **overrides: Any) -> S3Settings:
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET,
            "part_size": 5 * MiB,
            "max_concurrency": 2,
            "max_attempts": 3,
        }
        values.update(overrides)
        return S3Settings(**values)


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    port = int(os.environ.get("DATATIER_TEST_MOTO_PORT", "25500"))
    exe = Path(sys.executable).with_name("moto_server")
    binary = str(exe) if exe.exists() else shutil.which("moto_server")
    if binary is None:
        unavailable("moto_server not installed (pip install 'moto[server]')")
        raise AssertionError("unreachable")
    if _port_open(port):
        unavailable(f"port {port} is already in use (set DATATIER_TEST_MOTO_PORT)")
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 15
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-500:]
                unavailable(f"moto_server did not start on port {port}: {tail}")
            time.sleep(0.1)
        yield Moto(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def bucket(moto: Moto) -> str:
    name = f"dt-test-{secrets.token_hex(4)}"
    moto.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def raw(moto: Moto) -> Any:
    """A plain boto3 S3 client, for inspecting and tampering behind the store's back."""
    return moto.client()


@pytest.fixture
def store(moto: Moto, bucket: str) -> S3Store:
    return S3Store(bucket, "backups", moto.settings())


@pytest.fixture
def iam_auth(moto: Moto) -> Iterator[tuple[str, str]]:
    """Turn on moto's IAM/signature checks; yields a valid (key id, secret) pair."""
    iam = moto.client("iam")
    user = f"datatier-{secrets.token_hex(3)}"
    iam.create_user(UserName=user)
    allow_all = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [allow_all]}
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    moto.post("/moto-api/reset-auth", b"0")
    try:
        yield key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        moto.post("/moto-api/reset-auth", b"inf")


@pytest.fixture
def slow_restore(moto: Moto) -> Iterator[int]:
    """Make archive restores stay ongoing for N HEAD requests (server-wide); yields N."""
    times = 3
    transition = {"progression": "manual", "times": times}
    body = json.dumps({"model_name": "s3::keyrestore", "transition": transition}).encode()
    moto.post("/moto-api/state-manager/set-transition", body, "application/json")
    try:
        yield times
    finally:
        unset = json.dumps({"model_name": "s3::keyrestore"}).encode()
        moto.post("/moto-api/state-manager/unset-transition", unset, "application/json")
