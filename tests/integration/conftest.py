"""A session-scoped sandbox of real servers for the integration tests.

The sandbox lives in a temporary directory on ports from ``DATATIER_TEST_PORT_BASE``
(default 24060: away from a developer's sandbox on 22060, and below Linux's ephemeral port
range, 32768+, where an outgoing connection could be holding a port). Set
``DATATIER_TEST_SANDBOX_DIR`` to reuse a directory and ``DATATIER_TEST_KEEP_SANDBOX=1`` to
leave it running after the session (a faster edit-test loop). ``DATATIER_TEST_BACKEND``
(``processes``, the default, or ``containers``) says how the servers run; every test runs
unchanged on either. Under ``CI=true`` a server that cannot start fails the run; elsewhere
the integration tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pymysql
import pytest

from datatier.config import Config, load
from datatier.errors import DatatierError
from datatier.mysql import heartbeat
from datatier.sandbox.supervisor import Sandbox

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKEND = os.environ.get("DATATIER_TEST_BACKEND", "processes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``containers`` are about the container backend: they run in its pass
    (``DATATIER_TEST_BACKEND=containers``) and are deselected in the process pass. Tests
    marked ``once`` do not depend on the backend: they run in the process pass only."""
    other = "once" if BACKEND == "containers" else "containers"
    kept = [item for item in items if item.get_closest_marker(other) is None]
    dropped = [item for item in items if item.get_closest_marker(other) is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def first_free(ports: Iterator[int]) -> int:
    """The next port of ``ports`` (a test module's range, consumed as tried) that nothing
    holds on 127.0.0.1 right now."""
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port in the test range")


def unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere: a missing server is never silently ignored in CI."""
    if IN_CI:
        pytest.fail(f"required server unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.01) -> float:
    """Seconds until ``predicate()`` held; AssertionError after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def q(name: str) -> str:
    """``name`` as a MySQL identifier (written here, not taken from the product, so tests
    do not build their SQL with the very quoting they check)."""
    return "`" + name.replace("`", "``") + "`"


def sql(sandbox: SandboxHandle, node: str, statement: str) -> None:
    """Run one statement on ``node`` as the configured user."""
    with sandbox.connect(node) as conn, conn.cursor() as cur:
        cur.execute(statement)


@dataclass(frozen=True)
class SandboxHandle:
    """What tests need: the supervisor, its config file and the loaded config."""

    sandbox: Sandbox
    config_path: Path
    config: Config

    @property
    def root(self) -> Path:
        return self.sandbox.root

    def connect(self, node: str = "primary", **kw: Any) -> Any:
        """A pymysql connection as the configured user (autocommit, utf8mb4 unless ``kw``
        says otherwise: any pymysql option)."""
        cfg = self.config.mysql
        spec = cfg.nodes[node]
        options: dict[str, Any] = {"autocommit": True, "charset": "utf8mb4", "connect_timeout": 5}
        return pymysql.connect(
            host=spec.host,
            port=spec.port,
            user=cfg.user,
            password=cfg.password.reveal(),
            **{**options, **kw},
        )

    def wait_replicated(self, timeout: float = 20.0) -> None:
        """Block until both replicas have applied everything the primary wrote so far."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            gtid = cur.fetchone()[0]
        for node in ("replica1", "replica2"):
            with self.connect(node) as conn, conn.cursor() as cur:
                cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (gtid, timeout))
                assert cur.fetchone()[0] == 0, f"{node} did not reach {gtid}"

    def clear_heartbeat(self) -> None:
        """Delete the primary's heartbeat rows once a test's writer is stopped: a row there
        younger than ``HEARTBEAT_FRESH`` seconds counts as a running writer, so later tests
        would measure heartbeat lag instead of Seconds_Behind_Master. Replicas apply the
        delete when their SQL thread runs (``wait_replicated`` to wait for it)."""
        table = f"`{heartbeat.DATABASE}`.`{heartbeat.TABLE}`"
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.tables "
                "WHERE table_schema = %s AND table_name = %s",
                (heartbeat.DATABASE, heartbeat.TABLE),
            )
            if cur.fetchone()[0]:
                cur.execute(f"DELETE FROM {table}")

    def service_state(self, name: str) -> str:
        """``running``, ``unresponsive`` (e.g. paused) or ``stopped``, as ``status`` says."""
        return str({row["name"]: row["state"] for row in self.sandbox.status()}[name])

    def write_policy(self, name: str, text: str) -> Path:
        """Write ``backups/NAME.toml`` in the sandbox's policies dir."""
        path = self.root / "backups" / f"{name}.toml"
        path.write_text(text)
        return path


@pytest.fixture
def use_sandbox_config(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> SandboxHandle:
    """Point DATATIER_CONFIG at the sandbox for CLI calls made through ``main``."""
    monkeypatch.setenv("DATATIER_CONFIG", str(sandbox.config_path))
    return sandbox


@pytest.fixture(scope="session")
def test_port_base() -> int:
    return int(os.environ.get("DATATIER_TEST_PORT_BASE", "24060"))


@pytest.fixture(scope="session")
def test_backend() -> str:
    """The sandbox backend of this run (``DATATIER_TEST_BACKEND``)."""
    return BACKEND


@pytest.fixture(scope="session")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, test_port_base: int
) -> Iterator[SandboxHandle]:
    fixed = os.environ.get("DATATIER_TEST_SANDBOX_DIR")
    root = Path(fixed) if fixed else tmp_path_factory.mktemp("sandbox")
    try:
        sb = Sandbox(root, test_port_base, BACKEND)
        sb.up()
    except DatatierError as exc:
        unavailable(f"sandbox ({BACKEND}) did not start: {exc}")
    config_path = sb.root / "datatier.toml"
    handle = SandboxHandle(sb, config_path, load(str(config_path), environ={}).config)
    yield handle
    if os.environ.get("DATATIER_TEST_KEEP_SANDBOX") != "1":
        sb.down()


# MongoDB servers the fidelity and point-in-time tests run on: the sandbox's mongo2 always,
# and a real mongod replica-set member where DATATIER_TEST_MONGO_URI names one (added to the
# sandbox config as [mongo.servers.real] through the environment).
REAL_MONGO_URI = os.environ.get("DATATIER_TEST_MONGO_URI")
REAL_MONGO_ENV = "DATATIER_MONGO__SERVERS__REAL__URI"
MONGO_SERVERS = ["mongo2", *(["real"] if REAL_MONGO_URI else [])]


def mongo_environ(server: str) -> dict[str, str]:
    """The environment that makes ``server`` a [mongo.servers] name of the sandbox config."""
    return {REAL_MONGO_ENV: REAL_MONGO_URI} if server == "real" and REAL_MONGO_URI else {}


@pytest.fixture(scope="module", params=MONGO_SERVERS)
def mongo_server(request: pytest.FixtureRequest, sandbox: SandboxHandle) -> tuple[str, str]:
    """(name in the config, URI) of a MongoDB server with an oplog (see MONGO_SERVERS)."""
    name = str(request.param)
    if name != "real":
        return name, sandbox.config.mongo.servers[name].uri
    assert REAL_MONGO_URI is not None
    import pymongo  # lazy: only the Mongo tests need it

    with pymongo.MongoClient[dict[str, Any]](
        REAL_MONGO_URI, serverSelectionTimeoutMS=3000
    ) as client:
        hello = client.admin.command("hello")
    assert hello.get("setName"), "DATATIER_TEST_MONGO_URI is not a replica-set member"
    return name, REAL_MONGO_URI


@pytest.fixture
def slow_glacier(sandbox: SandboxHandle) -> Iterator[None]:
    """moto keeps archive restores 'ongoing' for 3 HEADs, like a real (slow) Glacier."""
    base = sandbox.config.s3.endpoint_url
    assert base

    def post(path: str, doc: dict[str, Any]) -> None:
        req = urllib.request.Request(f"{base}{path}", data=json.dumps(doc).encode(), method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    post(
        "/moto-api/state-manager/set-transition",
        {"model_name": "s3::keyrestore", "transition": {"progression": "manual", "times": 3}},
    )
    yield
    post("/moto-api/state-manager/unset-transition", {"model_name": "s3::keyrestore"})


def cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any, str]:
    """``datatier`` run in-process with ``argv`` (a ``--json`` command): (exit code, its
    JSON report or {} when it printed none, stderr)."""
    from datatier.cli import main

    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    try:
        report = json.loads(out.out)
    except ValueError:
        report = {}
    return code, report, out.err
