"""A point-in-time restore of one database must not change the target's accounts: an
account statement (``DROP USER``, ``ALTER USER ... IDENTIFIED BY``) run while the restored
database was the session's default database acts on no table of it, yet the replay sends it
to the live target (tester's regression test, sandbox's real MariaDB and S3 server)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB = "t5acct_db"
TARGET = "t5acct_r"
POLICY = "t5acct"
ACCOUNT = "t5acct_app"


STATEMENTS = {  # run in DB's session between the backup and the target
    "drop": f"DROP USER '{ACCOUNT}'@'%'",  # an admin's clean-up
    "password": f"ALTER USER '{ACCOUNT}'@'%' IDENTIFIED BY 'rotated-before'",
}


def password_hash(sandbox: SandboxHandle) -> list[tuple[object, ...]]:
    return query(
        sandbox.config,
        "primary",
        "SELECT Password FROM mysql.user WHERE User = %s",
        (ACCOUNT,),
    )


@pytest.fixture(params=list(STATEMENTS))
def pitr(
    request: pytest.FixtureRequest,
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """Backup of DB; then, with DB as the default database, a row and an account
    statement; the GTID after them; the account set up anew afterwards (the live state to
    keep: created again, or its password rotated again)."""
    with pitr_window(use_sandbox_config, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        try:
            window.sql(
                f"DROP USER IF EXISTS '{ACCOUNT}'@'%'",
                f"CREATE USER '{ACCOUNT}'@'%' IDENTIFIED BY 'old'",
                f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)",
            )
            window.backup()
            with window.session() as cur:
                cur.execute("INSERT INTO t VALUES (1)")
                cur.execute(STATEMENTS[request.param])
            gtid = window.gtid()
            window.sql(f"CREATE OR REPLACE USER '{ACCOUNT}'@'%' IDENTIFIED BY 'new'")
            window.archive()
            yield gtid
        finally:
            window.sql(f"DROP USER IF EXISTS '{ACCOUNT}'@'%'")


def test_a_renamed_point_in_time_restore_leaves_the_targets_accounts_alone(
    pitr: str, use_sandbox_config: SandboxHandle
) -> None:
    config = use_sandbox_config.config
    live = password_hash(use_sandbox_config)
    code = main(["restore", "--policy", POLICY, "--until-gtid", pitr, "--rename", f"{DB}={TARGET}"])
    accounts = query(config, "primary", f"SELECT user FROM mysql.user WHERE user = '{ACCOUNT}'")
    assert accounts == [(ACCOUNT,)], f"restore exit {code}: the live account is gone"
    assert password_hash(use_sandbox_config) == live, "the live password was reset"
    if code == 0:  # replayed without the account statement: the row is there
        assert query(config, "primary", f"SELECT id FROM {TARGET}.t") == [(1,)]
    else:  # refused up front: nothing restored
        assert code == 2
        assert query(config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []


NEW_ACCOUNT = "t5acct_new"
ACCOUNTS = (ACCOUNT, NEW_ACCOUNT)
WINDOW = [  # run in DB's session between the backup and the target, in this order
    f"GRANT SELECT ON {DB}.* TO '{ACCOUNT}'@'%'",
    f"CREATE USER '{NEW_ACCOUNT}'@'%' IDENTIFIED BY 'pw-in-window'",
]


@pytest.fixture
def window(use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Backup of DB; then, with DB as the default database, a row, a GRANT and a CREATE
    USER (with a password); the GTID after them; then both undone on the live server (the
    state a restore must keep)."""
    with pitr_window(use_sandbox_config, POLICY, DB, TARGET, monkeypatch=monkeypatch) as win:
        try:
            win.sql(*(f"DROP USER IF EXISTS '{account}'@'%'" for account in ACCOUNTS))
            win.sql(
                f"CREATE USER '{ACCOUNT}'@'%' IDENTIFIED BY 'old'",
                f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)",
            )
            win.backup()
            with win.session() as cur:
                cur.execute("INSERT INTO t VALUES (1)")
                for sql in WINDOW:
                    cur.execute(sql)
            gtid = win.gtid()
            win.sql(
                f"REVOKE SELECT ON {DB}.* FROM '{ACCOUNT}'@'%'", f"DROP USER '{NEW_ACCOUNT}'@'%'"
            )
            win.archive()
            yield gtid
        finally:
            win.sql(*(f"DROP USER IF EXISTS '{account}'@'%'" for account in ACCOUNTS))


def grants(sandbox: SandboxHandle) -> list[tuple[object, ...]]:
    return query(sandbox.config, "primary", f"SHOW GRANTS FOR '{ACCOUNT}'@'%'")


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "text"])
def test_the_restore_report_lists_the_account_statements_it_did_not_replay(
    window: str,
    json_output: bool,
    use_sandbox_config: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    live = grants(sandbox)
    argv = ["restore", "--policy", POLICY, "--until-gtid", window, "--rename", f"{DB}={TARGET}"]
    capsys.readouterr()
    assert main([*argv, *(["--json"] if json_output else [])]) == 0
    out = capsys.readouterr().out
    assert query(sandbox.config, "primary", f"SELECT id FROM {TARGET}.t") == [(1,)]
    assert grants(sandbox) == live, "the window's GRANT was replayed"
    new = query(sandbox.config, "primary", f"SELECT 1 FROM mysql.user WHERE user = '{NEW_ACCOUNT}'")
    assert new == [], "the window's CREATE USER was replayed"
    assert "pw-in-window" not in out  # a password in the window is not shown
    expected = [
        f"GRANT SELECT ON {DB}.* TO '{ACCOUNT}'@'%'",
        f"CREATE USER '{NEW_ACCOUNT}'@'%' IDENTIFIED BY '***'",
    ]
    if json_output:
        skipped = json.loads(out)["scan"]["account_statements_skipped"]
        assert skipped["count"] == 2
        assert [s["statement"] for s in skipped["listed"]] == expected
        gtids = [s["gtid"] for s in skipped["listed"]]
        assert gtids[1] == window and gtids[0] != gtids[1]
    else:
        assert "2 account statement(s) NOT replayed" in out, out
        for statement in expected:
            assert statement in out, out
