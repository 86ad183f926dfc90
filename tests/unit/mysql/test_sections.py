"""A bundle's bytes against its manifest sections (:mod:`datatier.mysql.sections`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from datatier.backup.manifest import ObjectRecord, Section
from datatier.mysql.bundle_frames import BUNDLE_HEAD, framed_block
from datatier.mysql.frames import frame
from datatier.mysql.labels import object_label
from datatier.mysql.sections import (
    SectionLines,
    fed_sections,
    section_at_line,
    section_problem,
    sections_only,
)
from datatier.mysql.sqltext import PRELUDE, block
from datatier.mysql.stock_client import failed_object

TABLES = ["a", "b`;;", "数据"]


def layout(framed: bool = False) -> tuple[bytes, ObjectRecord]:
    """A bundle written as the dump writes one (``framed``: format 1, every statement
    framed; else as before it), and its record."""
    text = PRELUDE + BUNDLE_HEAD if framed else PRELUDE
    sections = []
    for name in TABLES:
        start = len(text)
        quoted = "`" + name.replace("`", "``") + "`"
        statements = [f"DROP TABLE IF EXISTS {quoted}", f"CREATE TABLE {quoted} (id INT)"]
        text += framed_block(statements) if framed else block(statements).encode()
        insert = f"INSERT INTO {quoted} VALUES (1),(2);\n".encode()
        text += frame(len(insert)) + insert if framed else insert
        sections.append(Section(name, start, len(text), 2))
    record = ObjectRecord(
        "k", "bundle", 1, "00", len(text), "STANDARD", "db", None, 0, 6, sections=tuple(sections)
    )
    return text, record


@pytest.mark.parametrize("framed", [False, True])
@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_a_bundle_as_written_matches_in_chunks_of_any_size(size: int, framed: bool) -> None:
    text, record = layout(framed)
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    assert section_problem(record, chunks) is None


@pytest.mark.parametrize("framed", [False, True])
def test_a_moved_boundary_is_named(framed: bool) -> None:
    text, record = layout(framed)
    first, second, third = record.sections
    moved = replace(
        record,
        sections=(
            replace(first, end=first.end - 9),
            replace(second, start=second.start - 9),
            third,
        ),
    )
    assert (
        section_problem(moved, [text])
        == "bundle k: the section of b`;; does not start with its table"
    )


@pytest.mark.parametrize("framed", [False, True])
def test_swapped_names_are_named(framed: bool) -> None:
    text, record = layout(framed)
    first, second, third = record.sections
    swapped = replace(
        record, sections=(replace(first, table="b`;;"), replace(second, table="a"), third)
    )
    assert "the section of b`;; does not start with its table" in str(
        section_problem(swapped, [text])
    )


def test_a_length_other_than_recorded_is_named() -> None:
    text, record = layout()
    assert section_problem(record, [text[:-1]]) == (
        f"bundle k holds {len(text) - 1} bytes, its manifest says {len(text)}"
    )


def expected_at(text: bytes, record: ObjectRecord, line: int) -> tuple[str, int] | None:
    """Brute force: the section holding the start of ``line`` and its line within it."""
    offset = 0
    for _ in range(line - 1):
        offset = text.index(b"\n", offset) + 1
    for section in record.sections:
        if section.start <= offset < section.end:
            return section.table, text.count(b"\n", section.start, offset) + 1
    return None


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_every_line_is_mapped_to_its_table_in_chunks_of_any_size(size: int) -> None:
    text, record = layout()
    marks = SectionLines(record.sections)
    for i in range(0, len(text), size):
        marks.feed(text[i : i + size])
    lines = text.count(b"\n")
    found = [marks.where(line) for line in range(1, lines + 1)]
    assert found == [expected_at(text, record, line) for line in range(1, lines + 1)]
    assert found[0] is None, "the prelude is no table's"
    assert {f[0] for f in found if f} == set(TABLES)
    assert marks.where(lines) == (TABLES[-1], 5)  # DELIMITER, DROP, CREATE, DELIMITER, INSERT


def test_a_stream_cut_short_maps_only_the_sections_it_reached() -> None:
    text, record = layout()
    marks = SectionLines(record.sections)
    marks.feed(text[: record.sections[1].start + 3])
    before_second = text.count(b"\n", 0, record.sections[1].start)
    assert marks.where(before_second) == (TABLES[0], 5)
    assert marks.where(before_second + 1) == (TABLES[1], 1)
    assert marks.where(before_second + 100) == (TABLES[1], 100), "the last one reached"
    assert section_at_line(["a", "b"], [], 3) is None


def test_sections_kept_by_a_restore_of_chosen_tables_map_the_stream_it_feeds() -> None:
    text, record = layout()
    first, _, third = record.sections
    fed = fed_sections(record, [first, third])
    stream = b"".join(sections_only(iter([text]), [(0, first.start), *_ranges([first, third])]))
    assert [(s.table, s.rows) for s in fed] == [(TABLES[0], 2), (TABLES[2], 2)]
    assert stream[fed[1].start : fed[1].end] == text[third.start : third.end]
    assert fed[-1].end == len(stream)
    marks = SectionLines(fed)
    marks.feed(stream)
    last = stream.count(b"\n")
    assert marks.where(last) == (TABLES[2], 5)
    assert marks.where(last - 5) == (TABLES[0], 5)


def _ranges(sections: list[Section]) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in sections]


def label(record: ObjectRecord) -> str:
    return object_label(record, None)


def test_a_client_error_inside_a_bundle_names_the_table_on_one_line() -> None:
    text, record = layout()
    record = replace(
        record, sections=(*record.sections[:2], replace(record.sections[2], table="new\nline"))
    )
    marks = SectionLines(record.sections)
    marks.feed(text)
    last = text.count(b"\n")
    error = f"ERROR 1062 (23000) at line {last}: Duplicate entry '1'".encode()
    assert (
        failed_object([record], [0], error, marks)
        == f"{label(record)} (table `new\\nline`, its line 5)"
    )
    first = text.count(b"\n", 0, record.sections[0].start) + 2
    error = f"ERROR 1050 (42S01) at line {first}: Table 'a' already exists".encode()
    assert failed_object([record], [0], error, marks) == f"{label(record)} (table `a`, its line 2)"
    assert failed_object([record], [0], b"ERROR 1 at line 1: x", marks) == label(record), (
        "the prelude"
    )
    assert failed_object([record], [0], b"ERROR 2013: lost connection", marks) == label(record)


def test_the_line_comes_from_the_error_not_the_statement_the_client_echoes() -> None:
    text, record = layout()
    marks = SectionLines(record.sections)
    marks.feed(text)
    last = text.count(b"\n")
    echoed = b"--------------\nINSERT INTO t VALUES ('ERROR 1 (x) at line 1\nat line 2')\n"
    error = echoed + f"--------------\n\nERROR 1062 (23000) at line {last}: Dup\n".encode()
    assert (
        failed_object([record], [0], error, marks) == f"{label(record)} (table `数据`, its line 5)"
    )
    unknown = echoed + f"ERROR at line {last}: Unknown command '\\x'.".encode()
    assert (
        failed_object([record], [0], unknown, marks)
        == f"{label(record)} (table `数据`, its line 5)"
    )
