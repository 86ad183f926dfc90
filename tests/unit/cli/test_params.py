"""Number options refuse nan and infinities before anything runs (datatier/cli/params.py).

click's FloatRange lets ``nan`` through (every comparison with it is false): ``backup run
--max-lag nan`` backed up from a replica whatever its lag and wrote ``NaN`` into the
manifest; ``backups prune --grace-hours nan`` failed with an unexpected ValueError (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datatier.cli import main

COMMANDS = [
    ["backup", "run", "p", "--dry-run", "--max-lag"],
    ["cache", "warm", "s", "--dry-run", "--max-lag"],
    ["cache", "warm", "s", "--dry-run", "--retry-for"],
    ["check", "--max-lag"],
    ["check", "--grace-hours"],
    ["backups", "prune", "p", "--grace-hours"],
]


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:-1]) + " " + c[-1])
def test_a_non_finite_number_is_a_usage_error_naming_the_option(
    command: list[str], value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "datatier.toml"
    config.write_text("")
    assert main(["--config", str(config), *command, value, "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 2
    assert doc["error"].startswith(f"Invalid value for '{command[-1]}'"), doc["error"]


def test_finite_numbers_still_pass_the_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backup", "run", "p", "--max-lag", "-1", "--json"]) == 2
    assert "is not in the range x>=0" in json.loads(capsys.readouterr().out)["error"]
