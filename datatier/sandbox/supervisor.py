"""Bring the sandbox topology up, report on it, and take it down again.

Contract: ``up`` is idempotent (running services are left alone, stopped ones started),
refuses a port held by a stranger (UsageError naming the port), and writes ``DIR/state.json``
(pids and exact command lines), ``DIR/secrets/*`` (0600) and ``DIR/datatier.toml``. ``down``
signals only processes whose pid *and* command line match the state file, then waits for
their ports to be free. Port layout from ``port_base`` N: primary N, replica1 N+1,
replica2 N+2, memcached N+3, S3 N+4, MongoDB N+5 (FerretDB's debug HTTP N+6), a second,
cold memcached N+7 (the target of `cache copy` in the demo), a second MongoDB-protocol
server, mongo-java-server with an oplog, N+8.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from datatier.errors import OperationFailed, UsageError
from datatier.log import get_logger
from datatier.sandbox import process
from datatier.sandbox.configfile import write_config
from datatier.sandbox.layout import DEFAULT_PORT_BASE, PORT_OFFSETS, SERVICE_NAMES
from datatier.sandbox.process import ProcessRecord
from datatier.sandbox.services.base import SandboxService
from datatier.sandbox.services.mariadb import MariaDBService
from datatier.sandbox.services.memcached import MemcachedService
from datatier.sandbox.services.mongo import MongoService, find_mongo_server
from datatier.sandbox.services.mongojava import MongoJavaService, find_mongo_java_server
from datatier.sandbox.services.s3 import S3Service
from datatier.typedtoml import Secret

log = get_logger(__name__)

BUCKET = "datatier-backups"
DB_USER = "datatier"
REPL_USER = "repl"
S3_KEY_ID = "sandbox"
READY_TIMEOUT = 60.0
INSTALL_HINTS = {
    "mariadb": "apt-get install mariadb-server mariadb-client",
    "memcached": "apt-get install memcached",
    "s3": "pip install 'moto[server]' (make venv)",
    "mongo": "make sandbox-deps (builds FerretDB into .bin/)",
    "mongo-java-server": "make sandbox-deps (fetches mongo-java-server with Maven into .bin/)",
}


class Sandbox:
    """The sandbox rooted at ``root``; ``port_base`` None means "as recorded, else default"."""

    def __init__(self, root: Path, port_base: int | None = None) -> None:
        self.root = root.resolve()
        self.state_path = self.root / "state.json"
        self._creating = False
        state = self._read_state()
        recorded = state.get("port_base")
        self.port_base = port_base or (int(recorded) if recorded else DEFAULT_PORT_BASE)
        if not 1024 <= self.port_base <= 65535 - 10:
            raise UsageError(f"port base {self.port_base} is out of range (1024..65525)")
        self.records = {
            name: ProcessRecord.from_json(rec)
            for name, rec in state.get("processes", {}).items()
            if name in PORT_OFFSETS
        }
        if recorded and int(recorded) != self.port_base and self._live():
            raise UsageError(
                f"the sandbox in {self.root} already runs on port base {recorded}",
                hint="run `datatier sandbox down` first, or pass the same --port-base",
            )

    # --- state -----------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OperationFailed(f"cannot read sandbox state {self.state_path}: {exc}") from None
        return data if isinstance(data, dict) else {}

    def _write_state(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "port_base": self.port_base,
            "processes": {name: rec.to_json() for name, rec in self.records.items()},
        }
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_path)

    def _live(self) -> dict[str, ProcessRecord]:
        return {name: rec for name, rec in self.records.items() if process.is_alive(rec)}

    def _secret(self, name: str, value: str | None = None) -> Secret:
        """The sandbox secret ``name``, generated (0600) on first use by ``up``."""
        path = self.root / "secrets" / name
        if not path.exists():
            if not self._creating:
                return Secret()
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write((value or secrets.token_urlsafe(18)) + "\n")
        return Secret(path.read_text().strip())

    # --- topology --------------------------------------------------------------------------

    def port(self, name: str) -> int:
        return self.port_base + PORT_OFFSETS[name]

    def services(self) -> list[SandboxService]:
        """Every service of the topology, in start-up order (primary before replicas)."""
        db_pw, repl_pw = self._secret("mysql_password"), self._secret("repl_password")
        mysql: dict[str, Any] = {
            "user": DB_USER, "password": db_pw, "repl_user": REPL_USER, "repl_password": repl_pw,
        }  # fmt: skip
        primary = MariaDBService(
            "primary", self.port("primary"), self.root, server_id=1, primary=None, **mysql
        )
        found: list[SandboxService] = [primary]
        for i, name in enumerate(("replica1", "replica2"), start=2):
            found.append(
                MariaDBService(
                    name, self.port(name), self.root, server_id=i, primary=primary, **mysql
                )
            )
        found.append(MemcachedService("memcached", self.port("memcached"), self.root))
        found.append(MemcachedService("memcached2", self.port("memcached2"), self.root))
        found.append(
            S3Service(
                "s3",
                self.port("s3"),
                self.root,
                bucket=BUCKET,
                key_id=self._secret("s3_access_key_id", S3_KEY_ID).reveal(),
                secret=self._secret("s3_secret_access_key"),
            )
        )
        project = Path(__file__).resolve().parents[2]
        mongo = find_mongo_server(project)
        flavour, binary = mongo if mongo else ("ferretdb", "ferretdb")
        found.append(
            MongoService("mongo", self.port("mongo"), self.root, flavour=flavour, binary=binary)
        )
        found.append(
            MongoJavaService(
                "mongo2", self.port("mongo2"), self.root, home=find_mongo_java_server(project)
            )
        )
        return found

    # --- up ----------------------------------------------------------------------------------

    def _check_binaries(self, services: Iterable[SandboxService]) -> None:
        missing = []
        for svc in services:
            unmet = svc.unmet()
            if unmet:
                missing.append(f"{svc.name} needs {unmet} ({INSTALL_HINTS[svc.kind]})")
        if missing:
            raise OperationFailed(
                "missing server programs: " + "; ".join(missing),
                hint="`make sandbox-deps` installs them all",
            )

    def _check_ports(self, services: Iterable[SandboxService]) -> None:
        for svc in services:
            for port in svc.ports():
                if not process.port_free(svc.host, port):
                    raise UsageError(
                        f"port {port} (sandbox {svc.name}) is already in use by another process",
                        hint="stop that process or choose another --port-base",
                    )

    def _start(self, svc: SandboxService) -> None:
        svc.prepare()
        record = process.start(svc.argv(), svc.log_path, cwd=svc.workdir)
        self.records[svc.name] = record
        log.info("sandbox.started", service=svc.name, pid=record.pid, port=svc.port)

    def _await_ready(self, svc: SandboxService) -> None:
        record = self.records[svc.name]

        def ready_or_dead() -> bool:
            return svc.ready() or not process.is_alive(record)

        ok = process.wait_until(ready_or_dead, READY_TIMEOUT)
        if not process.is_alive(record):
            raise OperationFailed(
                f"sandbox {svc.name} exited during start-up: {process.tail(svc.log_path)}",
                hint=f"see {svc.log_path}",
            )
        if not ok:
            raise OperationFailed(
                f"sandbox {svc.name} did not answer on port {svc.port} "
                f"within {READY_TIMEOUT:.0f} s",
                hint=f"see {svc.log_path}",
            )

    def up(self, skip: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Start whatever is not running, configure everything, write the config; see module."""
        skipped = set(skip)
        unknown = skipped - set(SERVICE_NAMES)
        if unknown:
            raise UsageError(f"unknown sandbox service(s): {', '.join(sorted(unknown))}")
        self.root.mkdir(parents=True, exist_ok=True)
        self._creating = True
        wanted = [s for s in self.services() if s.name not in skipped]
        live = self._live()
        to_start = [s for s in wanted if s.name not in live]
        self._check_binaries(to_start)
        self._check_ports(to_start)
        try:
            with ThreadPoolExecutor(max_workers=len(to_start) or 1) as pool:
                list(pool.map(lambda s: s.prepare(), to_start))
            for svc in to_start:
                self._start(svc)
        finally:
            self._write_state()
        with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
            list(pool.map(self._await_ready, wanted))
        for svc in wanted:  # order matters: the primary before its replicas
            svc.configure()
        for svc in wanted:
            if isinstance(svc, MariaDBService) and svc.primary is not None:
                self._await_replication(svc)
        write_config(self.root, {s.name: s for s in self.services()})
        return self.status()

    def _await_replication(self, svc: MariaDBService) -> None:
        def running() -> bool:
            threads = svc.replication_threads()
            return threads.get("io_thread") == "Yes" and threads.get("sql_thread") == "Yes"

        if not process.wait_until(running, 30.0, interval=0.1):
            raise OperationFailed(
                f"sandbox {svc.name} does not replicate from the primary: "
                f"{svc.replication_threads()}"
            )

    # --- status / down -----------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One entry per service: name, kind, host, port, pid, state, plus details."""
        rows = []
        for svc in self.services():
            record = self.records.get(svc.name)
            alive = record is not None and process.is_alive(record)
            state = "stopped" if not alive else "running" if svc.ready() else "unresponsive"
            row: dict[str, Any] = {
                "name": svc.name,
                "kind": svc.kind,
                "host": svc.host,
                "port": svc.port,
                "pid": record.pid if alive and record else None,
                "state": state,
            }
            if state == "running":
                row.update(svc.details())
            rows.append(row)
        return rows

    def down(self, purge: bool = False) -> list[str]:
        """Stop every process this sandbox started; with ``purge`` delete its directory."""
        live = self._live()
        services = {s.name: s for s in self.services()}
        killed = process.stop(list(live.values()))
        for record in killed:
            log.warning("sandbox.killed", pid=record.pid)
        for name in live:
            svc = services[name]
            for port in svc.ports():
                process.wait_until(partial(process.port_free, svc.host, port), 10.0)
            log.info("sandbox.stopped", service=name)
        self.records = {}
        if purge:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            self._write_state()
        return sorted(live)
