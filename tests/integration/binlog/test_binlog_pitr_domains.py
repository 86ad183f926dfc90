"""Point-in-time restore to a GTID when the binlog holds several GTID domains.

A backup taken after the target G can be at G in G's domain yet hold a later transaction
of another domain; restoring it as the base would bring that transaction back. The server
is an extra MariaDB of its own (a second domain would break the sandbox's tests that read
``@@gtid_binlog_pos`` as one GTID), with a config whose only MySQL node it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.service import run_backup
from datatier.binlog.archiver import Archiver
from datatier.cli import main
from datatier.mysql.physical.scratch import free_port
from datatier.sandbox.services.mariadb import MariaDBService
from tests.integration.binlog_support import own_server_policy
from tests.integration.conftest import SandboxHandle
from tests.integration.mariadb_support import connect_to, extra_mariadb
from tests.integration.mariadb_support import own_config as shared_config

DB = "pitr_dom_db"
RENAMED = "pitr_dom_r"
POLICY = "pitr_domains"
NODE = "domains"
SERVER_ID = 7


@pytest.fixture
def server(sandbox: SandboxHandle, tmp_path: Path, test_port_base: int) -> Iterator[MariaDBService]:
    """A fresh MariaDB (binlog and GTID on, as every sandbox node), stopped afterwards, on
    a free port of ``test_port_base + 300``..``+309`` (the scratch range, +400.., holds the
    HTTP and moto ports of some runs)."""
    port = free_port(range(test_port_base + 300, test_port_base + 310))
    with extra_mariadb(sandbox, NODE, port, tmp_path / "server", server_id=SERVER_ID) as svc:
        yield svc


def own_config(sandbox: SandboxHandle, svc: MariaDBService, where: Path) -> Path:
    """The sandbox's config with ``svc`` as its only MySQL node, ``POLICY`` backing up
    ``DB`` from it."""
    policy = f'engine = "mysql"\n[source]\nnode = "{NODE}"\ndatabases = ["{DB}"]\n'
    return shared_config(sandbox, svc, NODE, where, {POLICY: policy})


def connect(sandbox: SandboxHandle, svc: MariaDBService) -> Any:
    return connect_to(sandbox, svc)


def insert(sandbox: SandboxHandle, svc: MariaDBService, row: tuple[int, str], domain: int) -> str:
    """Insert ``row`` in its own transaction in GTID ``domain``; its GTID."""
    with connect(sandbox, svc) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION gtid_domain_id = %s", (domain,))
        cur.execute(f"INSERT INTO {DB}.t VALUES (%s, %s)", row)
        cur.execute("SELECT @@last_gtid")
        return str(cur.fetchone()[0])


def test_until_gtid_ignores_a_backup_holding_another_domains_later_transaction(
    sandbox: SandboxHandle,
    server: MariaDBService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_path = own_config(sandbox, server, tmp_path)
    with own_server_policy(config_path, POLICY, monkeypatch) as (loaded, policy, _):
        with connect(sandbox, server) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB}")
            cur.execute(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, v TEXT)")
        insert(sandbox, server, (1, "before backup A"), domain=0)
        run_backup(loaded, policy)  # A: the base a correct restore starts from
        target = insert(sandbox, server, (2, "g"), domain=0)
        later = insert(sandbox, server, (3, "later, domain 1"), domain=1)
        b = run_backup(loaded, policy)  # B: at the target in domain 0, after it in domain 1
        assert target.startswith(f"0-{SERVER_ID}-") and later.startswith(f"1-{SERVER_ID}-")
        assert sorted(str(b.consistency["gtid_pos"]).split(",")) == [target, later]
        Archiver(loaded, policy, node=NODE, once=True).run()

        code = main(["restore", "--policy", POLICY, "--until-gtid", target,
                     "--rename", f"{DB}={RENAMED}"])  # fmt: skip

        assert code == 0
        with connect(sandbox, server) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT id, v FROM {RENAMED}.t ORDER BY id")
            rows = list(cur.fetchall())
        assert rows == [(1, "before backup A"), (2, "g")], "the state right after the target"
