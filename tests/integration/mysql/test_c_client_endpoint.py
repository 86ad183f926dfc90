"""The C-client connections (backup reader, restore's statement runner, binlog applier,
cache warmer) reach the configured host and port over TCP, as pymysql and the stock client
do. libmariadb reads the host name ``localhost`` as "the default Unix socket" and ignores
the port: a restore configured for ``localhost:PORT`` would have sent its rows to whatever
server owns that socket. On the sandbox's real primary."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from datatier.backup.manifest import ObjectRecord
from datatier.mysql.connection import Endpoint, endpoint
from datatier.mysql.direct import StatementRunner
from datatier.mysql.fastreader import RawConnection, RowReader
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import loaded_config

DB = "integ_c_client"


@pytest.fixture
def localhost(sandbox: SandboxHandle) -> Endpoint:
    """The primary's endpoint, its host written ``localhost``."""
    ep = endpoint(loaded_config(sandbox).config.mysql, "primary")
    assert ep.host == "127.0.0.1"
    return dataclasses.replace(ep, host="localhost")


def test_readers_given_localhost_reach_its_port(localhost: Endpoint) -> None:
    port = localhost.port
    raw = RawConnection(localhost)
    try:
        assert raw.rows("SELECT @@port") == ((str(port).encode(),),)
    finally:
        raw.close()
    with RowReader(localhost) as reader:
        _, batches = reader.stream("SELECT @@port")
        assert [tuple(r) for b in batches for r in b] == [(port,)]


def test_the_statement_runner_given_localhost_loads_into_its_port(
    localhost: Endpoint, sandbox: SandboxHandle
) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
    try:
        runner = StatementRunner(localhost, binlog=True)
        try:
            statements = [b"INSERT INTO t VALUES (1),(2);\n"]
            record = ObjectRecord("k", "data", 1, "00", 30, "STANDARD", DB, "t", 1)
            assert runner.run(record, DB, statements, threading.Event())
        finally:
            runner.close()
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {DB}.t")
            assert cur.fetchone() == (2,)
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
