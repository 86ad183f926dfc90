"""Bring the sandbox topology up, report on it, and take it down again.

Contract: ``up`` is idempotent (running services are left alone, stopped ones started),
refuses a port held by a stranger (UsageError naming the port), and writes ``DIR/state.json``
(the backend and what it started), ``DIR/secrets/*`` (0600) and ``DIR/datatier.toml``. A
failed ``up`` stops what it started and, if it created ``DIR``, removes it: nothing is left
behind. ``down`` stops only what the state file names, then waits for the ports to be free.
The backend (local processes, or containers on the host network) changes how servers run,
never the topology, the ports, ``status`` or the config. Port layout from ``port_base`` N:
primary N, replica1 N+1, replica2 N+2, memcached N+3, S3 N+4, MongoDB N+5 (FerretDB's debug
HTTP N+6), a second, cold memcached N+7 (the target of `cache copy` in the demo), a second
MongoDB-protocol server, mongo-java-server with an oplog, N+8.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from datatier.errors import OperationFailed, UsageError
from datatier.log import get_logger
from datatier.sandbox import process
from datatier.sandbox.backends import DEFAULT_BACKEND, make_backend
from datatier.sandbox.backends.base import Fault
from datatier.sandbox.configfile import write_config
from datatier.sandbox.layout import DEFAULT_PORT_BASE, PORT_OFFSETS, SERVICE_NAMES
from datatier.sandbox.services.base import SandboxService
from datatier.sandbox.services.mariadb import MariaDBService
from datatier.sandbox.services.memcached import MemcachedService
from datatier.sandbox.services.mongo import MongoService
from datatier.sandbox.services.mongojava import MongoJavaService
from datatier.sandbox.services.s3 import S3Service
from datatier.typedtoml import Secret

log = get_logger(__name__)

BUCKET = "datatier-backups"
DB_USER = "datatier"
REPL_USER = "repl"
S3_KEY_ID = "sandbox"
READY_TIMEOUT = 60.0


class Sandbox:
    """The sandbox rooted at ``root``. ``port_base`` and ``backend`` None mean "as recorded,
    else the default"; ``images`` (kind -> image) overrides the container backend's images."""

    def __init__(
        self,
        root: Path,
        port_base: int | None = None,
        backend: str | None = None,
        images: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.state_path = self.root / "state.json"
        self._creating = False
        state = self._read_state()
        recorded = state.get("port_base")
        self.port_base = port_base or (int(recorded) if recorded else DEFAULT_PORT_BASE)
        if not 1024 <= self.port_base <= 65535 - 10:
            raise UsageError(f"port base {self.port_base} is out of range (1024..65525)")
        recorded_backend = str(state.get("backend", DEFAULT_BACKEND))
        self.backend = make_backend(recorded_backend, self.root, state, images)
        with self._session():
            live = self._live()
        if backend and backend != recorded_backend:
            if live:
                raise UsageError(
                    f"the sandbox in {self.root} runs on the {recorded_backend} backend",
                    hint="run `datatier sandbox down` first, or pass the same --backend",
                )
            self.backend = make_backend(backend, self.root, {}, images)
        if recorded and int(recorded) != self.port_base and live:
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
        data = {"backend": self.backend.name, "port_base": self.port_base}
        data.update(self.backend.state())
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_path)

    def _live(self) -> list[str]:
        return [name for name in SERVICE_NAMES if self.backend.alive(name)]

    @contextmanager
    def _session(self) -> Iterator[None]:
        """One operation: whatever the backend opens for it (an engine) is closed after."""
        try:
            yield
        finally:
            self.backend.close()

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
        flavour, binary = self.backend.mongo_server()
        found.append(
            MongoService("mongo", self.port("mongo"), self.root, flavour=flavour, binary=binary)
        )
        found.append(
            MongoJavaService(
                "mongo2", self.port("mongo2"), self.root, home=self.backend.mongo_java_home()
            )
        )
        return found

    # --- up ----------------------------------------------------------------------------------

    def _check_ports(self, services: Iterable[SandboxService]) -> None:
        for svc in services:
            for port in svc.ports():
                if not process.port_free(svc.host, port):
                    raise UsageError(
                        f"port {port} (sandbox {svc.name}) is already in use by another process",
                        hint="stop that process or choose another --port-base",
                    )

    def _await_ready(self, svc: SandboxService) -> None:
        def ready_or_dead() -> bool:
            return svc.ready() or not self.backend.alive(svc.name)

        ok = process.wait_until(ready_or_dead, READY_TIMEOUT)
        if not self.backend.alive(svc.name):
            raise OperationFailed(
                f"sandbox {svc.name} exited during start-up: {self.backend.failure(svc)}",
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
        created = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        self._creating = True
        started: list[str] = []
        with self._session():
            try:
                live = set(self._live())
                self.backend.check([s for s in self.services() if s.name not in live | skipped])
                # Built again: checking may settle what runs (the container's Mongo flavour).
                wanted = [s for s in self.services() if s.name not in skipped]
                to_start = [s for s in wanted if s.name not in live]
                self._check_ports(to_start)
                self._start(to_start, started)
                with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
                    list(pool.map(self._await_ready, wanted))
                for svc in wanted:  # order matters: the primary before its replicas
                    svc.configure()
                for svc in wanted:
                    if isinstance(svc, MariaDBService) and svc.primary is not None:
                        self._await_replication(svc)
                write_config(self.root, {s.name: s for s in self.services()})
            except BaseException:
                self._roll_back(started, created)
                raise
            return self._status()

    def _start(self, services: list[SandboxService], started: list[str]) -> None:
        """Prepare (in parallel) and start ``services``; record each in ``started``."""
        try:
            with ThreadPoolExecutor(max_workers=len(services) or 1) as pool:
                list(pool.map(lambda s: s.prepare(partial(self.backend.run_once, s)), services))
            for svc in services:
                self.backend.start(svc)
                started.append(svc.name)
        finally:
            self._write_state()

    def _roll_back(self, started: list[str], created: bool) -> None:
        """After a failed ``up``: stop what it started; remove ``root`` if it created it."""
        try:
            self._stop(started)
        finally:
            if created:
                shutil.rmtree(self.root, ignore_errors=True)
            elif self.root.exists():
                self._write_state()
        log.warning("sandbox.rolled_back", stopped=started, removed_dir=created)

    def _await_replication(self, svc: MariaDBService) -> None:
        def running() -> bool:
            threads = svc.replication_threads()
            return threads.get("io_thread") == "Yes" and threads.get("sql_thread") == "Yes"

        if not process.wait_until(running, 30.0, interval=0.1):
            raise OperationFailed(
                f"sandbox {svc.name} does not replicate from the primary: "
                f"{svc.replication_threads()}"
            )

    # --- status / faults / down ----------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One entry per service: name, kind, host, port, pid, state, plus details."""
        with self._session():
            return self._status()

    def _status(self) -> list[dict[str, Any]]:
        rows = []
        for svc in self.services():
            alive = self.backend.alive(svc.name)
            state = "stopped" if not alive else "running" if svc.ready() else "unresponsive"
            row: dict[str, Any] = {
                "name": svc.name,
                "kind": svc.kind,
                "host": svc.host,
                "port": svc.port,
                "pid": self.backend.pid(svc.name) if alive else None,
                "state": state,
            }
            if alive:
                row.update(self.backend.details(svc.name))
            if state == "running":
                row.update(svc.details())
            rows.append(row)
        return rows

    def fault(self, name: str, fault: Fault) -> None:
        """Kill, pause or resume one running server (fault injection for tests and demos)."""
        if name not in PORT_OFFSETS:
            raise UsageError(f"unknown sandbox service {name!r}")
        with self._session():
            self.backend.fault(name, fault)

    def _stop(self, names: list[str] | None) -> list[str]:
        services = {s.name: s for s in self.services()}
        stopped = self.backend.stop(names)
        for name in stopped:
            svc = services[name]
            for port in svc.ports():
                process.wait_until(partial(process.port_free, svc.host, port), 10.0)
            log.info("sandbox.stopped", service=name)
        return stopped

    def down(self, purge: bool = False) -> list[str]:
        """Stop every server this sandbox started; with ``purge`` delete its directory."""
        with self._session():
            stopped = self._stop(None)
        if purge:
            shutil.rmtree(self.root, ignore_errors=True)
        elif self.root.exists():
            self._write_state()
        return sorted(stopped)
