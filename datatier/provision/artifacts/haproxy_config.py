"""An HAProxy configuration driven only by datatier's health endpoint.

Contract: :func:`render_haproxy` returns a complete ``haproxy.cfg`` (TCP mode) with two
listeners. ``mysql-write`` lists every node and checks ``/primary``: only the reachable,
writable node is up, so a promoted replica takes writes without a config change.
``mysql-read`` lists the replicas, checks ``/replica?lag=...`` and falls back to the primary
(``backup``, unchecked) when no replica is healthy. Each node's check goes to its own
health port (``datatier health serve --listen HOST:PORT=NODE``), because an HAProxy backend
sends one check URI to all of its servers. ``rise`` > ``fall`` plus the endpoint's own
hysteresis keep a replica near the threshold from flapping; ``on-marked-down
shutdown-sessions`` closes connections to a node once it is marked down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from datatier.config import MySQLSettings
from datatier.errors import UsageError


@dataclass(frozen=True)
class HAProxyLayout:
    """Where HAProxy listens and how it checks. ``health_ports``: node -> its health port."""

    write_bind: str
    read_bind: str
    health_ports: Mapping[str, int]
    health_host: str = "127.0.0.1"
    max_lag: str = "2s"
    inter_ms: int = 1000
    fall: int = 2
    rise: int = 3
    maxconn: int = 4096
    extra_global: tuple[str, ...] = field(default_factory=tuple)


def _server(name: str, host: str, port: int, check: str) -> str:
    return f"    server {name} {host}:{port} {check}".rstrip()


def render_haproxy(mysql: MySQLSettings, layout: HAProxyLayout) -> str:
    """The ``haproxy.cfg`` text for the topology in ``mysql`` (see module docstring).

    Raises UsageError when a node has no health port or no primary/replica is configured.
    """
    missing = sorted(set(mysql.nodes) - set(layout.health_ports))
    if missing:
        raise UsageError(f"no health port for node(s): {', '.join(missing)}")
    primary = mysql.primary()
    replicas = mysql.replicas()
    if primary is None or not replicas:
        raise UsageError("HAProxy needs one primary and at least one replica in mysql.nodes")
    defaults = (
        f"    default-server inter {layout.inter_ms}ms fall {layout.fall} rise {layout.rise} "
        "on-marked-down shutdown-sessions"
    )

    def check(node: str) -> str:
        return f"check addr {layout.health_host} port {layout.health_ports[node]}"

    lines = [
        "# Rendered by datatier: HAProxy routes MySQL by datatier's health endpoint only.",
        "# Run one `datatier health serve --listen HOST:PORT=NODE` listener per node.",
        "global",
        f"    maxconn {layout.maxconn}",
        *(f"    {line}" for line in layout.extra_global),
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 3s",
        "    timeout client 1h",
        "    timeout server 1h",
        "    timeout check 2s",
        "",
        "listen mysql-write",
        f"    bind {layout.write_bind}",
        "    option httpchk",
        "    http-check send meth GET uri /primary",
        "    http-check expect status 200",
        defaults,
        *(
            _server(name, node.host, node.port, check(name))
            for name, node in sorted(mysql.nodes.items())
        ),
        "",
        "listen mysql-read",
        f"    bind {layout.read_bind}",
        "    balance roundrobin",
        "    option httpchk",
        f"    http-check send meth GET uri /replica?lag={layout.max_lag}",
        "    http-check expect status 200",
        defaults,
        *(
            _server(name, node.host, node.port, check(name))
            for name, node in sorted(replicas.items())
        ),
        "    # reads fall back to the primary while no replica is healthy",
        _server(primary[0], primary[1].host, primary[1].port, "backup"),
    ]
    return "\n".join(lines) + "\n"
