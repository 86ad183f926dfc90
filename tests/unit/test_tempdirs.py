"""``datatier.tempdirs``: a held directory outlives no process, and a sweep never takes one a
live process holds. Real processes, killed for real (SIGKILL)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from datatier.tempdirs import HELD, held_directory, sweep_dead

HOLDER = """
import sys, time
from pathlib import Path
from datatier.tempdirs import held_directory
with held_directory("dt-test-", Path(sys.argv[1])) as root:
    print(root, flush=True)
    time.sleep(600)
"""


def holder(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process holding a directory under ``parent``; it and the directory."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(parent)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        raise AssertionError("the holder never said its directory")
    root = Path(proc.stdout.readline().strip())
    assert root.parent == parent and root.name.startswith("dt-test-"), root
    return proc, root


def test_a_live_holders_directory_is_never_swept_and_a_killed_ones_is(tmp_path: Path) -> None:
    live, kept = holder(tmp_path)
    dead, gone = holder(tmp_path)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait(timeout=30)
        assert gone.is_dir(), "SIGKILL removes nothing by itself: the case to sweep"
        swept = sweep_dead(tmp_path, "dt-test-")
        assert swept == [gone]
        assert not gone.exists()
        assert kept.is_dir() and (kept / HELD).exists()
    finally:
        live.kill()
        live.wait(timeout=30)


def test_the_next_held_directory_sweeps_and_one_without_the_hold_is_left(tmp_path: Path) -> None:
    proc, gone = holder(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    foreign = tmp_path / "dt-test-unheld"  # an older release's, or one being set up
    foreign.mkdir()
    other = tmp_path / "other-prefix"
    other.mkdir()
    (other / HELD).touch()  # not of this prefix
    with held_directory("dt-test-", tmp_path) as root:
        assert root.stat().st_mode & 0o777 == 0o700
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [root.name, "dt-test-unheld", "other-prefix"]
        )
    assert not root.exists(), "removed after the block"
    assert not gone.exists()


def test_a_directory_held_in_this_process_is_not_swept_by_it(tmp_path: Path) -> None:
    """flock belongs to the open file, not the process: a second job in one process (a test
    runner, a library user) never sweeps the first's directory."""
    with held_directory("dt-test-", tmp_path) as first:
        assert sweep_dead(tmp_path, "dt-test-") == []
        with held_directory("dt-test-", tmp_path) as second:
            assert first.is_dir() and second.is_dir()


def test_a_held_file_planted_by_someone_else_never_hangs_or_misleads_a_sweep(
    tmp_path: Path,
) -> None:
    """Another local user can create ``/tmp/datatier-...-x/.held``: a FIFO must not make the
    sweep wait for a writer, and a link must not be followed (its target's directory is not
    this process's to judge)."""
    fifo = tmp_path / "dt-test-fifo"
    fifo.mkdir()
    os.mkfifo(fifo / HELD)
    linked = tmp_path / "dt-test-link"
    linked.mkdir()
    (linked / "kept").write_text("x")
    target = tmp_path / "elsewhere"
    target.write_text("")
    (linked / HELD).symlink_to(target)
    dirlink = tmp_path / "dt-test-dirlink"
    dirlink.symlink_to(linked)

    def hung(*_: object) -> None:
        raise AssertionError("the sweep hung on the planted .held")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        assert sweep_dead(tmp_path, "dt-test-") == []
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert (fifo / HELD).exists() and (linked / "kept").exists() and dirlink.is_symlink()
