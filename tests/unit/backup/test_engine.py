"""The backup plan every engine returns (datatier/backup/engine.py: BackupPlan)."""

from __future__ import annotations

import pytest

from datatier.backup.engine import BackupPlan, PlannedTable, RestoreOptions
from datatier.errors import UsageError


def plan() -> BackupPlan:
    return BackupPlan(
        engine="mysql",
        policy="shop",
        source={"node": "replica1"},
        consistency="BACKUP STAGE, 4 snapshot(s)",
        tables=[
            PlannedTable("shop", "orders", "table", rows=1200, bytes=4096, ranges=3),
            PlannedTable("shop", "ids", "sequence", rows=1, bytes=0, ranges=1),
            PlannedTable("shop", "totals", "view"),
            PlannedTable("app", "users", "collection", rows=None, bytes=None),
        ],
        jobs=4,
    )


def test_held_names_what_the_manifest_lists_views_apart() -> None:
    assert plan().held() == ["app.users", "shop.ids", "shop.orders"]


def test_estimates_add_what_the_source_reported_and_say_they_are_estimates() -> None:
    assert plan().estimates() == {"rows": 1201, "bytes": 4096, "estimated": True}


def test_json_is_one_dict_with_the_documented_keys() -> None:
    doc = plan().to_json()
    assert list(doc) == [
        "dry_run", "policy", "engine", "kind", "parent", "source", "consistency", "jobs",
        "store", "estimates", "tables", "details", "summary",
    ]  # fmt: skip
    assert doc["dry_run"] is True and doc["kind"] == "full" and doc["parent"] is None
    assert doc["tables"][0] == {
        "database": "shop",
        "name": "orders",
        "kind": "table",
        "rows_estimate": 1200,
        "bytes_estimate": 4096,
        "ranges": 3,
    }
    assert doc["tables"][3]["rows_estimate"] is None and doc["tables"][3]["ranges"] is None


def test_restore_targets_refuse_two_sources_in_one_target() -> None:
    options = RestoreOptions(renames={"a": "b"})
    assert options.targets(["a"]) == {"a": "b"}
    assert RestoreOptions(renames={"a": "c"}).targets(["a", "b"]) == {"a": "c", "b": "b"}
    with pytest.raises(UsageError, match="databases a and b would both be restored into b"):
        options.targets(["a", "b"])
    both = RestoreOptions(renames={"a": "c", "b": "c"})
    with pytest.raises(UsageError, match="databases a and b would both be restored into c"):
        both.targets(["b", "a"])


def test_tables_outside_the_databases_restored_are_refused_for_every_engine() -> None:
    """``--tables a.t --databases b`` selected nothing and a restore said exit 0."""
    with pytest.raises(UsageError, match=r"--tables a\.t: not in the databases .*\(b\)"):
        RestoreOptions(tables=(("a", "t"), ("b", "u")), databases=("b",))
    assert RestoreOptions(tables=(("a", "t"),), databases=("a", "b")).tables == (("a", "t"),)
    assert RestoreOptions(tables=(("a", "t"),)).databases == ()
