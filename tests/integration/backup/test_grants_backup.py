"""source.include_grants: accounts, roles and grants are backed up as their own object and
come back only with `restore --grants`, without touching existing accounts' passwords."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pymysql
import pytest

from datatier.cli import main
from tests.integration.conftest import SandboxHandle, sql

DB = "grants_db"
USERS = ("'app_ro'@'10.0.%'", "'keeper'@'127.0.0.1'")


def drop_all(sandbox: SandboxHandle) -> None:
    for user in USERS:
        sql(sandbox, "primary", f"DROP USER IF EXISTS {user}")
    sql(sandbox, "primary", "DROP ROLE IF EXISTS reporting")
    for db in (DB, "grants_copy1", "grants_copy2"):
        sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {db}")


def grants_of(sandbox: SandboxHandle, account: str) -> list[str] | None:
    with sandbox.connect("primary") as conn, conn.cursor() as cur:
        try:
            cur.execute(f"SHOW GRANTS FOR {account}")
        except pymysql.MySQLError:
            return None
        return [row[0] for row in cur.fetchall()]


def can_login(sandbox: SandboxHandle, user: str, password: str) -> bool:
    port = sandbox.config.mysql.nodes["primary"].port
    try:
        pymysql.connect(host="127.0.0.1", port=port, user=user, password=password).close()
    except pymysql.MySQLError:
        return False
    return True


@pytest.fixture
def accounts(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    sandbox = use_sandbox_config
    drop_all(sandbox)
    sql(sandbox, "primary", f"CREATE DATABASE {DB}")
    sql(sandbox, "primary", f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
    sql(sandbox, "primary", "CREATE USER 'app_ro'@'10.0.%' IDENTIFIED BY 'ro-pass-123'")
    sql(sandbox, "primary", f"GRANT SELECT ON {DB}.* TO 'app_ro'@'10.0.%'")
    sql(sandbox, "primary", "CREATE ROLE reporting")
    sql(sandbox, "primary", f"GRANT SELECT, SHOW VIEW ON {DB}.t TO reporting")
    sql(sandbox, "primary", "GRANT reporting TO 'app_ro'@'10.0.%'")
    sql(sandbox, "primary", "CREATE USER 'keeper'@'127.0.0.1' IDENTIFIED BY 'first-pass-1'")
    sandbox.wait_replicated()
    yield sandbox
    drop_all(sandbox)
    sandbox.wait_replicated()


def test_grants_are_backed_up_and_restored_only_when_asked(
    accounts: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = accounts
    path = sandbox.write_policy(
        "ops-grants",
        f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
        "include_grants = true\n",
    )
    plain = sandbox.write_policy(
        "ops-nogrants", f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{DB}"]\n'
    )
    try:
        before = grants_of(sandbox, "'app_ro'@'10.0.%'")
        assert before is not None
        capsys.readouterr()
        assert main(["backup", "run", "ops-grants", "--json"]) == 0
        backup_id = json.loads(capsys.readouterr().out)["id"]
        assert main(["backups", "show", backup_id, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["objects"]["by_kind"]["grants"]["count"] == 1
        assert main(["backup", "run", "ops-nogrants", "--json"]) == 0
        no_grants_id = json.loads(capsys.readouterr().out)["id"]

        sql(sandbox, "primary", "DROP USER 'app_ro'@'10.0.%'")
        sql(sandbox, "primary", "DROP ROLE reporting")
        sql(sandbox, "primary", "ALTER USER 'keeper'@'127.0.0.1' IDENTIFIED BY 'second-pass-2'")

        assert main(["restore", backup_id, "--rename", f"{DB}=grants_copy1"]) == 0
        assert grants_of(sandbox, "'app_ro'@'10.0.%'") is None  # not without --grants

        assert main(["restore", backup_id, "--grants", "--rename", f"{DB}=grants_copy2"]) == 0
        after = grants_of(sandbox, "'app_ro'@'10.0.%'")
        assert after is not None and sorted(after) == sorted(before)
        assert grants_of(sandbox, "reporting") is not None
        assert can_login(sandbox, "keeper", "second-pass-2")  # an existing account is kept
        assert not can_login(sandbox, "keeper", "first-pass-1")

        capsys.readouterr()
        assert main(["restore", no_grants_id, "--grants", "--rename", f"{DB}=grants_x"]) == 2
        assert "holds no accounts or grants" in capsys.readouterr().err
    finally:
        path.unlink()
        plain.unlink()


def test_include_grants_is_refused_for_mongo(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    path = use_sandbox_config.write_policy(
        "ops-mongo-grants", 'engine = "mongo"\n[source]\ninclude_grants = true\n'
    )
    try:
        assert main(["backup", "run", "ops-mongo-grants"]) == 2
        assert "only MySQL backups have grants" in capsys.readouterr().err
    finally:
        path.unlink()
