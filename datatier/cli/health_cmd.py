"""``datatier health``: the replica health HTTP endpoint for HAProxy and monitors."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import click
from prometheus_client import CollectorRegistry

from datatier.cli.context import AppContext, pass_app
from datatier.errors import ConfigError, ServiceUnavailable
from datatier.log import get_logger
from datatier.replication.monitor import Monitor
from datatier.replication.server import HealthServer, parse_listen, serve

if TYPE_CHECKING:
    from datatier.binlog.status import ArchiveWatch

log = get_logger(__name__)


@click.group("health")
def health_group() -> None:
    """Serve replica and primary health over HTTP (Patroni-style endpoints)."""


@health_group.command("serve")
@click.option(
    "--listen",
    "listens",
    metavar="HOST:PORT[=NODE]",
    multiple=True,
    help="Address to serve on (repeatable). With =NODE the port answers for that node "
    "without ?node= (one port per node, for HAProxy). Default: health.listen.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=None,
    help="Seconds between monitor rounds. Default: health.interval (1.0).",
)
@pass_app
def serve_cmd(app: AppContext, listens: tuple[str, ...], interval: float | None) -> None:
    """Run the monitor loop and answer /primary, /replica?lag=2s&node=NAME, /health, /metrics.

    Handlers answer from the monitor's last measurement and never open MySQL connections.
    Runs until SIGINT/SIGTERM. Exit 2 on a bad --listen, 3 if an address is in use.
    """
    config = app.loaded().config
    if not config.mysql.nodes:
        raise ConfigError("config", "mysql.nodes", "no MySQL nodes configured")
    specs = [parse_listen(text) for text in (listens or (config.health.listen,))]
    monitor = Monitor(config.mysql, config.health, interval=interval)
    registry, watch = binlog_registry(app)
    servers: list[HealthServer] = []
    try:
        for host, port, node in specs:
            try:
                server = serve((host, port), monitor, config.health.replica_max_lag, node, registry)
                servers.append(server)
            except OSError as exc:
                raise ServiceUnavailable(
                    f"cannot listen on {host}:{port}: {exc.strerror}"
                ) from None
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    monitor.start()
    if watch is not None:
        watch.start()
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        for s in servers
    ]
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for thread in threads:
        thread.start()
    for server, (_, _, node) in zip(servers, specs, strict=True):
        bound_host, bound_port = server.server_address[:2]
        where = f"{bound_host!s}:{bound_port}"
        log.info("health.serving", listen=where, node=node, interval=monitor.interval)
        click.echo(
            f"serving health on http://{where}/" + (f" for {node}" if node else ""), err=True
        )
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        monitor.stop()
        if watch is not None:
            watch.stop()
        log.info("health.stopped")


def binlog_registry(app: AppContext) -> tuple[CollectorRegistry | None, ArchiveWatch | None]:
    """With ``binlog.policy`` set, /metrics also shows the binlog archive's lag and gaps
    (refreshed in the background by an :class:`ArchiveWatch`)."""
    if not app.loaded().config.binlog.policy:
        return None, None
    from datatier.binlog.metrics import BinlogArchiveCollector  # lazy: only when configured
    from datatier.binlog.status import ArchiveWatch

    watch = ArchiveWatch(app.loaded())
    registry = CollectorRegistry(auto_describe=True)
    registry.register(BinlogArchiveCollector(watch))
    return registry, watch
