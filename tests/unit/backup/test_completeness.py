"""The structural manifest check: objects must account for every recorded table and row."""

from __future__ import annotations

from dataclasses import replace

from datatier.backup.completeness import missing_parts
from datatier.backup.manifest import Manifest, ObjectRecord, Section, TableRecord


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
    assert missing_parts(m, {("db", "t")}) == []
    assert missing_parts(m, {("db", "u")}) == ["db.u: data parts 2 are not 1..1"]


def bundle(
    sections: list[Section], raw_size: int | None = None, key: str = "p/ID/data/db/_b1"
) -> ObjectRecord:
    """A bundle of ``sections`` whose bytes end where its last section does by default."""
    rows = sum(s.rows for s in sections)
    if raw_size is None:
        raw_size = sections[-1].end if sections else 1000
    return ObjectRecord(
        key, "bundle", 1, "00", raw_size, "STANDARD", "db", None, 0, rows, sections=tuple(sections)
    )


def test_bundled_tables_are_accounted_by_their_sections() -> None:
    good = manifest(
        [bundle([Section("a", 100, 300, 2), Section("b", 300, 900, 0)]), obj("schema", "c")],
        {"a": 2, "b": 0, "c": 0},
    )
    assert missing_parts(good) == []


def test_a_bundle_that_lies_about_its_tables_is_named() -> None:
    short = manifest([bundle([Section("a", 100, 300, 1)])], {"a": 2})
    assert missing_parts(short) == ["db.a: its bundle section holds 1 rows, the table record 2"]
    both = manifest([bundle([Section("a", 100, 300, 2)]), obj("data", "a", 1, 2)], {"a": 2})
    assert missing_parts(both) == ["db.a is in a bundle but also has data objects"]
    twice = manifest([bundle([Section("a", 100, 300, 2)]), obj("schema", "a")], {"a": 2})
    assert "db.a has 2 definition object(s)" in missing_parts(twice)
    overlap = manifest(
        [bundle([Section("a", 100, 300, 0), Section("b", 250, 400, 0)])], {"a": 0, "b": 0}
    )
    assert missing_parts(overlap) == ["bundle p/ID/data/db/_b1: section of b is out of place"]
    beyond = manifest([bundle([Section("a", 100, 3000, 0)], raw_size=1000)], {"a": 0})
    assert missing_parts(beyond) == ["bundle p/ID/data/db/_b1: section of a is out of place"]
    no_prelude = manifest([bundle([Section("a", 0, 30, 0)])], {"a": 0})
    assert missing_parts(no_prelude) == ["bundle p/ID/data/db/_b1: section of a is out of place"]
    doubled = manifest([bundle([Section("a", 10, 30, 0), Section("a", 30, 50, 0)])], {"a": 0})
    assert "bundle p/ID/data/db/_b1 holds a table twice" in missing_parts(doubled)
    wrong_sum = replace(bundle([Section("a", 10, 30, 1)]), rows=5)
    assert "bundle p/ID/data/db/_b1: its sections' rows do not add up to its rows" in (
        missing_parts(manifest([wrong_sum], {"a": 1}))
    )
    empty = manifest([bundle([])], {})
    assert missing_parts(empty) == ["bundle p/ID/data/db/_b1 holds no table"]


def test_a_bundle_whose_sections_leave_bytes_out_is_named() -> None:
    """Sections lie end to end to the object's last byte: a section cut short (a gap after
    it) or an object longer than its sections means the ranges were moved."""
    gap = manifest(
        [bundle([Section("a", 100, 260, 0), Section("b", 300, 400, 0)])], {"a": 0, "b": 0}
    )
    assert missing_parts(gap) == ["bundle p/ID/data/db/_b1: section of b is out of place"]
    short_end = manifest([bundle([Section("a", 100, 300, 0)], raw_size=340)], {"a": 0})
    assert missing_parts(short_end) == ["bundle p/ID/data/db/_b1: section of a is out of place"]


def test_a_damaged_bundle_does_not_stop_tables_outside_it() -> None:
    """``restore --tables`` salvages what a damaged bundle does not hold."""
    damaged = bundle([Section("a", 100, 300, 0), Section("b", 250, 400, 0)])
    good = bundle([Section("c", 10, 20, 0)], key="p/ID/data/db/_b2")
    m = manifest([damaged, good, obj("schema", "d")], {"a": 0, "b": 0, "c": 0, "d": 0})
    assert missing_parts(m, {("db", "c"), ("db", "d")}) == []
    assert missing_parts(m, {("db", "a")}) == [
        "bundle p/ID/data/db/_b1: section of b is out of place"
    ]
