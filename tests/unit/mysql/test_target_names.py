"""Restore target names MariaDB refuses (:func:`datatier.mysql.target.bad_database_name`)."""

from __future__ import annotations

import pytest

from datatier.mysql.target import bad_database_name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("x ", "ends with a space"),
        ("x" * 65, "65 characters"),
        ("a\0b", "NUL"),
    ],
)
def test_names_the_server_refuses(name: str, problem: str) -> None:
    found = bad_database_name(name)
    assert found is not None and problem in found


@pytest.mark.parametrize("name", ["x" * 64, " lead", "a.b", "we`ird, db ü", "x/y", "日本"])
def test_names_the_server_takes(name: str) -> None:
    assert bad_database_name(name) is None
