"""``datatier replication``: the heartbeat writer and the topology's replication status."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import click

from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option, redraw, table
from datatier.errors import ConfigError, ServiceUnavailable
from datatier.log import get_logger
from datatier.mysql.connection import endpoint, primary_name
from datatier.mysql.heartbeat import MIN_INTERVAL, HeartbeatWriter
from datatier.mysql.replica_status import gtid_gap
from datatier.replication.monitor import Monitor
from datatier.replication.snapshot import Snapshot

log = get_logger(__name__)

COLUMNS = ("node", "role", "address", "up", "read_only", "lag", "io", "sql", "sbm", "gap", "error")


@click.group("replication")
def replication_group() -> None:
    """Replication heartbeat and status of the MySQL/MariaDB topology."""


@replication_group.command("heartbeat")
@click.option(
    "--interval",
    type=click.FloatRange(min=MIN_INTERVAL),
    default=None,
    help="Seconds between beats (min 0.05). Default: health.heartbeat_interval (0.5).",
)
@click.option("--node", default=None, help="Write on this node. Default: the configured primary.")
@click.option("--once", is_flag=True, help="Write one beat (creating the table) and exit.")
@json_option("With --once: print JSON.")
@pass_app
def heartbeat(app: AppContext, interval: float | None, node: str | None, once: bool) -> None:
    """Write the UTC heartbeat into datatier.heartbeat on the primary, every interval.

    Runs until SIGINT/SIGTERM. Replicas' lag is their own UTC clock minus the replicated
    timestamp, so clock skew between hosts adds to it (see `replication status`).
    Exit 3 if the primary cannot be reached at start; 1 if it is read_only.
    """
    config = app.loaded().config
    name = node or primary_name(config.mysql)
    writer = HeartbeatWriter(
        endpoint(config.mysql, name), interval or config.health.heartbeat_interval
    )
    writer.open()
    if once:
        writer.close()
        doc = {"node": name, "server_id": writer.server_id}
        emit(Output(doc, f"heartbeat written on {name} (server_id {writer.server_id})"))
        return
    stop = threading.Event()
    _stop_on_signals(stop)
    log.info("heartbeat.started", node=name, interval=writer.interval, server_id=writer.server_id)
    writer.run(stop)
    log.info("heartbeat.stopped", node=name, beats=writer.beats, errors=writer.errors)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")


def _fmt_lag(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}s"


def status_rows(snap: Snapshot) -> list[dict[str, Any]]:
    """One display row per node (primary first), JSON-ready."""
    primary = snap.primary()
    rows = []
    for name in sorted(snap.nodes, key=lambda n: (snap.nodes[n].role != "primary", n)):
        node = snap.nodes[name]
        rep = node.replica
        gap = None
        if rep is not None and primary is not None and primary.gtid_position:
            gap = gtid_gap(primary.gtid_position, rep.gtid_executed)
        rows.append(
            {
                "node": name,
                "role": node.role,
                "address": f"{node.host}:{node.port}",
                "up": "yes" if node.reachable else "NO",
                "read_only": None
                if node.read_only is None
                else ("yes" if node.read_only else "no"),
                "lag": _fmt_lag(node.lag) if rep is not None else None,
                "heartbeat_age": _fmt_lag(node.lag) if rep is None else None,
                "io": None if rep is None else rep.io_running,
                "sql": None if rep is None else rep.sql_running,
                "sbm": None if rep is None else rep.seconds_behind,
                "gap": gap,
                "gtid": node.gtid_position or None,
                "clock_skew": _fmt_lag(snap.clock_skew(name)),
                "error": node.error or (rep.last_error if rep is not None else "") or None,
            }
        )
    return rows


@replication_group.command("status")
@json_option("Print the full measurement as JSON.")
@click.option("--watch", is_flag=True, help="Refresh every health.interval until Ctrl-C.")
@pass_app
def status(app: AppContext, watch: bool) -> None:
    """Show the topology: each node's role, read_only, heartbeat lag, threads, errors, GTID.

    LAG is the heartbeat lag (replica clock minus replicated heartbeat); SBM is
    Seconds_Behind_Master as the server reports it; GAP counts transactions the replica has
    yet to apply (MariaDB GTIDs). Exit 3 when any node is unreachable.
    """
    config = app.loaded().config
    if not config.mysql.nodes:
        raise ConfigError("config", "mysql.nodes", "no MySQL nodes configured")
    monitor = Monitor(config.mysql, config.health)
    try:
        while True:
            snap = monitor.measure_once()
            if watch:
                redraw()
            emit(_status_output(snap))
            if not watch:
                break
            time.sleep(config.health.interval)
    except KeyboardInterrupt:
        pass
    finally:
        monitor.stop()
    down = sorted(n for n, node in snap.nodes.items() if not node.reachable)
    if down:
        raise ServiceUnavailable(f"unreachable: {', '.join(down)}")


def _status_output(snap: Snapshot) -> Output:
    rows = status_rows(snap)
    doc = {
        "nodes": [{**snap.nodes[r["node"]].to_json(), "gtid_gap": r["gap"]} for r in rows],
        "clock_skew_seconds": {n: snap.clock_skew(n) for n in sorted(snap.nodes)},
        "heartbeat_note": snap.heartbeat_note() or None,
    }
    lines = [table(rows, COLUMNS)]
    primary = snap.primary()
    note = snap.heartbeat_note()
    if primary is not None and primary.lag is not None:
        hint = f" ({note}: replica lags are not measured)" if note else ""
        lines.append(f"primary heartbeat age: {primary.lag:.3f}s{hint}")
    elif note:
        lines.append(note)
    return Output(doc, "\n".join(lines))
