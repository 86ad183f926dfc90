"""The split rule a parallel dump and its plan share (datatier/mysql/dumpplan.py)."""

from __future__ import annotations

import pytest

from datatier.mysql.catalogue import Column, Table
from datatier.mysql.dumpplan import (
    MAX_RANGES,
    MIN_RANGE_BYTES,
    range_count,
    range_share,
    split_points,
)

MiB = 1 << 20


def table(data_bytes: int, key_type: str = "int", key: tuple[str, ...] = ("id",)) -> Table:
    columns = (Column("id", key_type, None, False), Column("v", "varchar", "utf8mb4", False))
    return Table("db", "t", "table", "InnoDB", "CREATE ...", columns, key, 0, data_bytes)


def test_one_job_never_splits() -> None:
    share = range_share(10_000 * MiB, 1)
    assert share > 10_000 * MiB
    assert range_count(table(10_000 * MiB), share) == 1


def test_the_share_is_a_quarter_of_each_jobs_part_but_never_below_the_minimum() -> None:
    assert range_share(1_600 * MiB, 4) == 100 * MiB
    assert range_share(10 * MiB, 4) == MIN_RANGE_BYTES


@pytest.mark.parametrize(
    ("data_mib", "expected"),
    [(0, 1), (50, 1), (100, 1), (101, 2), (350, 4), (100_000, MAX_RANGES)],
)
def test_a_table_is_cut_into_ranges_of_about_one_share(data_mib: int, expected: int) -> None:
    assert range_count(table(data_mib * MiB), 100 * MiB) == expected


def test_only_an_integer_first_key_column_splits() -> None:
    assert range_count(table(1_000 * MiB, key_type="varchar"), MiB) == 1
    assert range_count(table(1_000 * MiB, key=()), MiB) == 1
    assert range_count(table(1_000 * MiB, key_type="bigint"), MiB) == MAX_RANGES


def test_a_key_naming_a_column_the_catalogue_missed_does_not_split() -> None:
    """DDL between the catalogue's reads of columns and keys: StopIteration ("unexpected")
    before; the table is now read whole."""
    renamed = table(1_000 * MiB, key=("new_id",))
    assert renamed.split_column is None and range_count(renamed, MiB) == 1


def test_split_points_cut_the_key_space_evenly() -> None:
    assert split_points(1, 100, 4) == (26, 51, 76)
    assert split_points(-50, 49, 2) == (0,)


def test_a_narrow_key_space_gives_fewer_ranges_never_an_empty_first_one() -> None:
    assert split_points(5, 6, 8) == (6,)
    assert split_points(7, 7, 8) == ()
