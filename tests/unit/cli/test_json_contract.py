"""Every ``--json`` output is one JSON object: a walk over every command of the CLI, the
refusal in ``emit`` that keeps a new command from printing a list, and the deprecated
``DATATIER_JSON_LISTS=1`` switch that gives the pre-0.2.0 lists back for one release.

No servers here: the config points MySQL and memcached at a closed port and the store at a
local directory, so each command reaches either its result or its failure document; the
integration tests check the shapes against the sandbox's real servers."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
import pytest

from datatier.cli import cli, main
from datatier.cli.context import AppContext
from datatier.cli.output import LEGACY_LISTS_ENV, Output, emit, json_option
from tests.unit.cli.test_output import NO_JSON, leaves

CLOSED = "127.0.0.1:1"
"""Nothing listens here: a connection is refused at once."""

ARGS: dict[str, list[str]] = {
    "backup policies": [],
    "backup run": ["shop"],
    "backups archive": [],
    "backups list": [],
    "backups prune": ["shop"],
    "backups show": ["20260101T000000Z-0000"],
    "backups verify": ["20260101T000000Z-0000"],
    "binlog archive": ["--once"],
    "binlogs accept-etags": [],
    "binlogs status": [],
    "cache copy": ["--from", CLOSED, "--to", "127.0.0.1:2", "--retry-for", "0"],
    "cache sets": [],
    "cache stats": [],
    "cache warm": ["shop", "--dry-run"],
    "check": ["--only", "store,free space"],
    "config show": [],
    "deploy render all": [],
    "deploy render ansible": [],
    "deploy render crontab": [],
    "deploy render docker": [],
    "deploy render haproxy": [],
    "deploy render k8s": [],
    "deploy render systemd": [],
    "keys check": [],
    "migrate plan": [],
    "migrate run": [],
    "migrate verify": [],
    "notify send": ["--unit", "x.service"],
    "notify test": [],
    "provision apply": [],
    "provision plan": ["--only", "bucket"],
    "provision replica": ["--from-backup", "20260101T000000Z-0000", "--target", CLOSED],
    "replication heartbeat": ["--once"],
    "replication status": [],
    "restore": ["--policy", "shop"],
    "sandbox down": ["--dir", "{tmp}/no-sandbox"],
    "sandbox images": [],
    "sandbox status": ["--dir", "{tmp}/no-sandbox"],
    # `up` would start servers: here only its refusal of a bad port base.
    "sandbox up": ["--dir", "{tmp}/no-sandbox", "--port-base", "99999"],
}
"""The arguments each command runs with here (every command with --json is listed)."""

LEGACY_LISTS = {
    "backup policies": "policies",
    "backups archive": "policies",
    "backups list": "backups",
    "cache sets": "sets",
    "cache stats": "nodes",
    "check": "checks",
    "sandbox images": "images",
    "sandbox status": "services",
    "sandbox up": "services",
}
"""The commands that printed a bare JSON list before 0.2.0, and the key now holding it."""


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config whose services are all unreachable and whose store is a local directory,
    with one MySQL policy ``shop`` and one warm set ``shop``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATATIER_CONFIG", raising=False)
    monkeypatch.delenv(LEGACY_LISTS_ENV, raising=False)
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "shop.toml").write_text(
        'engine = "mysql"\n[source]\nnode = "replica1"\n'
    )
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "shop.toml").write_text(
        '[queries.one]\nmode = "row"\nsql = "SELECT 1 AS id"\nkey = "k:{id}"\n'
    )
    config = tmp_path / "datatier.toml"
    config.write_text(
        f'[backup]\npolicies_dir = "backups"\ndefault_store = "file://{tmp_path}/store"\n'
        "[mysql]\nconnect_timeout = 1\n"
        '[mongo]\nuri = "mongodb://127.0.0.1:1/"\nserver_selection_timeout = 0.5\n'
        '[mysql.nodes.primary]\nhost = "127.0.0.1"\nport = 1\nrole = "primary"\n'
        '[mysql.nodes.replica1]\nhost = "127.0.0.1"\nport = 1\nrole = "replica"\n'
        f'[memcached]\nservers = ["{CLOSED}"]\ntimeout = 0.5\n'
        '[cache]\nwarm_sets_dir = "sets"\n'
        '[notify]\ncommand = "true"\n'
    )
    monkeypatch.setenv("DATATIER_CONFIG", str(config))
    return tmp_path


def run(tmp: Path, name: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any, str]:
    args = [a.replace("{tmp}", str(tmp)) for a in ARGS[name]]
    code = main([*name.split(), *args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_every_command_with_json_is_walked() -> None:
    with_json = {name for name, _ in leaves(cli)} - set(NO_JSON)
    assert with_json == set(ARGS)


@pytest.mark.parametrize("name", sorted(ARGS))
def test_json_output_is_one_object(
    name: str, offline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Result or failure, stdout holds exactly one JSON object (json.loads fails on two),
    and never emit's refusal of a list."""
    code, doc, _ = run(offline, name, capsys)
    assert isinstance(doc, dict), doc
    assert "must be a JSON object" not in str(doc.get("error")), doc
    if "error" in doc:
        assert code != 0 and doc["exit_code"] == code
    if name in LEGACY_LISTS and "error" not in doc:
        assert isinstance(doc[LEGACY_LISTS[name]], list)


@pytest.mark.parametrize("name", sorted(ARGS))
def test_the_legacy_switch_changes_only_the_old_lists(
    name: str, offline: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, new, _ = run(offline, name, capsys)
    monkeypatch.setenv(LEGACY_LISTS_ENV, "1")
    legacy_code, old, err = run(offline, name, capsys)
    assert legacy_code == code
    if name in LEGACY_LISTS and "error" not in new:
        assert old == new[LEGACY_LISTS[name]]  # the list exactly as before
        assert f"{LEGACY_LISTS_ENV}=1 is deprecated" in err
    else:
        assert isinstance(old, dict)
        assert LEGACY_LISTS_ENV not in err


def test_cache_sets_old_and_new(offline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A listing that succeeds offline, both ways: the object with its summary, the bare
    list and one warning line on stderr (none on stdout) under the switch."""
    assert main(["cache", "sets", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    row = {"name": "shop", "queries": "one", "source": "-", "description": ""}
    assert doc == {"sets": [row], "count": 1}
    with pytest.MonkeyPatch.context() as env:
        env.setenv(LEGACY_LISTS_ENV, "1")
        env.setenv("DATATIER_LOG__FORMAT", "console")  # stderr is no TTY here
        assert main(["cache", "sets", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [row]
    assert LEGACY_LISTS_ENV not in out
    (line,) = err.splitlines()
    assert line == (
        f"datatier: warning: {LEGACY_LISTS_ENV}=1 is deprecated and goes away in 0.3.0: "
        "`cache sets --json` prints an object; read its 'sets' key"
    )


def test_the_warning_is_a_log_event_when_logs_are_json(
    offline: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEGACY_LISTS_ENV, "1")
    assert main(["--json-logs", "cache", "sets", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)[0]["name"] == "shop"
    (line,) = err.splitlines()
    event = json.loads(line)
    assert event["level"] == "warning" and event["event"] == "json.legacy_lists"
    assert event["command"] == "cache sets" and event["key"] == "sets"
    logging.getLogger("datatier").handlers.clear()


@pytest.mark.parametrize("value", ["", "0"])
def test_the_switch_is_off_when_empty_or_zero(
    value: str, offline: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LEGACY_LISTS_ENV, value)
    assert main(["cache", "sets", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["count"] == 1 and LEGACY_LISTS_ENV not in err


@click.command()
@json_option()
@click.pass_obj
def _emits_a_list(app: AppContext) -> None:
    emit(Output([1, 2], "1 2"))  # type: ignore[arg-type]  # the mistake emit refuses


def test_emit_refuses_a_list_payload() -> None:
    app = AppContext(json_output=True)
    with pytest.raises(TypeError, match="must be a JSON object, not list"):
        _emits_a_list.main([], obj=app, standalone_mode=False)
    assert not app.emitted  # so the failure document is the one stdout gets


def test_emit_refuses_a_list_even_under_the_legacy_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The switch unwraps a list a dict names; it never lets a bare list through."""
    monkeypatch.setenv(LEGACY_LISTS_ENV, "1")
    with pytest.raises(TypeError):
        _emits_a_list.main([], obj=AppContext(json_output=True), standalone_mode=False)


def test_a_list_payload_fails_the_command_with_one_error_document(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(cli.commands, "bad", _emits_a_list)
    assert main(["bad", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 1 and "must be a JSON object, not list" in doc["error"]
