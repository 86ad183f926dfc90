"""Plans, mapping files, documents, checksums and checkpoints, without servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from datatier.errors import ConfigError, ExitCode, UsageError
from datatier.migrate.checkpoint import Checkpoint, TableProgress
from datatier.migrate.documents import DocumentBuilder, RowError, digest
from datatier.migrate.mapping import EMPTY, check_against, load_mapping, resolve_mapping
from datatier.migrate.plan import build_plan
from datatier.migrate.sampler import analyse
from datatier.mysql.introspect import Column, Index, TableSchema

ORDERS = TableSchema(
    db="shop",
    name="orders",
    columns=(
        Column("order_id", "bigint", "bigint(20) unsigned", False),
        Column(
            "email", "varchar", "varchar(190)", False, max_chars=190, collation="utf8mb4_unicode_ci"
        ),
        Column("total", "decimal", "decimal(12,2)", False, precision=12, scale=2),
        Column("placed", "datetime", "datetime", True),
    ),
    indexes=(
        Index("PRIMARY", ("order_id",), unique=True),
        Index("uq_email", ("email",), unique=True),
        Index("idx_placed_total", ("placed", "total"), unique=False),
    ),
    rows_estimate=10,
    data_bytes=1000,
)
ITEMS = TableSchema(
    db="shop",
    name="items",
    columns=(
        Column("order_id", "int", "int(11)", False),
        Column("line", "int", "int(11)", False),
        Column("id", "varchar", "varchar(10)", True, max_chars=10, collation="utf8mb4_bin"),
    ),
    indexes=(Index("PRIMARY", ("order_id", "line"), unique=True),),
    rows_estimate=0,
    data_bytes=0,
)
NOKEY = TableSchema("shop", "log", (Column("msg", "text", "text", True),), (), 0, 0)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


def test_single_key_unique_and_compound_indexes() -> None:
    plan = build_plan(ORDERS, EMPTY, "migrated")
    assert plan.target == "migrated.orders"
    assert plan.key.kind == "single" and plan.key.columns == ("order_id",)
    assert [f.field for f in plan.fields][:2] == ["id", "email"]
    idx = {i.name: i for i in plan.indexes}
    assert idx["uq_email"].unique_lost and idx["idx_placed_total"].fields == ("placed", "total")
    texts = " | ".join(f.text for f in plan.findings)
    assert "uq_email (email) cannot be enforced" in texts
    assert "collation-dependent key" not in texts  # email is not the key
    assert "beyond +-2^53" in texts and "no decimal type" in texts
    assert plan.verdict == "warnings"


def test_composite_key_generates_id_and_collision_blocks() -> None:
    plan = build_plan(ITEMS, EMPTY, "m")
    assert plan.key.kind == "generated"
    assert plan.indexes[0].name == "mysql_key" and plan.indexes[0].fields == ("order_id", "line")
    assert plan.verdict == "blocked"  # the column `id` collides with the generated id
    assert any("'id' would hold" in f.text for f in plan.errors())


def test_composite_key_document_ids(tmp_path: Path) -> None:
    mapping = load_mapping(
        write(tmp_path, '[tables."shop.items".columns.id]\nname = "legacy_id"\n')
    )
    plan = build_plan(ITEMS, mapping, "m")
    assert plan.verdict == "ready"
    doc = DocumentBuilder(plan).build((7, 2, "x"))
    assert doc == {"id": "[7,2]", "order_id": 7, "line": 2, "legacy_id": "x"}


def test_no_primary_key_is_blocked_with_advice() -> None:
    plan = build_plan(NOKEY, EMPTY, "m")
    assert plan.verdict == "blocked" and plan.key.kind == "none"
    assert "key = [...]" in plan.errors()[0].text


def test_sampling_reports_values_and_keys_never_truncates() -> None:
    plan = build_plan(ORDERS, EMPTY, "m")
    builder = DocumentBuilder(plan)
    rows = [
        (1, "a@x", Decimal("1.50"), datetime(2026, 1, 1)),
        (2**53 + 5, "b@x", Decimal("2.00"), "0000-00-00 00:00:00"),
    ]
    found = analyse(builder, rows, "test")
    assert found["failures"]["order_id"]["count"] == 1
    assert found["failures"]["order_id"]["examples"][0]["key"] == "(order_id=9007199254740997)"
    assert found["zero_dates"] == {"placed": 1}
    plan.apply_sample(found, 2)
    assert plan.verdict == "blocked"
    with pytest.raises(
        RowError, match=r"row \(order_id=9007199254740997\): column order_id"
    ) as exc:
        builder.build(rows[1])
    assert exc.value.exit_code == ExitCode.FAILED
    assert builder.build(rows[0])["total"] == "1.50"


def test_mapping_typos_and_impossible_casts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"m.toml: tables.shop.orders.colums: unknown key"):
        load_mapping(write(tmp_path, '[tables."shop.orders".colums.total]\ncast = "string"\n'))
    with pytest.raises(ConfigError, match="'strnig' is not one of"):
        load_mapping(write(tmp_path, '[tables."shop.orders".columns.total]\ncast = "strnig"\n'))
    with pytest.raises(ConfigError, match=r"DB\.TABLE"):
        load_mapping(write(tmp_path, "[tables.orders]\n"))
    with pytest.raises(ConfigError, match="timezone"):
        load_mapping(write(tmp_path, 'timezone = "CET"\n'))
    typo = load_mapping(write(tmp_path, '[tables."shop.orders".columns.totl]\ncast = "string"\n'))
    with pytest.raises(ConfigError, match="no column 'totl'") as exc:
        check_against(typo, ORDERS)
    assert "did you mean 'total'" in str(exc.value) and exc.value.exit_code == ExitCode.USAGE
    bad = load_mapping(write(tmp_path, '[tables."shop.orders".columns.total]\ncast = "time"\n'))
    with pytest.raises(ConfigError, match=r"cast 'time' is impossible for decimal\(12,2\)"):
        check_against(bad, ORDERS)
    with pytest.raises(UsageError, match="not found"):
        resolve_mapping("nope", tmp_path)


def test_digest_is_representation_independent() -> None:
    plus2 = timezone(timedelta(hours=2))
    a = {"id": 1, "n": 2, "t": datetime(2026, 1, 1, 2, 0, tzinfo=plus2), "b": b"\x00"}
    b = {"b": b"\x00", "t": datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "n": 2.0, "id": 1}
    assert digest(a) == digest(b)
    assert digest(a) != digest({**b, "n": 3})


def test_checkpoint_round_trips_key_values(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    key = [Decimal("1.50"), datetime(2026, 1, 1, 1, 2, 3), b"\x00\xff", "x", 5]
    cp = Checkpoint(path, "replica1", {"shop.t": TableProgress("m.t", key, 10, False)})
    cp.save()
    again = Checkpoint.load(path)
    assert again is not None and again.tables["shop.t"].last_key == key
    assert Checkpoint.load(tmp_path / "none.json") is None
    path.write_text("{broken")
    with pytest.raises(ConfigError, match="unreadable checkpoint"):
        Checkpoint.load(path)


def test_names_rethinkdb_cannot_hold_block(tmp_path: Path) -> None:
    mapping = load_mapping(write(tmp_path, '[tables."shop.orders"]\ntarget = "order-archive"\n'))
    plan = build_plan(ORDERS, mapping, "migrated")
    assert plan.verdict == "blocked"
    assert "table name 'order-archive' may hold only" in plan.errors()[0].text


def test_mapping_key_must_be_unique_and_not_null(tmp_path: Path) -> None:
    """Keyset batches (key > last) skip rows sharing a key across a boundary, and equal
    keys collapse into one document: a non-unique mapping key blocks the table."""
    by_placed = load_mapping(write(tmp_path, '[tables."shop.orders"]\nkey = ["placed"]\n'))
    plan = build_plan(ORDERS, by_placed, "m")
    assert plan.verdict == "blocked"
    texts = " | ".join(f.text for f in plan.errors())
    assert "mapping key (placed) is not covered by a unique index" in texts
    assert "placed may be NULL" in texts
    composite = load_mapping(
        write(tmp_path, '[tables."shop.orders"]\nkey = ["total", "order_id"]\n')
    )
    plan = build_plan(ORDERS, composite, "m")  # PRIMARY (order_id) covers it
    assert plan.key.kind == "generated" and not plan.errors(), plan.errors()
    by_unique = load_mapping(write(tmp_path, '[tables."shop.orders"]\nkey = ["email"]\n'))
    plan = build_plan(ORDERS, by_unique, "m")
    assert plan.key.columns == ("email",) and not plan.errors()
    nullable_unique = TableSchema(
        "shop",
        "t",
        (Column("a", "int", "int(11)", False), Column("b", "int", "int(11)", True)),
        (Index("PRIMARY", ("a",), unique=True), Index("uq_b", ("b",), unique=True)),
        0,
        0,
    )
    mapped = load_mapping(write(tmp_path, '[tables."shop.t"]\nkey = ["b"]\n'))
    plan = build_plan(nullable_unique, mapped, "m")  # unique, but NULL may repeat
    assert plan.verdict == "blocked"
    assert "not covered by a unique index" in " | ".join(f.text for f in plan.errors())


def test_checkpoint_keeps_the_inflight_range(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    progress = TableProgress("m.t", [5], 5, False, inflight=([5], [Decimal("9.5"), "z"]))
    first = TableProgress("m.u", None, 0, False, inflight=(None, [3]))
    Checkpoint(path, "replica1", {"shop.t": progress, "shop.u": first}).save()
    again = Checkpoint.load(path)
    assert again is not None
    assert again.tables["shop.t"].inflight == ([5], [Decimal("9.5"), "z"])
    assert again.tables["shop.u"].inflight == (None, [3])
    older = path.read_text().replace('"inflight"', '"unused"')  # a file without the marker
    path.write_text(older)
    loaded = Checkpoint.load(path)
    assert loaded is not None and loaded.tables["shop.t"].inflight is None
