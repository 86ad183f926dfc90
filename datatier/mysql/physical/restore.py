"""Restore a physical backup into a datadir: the chain, extracted and prepared in order.

:class:`PhysicalRestore` is the restore engine of ``mariabackup`` backups: it decides what
to fetch and how to apply staged, verified objects; it never downloads.
:func:`datatier.backup.restore.restore_backup` drives it as it drives every engine (plan,
refusals, archive restores, staging with every SHA-256 checked, apply, check).

* ``plan``: the backup's chain, full first (:func:`~datatier.backup.chain.resolve_chain`);
  a broken chain is IntegrityFailure (exit 4) and is never restored. Every member's stream
  parts must be numbered 1..N.
* ``check_target``: the datadir refusals of :func:`~datatier.mysql.physical.datadir.check_datadir`
  (exit 2) and the tools present, before any archive restore is requested.
* ``apply``: per member, ``mbstream -x`` of its decompressed parts; ``--prepare`` of the full
  backup, then ``--prepare --incremental-dir`` of each incremental in order;
  :func:`check_prepared`; then ``before_install`` (a point-in-time replay:
  :mod:`datatier.binlog.physical`) on the prepared copy; then the files of tables created
  with ``DATA DIRECTORY`` go outside DIR (:mod:`.external`: their own paths, or under
  ``--external-dir``), and the prepared datadir replaces DIR's contents, owned as the
  server expects.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

from datatier.backup.catalog import Catalog
from datatier.backup.chain import resolve_chain
from datatier.backup.engine import RestoreEngine, RestoreOptions, RestorePlan
from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.config import LoadedConfig
from datatier.errors import IntegrityFailure, UsageError
from datatier.log import get_logger
from datatier.mysql.physical.datadir import (
    Owner,
    WorkArea,
    check_datadir,
    claim_datadir,
    resolve_owner,
    set_ownership,
)
from datatier.mysql.physical.engine import OBJECT_KIND
from datatier.mysql.physical.external import (
    External,
    ExternalFiles,
    Stage,
    destination,
    find_external,
    recorded_links,
    refuse_destinations,
)
from datatier.mysql.physical.lineage import ENGINE, RESTORED_BINLOG, check_links
from datatier.mysql.physical.tool import (
    BACKUP_BINARIES,
    extract,
    find_tool,
    key_files,
    prepare,
    read_checkpoints,
    take_settings,
)
from datatier.pipeline.staging import Staged

log = get_logger(__name__)

LoadedFn = Callable[[ObjectRecord], None]


def check_prepared(data: Path, manifest: Manifest) -> None:
    """IntegrityFailure unless the prepared datadir ``data`` of ``manifest``'s chain says it
    is fully applied and holds no unapplied deltas. InnoDB's binlog position past the one
    the manifest records is logged, not refused.

    InnoDB reports the position of the rollback-segment header written last, and keeps an
    old binlog's position in segments not written since: after ``RESET MASTER`` or an
    in-place restore the new binlog reuses the file names, so that position can lie past
    the backup's in the same-named file (tester7, tester8). It is told apart when it is not
    past where the source's datadir was restored at (``source.restored_binlog``:
    ``restore.old_binlog_position``); otherwise ``restore.binlog_position_ahead`` says both
    readings. Under BACKUP STAGE no commit lands after the recorded point, and a refusal of
    a good backup (the only kind reproduced) would leave nothing to restore."""
    checkpoints = read_checkpoints(data / "xtrabackup_checkpoints")
    if checkpoints.backup_type != "log-applied":
        raise IntegrityFailure(f"prepare left the backup {checkpoints.backup_type!r}")
    leftovers = [p.name for p in data.rglob("*.delta")]
    if leftovers:
        raise IntegrityFailure(f"unapplied deltas left after the prepare: {leftovers[:3]}")
    recorded = manifest.consistency
    innodb = data / "xtrabackup_binlog_pos_innodb"
    fields = innodb.read_text().split() if innodb.is_file() else []
    if len(fields) < 2 or not fields[1].isdigit() or not recorded.get("binlog_file"):
        return  # InnoDB recorded no binlog position: nothing to compare
    name, pos = Path(fields[0]).name, int(fields[1])
    if name != recorded["binlog_file"] or pos <= int(recorded["binlog_pos"]):
        return
    readings = {
        "backup_id": manifest.backup_id,
        "innodb": f"{name}:{pos}",
        "recorded": f"{recorded['binlog_file']}:{recorded['binlog_pos']}",
    }
    old = manifest.source.get(RESTORED_BINLOG)
    at = old.get("pos") if isinstance(old, dict) else None
    if isinstance(old, dict) and old.get("file") == name and isinstance(at, int) and pos <= at:
        log.warning(
            "restore.old_binlog_position", **readings, restored_at=f"{old['file']}:{old['pos']}"
        )
        return
    log.warning(
        "restore.binlog_position_ahead",
        **readings,
        gtid_pos=recorded.get("gtid_pos"),
        note="InnoDB keeps an old binlog's position after RESET MASTER or an in-place restore "
        "(the file names repeat); a point-in-time replay starts from the backup's GTID "
        "position, as recorded",
    )


def source_case(manifest: Manifest) -> int | None:
    """The ``lower_case_table_names`` of ``manifest``'s source, as recorded (None: a backup
    taken before it was recorded). A server on the restored datadir must run with it."""
    value = manifest.source.get("lower_case_table_names")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def start_command(datadir: Path, manifest: Manifest) -> str:
    """How to start ``mariadbd`` on the restored ``datadir`` (the source's naming of files)."""
    case = source_case(manifest)
    return f"mariadbd --datadir={datadir}" + (f" --lower-case-table-names={case}" if case else "")


def stream_parts(manifest: Manifest) -> list[ObjectRecord]:
    """The manifest's stream objects in order; IntegrityFailure unless numbered 1..N."""
    parts = sorted((o for o in manifest.objects if o.kind == OBJECT_KIND), key=lambda o: o.part)
    numbers = [o.part for o in parts]
    if not parts or numbers != list(range(1, len(parts) + 1)):
        raise IntegrityFailure(
            f"backup {manifest.backup_id}: stream parts {numbers[:5]}... are not 1..N"
        )
    return parts


class PhysicalRestore(RestoreEngine):
    """Restores a ``mariabackup`` backup (and its chain) into ``options.datadir``."""

    name = ENGINE

    @classmethod
    def for_manifest(
        cls,
        loaded: LoadedConfig | None,
        manifest: Manifest,
        catalog: Catalog,
        options: RestoreOptions,
    ) -> Self:
        if manifest.engine != ENGINE:
            raise UsageError(f"backup {manifest.backup_id} is a {manifest.engine} backup")
        refused = [
            flag
            for flag, given in (
                ("--target", bool(options.target)),
                ("--no-binlog", not options.binlog),
                ("--drop", options.drop),
                ("--grants", options.grants),
                ("--allow-replica-target", options.allow_replica_target),
            )
            if given
        ]
        if refused:
            raise UsageError(
                f"a physical backup restores into --datadir DIR: no {', '.join(refused)}"
            )
        if not options.datadir:
            raise UsageError(
                f"backup {manifest.backup_id} is physical: it restores into a datadir",
                hint="name one with --datadir DIR (stopped server, empty or new directory)",
            )
        return cls(manifest, catalog, options)

    def __init__(self, manifest: Manifest, catalog: Catalog, options: RestoreOptions) -> None:
        self.manifest = manifest
        self.catalog = catalog
        self.options = options
        self.datadir = Path(options.datadir or "").absolute()
        self._chain: list[Manifest] = []
        self._installing = False  # DIR changes only from WorkArea.install on
        self.before_install: Callable[[Path], None] | None = None  # given the prepared data
        self.extra_bytes = 0  # what before_install may add to the datadir

    # -- plan -------------------------------------------------------------------------------

    def plan(self) -> RestorePlan:
        """The chain and every object to fetch, full backup first; reads only."""
        if self.options.tables or self.options.databases or self.options.renames:
            raise UsageError("a physical restore brings back the whole datadir: no --tables, "
                             "--databases or --rename")  # fmt: skip
        chain = resolve_chain(self.catalog, self.manifest)
        check_links(chain)
        self._chain = chain
        objects: list[ObjectRecord] = []
        members = []
        for member in chain:
            parts = stream_parts(member)
            objects.extend(parts)
            members.append(
                {
                    "id": member.backup_id,
                    "type": member.consistency.get("backup_type"),
                    "objects": len(parts),
                    "bytes": sum(o.size for o in parts),
                    "raw_bytes": sum(o.raw_size for o in parts),
                    "gtid_pos": member.consistency.get("gtid_pos"),
                }
            )
        external = sorted(self._destinations().items())
        return RestorePlan(
            manifest=self.manifest,
            objects=objects,
            target=str(self.datadir),
            details={
                "chain": members,
                "datadir": str(self.datadir),
                "gtid_pos": self.manifest.consistency.get("gtid_pos"),
                "binlog_file": self.manifest.consistency.get("binlog_file"),
                "binlog_pos": self.manifest.consistency.get("binlog_pos"),
                "server_version": self.manifest.source.get("version"),
                "external_tables": {rel: str(dest) for rel, dest in external},
            },
            summary=[
                f"{m['type'] or 'backup':<12} {m['id']}  {m['objects']} objects, "
                f"GTID {m['gtid_pos'] or '-'}"
                for m in members
            ]
            + [f"DATA DIRECTORY table {rel} -> {dest}" for rel, dest in external]
            + [f"then start {start_command(self.datadir, self.manifest)}"],
        )

    def needed_bytes(self, plan: RestorePlan) -> int:
        """Disk the datadir needs: every member's stream (deltas are extracted beside the
        datadir before they are applied) plus the redo log the server will create, plus
        ``extra_bytes`` (what a point-in-time replay may add)."""
        redo = int(self.manifest.source.get("innodb_log_file_size") or 0)
        return sum(o.raw_size for o in plan.objects) + redo + self.extra_bytes

    def claim_target(self, plan: RestorePlan) -> contextlib.AbstractContextManager[None]:
        """One restore at a time into DIR (:func:`.datadir.claim_datadir`)."""
        return claim_datadir(self.datadir)

    def check_target(self, plan: RestorePlan) -> None:
        """Refusals (exit 2) before any archive restore is requested or anything changed."""
        find_tool(*BACKUP_BINARIES)
        find_tool("mbstream")
        resolve_owner(self.datadir, self.options.owner)
        check_datadir(self.datadir, self.needed_bytes(plan), force=self.options.force)
        self.refuse_external()

    def refuse_external(self) -> None:
        """UsageError (nothing changed) unless the ``DATA DIRECTORY`` tables the backup
        recorded may go where they would (:func:`.external.refuse_destinations`)."""
        refuse_destinations(
            self._destinations(),
            self.datadir,
            root=self._root(),
            force=self.options.force,
            owner=resolve_owner(self.datadir, self.options.owner),
        )

    # -- apply ------------------------------------------------------------------------------

    def apply(self, plan: RestorePlan, staged: Staged, on_loaded: LoadedFn | None = None) -> None:
        """Extract and prepare the chain from verified local copies; install the datadir."""
        chain = self._chain or resolve_chain(self.catalog, self.manifest)
        owner = resolve_owner(self.datadir, self.options.owner)
        jobs = max(1, self.options.jobs)
        with WorkArea(self.datadir) as work:
            for number, member in enumerate(chain):
                started = time.monotonic()
                dest = work.data if number == 0 else work.increment(number)
                extract(self._stream(member, staged, on_loaded), dest, parallel=jobs)
                if number:  # the server's settings as of this backup (a key plugin since?)
                    take_settings(dest, work.data)
                prepare(work.data, incremental=None if number == 0 else dest)
                log.info(
                    "restore.prepared",
                    backup_id=member.backup_id,
                    type=member.consistency.get("backup_type"),
                    seconds=round(time.monotonic() - started, 3),
                )
                if number:
                    shutil.rmtree(dest, ignore_errors=True)
            check_prepared(work.data, self.manifest)
            keys = key_files(work.data)
            if keys:
                log.warning(
                    "restore.needs_keys",
                    files=[  # a relative name: within the datadir, once installed
                        str(self.datadir / k.relative_to(work.data))
                        if k.is_relative_to(work.data)
                        else str(k)
                        for k in keys
                    ],
                    note="the backup's server encrypts data with file_key_management: start "
                    "mariadbd on the restored datadir with that plugin and these files "
                    "(plugin_load_add=file_key_management, file_key_management_filename=...), "
                    "or its encrypted tables cannot be read",
                )
            external = find_external(work.data)
            if self.before_install is not None:  # a server on the copy runs as its owner
                self._external_files(external, work.data, owner).check()  # before the replay
                set_ownership(work.data, owner)
                stage = Stage(external, work.data, work.stage, owner)
                self.before_install(work.data)
                external = stage.collect()  # renamed, rebuilt or dropped by the replay
            files = self._external_files(external, work.data, owner)
            files.check()

            def changing() -> None:  # a failed swap is undone: DIR only changes after it
                files.installing()
                self._installing = True

            with files:
                files.place()
                work.install(owner, before_changes=changing)
                files.commit()
        log.info(
            "restore.datadir_ready",
            datadir=str(self.datadir),
            owner=owner.name,
            start=start_command(self.datadir, self.manifest),
        )

    def _root(self) -> Path | None:
        return Path(self.options.external_dir).absolute() if self.options.external_dir else None

    def _destinations(self) -> dict[str, Path]:
        """Where the backup's recorded ``DATA DIRECTORY`` tables go (checked again after
        the prepare, which reads the copy's own links)."""
        links = recorded_links(self.manifest.source)
        return {rel: destination(rel, path, self._root()) for rel, path in links.items()}

    def _external_files(self, found: list[External], data: Path, owner: Owner) -> ExternalFiles:
        return ExternalFiles(
            found, data, self.datadir, root=self._root(), owner=owner, force=self.options.force
        )

    def changed_target(self) -> bool:
        """Whether the failed :meth:`apply` reached the install: before it, DIR is as it was
        (a DIR this restore created is removed)."""
        return self._installing

    @staticmethod
    def _stream(member: Manifest, staged: Staged, on_loaded: LoadedFn | None) -> Iterator[bytes]:
        def one(record: ObjectRecord) -> Iterator[bytes]:
            yield from staged.decompressed(record.key)
            if on_loaded:
                on_loaded(record)

        return itertools.chain.from_iterable(one(r) for r in stream_parts(member))
