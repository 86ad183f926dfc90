"""The heartbeat writer's log while beats keep failing: one line per new failure, not one per
tick (at the default 0.5 s a down or demoted primary wrote 7,200 error lines an hour).

The failure is real: a TCP port on 127.0.0.1 that nothing listens on refuses each connect."""

from __future__ import annotations

import socket
import threading

import pytest

from datatier.mysql.connection import Endpoint
from datatier.mysql.heartbeat import HeartbeatWriter


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on leaving: connects are refused


def test_a_repeated_failure_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    ep = Endpoint("gone", "127.0.0.1", closed_port(), "u", "p", connect_timeout=1.0)
    writer = HeartbeatWriter(ep, interval=0.05)
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    with caplog.at_level("WARNING", logger="datatier"):
        writer.run(stop)
    told = [r for r in caplog.records if r.getMessage() == "heartbeat.write_failed"]
    assert writer.errors >= 10, writer.errors  # every tick tried, and failed
    assert len(told) == 1, [r.getMessage() for r in caplog.records]
    assert writer.last_error and "gone" in writer.last_error
