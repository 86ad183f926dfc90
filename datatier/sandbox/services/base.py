"""The contract every sandbox server implements."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

HOST = "127.0.0.1"


class SandboxService(ABC):
    """One local server process of the sandbox.

    Lifecycle, driven by the supervisor: :meth:`prepare` (idempotent: create data dirs),
    start :meth:`argv` as a detached process, poll :meth:`ready` until it answers its own
    protocol, then :meth:`configure` (idempotent: users, buckets, replication).
    :meth:`details` adds kind-specific status fields and must not raise.
    """

    kind: ClassVar[str]

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
        """Every TCP port the process listens on (the first is the service port)."""
        return [self.port]

    def prepare(self) -> None:
        """Create what the process needs before it starts; safe to call again."""
        self.workdir.mkdir(parents=True, exist_ok=True)

    def unmet(self) -> str | None:
        """What the server needs and cannot find (a program, a build), or None."""
        binary = self.argv()[0]
        if Path(binary).is_absolute() and os.access(binary, os.X_OK):
            return None
        return None if shutil.which(binary) else Path(binary).name

    @abstractmethod
    def argv(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the server answers its own protocol; never raises."""

    def configure(self) -> None:  # noqa: B027 - optional hook, most services need none
        """Post-start set-up (users, buckets, replication); safe to call again."""

    def details(self) -> dict[str, Any]:
        """Extra status fields (e.g. replication thread states); never raises."""
        return {}
