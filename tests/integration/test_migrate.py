"""``datatier migrate`` against the real sandbox MariaDB.

``plan`` needs only MySQL and is tested on the sandbox alone. ``run`` and ``verify`` write
to RethinkDB, and no RethinkDB server can be installed on these machines: the tests that
use them pass rethinkdb-mock's connection (a MOCK, in memory) as the target, and say so.
The mock cannot store binary values, so those tests skip the BLOB column; compound
indexes, binary and the server's own limits are verified only by
``test_run_and_verify_on_real_rethinkdb`` when ``DATATIER_TEST_RETHINKDB`` names a server.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rethinkdb import r
from rethinkdb_mock import MockThink

from datatier.cli import main
from datatier.migrate import service
from datatier.migrate.target import InsertResult, MigrationTarget, RethinkDBTarget
from datatier.mysql.connection import client_options_file, endpoint
from tests.integration.conftest import SandboxHandle, sql

ROOT = Path(__file__).resolve().parents[2]
DB = "mig_shop"
TABLES = f"{DB}.customers,{DB}.orders,{DB}.order_items"


def load_shop(sandbox: SandboxHandle, db: str) -> None:
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {db}")
    sql(sandbox, "primary", f"CREATE DATABASE {db}")
    ep = endpoint(sandbox.config.mysql, "primary")
    with client_options_file(ep) as cnf, (ROOT / "schemas/rethinkdb/shop.sql").open() as src:
        subprocess.run(["mariadb", f"--defaults-file={cnf}", db], stdin=src, check=True)
    sandbox.wait_replicated()


@pytest.fixture(scope="module")
def shop(sandbox: SandboxHandle) -> SandboxHandle:
    load_shop(sandbox, DB)
    return sandbox


def mapping(tmp_path: Path, *, mock: bool = False) -> Path:
    """The shipped shop.toml for this test's database (for the mock: BLOB skipped)."""
    text = (ROOT / "schemas/rethinkdb/shop.toml").read_text().replace('"shop.', f'"{DB}.')
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
    assert f"unknown table {DB}.order (did you mean {DB}.orders" in err
    code, _, err = cli(capsys, "plan", "--tables", "nodot")
    assert code == 2 and "DB.TABLE" in err


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
    assert code == 2 and "cast 'binary' is impossible for datetime (possible: time, string)" in err
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


class FailAfter(MigrationTarget):
    """Wraps the mock target and fails the Nth insert, like a lost connection."""

    def __init__(self, inner: RethinkDBTarget, fail_at: int) -> None:
        self.inner, self.fail_at, self.calls = inner, fail_at, 0

    def describe(self) -> str:
        return self.inner.describe()

    def ensure_table(self, table: str) -> bool:
        return self.inner.ensure_table(table)

    def ensure_index(self, table: str, name: str, fields: Any) -> bool:
        return self.inner.ensure_index(table, name, fields)

    def insert(self, table: str, docs: list[dict[str, Any]], conflict: str) -> InsertResult:
        self.calls += 1
        if self.calls == self.fail_at:
            self.inner.insert(table, docs[: len(docs) // 2], conflict)  # half-written batch
            raise ConnectionError("connection lost")
        return self.inner.insert(table, docs, conflict)

    def get_many(self, table: str, ids: Any) -> list[dict[str, Any]]:
        return self.inner.get_many(table, ids)

    def count(self, table: str) -> int:
        return self.inner.count(table)


def test_interrupted_run_resumes_from_checkpoint(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mock_target: RethinkDBTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against rethinkdb-mock (a MOCK): the run dies in its 4th batch of orders, half of
    that batch written; the rerun resumes after batch 3 and ends equal to MySQL."""
    failing = FailAfter(mock_target, fail_at=4)
    monkeypatch.setattr("datatier.cli.migrate_cmd.open_target", lambda loaded, db=None: failing)
    cp = tmp_path / "cp.json"
    args = ["run", "--tables", f"{DB}.orders", "--mapping", str(mapping(tmp_path, mock=True))]
    args += ["--execute", "--checkpoint", str(cp), "--batch-size", "1000", "--json"]
    code, _, err = cli(capsys, *args)
    assert code == 1 and "connection lost" in err
    saved = json.loads(cp.read_text())["tables"][f"{DB}.orders"]
    assert saved["rows"] == 3000 and not saved["done"]
    assert mock_target.count("orders") == 3500
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    again = json.loads(out)["tables"][0]
    assert again["resumed_after_rows"] == 3000 and again["rows"] == 2000
    assert again["replaced"] == 500  # the half batch, rewritten under conflict=error
    assert mock_target.count("orders") == 5000
    code, _, err = cli(capsys, "verify", "--tables", f"{DB}.orders", "--mapping", args[4], "--all")
    assert code == 0, err


def test_rate_limit_and_snapshot_from_replica(
    shop: SandboxHandle, tmp_path: Path, mock_target: RethinkDBTarget
) -> None:
    """rethinkdb-mock target (a MOCK). 3000 rows at 6000 rows/s take at least 0.5 s, and
    a row the primary writes during the run, after the last key, is not in it (one snapshot)."""
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

    started = time.monotonic()
    try:
        report = run_tables(conn, node, plans, mock_target, RunOptions(rate=6000), progress)
    finally:
        conn.close()
        sql(shop, "primary", f"DELETE FROM {DB}.order_items WHERE order_id = 18446744073709551615")
    assert time.monotonic() - started >= 0.49
    assert report.tables[0].rows == 3000 and sum(seen) == 3000
    assert "gtid_current_pos" in report.snapshot


def test_run_and_verify_on_real_rethinkdb(
    shop: SandboxHandle,
    use_sandbox_config: SandboxHandle,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The full path (binary, compound index, server-side limits) on a real server."""
    where = os.environ.get("DATATIER_TEST_RETHINKDB")
    if not where:
        pytest.skip(
            "no RethinkDB server here (none can be installed on these machines); set "
            "DATATIER_TEST_RETHINKDB=host:port to run it - skipped even under CI by design"
        )
    host, _, port = where.rpartition(":")
    monkeypatch.setenv("DATATIER_RETHINKDB__HOST", host)
    monkeypatch.setenv("DATATIER_RETHINKDB__PORT", port)
    conn = r.connect(host=host, port=int(port))
    if "shop" in r.db_list().run(conn):
        r.db_drop("shop").run(conn)
    m = str(mapping(tmp_path))
    code, _, err = cli(
        capsys, "run", "--mapping", m, "--execute", "--checkpoint", str(tmp_path / "cp")
    )
    assert code == 0, err
    code, _, err = cli(capsys, "verify", "--mapping", m, "--all")
    assert code == 0, err
    assert "mysql_key" in r.db("shop").table("order_items").index_list().run(conn)
    items = (
        r.db("shop")
        .table("order_items")
        .get_all(["9007199254740035", 1], index="mysql_key")
        .run(conn)
    )
    assert len(list(items)) == 1
    (cust,) = list(r.db("shop").table("customers").get_all(3).run(conn))
    assert bytes(cust["avatar"]) == bytes.fromhex("89504E47" * 8)
