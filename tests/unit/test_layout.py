"""Tests mirror the package: tests/unit/backup/ and tests/integration/backup/ hold the tests
of datatier/backup/, and so on. Tests of the whole package or of a top-level module sit in
tests/unit/ itself; tests/integration/ itself holds only fixtures and shared helpers."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parent
INTEGRATION = UNIT.parent / "integration"
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


def test_every_integration_test_sits_in_the_folder_of_its_package() -> None:
    folders = [p for p in INTEGRATION.rglob("*") if p.is_dir() and p.name != "__pycache__"]
    strays = [
        str(p.relative_to(INTEGRATION))
        for p in folders
        if not (PACKAGE / p.relative_to(INTEGRATION) / "__init__.py").is_file()
    ]
    assert strays == []
    missing_init = [
        str(p.relative_to(INTEGRATION)) for p in folders if not (p / "__init__.py").is_file()
    ]
    assert missing_init == []
    loose = sorted(p.name for p in INTEGRATION.glob("test_*.py"))
    assert loose == [], "integration tests live in the folder of the package they exercise"
