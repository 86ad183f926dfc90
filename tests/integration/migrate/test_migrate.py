"""``datatier migrate`` against the real sandbox MariaDB.

``plan`` needs only MySQL and is tested on the sandbox alone. ``run`` and ``verify`` write
to RethinkDB, and no RethinkDB server can be installed on these machines: the tests that
use them pass rethinkdb-mock's connection (a MOCK, in memory) as the target, and say so.
The mock cannot store binary values, so those tests skip the BLOB column; compound
indexes, binary and the server's own limits are verified only by
``test_run_and_verify_on_real_rethinkdb``.

That real-server test exists only when ``DATATIER_TEST_RETHINKDB=host:port`` names a
RethinkDB server: without the variable it is not defined, so it is NOT COLLECTED (and does
not show as skipped - nothing may skip under CI=true), because no RethinkDB can be
installed here. A run without the variable has verified run/verify against the mock only.

Shared sandbox: everything here lives in the MariaDB database ``mig_shop``, dropped (and
the drop replicated) when the module's tests are done; the real-server test writes only to
a database of its own (``datatier_test_<random>``) and drops only that.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rethinkdb import r
from rethinkdb.errors import ReqlDriverError
from rethinkdb_mock import MockThink

from datatier.cli import main
from datatier.migrate import service
from datatier.migrate.target import Conflict, InsertResult, MigrationTarget, RethinkDBTarget
from datatier.mysql.connection import client_options_file, endpoint
from datatier.ratelimit import RateLimit
from tests.integration.conftest import SandboxHandle, sql

ROOT = Path(__file__).resolve().parents[3]
DB = "mig_shop"
TABLES = f"{DB}.customers,{DB}.orders,{DB}.order_items"


def load_shop(sandbox: SandboxHandle, db: str) -> None:
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {db}")
    sql(sandbox, "primary", f"CREATE DATABASE {db}")
    ep = endpoint(sandbox.config.mysql, "primary")
    with client_options_file(ep) as cnf, (ROOT / "schemas/rethinkdb/shop.sql").open() as src:
        subprocess.run(
            ["mariadb", f"--defaults-file={cnf}", db], stdin=src, check=True, pass_fds=cnf.pass_fds
        )
    sandbox.wait_replicated()


@pytest.fixture(scope="module")
def shop(sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    """``mig_shop`` loaded on the primary and replicated; dropped everywhere afterwards."""
    load_shop(sandbox, DB)
    yield sandbox
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    sandbox.wait_replicated()


def mapping(tmp_path: Path, *, mock: bool = False, target_db: str | None = None) -> Path:
    """The shipped shop.toml for this test's database (for the mock: BLOB skipped)."""
    text = (ROOT / "schemas/rethinkdb/shop.toml").read_text().replace('"shop.', f'"{DB}.')
    if target_db:
        assert 'target_db = "shop"' in text
        text = text.replace('target_db = "shop"', f'target_db = "{target_db}"')
    if mock:
        text += f'\n[tables."{DB}.customers".columns.avatar]\nskip = true\n'
    path = tmp_path / "shop.toml"
    path.write_text(text)
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["migrate", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def mock_target(monkeypatch: pytest.MonkeyPatch) -> Iterator[RethinkDBTarget]:
    """A rethinkdb-mock connection (a MOCK: no RethinkDB server can be installed here)."""
    conn = MockThink({"dbs": {}}).get_conn()
    target = RethinkDBTarget(conn, "shop", label="rethinkdb-mock")
    monkeypatch.setattr("datatier.cli.migrate_cmd.open_target", lambda loaded, db=None: target)
    yield target


def test_plan_reports_every_risky_type(
    shop: SandboxHandle, use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys, "plan", "--tables", f"{TABLES},{DB}.sessions", "--sample", "5000", "--json"
    )
    assert code == 1 and "migration blocked for 4 table(s)" in err
    doc = json.loads(out)
    assert doc["dry_run"] and doc["source"] == "replica1"
    plans = {t["table"].split(".")[1]: t for t in doc["tables"]}
    assert {p["verdict"] for p in plans.values()} == {"blocked"}
    text = json.dumps(plans)
    for expected in (
        "no decimal type",
        "BIGINT: RethinkDB numbers are doubles",
        "DATETIME has no zone",
        "BLOB/BINARY becomes the RethinkDB binary",
        "JSON becomes a nested document",
        "ENUM becomes a string",
        "SET becomes an array",
        "BIT(8) becomes int",
        "collation-dependent key",
        "RethinkDB primary keys are at most 127 bytes",
        "uq_email (email) cannot be enforced",
    ):
        assert expected in text, expected
    customers = plans["customers"]
    fails = customers["sample"]["failures"]
    assert "12345678901234567891" in fails["profile"]["examples"][0]["value"]
    assert "sub-millisecond" in fails["signed_up"]["examples"][0]["problem"]
    assert plans["orders"]["estimates"]["documents"] == 5000
    assert plans["orders"]["estimates"]["documents_exact"]
    assert plans["order_items"]["key"]["kind"] == "generated"
    assert plans["sessions"]["sample"]["failures"]["token"]["count"] == 10


def test_plan_with_mapping_is_ready_and_readable(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, "plan", "--mapping", str(mapping(tmp_path)), "--full")
    assert code == 0, err
    assert f"{DB}.orders -> rethinkdb shop.orders: READY WITH WARNINGS" in out
    assert "total_cents" in out and "compound mysql_key on (order_id, line)" in out
    assert "verdict: 0 ready, 3 ready with warnings, 0 blocked" in out
    assert "5 zero date(s) -> null" in out  # --full counts every zero date


def test_unknown_table_exit_2(
    shop: SandboxHandle, use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "plan", "--tables", f"{DB}.order")
    assert code == 2 and out == ""
    # stderr is no terminal: the error is a JSON line, its hint a field of its own
    (doc,) = [json.loads(line) for line in err.splitlines()]
    assert doc["error"] == f"unknown table {DB}.order" and doc["exit_code"] == 2
    assert doc["hint"].startswith(f"did you mean {DB}.orders")
    code, _, err = cli(capsys, "plan", "--tables", "nodot")
    assert code == 2 and "DB.TABLE" in err


def test_unknown_table_suggests_a_user_database_named_like_a_system_one(
    shop: SandboxHandle, use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """`Sys` is a user's database on a case-sensitive server: a multi-valued NOT IN
    ('sys', ...) of information_schema compares collation-blind and hid its tables."""
    sql(shop, "primary", "CREATE DATABASE IF NOT EXISTS `Sys`")
    try:
        sql(shop, "primary", "CREATE TABLE `Sys`.`ledger` (id INT PRIMARY KEY)")
        code, _, err = cli(capsys, "plan", "--tables", "Sys.ledgr")
        assert code == 2
        (doc,) = [json.loads(line) for line in err.splitlines()]
        assert doc["hint"] == "did you mean Sys.ledger?"
    finally:
        sql(shop, "primary", "DROP DATABASE IF EXISTS `Sys`")
        shop.wait_replicated()


def test_mapping_typo_and_impossible_cast_exit_2(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mock_target: RethinkDBTarget,
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[tables."{DB}.orders".columns.totl]\ncast = "string"\n')
    code, out, err = cli(capsys, "run", "--mapping", str(bad), "--execute")
    assert code == 2 and out == ""
    assert "columns.totl: no column 'totl'" in err and "did you mean 'total'" in err
    bad.write_text(f'[tables."{DB}.orders".columns.placed_at]\ncast = "binary"\n')
    code, _, err = cli(capsys, "plan", "--mapping", str(bad))
    assert code == 2 and "cast 'binary' is impossible for datetime" in err
    assert '"hint": "possible: time, string"' in err
    bad.write_text(f'[tables."{DB}.orders"]\nkye = ["order_id"]\n')
    code, _, err = cli(capsys, "plan", "--mapping", str(bad))
    assert code == 2 and "unknown key" in err
    assert mock_target.count("orders") == 0


def test_no_primary_key_blocks_and_run_writes_nothing(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    mock_target: RethinkDBTarget,
) -> None:
    """Target is a MOCK (rethinkdb-mock): it only has to stay empty."""
    code, out, err = cli(capsys, "plan", "--tables", f"{DB}.audit_log")
    assert code == 1
    assert "key: NONE" in out and "no primary key and no unique NOT NULL key" in out
    assert f"{DB}.audit_log (no primary key and no unique NOT NULL key)" in err
    code, _, _ = cli(capsys, "run", "--tables", f"{DB}.audit_log,{DB}.orders", "--execute")
    assert code == 1 and mock_target.count("orders") == 0


def test_out_of_range_values_reported_and_run_refuses(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    mock_target: RethinkDBTarget,
) -> None:
    """Target is a MOCK (rethinkdb-mock). BIGINT ids beyond 2^53 under cast int."""
    code, out, err = cli(capsys, "run", "--tables", f"{DB}.orders")
    assert code == 1 and "dry run" not in out
    assert "is beyond +-2^53, not exact as a RethinkDB number" in out
    assert "(order_id=90071992547" in out  # the row's key and the exact value, not rounded
    code, _, err = cli(capsys, "run", "--tables", f"{DB}.orders", "--execute")
    assert code == 1 and "values fail their cast in order_id" in err
    assert mock_target.count("orders") == 0


def test_run_without_execute_is_a_dry_run(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_target(*a: Any, **k: Any) -> MigrationTarget:
        raise AssertionError("a dry run must not connect to RethinkDB")

    monkeypatch.setattr("datatier.cli.migrate_cmd.open_target", no_target)
    code, out, err = cli(capsys, "run", "--mapping", str(mapping(tmp_path)))
    assert code == 0, err
    assert "dry run: nothing written; add --execute to copy ~10,000 rows" in out


def test_run_execute_and_verify_on_mock(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mock_target: RethinkDBTarget,
) -> None:
    """run --execute then verify, against rethinkdb-mock (a MOCK: no RethinkDB server can
    be installed here). BLOB is skipped (the mock has no binary); the compound index is
    created but never queried (the mock cannot build one)."""
    m = str(mapping(tmp_path, mock=True))
    cp = tmp_path / "cp.json"
    code, out, err = cli(
        capsys, "run", "--mapping", m, "--execute", "--checkpoint", str(cp), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["rows"] == 10_000 and report["rows_per_second"] > 0
    assert report["tables"][1]["indexes_created"] == ["idx_customer", "idx_placed"]
    assert mock_target.count("orders") == 5000 and mock_target.count("order_items") == 3000
    (order,) = mock_target.get_many("orders", ["9007199254740007"])
    assert order["total_cents"] == 100 and order["tax_rate"] == "0.0825000001"
    (item,) = mock_target.get_many("order_items", ['["9007199254740035",1]'])
    assert item["order_id"] == "9007199254740035" and item["line"] == 1
    (cust,) = mock_target.get_many("customers", [42])
    assert json.loads(cust["profile"])["loyalty_id"] == 12345678901234567891
    assert cust["flags"] == ["newsletter", "beta"] and cust["active"] is True

    code, out, err = cli(capsys, "verify", "--mapping", m, "--all")
    assert code == 0, err
    assert out.count("OK") == 3

    # Change one document behind datatier's back: verify names it and exits 4.
    mock_target._run(r.db("shop").table("orders").get("9007199254740007").update({"note": "x"}))
    code, out, err = cli(capsys, "verify", "--mapping", m, "--all")
    assert code == 4 and "differs from MySQL for mig_shop.orders" in err
    assert "id '9007199254740007': differs in note" in out

    # Rerun with the completed checkpoint: nothing copied again; conflict=error elsewhere.
    code, out, _ = cli(
        capsys, "run", "--mapping", m, "--execute", "--checkpoint", str(cp), "--json"
    )
    assert code == 0 and json.loads(out)["rows"] == 0
    code, _, err = cli(
        capsys, "run", "--mapping", m, "--execute", "--checkpoint", str(cp), "--restart"
    )
    assert code == 1 and "rejected" in err and "--conflict replace or update" in err
    code, out, err = cli(
        capsys,
        "run",
        "--mapping",
        m,
        "--execute",
        "--checkpoint",
        str(cp),
        "--restart",
        "--conflict",
        "replace",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["tables"][1]["replaced"] == 5000
    code, _, _ = cli(capsys, "verify", "--mapping", m, "--sample", "200")
    assert code == 0


class LosingConnection:
    """Stands in for the driver's connection (what ``query.run(conn)`` calls): queries go to
    rethinkdb-mock's connection until ``lost``, then every one raises
    ``ReqlDriverError("Connection is closed.")``, as ``rethinkdb.net`` does when the socket
    is reset or closed."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.lost = inner, False

    def _start(self, query: Any, **optargs: Any) -> Any:
        if self.lost:
            raise ReqlDriverError("Connection is closed.")
        return self.inner._start(query, **optargs)

    def is_open(self) -> bool:
        return not self.lost


class FailAfter(RethinkDBTarget):
    """The production target whose connection is lost in its Nth insert, after the server
    applied half of that batch (RethinkDB batch inserts are not atomic). The driver's
    ReqlDriverError goes through RethinkDBTarget's own mapping: ServiceUnavailable, exit 3."""

    def __init__(self, inner: RethinkDBTarget, fail_at: int) -> None:
        self.link = LosingConnection(inner.conn)
        super().__init__(self.link, inner.db, label=inner.label)
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def insert(self, table: str, docs: list[dict[str, Any]], conflict: Conflict) -> InsertResult:
        self.calls += 1
        if self.calls == self.fail_at:
            self.inner.insert(table, docs[: len(docs) // 2], conflict)  # half-written batch
            self.link.lost = True
        return super().insert(table, docs, conflict)


def test_interrupted_run_resumes_from_checkpoint(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mock_target: RethinkDBTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against rethinkdb-mock (a MOCK): the RethinkDB connection is lost in the 4th batch
    of orders, half of that batch written; the run exits 3 (unreachable) saying how to go
    on, and the rerun resumes after batch 3 and ends equal to MySQL."""
    failing = FailAfter(mock_target, fail_at=4)
    monkeypatch.setattr("datatier.cli.migrate_cmd.open_target", lambda loaded, db=None: failing)
    cp = tmp_path / "cp.json"
    args = ["run", "--tables", f"{DB}.orders", "--mapping", str(mapping(tmp_path, mock=True))]
    args += ["--execute", "--checkpoint", str(cp), "--batch-size", "1000", "--json"]
    code, _, err = cli(capsys, *args)
    assert code == 3, err
    assert "RethinkDB rethinkdb-mock: Connection is closed." in err
    assert f"3,000 rows written; checkpoint {cp}; rerun the same command to resume" in err
    saved = json.loads(cp.read_text())["tables"][f"{DB}.orders"]
    assert saved["rows"] == 3000 and not saved["done"]
    assert saved["inflight"] is not None  # batch 4 was sent, never recorded
    assert mock_target.count("orders") == 3500
    # The rerun opens a new connection.
    monkeypatch.setattr("datatier.cli.migrate_cmd.open_target", lambda loaded, db=None: mock_target)
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    again = json.loads(out)["tables"][0]
    assert again["resumed_after_rows"] == 3000 and again["rows"] == 2000
    # the half batch is found identical and skipped (conflict=error is kept), not replaced
    assert again["unchanged"] == 500 and again["replaced"] == 0 and again["inserted"] == 1500
    assert mock_target.count("orders") == 5000
    saved = json.loads(cp.read_text())["tables"][f"{DB}.orders"]
    assert saved["done"] and saved["inflight"] is None
    code, _, err = cli(capsys, "verify", "--tables", f"{DB}.orders", "--mapping", args[4], "--all")
    assert code == 0, err


class SharedMock:
    """Connections to one rethinkdb-mock (a MOCK: no RethinkDB server can be installed here),
    as the writer handles of ``--connections`` need: each :meth:`connect` is a connection of
    its own. The mock is not thread-safe (every query replaces its whole data), so they
    share one lock. The mock has no durability: its sync answers the table's rows and
    everything it acknowledged is kept (``test_migrate_window.py`` has a fake that models
    soft durability). The ``fail_at``-th insert over all connections loses its connection
    after half of its batch was applied (RethinkDB batch inserts are not atomic)."""

    def __init__(self, mock: MockThink, fail_at: int = 0) -> None:
        self.mock, self.fail_at = mock, fail_at
        self.lock = threading.Lock()
        self.opened = self.closed = self.syncs = self.inserts = 0

    def connect(self) -> SharedConnection:
        with self.lock:
            self.opened += 1
        return SharedConnection(self)

    def target(self) -> RethinkDBTarget:
        return SharedTarget(self.connect(), "shop", label="rethinkdb-mock", connect=self.connect)


class SharedConnection:
    def __init__(self, shared: SharedMock) -> None:
        self.shared, self.inner, self.lost = shared, shared.mock.get_conn(), False

    def _start(self, query: Any, **optargs: Any) -> Any:
        if self.lost:
            raise ReqlDriverError("Connection is closed.")
        with self.shared.lock:
            self.shared.syncs += type(query).__name__ == "Sync"
            return self.inner._start(query, **optargs)

    def close(self, noreply_wait: bool = True) -> None:
        with self.shared.lock:
            self.shared.closed += 1


class SharedTarget(RethinkDBTarget):
    """The production target; its writers' connections are :class:`SharedConnection`."""

    def writer(self, durability: str) -> RethinkDBTarget | None:
        assert self.connect is not None
        return SharedTarget(
            self.connect(), self.db, label=self.label, connect=self.connect, durability=durability
        )

    def insert(self, table: str, docs: list[dict[str, Any]], conflict: Conflict) -> InsertResult:
        shared = self.conn.shared
        with shared.lock:
            shared.inserts += 1
            fail = shared.inserts == shared.fail_at
        if fail:
            super().insert(table, docs[: len(docs) // 2], conflict)
            self.conn.lost = True
        return super().insert(table, docs, conflict)


def test_several_writer_connections_on_mock(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against rethinkdb-mock (a MOCK) with 4 writer connections per table and soft
    durability: the copy verifies; every writer connection was closed; the table was
    synced every 1500 rows and at its end; the checkpoint names every row of every table
    as written, with nothing left in flight."""
    shared = SharedMock(MockThink({"dbs": {}}))
    monkeypatch.setattr(
        "datatier.cli.migrate_cmd.open_target", lambda loaded, db=None: shared.target()
    )
    m = str(mapping(tmp_path, mock=True))
    cp = tmp_path / "cp.json"
    args = ["run", "--mapping", m, "--execute", "--checkpoint", str(cp), "--json"]
    args += ["--connections", "4", "--durability", "soft", "--sync-every", "1500"]
    args += ["--batch-size", "250"]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert [t["rows"] for t in json.loads(out)["tables"]] == [2000, 5000, 3000]
    assert shared.opened == 1 + 3 * 4 and shared.closed == 3 * 4
    assert shared.syncs >= 3 + 5000 // 1500  # the end of each table, every 1500 rows
    saved = json.loads(cp.read_text())["tables"]
    assert {t: (p["rows"], p["done"], p["inflight"]) for t, p in saved.items()} == {
        f"{DB}.customers": (2000, True, None),
        f"{DB}.orders": (5000, True, None),
        f"{DB}.order_items": (3000, True, None),
    }
    check = shared.target()
    assert [check.count(t) for t in ("customers", "orders", "order_items")] == [2000, 5000, 3000]
    code, out, err = cli(capsys, "verify", "--mapping", m, "--all")
    assert code == 0 and out.count("OK") == 3, err


@pytest.mark.parametrize("fail_at", [2, 7])
def test_writer_connection_lost_mid_window_resumes(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fail_at: int,
) -> None:
    """Against rethinkdb-mock (a MOCK). One of 4 writer connections is lost in an insert,
    half of its batch applied, while other batches are in flight (the 2nd insert: inside
    the first 4 batches, sent together; the 7th: in the steady state): exit 3; the
    checkpoint names only acknowledged rows and its inflight range covers what the others
    wrote; the rerun re-sends only that range, skips the identical documents, and
    verifies."""
    shared = SharedMock(MockThink({"dbs": {}}), fail_at=fail_at)
    monkeypatch.setattr(
        "datatier.cli.migrate_cmd.open_target", lambda loaded, db=None: shared.target()
    )
    cp = tmp_path / "cp.json"
    args = ["run", "--tables", f"{DB}.orders", "--mapping", str(mapping(tmp_path, mock=True))]
    args += ["--execute", "--checkpoint", str(cp), "--batch-size", "250", "--json"]
    args += ["--connections", "4", "--durability", "hard"]
    code, _, err = cli(capsys, *args)
    assert code == 3, err
    assert "RethinkDB rethinkdb-mock: Connection is closed." in err
    saved = json.loads(cp.read_text())["tables"][f"{DB}.orders"]
    assert saved["inflight"] is not None and not saved["done"]
    # the lost insert is the fail_at-th to reach the server, not the fail_at-th batch: with 4
    # connections, up to 3 later batches may reach it first (seen on a loaded machine: the
    # 3rd batch lost, 500 rows acknowledged before it), so the acknowledged prefix may
    # hold up to 3 batches more
    assert saved["rows"] <= (fail_at - 1 + 3) * 250 and saved["rows"] % 250 == 0
    if saved["rows"]:  # the hint needs an acknowledged row (the lost one may be the 1st)
        assert "rerun the same command to resume" in err
    check = shared.target()
    present = check.count("orders")
    assert present >= saved["rows"] + 125  # the half batch, and any batch sent after it
    assert shared.opened == shared.closed + 2  # the run's and this check's main connections
    shared.fail_at = 0
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    again = json.loads(out)["tables"][0]
    assert again["resumed_after_rows"] == saved["rows"]
    assert again["unchanged"] == present - saved["rows"] and again["replaced"] == 0
    assert again["inserted"] == 5000 - present and check.count("orders") == 5000
    code, _, err = cli(capsys, "verify", "--tables", f"{DB}.orders", "--mapping", args[4], "--all")
    assert code == 0, err


def test_rerun_after_a_real_conflict_still_fails(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mock_target: RethinkDBTarget,
) -> None:
    """Against rethinkdb-mock (a MOCK). Another writer's document holds an id of the 2nd
    batch: under --conflict error the run stops there; rerunning the same command must fail
    again and leave that document as it was (a resume may skip only identical copies, it
    never relaxes ``error`` to ``replace``). Once the document is gone, the rerun finishes."""
    foreign_id = str(9007199254740000 + 1500 * 7)  # row 1500 of orders: in batch 2 of 1000
    foreign = {"id": foreign_id, "note": "not from MySQL"}
    mock_target.ensure_table("orders")
    mock_target.insert("orders", [foreign], "error")
    cp = tmp_path / "cp.json"
    args = ["run", "--tables", f"{DB}.orders", "--mapping", str(mapping(tmp_path, mock=True))]
    args += ["--execute", "--checkpoint", str(cp), "--batch-size", "1000", "--json"]
    args += ["--conflict", "error"]
    code, _, err = cli(capsys, *args)
    assert code == 1 and "rejected 1 of 1000 documents" in err, err
    assert "1,000 rows written" in err and "--conflict replace or update" in err
    saved = json.loads(cp.read_text())["tables"][f"{DB}.orders"]
    assert saved["rows"] == 1000 and saved["inflight"] is not None
    assert mock_target.count("orders") == 2000  # batch 1, 999 of batch 2, the foreign one

    code, _, err = cli(capsys, *args)
    assert code == 1 and "rejected 1 of 1 documents" in err, err
    assert mock_target.get_many("orders", [foreign_id]) == [foreign]
    assert json.loads(cp.read_text())["tables"][f"{DB}.orders"]["rows"] == 1000

    mock_target._run(r.db("shop").table("orders").get(foreign_id).delete())
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    again = json.loads(out)["tables"][0]
    assert again["rows"] == 4000 and again["unchanged"] == 999 and again["inserted"] == 3001
    code, _, err = cli(capsys, "verify", "--tables", f"{DB}.orders", "--mapping", args[4], "--all")
    assert code == 0, err


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limit_and_snapshot_from_replica(
    shop: SandboxHandle, tmp_path: Path, mock_target: RethinkDBTarget
) -> None:
    """rethinkdb-mock target (a MOCK). 3000 rows at 1000 rows/s in batches of 500: the
    shared token bucket (one second of burst) makes the run wait (3000 - 1000) / 1000 = 2 s
    on an injected clock - no wall time is measured (speed belongs to the benchmarks). A
    row the primary writes during the run, after the last key, is not in it (one snapshot)."""
    from datatier.config import load
    from datatier.migrate.runner import RunOptions, run_tables

    loaded = load(str(shop.config_path), environ={})
    m = service.mapping_for(loaded, str(mapping(tmp_path, mock=True)))
    node = service.source_node(loaded, None)
    assert node == "replica1"
    conn = service.open_source(loaded, node)
    plans = service.make_plans(conn, loaded, [f"{DB}.order_items"], m)
    seen: list[int] = []

    def progress(n: int) -> None:
        if not seen:  # after the first batch: a new row on the primary, replicated
            sql(
                shop,
                "primary",
                f"INSERT INTO {DB}.order_items VALUES (18446744073709551615, 1, 'new', 1, 1)",
            )
            shop.wait_replicated()
        seen.append(n)

    clock = FakeClock()
    limiter = RateLimit(1000, clock=clock, sleep=clock.sleep)
    options = RunOptions(batch_size=500, rate=1000)
    try:
        report = run_tables(conn, node, plans, mock_target, options, progress, limiter=limiter)
    finally:
        conn.close()
        sql(shop, "primary", f"DELETE FROM {DB}.order_items WHERE order_id = 18446744073709551615")
        shop.wait_replicated()
    assert report.tables[0].rows == 3000 and sum(seen) == 3000
    assert clock.slept == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert limiter.waited == pytest.approx(2.0)
    assert report.to_json()["rate_limit_waited_seconds"] == pytest.approx(2.0)
    assert report.snapshot["flavour"] == "mariadb" and report.snapshot["gtid_current_pos"]


# Defined only when DATATIER_TEST_RETHINKDB names a server: no RethinkDB can be installed on
# these machines, so without the variable this test is not collected at all (it must not
# show as skipped - nothing skips under CI=true). See the module docstring.
if os.environ.get("DATATIER_TEST_RETHINKDB"):

    def test_run_and_verify_on_real_rethinkdb(
        shop: SandboxHandle,
        use_sandbox_config: SandboxHandle,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The full path (binary, compound index, server-side limits) on a real server,
        in a database of its own that is dropped afterwards (nothing else is touched)."""
        host, _, port = os.environ["DATATIER_TEST_RETHINKDB"].rpartition(":")
        monkeypatch.setenv("DATATIER_RETHINKDB__HOST", host)
        monkeypatch.setenv("DATATIER_RETHINKDB__PORT", port)
        db = f"datatier_test_{secrets.token_hex(6)}"
        conn = r.connect(host=host, port=int(port))
        assert db not in r.db_list().run(conn)
        try:
            m = str(mapping(tmp_path, target_db=db))
            code, _, err = cli(
                capsys, "run", "--mapping", m, "--execute", "--checkpoint", str(tmp_path / "cp")
            )
            assert code == 0, err
            code, _, err = cli(capsys, "verify", "--mapping", m, "--all")
            assert code == 0, err
            items = r.db(db).table("order_items")
            assert "mysql_key" in items.index_list().run(conn)
            found = items.get_all(["9007199254740035", 1], index="mysql_key").run(conn)
            assert len(list(found)) == 1
            (cust,) = list(r.db(db).table("customers").get_all(3).run(conn))
            assert bytes(cust["avatar"]) == bytes.fromhex("89504E47" * 8)
        finally:
            if db in r.db_list().run(conn):
                r.db_drop(db).run(conn)
            conn.close()
