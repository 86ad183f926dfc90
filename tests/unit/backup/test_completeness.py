"""The structural manifest check: objects must account for every recorded table and row."""

from __future__ import annotations

from datatier.backup.completeness import missing_parts
from datatier.backup.manifest import Manifest, ObjectRecord, TableRecord


def obj(
    kind: str, table: str, part: int = 0, rows: int = 0, key: str | None = None
) -> ObjectRecord:
    name = key or f"p/ID/data/db/{table}/{kind}-{part}"
    return ObjectRecord(name, kind, 1, "00", 1, "STANDARD", "db", table, part, rows)


def manifest(objects: list[ObjectRecord], tables: dict[str, int]) -> Manifest:
    return Manifest(
        policy="p",
        backup_id="20261126T120000Z-0000",
        engine="mysql",
        tool_version="t",
        started_at="",
        finished_at="",
        source={},
        consistency={},
        objects=objects,
        tables=[TableRecord("db", t, rows, "", 0) for t, rows in tables.items()],
    )


def test_a_complete_manifest_has_no_problem() -> None:
    good = manifest(
        [obj("schema", "t"), obj("data", "t", 1, 5), obj("data", "t", 2, 3), obj("schema", "e")],
        {"t": 8, "e": 0},
    )
    assert missing_parts(good) == []


def test_a_gap_a_duplicate_and_missing_rows_are_named() -> None:
    gap = manifest([obj("schema", "t"), obj("data", "t", 1, 5), obj("data", "t", 3, 5)], {"t": 10})
    assert missing_parts(gap) == ["db.t: data parts 1,3 are not 1..2"]
    dup = manifest(
        [obj("schema", "t"), obj("data", "t", 1, 5), obj("data", "t", 1, 5, key="other")], {"t": 10}
    )
    assert missing_parts(dup) == ["db.t: data parts 1,1 are not 1..2"]
    short = manifest([obj("schema", "t"), obj("data", "t", 1, 69643)], {"t": 100000})
    assert missing_parts(short) == ["db.t: data objects hold 69643 rows, the table record 100000"]


def test_a_missing_definition_an_orphan_part_and_a_repeated_key_are_named() -> None:
    problems = missing_parts(
        manifest(
            [obj("data", "t", 1, 1), obj("data", "x", 1, 1), obj("schema", "t", key="k"),
             obj("schema", "t", key="k")],
            {"t": 1},
        )
    )  # fmt: skip
    assert "object k is listed 2 times" in problems
    assert "db.t has 2 definition object(s)" in problems
    assert "1 data object(s) of db.x, which has no record" in problems


def test_only_the_selected_tables_are_checked() -> None:
    m = manifest([obj("schema", "t"), obj("schema", "u"), obj("data", "u", 2, 1)], {"t": 0, "u": 1})
    assert missing_parts(m, {"db.t"}) == []
    assert missing_parts(m, {"db.u"}) == ["db.u: data parts 2 are not 1..1"]
