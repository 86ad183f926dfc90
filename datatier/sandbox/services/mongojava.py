"""The sandbox's second MongoDB-protocol server: mongo-java-server with its oplog on.

``make sandbox-deps`` fetches de.bwaldvogel:mongo-java-server with Maven and compiles the
wrapper ``scripts/mongo-java-server/SandboxMongoServer.java`` into ``.bin/mongo-java-server/``
(scripts/install-mongo-java-server.sh); ``$DATATIER_MONGO_JAVA_SERVER`` may name another
build directory. The server keeps its data in memory (gone when it stops) and presents
itself as the single-node replica set ``rs0``, so that it has an oplog; it stores the BSON
types FerretDB v1 refuses (Decimal128, MinKey/MaxKey, Code, nested arrays). Its limits (no
``hello``, ``applyOps``, sessions or change streams; binary subtypes 0, 3 and 4 only) are
listed in the README's MongoDB section.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pymongo
import pymongo.errors

from datatier.sandbox.services.base import SandboxService

MAIN_CLASS = "SandboxMongoServer"
BUILD_DIR = Path(".bin") / "mongo-java-server"
# Data and oplog live in memory and the oplog is never trimmed: one run of the test suite
# leaves about 100 MB live. A server out of memory exits (the sandbox shows it stopped)
# rather than answering half-broken; `sandbox down` + `up` starts it empty.
HEAP = "-Xmx1g"


def find_mongo_java_server(project_dir: Path | None = None) -> Path | None:
    """The build directory (``lib/`` jars + ``classes/``) to run, if one is built."""
    candidates = [os.environ.get("DATATIER_MONGO_JAVA_SERVER")]
    for base in (project_dir, Path.cwd()):
        if base is not None:
            candidates.append(str(base / BUILD_DIR))
    for candidate in candidates:
        if candidate and (Path(candidate) / "classes" / f"{MAIN_CLASS}.class").is_file():
            return Path(candidate)
    return None


class MongoJavaService(SandboxService):
    """mongo-java-server (in-memory backend, oplog on) as replica set ``rs0``'s only member."""

    kind = "mongo-java-server"

    def __init__(self, name: str, port: int, root: Path, *, home: Path | None) -> None:
        super().__init__(name, port, root)
        self.home = home

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    program = "java"

    def unmet(self) -> str | None:
        if self.home is None:
            return "the mongo-java-server build (.bin/mongo-java-server)"
        return None

    def args(self) -> list[str]:
        home = self.home or BUILD_DIR
        return [
            HEAP, "-XX:+ExitOnOutOfMemoryError", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", f"{home / 'classes'}:{home / 'lib'}/*",
            MAIN_CLASS, self.host, str(self.port),
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

    def details(self) -> dict[str, Any]:
        try:
            with self.client() as client:
                info = client.server_info()
                newest = client.local["oplog.rs"].estimated_document_count()
        except pymongo.errors.PyMongoError:
            return {"flavour": "mongo-java-server"}
        return {
            "flavour": "mongo-java-server",
            "version": info.get("version"),
            "replica_set": "rs0",
            "oplog_entries": newest,
        }
