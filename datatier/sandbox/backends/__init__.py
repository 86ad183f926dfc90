"""How the sandbox's servers run: local processes (default) or containers (testcontainers)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datatier.errors import UsageError
from datatier.sandbox.backends.base import SandboxBackend

BACKEND_NAMES = ("processes", "containers")
DEFAULT_BACKEND = "processes"


def make_backend(
    name: str, root: Path, state: Mapping[str, Any], images: Mapping[str, str] | None = None
) -> SandboxBackend:
    """The backend ``name`` for the sandbox at ``root``, resumed from its recorded ``state``;
    ``images`` (kind -> image reference) overrides the container images."""
    if name == "processes":
        from datatier.sandbox.backends.processes import ProcessBackend

        return ProcessBackend(root, state)
    if name == "containers":
        from datatier.sandbox.backends.containers import ContainerBackend

        return ContainerBackend(root, state, images or {})
    raise UsageError(f"unknown sandbox backend {name!r} (choose from {', '.join(BACKEND_NAMES)})")
