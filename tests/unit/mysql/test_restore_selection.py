import pytest

from datatier.backup.manifest import Manifest, ObjectRecord, TableRecord
from datatier.errors import UsageError
from datatier.mysql.restore import select_objects


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
    picked = select_objects(_manifest(), ("shop.a",))
    assert {o.kind for o in picked if o.table == "a"} == {"schema", "data"}


def test_a_table_the_backup_lacks_is_refused_with_the_way_to_get_it() -> None:
    """A table created after the backup (replayed by a point-in-time restore) has no
    object to pick: the refusal says it comes back with its whole database."""
    with pytest.raises(UsageError, match=r"not in backup B1: shop\.later") as refused:
        select_objects(_manifest(), ("shop.a", "shop.later"))
    assert refused.value.hint is not None and "--databases DB" in refused.value.hint
