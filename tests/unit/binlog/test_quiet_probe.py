"""Probe.reached: whether a binlog stream's position is at or past a probe's binlog end."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.quiet import Probe

PROBE = Probe("mariadb-bin.000012", 4096, 100.0)


@pytest.mark.parametrize(
    ("file", "pos", "reached"),
    [
        ("mariadb-bin.000012", 4096, True),  # exactly the end
        ("mariadb-bin.000012", 9000, True),
        ("mariadb-bin.000012", 4095, False),  # one byte short
        ("mariadb-bin.000013", 4, True),  # a later file
        ("mariadb-bin.000011", 99999, False),  # an earlier file, however far in
        ("mariadb-bin.1000000", 4, True),  # past 999999: compared as numbers
        ("other-bin.000013", 4, False),  # another base name: not comparable
        ("mariadb-bin.00001x", 4, False),
        ("mariadb-bin", 5000, False),
    ],
)
def test_reached_compares_files_by_number_then_positions(
    file: str, pos: int, reached: bool
) -> None:
    assert PROBE.reached(file, pos) is reached


def test_a_probe_of_an_unnumbered_file_is_reached_only_in_that_file() -> None:
    probe = Probe("binlog", 10, None, "why")
    assert probe.reached("binlog", 10)
    assert not probe.reached("binlog.000002", 4)
