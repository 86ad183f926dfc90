"""Bundles of small tables: which tables are bundled, the manifest's record of them, and how
a restore picks sections out of one (the round trip against a real server is in
tests/integration/mysql/test_mysql_bundles.py)."""

from __future__ import annotations

import json

from datatier.backup.manifest import (
    BUNDLE_FORMAT_VERSION,
    READABLE_FORMATS,
    Manifest,
    ObjectRecord,
    Section,
    TableRecord,
)
from datatier.backup.service import _format_version
from datatier.mysql.catalogue import Table
from datatier.mysql.dumpplan import BUNDLE_TABLE_BYTES, BUNDLE_TABLES, bundles
from datatier.mysql.restore import restored_tables, select_objects
from datatier.mysql.sections import sections_only


def table(
    db: str, name: str, size: int = 16384, engine: str = "InnoDB", kind: str = "table"
) -> Table:
    return Table(db, name, kind, engine, f"CREATE TABLE `{name}` (a int)", (), (), 0, size)


def test_small_innodb_tables_are_bundled_per_database_and_the_rest_stay_alone() -> None:
    tables = [table("a", f"t{i}") for i in range(20)]
    tables += [table("a", "big", BUNDLE_TABLE_BYTES + 1), table("a", "seq", kind="sequence")]
    tables += [table("a", "isam", engine="MyISAM"), table("b", "lonely")]
    groups = bundles(tables, jobs=2, chunk_bytes=32 << 20)
    assert [len(g) for g in groups] == [10, 10]  # 20 tables, 2 jobs: two bundles of 10
    assert {t.name for g in groups for t in g} == {f"t{i}" for i in range(20)}
    assert all(t.database == "a" for g in groups for t in g)


def test_bundles_are_capped_and_follow_the_data_object_size() -> None:
    many = [table("a", f"t{i}") for i in range(300)]
    assert max(len(g) for g in bundles(many, jobs=1, chunk_bytes=32 << 20)) == BUNDLE_TABLES
    assert [len(g) for g in bundles(many[:12], jobs=4, chunk_bytes=32 << 20)] == [8, 4]
    # A table over a quarter of a data object is dumped alone (it would fill parts).
    assert bundles(many[:12], jobs=4, chunk_bytes=60000) == []


def _record(sections: tuple[Section, ...]) -> ObjectRecord:
    rows = sum(s.rows for s in sections)
    return ObjectRecord(
        "p/B1/data/shop/_bundle-00001.sql.zst", "bundle", 9, "0" * 64, 900, "STANDARD",
        "shop", None, 0, rows, sections=sections,
    )  # fmt: skip


def _manifest(objects: list[ObjectRecord]) -> Manifest:
    return Manifest(
        policy="p", backup_id="B1", engine="mysql", tool_version="0",
        started_at="2026-12-01T10:00:00Z", finished_at="2026-12-01T10:00:00Z", source={},
        consistency={}, objects=objects, databases={"shop": {}},
        tables=[TableRecord("shop", t, 1, "0" * 64, 1) for t in ("a", "b", "c")],
        format_version=BUNDLE_FORMAT_VERSION,
    )  # fmt: skip


def test_sections_survive_the_manifest_and_plain_objects_carry_none() -> None:
    sections = (Section("a", 100, 300, 1), Section("we`ird\n;", 300, 800, 1))
    plain = ObjectRecord("p/B1/data/shop/_database", "database", 1, "0" * 64, 1, "STANDARD", "shop")
    manifest = _manifest([plain, _record(sections)])
    doc = json.loads(manifest.encode())
    assert "sections" not in doc["objects"][0]
    back = Manifest.decode(manifest.encode(), "test")
    assert back.objects[1].sections == sections
    assert back.objects[1].table_names() == ("a", "we`ird\n;")
    assert back.objects[0].sections == () and plain.table_names() == ()


def test_a_manifest_with_bundles_needs_a_reader_that_knows_them() -> None:
    bundled = _record((Section("a", 1, 2, 0),))
    plain = ObjectRecord("k", "data", 1, "0" * 64, 1, "STANDARD", "shop", "a", 1, 0)
    assert _format_version(None, [plain, bundled]) == BUNDLE_FORMAT_VERSION
    assert _format_version(None, [plain]) < BUNDLE_FORMAT_VERSION
    assert max(READABLE_FORMATS) == BUNDLE_FORMAT_VERSION


def test_tables_picks_a_bundle_for_any_table_it_holds() -> None:
    record = _record((Section("a", 100, 300, 1), Section("b", 300, 800, 1)))
    schema_c = ObjectRecord("p/B1/data/shop/tables/c/schema", "schema", 1, "0" * 64, 1,
                            "STANDARD", "shop", "c")  # fmt: skip
    manifest = _manifest([record, schema_c])
    assert select_objects(manifest, (("shop", "b"),)) == [record]
    assert select_objects(manifest, (("shop", "c"),)) == [schema_c]
    assert restored_tables([record, schema_c]) == {("shop", "a"), ("shop", "b"), ("shop", "c")}
    assert restored_tables([record, schema_c], (("shop", "b"),)) == {("shop", "b")}


def test_sections_only_passes_the_ranges_across_any_chunking() -> None:
    data = bytes(range(256)) * 4
    keep = [(0, 10), (100, 300), (700, 1024)]
    expected = b"".join(data[a:b] for a, b in keep)
    for size in (1, 7, 64, 100, 1024):
        chunks = iter([data[i : i + size] for i in range(0, len(data), size)])
        assert b"".join(sections_only(chunks, keep)) == expected
