import pytest

from datatier.backup.manifest import Manifest, ObjectRecord, TableRecord
from datatier.errors import UsageError
from datatier.mysql.restore import restored_tables, select_objects


def _manifest() -> Manifest:
    def obj(kind: str, table: str | None) -> ObjectRecord:
        key = f"p/data/shop/tables/{table}/{kind}.sql.zst" if table else "p/data/shop/_database"
        return ObjectRecord(key, kind, 1, "0" * 64, 1, "STANDARD", "shop", table)

    return Manifest(
        policy="p", backup_id="B1", engine="mysql", tool_version="0",
        started_at="2026-12-01T10:00:00Z", finished_at="2026-12-01T10:00:00Z", source={},
        consistency={}, objects=[obj("database", None), obj("schema", "a"), obj("data", "a")],
        tables=[TableRecord("shop", "a", 1, "0" * 64, 1)], databases={"shop": {}},
    )  # fmt: skip


def test_tables_pick_what_the_backup_holds() -> None:
    picked = select_objects(_manifest(), (("shop", "a"),))
    assert {o.kind for o in picked if o.table == "a"} == {"schema", "data"}


def test_a_table_the_backup_lacks_is_refused_with_the_way_to_get_it() -> None:
    """A table created after the backup (replayed by a point-in-time restore) has no
    object to pick: the refusal says it comes back with its whole database."""
    with pytest.raises(UsageError, match=r"not in backup B1: shop\.later") as refused:
        select_objects(_manifest(), (("shop", "a"), ("shop", "later")))
    assert refused.value.hint is not None and "--databases DB" in refused.value.hint


def _dotted() -> Manifest:
    """A backup holding `a`.`b.c` and `a.b`.`c`: both joined as ``a.b.c``."""

    def obj(kind: str, database: str, table: str | None) -> ObjectRecord:
        key = f"p/data/{database}/{table or '_database'}/{kind}"
        return ObjectRecord(key, kind, 1, "0" * 64, 1, "STANDARD", database, table)

    objects = [obj(k, db, name) for db, t in (("a", "b.c"), ("a.b", "c"))
               for k, name in (("database", None), ("schema", t), ("data", t))]  # fmt: skip
    return Manifest(
        policy="p", backup_id="B1", engine="mysql", tool_version="0",
        started_at="2026-12-01T10:00:00Z", finished_at="2026-12-01T10:00:00Z", source={},
        consistency={}, objects=objects,
        tables=[TableRecord("a", "b.c", 1, "0" * 64, 1), TableRecord("a.b", "c", 1, "0" * 64, 1)],
        databases={"a": {}, "a.b": {}},
    )  # fmt: skip


@pytest.mark.parametrize("pair", [("a", "b.c"), ("a.b", "c")])
def test_a_pair_picks_its_own_table_and_database_only(pair: tuple[str, str]) -> None:
    picked = select_objects(_dotted(), (pair,))
    assert {(o.database, o.kind) for o in picked} == {
        (pair[0], "database"),
        (pair[0], "schema"),
        (pair[0], "data"),
    }
    assert restored_tables(picked, (pair,)) == {pair}


def test_a_missing_pair_is_named_as_it_would_be_typed() -> None:
    with pytest.raises(UsageError) as refused:
        select_objects(_dotted(), (("a.b", "b.c"),))
    assert refused.value.message == "not in backup B1: `a.b`.`b.c`"
