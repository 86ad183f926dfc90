"""tester13: two datatier jobs at once, and jobs killed mid-way, against the real sandbox
(MariaDB primary, mariadb-backup, the S3 server).

Findings, by severity (each test's docstring has steps, expected and what happened); all
are fixed, and each test now asserts the fixed behaviour:
- silent wrong: an incremental ``backup run`` whose parent chain ``backups prune`` deletes
  while it runs (a full backup finished meanwhile, so retention lets the old chain go)
  exits 0 with a manifest whose chain is broken: cron and the job record say OK, the
  backup is listed ``broken: parent ... is missing`` and can never be restored, and it
  holds the newest state of the server
  (``test_an_incremental_whose_parent_prune_deletes_meanwhile_never_exits_0_unrestorable``).
  The claim protocol covers the backup's own prefix only: after its manifest the backup
  lists that prefix, never its parents' manifests, and prune deletes complete backups
  from a plan made before the incremental existed.
- loud wrong: two ``backups verify ID --restore-test`` of one backup at once (a cron'ed
  verify and an operator's): the second is refused (exit 5, "another restore into
  'dtv_..._0' ... is running"), and on its way out drops the scratch databases it was
  refused, the first's, under the running restore: the first fails (exit 1, ``ERROR 1146:
  Table 'dtv_..._0.orders' doesn't exist``), or, when the drop lands after its load, exit
  4 ``data differs from the manifest for ... (rows 0 vs 300000)``, though the backup is good
  (``test_a_refused_restore_test_leaves_the_running_ones_scratch_databases_alone``). Scratch
  names are ``dtv_<backup id>_<n>``, the same for every run, and ``restore_test`` drops
  them in a ``finally`` whether or not its own restore got the lock.
- confusing: after a ``verify --restore-test`` killed mid-restore (SIGKILL), the next one of
  that backup exits 2 ``target primary (...) is not empty: dtv_..._0 (2 tables)`` with the
  hint ``restore elsewhere, --rename SRC=DST, or --force to replace`` (options verify does
  not have); it drops the leftover as it goes, so only the one after that passes
  (``test_a_restore_test_after_a_killed_one_passes``).
- confusing: ``backups verify ID`` or ``restore ID`` of a backup that ``backups prune
  --execute`` deletes (retention) after they found its manifest exits 4,
  ``s3://.../ID/data/DB/_database.sql.zst is missing`` (both): an integrity failure, the
  alarm for a corrupt backup, where the backup was deleted on purpose; nothing says it
  was deleted meanwhile
  (``test_a_backup_pruned_while_it_is_read_is_not_reported_corrupt[verify|restore]``).
- confusing: ``backups archive --execute`` while ``backups prune --execute`` deletes a
  backup it planned to re-class stops at that backup's first object, exit 1, ``s3://.../
  data-00001.sql.zst does not exist``, and moves nothing after it
  (``test_archive_beside_prune_skips_what_prune_deleted``).

Tried and held (no test here): ``restore OLD --force`` into the database a logical
``backup run`` of the primary is reading, three times at different offsets: both exit 0,
and every backup restores to exactly the state before that restore (``CHECKSUM TABLE`` of
each table), never a mix; the server refuses a snapshot read of a table dropped and
re-created since (ER_TABLE_DEF_CHANGED), so no backup can read the restore's half-loaded
table as if it were the snapshot's. A killed ``verify --restore-test`` leaves no lock
behind (the next one is refused only for the leftover databases, see above).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from datatier.backup import catalog as catalog_module
from datatier.backup import restore as restore_module
from datatier.backup.manifest import BACKUP_ID
from datatier.backup.prune import PrunePlan, prune_execute, prune_plan
from datatier.backup.service import load_policy, open_policy_catalog
from datatier.backup.stores import store_for
from datatier.mysql import restoretest
from datatier.mysql.physical.engine import MariabackupEngine
from datatier.mysql.table_digest import table_digests
from datatier.pipeline.staging import stage_from, verify_objects
from datatier.storage.base import ObjectStore
from datatier.storage.s3 import S3Store
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import cli
from tests.integration.integrity import loaded_config

PHYS = "t13-phys"
PLAIN: dict[str, str] = {}


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


def clear(sandbox: SandboxHandle, policy: str) -> None:
    store = store_of(sandbox)
    store.delete([o.key for o in store.list_objects(f"{policy}/")])


@pytest.fixture
def phys_policy(sandbox: SandboxHandle) -> Iterator[str]:
    """A physical policy of the sandbox primary that keeps one backup (a nightly full plus
    hourly incrementals, pruned after each run, is a common set-up)."""
    clear(sandbox, PHYS)
    sandbox.write_policy(
        PHYS,
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\nencrypt = false\n'
        "full_every_days = 7\n"
        '[source]\nnode = "primary"\n[retention]\nkeep_last = 1\nmin_age_days = 0\n',
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS t13_phys_db")
        cur.execute("CREATE TABLE IF NOT EXISTS t13_phys_db.t (id INT PRIMARY KEY, v INT)")
        cur.execute("REPLACE INTO t13_phys_db.t SELECT seq, seq FROM t13_phys_db.seq_1_to_2000")
    yield PHYS
    clear(sandbox, PHYS)
    (sandbox.root / "backups" / f"{PHYS}.toml").unlink(missing_ok=True)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS t13_phys_db")


def other_process(sandbox: SandboxHandle, *args: str) -> subprocess.CompletedProcess[str]:
    """``datatier ARGS`` as its own process (what cron or an operator runs beside)."""
    return subprocess.run(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_incremental_whose_parent_prune_deletes_meanwhile_never_exits_0_unrestorable(
    sandbox: SandboxHandle, phys_policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps: full backup F1 of a physical policy (``keep_last = 1``, ``min_age_days = 0``);
    ``backup run P --incremental`` starts and chooses F1 as its parent; while it runs (made
    deterministic: right before its mariabackup starts) another process runs ``backup run
    P --full`` (F2) and ``backups prune P --execute`` (keeps F2, deletes F1); the
    incremental then finishes.

    Expected: the incremental does not exit 0 with a backup that cannot be restored: it
    fails (its parent is gone; exit non-zero, no manifest, as a claim makes it) or its
    chain still verifies.

    Was (fixed, :mod:`datatier.backup.parents`): exit 0, ``backup <ID> of P ...``;
    ``backups list --all`` says ``broken: parent
    F1 is missing``; ``backups verify ID`` and ``restore ID --datadir ... --dry-run`` exit 4
    (``a broken chain is never restored``). The incremental holds the newest state (its
    snapshot is after F2's) and nothing ever said its run failed.
    """
    full = cli(sandbox.config_path, PLAIN, "backup", "run", phys_policy, "--full", "--json")
    assert full.code == 0, full.err
    parent = full.json()["id"]
    beside: list[subprocess.CompletedProcess[str]] = []
    real_dump = MariabackupEngine.dump

    def dump_after_the_others(self: MariabackupEngine, writer):  # type: ignore[no-untyped-def]
        if not beside:
            beside.append(other_process(sandbox, "backup", "run", phys_policy, "--full"))
            beside.append(
                other_process(
                    sandbox, "backups", "prune", phys_policy, "--execute", "--grace-hours", "0"
                )
            )
        return real_dump(self, writer)

    monkeypatch.setattr(MariabackupEngine, "dump", dump_after_the_others)
    incr = cli(sandbox.config_path, PLAIN, "backup", "run", phys_policy, "--incremental", "--json")
    monkeypatch.setattr(MariabackupEngine, "dump", real_dump)
    assert [p.returncode for p in beside] == [0, 0], [p.stderr[-2000:] for p in beside]
    assert parent in beside[1].stdout  # prune did delete the incremental's parent
    # refused (exit 4, the parent named), and nothing claims to be a good backup
    assert incr.code == 4, (incr.code, incr.out, incr.err)
    assert f"its parent {parent}" in incr.err and "concurrent `backups prune`" in incr.err
    listed = cli(sandbox.config_path, PLAIN, "backups", "list", phys_policy, "--all", "--json")
    assert listed.code == 0, listed.err
    assert [b["id"] for b in listed.json()["backups"]] == [beside_full_id(beside[0])], listed.out


def test_a_prune_planned_before_an_incremental_completed_keeps_its_parent(
    sandbox: SandboxHandle, phys_policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: prune plans (F1 not kept: a newer full F2 exists) while the
    incremental on F1 runs, and deletes after the incremental wrote its manifest and
    checked its parents. Prune must see the new manifest and keep F1 (the claim-then-look
    protocol of :mod:`datatier.backup.parents`), and the incremental must verify."""
    full = cli(sandbox.config_path, PLAIN, "backup", "run", phys_policy, "--full", "--json")
    assert full.code == 0, full.err
    parent = full.json()["id"]
    loaded = loaded_config(sandbox)
    chosen = load_policy(loaded, phys_policy)
    catalog = open_policy_catalog(loaded, chosen)
    plans: list[PrunePlan] = []
    real_dump = MariabackupEngine.dump

    def dump_after_the_plan(self: MariabackupEngine, writer):  # type: ignore[no-untyped-def]
        if not plans:
            newer = other_process(sandbox, "backup", "run", phys_policy, "--full")
            assert newer.returncode == 0, newer.stderr[-2000:]
            plans.append(prune_plan(catalog, chosen, datetime.now(UTC), grace=timedelta(0)))
        return real_dump(self, writer)

    monkeypatch.setattr(MariabackupEngine, "dump", dump_after_the_plan)
    incr = cli(sandbox.config_path, PLAIN, "backup", "run", phys_policy, "--incremental", "--json")
    monkeypatch.setattr(MariabackupEngine, "dump", real_dump)
    assert incr.code == 0, incr.err
    assert incr.json()["parent"] == parent
    (plan,) = plans
    assert parent in [t.backup_id for t in plan.delete], "the plan was to delete the parent"
    result = prune_execute(catalog, plan)
    assert parent in result.spared, result
    verify = cli(sandbox.config_path, PLAIN, "backups", "verify", incr.json()["id"])
    assert verify.code == 0, verify.err
    listed = [o.key for o in store_of(sandbox).list_objects(f"{phys_policy}/{parent}/")]
    assert f"{phys_policy}/{parent}/prune-claim.json" not in listed, "the claim was withdrawn"


def beside_full_id(done: subprocess.CompletedProcess[str]) -> str:
    """The ID of the full backup a ``backup run`` beside took (its last line names it)."""
    return next(w for w in done.stdout.split() if BACKUP_ID.match(w))


VDB = "t13_verify_db"
VERIFY = "t13-verify"


@pytest.fixture
def verified_backup(sandbox: SandboxHandle) -> Iterator[str]:
    """A logical backup of a database big enough that its restore test takes seconds."""
    clear(sandbox, VERIFY)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {VDB}")
        cur.execute(f"CREATE DATABASE {VDB}")
        cur.execute(f"CREATE TABLE {VDB}.orders (id INT PRIMARY KEY, item VARCHAR(60), q INT)")
        cur.execute(
            f"INSERT INTO {VDB}.orders SELECT seq, CONCAT('item ', seq, REPEAT('x', 30)), "
            f"seq % 17 FROM {VDB}.seq_1_to_300000"
        )
        cur.execute(f"CREATE TABLE {VDB}.small (id INT PRIMARY KEY, v VARCHAR(20))")
        cur.execute(f"INSERT INTO {VDB}.small VALUES (1, 'a'), (2, 'b')")
    sandbox.write_policy(
        VERIFY,
        'engine = "mysql"\nchunk_mb = 1\n'
        f'[source]\nnode = "primary"\ndatabases = ["{VDB}"]\n'
        "[retention]\nkeep_last = 3\nmin_age_days = 0\n",
    )
    made = cli(sandbox.config_path, PLAIN, "backup", "run", VERIFY, "--json")
    assert made.code == 0, made.err
    yield str(made.json()["id"])
    clear(sandbox, VERIFY)
    (sandbox.root / "backups" / f"{VERIFY}.toml").unlink(missing_ok=True)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {VDB}")
        cur.execute("SHOW DATABASES LIKE 'dtv\\_%'")
        for (name,) in cur.fetchall():
            cur.execute(f"DROP DATABASE `{name}`")


def scratch_tables(sandbox: SandboxHandle) -> int:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema LIKE 'dtv\\_%'"
        )
        return int(cur.fetchone()[0])


def wait_scratch_tables(sandbox: SandboxHandle, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while scratch_tables(sandbox) == 0:
        assert proc.poll() is None, "the restore test ended before it created anything"
        assert time.monotonic() < deadline, "no scratch table appeared"
        time.sleep(0.02)


def start(sandbox: SandboxHandle, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_refused_restore_test_leaves_the_running_ones_scratch_databases_alone(
    sandbox: SandboxHandle, verified_backup: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps: ``backups verify ID --restore-test`` (A) of a good logical backup; while A
    runs, a second ``backups verify ID --restore-test`` (B) of the same backup. Made
    deterministic: B runs, as its own process, right when A has restored and is about to
    read its scratch tables back. (By hand, B started once A's scratch tables exist: B
    exits 5, "another restore into 'dtv_..._0' ... is running (it holds the database's
    restore lock)", and A exits 1 the same way, mid-load.)

    Expected: B is refused (exit 2 or 5) and changes nothing it does not own; A passes
    (exit 0): the backup is good.

    Was (fixed, :mod:`datatier.mysql.scratch`: each run has databases of its own, and B is
    now refused with exit 5 before it touches anything): B was refused (exit 2: ``target
    ... is not empty: dtv_<id>_0``) and dropped
    ``dtv_<id>_0`` in its ``finally``; A then reads the dropped tables back as empty and
    exits 4, ``restore test of ID: data differs from the manifest for t13_verify_db.orders
    (rows 0 vs 300000), t13_verify_db.small (rows 0 vs 2)``: a good backup reported as
    corrupt (an integrity failure). By hand, mid-load, A exits 1 with ``loading the rows
    of `dtv_..._0`.`orders` (part 2) failed at its statement 11: ERROR 1146 ...``.
    """
    beside: list[subprocess.CompletedProcess[str]] = []
    real = table_digests

    def digests_after_the_other(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not beside:
            beside.append(
                other_process(sandbox, "backups", "verify", verified_backup, "--restore-test")
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(restoretest, "table_digests", digests_after_the_other)
    first = cli(sandbox.config_path, PLAIN, "backups", "verify", verified_backup, "--restore-test")
    assert len(beside) == 1 and beside[0].returncode == 5, beside and beside[0].stderr[-2000:]
    assert "another restore test of" in beside[0].stderr
    assert first.code == 0, first.err[-2000:]


def test_a_restore_test_after_a_killed_one_passes(
    sandbox: SandboxHandle, verified_backup: str
) -> None:
    """Steps: ``backups verify ID --restore-test`` of a good logical backup, SIGKILLed (its
    process group) once its scratch tables exist; then the same command again.

    Expected: the second run passes (exit 0): the scratch databases are datatier's own,
    named for this backup, and a killed run's are swept first (as a killed physical restore
    test's scratch datadir is).

    Was (fixed, :mod:`datatier.mysql.scratch`: a dead run's databases are dropped first):
    exit 2, ``target primary (127.0.0.1:PORT) is not empty: dtv_<id>_0 (2 tables)``,
    hint ``restore elsewhere, --rename SRC=DST, or --force to replace`` (verify has neither
    option); it drops the leftover on its way out, so a third run passes.
    """
    killed = start(sandbox, "backups", "verify", verified_backup, "--restore-test")
    try:
        wait_scratch_tables(sandbox, killed)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    assert scratch_tables(sandbox) > 0  # the killed run's leftover
    time.sleep(2)  # the server ends the killed run's lock connection after its SLEEP(0.5)
    again = cli(sandbox.config_path, PLAIN, "backups", "verify", verified_backup, "--restore-test")
    assert again.code == 0, again.err[-2000:]
    assert "verify.scratch_left_dropped" in again.err
    assert scratch_tables(sandbox) == 0


@pytest.mark.parametrize("reader", ["verify", "restore"])
def test_a_backup_pruned_while_it_is_read_is_not_reported_corrupt(
    sandbox: SandboxHandle, verified_backup: str, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """Steps: a logical backup B of a policy with ``keep_last = 1``, then a newer one;
    ``backups verify B`` (or ``restore B --rename DB=COPY``) finds B's manifest; before it
    reads B's objects (made deterministic: right then), ``backups prune P --execute``
    deletes B, as retention says.

    Expected: the reader fails saying B was deleted meanwhile (its manifest is gone, e.g.
    by ``backups prune``), not with exit 4, which says a backup is corrupt (alerts, and the
    on-call engineer's trust in the backups, hang on it).

    Was (fixed, :func:`datatier.backup.parents.unless_deleted`): exit 4,
    ``s3://datatier-backups/.../B/data/.../..._database.sql.zst is missing`` (verify and
    restore alike), no word of a deletion. Now exit 1, "backup B ... was deleted while it
    was being read".
    """
    sandbox.write_policy(
        VERIFY,
        'engine = "mysql"\nchunk_mb = 1\n'
        f'[source]\nnode = "primary"\ndatabases = ["{VDB}"]\n'
        "[retention]\nkeep_last = 1\nmin_age_days = 0\n",
    )
    time.sleep(1.1)  # backup IDs are per second
    newer = cli(sandbox.config_path, PLAIN, "backup", "run", VERIFY)
    assert newer.code == 0, newer.err
    pruned: list[subprocess.CompletedProcess[str]] = []

    def prune_first(real: Callable[..., Any]) -> Callable[..., Any]:
        def reading(*args: Any, **kwargs: Any) -> Any:
            if not pruned:
                pruned.append(
                    other_process(
                        sandbox, "backups", "prune", VERIFY, "--execute", "--grace-hours", "0"
                    )
                )
            return real(*args, **kwargs)

        return reading

    if reader == "verify":
        monkeypatch.setattr(catalog_module, "verify_objects", prune_first(verify_objects))
        result = cli(sandbox.config_path, PLAIN, "backups", "verify", verified_backup)
    else:
        monkeypatch.setattr(restore_module, "stage_from", prune_first(stage_from))
        result = cli(
            sandbox.config_path,
            PLAIN,
            "restore",
            verified_backup,
            "--rename",
            f"{VDB}=t13_pruned_copy",
        )
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS t13_pruned_copy")
    assert pruned and pruned[0].returncode == 0, pruned and pruned[0].stderr[-2000:]
    assert verified_backup in pruned[0].stdout
    assert result.code == 1, result.err[-2000:]
    assert f"backup {verified_backup} of {VERIFY} was deleted while it was being read" in (
        result.err
    )


ARC = "t13-arc"


def test_archive_beside_prune_skips_what_prune_deleted(
    sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps: three backups of a policy with ``keep_last = 1`` and ``archive_after_days =
    30``; ``backups archive P --execute --now <a year on>`` plans the two older ones; right
    as it re-classes its first object, ``backups prune P --execute`` (another process, as
    its own cron entry) deletes them.

    Expected: archive moves what is still there and says it skipped what was deleted
    meanwhile (exit 0), as prune itself treats a manifest deleted since its listing.

    Was (fixed in :func:`datatier.backup.archive.archive_execute`): exit 1,
    ``s3://.../ID/data/.../data-00001.sql.zst does not exist``: a cron failure for nothing
    wrong.
    """
    clear(sandbox, ARC)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS t13_arc_db")
        cur.execute("CREATE TABLE IF NOT EXISTS t13_arc_db.t (id INT PRIMARY KEY, v TEXT)")
        cur.execute(
            "REPLACE INTO t13_arc_db.t SELECT seq, REPEAT('v', 200) FROM t13_arc_db.seq_1_to_3000"
        )
    sandbox.write_policy(
        ARC,
        'engine = "mysql"\n[source]\nnode = "primary"\ndatabases = ["t13_arc_db"]\n'
        '[storage]\narchive_class = "GLACIER"\narchive_after_days = 30\n'
        "[archive]\nmin_object_kb = 1\n[retention]\nkeep_last = 1\nmin_age_days = 0\n",
    )
    try:
        for _ in range(3):
            made = cli(sandbox.config_path, PLAIN, "backup", "run", ARC)
            assert made.code == 0, made.err
            time.sleep(1.1)  # backup IDs are per second
        pruned: list[subprocess.CompletedProcess[str]] = []
        real = S3Store.set_storage_class

        def prune_first(self, key, storage_class):  # type: ignore[no-untyped-def]
            if not pruned:
                pruned.append(other_process(sandbox, "backups", "prune", ARC, "--execute"))
            return real(self, key, storage_class)

        monkeypatch.setattr(S3Store, "set_storage_class", prune_first)
        later = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        moved = cli(
            sandbox.config_path, PLAIN, "backups", "archive", ARC, "--execute", "--now", later
        )
        assert pruned and pruned[0].returncode == 0, pruned and pruned[0].stderr[-2000:]
        assert moved.code == 0, moved.err[-2000:]
        assert "archive.deleted_meanwhile" in moved.err
    finally:
        clear(sandbox, ARC)
        (sandbox.root / "backups" / f"{ARC}.toml").unlink(missing_ok=True)
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS t13_arc_db")
