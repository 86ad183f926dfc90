"""CLI: errors become one stderr line and a named exit code; secrets never printed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
import pytest

from datatier import cli as cli_module
from datatier import log
from datatier.cli import cli, main
from datatier.errors import IntegrityFailure, NotReadyYet, ServiceUnavailable


def test_help_lists_only_working_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group in cli.all_commands():
        assert group in out
    assert "--config" in out and "--json-logs" in out and "--debug" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "no such command 'no-such-command'" in capsys.readouterr().err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["bakup"], "'bakup'; did you mean 'backup' or 'backups'? (see 'datatier --help')"),
        (
            ["replicaton", "status"],
            "'replicaton'; did you mean 'replication'? (see 'datatier --help')",
        ),
        (["backup", "rn", "x"], "'rn'; did you mean 'run'? (see 'datatier backup --help')"),
        (["cache", "wram"], "'wram'; did you mean 'warm'? (see 'datatier cache --help')"),
        (["zzzz"], "'zzzz' (see 'datatier --help')"),
    ],
)
def test_a_mistyped_command_is_one_line_with_a_suggestion(
    args: list[str], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The top level is a lazy group (no command loaded yet): it suggests as click's plain
    groups do; at a terminal the whole error is one line, without the usage block."""
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    log.configure()  # a terminal: plain lines
    assert main(args) == 2
    lines = terminal.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0] == f"datatier: error: no such command {line}"


def test_missing_config_file_exits_2_with_one_plain_line_at_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.toml"
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["--config", str(missing), "config", "show"]) == 2
    assert terminal.getvalue().strip() == f"datatier: error: {missing}: config file not found"


def test_errors_are_one_json_line_when_logs_are_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stderr is no terminal here: the error is a JSON line with its message, exit code and
    hint, and no plain-text line follows it."""
    missing = tmp_path / "missing.toml"
    assert main(["--config", str(missing), "config", "show"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["level"] == "error" and doc["event"] == "command.failed"
    assert doc["error"] == f"{missing}: config file not found"
    assert doc["exit_code"] == 2 and "hint" in doc
    assert main(["no-such-command"]) == 2
    doc = json.loads(capsys.readouterr().err.strip())
    assert doc["exit_code"] == 2 and "no such command" in doc["error"]
    assert main(["cache", "wram"]) == 2
    doc = json.loads(capsys.readouterr().err.strip())
    assert doc["error"] == "no such command 'wram'; did you mean 'warm'?"
    assert doc["exit_code"] == 2 and doc["hint"] == "see 'datatier cache --help'"


def test_config_show_redacts_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATATIER_MYSQL__PASSWORD", "pa55word-xyz")
    monkeypatch.setenv("DATATIER_S3__SECRET_ACCESS_KEY", "s3-secret-xyz")
    assert main(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    assert "pa55word-xyz" not in out and "s3-secret-xyz" not in out
    doc = json.loads(out)
    assert doc["config"]["mysql"]["password"] == "***"
    assert "DATATIER_MYSQL__PASSWORD" in doc["source"]


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ServiceUnavailable("cannot reach s3"), 3),
        (IntegrityFailure("sha256 mismatch"), 4),
        (NotReadyYet("restore in progress"), 5),
        (RuntimeError("boom"), 1),
    ],
)
def test_errors_map_to_exit_codes_and_traceback_only_with_debug(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
) -> None:
    @click.command("explode")
    def explode() -> None:
        raise error

    monkeypatch.setitem(cli.commands, "explode", explode)
    assert cli_module.main(["explode"]) == code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(error) in err
    assert cli_module.main(["--debug", "explode"]) == code
    assert "Traceback" in capsys.readouterr().err


def test_a_command_imports_only_its_own_module() -> None:
    """`datatier --version` (and so every command) does not import every command's services."""
    import subprocess
    import sys

    code = (
        "import json, sys; from datatier.cli import main; main(['--version']); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('datatier', 'boto3', 'botocore', 'pymongo', 'MySQLdb', 'prometheus_client', "
        "'croniter', 'cryptography'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert "datatier.cli" in loaded, "the probe sees the modules"
    heavy = [m for m in loaded if m.endswith("_cmd") or m.split(".")[0] != "datatier"]
    assert heavy == []


def test_the_console_entry_exits_with_the_code_of_main() -> None:
    """``python -m datatier`` (the console script's function): 0 for --version, 2 for a
    mistyped command, with the one-line error on stderr."""
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "datatier", "--version"], capture_output=True)
    assert ok.returncode == 0 and b"datatier" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "datatier", "nosuch"], capture_output=True)
    assert bad.returncode == 2 and b"no such command 'nosuch'" in bad.stderr


def test_every_lazy_command_resolves_to_the_command_of_its_name() -> None:
    commands = cli.all_commands()
    assert sorted(commands) == sorted(cli_module.COMMANDS)
    assert all(commands[name].name in (name, name.replace("_", "-")) for name in commands)


@pytest.mark.parametrize("make", ["missing", "file"])
def test_a_staging_dir_that_is_no_directory_is_a_usage_error(
    make: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was ``unexpected FileNotFoundError`` / ``NotADirectoryError`` (exit 1, rerun with
    --debug), after the manifest was read."""
    staging = tmp_path / "staging"
    if make == "file":
        staging.write_text("")
    argv = ["restore", "20260101T000000Z-0000", "--dry-run", "--staging-dir", str(staging)]
    assert main(argv) == 2
    assert "--staging-dir" in capsys.readouterr().err
