"""The default backend: every server is a local process on 127.0.0.1.

A process is identified by pid *and* its exact command line (read from /proc), so a
recycled pid is never mistaken for ours and ``stop`` never signals a stranger.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from datatier.errors import OperationFailed
from datatier.log import get_logger
from datatier.sandbox import process
from datatier.sandbox.backends.base import Fault, SandboxBackend
from datatier.sandbox.process import ProcessRecord
from datatier.sandbox.services.base import SandboxService
from datatier.sandbox.services.mongo import find_mongo_server
from datatier.sandbox.services.mongojava import find_mongo_java_server

log = get_logger(__name__)

INSTALL_HINTS = {
    "mariadb": "apt-get install mariadb-server mariadb-client",
    "memcached": "apt-get install memcached",
    "s3": "pip install 'moto[server]' (make venv)",
    "mongo": "make sandbox-deps (builds FerretDB into .bin/)",
    "mongo-java-server": "make sandbox-deps (fetches mongo-java-server with Maven into .bin/)",
}
PROJECT_DIR = Path(__file__).resolve().parents[3]
SIGNALS = {"kill": signal.SIGKILL, "pause": signal.SIGSTOP, "resume": signal.SIGCONT}


class ProcessBackend(SandboxBackend):
    """Servers as detached local processes; state: ``processes`` (pid + argv per name)."""

    name = "processes"

    def __init__(self, root: Path, state: Mapping[str, Any]) -> None:
        super().__init__(root, state)
        self.records = {
            str(name): ProcessRecord.from_json(rec)
            for name, rec in state.get("processes", {}).items()
        }

    def state(self) -> dict[str, Any]:
        return {"processes": {name: rec.to_json() for name, rec in self.records.items()}}

    def mongo_server(self) -> tuple[str, str]:
        found = find_mongo_server(PROJECT_DIR)
        return found if found else ("ferretdb", "ferretdb")

    def mongo_java_home(self) -> Path | None:
        return find_mongo_java_server(PROJECT_DIR)

    def check(self, services: Sequence[SandboxService]) -> None:
        missing = []
        for svc in services:
            binary = svc.argv()[0]
            runnable = Path(binary).is_absolute() and os.access(binary, os.X_OK)
            if not runnable and not shutil.which(binary):
                missing.append(f"{svc.name} needs {Path(binary).name} ({INSTALL_HINTS[svc.kind]})")
            elif unmet := svc.unmet():
                missing.append(f"{svc.name} needs {unmet} ({INSTALL_HINTS[svc.kind]})")
        if missing:
            raise OperationFailed(
                "missing server programs: " + "; ".join(missing),
                hint="`make sandbox-deps` installs them all",
            )

    def run_once(self, svc: SandboxService, program: str, args: Sequence[str]) -> tuple[int, str]:
        return process.run_once(program, args)

    def start(self, svc: SandboxService) -> None:
        record = process.start(svc.argv(), svc.log_path, cwd=svc.workdir)
        self.records[svc.name] = record
        log.info("sandbox.started", service=svc.name, pid=record.pid, port=svc.port)

    def alive(self, name: str) -> bool:
        record = self.records.get(name)
        return record is not None and process.is_alive(record)

    def pid(self, name: str) -> int | None:
        return self.records[name].pid if self.alive(name) else None

    def failure(self, svc: SandboxService) -> str:
        return process.tail(svc.log_path)

    def stop(self, names: Collection[str] | None = None) -> list[str]:
        chosen = {n: r for n, r in self.records.items() if names is None or n in names}
        live = [name for name, rec in chosen.items() if process.is_alive(rec)]
        for record in process.stop([chosen[name] for name in live]):
            log.warning("sandbox.killed", pid=record.pid)
        for name in chosen:
            del self.records[name]
        return live

    def fault(self, name: str, fault: Fault) -> None:
        if not self.alive(name):
            raise OperationFailed(f"sandbox {name} is not running")
        os.kill(self.records[name].pid, SIGNALS[fault])
