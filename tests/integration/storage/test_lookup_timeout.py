"""Read-only commands give up on an S3 endpoint that accepts connections and never answers.

A real TCP server in this test accepts every connection, reads what is sent and never
replies (a hung S3 front end: no mock of boto3). ``datatier`` runs as its own process with
``[s3] endpoint_url`` pointing there and ``lookup_timeout = 3``: ``backups list``,
``binlogs status`` and a restore's lookup of its backup must exit 3 within 15 s (before
the bound they took about 8 minutes: 8 attempts of a 60 s read timeout) with one line
naming the endpoint and the timeout, no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.integrity import failure_line

PORT_BASE = int(os.environ.get("DATATIER_TEST_PORT_BASE", "24060"))
SILENT_PORT = PORT_BASE + 80
NO_MYSQL_PORT = PORT_BASE + 81  # nothing listens: binlogs status only asks it its position
LOOKUP_TIMEOUT = 3.0
LIMIT = 15.0


class SilentServer:
    """Accepts connections on 127.0.0.1:``port``, reads and never answers, until closed."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.listener.settimeout(0.2)
        self.accepted: list[socket.socket] = []
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="silent-s3", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            conn.setblocking(False)  # read nothing back; the kernel buffers the request
            self.accepted.append(conn)

    def close(self) -> None:
        self.closing.set()
        self.thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.listener.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer(SILENT_PORT)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def config(tmp_path: Path, silent: SilentServer) -> Path:
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "shop.toml").write_text(
        'engine = "mysql"\n[source]\nnode = "db"\ndatabases = ["shop"]\n'
    )
    path = tmp_path / "datatier.toml"
    path.write_text(
        f'[s3]\nendpoint_url = "http://127.0.0.1:{SILENT_PORT}"\n'
        f'lookup_timeout = {LOOKUP_TIMEOUT}\nencryption = "none"\n'
        '[backup]\npolicies_dir = "backups"\ndefault_store = "s3://hung-bucket/dt"\n'
        f'[mysql.nodes.db]\nport = {NO_MYSQL_PORT}\nrole = "primary"\n'
    )
    return path


def run(config: Path, *args: str) -> tuple[int, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATATIER_", "AWS_"))}
    env.update(
        DATATIER_S3__ACCESS_KEY_ID="testing",  # real credentials: the request is sent
        DATATIER_S3__SECRET_ACCESS_KEY="testing-secret",
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "datatier", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,  # the unbounded hang took ~8 minutes: fail, don't wait for it
        check=False,
    )
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.parametrize(
    "args",
    [
        ("backups", "list"),
        ("backups", "list", "shop"),
        ("binlogs", "status"),
        ("restore", "20260101T000000Z-abcd", "--dry-run"),
    ],
    ids=["backups-list", "backups-list-policy", "binlogs-status", "restore-lookup"],
)
def test_a_silent_endpoint_fails_a_read_only_command_in_lookup_timeout(
    config: Path, silent: SilentServer, args: tuple[str, ...]
) -> None:
    code, err, seconds = run(config, *args)
    line = failure_line(err)
    assert code == 3, err
    assert seconds < LIMIT, f"{' '.join(args)} took {seconds:.1f} s"
    assert seconds >= LOOKUP_TIMEOUT * 0.9, f"gave up after {seconds:.1f} s: not a timeout?"
    assert silent.accepted, "the command never reached the silent endpoint"
    assert f"S3 at 127.0.0.1:{SILENT_PORT} did not answer to list s3://hung-bucket/dt" in line
    assert "s3.lookup_timeout 3 s: 3 attempt(s) of 1 s" in line, line
    assert "Traceback" not in err and "testing-secret" not in err
    assert len(silent.accepted) <= 3, f"{len(silent.accepted)} attempts: more than 3"


def test_check_reports_a_silent_store_as_failed_within_lookup_timeout(
    config: Path, silent: SilentServer
) -> None:
    """``datatier check`` probes each store (put, read back, delete): a silent endpoint is
    a failed check, exit 1, within the bound, not minutes of retries."""
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATATIER_", "AWS_"))}
    env.update(DATATIER_S3__ACCESS_KEY_ID="testing", DATATIER_S3__SECRET_ACCESS_KEY="x-secret")
    argv = [sys.executable, "-m", "datatier", "--config", str(config)]
    done = subprocess.run(
        [*argv, "check", "--only", "store", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert seconds < LIMIT, f"check took {seconds:.1f} s"
    assert silent.accepted, "the check never reached the silent endpoint"
    assert "s3.lookup_timeout 3 s" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr and "x-secret" not in done.stdout + done.stderr
