"""A MongoDB wire-protocol server: ``mongod`` when one is installed, else FerretDB v1 (SQLite).

Debian has no mongod; ``make sandbox-deps`` builds FerretDB into ``.bin/ferretdb``
(scripts/install-ferretdb.sh). ``$DATATIER_FERRETDB`` or ``$DATATIER_MONGOD`` may name a binary.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pymongo
import pymongo.errors

from datatier.sandbox.services.base import Runner, SandboxService


def find_mongo_server(project_dir: Path | None = None) -> tuple[str, str] | None:
    """(flavour, path) of the server to run: ``("mongod", ...)`` or ``("ferretdb", ...)``."""
    mongod = os.environ.get("DATATIER_MONGOD") or shutil.which("mongod")
    if mongod:
        return "mongod", mongod
    candidates = [os.environ.get("DATATIER_FERRETDB")]
    for base in (project_dir, Path.cwd()):
        if base is not None:
            candidates.append(str(base / ".bin" / "ferretdb"))
    candidates.append(shutil.which("ferretdb"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return "ferretdb", candidate
    return None


class MongoService(SandboxService):
    """mongod (single-node replica set ``rs0``) or FerretDB with its SQLite backend."""

    kind = "mongo"

    def __init__(self, name: str, port: int, root: Path, *, flavour: str, binary: str) -> None:
        super().__init__(name, port, root)
        self.flavour = flavour
        self.program = binary

    @property
    def debug_port(self) -> int:
        return self.port + 1

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def ports(self) -> list[int]:
        return [self.port, self.debug_port] if self.flavour == "ferretdb" else [self.port]

    def prepare(self, run: Runner) -> None:
        super().prepare(run)
        (self.workdir / "data").mkdir(exist_ok=True)

    def args(self) -> list[str]:
        data = self.workdir / "data"
        if self.flavour == "mongod":
            return [
                "--dbpath", str(data), "--bind_ip", self.host,
                "--port", str(self.port), "--replSet", "rs0", "--quiet",
            ]  # fmt: skip
        return [
            "--handler=sqlite", f"--sqlite-url=file:{data}/",
            f"--listen-addr={self.host}:{self.port}", f"--state-dir={self.workdir}",
            "--telemetry=disable", f"--debug-addr={self.host}:{self.debug_port}",
            "--log-level=WARN",
        ]  # fmt: skip

    def client(self) -> pymongo.MongoClient[Any]:
        return pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=1000, directConnection=True, connectTimeoutMS=1000
        )

    def ready(self) -> bool:
        try:
            with self.client() as client:
                client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False

    def configure(self) -> None:
        if self.flavour != "mongod":
            return
        with self.client() as client:
            try:
                client.admin.command("replSetGetStatus")
            except pymongo.errors.OperationFailure:
                member = {"_id": 0, "host": f"{self.host}:{self.port}"}
                client.admin.command("replSetInitiate", {"_id": "rs0", "members": [member]})

    def details(self) -> dict[str, Any]:
        try:
            with self.client() as client:
                info = client.server_info()
        except pymongo.errors.PyMongoError:
            return {"flavour": self.flavour}
        return {"flavour": self.flavour, "version": info.get("version")}
