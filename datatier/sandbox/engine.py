"""A container engine's Docker-compatible API, for the sandbox's container backend.

Which engine, in order: ``$DOCKER_HOST`` when set; else podman, through an API process
started for this one operation (``podman system service`` on a private socket) and
stopped when it ends, so nothing outlives the command; else Docker's default socket.
Containers run on without the API process (podman's conmon keeps them).

testcontainers-python drives the containers. Its reaper (Ryuk) is turned off on purpose:
sandbox containers must outlive the ``sandbox up`` process; ``sandbox down`` removes them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors

from datatier.errors import OperationFailed
from datatier.log import get_logger
from datatier.sandbox import process

log = get_logger(__name__)

DOCKER_SOCKET = "unix:///var/run/docker.sock"
API_TIMEOUT = 120  # seconds for one API call (image builds stream; stops wait for the server)
START_TIMEOUT = 15.0


def _ping(url: str) -> docker.DockerClient | None:
    try:
        client = docker.DockerClient(base_url=url, timeout=API_TIMEOUT)
        client.ping()
    except (docker.errors.DockerException, OSError):
        return None
    return client


class Engine:
    """One operation's connection to the engine; :meth:`close` stops what it started."""

    def __init__(self) -> None:
        self.url = ""
        self._client: docker.DockerClient | None = None
        self._api: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

    @property
    def client(self) -> docker.DockerClient:
        """The Docker SDK client (opens the engine on first use)."""
        if self._client is None:
            self._client = self._open()
        return self._client

    def docker_client_kw(self) -> dict[str, Any]:
        """What testcontainers' ``DockerContainer(docker_client_kw=...)`` needs to reach us."""
        self.client  # noqa: B018 - opens the engine
        return {"environment": {"DOCKER_HOST": self.url}, "timeout": API_TIMEOUT}

    def _open(self) -> docker.DockerClient:
        explicit = os.environ.get("DOCKER_HOST")
        if explicit:
            client = _ping(explicit)
            if client is None:
                raise OperationFailed(
                    f"no container engine answers at DOCKER_HOST={explicit}",
                    hint="start it, or unset DOCKER_HOST to use podman",
                )
            self.url = explicit
            return client
        podman = shutil.which("podman")
        if podman:
            return self._start_podman(podman)
        client = _ping(DOCKER_SOCKET)
        if client is None:
            raise OperationFailed(
                "no container engine: podman is not installed and Docker does not answer",
                hint="`make podman` installs podman (Debian), or start Docker",
            )
        self.url = DOCKER_SOCKET
        return client

    def _start_podman(self, podman: str) -> docker.DockerClient:
        self._tmp = Path(tempfile.mkdtemp(prefix="datatier-engine-"))
        self.url = f"unix://{self._tmp / 'podman.sock'}"
        argv = [podman, "system", "service", "--time=0", self.url]
        # Our own child for this operation only: Popen, not a pid record (podman re-executes
        # itself at start, so its /proc command line is briefly not ours).
        with (self._tmp / "api.log").open("ab") as out:
            self._api = subprocess.Popen(
                argv, cwd=self._tmp, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        found: list[docker.DockerClient] = []

        def answers() -> bool:
            client = _ping(self.url)
            if client is not None:
                found.append(client)
            return bool(found) or self._api is None or self._api.poll() is not None

        process.wait_until(answers, START_TIMEOUT, interval=0.05)
        if not found:
            reason = process.tail(self._tmp / "api.log", 2) or "no answer"
            self.close()
            raise OperationFailed(
                f"podman's API service did not start: {reason}",
                hint="`make podman` installs podman and its configuration",
            )
        log.debug("sandbox.engine_started", pid=self._api.pid)
        return found[0]

    def close(self) -> None:
        """Close the client; stop the API process and remove its socket if we started it."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._api is not None:
            self._api.terminate()
            try:
                self._api.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                self._api.kill()
                self._api.wait(timeout=5.0)
            self._api = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
