"""The physical backup engine: ``mariadb-backup --backup --stream=mbstream`` into the store.

Runs on the database host (mariabackup reads the node's datadir). The stream is cut into
objects of ``chunk_mb`` raw bytes, ``data/mbstream-000001.zst`` onwards: each is one zstd
frame, so ``cat data/mbstream-*.zst | zstd -d | mbstream -x -C DIR`` rebuilds the backup
with stock tools (encrypted, ``*.zst.age``: ``age -d`` each part, in order, before ``zstd
-d``). Full or incremental (``--incremental-lsn`` = the parent's ``to_lsn``,
no local base directory) as :mod:`datatier.mysql.physical.lineage` decides.

The manifest records the copy's binlog file, position and GTID (mariabackup's binlog info,
taken under ``BACKUP STAGE BLOCK_COMMIT``) and the binlog's own GTID state there
(``binlog_gtid``, read right after the copy), its LSNs (``xtrabackup_checkpoints``), the
server's identity, the uuid of the backup the datadir was restored from (if any) and the
copy's own uuid (see :mod:`~datatier.mysql.physical.lineage`), ``--parallel`` and, per
database, the tables and views the stream holds. It records no row counts or checksums:
a physical copy cannot honestly know them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datatier.backup.catalog import Catalog
from datatier.backup.engine import BackupEngine, BackupPlan, DumpResult, PlannedTable
from datatier.backup.manifest import Manifest
from datatier.backup.objects import DEFAULT_CHUNK, ObjectWriter, OpenObject
from datatier.backup.policy import Policy
from datatier.backup.stores import store_for
from datatier.config import LoadedConfig
from datatier.display import human_bytes
from datatier.errors import ConfigError, OperationFailed
from datatier.log import get_logger
from datatier.mysql.connection import Connection, Endpoint, connect, endpoint
from datatier.mysql.physical.coverage import left_out, tablespaces
from datatier.mysql.physical.external import EXTERNAL, external_links
from datatier.mysql.physical.imports import imports_break, scan
from datatier.mysql.physical.lineage import (
    BINLOG_GTID,
    BINLOG_TAIL,
    CHECKPOINT,
    ENGINE,
    IMPORTED,
    ORIGIN,
    PAGES,
    REDO,
    RESTORED_BINLOG,
    UUID,
    Base,
    choose_base,
    copy_checkpoint,
    lsn,
    physical_backups,
)
from datatier.mysql.physical.mbstream import StreamIndex
from datatier.mysql.physical.pages import PageSampler, pages_break
from datatier.mysql.physical.server import (
    BinlogPoint,
    ServerIdentity,
    binlog_point,
    checkpoint_now,
    current_lsn,
    decode_filenames,
    read_identity,
    stored_tables,
)
from datatier.mysql.physical.tool import (
    BackupRun,
    datadir_origin,
    find_tool,
    info_uuid,
    origin_binlog,
    parse_binlog_pos,
    read_checkpoints,
    redo_created_lsn,
    tool_version,
)
from datatier.storage.base import MiB
from datatier.tempdirs import held_directory

log = get_logger(__name__)

OBJECT_KIND = "mbstream"
CONSISTENCY = "mariabackup BACKUP STAGE"
MAX_CHUNK = 16 * MiB
"""Objects are at most this many raw bytes: up to 6 wait compressed for their upload, and
datafile pages can be incompressible, so larger ones would raise peak memory past 200 MB."""


def part_key(part: int) -> str:
    """The relative key of stream part ``part`` (from 1); sorts in stream order."""
    return f"mbstream-{part:06d}.zst"


@dataclass(frozen=True)
class Decision:
    """What the next backup is, decided from the server and the catalog (reads only)."""

    server: ServerIdentity
    datadir: str
    base: Base
    lsn: int  # the server's LSN when it was decided
    origin: dict[str, Any] | None  # the datadir's: the restore it comes from
    imported: dict[str, Any]  # imports.scan of the datadir
    redo: int | None = None  # the LSN the datadir's redo log was created at
    origin_binlog: dict[str, Any] | None = None  # the binlog point its origin was copied at


def streamed(index: StreamIndex, rel: str) -> bool:
    """Whether the stream holds tablespace ``rel`` (``db/t.ibd``): whole, as a delta, or
    as the file of a table created or rebuilt during the copy (``db/t.new``)."""
    names = (rel, f"{rel}.delta", rel.removesuffix(".ibd") + ".new")
    return any(index.has(n) or index.has(f"./{n}") for n in names)


class MariabackupEngine(BackupEngine):
    """Physical backups of ``source`` (a node on this host) with mariadb-backup."""

    name = ENGINE

    @classmethod
    def for_policy(
        cls, loaded: LoadedConfig, policy: Policy, *, max_lag: float | None = None
    ) -> MariabackupEngine:
        """``max_lag`` does not apply: a physical backup copies the one node on this host."""
        node = policy.spec.source.node
        if node is None:
            raise ConfigError(str(policy.path), "source.node", "missing required value")
        catalog = Catalog(store_for(policy.store_url, loaded.config), [policy.name])
        return cls(
            endpoint(loaded.config.mysql, node),
            policy,
            catalog,
            chunk_bytes=min(policy.spec.chunk_mb * MiB, MAX_CHUNK),
            parallel=policy.spec.jobs,
        )

    def __init__(
        self,
        source: Endpoint,
        policy: Policy,
        catalog: Catalog,
        *,
        chunk_bytes: int = DEFAULT_CHUNK,
        parallel: int = 4,
    ) -> None:
        self.source = source
        self.policy = policy
        self.catalog = catalog
        self.chunk_bytes = chunk_bytes
        self.parallel = max(1, parallel)
        self.requested: bool | None = None
        self._decided: Decision | None = None

    def choose(self, incremental: bool | None) -> None:
        self.requested = incremental
        self._decided = None

    def _decide(self) -> Decision:
        """The server, its datadir (ConfigError unless on this host) and the parent."""
        with connect(self.source) as conn:
            server = read_identity(conn)
            datadir = self._datadir(server)
            now_lsn = current_lsn(conn)
            backups, binlog = None, None
            if self._may_continue():  # else choose_base reads no backups
                backups = physical_backups(self.catalog, self.policy)
                binlog = self._binlog_point(conn, server, backups[-1] if backups else None)
        origin = datadir_origin(datadir)
        redo = redo_created_lsn(datadir)
        restored_binlog = origin_binlog(datadir) if origin is not None else None
        parent = backups[-1].consistency.get(IMPORTED) if backups else None
        imported = scan(datadir, server.innodb_page_size, parent)
        pages = None
        if backups:
            newest = backups[-1]
            pages = pages_break(
                datadir, newest.consistency.get(PAGES), newest.backup_id, copy_checkpoint(newest)
            ) or imports_break(imported["files"], parent, newest.backup_id)
        base = choose_base(
            self.catalog,
            self.policy,
            server,
            now_lsn,
            self.requested,
            datetime.now(UTC),
            origin=origin,
            binlog=binlog,
            backups=backups,
            redo=redo,
            pages=pages,
        )
        return Decision(server, datadir, base, now_lsn, origin, imported, redo, restored_binlog)

    def _may_continue(self) -> bool:
        """Whether the next backup may be an incremental (not forced or set to be full)."""
        if self.requested is None:
            return self.policy.spec.full_every_days != 0
        return self.requested

    def _binlog_point(
        self, conn: Connection, server: ServerIdentity, newest: Manifest | None
    ) -> BinlogPoint | None:
        """The server's binlog's answer about ``newest``'s binlog position (the newest
        physical backup's; see :func:`~datatier.mysql.physical.lineage.binlog_break`); None
        when the binlog is off or ``newest`` recorded no position in it."""
        if not server.log_bin:
            return None
        file = newest.consistency.get("binlog_file") if newest else None
        pos = newest.consistency.get("binlog_pos") if newest else None
        if not isinstance(file, str) or not isinstance(pos, int) or isinstance(pos, bool):
            return None
        return binlog_point(conn, file, pos)

    # -- the plan ---------------------------------------------------------------------------

    def plan(self) -> BackupPlan:
        """Full or incremental and on which parent (the next :meth:`dump` keeps this
        decision), the datadir and tool, and every table the copy would hold with the
        server's size estimates."""
        binary = find_tool("mariadb-backup", "mariabackup")
        decided = self._decide()
        with connect(self.source) as conn:
            databases, stored = stored_tables(conn)
        self._decided = decided
        server, base = decided.server, decided.base
        tables = [PlannedTable(t.database, t.name, t.kind, t.rows, t.bytes) for t in stored]
        kind = "full" if base.parent is None else "incremental"
        version = tool_version(binary)
        plan = BackupPlan(
            engine=ENGINE,
            policy=self.policy.name,
            source={
                "engine": ENGINE,
                "node": self.source.name,
                "host": self.source.host,
                **server.to_json(),
                "datadir": decided.datadir,
                ORIGIN: decided.origin,
                RESTORED_BINLOG: decided.origin_binlog,
                REDO: decided.redo,
                "tool": binary,
                "tool_version": version,
            },
            consistency=CONSISTENCY,
            tables=tables,
            kind=kind,
            parent=base.parent.backup_id if base.parent else None,
            jobs=self.parallel,
            details={
                "databases": databases,
                "base_reason": base.reason,
                "lsn": decided.lsn,
                "chunk_bytes": self.chunk_bytes,
            },
        )
        lines = [
            f"source {self.source.name} ({self.source.host}:{server.port}), datadir "
            f"{decided.datadir}; mariadb-backup {version} --parallel={self.parallel}",
            f"{kind} backup: {base.reason}",
        ]
        if base.parent is not None:
            since = lsn(base.parent, "to_lsn")
            plan.details["from_lsn"] = since
            plan.details["redo_bytes_since_parent"] = max(0, decided.lsn - since)
            lines.append(
                f"copies the pages changed since LSN {since} "
                f"(redo written since: {human_bytes(max(0, decided.lsn - since))})"
            )
        views = sum(t.kind == "view" for t in tables)
        lines.append(
            f"{len(databases)} databases, {len(tables) - views} tables, {views} views: "
            f"~{human_bytes(plan.estimates()['bytes'])} in tablespaces (server estimates)"
        )
        lines.append(f"consistency: {CONSISTENCY}")
        plan.summary = lines
        return plan

    # -- the backup -------------------------------------------------------------------------

    def dump(self, writer: ObjectWriter) -> DumpResult:
        started = time.monotonic()
        binary = find_tool("mariadb-backup", "mariabackup")
        decided, self._decided = self._decided or self._decide(), None  # the plan's, if any
        server, datadir, base = decided.server, decided.datadir, decided.base
        log.info(
            "backup.physical_started",
            node=self.source.name,
            kind="full" if base.parent is None else "incremental",
            reason=base.reason,
        )
        with connect(self.source) as conn:  # the bound of the next backup's page check
            began = checkpoint_now(conn)
        kept = tablespaces(datadir)  # what the stream must hold unless changed meanwhile
        links = external_links(Path(datadir))  # a restore refuses their paths up front
        with held_directory("datatier-mariabackup-") as work:  # a killed backup's: swept
            index = StreamIndex(sampler=PageSampler(server.innodb_page_size))
            with BackupRun(
                self.source,
                work,
                datadir=datadir,
                parallel=self.parallel,
                incremental_lsn=base.incremental_lsn,
                binary=binary,
            ) as run:
                parts = self._stream(run.chunks(), index, writer)
                run.wait()
                missing = left_out(kept, tablespaces(datadir), lambda r: streamed(index, r))
                said = run.mentions(missing[0]) if missing else []
            imported = decided.imported
            during = imports_break(
                scan(datadir, server.innodb_page_size, imported)["files"], imported, "the copy"
            )
            if during:  # the copy may hold the file before the import
                raise OperationFailed(
                    f"a tablespace was imported while mariadb-backup copied: {during}",
                    hint="back up again",
                )
            if missing:
                raise OperationFailed(
                    f"mariadb-backup left out {missing[0]}"
                    + (f" and {len(missing) - 1} other tablespace(s)" if len(missing) > 1 else "")
                    + ", which the server kept through the copy: this backup would restore "
                    "without it"
                    + (f" (mariadb-backup: {self.source.scrub(' / '.join(said))})" if said else ""),
                    hint="back up again (a table renamed away and back during the copy does "
                    "this once); a DISCARD/IMPORT TABLESPACE after the last checkpoint makes "
                    "it take the table for one dropped during the copy: give the backup user "
                    "SUPER (datatier then forces a checkpoint before the copy) or restart the "
                    "server first",
                )
            index.finish()  # a truncated or empty stream never becomes a backup
            checkpoints = read_checkpoints(work / "xtrabackup_checkpoints")
            info = (work / "xtrabackup_info").read_text(errors="replace")
        expected = "full-backuped" if base.parent is None else "incremental"
        if checkpoints.backup_type != expected:
            raise OperationFailed(
                f"mariadb-backup made a {checkpoints.backup_type} backup, {expected} was asked for"
            )
        if base.parent is not None and checkpoints.from_lsn != lsn(base.parent, "to_lsn"):
            raise OperationFailed(
                f"the incremental starts at LSN {checkpoints.from_lsn}, not at its parent's "
                f"{lsn(base.parent, 'to_lsn')}"
            )
        uuid = info_uuid((index.kept("xtrabackup_info") or b"").decode(errors="replace"))
        if uuid is None:  # a restore of it could not be told from the server it came from
            raise OperationFailed("the stream holds no xtrabackup_info naming the backup's uuid")
        binlog = parse_binlog_pos(info)
        if binlog is None and server.log_bin:
            raise OperationFailed("mariadb-backup did not report the copy's binlog position")
        binlog_gtid, binlog_tail = None, None
        if binlog is not None:  # the binlog's own state there, which the next backup checks
            with connect(self.source) as conn:
                point = binlog_point(conn, binlog.file, binlog.position)
            binlog_gtid = point.gtid if point else None
            binlog_tail = point.tail if point else None
        databases = self._databases(index)
        seconds = round(time.monotonic() - started, 3)
        log.info(
            "backup.physical_done",
            node=self.source.name,
            parts=parts,
            stream_bytes=index.total,
            to_lsn=checkpoints.to_lsn,
            seconds=seconds,
        )
        return DumpResult(
            source={
                "engine": ENGINE,
                "node": self.source.name,
                "host": self.source.host,
                **server.to_json(),
                "datadir": datadir,
                ORIGIN: decided.origin,
                RESTORED_BINLOG: decided.origin_binlog,
                REDO: decided.redo,
                EXTERNAL: links,
            },
            consistency={
                "method": CONSISTENCY,
                "backup_type": "full" if base.parent is None else "incremental",
                "binlog_file": binlog.file if binlog else None,
                "binlog_pos": binlog.position if binlog else None,
                "gtid_pos": binlog.gtid if binlog else "",
                BINLOG_GTID: binlog_gtid,
                BINLOG_TAIL: binlog_tail,
                PAGES: index.sampler.sample() if index.sampler else None,
                "from_lsn": checkpoints.from_lsn,
                "to_lsn": checkpoints.to_lsn,
                "last_lsn": checkpoints.last_lsn,
                CHECKPOINT: began,
                IMPORTED: imported,
                UUID: uuid,
            },
            tables=[],
            databases=databases,
            options={
                "tool": "mariadb-backup",
                "tool_version": tool_version(binary),
                "parallel": self.parallel,
                "stream_bytes": index.total,
                "stream_files": len(index.files),
                "parts": parts,
                "chunk_bytes": self.chunk_bytes,
                "base_reason": base.reason,
            },
            parent=base.parent.backup_id if base.parent else None,
        )

    def _datadir(self, server: ServerIdentity) -> str:
        """The datadir mariabackup copies: the policy's, else the server's; ConfigError
        unless it is a directory on this host holding an InnoDB system tablespace."""
        configured = self.policy.spec.source.datadir
        datadir = configured or server.datadir
        path = Path(datadir)
        if not (path / "ibdata1").is_file() and not any(path.glob("ibdata*")):
            where = "source.datadir" if configured else f"@@datadir of {self.source.label}"
            raise ConfigError(
                str(self.policy.path),
                "source.datadir",
                f"{datadir} ({where}) is not a MariaDB datadir on this host",
                hint="run physical backups on the database host, or set source.datadir",
            )
        return datadir

    def _stream(self, chunks: Any, index: StreamIndex, writer: ObjectWriter) -> int:
        """Cut the stream into objects of ``chunk_bytes``; returns how many were written."""
        parts = 0
        current: OpenObject | None = None
        for data in chunks:
            index.feed(data)
            if current is None:
                parts += 1
                current = writer.open(part_key(parts), OBJECT_KIND, None, None, parts)
            current.write(data)
            if current.raw_size >= self.chunk_bytes:
                writer.close(current)
                current = None
        if current is not None:
            writer.close(current)
        return parts

    def _databases(self, index: StreamIndex) -> dict[str, dict[str, Any]]:
        """Per database (server names): its tables and views, and bytes in the stream."""
        found = index.tables()
        sizes = index.database_bytes()
        encoded = [*found, *(n for slot in found.values() for v in slot.values() for n in v)]
        with connect(self.source) as conn:
            names = decode_filenames(conn, encoded)
        return {
            names[db]: {
                "tables": sorted(names[t] for t in slot["tables"]),
                "views": sorted(names[v] for v in slot["views"]),
                "bytes": sizes.get(db, 0),
                "directory": db,
            }
            for db, slot in sorted(found.items())
        }
