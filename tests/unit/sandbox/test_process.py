"""Process supervision: identity by pid and command line, clean stop, port probes."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from datatier.sandbox import process
from datatier.sandbox.process import ProcessRecord


def test_start_identify_and_stop(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    record = process.start(argv, tmp_path / "p.log", cwd=tmp_path)
    assert process.wait_until(lambda: process.is_alive(record), 5)
    impostor = ProcessRecord(record.pid, [*argv, "other"], record.log, record.started_at)
    assert not process.is_alive(impostor)
    assert process.stop([impostor]) == []
    assert process.is_alive(record), "stop() must not touch a process whose argv differs"
    assert process.stop([record], timeout=5) == []
    assert not process.is_alive(record)


def test_a_started_process_is_alive_as_soon_as_start_returns(tmp_path: Path) -> None:
    """Callers wait for "ready or dead" right after start(): a process still inside execve
    (empty /proc/PID/cmdline) must not read as dead, or its server is never stopped."""
    argv = ["sleep", "30"]
    records = []
    try:
        for i in range(40):
            record = process.start(argv, tmp_path / f"p{i}.log", cwd=tmp_path)
            records.append(record)
            assert process.is_alive(record), f"start {i}: dead on arrival"
    finally:
        process.stop(records, timeout=5)
    assert not any(process.is_alive(r) for r in records)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    record = process.start([sys.executable, "-c", code], tmp_path / "p.log", cwd=tmp_path)
    assert process.wait_until(lambda: process.is_alive(record), 5)
    process.wait_until(lambda: False, 0.3)  # let the handler be installed
    killed = process.stop([record], timeout=0.5)
    assert killed == [record]
    assert not process.is_alive(record)


def test_port_probes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert not process.port_free("127.0.0.1", port)
        assert not process.port_open("127.0.0.1", port)
        sock.listen()
        assert process.port_open("127.0.0.1", port)
    assert process.port_free("127.0.0.1", port)


def test_tail_joins_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("a\nb\nc\n")
    assert process.tail(log, 2) == "b | c"
    assert process.tail(tmp_path / "none.log") == ""
