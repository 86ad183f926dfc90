"""tester6: physical (mariabackup) restores and age encryption, attacked as a hostile-but-legal
user and an unlucky operator would, against the real sandbox.

One encrypted full physical backup of the sandbox primary is taken (policy ``t6-phys``,
encrypted to a fresh age key); each test restores it or runs a command on it, as a
separate ``datatier`` process where the exit code and stderr matter (what cron sees).

Findings, by severity (each test's docstring has steps, expected and actual):
- silent wrong, fixed: an incremental taken after the server was rolled back in place to
  an older backup of its own chain restored the abandoned timeline
  (``test_an_incremental_after_the_server_was_rolled_back_restores_what_the_server_held``).
- silent wrong, fixed: the same after a rollback that leaves no ``xtrabackup_info`` (a
  cold copy of the datadir put back), caught by the binlog
  (``test_an_incremental_after_a_cold_copy_rollback_is_refused_by_the_binlog``).
- silent wrong, fixed: ``--force`` onto a directory holding a running server's datadir
  deleted it (``test_force_onto_a_directory_holding_a_running_servers_datadir_is_refused``);
  two restores into one new datadir left none after one said OK
  (``test_two_restores_into_one_new_datadir_never_leave_a_restore_that_said_ok_missing``);
  a killed restore's decrypted staging copies stayed forever
  (``test_a_killed_restore_leaves_no_decrypted_copies_behind_once_restored_again``); a
  killed restore test's scratch server ran on, serving the decrypted copy
  (``test_a_killed_restore_test_leaves_no_scratch_server_running``), and its scratch
  datadir was never removed
  (``test_a_killed_restore_tests_scratch_datadir_is_swept_by_the_next``).
- loud wrong, fixed: a private key put in ``recipients`` was printed whole
  (``test_a_private_key_among_recipients_is_never_printed``); a symlinked ``--datadir``
  kept its old owner (``test_a_datadir_given_as_a_symlink_is_owned_by_the_owner``).
- confusing, fixed: SIGTERM before the install said DIR "may be partly loaded"; ``keys
  check`` said locked backups "open with no available identity"; an identity file joined
  into one line said only "holds no identity".

Tried and behaved correctly (the tests after the findings keep most of them):
- a bit-flipped encrypted physical part: exit 4 naming it, DIR never created;
- ``backups verify`` without any key: exit 0; ``restore --dry-run`` and ``verify
  --restore-test`` without the key or with the wrong one: exit 2 naming the keys;
- SIGKILL while extracting, then the same restore again: exit 0, the dead work area removed;
- identity files with CRLF, no final newline, tabs, a wrong key first: open; a BOM: exit 2
  naming line 1 (age refuses it too); the secret never printed;
- an unknown ``--owner``: exit 2, nothing created;
- a chain whose full backup is encrypted to a rotated-out key, identity holding only the
  new one: exit 2 naming the old key, nothing created; ``keys check`` names it LOCKED;
- the S3 server frozen mid physical upload: exit 3 once, and once the retries outlasted
  the freeze and the backup completed correctly (timing: not kept as a test);
- hostile database/table/view names (space, slash, check mark, accents, quotes, ``#sql``
  lookalike, partitions, a sequence): listed exactly, the encrypted restore test passes
  (a backtick in a database name with an Aria table breaks mariadb-backup itself: its
  ``BACKUP LOCK`` does not escape it; datatier reports the tool's error, exit 1);
- ``source.datadir`` naming another server's datadir: mariadb-backup copies the server's
  ``@@datadir`` anyway (a container's ``@@datadir`` missing on the host is not covered);
- two physical backups of one policy at once: both complete and verify (tiny sandbox data,
  so they barely overlapped); a missing ``--staging-dir``: exit 2; ``--staging-dir`` = DIR
  or inside DIR (``--force``): the restore completes.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.encryption import short
from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.stores import store_for
from datatier.errors import OperationFailed
from datatier.mysql.physical.datadir import WORK_PREFIX
from datatier.mysql.physical.scratch import ScratchServer, free_port
from datatier.mysql.physical.server import current_lsn
from datatier.mysql.physical.tool import datadir_origin, read_checkpoints
from datatier.storage.base import ObjectStore
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import Key, cli, encryption_env, make_key
from tests.integration.integrity import failure_line
from tests.integration.physical_support import (
    OWNER,
    connect_port,
    scratch_ports,
    table_state,
)

POLICY = "t6-phys"


@dataclass(frozen=True)
class Encrypted:
    """The encrypted full backup and the environment that opens it."""

    backup_id: str
    key: Key
    env: dict[str, str]


def store_of(sandbox: SandboxHandle) -> ObjectStore:
    return store_for(sandbox.config.backup.default_store, sandbox.config)


@pytest.fixture(scope="module")
def encrypted(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Encrypted]:
    keys = tmp_path_factory.mktemp("t6keys")
    key = make_key(keys, "t6")
    env = encryption_env([key], key.path)
    sandbox.write_policy(
        POLICY,
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\n[source]\nnode = "primary"\n'
        "[retention]\nkeep_last = 20\nmin_age_days = 0\n",
    )
    result = cli(sandbox.config_path, env, "backup", "run", POLICY, "--full", "--json")
    assert result.code == 0, result.err
    yield Encrypted(result.json()["id"], key, env)
    store = store_of(sandbox)
    store.delete([o.key for o in store.list_objects(f"{POLICY}/")])
    (sandbox.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)


def datatier(sandbox: SandboxHandle, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``datatier --config SANDBOX ARGS`` as its own process, with ``env`` added."""
    return subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def children(pid: int) -> dict[int, bytes]:
    """pid -> command line of each child of process ``pid``."""
    try:
        pids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return {}
    found = {}
    for child in pids:
        try:
            found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
    return found


def freeze_extract(proc: subprocess.Popen[str], timeout: float = 120) -> int:
    """Wait until restore ``proc`` runs ``mbstream -x`` (everything staged, its work area
    in DIR), stop that mbstream (SIGSTOP) and return its pid: the restore then blocks
    mid-extract, as on a slow disk, until the mbstream is continued or killed."""
    deadline = time.monotonic() + timeout
    while True:
        for pid, cmdline in children(proc.pid).items():
            if b"mbstream" in cmdline:
                os.kill(pid, signal.SIGSTOP)
                return pid
        assert proc.poll() is None, f"the restore ended first: {proc.communicate()}"
        assert time.monotonic() < deadline, "the restore never started extracting"
        time.sleep(0.001)


def end(pid: int) -> None:
    """SIGKILL a frozen mbstream this test stopped (its restore was killed)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def mariabackup_running(pid: int) -> bool:
    """Whether process ``pid`` has a ``mariadb-backup`` child."""
    return any(b"mariadb-backup" in cmdline for cmdline in children(pid).values())


def prepared(datadir: Path) -> bool:
    """Whether ``datadir`` holds a fully prepared datadir (what a restore that exits 0 leaves)."""
    try:
        return read_checkpoints(datadir / "xtrabackup_checkpoints").backup_type == "log-applied"
    except OperationFailed:  # missing or unreadable: not prepared
        return False


# -- findings -------------------------------------------------------------------------------


def test_a_private_key_among_recipients_is_never_printed(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """Severity: loud wrong (secret disclosure). An operator pastes the *private* key
    (``AGE-SECRET-KEY-1...``, what ``age-keygen -o`` writes) into ``recipients`` instead of
    its public key, in the config or ``DATATIER_ENCRYPTION__RECIPIENTS``.

    Steps: any command (here ``backups list``) with that recipient.
    Expected: exit 2 naming ``encryption.recipients[0]`` and saying it is a private key,
    without its text (the README: private keys are never in a message or a log).
    Was (fixed): exit 2 with ``'AGE-SECRET-KEY-1...' is not an age X25519 public key``: the whole
    private key on stderr and in the JSON log line (shipped to log collectors, cron mail).
    Cause: ``datatier.config`` (the recipients check in ``load``) quotes the bad key with
    ``{key!r}``; ``parse_recipients`` does the same."""
    secret = make_key(tmp_path, "pasted").secret
    proc = datatier(sandbox, {"DATATIER_ENCRYPTION__RECIPIENTS": secret}, "backups", "list")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "encryption.recipients[0]" in err
    body = secret.removeprefix("AGE-SECRET-KEY-1")
    assert body[:16] not in out + err, "the private key was printed"
    assert "private key" in failure_line(err)


def test_two_restores_into_one_new_datadir_never_leave_a_restore_that_said_ok_missing(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """Severity: silent wrong (a restore that exited 0 leaves no datadir). Two operators
    (or a retrying script and a human) restore into the same new ``--datadir`` at once.

    Steps: restore B into a new DIR; once it is extracting (its ``.datatier-restore-*`` work
    area in DIR) its ``mbstream`` is paused (SIGSTOP: a slow disk does the same); restore A
    into the same DIR runs to the end (exit 0, "datadir ready"); B resumes.
    Expected: the second restore is refused while the first holds DIR (as MySQL and MongoDB
    restores claim their target, exit 5), or at least a restore that exits 0 leaves its
    prepared datadir in DIR.
    Was (fixed: the second is exit 5): A passed ``check_datadir`` (work areas are left out
    of the "is it empty" check, so a running restore's is ignored), and its
    ``WorkArea.install`` deleted every entry of DIR but its own, B's work area included; B's
    prepare then failed, and B, which created DIR, removed DIR entirely on its way out: A
    said OK, DIR did not exist.
    Cause: ``PhysicalRestore`` has no ``claim_target`` (the base class's nullcontext), and
    ``WorkArea.__exit__`` removes the whole DIR it created, whatever else was put there."""
    datadir = tmp_path / "shared"
    env = encrypted.env
    first = datatier(sandbox, env, "restore", encrypted.backup_id, "--datadir", str(datadir),
                     "--owner", OWNER)  # fmt: skip
    frozen = freeze_extract(first)
    try:
        second = cli(sandbox.config_path, env, "restore", encrypted.backup_id,
                     "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
        second_ok_then = prepared(datadir)
    finally:
        os.kill(frozen, signal.SIGCONT)
        _, first_err = first.communicate(timeout=300)
    if second.code == 0:
        assert second_ok_then, "the second restore said OK without a prepared datadir"
        assert prepared(datadir), (
            f"the second restore said OK, then the first (exit {first.returncode}: "
            f"{failure_line(first_err)}) left DIR exists={datadir.exists()}"
        )
    if first.returncode == 0:
        assert prepared(datadir), "the first restore said OK without a prepared datadir"
    assert second.code == 5 and "another restore into" in second.err, second.err
    assert first.returncode == 0, first_err


def test_sigterm_while_preparing_says_the_datadir_was_not_changed(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """Severity: confusing. SIGTERM (systemd stop, a timeout) while a physical restore
    extracts or prepares in its work area.

    Steps: restore into a new DIR; SIGTERM once the work area exists.
    Expected: exit 143, DIR as it was (here: not there), and the message says nothing was
    changed (the README: "a failure before step 6 leaves DIR as it was").
    Was (fixed): exit 143 and DIR removed, as promised, but the message said
    ``the restore was interrupted: DIR may be partly loaded``, so the operator goes looking
    for a half-restored datadir (or wipes one that was never touched, with --force).
    Cause: ``PhysicalRestore`` does not override ``RestoreEngine.changed_target`` (True
    unless the engine knows better), though only ``WorkArea.install`` changes DIR."""
    datadir = tmp_path / "term"
    proc = datatier(sandbox, encrypted.env, "restore", encrypted.backup_id,
                    "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    frozen = freeze_extract(proc)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        end(frozen)
    assert proc.returncode == 143, err
    assert not datadir.exists(), "a DIR the restore created is removed"
    last = failure_line(err)
    assert "may be partly loaded" not in last, last
    assert "before changing anything" in last, last


def test_a_killed_restore_leaves_no_decrypted_copies_behind_once_restored_again(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """Severity: silent wrong (security: plaintext of an encrypted backup stays on disk).
    A restore of an encrypted backup is killed (SIGKILL: the OOM killer, a node reboot, a
    CI timeout) after staging, i.e. after every object was decrypted to local disk.

    Steps: ``restore ID --datadir D --staging-dir S``, SIGKILL once it extracts; the same
    restore again (exit 0).
    Expected: once a later restore has run, no decrypted copy of the killed one remains
    (the README: the staged copies are "in a private (mode 0700) directory removed after
    the restore"); at the least the leftover is found and removed or reported.
    Was (fixed: the next staging into S sweeps it): ``S/datatier-restore-*`` of the killed
    restore stayed, holding the decrypted zstd stream of every object, never swept, never
    mentioned (this machine's /tmp held hundreds of them from earlier test runs).
    Cause: ``staging.stage_from`` removed its directory only in ``Staged.__exit__``; nothing
    marked a staging directory as its process's, so nothing could tell a dead one. Now each
    holds an flock on ``.held`` inside it, and staging removes those no process holds."""
    staging = tmp_path / "staging"
    staging.mkdir()
    datadir = tmp_path / "killed"
    args = ("restore", encrypted.backup_id, "--datadir", str(datadir), "--owner", OWNER,
            "--staging-dir", str(staging))  # fmt: skip
    proc = datatier(sandbox, encrypted.env, *args)
    frozen = freeze_extract(proc)
    proc.kill()
    proc.communicate(timeout=60)
    end(frozen)
    again = cli(sandbox.config_path, encrypted.env, *args[:3], str(tmp_path / "second"),
                *args[4:])  # fmt: skip
    assert again.code == 0, again.err
    left = [p for p in staging.iterdir() if p.name.startswith("datatier-restore-")]
    assert not left, f"decrypted copies left: {[len(list(p.iterdir())) for p in left]} objects"


def test_a_killed_restore_tests_scratch_datadir_is_swept_by_the_next(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """Severity: silent wrong (security: a decrypted copy of an encrypted backup stays on
    disk). ``backups verify ID --restore-test --scratch-dir S`` killed (SIGKILL) while its
    scratch server runs; then the same command again (exit 0).

    Expected: as for a killed restore's staging copies, the next restore test (or restore)
    removes the dead one's ``S/datatier-verify-*``: the restored datadir, decrypted.
    Was (fixed): it stayed, never swept, never mentioned.
    Cause: ``physical_restore_test`` kept it in a ``tempfile.TemporaryDirectory`` removed
    only on a normal exit; now a ``tempdirs.held_directory``, whose dead ones are swept."""
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    args = ("backups", "verify", encrypted.backup_id, "--restore-test",
            "--scratch-dir", str(scratch_root))  # fmt: skip
    before = set(scratch_servers(scratch_root))
    proc = datatier(sandbox, encrypted.env, *args)
    deadline = time.monotonic() + 120
    try:
        while not set(scratch_servers(scratch_root)) - before:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no scratch server started"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    time.sleep(1)  # the scratch server's SIGTERM
    again = cli(sandbox.config_path, encrypted.env, *args)
    assert again.code == 0, again.err
    left = [p.name for p in scratch_root.iterdir()]
    assert not left, f"left in the scratch directory: {left}"


# -- what behaved correctly (kept as regression tests) ---------------------------------------


def test_a_bitflipped_encrypted_physical_part_is_exit_4_and_dir_untouched(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    store = store_of(sandbox)
    manifest = Manifest.decode(store.get_bytes(manifest_key(POLICY, encrypted.backup_id)), "t")
    victim = manifest.objects[len(manifest.objects) // 2]
    original = b"".join(store.iter_read(victim.key))
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x40
    store.put_bytes(victim.key, bytes(flipped))
    try:
        datadir = tmp_path / "flip"
        result = cli(sandbox.config_path, encrypted.env, "restore", encrypted.backup_id,
                     "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
        assert result.code == 4, result.err
        assert not datadir.exists()
    finally:
        store.put_bytes(victim.key, original)


def test_verify_needs_no_key_and_dry_run_and_restore_test_refuse_without_the_right_one(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    none: dict[str, str] = {}
    other = make_key(tmp_path, "other")
    wrong = encryption_env([other], other.path)
    verify = cli(sandbox.config_path, none, "backups", "verify", encrypted.backup_id)
    assert verify.code == 0, verify.err
    for env in (none, wrong):
        dry = cli(sandbox.config_path, env, "restore", encrypted.backup_id,
                  "--datadir", str(tmp_path / "dry"), "--dry-run")  # fmt: skip
        assert dry.code == 2, dry.err
        test = cli(sandbox.config_path, env, "backups", "verify", encrypted.backup_id,
                   "--restore-test")  # fmt: skip
        assert test.code == 2, test.err
    assert not (tmp_path / "dry").exists()


def test_sigkill_while_extracting_then_the_same_restore_again_succeeds(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    datadir = tmp_path / "killed"
    proc = datatier(sandbox, encrypted.env, "restore", encrypted.backup_id,
                    "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    frozen = freeze_extract(proc)
    proc.kill()
    proc.communicate(timeout=60)
    end(frozen)
    assert [p.name[: len(WORK_PREFIX)] for p in datadir.iterdir()] == [WORK_PREFIX]
    again = cli(sandbox.config_path, encrypted.env, "restore", encrypted.backup_id,
                "--datadir", str(datadir), "--owner", OWNER)  # fmt: skip
    assert again.code == 0, again.err
    assert prepared(datadir)
    assert not [p for p in datadir.iterdir() if p.name.startswith(WORK_PREFIX)]


def test_identity_files_with_crlf_no_newline_tabs_a_wrong_key_first_or_a_bom(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """CRLF, no trailing newline, a wrong key first, a BOM."""
    wrong = make_key(tmp_path, "wrong")
    right = encrypted.key
    shapes = {
        "crlf": f"# a\r\n{wrong.secret}\r\n{right.secret}\r\n".encode(),
        "no-newline": right.secret.encode(),
        "bom": ("\ufeff" + right.secret + "\n").encode(),
        "tabs": f"\t{right.secret}\t\n".encode(),
    }
    for name, body in shapes.items():
        path = tmp_path / f"{name}.key"
        path.write_bytes(body)
        env = {**encrypted.env, "DATATIER_ENCRYPTION__IDENTITY_FILE": str(path)}
        dry = cli(sandbox.config_path, env, "restore", encrypted.backup_id,
                  "--datadir", str(tmp_path / name), "--dry-run")  # fmt: skip
        assert right.secret[20:40] not in dry.err + dry.out
        if name == "bom":  # neither does age accept one: refused, naming the line
            assert dry.code == 2 and "line 1 is not an age X25519 identity" in dry.err
        else:
            assert dry.code == 0, (name, dry.err)


def test_an_unknown_owner_is_exit_2_before_anything(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    bad = cli(sandbox.config_path, encrypted.env, "restore", encrypted.backup_id,
              "--datadir", str(tmp_path / "o"), "--owner", "nosuchuser:nogroup")  # fmt: skip
    assert bad.code == 2 and "no such user or group" in bad.err, bad.err
    assert not (tmp_path / "o").exists()


def test_force_onto_a_directory_that_is_no_datadir_is_refused(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """Severity: silent wrong (a home directory deleted, exit 0), tester6's note. ``restore
    ID --datadir ~ --force``, a slip for ``~/db``, replaced the home directory's contents.
    Now: exit 2 naming what DIR holds, nothing changed."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("secret")
    (home / "thesis.tex").write_text("years of work")
    before = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    result = cli(sandbox.config_path, encrypted.env, "restore", encrypted.backup_id,
                 "--datadir", str(home), "--force")  # fmt: skip
    assert result.code == 2, result.err
    assert "does not look like a MariaDB datadir" in failure_line(result.err)
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == before
    assert (home / "thesis.tex").read_text() == "years of work"


def test_a_datadir_given_as_a_symlink_is_owned_by_the_owner(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """Severity: loud wrong (the server then fails to start, far from the cause). The
    datadir path is a symlink to the real directory (``/var/lib/mysql -> /srv/mysql``, a
    common way to move a datadir to another disk), owned by root.

    Steps: ``restore ID --datadir LINK --owner mysql``.
    Expected: the datadir, the directory itself included, owned by mysql, as when DIR is a
    plain directory (exit 0, "datadir ready, owner mysql").
    Was (fixed): every file and subdirectory is mysql's, but the real directory stays root's
    (0755): ``mariadbd --user=mysql`` cannot create ``ibtmp1`` or a database there.
    Cause: ``datadir.set_ownership`` ends with ``os.lchown(datadir, ...)``, which changes
    the symlink, not the directory it names."""
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    link = tmp_path / "link"
    link.symlink_to(real)
    done = cli(sandbox.config_path, encrypted.env, "restore", encrypted.backup_id,
               "--datadir", str(link), "--owner", "mysql")  # fmt: skip
    assert done.code == 0, done.err
    assert prepared(real)
    mysql = pwd.getpwnam("mysql")
    assert (real.stat().st_uid, real.stat().st_gid) == (mysql.pw_uid, mysql.pw_gid)


LINEAGE_POLICY = "t6-lineage"


def scratch_source(
    sandbox: SandboxHandle, encrypted: Encrypted, base: Path, port_base: int, policy: str
) -> tuple[int, dict[str, str]]:
    """A datadir at ``base`` (the encrypted full backup restored) to run as node ``t6s``,
    and ``policy``: its physical backups, ``full_every_days = 7``. The node's port and the
    environment that names it."""
    assert cli(sandbox.config_path, encrypted.env, "restore", encrypted.backup_id,
               "--datadir", str(base), "--owner", OWNER).code == 0  # fmt: skip
    port = free_port(scratch_ports(port_base))
    sandbox.write_policy(
        policy,
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\nencrypt = false\nfull_every_days = 7\n'
        '[source]\nnode = "t6s"\n[retention]\nkeep_last = 20\nmin_age_days = 0\n',
    )
    return port, {
        "DATATIER_MYSQL__NODES__T6S__HOST": "127.0.0.1",
        "DATATIER_MYSQL__NODES__T6S__PORT": str(port),
    }


def test_an_incremental_after_the_server_was_rolled_back_restores_what_the_server_held(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (a backup and its restore exit 0 with other data than the
    server held). The operator rolls a server back in place to an older physical backup of
    its own chain (``restore FULL --datadir ITS_DATADIR --force``, same host and port, so
    the same ``server_uid``/``server_id``/version), and the nightly incrementals go on.

    Steps (a scratch ``mariadbd`` as node ``t6s``): table t of 5,000 rows 'base'; full
    backup F; every row updated to 'abandoned timeline'; incremental N on F. Server stopped,
    F restored over its datadir, server started (t is 'base' again); writes to another
    table until InnoDB's LSN passes N's ``to_lsn``; ``backup run --incremental``, then the
    policy's own choice (``full_every_days = 7``) and a restore of what it took.
    Expected: the incremental is refused naming F (exit 2); the policy takes a full backup
    instead; its restore holds what the server held: t all 'base'. Rolled back to F a
    second time after an incremental on that full backup, the chain is refused again;
    restored in place from the newest backup, the chain goes on and restores right.
    Was (fixed): the incremental built on N (exit 0); its restore (exit 0) held t with all
    5,000 rows 'abandoned timeline': pages the server had not rewritten since the rollback
    carry LSNs below N's ``to_lsn``, so the incremental skipped them and N's pages from the
    abandoned timeline stayed.
    Cause: ``lineage._continue`` told "the same server" only by ``server_uid``,
    ``server_id``, version and an LSN not behind the parent's. Now every manifest records
    the datadir's origin (the ``xtrabackup_info`` a restore leaves: the restored backup's
    uuid and the file's ctime) and its own uuid, and a chain continues only on a datadir
    whose origin is unchanged or is the parent itself."""
    base = tmp_path / "server"
    env = encrypted.env
    port, node = scratch_source(sandbox, encrypted, base, test_port_base, LINEAGE_POLICY)

    def run(*args: str) -> str:
        result = cli(sandbox.config_path, {**env, **node}, *args)
        assert result.code == 0, result.err
        return str(result.json()["id"]) if "--json" in args else ""

    store = store_of(sandbox)

    def manifest(backup_id: str) -> Manifest:
        return Manifest.decode(store.get_bytes(manifest_key(LINEAGE_POLICY, backup_id)), "t")

    def fill_past(c: Any, target_lsn: int) -> None:
        with c.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS t6lin.filler (id INT AUTO_INCREMENT "
                        "PRIMARY KEY, b LONGBLOB)")  # fmt: skip
            while current_lsn(c) <= target_lsn + 1024 * 1024:
                cur.execute("INSERT INTO t6lin.filler (b) VALUES (REPEAT('f', 1000000))")

    try:
        with ScratchServer(base, port) as server, connect_port(sandbox, server.port) as c:
            with c.cursor() as cur:
                cur.execute("CREATE DATABASE t6lin")
                cur.execute("CREATE TABLE t6lin.t (id INT PRIMARY KEY, v VARCHAR(40))")
                cur.execute("INSERT INTO t6lin.t SELECT seq, 'base' FROM t6lin.seq_1_to_5000")
            full = run("backup", "run", LINEAGE_POLICY, "--full", "--json")
            with c.cursor() as cur:
                cur.execute("UPDATE t6lin.t SET v = 'abandoned timeline'")
            newest = run("backup", "run", LINEAGE_POLICY, "--incremental", "--json")
        newest_lsn = int(manifest(newest).consistency["to_lsn"])
        # The operator rolls the server back to the full backup (the update was a mistake).
        run("restore", full, "--datadir", str(base), "--force", "--owner", OWNER)
        origin = datadir_origin(base)
        assert origin is not None and origin["uuid"] == manifest(full).consistency["backup_uuid"]
        with ScratchServer(base, port) as server, connect_port(sandbox, server.port) as c:
            with c.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM t6lin.t WHERE v = 'base'")
                assert cur.fetchone()[0] == 5000, "rolled back"
            fill_past(c, newest_lsn)
            expected = table_state(c, "t6lin")
            refused = cli(sandbox.config_path, {**env, **node}, "backup", "run", LINEAGE_POLICY,
                          "--incremental", "--json")  # fmt: skip
            assert refused.code == 2, refused.err
            assert f"cannot build on the newest backup {newest}" in refused.err
            assert f"restored from backup {full} (uuid " in refused.err
            chosen = run("backup", "run", LINEAGE_POLICY, "--json")
            assert manifest(chosen).parent is None, "the policy took a full backup instead"
            assert manifest(chosen).source["restored_from"] == origin
            # an incremental on the new full backup continues on this datadir
            on_chosen = run("backup", "run", LINEAGE_POLICY, "--incremental", "--json")
            assert manifest(on_chosen).parent == chosen
            chosen_lsn = int(manifest(on_chosen).consistency["to_lsn"])
        check = tmp_path / "check"
        run("restore", chosen, "--datadir", str(check), "--owner", OWNER)
        other = free_port(scratch_ports(test_port_base))
        with ScratchServer(check, other) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t6lin") == expected, "what the server held"
        # Rolled back to F once more: the same backup, another restore; the chain on
        # ``chosen`` holds the timeline just abandoned.
        run("restore", full, "--datadir", str(base), "--force", "--owner", OWNER)
        again = datadir_origin(base)
        assert again is not None and again["uuid"] == origin["uuid"] and again != origin
        with ScratchServer(base, port) as server, connect_port(sandbox, server.port) as c:
            fill_past(c, chosen_lsn)
            refused = cli(sandbox.config_path, {**env, **node}, "backup", "run", LINEAGE_POLICY,
                          "--incremental", "--json")  # fmt: skip
        assert refused.code == 2 and f"restored from backup {full} (uuid " in refused.err
        # Restored in place from the newest backup (chain ``chosen`` + ``on_chosen``): the
        # datadir holds that backup's state, so the chain goes on and restores right.
        run("restore", on_chosen, "--datadir", str(base), "--force", "--owner", OWNER)
        restored = datadir_origin(base)
        assert restored is not None
        assert restored["uuid"] == manifest(on_chosen).consistency["backup_uuid"]
        with ScratchServer(base, port) as server, connect_port(sandbox, server.port) as c:
            with c.cursor() as cur:
                cur.execute("UPDATE t6lin.t SET v = 'after the restore' WHERE id <= 10")
            expected = table_state(c, "t6lin")
            goes_on = run("backup", "run", LINEAGE_POLICY, "--incremental", "--json")
        assert manifest(goes_on).parent == on_chosen
        last = tmp_path / "last"
        run("restore", goes_on, "--datadir", str(last), "--owner", OWNER)
        with ScratchServer(last, other) as s3, connect_port(sandbox, s3.port) as c3:
            assert table_state(c3, "t6lin") == expected
    finally:
        store.delete([o.key for o in store.list_objects(f"{LINEAGE_POLICY}/")])
        (sandbox.root / "backups" / f"{LINEAGE_POLICY}.toml").unlink(missing_ok=True)


COLD_POLICY = "t6-coldcopy"


def test_an_incremental_after_a_cold_copy_rollback_is_refused_by_the_binlog(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (a backup and its restore exit 0 with other data than the
    server held). A server with the binlog on, whose datadir was never restored from a
    mariabackup copy (no ``xtrabackup_info``: no origin to compare), is rolled back by
    putting back a cold copy of its datadir (``cp -a`` of the stopped datadir; a
    filesystem snapshot rollback is the same), and the nightly incrementals go on.

    Steps (a scratch ``mariadbd`` with ``--log-bin`` as node ``t6s``): table t of 5,000
    rows 'base'; full backup F; server stopped, datadir copied (``cp -a``), started; every
    row updated to 'abandoned timeline'; incremental N on F. Server stopped, the cold copy
    put back, started (t is 'base' again); writes until InnoDB's LSN passes N's
    ``to_lsn``; ``backup run --incremental``, then the policy's own choice
    (``full_every_days = 7``) and a restore of what it took.
    Expected: the incremental is refused naming N and its binlog position (exit 2); the
    policy takes a full backup instead; its restore holds what the server held.
    Was (fixed): the incremental built on N (exit 0) and the policy's choice too; the
    restore (exit 0) held the abandoned timeline's pages N copied.
    Cause: the datadir's origin is None before and after, the identity and the LSN match;
    nothing compared the server's binlog with the point N was copied at. Now the server's
    binlog must still hold N's binlog position with the GTID state N recorded there."""
    base = tmp_path / "server"
    cold = tmp_path / "cold"
    env = encrypted.env
    port, node = scratch_source(sandbox, encrypted, base, test_port_base, COLD_POLICY)
    (base / "xtrabackup_info").unlink()  # a datadir never restored from a mariabackup copy
    store = store_of(sandbox)

    def run(*args: str) -> str:
        result = cli(sandbox.config_path, {**env, **node}, *args)
        assert result.code == 0, result.err
        return str(result.json()["id"]) if "--json" in args else ""

    def manifest(backup_id: str) -> Manifest:
        return Manifest.decode(store.get_bytes(manifest_key(COLD_POLICY, backup_id)), "t")

    def server() -> ScratchServer:
        return ScratchServer(base, port, log_bin=True)

    try:
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("CREATE DATABASE t6cold")
            cur.execute("CREATE TABLE t6cold.t (id INT PRIMARY KEY, v VARCHAR(40))")
            cur.execute("INSERT INTO t6cold.t SELECT seq, 'base' FROM t6cold.seq_1_to_5000")
            full = run("backup", "run", COLD_POLICY, "--full", "--json")
        subprocess.run(["cp", "-a", str(base), str(cold)], check=True)
        with server() as s, connect_port(sandbox, s.port) as c, c.cursor() as cur:
            cur.execute("UPDATE t6cold.t SET v = 'abandoned timeline'")
            newest = run("backup", "run", COLD_POLICY, "--incremental", "--json")
        assert manifest(newest).parent == full
        point = manifest(newest).consistency
        assert point["binlog_file"] and point["binlog_gtid"], "the binlog's state there"
        newest_lsn = int(point["to_lsn"])
        # The operator puts the cold copy back (the update was a mistake).
        subprocess.run(["rm", "-rf", str(base)], check=True)
        subprocess.run(["cp", "-a", str(cold), str(base)], check=True)
        assert datadir_origin(base) is None
        with server() as s, connect_port(sandbox, s.port) as c:
            with c.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM t6cold.t WHERE v = 'base'")
                assert cur.fetchone()[0] == 5000, "rolled back"
                cur.execute("CREATE TABLE t6cold.filler (id INT AUTO_INCREMENT "
                            "PRIMARY KEY, b LONGBLOB)")  # fmt: skip
                while current_lsn(c) <= newest_lsn + 1024 * 1024:
                    cur.execute("INSERT INTO t6cold.filler (b) VALUES (REPEAT('f', 1000000))")
            expected = table_state(c, "t6cold")
            refused = cli(sandbox.config_path, {**env, **node}, "backup", "run", COLD_POLICY,
                          "--incremental", "--json")  # fmt: skip
            assert refused.code == 2, refused.err
            assert f"cannot build on the newest backup {newest}" in refused.err
            assert f"binlog position {point['binlog_file']}:{point['binlog_pos']}" in refused.err
            assert "take a full backup (--full)" in refused.err
            chosen = run("backup", "run", COLD_POLICY, "--json")
        assert manifest(chosen).parent is None, "the policy took a full backup instead"
        check = tmp_path / "check"
        run("restore", chosen, "--datadir", str(check), "--owner", OWNER)
        other = free_port(scratch_ports(test_port_base))
        with ScratchServer(check, other) as s2, connect_port(sandbox, s2.port) as c2:
            assert table_state(c2, "t6cold") == expected, "what the server held"
    finally:
        store.delete([o.key for o in store.list_objects(f"{COLD_POLICY}/")])
        (sandbox.root / "backups" / f"{COLD_POLICY}.toml").unlink(missing_ok=True)


def test_force_onto_a_directory_holding_a_running_servers_datadir_is_refused(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path, test_port_base: int
) -> None:
    """Severity: silent wrong (a running server's datadir deleted under it, exit 0). The
    operator gives the parent of a live datadir (``--datadir /srv/db --force`` for
    ``/srv/db/mysql``: a typo, or a layout with datadirs side by side).

    Steps: a scratch server runs on OUTER/live; ``restore ID --datadir OUTER --force``.
    Expected: exit 2, nothing changed (the hint says "--force never replaces a running
    server's files").
    Was (fixed): exit 0, "datadir ready": OUTER/live, the running server's files, deleted.
    Cause: ``check_datadir`` asked only whether DIR itself is held (DIR/ibdata1 locked);
    ``WorkArea.install`` then removes every entry of DIR."""
    outer = tmp_path / "outer"
    inner = outer / "live"
    outer.mkdir()
    assert cli(sandbox.config_path, encrypted.env, "restore", encrypted.backup_id,
               "--datadir", str(inner), "--owner", OWNER).code == 0  # fmt: skip
    with ScratchServer(inner, free_port(scratch_ports(test_port_base))) as server:
        result = cli(sandbox.config_path, encrypted.env, "restore", encrypted.backup_id,
                     "--datadir", str(outer), "--owner", OWNER, "--force")  # fmt: skip
        assert result.code == 2 and "is in use by a running server" in result.err, result.err
        assert str(inner) in failure_line(result.err)
        assert prepared(inner) and server.port
        assert [p.name for p in outer.iterdir()] == ["live"], "nothing changed"


def test_a_chain_whose_full_backup_is_encrypted_to_a_rotated_out_key_is_exit_2(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    new = make_key(tmp_path, "new")
    sandbox.write_policy(
        "t6-rot",
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\n'
        '[source]\nnode = "primary"\n[retention]\nkeep_last = 20\nmin_age_days = 0\n',
    )
    store = store_of(sandbox)
    try:
        old_env = encrypted.env
        new_env = encryption_env([new], new.path)
        full = cli(sandbox.config_path, old_env, "backup", "run", "t6-rot", "--full", "--json")
        assert full.code == 0, full.err
        inc = cli(sandbox.config_path, new_env, "backup", "run", "t6-rot", "--incremental",
                  "--json")  # fmt: skip
        assert inc.code == 0, inc.err
        inc_id = inc.json()["id"]
        datadir = tmp_path / "rot"
        only_new = cli(sandbox.config_path, new_env, "restore", inc_id, "--datadir", str(datadir))
        assert only_new.code == 2 and not datadir.exists()
        assert short(encrypted.key.public) in failure_line(only_new.err)
        keys = cli(sandbox.config_path, new_env, "keys", "check")
        assert keys.code == 1 and "LOCKED" in keys.out
    finally:
        store.delete([o.key for o in store.list_objects("t6-rot/")])
        (sandbox.root / "backups" / "t6-rot.toml").unlink(missing_ok=True)


def test_hostile_names_are_listed_and_pass_the_restore_test(
    sandbox: SandboxHandle, encrypted: Encrypted
) -> None:
    """Databases named with a space, a slash, a check mark, accents and quotes, each with
    a table ``a/b.c#d``, one named like an internal temporary table (``#sqlfake``, Aria), a
    partitioned table, a sequence and a view ``v é``: the manifest lists them by their
    names and the restore test (encrypted) passes. (A backtick in a database name holding
    an Aria table makes mariadb-backup itself fail: its ``BACKUP LOCK`` does not escape it;
    datatier reports the tool's error, exit 1, and deletes what it wrote.)"""
    names = ["t6 ✓/db", "t6-Ünï.cöde", "t6'q\"x"]
    sandbox.write_policy(
        "t6-names",
        'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\n'
        '[source]\nnode = "primary"\n[retention]\nkeep_last = 20\nmin_age_days = 0\n',
    )
    store = store_of(sandbox)
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in names:
            q = "`" + db.replace("`", "``") + "`"
            cur.execute(f"DROP DATABASE IF EXISTS {q}")
            cur.execute(f"CREATE DATABASE {q}")
            cur.execute(f"CREATE TABLE {q}.`a/b.c#d` (id INT PRIMARY KEY)")
            cur.execute(f"CREATE TABLE {q}.`#sqlfake` (id INT PRIMARY KEY) ENGINE=Aria")
            cur.execute(f"CREATE TABLE {q}.`p` (id INT PRIMARY KEY) PARTITION BY HASH(id) "
                        "PARTITIONS 3")  # fmt: skip
            cur.execute(f"CREATE SEQUENCE {q}.`s-1`")
            cur.execute(f"CREATE VIEW {q}.`v é` AS SELECT 1 AS x")
    try:
        result = cli(sandbox.config_path, encrypted.env, "backup", "run", "t6-names", "--json")
        assert result.code == 0, result.err
        bid = result.json()["id"]
        manifest = Manifest.decode(store.get_bytes(manifest_key("t6-names", bid)), "t")
        for db in names:
            held = manifest.databases[db]
            assert held["tables"] == ["#sqlfake", "a/b.c#d", "p", "s-1"], held
            assert held["views"] == ["v é"], held
        test = cli(sandbox.config_path, encrypted.env, "backups", "verify", bid, "--restore-test")
        assert test.code == 0, test.err
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            for db in names:
                cur.execute("DROP DATABASE IF EXISTS `" + db.replace("`", "``") + "`")
        store.delete([o.key for o in store.list_objects("t6-names/")])
        (sandbox.root / "backups" / "t6-names.toml").unlink(missing_ok=True)


def test_a_source_datadir_of_another_server_still_copies_the_nodes_data(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    """``source.datadir`` naming another server's datadir (replica1's, its SQL thread
    stopped) on a policy of node ``primary``: mariadb-backup warns "option 'datadir' has
    different values" and copies the server's ``@@datadir`` (it exists on this host), so the
    backup holds the primary's data, a row written just before included. (Not tested, as
    the sandbox cannot show it: a server whose ``@@datadir`` does not exist on this host, a
    container's, where mariadb-backup then copies the configured directory whatever server
    it belongs to; the manifest records the configured path in both cases.)"""
    marker = "t6_wrongdir"
    with sandbox.connect("replica1") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@datadir")
        other = cur.fetchone()[0]
        cur.execute("STOP SLAVE SQL_THREAD")
    sandbox.write_policy(
        "t6-wrongdir",
        f'engine = "mariabackup"\njobs = 2\nchunk_mb = 4\nencrypt = false\n'
        f'[source]\nnode = "primary"\ndatadir = "{other}"\n'
        "[retention]\nkeep_last = 20\nmin_age_days = 0\n",
    )
    store = store_of(sandbox)
    try:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {marker}")
            cur.execute(f"CREATE TABLE {marker}.t (id INT PRIMARY KEY) ENGINE=InnoDB")
            cur.execute(f"INSERT INTO {marker}.t VALUES (1)")
        result = cli(sandbox.config_path, {}, "backup", "run", "t6-wrongdir", "--json")
        assert result.code == 0, result.err
        restored = tmp_path / "restored"
        done = cli(sandbox.config_path, {}, "restore", result.json()["id"],
                   "--datadir", str(restored), "--owner", OWNER)  # fmt: skip
        assert done.code == 0, done.err
        assert (restored / marker).is_dir(), "the backup holds what the primary held"
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {marker}")
        with sandbox.connect("replica1") as conn, conn.cursor() as cur:
            cur.execute("START SLAVE SQL_THREAD")
        sandbox.wait_replicated()
        store.delete([o.key for o in store.list_objects("t6-wrongdir/")])
        (sandbox.root / "backups" / "t6-wrongdir.toml").unlink(missing_ok=True)


def test_keys_check_says_plainly_that_no_identity_opens_a_backup(
    sandbox: SandboxHandle, encrypted: Encrypted
) -> None:
    """Severity: confusing. ``keys check`` on a host without the backup's identity.

    Expected: exit 1 and a message saying no identity here opens the backup.
    Was (fixed): exit 1 with ``1 encrypted item(s) open with no available identity: ...``, which
    reads as "they open without needing an identity".
    Cause: the wording of ``keys_cmd``'s OperationFailed."""
    recipients = {"DATATIER_ENCRYPTION__RECIPIENTS": encrypted.key.public}
    result = cli(sandbox.config_path, recipients, "keys", "check")
    assert result.code == 1
    last = failure_line(result.err)
    assert "open with no available identity" not in last, last
    assert "no identity here opens" in last and encrypted.backup_id in last, last


def test_an_identity_file_joined_into_one_line_is_named_as_such(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """Severity: confusing. ``age-keygen``'s output (``# created: ...``, ``# public key:
    ...``, the key) joined into one line, as an environment variable or a single-line
    secret store field gives it.

    Expected: exit 2 saying the line that starts as a comment holds a private key (lines
    joined?), never quoting it. (A file with a key and a commented-out retired key still
    loads.)
    Was (fixed): exit 2, ``not an age identity file: it holds no identity``, though the value
    plainly holds ``AGE-SECRET-KEY-1...``.
    Cause: ``encrypt.parse_identities`` skips a line starting with ``#`` whole."""
    oneline = f"# created: 2026-12-04 # public key: {encrypted.key.public} {encrypted.key.secret}"
    env = {**encrypted.env, "DATATIER_ENCRYPTION__IDENTITY": oneline}
    env.pop("DATATIER_ENCRYPTION__IDENTITY_FILE")
    result = cli(sandbox.config_path, env, "restore", encrypted.backup_id, "--datadir",
                 str(tmp_path / "x"), "--dry-run")  # fmt: skip
    assert result.code == 2
    last = failure_line(result.err)
    assert encrypted.key.secret[20:40] not in result.err + result.out
    assert "comment holding a private key" in last, last


def scratch_servers(under: Path) -> dict[int, str]:
    """pid -> command line of every running ``mariadbd`` serving a restore test's copy
    under ``under`` (this test's ``--scratch-dir``: never another run's, which the test
    would count as its own and SIGKILL)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\\0")
        except OSError:
            continue
        line = b" ".join(argv).decode(errors="replace")
        if (
            "mariadbd" in argv[0].decode(errors="replace")
            and "datatier-verify-" in line
            and str(under) in line
        ):
            found[int(entry.name)] = line
    return found


def test_a_killed_restore_test_leaves_no_scratch_server_running(
    sandbox: SandboxHandle, encrypted: Encrypted, tmp_path: Path
) -> None:
    """Severity: silent wrong (security: the decrypted copy of an encrypted backup stays
    served). ``backups verify ID --restore-test`` is killed (SIGKILL: a CI or cron timeout,
    the OOM killer) while its scratch ``mariadbd`` runs.

    Expected: the scratch server goes with the command (it serves a decrypted copy of the
    backup, with the backup's accounts and password hashes, on 127.0.0.1).
    Was (fixed): the scratch ``mariadbd`` ran on indefinitely, its port taken, its datadir (the
    decrypted copy) under ``--scratch-dir``.
    Cause: ``ScratchServer.start`` started it in a session of its own
    (``start_new_session``) and only ``ScratchServer.stop`` ever stopped it: nothing tied
    its life to datatier's; now ``PR_SET_PDEATHSIG`` does."""
    scratch_root = tmp_path / "scratch"
    scratch_root.mkdir()
    before = set(scratch_servers(scratch_root))
    proc = datatier(sandbox, encrypted.env, "backups", "verify", encrypted.backup_id,
                    "--restore-test", "--scratch-dir", str(scratch_root))  # fmt: skip
    deadline = time.monotonic() + 120
    new: set[int] = set()
    try:
        while not new:
            new = set(scratch_servers(scratch_root)) - before
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no scratch server started"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    alive = new
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {p for p in new if Path(f"/proc/{p}").exists()}
    for pid in alive:  # started by this test's command: stopped here either way
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the scratch server outlived the killed restore test"
