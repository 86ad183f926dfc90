"""The ``containers`` backend: every server in its own container, through testcontainers.

Containers use the host network, so each server binds 127.0.0.1 on the same port, with the
same arguments, as the process backend runs it (replicas reach the primary at
127.0.0.1:PORT; nothing is published on other interfaces and no container is ever
addressed by a bridge IP), and no network is created. The sandbox directory is mounted at
the same path, so data, logs and MariaDB's socket are where the process backend keeps them.
Containers are named ``datatier-sandbox-<hash of the directory>-<service>`` and labelled
``datatier.sandbox=<directory>``: ``stop`` removes exactly ours, including any a crashed
``up`` left unrecorded.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import docker.errors
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer

from datatier.errors import OperationFailed
from datatier.log import get_logger
from datatier.sandbox import images
from datatier.sandbox.backends.base import Fault, SandboxBackend
from datatier.sandbox.engine import Engine
from datatier.sandbox.services.base import SandboxService
from datatier.sandbox.services.mongojava import find_mongo_java_server

log = get_logger(__name__)

LABEL = "datatier.sandbox"
STOP_TIMEOUT = 30
ONE_OFF_TIMEOUT = 300
# requests' errors (the SDK's transport) are OSErrors.
ENGINE_ERRORS = (docker.errors.DockerException, OSError)
MONGO_PROGRAMS = {"mongod": "mongod", "ferretdb": "ferretdb"}
PROJECT_DIR = Path(__file__).resolve().parents[3]


def _newer(build: Path, copy: Path) -> bool:
    """Whether any file of ``build`` is newer than its copy under ``copy`` (or missing)."""
    for path in build.rglob("*"):
        if path.is_file():
            twin = copy / path.relative_to(build)
            if not twin.is_file() or twin.stat().st_mtime < path.stat().st_mtime:
                return True
    return False


class ContainerBackend(SandboxBackend):
    """State: ``containers`` (id, name, image per service) and ``images`` (per kind)."""

    name = "containers"

    def __init__(self, root: Path, state: Mapping[str, Any], overrides: Mapping[str, str]) -> None:
        super().__init__(root, state)
        self.overrides = dict(overrides)
        self.containers: dict[str, dict[str, str]] = {
            str(k): dict(v) for k, v in state.get("containers", {}).items()
        }
        self.images = {
            str(kind): images.Resolved(**doc) for kind, doc in state.get("images", {}).items()
        }
        self.prefix = "datatier-sandbox-" + hashlib.sha256(str(root).encode()).hexdigest()[:8]
        self._engine: Engine | None = None
        # Sandbox containers outlive `sandbox up`: testcontainers' reaper must not remove them.
        testcontainers_config.ryuk_disabled = True

    # --- engine and images -------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = Engine()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def state(self) -> dict[str, Any]:
        return {
            "containers": self.containers,
            "images": {kind: r.to_json() for kind, r in self.images.items()},
        }

    def mongo_server(self) -> tuple[str, str]:
        resolved = self.images.get("mongo")
        flavour = resolved.flavour if resolved else images.SPECS["mongo"].flavour[1]
        return flavour, MONGO_PROGRAMS[flavour]

    def mongo_java_home(self) -> Path | None:
        """The project's mongo-java-server build, copied under the sandbox directory (which
        containers see at the same path): the image only needs a Java runtime."""
        build = find_mongo_java_server(PROJECT_DIR)
        if build is None:
            return None
        home = self.root / "mongo2" / "java"
        if not (home / "classes").is_dir() or _newer(build, home):
            shutil.copytree(build, home, dirs_exist_ok=True)
        return home

    def check(self, services: Sequence[SandboxService]) -> None:
        """Open the engine and settle every kind's image (pulling an official one if needed)."""
        client = self.engine.client
        for kind in sorted({svc.kind for svc in services}):
            if kind not in images.SPECS:
                raise OperationFailed(f"no container image is defined for {kind} servers")
            self.images[kind] = images.resolve(client, kind, self.overrides.get(kind))

    def image(self, svc: SandboxService) -> str:
        resolved = self.images.get(svc.kind)
        if resolved is None:
            raise OperationFailed(f"no image resolved for {svc.name}")
        return resolved.ref

    # --- containers --------------------------------------------------------------------------

    def _container(
        self, svc: SandboxService, name: str, program: str, args: Sequence[str]
    ) -> DockerContainer:
        """``program args`` in ``svc``'s image: host network, the sandbox dir mounted."""
        return (
            DockerContainer(self.image(svc), docker_client_kw=self.engine.docker_client_kw())
            .with_name(name)
            .with_command(list(args))
            .with_volume_mapping(str(self.root), str(self.root), "rw")
            .with_kwargs(
                entrypoint=[program],
                network_mode="host",
                labels={LABEL: str(self.root), f"{LABEL}.service": svc.name},
                user="root",
            )
        )

    def run_once(self, svc: SandboxService, program: str, args: Sequence[str]) -> tuple[int, str]:
        name = f"{self.prefix}-{svc.name}-init"
        self._remove(name)
        one_off = self._container(svc, name, program, args)
        try:
            one_off.start()
            wrapped = one_off.get_wrapped_container()
            code = int(wrapped.wait(timeout=ONE_OFF_TIMEOUT).get("StatusCode", 1))
            output = wrapped.logs().decode(errors="replace")
        except ENGINE_ERRORS as exc:
            return 125, f"ERROR: {program} in {self.image(svc)}: {exc}"
        finally:
            self._remove(name)
        return code, output

    def start(self, svc: SandboxService) -> None:
        name = f"{self.prefix}-{svc.name}"
        self._remove(name)  # a dead container of ours under that name
        container = self._container(svc, name, svc.program, svc.args())
        try:
            container.start()
        except ENGINE_ERRORS as exc:
            self._remove(name)
            raise OperationFailed(
                f"sandbox {svc.name}: the container did not start: {exc}"
            ) from None
        wrapped = container.get_wrapped_container()
        self.containers[svc.name] = {"id": wrapped.id, "name": name, "image": self.image(svc)}
        log.info("sandbox.started", service=svc.name, container=name, port=svc.port)

    def _get(self, name: str) -> Any:
        """The container of service ``name`` we recorded, or None."""
        rec = self.containers.get(name)
        if rec is None:
            return None
        try:
            return self.engine.client.containers.get(rec["id"])
        except docker.errors.NotFound:
            return None

    def _remove(self, container_name: str) -> None:
        with suppress(docker.errors.NotFound):
            found = self.engine.client.containers.get(container_name)
            labels = found.labels or {}
            if labels.get(LABEL) != str(self.root):
                raise OperationFailed(f"a container named {container_name} is not this sandbox's")
            found.remove(force=True)

    def alive(self, name: str) -> bool:
        if name not in self.containers:
            return False
        container = self._get(name)
        return container is not None and container.status in ("running", "paused")

    def pid(self, name: str) -> int | None:
        container = self._get(name)
        if container is None or container.status not in ("running", "paused"):
            return None
        return int(container.attrs["State"]["Pid"]) or None

    def failure(self, svc: SandboxService) -> str:
        container = self._get(svc.name)
        if container is None:
            return "the container is gone"
        try:
            text = container.logs(tail=5).decode(errors="replace")
        except ENGINE_ERRORS:
            text = ""
        code = container.attrs.get("State", {}).get("ExitCode")
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        return " | ".join([f"exit code {code}", *lines[-5:]])

    def _ours(self) -> Iterator[Any]:
        """Every container labelled with this sandbox, recorded or not."""
        yield from self.engine.client.containers.list(
            all=True, filters={"label": f"{LABEL}={self.root}"}
        )

    def stop(self, names: Collection[str] | None = None) -> list[str]:
        chosen = [n for n in self.containers if names is None or n in names]
        wanted = {self.containers[n]["id"] for n in chosen}
        running = []
        for container in self._ours():
            service = (container.labels or {}).get(f"{LABEL}.service", "")
            if container.id not in wanted and names is not None and service not in names:
                continue
            if container.status in ("running", "paused"):
                running.append(service)
                if container.status == "paused":
                    container.unpause()
                container.stop(timeout=STOP_TIMEOUT)
            container.remove(force=True)
            log.info("sandbox.removed", container=container.name)
        for name in chosen:
            del self.containers[name]
        return sorted(n for n in running if n)

    def fault(self, name: str, fault: Fault) -> None:
        container = self._get(name)
        if container is None or not self.alive(name):
            raise OperationFailed(f"sandbox {name} is not running")
        {"kill": container.kill, "pause": container.pause, "resume": container.unpause}[fault]()

    def details(self, name: str) -> dict[str, Any]:
        rec = self.containers.get(name)
        return {"container": rec["name"], "image": rec["image"]} if rec else {}
