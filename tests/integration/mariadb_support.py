"""An extra MariaDB server beside the sandbox's three, for tests that seed or restore into an
empty server (provisioning a replica, restoring a physical backup)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from datatier.errors import DatatierError
from datatier.sandbox import process
from datatier.sandbox.services.mariadb import MariaDBService
from tests.integration.conftest import SandboxHandle, unavailable


@contextlib.contextmanager
def extra_mariadb(
    sandbox: SandboxHandle,
    name: str,
    port: int,
    workdir: Path,
    server_id: int,
    *,
    after_stop: Callable[[MariaDBService], None] | None = None,
) -> Iterator[MariaDBService]:
    """A freshly initialised MariaDB ``name`` on ``port`` with the sandbox's tool and
    replication users, running until the block ends (then stopped). The test is reported
    unavailable when the server cannot be initialised, and fails when it does not start.
    ``after_stop`` runs once the started process is stopped (and reaped)."""
    cfg = sandbox.config.mysql
    svc = MariaDBService(
        name, port, workdir, server_id=server_id, primary=None, user=cfg.user,
        password=cfg.password, repl_user=cfg.replication_user,
        repl_password=cfg.replication_password,
    )  # fmt: skip
    try:
        svc.prepare(process.run_once)
    except DatatierError as exc:
        unavailable(f"cannot initialise MariaDB {name}: {exc}")
    record = process.start(svc.argv(), svc.log_path, cwd=svc.workdir)
    try:
        if not process.wait_until(lambda: svc.ready() or not process.is_alive(record), 60):
            pytest.fail(f"MariaDB {name} did not start: {process.tail(svc.log_path)}")
        svc.configure()  # the tool and replication users, as on every sandbox node
        yield svc
    finally:
        process.stop([record])
        if after_stop is not None:
            after_stop(svc)
