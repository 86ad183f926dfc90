"""The sandbox's memcached probe (``ready``, and so ``sandbox status``) on a loaded machine,
against a real memcached paused with SIGSTOP. Port ``DATATIER_TEST_PORT_BASE + 55``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.sandbox.services.memcached import MemcachedService
from tests.integration.conftest import unavailable, wait_for


@pytest.fixture
def memcached(tmp_path: Path, test_port_base: int) -> Iterator[tuple[MemcachedService, int]]:
    """A sandbox memcached service, running (its pid alongside)."""
    if shutil.which("memcached") is None:
        unavailable("memcached is not installed")
    svc = MemcachedService("memcached2", test_port_base + 55, tmp_path)
    proc = subprocess.Popen(svc.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(svc.ready, 10)
        yield svc, proc.pid
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def test_a_memcached_slow_to_answer_reads_as_running(
    memcached: tuple[MemcachedService, int],
) -> None:
    """Under load memcached can take a few hundred ms to answer ``stats`` (up to 0.25 s
    measured at load 14 on 2 cores); with a 0.5 s probe `sandbox status` could call a
    healthy memcached2 unresponsive. Paused for 0.8 s, it still reads as ready."""
    svc, pid = memcached
    os.kill(pid, signal.SIGSTOP)
    resume = threading.Timer(0.8, os.kill, (pid, signal.SIGCONT))
    resume.start()
    started = time.monotonic()
    try:
        assert svc.ready()
        assert time.monotonic() - started >= 0.7  # it did wait for the paused server
        assert svc.details()["version"]
    finally:
        resume.join()


def test_a_memcached_that_never_answers_is_not_ready_within_seconds(
    memcached: tuple[MemcachedService, int],
) -> None:
    svc, pid = memcached
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    assert not svc.ready()
    assert svc.details() == {"version": None, "items": None}
    assert time.monotonic() - started < 10
