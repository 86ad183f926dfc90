"""The contract of deploy-artifact renderers, and what they render from.

A :class:`Renderer` turns a :class:`RenderContext` (the backup policies, the MySQL topology
and where things live on the deployment target) into one or more files, as a mapping of
relative path -> text. Rendering is deterministic (no timestamps, no local paths), so the
examples under ``deploy/`` can be checked against a fresh render. Schedules are checked on
the way: a schedule that never fires is a ConfigError (exit 2).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from datatier.backup.policy import Policy
from datatier.config import MySQLSettings
from datatier.errors import UsageError
from datatier.replication.haproxy import HAProxyLayout


@dataclass(frozen=True)
class RenderContext:
    """Inputs of every renderer. Paths are those on the deployment target."""

    policies: tuple[Policy, ...]
    mysql: MySQLSettings
    config_path: str = "/etc/datatier/datatier.toml"
    binary: str = "/usr/local/bin/datatier"
    user: str = "datatier"
    lock_dir: str = "/run/lock"
    timezone: str = "UTC"
    image: str = "datatier:latest"
    namespace: str = "datatier"
    secret_name: str = "datatier-secrets"  # noqa: S105 - a Secret object name, not a secret
    configmap: str = "datatier-config"
    binlog_policy: str | None = None  # set: render the binlog archiver service too
    haproxy: HAProxyLayout = field(
        default_factory=lambda: HAProxyLayout(
            write_bind="0.0.0.0:3306", read_bind="0.0.0.0:3307", health_ports={}
        )
    )

    def backup_command(self, policy: Policy) -> list[str]:
        return [self.binary, "backup", "run", policy.name]

    def prune_command(self, policy: Policy) -> list[str]:
        return [self.binary, "backups", "prune", policy.name, "--execute"]


class Renderer(ABC):
    """Abstract base of artifact renderers: ``name`` is the CLI word (``crontab``)."""

    name: str
    description: str

    @abstractmethod
    def render(self, ctx: RenderContext) -> dict[str, str]:
        """Relative file path -> file text (see module docstring)."""


_NAME = re.compile(r"[^a-z0-9-]+")


def dns_name(prefix: str, policy: str, limit: int = 52) -> str:
    """A Kubernetes object name (RFC 1123 label, CronJobs at most 52 characters)."""
    name = _NAME.sub("-", f"{prefix}-{policy}".lower()).strip("-")
    if len(name) > limit:
        raise UsageError(f"policy name {policy!r} is too long for a Kubernetes name ({name!r})")
    return name


def need_policies(ctx: RenderContext, what: str) -> None:
    if not ctx.policies:
        raise UsageError(
            f"no backup policies to render {what} for", hint="add backups/*.toml policies"
        )
