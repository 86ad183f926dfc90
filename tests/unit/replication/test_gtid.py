"""GTID position comparison for read-your-writes (both flavours)."""

from __future__ import annotations

import pytest

from datatier.mysql.flavor import wait_statement
from datatier.replication.gtid import contains

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
U2 = "4e11fa47-71ca-11e1-9e33-c80aa9429562"


@pytest.mark.parametrize(
    ("applied", "target", "expected"),
    [
        ("0-1-42", "0-1-42", True),
        ("0-1-43", "0-1-42", True),
        ("0-1-41", "0-1-42", False),
        ("0-2-50", "0-1-42", True),  # a new server in the domain continues the sequence
        ("0-1-42,1-3-7", "1-3-7", True),
        ("0-1-42", "0-1-40,1-3-7", False),  # domain 1 never seen
        ("0-1-42", "", True),
        (f"{U1}:1-50", f"{U1}:1-42", True),
        (f"{U1}:1-41", f"{U1}:1-42", False),
        (f"{U1}:1-50,\n{U2}:1-3", f"{U2}:2-3", True),
        (f"{U1}:1-50", f"{U2}:1", False),
        (f"{U1}:1-10:12-20", f"{U1}:11", False),
        ("0-1-42", f"{U1}:1-42", None),  # different flavours
        ("garbage", "0-1-1", None),
    ],
)
def test_contains(applied: str, target: str, expected: bool | None) -> None:
    assert contains(applied, target) is expected


def test_wait_statement_per_flavour() -> None:
    assert wait_statement("mariadb") == "SELECT MASTER_GTID_WAIT(%s, %s)"
    assert wait_statement("mysql") == "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)"
