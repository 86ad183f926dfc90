"""Policy files that cannot work are refused at load, and a broken one does not take the
others down (issue 12, items 10 and 11), with the sandbox's real catalog behind it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import (  # noqa: F401  (integ_data: fixture)
    DB,
    failure_line,
    integ_data,
    loaded_config,
    policy,
)

pytestmark = pytest.mark.usefixtures("integ_data")

GOOD = f'engine = "mysql"\n[source]\nnode = "primary"\ndatabases = ["{DB}"]\n'
UNWORKABLE = {
    "bad-nan": (GOOD + "[retention]\nmin_age_days = nan\n", "expected a finite number"),
    "bad-inf": (GOOD + "[retention]\nmin_age_days = inf\n", "expected a finite number"),
    "bad-negative": (GOOD + "[retention]\nmin_age_days = -1\n", "below the minimum"),
    "bad-node": (GOOD.replace('"primary"', '"replica9"'), "unknown node 'replica9'"),
    "bad-nodes": (
        GOOD.replace('node = "primary"', 'nodes = ["replica2", "nope"]'),
        "unknown node 'nope'",
    ),
    "bad-ftp": ('store = "ftp://x/y"\n' + GOOD, "use s3://bucket/prefix"),
    "bad-s3": ('store = "s3://"\n' + GOOD, "missing bucket name"),
    "bad-feb30": ('schedule = "0 3 30 2 *"\n' + GOOD, "never runs: day 30 does not exist in Feb"),
}


@pytest.fixture
def policy_files(sandbox: SandboxHandle) -> Iterator[Any]:
    """Write policy files for one test; removed afterwards (the directory is shared)."""
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        written.append(sandbox.write_policy(name, text))

    yield write
    for path in written:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("name", sorted(UNWORKABLE))
def test_a_policy_that_validates_but_cannot_work_is_refused_at_load(
    use_sandbox_config: SandboxHandle,
    policy_files: Any,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    """Reproduction: min_age_days = nan loaded fine and prune then crashed every night;
    an unknown node, an ftp:// or bucket-less store and 30 February loaded too."""
    text, problem = UNWORKABLE[name]
    policy_files(name, text)
    assert main(["backup", "run", name]) == 2
    err = failure_line(capsys.readouterr().err)
    assert err.startswith(f"datatier: error: {use_sandbox_config.root}/backups/{name}.toml: ")
    assert problem in err, err


def test_one_broken_policy_does_not_stop_commands_about_the_others(
    use_sandbox_config: SandboxHandle, policy_files: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: one unparsable policy file made restore, backups list and verify exit 2
    for every other policy."""
    sandbox = use_sandbox_config
    loaded = loaded_config(sandbox)
    manifest = run_backup(loaded, load_policy(loaded, policy(sandbox, "integ-good-neighbour")))
    policy_files("broken", 'engine = "mysql"\n[source\nnode = ')
    capsys.readouterr()

    assert main(["backups", "list", "--json"]) == 0
    out = capsys.readouterr()
    assert manifest.backup_id in {b["id"] for b in json.loads(out.out)["backups"]}
    assert "broken" in out.err and "policy.invalid" in out.err
    assert main(["backups", "verify", manifest.backup_id]) == 0
    assert main(["restore", manifest.backup_id, "--rename", f"{DB}=integ_nb", "--dry-run"]) == 0
    capsys.readouterr()

    assert main(["backup", "policies", "--json"]) == 2
    listed = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in listed["policies"]}
    assert rows["broken"]["valid"] is False and "invalid TOML" in rows["broken"]["error"]
    assert listed["invalid"] == 1 and listed["valid"] == listed["count"] - 1 == len(rows) - 1
    assert rows["integ-good-neighbour"]["valid"] is True

    for args in (["backup", "run", "broken"], ["backups", "prune", "broken"]):
        assert main(args) == 2
        assert "broken.toml: invalid TOML" in capsys.readouterr().err
