"""The ``binlog retention`` check: the binlog archive keeps up with its source and can still
catch up, so a point-in-time restore reaches the present.

It fails when the archive has gaps (a restore cannot cross them), when it trails the source
by more than twice ``binlog.max_archive_lag`` (the archiver flushes at half of it, so twice
is a stopped or stuck archiver), or when the source has already purged binlogs the archive
does not hold (the archiver will have to record a gap). It is skipped when archiving is not
set up: ``binlog.policy`` unset and no single MySQL policy, or (unset) an archive never
written. With ``binlog.policy`` set, an empty archive fails.
"""

from __future__ import annotations

from collections.abc import Iterator

from datatier.binlog.layout import archive_policy, archive_prefix
from datatier.binlog.status import ArchiveStatus, archive_status
from datatier.errors import ConfigError, DatatierError
from datatier.mysql.binlog.positions import Position
from datatier.mysql.binlog.source import binary_logs, binlog_expiry_seconds, file_start_position
from datatier.mysql.connection import endpoint
from datatier.ops.checks.result import CheckContext, CheckResult, failed, passed, skipped

NAME = "binlog retention"
RUN_HINT = "is `datatier binlog archive` running? see its log and `datatier binlogs status`"
GAP_HINT = (
    "a restore cannot cross a gap: take a full backup (the window restarts after it) and "
    "raise the server's binlog_expire_logs_seconds above the archiver's worst outage"
)


def check_binlog_retention(ctx: CheckContext) -> Iterator[CheckResult]:
    """See the module docstring; one line, on the archive's source node."""
    settings = ctx.loaded.config.binlog
    try:
        owner = archive_policy(ctx.loaded)
    except ConfigError as exc:
        if settings.policy:
            yield failed(NAME, "binlog.policy", str(exc), exc.hint)
        else:
            yield skipped(NAME, "archive", f"binlog archiving is not set up: {exc}")
        return
    where = archive_prefix(owner.name)
    try:
        status = archive_status(ctx.loaded, stores=ctx.extra.setdefault("stores", {}))
    except DatatierError as exc:
        yield failed(NAME, where, f"cannot read the archive: {exc}", exc.hint)
        return
    if not status.window.get("segments") and not status.gaps:
        if settings.policy:
            yield failed(NAME, where, "binlog.policy is set but the archive is empty", RUN_HINT)
        else:
            yield skipped(NAME, where, "no binlog archive (binlog archiving has not run)")
        return
    yield _verdict(ctx, status, where)


def _verdict(ctx: CheckContext, status: ArchiveStatus, where: str) -> CheckResult:
    limit = 2 * ctx.loaded.config.binlog.max_archive_lag
    if status.gaps:
        return failed(NAME, where, f"the archive has gaps: {'; '.join(status.gaps)}", GAP_HINT)
    if not status.server:
        return failed(NAME, where, "cannot reach the archive's source to compare positions")
    node = str(status.server["node"])
    target = f"{where} from {node}"
    try:
        ep = endpoint(ctx.loaded.config.mysql, node)
        files = binary_logs(ep)
        oldest = file_start_position(ep, files[0][0]) if files else Position()
        expiry = binlog_expiry_seconds(ep)
    except DatatierError as exc:
        return failed(NAME, target, f"cannot read {node}'s binlogs: {exc}", exc.hint)
    end = Position.parse(str(status.window.get("to_gtid") or ""))
    if files and not end.covers(oldest):
        return failed(
            NAME,
            target,
            f"{node} has purged binlogs the archive does not hold: its oldest, {files[0][0]}, "
            f"starts at {oldest or 'nothing'}, the archive ends at {end or 'nothing'}",
            GAP_HINT,
        )
    lag = status.lag_seconds
    if lag is None or lag > limit:
        shown = "unknown" if lag is None else f"{lag:.0f} s"
        return failed(
            NAME,
            target,
            f"the archive trails {node} by {shown} (limit {limit:g} s, twice "
            f"binlog.max_archive_lag)",
            RUN_HINT,
        )
    kept = "never purges them" if not expiry else f"keeps them {_span(expiry)}"
    return passed(
        NAME,
        target,
        f"no gap, {lag:.1f} s behind (limit {limit:g} s); {node} holds {len(files)} "
        f"binlog file(s) from {files[0][0] if files else '-'} and {kept}",
    )


def _span(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"
