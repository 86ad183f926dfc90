"""Start, identify and stop the sandbox's server processes, and probe TCP ports.

A process is identified by pid *and* its exact command line (read from /proc), so a
recycled pid is never mistaken for ours and ``down`` never signals a stranger.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcessRecord:
    """What ``up`` remembers about a process it started."""

    pid: int
    argv: list[str]
    log: str
    started_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        return cls(
            pid=int(data["pid"]),
            argv=[str(a) for a in data["argv"]],
            log=str(data["log"]),
            started_at=float(data["started_at"]),
        )


def cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None if it does not exist (or is a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def is_alive(record: ProcessRecord) -> bool:
    """True if ``record.pid`` runs and its command line is still the one we started."""
    return cmdline(record.pid) == record.argv


def start(
    argv: Sequence[str], log_path: Path, *, cwd: Path, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` detached (own session), stdout+stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    # Popen may return while the child is still inside execve (vfork): /proc/PID/cmdline
    # reads empty for a moment, and is_alive() would call a starting server dead (a caller
    # waiting on "ready or dead" then went on with no server, and stop() never killed it).
    deadline = time.monotonic() + 5
    while cmdline(proc.pid) != list(argv) and proc.poll() is None:
        if time.monotonic() >= deadline:
            break
        time.sleep(0.001)
    return ProcessRecord(pid=proc.pid, argv=list(argv), log=str(log_path), started_at=time.time())


def run_once(program: str, args: Sequence[str]) -> tuple[int, str]:
    """Run ``program`` (looked up on PATH) to completion; (exit code, stderr + stdout)."""
    try:
        result = subprocess.run(
            [shutil.which(program) or program, *args], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        return 127, f"ERROR: cannot run {program}: {exc}"
    return result.returncode, result.stderr + result.stdout


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(records: Sequence[ProcessRecord], timeout: float = 30.0) -> list[ProcessRecord]:
    """SIGTERM every live record, wait up to ``timeout``, then SIGKILL; return those killed."""
    live = [r for r in records if is_alive(r)]
    for record in live:
        os.kill(record.pid, signal.SIGTERM)
        os.kill(record.pid, signal.SIGCONT)  # a paused (SIGSTOP) process must see the TERM
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        for record in live:
            _reap(record.pid)
        live = [r for r in live if is_alive(r)]
        if live:
            time.sleep(0.05)
    for record in live:
        os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    for record in live:
        while is_alive(record) and time.monotonic() < deadline:
            _reap(record.pid)
            time.sleep(0.02)
    return live


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(host: str, port: int) -> bool:
    """True if ``host:port`` can be bound now (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass; return its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])
