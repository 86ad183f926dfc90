"""Unit tests mirror the package: tests/unit/backup/ holds the tests of datatier/backup/, and
so on (tests of the whole package or of a top-level module sit in tests/unit/ itself)."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parent
PACKAGE = UNIT.parents[1] / "datatier"


def test_every_unit_test_folder_is_a_package_of_datatier() -> None:
    folders = [p for p in UNIT.rglob("*") if p.is_dir() and p.name != "__pycache__"]
    assert folders, "the unit tests are grouped by package"
    strays = [
        str(p.relative_to(UNIT))
        for p in folders
        if not (PACKAGE / p.relative_to(UNIT) / "__init__.py").is_file()
    ]
    assert strays == []
    missing_init = [str(p.relative_to(UNIT)) for p in folders if not (p / "__init__.py").is_file()]
    assert missing_init == [], "test folders are packages (same test file names in two folders)"
