"""The contract of a sandbox backend: start, observe, fault and stop the servers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from datatier.sandbox.services.base import SandboxService

Fault = Literal["kill", "pause", "resume"]


class SandboxBackend(ABC):
    """Runs the sandbox's servers for :class:`~datatier.sandbox.supervisor.Sandbox`.

    Every server listens on 127.0.0.1 on the same port and with the same command line
    whichever backend runs it, so the topology, ``status`` and the config file are the
    same. A backend remembers what it started in :meth:`state` (saved in ``state.json``)
    and only ever touches that: a stranger's process or container is never signalled.
    Operations that need an engine open it on demand; :meth:`close` releases it.
    """

    name: ClassVar[str]

    def __init__(self, root: Path, state: Mapping[str, Any]) -> None:
        self.root = root

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """What to persist about the running servers (JSON-serialisable)."""

    @abstractmethod
    def mongo_server(self) -> tuple[str, str]:
        """(flavour, program) of the MongoDB-protocol server: ``mongod`` or ``ferretdb``."""

    @abstractmethod
    def mongo_java_home(self) -> Path | None:
        """Where mongo-java-server's build (``classes/`` and ``lib/``) is, as the server will
        see it; None when it is not built."""

    @abstractmethod
    def check(self, services: Sequence[SandboxService]) -> None:
        """Before ``services`` start: their programs or images exist (OperationFailed naming
        what is missing and how to get it)."""

    @abstractmethod
    def run_once(self, svc: SandboxService, program: str, args: Sequence[str]) -> tuple[int, str]:
        """Run a one-off command where ``svc`` will run; (exit code, output)."""

    @abstractmethod
    def start(self, svc: SandboxService) -> None:
        """Start ``svc`` detached (its readiness is the supervisor's business)."""

    @abstractmethod
    def alive(self, name: str) -> bool:
        """True if the server ``name`` that we started still runs (paused counts)."""

    @abstractmethod
    def pid(self, name: str) -> int | None:
        """The host pid of the running server ``name`` (None when not running)."""

    @abstractmethod
    def failure(self, svc: SandboxService) -> str:
        """The last lines of ``svc``'s output, for an error message."""

    @abstractmethod
    def stop(self, names: Collection[str] | None = None) -> list[str]:
        """Stop (and forget) the named servers, all when None; return the names that were
        running. Waits until they are gone."""

    @abstractmethod
    def fault(self, name: str, fault: Fault) -> None:
        """Kill, pause (freeze) or resume the running server ``name``: fault injection."""

    def details(self, name: str) -> dict[str, Any]:
        """Backend-specific status fields for ``name`` (e.g. the container); never raises."""
        return {}

    def close(self) -> None:  # noqa: B027 - only backends with an engine need it
        """Release what the operation opened (an engine API process); safe to call again."""
