"""An extra MariaDB server beside the sandbox's three, for tests that seed or restore into an
empty server (provisioning a replica, restoring a physical backup)."""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pymysql
import pytest

from datatier.errors import DatatierError
from datatier.sandbox import process
from datatier.sandbox.services.mariadb import MariaDBService
from datatier.typedtoml import dumps_toml
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
    extra_args: Sequence[str] = (),
) -> Iterator[MariaDBService]:
    """A freshly initialised MariaDB ``name`` on ``port`` with the sandbox's tool and
    replication users, running until the block ends (then stopped). The test is reported
    unavailable when the server cannot be initialised, and fails when it does not start.
    ``after_stop`` runs once the started process is stopped (and reaped); ``extra_args``
    are added to the server's command line (``--lower-case-table-names=1``...)."""
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
    record = process.start([*svc.argv(), *extra_args], svc.log_path, cwd=svc.workdir)
    try:
        if not process.wait_until(lambda: svc.ready() or not process.is_alive(record), 60):
            pytest.fail(f"MariaDB {name} did not start: {process.tail(svc.log_path)}")
        svc.configure()  # the tool and replication users, as on every sandbox node
        yield svc
    finally:
        process.stop([record])
        if after_stop is not None:
            after_stop(svc)


def own_config(
    sandbox: SandboxHandle, svc: MariaDBService, node: str, where: Path, policies: dict[str, str]
) -> Path:
    """The sandbox's config with ``svc`` as its only (primary) MySQL node ``node``, secrets
    and policies by absolute path, and ``policies`` (name -> the policy's TOML) in a
    policies directory of its own under ``where``."""
    doc: dict[str, Any] = tomllib.loads(sandbox.config_path.read_text())
    for section in ("mysql", "s3"):
        for key, value in doc[section].items():
            if key.endswith("_file"):
                doc[section][key] = str(sandbox.root / value)
    doc["mysql"]["nodes"] = {node: {"host": svc.host, "port": svc.port, "role": "primary"}}
    directory = where / "backups"
    directory.mkdir()
    for name, text in policies.items():
        (directory / f"{name}.toml").write_text(text)
    doc["backup"]["policies_dir"] = str(directory)
    path = where / "datatier.toml"
    path.write_text(dumps_toml(doc))
    return path


def connect_to(sandbox: SandboxHandle, svc: MariaDBService) -> Any:
    """A pymysql connection (autocommit) to ``svc`` as the sandbox's tool user."""
    cfg = sandbox.config.mysql
    return pymysql.connect(
        host=svc.host, port=svc.port, user=cfg.user, password=cfg.password.reveal(),
        autocommit=True, charset="utf8mb4", connect_timeout=5,
    )  # fmt: skip
