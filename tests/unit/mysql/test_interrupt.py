"""The restore's :class:`~datatier.mysql.interrupt.Interrupter` without a server: what it
refuses once fired, the clients it kills, and how :meth:`supervise` hands on a failure or a
signal. (Killing connections on a real server: tests/integration/mysql/test_restore_stop.py
and test_restore_signals.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from datatier.errors import OperationFailed
from datatier.mysql.connection import Endpoint
from datatier.mysql.interrupt import Interrupter, Stopped

NOWHERE = Endpoint("target", "127.0.0.1", 1, "nobody")  # never contacted: nothing to kill


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], stdout=subprocess.PIPE)


def test_nothing_is_registered_once_fired() -> None:
    interrupter = Interrupter(NOWHERE)
    interrupter.fire()
    assert interrupter.stop.is_set()
    with pytest.raises(Stopped):
        interrupter.watch(7)
    proc = sleeper()
    with pytest.raises(Stopped), interrupter.client(proc):
        pytest.fail("a client started after the stop must not run")
    assert proc.returncode == -signal.SIGKILL


def test_fire_kills_the_clients_it_holds_and_can_be_called_again() -> None:
    interrupter = Interrupter(NOWHERE)
    proc = sleeper()
    with interrupter.client(proc) as handle:
        handle.learned(None)  # it never said its connection id: no statement ran
        interrupter.fire()
        assert proc.wait(timeout=5) == -signal.SIGKILL
        interrupter.fire()


def test_supervise_raises_the_call_s_own_failure() -> None:
    def failing() -> None:
        raise OperationFailed("the first failure")

    with pytest.raises(OperationFailed, match="the first failure"):
        Interrupter(NOWHERE).supervise(failing)


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Python's Ctrl-C handler for the test, whatever the suite inherited (a background job
    of a shell without job control starts with SIGINT ignored, and a kill would be lost)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_signal_fires_and_is_raised_once_the_call_has_ended(ctrl_c: None) -> None:
    """Ctrl-C reaches the waiting main thread: it fires (the call, blocked until then,
    sees ``stop``), and KeyboardInterrupt is raised, not the call's own secondary error."""
    interrupter = Interrupter(NOWHERE)
    ended = threading.Event()

    def blocked() -> None:
        interrupter.stop.wait(30)
        ended.set()
        raise OperationFailed("query interrupted")  # what a killed statement raises

    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        interrupter.supervise(blocked)
    assert ended.is_set()
