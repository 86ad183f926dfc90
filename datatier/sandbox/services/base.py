"""The contract every sandbox server implements, whichever backend runs it."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

HOST = "127.0.0.1"

# Runs a one-off command (program, args) where the server will run (on the host, or in the
# server's image with the sandbox directory mounted); returns (exit code, combined output).
Runner = Callable[[str, Sequence[str]], tuple[int, str]]


class SandboxService(ABC):
    """One server of the sandbox.

    Lifecycle, driven by the supervisor: :meth:`prepare` (idempotent: data dirs, a one-time
    initialisation through the backend's runner), start ``program`` with :meth:`args` (a
    local process or a container on the host network: the same command line either way,
    paths under the sandbox root are the same inside containers), poll :meth:`ready` until
    it answers its own protocol, then :meth:`configure` (idempotent: users, buckets,
    replication). :meth:`details` adds kind-specific status fields and must not raise.
    """

    kind: ClassVar[str]
    # The server executable: a name looked up on PATH (of the host or of the image).
    program: str = ""

    def __init__(self, name: str, port: int, root: Path) -> None:
        self.name = name
        self.port = port
        self.host = HOST
        self.root = root

    @property
    def workdir(self) -> Path:
        """This service's own directory under the sandbox root."""
        return self.root / self.name

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def ports(self) -> list[int]:
        """Every TCP port the server listens on (the first is the service port)."""
        return [self.port]

    def prepare(self, run: Runner) -> None:
        """Create what the server needs before it starts; safe to call again."""
        self.workdir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def args(self) -> list[str]:
        """The server's arguments (after ``program``); it runs in the foreground."""

    def host_program(self) -> str:
        """``program`` as found on this host's PATH (the name itself when absent)."""
        return shutil.which(self.program) or self.program

    def argv(self) -> list[str]:
        """The full command line of a local process."""
        return [self.host_program(), *self.args()]

    def unmet(self) -> str | None:
        """What the server needs besides its program and cannot find here (a build the
        project makes, say), or None. The process backend checks it before starting."""
        return None

    @abstractmethod
    def ready(self) -> bool:
        """True once the server answers its own protocol; never raises."""

    def configure(self) -> None:  # noqa: B027 - optional hook, most services need none
        """Post-start set-up (users, buckets, replication); safe to call again."""

    def details(self) -> dict[str, Any]:
        """Extra status fields (e.g. replication thread states); never raises."""
        return {}
