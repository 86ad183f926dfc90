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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from datatier.backup.policy import Policy
from datatier.config import MySQLSettings
from datatier.errors import UsageError
from datatier.provision.artifacts.haproxy_config import HAProxyLayout


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
    metrics_dir: str = ""
    """node_exporter's textfile directory; '' = jobs write no metrics file."""
    health_port_base: int = 8008
    binlog_policy: str | None = None  # set: render the binlog archiver service too
    config_doc: Mapping[str, Any] = field(default_factory=dict)
    """The config file as parsed TOML, for artifacts that install the config (Ansible)."""
    haproxy: HAProxyLayout = field(
        default_factory=lambda: HAProxyLayout(
            write_bind="0.0.0.0:3306", read_bind="0.0.0.0:3307", health_ports={}
        )
    )

    def _metrics(self, policy: Policy, job: str) -> list[str]:
        if not self.metrics_dir:
            return []
        return ["--metrics-file", f"{self.metrics_dir}/datatier_{policy.name}_{job}.prom"]

    def backup_command(self, policy: Policy, binary: str | None = None) -> list[str]:
        return [
            binary or self.binary,
            "backup",
            "run",
            policy.name,
            *self._metrics(policy, "backup"),
        ]

    def prune_command(self, policy: Policy, binary: str | None = None) -> list[str]:
        return [
            binary or self.binary,
            "backups",
            "prune",
            policy.name,
            "--execute",
            *self._metrics(policy, "prune"),
        ]

    def layout(self) -> HAProxyLayout:
        """The HAProxy layout with a health port per node (from ``health_port_base`` in
        config order unless given): HAProxy, systemd and Kubernetes use the same ports."""
        if self.haproxy.health_ports:
            return self.haproxy
        ports = {n: self.health_port_base + i for i, n in enumerate(self.mysql.nodes)}
        return replace(self.haproxy, health_ports=ports)

    def health_listens(self, host: str | None = None) -> list[str]:
        """``--listen HOST:PORT=NODE`` arguments, one per node (HAProxy checks each node
        on its own port)."""
        layout = self.layout()
        bind = host or layout.health_host
        return [
            arg
            for node, port in layout.health_ports.items()
            for arg in ("--listen", f"{bind}:{port}={node}")
        ]


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
