"""``backups prune`` and ``backups archive`` with spans too large for a date: policy values
the loader accepts (``min_age_days = 1000000``, ``recovery_window_days = 1e9``,
``archive_after_days = 1000000000``) and ``--now 0001-01-01T00:00:00Z`` or a huge
``--grace-hours``. They failed with ``unexpected OverflowError`` (exit 1); such a span
reaches back past year 1, so it keeps (or leaves in place) everything, exit 0. Real MySQL
backups in the sandbox's S3 server."""

from __future__ import annotations

import json

import pytest

from tests.integration.backup.test_catalog import (
    backup,
    catalog_db,  # noqa: F401  (fixture)
    keys,
    policy,
    run,
)
from tests.integration.conftest import SandboxHandle


@pytest.mark.usefixtures("catalog_db")
@pytest.mark.parametrize(
    ("name", "settings", "args"),
    [
        ("ext-min-age", "keep_last = 1\nmin_age_days = 1000000", []),
        ("ext-window", "keep_last = 1\nmin_age_days = 0\nrecovery_window_days = 1e9", []),
        ("ext-now", "keep_last = 1\nmin_age_days = 1", ["--now", "0001-01-01T00:00:00Z"]),
        ("ext-grace", "keep_last = 2\nmin_age_days = 0", ["--grace-hours", "1e300"]),
    ],
)
def test_prune_with_a_span_past_year_one_keeps_every_backup(
    sandbox: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    name: str,
    settings: str,
    args: list[str],
) -> None:
    """Reproduction: exit 1, ``unexpected OverflowError: date value out of range``."""
    name = policy(sandbox, name, f"[retention]\n{settings}\n")
    made = [backup(sandbox, name).backup_id for _ in range(2)]
    before = keys(sandbox, f"{name}/")
    code, out, err = run(sandbox, capsys, "prune", name, "--execute", "--json", *args)
    assert code == 0, err
    doc = json.loads(out)
    assert sorted(k["id"] for k in doc["keep"]) == sorted(made)
    assert doc["delete"] == []
    assert keys(sandbox, f"{name}/") == before


@pytest.mark.usefixtures("catalog_db")
def test_archive_after_more_days_than_a_date_holds_moves_nothing(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: ``backups archive`` exit 1, ``unexpected OverflowError``."""
    extra = '[storage]\narchive_class = "GLACIER"\narchive_after_days = 1000000000\n'
    name = policy(sandbox, "ext-archive", extra)
    backup(sandbox, name)
    backup(sandbox, name)
    code, out, err = run(sandbox, capsys, "archive", name, "--execute", "--json")
    assert code == 0, err
    assert json.loads(out)["moved"] == 0


@pytest.mark.usefixtures("catalog_db")
def test_prune_refuses_to_execute_at_a_future_now(
    sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--now`` is for rehearsals: a later time ages every backup, so an executed prune
    deleted backups today's retention keeps (and took a backup running now for an abandoned
    one past the grace). Reproduction: exit 0, the older backup deleted. Now exit 2 naming
    the option, nothing deleted; the same time without --execute still prints the plan."""
    name = policy(sandbox, "ext-future", "[retention]\nkeep_last = 1\nmin_age_days = 1\n")
    made = [backup(sandbox, name).backup_id for _ in range(2)]
    before = keys(sandbox, f"{name}/")
    later = ["--now", "2999-01-01T00:00:00Z"]
    code, out, err = run(sandbox, capsys, "prune", name, "--json", *later)
    assert code == 0, err
    assert [d["id"] for d in json.loads(out)["delete"]] == made[:1]  # the rehearsal
    code, out, err = run(sandbox, capsys, "prune", name, "--execute", *later)
    assert code == 2 and out == ""
    assert "--now" in err and "future" in err
    assert keys(sandbox, f"{name}/") == before
