"""``datatier binlog archive``, ``datatier binlogs status`` and ``binlogs accept-etags``:
the PITR archive.

Thin commands over :mod:`datatier.binlog`: the archiver runs until stopped (SIGTERM or
Ctrl-C end it after the segment in progress is published), or once with ``--once``.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from datatier.binlog.accept import AcceptReport, accept_segment_etags
from datatier.binlog.archiver import Archiver
from datatier.binlog.layout import archive_policy
from datatier.binlog.status import ArchiveStatus, archive_status
from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option
from datatier.display import human_bytes
from datatier.errors import OperationFailed


@click.group("binlog")
def binlog_group() -> None:
    """Archive the binary log continuously, for point-in-time restores."""


@binlog_group.command("archive")
@click.option(
    "--node", metavar="NAME", help="Archive this node's binlog (default: the writable one)."
)
@click.option("--once", is_flag=True, help="Archive what the server has written so far, then exit.")
@json_option("Print the report (with --once) as JSON.")
@pass_app
def archive_cmd(app: AppContext, node: str | None, once: bool) -> None:
    """Stream the binlog into the store of the binlog policy (``binlog.policy``).

    Resumes where the archive ends; follows the writable primary across failovers unless
    --node pins a source (a replica with log_slave_updates will do). Store outages are
    waited out; SIGTERM/Ctrl-C stop it after the segment in progress is published.
    --once exits 1 when binlogs were purged before they were archived (a gap).
    """
    loaded = app.loaded()
    stop = threading.Event()
    archiver = Archiver(loaded, archive_policy(loaded), node=node, once=once, stop=stop)
    in_main = threading.current_thread() is threading.main_thread()

    def graceful(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, graceful) if in_main else None
    try:
        report = archiver.run()
    except KeyboardInterrupt:
        stop.set()
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    text = (
        f"archived {report.segments} segment(s), {report.transactions} transaction(s), "
        f"{human_bytes(report.bytes)} from {report.node or '-'}; archive ends at "
        f"{report.position or '(empty)'}"
    )
    emit(Output(report.to_json(), text, [f"GAP: {gap}" for gap in report.gaps]))
    if report.gaps:
        raise OperationFailed(f"archived with {len(report.gaps)} new gap(s) in the archive")


@click.group("binlogs")
def binlogs_group() -> None:
    """Inspect the binlog archive."""


@binlogs_group.command("status")
@json_option()
@pass_app
def status_cmd(app: AppContext) -> None:
    """The archive's window (from/to time and GTID), its lag behind the server and its gaps.

    Exit 1 when the archive has a gap (each one is named), 3 when the store cannot be
    reached. A restore --until can reach up to the window's end (later while the archiver
    runs caught up with the primary).
    """
    status = archive_status(app.loaded())
    emit(Output(status.to_json(), lambda: _status_text(status)))
    if status.gaps:
        raise OperationFailed(f"the binlog archive has {len(status.gaps)} gap(s)")


@binlogs_group.command("accept-etags")
@click.option("--jobs", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Segments read at once.")  # fmt: skip
@json_option()
@pass_app
def accept_etags_cmd(app: AppContext, jobs: int) -> None:
    """Accept segments copied with their own bytes under another ETag.

    A segment whose object a tool wrote again (a bucket copy or migration gives objects
    multipart ETags) is a gap in `binlogs status` and a point-in-time restore will not
    replay across it. This reads every such segment whole and checks its size and SHA-256
    against its index record, between two listings that agree; only then does it record the
    ETag the store now lists in each record. Exit 0 (also when nothing needed accepting;
    other gaps are listed), 4 when a segment holds other bytes (nothing written), 5 when
    one is in an archive storage class, 3 when the store cannot be reached.
    """
    report = accept_segment_etags(app.loaded(), jobs=jobs)
    emit(Output(report.to_json(), lambda: _accept_text(report)))


def _accept_text(report: AcceptReport) -> str:
    lines = [
        f"accepted {len(report.accepted)} segment(s) of {report.store}/{report.policy}/_binlogs/"
        + (f" ({human_bytes(report.checked_bytes)} read and checked)" if report.accepted else "")
    ]
    lines += [f"  {key}" for key in report.accepted]
    lines.append(f"gaps left: {len(report.gaps)}")
    lines += [f"  {gap}" for gap in report.gaps]
    return "\n".join(lines)


def _status_text(status: ArchiveStatus) -> str:
    window = status.window
    server = status.server
    where = f"{server['node']} at {server['gtid_binlog_pos']}" if server else "unreachable"
    lag = "unknown" if status.lag_seconds is None else f"{status.lag_seconds:.1f} s"
    lines = [
        f"archive      {status.store}/{status.policy}/_binlogs/",
        f"window       {window['from_time'] or '-'} .. {window['to_time'] or '-'}  "
        f"(GTID {window['from_gtid'] or '(start)'} .. {window['to_gtid'] or '-'})",
        f"segments     {window['segments']}: {window['transactions']} transactions, "
        f"{human_bytes(int(str(window['bytes'])))}",
        f"lag          {lag} ({status.lag_basis}); server {where}",
        f"gaps         {len(status.gaps)}",
    ]
    note = str(status.archiver.get("vouch_note") or "")
    if note:
        vouched = status.archiver.get("safe_until_time") or "-"
        lines.insert(-1, f"vouched      up to {vouched}: {note}")
    lines += [f"  {gap}" for gap in status.gaps]
    return "\n".join(lines)
