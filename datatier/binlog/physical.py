"""The point-in-time restore of physical backups: the chain prepared in DIR's work area, the
archived binlog replayed on it by a private scratch server, then the datadir installed.

Chosen by the registry for ``mariabackup`` backups with ``--until``/``--until-gtid``; the
generic sequence of :func:`datatier.backup.restore.restore_backup` keeps every refusal
before any cost:

* ``plan`` (reads only): :func:`~datatier.binlog.pitr.plan_pitr` as for a logical base
  (the newest complete physical backup of the policy before the target; exit 2 for a
  target the archive cannot reach or a gap); the objects are the chain's stream parts
  (:class:`~datatier.mysql.physical.restore.PhysicalRestore`) and the segments, which live
  in the binlog archive's store;
* ``check_target``: the datadir refusals of the physical restore, and the replay's tools;
* ``check_staged`` (and ``--dry-run --scan``): the staged segments read once up to the
  target, with the logical replay's transactions and stop rule
  (:func:`~datatier.binlog.replay.groups`): a GTID target that is not in the archive is
  refused (exit 2) before anything is extracted or prepared;
* ``apply``: the chain extracted and prepared in the work area beside DIR; a key file the
  copy names that is not readable here is refused (exit 2); a private
  :class:`~datatier.mysql.physical.scratch.ScratchServer` (socket only, no binlog, no
  events, no replication) on the prepared copy; the whole server's transactions from the
  backup's GTID position to the target replayed through ``mariadb-binlog`` and the client
  (:mod:`datatier.mysql.physical.replay`); a clean shutdown; then the install. Any failure
  before the install leaves DIR as it was.

The restored server has no binlog: the replay ends by setting its ``gtid_slave_pos`` to the
position it holds (the base's with what was replayed; ``details["replayed"]["gtid_pos"]``
and the log give it), so as a replica of the source it resumes after the target. The
private server runs the replay's settings (``REPLAY_SERVER_ARGS`` of
:mod:`datatier.mysql.physical.replay`: no symbolic links, so a window's ``DATA DIRECTORY``
stays inside the copy; no flush per commit and no doublewrite, as a copy that does not
shut down cleanly is never kept), its temporary files beside the copy, and the plugins the
copy installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Self

from datatier.backup.catalog import Catalog
from datatier.backup.engine import RestoreOptions, RestorePlan
from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.backup.service import load_policy
from datatier.binlog.pitr import (
    PitrEngine,
    PitrPlan,
    pitr_details,
    plan_pitr,
    segment_lines,
    segment_loader,
)
from datatier.binlog.records import iso
from datatier.binlog.replay import ScanReport, groups
from datatier.config import LoadedConfig
from datatier.display import human_bytes
from datatier.errors import UsageError
from datatier.log import get_logger
from datatier.mysql.binlog.selection import ReplayRefused
from datatier.mysql.physical.datadir import resolve_owner
from datatier.mysql.physical.lineage import ENGINE
from datatier.mysql.physical.replay import (
    REPLAY_SERVER_ARGS,
    Replayer,
    expected_errors,
    plugin_args,
    replay_tools,
)
from datatier.mysql.physical.restore import PhysicalRestore, source_case
from datatier.mysql.physical.scratch import ScratchServer, mariadbd_binary
from datatier.mysql.physical.tool import missing_key_file
from datatier.pipeline.staging import Staged
from datatier.tempdirs import held_directory

log = get_logger(__name__)

SHUTDOWN_SECONDS = 1800.0  # a replay may leave much to flush; never cut short by SIGKILL
FAILED_STOP_SECONDS = 30.0  # a failed replay's server: its copy is removed anyway
REPLAY_BUFFER_POOL_MB = 1024


class PhysicalPitrRestore(PitrEngine):
    """Restores a ``mariabackup`` backup's chain, then replays archived binlogs up to
    ``--until`` on it before installing it into ``--datadir`` (see module docstring)."""

    name = f"{ENGINE}+binlog"

    @classmethod
    def for_manifest(
        cls, loaded: LoadedConfig, manifest: Manifest, catalog: Catalog, options: RestoreOptions
    ) -> Self:
        if (options.until is None) == (options.until_gtid is None):
            raise UsageError("give exactly one of --until TIME and --until-gtid GTID")
        base = PhysicalRestore.for_manifest(
            loaded, manifest, catalog, replace(options, until=None, until_gtid=None)
        )
        pitr = plan_pitr(
            loaded,
            catalog,
            load_policy(loaded, manifest.policy),
            until=options.until,
            until_gtid=options.until_gtid,
            backup_id=manifest.backup_id,
        )
        return cls(pitr, base, options)

    def __init__(self, pitr: PitrPlan, base: PhysicalRestore, options: RestoreOptions) -> None:
        self.pitr = pitr
        self.base = base
        self.options = options
        self.base_plan: RestorePlan | None = None
        self._staged: Staged | None = None
        self._replayed: dict[str, Any] = {}
        base.before_install = self._replay
        base.extra_bytes = pitr.replay_bytes  # the datadir grows by about what is replayed

    # -- plan and refusals ------------------------------------------------------------------

    def plan(self) -> RestorePlan:
        base = self.base.plan()
        self.base_plan = base
        pitr = self.pitr
        segments = [r.object_record() for r in pitr.segments]
        return RestorePlan(
            manifest=pitr.manifest,
            objects=[*base.objects, *segments],
            target=base.target,
            details=pitr_details(pitr, base.details),
            summary=[
                *base.summary[:-1],
                *segment_lines(pitr, "on the prepared copy by a private scratch server "),
                base.summary[-1],
            ],
            stores={r.key: pitr.archive_store for r in segments},
        )

    def claim_target(self, plan: RestorePlan) -> contextlib.AbstractContextManager[None]:
        assert self.base_plan is not None
        return self.base.claim_target(self.base_plan)

    def check_target(self, plan: RestorePlan) -> None:
        """The physical restore's refusals (exit 2), and the replay's tools present."""
        assert self.base_plan is not None
        replay_tools()
        mariadbd_binary()
        self.base.check_target(self.base_plan)

    def check_staged(self, plan: RestorePlan, staged: Staged) -> None:
        """The segments read up to the target before anything is extracted: a target they
        do not reach is refused (exit 2); the staged objects are kept for the replay."""
        self._scan(plan, staged)
        self._staged = staged

    def rehearse(self, plan: RestorePlan, staged: Staged) -> None:
        """The scan of :meth:`check_staged`, its refusals and ``details["scan"]``."""
        self._scan(plan, staged)

    def _scan(self, plan: RestorePlan, staged: Staged) -> None:
        pitr, report = self.pitr, ScanReport()
        for fde, group in groups(
            pitr.segments, segment_loader(staged), pitr.start, pitr.target, report
        ):
            expected_errors(group.events, fde.checksum, group.gtid)  # refused before any cost
            report.transactions += 1
            report.statement_bytes += sum(len(e) for e in group.events)
        wanted = pitr.target.until_gtid
        if wanted is not None and not report.reached and not pitr.start.includes(wanted):
            raise ReplayRefused(f"GTID {wanted} is not in the archived segments")
        plan.details["scan"] = {
            "transactions": report.transactions,
            "skipped": report.skipped,
            "event_bytes": report.statement_bytes,
            "last": str(report.last or ""),
            "last_time": iso(report.last_ts) if report.last_ts else None,
            "stop": report.stop,
        }
        plan.summary.append(
            f"scanned: {report.transactions} transaction(s) to replay, "
            f"{human_bytes(report.statement_bytes)} of events, {report.reached_text}; "
            f"{report.skipped} skipped (in the base backup)"
        )

    # -- apply ------------------------------------------------------------------------------

    def apply(
        self, plan: RestorePlan, staged: Staged, on_loaded: Callable[[ObjectRecord], None] | None
    ) -> None:
        """The physical restore, whose :meth:`_replay` runs on the prepared copy before it
        is installed (after :meth:`check_staged`)."""
        assert self.base_plan is not None, "plan runs first"
        self._staged = staged
        self._replayed = {}
        self.base.apply(self.base_plan, staged, on_loaded)
        plan.details["replayed"] = self._replayed
        plan.summary.append(
            f"replayed {self._replayed.get('transactions', 0)} transaction(s); the restored "
            f"server holds GTID position {self._replayed.get('gtid_pos') or '-'}, its "
            "gtid_slave_pos (it has no binlog): a replica of the source resumes after it"
        )

    def changed_target(self) -> bool:
        return self.base.changed_target()

    def _replay(self, data: Path) -> None:
        """Replay the segments on the prepared copy ``data`` (see module docstring)."""
        assert self._staged is not None
        pitr = self.pitr
        missing = missing_key_file(data)
        if missing is not None:
            raise UsageError(
                f"cannot replay the binlog on backup {pitr.manifest.backup_id}: its server read "
                f"its encryption keys through {missing} (file_key_management in "
                "backup-my.cnf), which is not readable here; nothing was installed",
                hint="restore where that file is (the database host), or put a copy of it at "
                "that path (a symlink will do)",
            )
        started = time.monotonic()
        report = ScanReport()
        tmpdir = data.parent / "replay-tmp"  # beside the copy: on DIR's file system
        tmpdir.mkdir()
        owner = resolve_owner(data)
        os.chown(tmpdir, owner.uid, owner.gid)
        with held_directory("datatier-replay-", _where(self.options.staging_dir)) as work:
            server = self._server(data, tmpdir, [])
            try:
                plugins = plugin_args(server.socket_path)
                if plugins:  # loaded only from the command line: no grant tables
                    server.stop()
                    server = self._server(data, tmpdir, plugins)
                with Replayer(server.socket_path, work, pitr.start) as replayer:
                    for fde, group in groups(
                        pitr.segments,
                        self.replay_loader(self._staged),
                        pitr.start,
                        pitr.target,
                        report,
                    ):
                        replayer.add(fde, group)
                    replayed = replayer.finish()
                server.shutdown()
            finally:
                server.stop_timeout = FAILED_STOP_SECONDS  # a copy never kept: no long wait
                server.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
        self._replayed = {
            **replayed.to_json(),
            "stop": report.stop,
            "last_time": iso(report.last_ts) if report.last_ts else None,
            "seconds": round(time.monotonic() - started, 3),
        }
        log.info(
            "restore.pitr_replayed",
            backup_id=pitr.manifest.backup_id,
            until=pitr.target_text,
            transactions=replayed.transactions,
            last=replayed.last,
            gtid_pos=str(replayed.reached),
        )

    def _server(self, data: Path, tmpdir: Path, plugins: list[str]) -> ScratchServer:
        """The private server on the copy, started (see module docstring)."""
        server = ScratchServer(
            data,
            0,
            private=True,
            stop_timeout=SHUTDOWN_SECONDS,
            buffer_pool_mb=REPLAY_BUFFER_POOL_MB,
            lower_case_table_names=source_case(self.pitr.manifest),
            tmpdir=tmpdir,
            extra_args=[*REPLAY_SERVER_ARGS, *plugins],
        )
        server.start()
        return server


def _where(staging_dir: str | None) -> Path | None:
    return Path(staging_dir) if staging_dir else None
