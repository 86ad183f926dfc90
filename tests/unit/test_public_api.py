"""The public library API: ``datatier.__all__``, the README's "Library API" list, and what
``import datatier`` costs."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import datatier

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_names() -> list[str]:
    """The names in the first column of the README's Library API table."""
    text = README.read_text()
    section = text.split("\n## Library API\n", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names += re.findall(r"`([A-Za-z_]+)`", first)
    return names


def test_the_readme_lists_exactly_the_public_names() -> None:
    listed = readme_names()
    assert len(listed) == len(set(listed)), "a name is listed twice in the README"
    assert sorted(listed) == sorted(datatier.__all__)


def test_every_public_name_is_its_home_modules_object() -> None:
    homes = {
        "load_config": ("datatier.config", "load"),
        "Router": ("datatier.replication.router", "Router"),
        "Monitor": ("datatier.replication.monitor", "Monitor"),
        "run_backup": ("datatier.backup.service", "run_backup"),
        "restore_backup": ("datatier.backup.restore", "restore_backup"),
        "ServiceUnavailable": ("datatier.errors", "ServiceUnavailable"),
    }
    for name in datatier.__all__:
        assert getattr(datatier, name) is not None, name
    for name, (module, attr) in homes.items():
        assert getattr(datatier, name) is getattr(importlib.import_module(module), attr)
    assert set(datatier.__all__) <= set(dir(datatier))


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = datatier.nothing_here
    from datatier import routing

    assert callable(routing.open)


def test_importing_the_package_loads_no_driver() -> None:
    """``import datatier`` (which every command and submodule import runs) stays cheap."""
    code = (
        "import sys, datatier; "
        "print(sorted(m for m in ('pymysql', 'pymongo', 'boto3', 'datatier.config') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
