"""``datatier health``: the replica health HTTP endpoint for HAProxy and monitors."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import click

from datatier import log as logging_setup
from datatier.backup.metrics import BackupCollector
from datatier.backup.service import policies_dir
from datatier.backup.stats import BackupStatsMonitor
from datatier.backup.stores import store_for
from datatier.cli.context import AppContext, pass_app
from datatier.errors import ConfigError, ServiceUnavailable
from datatier.log import get_logger
from datatier.metrics import build_registry
from datatier.mysql.connection import primary_endpoint
from datatier.mysql.heartbeat import HeartbeatWriter
from datatier.replication.health import HealthServer, parse_listen, serve
from datatier.replication.monitor import Monitor

if TYPE_CHECKING:
    from datatier.binlog.status import ArchiveWatch
    from datatier.metrics import Collector

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
@click.option(
    "--heartbeat",
    is_flag=True,
    help="Also run the heartbeat writer on the primary in this process (one unit does "
    "both); /health then turns 503 if the writer's thread dies.",
)
@pass_app
def serve_cmd(
    app: AppContext, listens: tuple[str, ...], interval: float | None, heartbeat: bool
) -> None:
    """Run the monitor loop and answer /primary, /replica?lag=2s&node=NAME, /health, /metrics.

    Handlers answer from the monitor's last measurement and never open MySQL connections.
    /metrics also has each backup policy's metrics, read from the stores every
    health.backup_metrics_interval seconds in a background thread (0: off).
    Runs until SIGINT/SIGTERM. Exit 2 on a bad --listen, 3 if an address is in use (or,
    with --heartbeat, if the primary cannot be reached at start).
    """
    loaded = app.loaded()
    config = loaded.config
    if not config.mysql.nodes:
        raise ConfigError("config", "mysql.nodes", "no MySQL nodes configured")
    specs = [parse_listen(text) for text in (listens or (config.health.listen,))]
    writer = None
    if heartbeat:
        writer = HeartbeatWriter(primary_endpoint(config.mysql), config.health.heartbeat_interval)
    monitor = Monitor(config.mysql, config.health, interval=interval)
    stats = BackupStatsMonitor(
        policies_dir(loaded),
        config.backup.default_store,
        lambda url: store_for(url, config, lookup=True),
        config.health.backup_metrics_interval,
    )
    watch = binlog_watch(app)
    collectors: list[Collector] = [BackupCollector(lambda: stats.stats)]
    if watch is not None:
        from datatier.binlog.metrics import BinlogArchiveCollector

        collectors.append(BinlogArchiveCollector(watch))
    registry = build_registry(*collectors)  # after replication
    servers: list[HealthServer] = []
    try:
        for host, port, node in specs:
            try:
                servers.append(
                    serve(
                        (host, port),
                        monitor,
                        config.health.replica_max_lag,
                        node,
                        registry,
                        heartbeat=writer,
                    )
                )
            except OSError as exc:
                raise ServiceUnavailable(
                    f"cannot listen on {host}:{port}: {exc.strerror}"
                ) from None
        if writer is not None:
            writer.start()
    except BaseException:
        for server in servers:
            server.server_close()
        raise
    monitor.start()
    if config.health.backup_metrics_interval > 0:
        stats.start()
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
        if not logging_setup.json_enabled():  # JSON logs: nothing plain on stderr
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
        stats.stop()
        if writer is not None:
            writer.stop()
        if watch is not None:
            watch.stop()
        log.info("health.stopped")


def binlog_watch(app: AppContext) -> ArchiveWatch | None:
    """With ``binlog.policy`` set, /metrics also shows the binlog archive's lag and gaps,
    refreshed in the background by an :class:`ArchiveWatch` (None otherwise)."""
    if not app.loaded().config.binlog.policy:
        return None
    from datatier.binlog.status import ArchiveWatch  # lazy: only when configured

    return ArchiveWatch(app.loaded())
