"""The one output layer: every command takes --json, a failure under --json is one JSON
document on stdout, and a command whose result is out adds no second document."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from datatier.cli import cli, main
from datatier.cli.lazy import LazyGroup

NO_JSON = {
    "health serve": "a long-running server: it prints no result, its answers are HTTP",
}
"""Commands without --json, and why."""


def leaves(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    commands = group.all_commands() if isinstance(group, LazyGroup) else group.commands
    for name, command in sorted(commands.items()):
        if isinstance(command, click.Group):
            found += leaves(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return found


def test_every_command_takes_json_but_the_listed_ones() -> None:
    without = [
        name
        for name, command in leaves(cli)
        if not any(p.name == "json_output" for p in command.params)
    ]
    assert sorted(without) == sorted(NO_JSON)


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no DATATIER_* settings: the built-in config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATATIER_CONFIG", raising=False)
    return tmp_path


def test_a_failure_under_json_is_the_stdout_document(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = no_config / "missing.toml"
    assert main(["--config", str(missing), "config", "show", "--json"]) == 2
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert sorted(doc) == ["error", "exit_code", "hint"]
    assert doc["error"].startswith(f"{missing}: config file not found")
    assert doc["exit_code"] == 2 and doc["hint"] is None  # this error has no hint
    assert "config file not found" in err  # the stderr line is there as always


def test_a_usage_error_under_json_is_a_document_too(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backups", "list", "--json", "--no-such-flag"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 2 and "no-such-flag" in doc["error"]


def test_without_json_a_failure_leaves_stdout_empty(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(no_config / "missing.toml"), "config", "show"]) == 2
    assert capsys.readouterr().out == ""


def test_a_result_already_out_is_the_only_document(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cache stats shows the down node in its result, then exits 3: stdout stays one
    document (the result), the error goes to stderr."""
    assert main(["cache", "stats", "--server", "127.0.0.1:1", "--json"]) == 3
    out, err = capsys.readouterr()
    doc = json.loads(out)
    (node,) = doc["nodes"]
    assert node["address"] == "127.0.0.1:1" and node["up"] is False
    assert doc["ok"] is False and doc["up"] == 0 and doc["down"] == 1
    assert "unreachable" in err


def test_the_same_result_as_text(no_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "stats", "--server", "127.0.0.1:1"]) == 3
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["NODE", "UP", "ITEMS"]
    assert "127.0.0.1:1" in out and "NO" in out
