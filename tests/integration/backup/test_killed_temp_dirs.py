"""A physical backup or restore test killed (SIGKILL: a cron or CI timeout, the OOM killer)
leaves its private temporary directory behind; the next one of its kind removes it.

Two of them lived in the temp directory and were never swept: ``datatier-mariabackup-*``
(a backup's checkpoints and mariabackup's log) and ``datatier-scratch-*`` (a restore test's
scratch server run directory: its options file may hold the password of the backup's key
file). This machine's /tmp held several from killed test runs. Each is now held by its
process (``datatier.tempdirs``), so a dead one can be told from a running one.

Each command runs as its own process with ``TMPDIR`` set to a directory of the test's, so
only its own temporary directories are counted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backup.test_tester7_findings import primary_full_backup
from tests.integration.conftest import SandboxHandle

POLICY = "killed-tmp"


@pytest.fixture(scope="module")
def full(sandbox: SandboxHandle) -> Iterator[str]:
    """A full physical backup of the sandbox primary."""
    yield from primary_full_backup(sandbox, POLICY)


def start(
    sandbox: SandboxHandle, tmpdir: Path, *args: str, path: str | None = None
) -> subprocess.Popen[str]:
    """``datatier --config SANDBOX ARGS`` as its own process, its temp directory ``tmpdir``."""
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    if path is not None:
        env["PATH"] = path
    return subprocess.Popen(
        [sys.executable, "-m", "datatier", "--config", str(sandbox.config_path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def kill_when(proc: subprocess.Popen[str], ready: Path, prefix: str) -> list[int]:
    """SIGKILL ``proc`` once ``ready`` has a ``prefix*`` entry and ``proc`` a child; that
    child's pids (already dying or to be killed by the caller)."""
    deadline = time.monotonic() + 120
    while not (list(ready.glob(f"{prefix}*")) and children(proc.pid)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"no {prefix}* appeared in {ready}"
        time.sleep(0.01)
    orphans = children(proc.pid)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "it ended before the kill"
    return orphans


def reap(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def swept_by_the_next(sandbox: SandboxHandle, tmpdir: Path, prefix: str, *args: str) -> None:
    """After a killed ``datatier ARGS`` left ``tmpdir/prefix*``, the same command (exit 0)
    leaves ``tmpdir`` empty."""
    dead = sorted(p.name for p in tmpdir.glob(f"{prefix}*"))
    assert dead, f"the killed run left no {prefix}*: nothing to sweep"
    again = start(sandbox, tmpdir, *args)
    _out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-1500:]
    left = sorted(p.name for p in tmpdir.iterdir())
    assert not left, f"left in the temp directory: {left} (the dead one: {dead})"


def test_a_killed_restore_tests_scratch_run_directory_is_swept_by_the_next(
    sandbox: SandboxHandle, full: str, tmp_path: Path
) -> None:
    """Steps: ``backups verify ID --restore-test`` SIGKILLed while its scratch server
    starts, then the same command again (exit 0).
    Expected: the second removes the dead one's ``datatier-scratch-*``.
    Was: it stayed, for good (``ScratchServer`` removed it only in ``stop``)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    args = ("backups", "verify", full, "--restore-test", "--scratch-dir", str(scratch))
    reap(kill_when(start(sandbox, tmpdir, *args), tmpdir, "datatier-scratch-"))
    swept_by_the_next(sandbox, tmpdir, "datatier-scratch-", *args)


def test_a_killed_backups_work_directory_is_swept_by_the_next(
    sandbox: SandboxHandle, full: str, tmp_path: Path
) -> None:
    """Steps: ``backup run --full`` SIGKILLed while mariabackup runs (a wrapper first on
    PATH holds it there), then the same backup again (exit 0).
    Expected: the second removes the dead one's ``datatier-mariabackup-*``.
    Was: it stayed, for good (a ``TemporaryDirectory`` is removed only by its process)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    real = shutil.which("mariadb-backup") or shutil.which("mariabackup")
    if real is None:
        pytest.fail("mariadb-backup is not installed (make deps installs it)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "mariadb-backup"
    wrapper.write_text(
        f'#!/bin/sh\ncase " $* " in *" --backup "*) exec sleep 600 ;; esac\nexec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    held = f"{bin_dir}:{os.environ['PATH']}"
    args = ("backup", "run", POLICY, "--full")
    reap(kill_when(start(sandbox, tmpdir, *args, path=held), tmpdir, "datatier-mariabackup-"))
    swept_by_the_next(sandbox, tmpdir, "datatier-mariabackup-", *args)
