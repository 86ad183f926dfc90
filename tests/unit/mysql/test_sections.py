"""A bundle's bytes against its manifest sections (:mod:`datatier.mysql.sections`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from datatier.backup.manifest import ObjectRecord, Section
from datatier.mysql.sections import section_problem
from datatier.mysql.sqltext import PRELUDE, block

TABLES = ["a", "b`;;", "数据"]


def layout() -> tuple[bytes, ObjectRecord]:
    """A bundle written as the dump writes one, and its record."""
    text = PRELUDE
    sections = []
    for name in TABLES:
        start = len(text)
        quoted = "`" + name.replace("`", "``") + "`"
        statements = [f"DROP TABLE IF EXISTS {quoted}", f"CREATE TABLE {quoted} (id INT)"]
        text += block(statements).encode()
        text += f"INSERT INTO {quoted} VALUES (1),(2);\n".encode()
        sections.append(Section(name, start, len(text), 2))
    record = ObjectRecord(
        "k", "bundle", 1, "00", len(text), "STANDARD", "db", None, 0, 6, sections=tuple(sections)
    )
    return text, record


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_a_bundle_as_written_matches_in_chunks_of_any_size(size: int) -> None:
    text, record = layout()
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    assert section_problem(record, chunks) is None


def test_a_moved_boundary_is_named() -> None:
    text, record = layout()
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


def test_swapped_names_are_named() -> None:
    text, record = layout()
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
