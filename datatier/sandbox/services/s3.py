"""An S3 API server: moto in server mode, with the sandbox's backup bucket."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from datatier.sandbox.services.base import SandboxService
from datatier.typedtoml import Secret


def moto_available() -> bool:
    """True if moto's server mode can be imported by this interpreter."""
    return (
        importlib.util.find_spec("moto") is not None
        and importlib.util.find_spec("flask") is not None
    )


class S3Service(SandboxService):
    """moto_server on loopback; ``configure`` creates ``bucket`` if missing."""

    kind = "s3"
    program = "moto_server"

    def __init__(
        self, name: str, port: int, root: Path, *, bucket: str, key_id: str, secret: Secret
    ) -> None:
        super().__init__(name, port, root)
        self.bucket = bucket
        self.key_id = key_id
        self.secret = secret

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def args(self) -> list[str]:
        return ["-H", self.host, "-p", str(self.port)]

    def argv(self) -> list[str]:
        # Run as ``python -m`` so /proc/PID/cmdline equals argv (a script's would not).
        if moto_available():
            return [sys.executable, "-m", "moto.server", *self.args()]
        return [self.host_program(), *self.args()]

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret.reveal(),
            config=botocore.config.Config(
                connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}
            ),
        )

    def ready(self) -> bool:
        try:
            self.client().list_buckets()
            return True
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False

    def configure(self) -> None:
        s3 = self.client()
        names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if self.bucket not in names:
            s3.create_bucket(Bucket=self.bucket)

    def details(self) -> dict[str, Any]:
        try:
            names = [b["Name"] for b in self.client().list_buckets().get("Buckets", [])]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return {}
        return {"buckets": names}
