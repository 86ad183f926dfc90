"""Seed a replica from a physical backup: stop the target, restore its datadir, start it,
make it a GTID replica and follow until caught up.

Contract, in order (nothing is changed before step 4):

1. The backup is physical, records its GTID position, and its chain is whole; when it is
   encrypted, the configured age identities open every object of the chain (exit 2 else).
2. The target answers at HOST:PORT (a freshly initialised server on this host): not the
   primary or a configured node, replicating from nobody, holding no non-system database,
   with a ``server_id`` no node of the topology uses; its ``@@datadir`` is the local
   ``--datadir`` (when given) and has room for the restore. A start command is given.
3. Every non-system database of the primary is in the backup.
4. The target is shut down (``SHUTDOWN``) and we wait until it has released its datadir.
5. The datadir is replaced by the backup's chain, prepared (every object verified before
   anything is prepared: :func:`~datatier.backup.restore.restore_backup`).
6. The start command runs; we wait until the target answers again.
7. ``gtid_slave_pos`` is set to the backup's position and the target follows the primary
   with the configured replication user; we wait until it has applied everything the
   primary had written when the wait began (:func:`datatier.provision.catchup.wait_caught_up`).

``datatier.*`` (the heartbeat) is in a physical copy like every other database, at the
same GTID position, so it replicates on from there; no separate copy is needed. A failure
after step 4 says what state the target was left in.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatier.backup.catalog import Catalog
from datatier.backup.encryption import unlock
from datatier.backup.engine import RestoreOptions
from datatier.backup.manifest import Manifest
from datatier.backup.restore import restore_backup
from datatier.config import LoadedConfig
from datatier.errors import DatatierError, OperationFailed, ServiceUnavailable, UsageError
from datatier.log import get_logger
from datatier.mysql.connection import Endpoint, MySQLError, connect, endpoint, primary_endpoint
from datatier.mysql.physical.datadir import check_datadir, server_holds
from datatier.mysql.physical.lineage import ENGINE
from datatier.mysql.physical.restore import PhysicalRestore
from datatier.mysql.physical.server import read_identity, shutdown
from datatier.mysql.replica_status import read_replica_status
from datatier.mysql.replicate import FORGET_UPSTREAM
from datatier.provision.catchup import LagCallback, wait_caught_up
from datatier.provision.replica import (
    COPIED_DATABASE,
    REPLICATE_FROM,
    follow_primary,
    server_id_of,
    user_databases,
)
from datatier.provision.seeding import SeedOptions

log = get_logger(__name__)


@dataclass
class PhysicalSeedPlan:
    """What seeding from a physical backup will do; ``to_json`` for ``--json``."""

    backup_id: str
    policy: str
    target: str
    primary: str
    gtid_pos: str
    datadir: str
    chain: list[str]
    objects: int
    bytes: int
    start_command: list[str] = field(default_factory=list)
    external_tables: dict[str, str] = field(default_factory=dict)  # db/t -> where it goes
    external_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PhysicalSeedResult:
    """What seeding did: the plan and its timings."""

    plan: PhysicalSeedPlan
    restore_seconds: float
    catch_up_seconds: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        done = {k: v for k, v in self.__dict__.items() if k != "plan"}
        return {**self.plan.to_json(), **done}

    def describe(self) -> str:
        return (
            f"{self.plan.target} is a replica of {self.plan.primary}, caught up (restore "
            f"{self.restore_seconds} s, catch-up {self.catch_up_seconds} s)"
        )


@dataclass(frozen=True)
class PhysicalSeeding:
    """A checked seeding from a physical backup (:class:`~datatier.provision.seeding.Seeding`)."""

    loaded: LoadedConfig
    plan: PhysicalSeedPlan
    manifest: Manifest
    catalog: Catalog
    target: Endpoint
    options: SeedOptions

    def to_json(self) -> dict[str, Any]:
        return self.plan.to_json()

    def describe(self) -> str:
        plan = self.plan
        return (
            f"would stop {plan.target}, replace its datadir {plan.datadir} with backup "
            f"{plan.backup_id} ({plan.policy}: chain {' -> '.join(plan.chain)}, {plan.objects} "
            f"objects, {plan.bytes} bytes), start it with `{shlex.join(plan.start_command)}`, "
            f"set gtid_slave_pos={plan.gtid_pos} and replicate from {plan.primary}"
        )

    def run(self, on_lag: LagCallback | None = None) -> PhysicalSeedResult:
        return seed_physical(
            self.loaded, self.plan, self.manifest, self.catalog, self.target,
            timeout=self.options.timeout, on_lag=on_lag, jobs=self.options.jobs,
        )  # fmt: skip


def plan_physical_seeding(
    loaded: LoadedConfig,
    manifest: Manifest,
    catalog: Catalog,
    target: Endpoint,
    options: SeedOptions,
) -> PhysicalSeeding:
    """The seeder of physical backups (:data:`~datatier.provision.seeding.Planner`)."""
    own = Catalog(catalog.store, [manifest.policy])
    plan = plan_physical_seed(
        loaded, manifest, own, target,
        datadir=options.datadir, start_command=options.start_command, jobs=options.jobs,
        external_dir=options.external_dir,
    )  # fmt: skip
    return PhysicalSeeding(loaded, plan, manifest, own, target, options)


def plan_physical_seed(
    loaded: LoadedConfig,
    manifest: Manifest,
    catalog: Catalog,
    target: Endpoint,
    *,
    datadir: str | None,
    start_command: str | None,
    jobs: int = 4,
    external_dir: str | None = None,
) -> PhysicalSeedPlan:
    """Steps 1-3 of the module docstring; changes nothing."""
    config = loaded.config
    if manifest.engine != ENGINE:
        raise UsageError(f"backup {manifest.backup_id} is not a physical backup")
    gtid = str(manifest.consistency.get("gtid_pos") or "")
    if not gtid:
        raise UsageError(
            f"backup {manifest.backup_id} records no GTID position (binlog off on its source): "
            "it cannot seed a replica"
        )
    if not start_command:
        raise UsageError(
            "seeding from a physical backup restarts the target: say how to start it",
            hint="--start-command 'systemctl start mariadb'",
        )
    primary = primary_endpoint(config.mysql, hint=REPLICATE_FROM)
    for name, node in config.mysql.nodes.items():
        if (node.host, node.port) == (target.host, target.port):
            raise UsageError(f"target {target.label} is the configured node {name!r}")
    with connect(primary) as conn:
        primary_dbs = user_databases(conn)
        used_ids = {server_id_of(conn)}
    for name in config.mysql.replicas():
        try:
            with connect(endpoint(config.mysql, name)) as conn:
                used_ids.add(server_id_of(conn))
        except ServiceUnavailable:
            continue
    with connect(target) as conn:
        if read_replica_status(conn) is not None:
            raise UsageError(f"target {target.label} is already a replica", hint=FORGET_UPSTREAM)
        busy = sorted(user_databases(conn))
        if busy:
            raise UsageError(
                f"target {target.label} is not empty: {', '.join(busy)}",
                hint="seed a freshly initialised server",
            )
        identity = read_identity(conn)
    if identity.server_id in used_ids:
        raise UsageError(
            f"target {target.label} has server_id {identity.server_id}, already used in the "
            "topology",
            hint="start it with a unique --server-id",
        )
    served = Path(identity.datadir).resolve()
    if datadir and Path(datadir).resolve() != served:
        raise UsageError(f"--datadir {datadir} is not {target.label}'s datadir ({served})")
    if not (served / "ibdata1").is_file():
        raise UsageError(
            f"{target.label}'s datadir {served} is not on this host",
            hint="run provision replica on the target's host",
        )
    missing = sorted(primary_dbs - {COPIED_DATABASE} - set(manifest.databases))
    if missing:
        raise UsageError(
            f"backup {manifest.backup_id} lacks databases the primary has: {', '.join(missing)}"
        )
    options = RestoreOptions(datadir=str(served), force=True, jobs=jobs, external_dir=external_dir)
    engine = PhysicalRestore.for_manifest(loaded, manifest, catalog, options)
    restore_plan = engine.plan()
    engine.refuse_external()  # before the target is stopped
    unlock(config, restore_plan.objects, f"backup {manifest.backup_id}")  # before the stop
    check_datadir(served, engine.needed_bytes(restore_plan), force=True, running_ok=True)
    return PhysicalSeedPlan(
        backup_id=manifest.backup_id,
        policy=manifest.policy,
        target=target.label,
        primary=primary.label,
        gtid_pos=gtid,
        datadir=str(served),
        chain=[m["id"] for m in restore_plan.details["chain"]],
        objects=len(restore_plan.objects),
        bytes=sum(o.size for o in restore_plan.objects),
        start_command=shlex.split(start_command),
        external_tables=dict(restore_plan.details["external_tables"]),
        external_dir=external_dir,
    )


def _stop(target: Endpoint, datadir: Path, timeout: float) -> None:
    """Shut the target down and wait until it released its datadir."""
    try:
        with connect(target) as conn:
            shutdown(conn)
    except MySQLError as exc:
        raise OperationFailed(
            f"could not shut {target.label} down: {exc.args[-1]}",
            hint="the configured user needs the SHUTDOWN privilege; nothing was changed",
        ) from None
    deadline = time.monotonic() + timeout
    while server_holds(datadir):
        if time.monotonic() > deadline:
            raise OperationFailed(f"{target.label} did not stop within {timeout:.0f} s")
        time.sleep(0.2)
    log.info("replica.target_stopped", target=target.label)


def _start(plan: PhysicalSeedPlan, target: Endpoint, timeout: float) -> None:
    """Run the start command, then wait until the target accepts connections."""
    with tempfile.TemporaryFile() as out:
        try:
            code = subprocess.run(
                plan.start_command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                timeout=timeout, check=False,
            ).returncode  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OperationFailed(f"start command failed: {exc}") from None
        if code != 0:
            out.seek(0)
            said = " | ".join(out.read().decode(errors="replace").strip().splitlines()[-3:])
            raise OperationFailed(f"start command exited {code}: {said}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with connect(target):
                return
        except ServiceUnavailable as exc:
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"{target.label} did not answer within {timeout:.0f} s of starting: "
                    f"{exc.message}"
                ) from None
            time.sleep(0.2)


def seed_physical(
    loaded: LoadedConfig,
    plan: PhysicalSeedPlan,
    manifest: Manifest,
    catalog: Catalog,
    target: Endpoint,
    *,
    timeout: float = 600.0,
    on_lag: LagCallback | None = None,
    jobs: int = 4,
) -> PhysicalSeedResult:
    """Steps 4-7 of the module docstring."""
    primary = primary_endpoint(loaded.config.mysql, hint=REPLICATE_FROM)
    datadir = Path(plan.datadir)
    started = time.monotonic()
    _stop(target, datadir, timeout)
    try:
        restore_backup(
            loaded,
            manifest,
            catalog,
            RestoreOptions(
                datadir=plan.datadir, force=True, jobs=jobs, external_dir=plan.external_dir
            ),
        )
    except DatatierError as exc:
        note = f"{target.label} is stopped; its datadir is as it was unless the message says"
        exc.hint = f"{exc.hint}; {note}" if exc.hint else note
        raise
    restored = round(time.monotonic() - started, 3)
    try:
        _start(plan, target, timeout)  # mariabackup copies no master.info: not a replica yet
        try:
            follow_primary(target, primary, loaded, plan.gtid_pos, "", timeout)
        except MySQLError as exc:
            raise OperationFailed(
                f"could not start replication on {target.label}: {exc.args[-1]}"
            ) from None
    except DatatierError as exc:
        note = f"{target.label} holds the restored datadir of {plan.backup_id}"
        exc.hint = f"{exc.hint}; {note}" if exc.hint else note
        raise
    log.info("replica.seeded", target=target.label, backup_id=plan.backup_id, gtid=plan.gtid_pos)
    waited = wait_caught_up(primary, target, timeout=timeout, on_lag=on_lag)
    return PhysicalSeedResult(plan, restored, waited, round(time.monotonic() - started, 3))
