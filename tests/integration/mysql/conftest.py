"""Fixtures and helpers shared by the MySQL integration tests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from typing import Any

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.config import load
from tests.integration.conftest import SandboxHandle


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The arguments of every process the code under test starts (each still runs): a
    restore starts none but stock ``mariadb`` clients, so this counts them."""
    started: list[Any] = []
    popen = subprocess.Popen

    def counting(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        return popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    return started


def back_up(
    sandbox: SandboxHandle, policy: str, databases: Iterable[str], settings: str = ""
) -> Manifest:
    """A backup, from replica1 once it has the primary's writes, of ``databases`` under the
    MySQL policy ``policy`` (written with ``settings``: TOML lines such as
    ``bundle_tables = false``)."""
    sandbox.wait_replicated()
    sandbox.write_policy(
        policy,
        f'engine = "mysql"\n{settings}[source]\nnode = "replica1"\n'
        f"databases = {json.dumps(list(databases))}\n",
    )
    loaded = load(str(sandbox.config_path), environ={})
    return run_backup(loaded, load_policy(loaded, policy))
