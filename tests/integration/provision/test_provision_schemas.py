"""Schema migrations (MySQL primary of the sandbox) and Mongo collections/indexes (FerretDB).

Migration versions are file names and the migrations table is shared by every test using
the sandbox, so each test names its files with a fresh, increasing prefix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pymysql
import pytest

from datatier.cli import main
from datatier.provision.schema_mysql import Migration, MySQLSchemas
from tests.integration.conftest import SandboxHandle, sql

STAMPED = "^[0-9]{19}_"  # the versions stamp() makes


def stamp() -> str:
    return f"{time.time_ns()}"


@pytest.fixture
def schema_dirs(
    use_sandbox_config: SandboxHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Path]]:
    mysql_dir, mongo_dir = tmp_path / "mysql", tmp_path / "mongo"
    mysql_dir.mkdir()
    mongo_dir.mkdir()
    monkeypatch.setenv("DATATIER_PROVISION__MYSQL_SCHEMAS_DIR", str(mysql_dir))
    monkeypatch.setenv("DATATIER_PROVISION__MONGO_SCHEMAS_DIR", str(mongo_dir))
    yield mysql_dir, mongo_dir
    # Forget this test's migrations: later tests (and other schema dirs) start in order.
    with use_sandbox_config.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES IN datatier LIKE 'schema_migrations'")
        if cur.fetchone():
            cur.execute(
                "DELETE FROM datatier.schema_migrations WHERE version REGEXP %s", (STAMPED,)
            )


@pytest.fixture
def dropped(use_sandbox_config: SandboxHandle) -> Iterator[list[str]]:
    """Statements run on the primary after the test (DROP ... IF EXISTS of what it made):
    every integration test shares one sandbox."""
    statements: list[str] = []
    yield statements
    for statement in statements:
        sql(use_sandbox_config, "primary", statement)
    use_sandbox_config.wait_replicated()


def applied(sandbox: SandboxHandle, version: str) -> bool:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM datatier.schema_migrations WHERE version = %s", (version,)
        )
        return bool(cur.fetchone()[0])


def test_mysql_migrations_apply_in_order_once(
    use_sandbox_config: SandboxHandle,
    schema_dirs: tuple[Path, Path],
    dropped: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    mysql_dir, _ = schema_dirs
    dropped.append("DROP DATABASE IF EXISTS prov_schema")  # with its table and trigger
    sql(sandbox, "primary", "DROP DATABASE IF EXISTS prov_schema")
    first, second = f"{stamp()}_create.sql", f"{stamp()}_trigger.sql"
    (mysql_dir / first).write_text(
        "CREATE DATABASE IF NOT EXISTS prov_schema;\n"
        "CREATE TABLE prov_schema.items (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0);\n"
    )
    (mysql_dir / second).write_text(  # DELIMITER works: files run through the mariadb client
        "USE prov_schema;\nDELIMITER //\nCREATE TRIGGER items_bi BEFORE INSERT ON items\n"
        "FOR EACH ROW BEGIN SET NEW.n = NEW.n + 1; END//\nDELIMITER ;\n"
    )
    assert main(["provision", "plan", "--only", "mysql"]) == 0
    out = capsys.readouterr().out
    assert f"+ migration {first}" in out and f"+ migration {second}" in out
    assert main(["provision", "apply", "--only", "mysql", "--execute"]) == 0
    assert "Applied 2 change(s)." in capsys.readouterr().out
    sql(sandbox, "primary", "INSERT INTO prov_schema.items (id) VALUES (1)")
    sandbox.wait_replicated()
    with sandbox.connect("replica2") as conn, conn.cursor() as cur:
        cur.execute("SELECT n FROM prov_schema.items WHERE id = 1")
        assert cur.fetchone() == (1,), "the migration and the trigger replicated"
    assert applied(sandbox, first) and applied(sandbox, second)
    assert main(["provision", "plan", "--only", "mysql"]) == 0
    assert "No changes" in capsys.readouterr().out

    # a changed applied file is an integrity error; nothing runs
    (mysql_dir / first).write_text("DROP DATABASE prov_schema;\n")
    assert main(["provision", "apply", "--only", "mysql", "--execute"]) == 4
    err = capsys.readouterr().err
    assert f"{first} changed after it was applied" in err
    (mysql_dir / first).unlink()
    # a new file that sorts before an applied one is refused
    early = f"{int(first.split('_')[0]) + 1}_late.sql"
    (mysql_dir / early).write_text("CREATE TABLE prov_schema.nope (id INT);\n")
    assert main(["provision", "apply", "--only", "mysql", "--execute"]) == 2
    assert f"{early} is pending but {second} is already applied" in capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES IN prov_schema")
        assert {r[0] for r in cur.fetchall()} == {"items"}


def test_mysql_user_without_privileges_changes_nothing(
    use_sandbox_config: SandboxHandle,
    schema_dirs: tuple[Path, Path],
    dropped: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    mysql_dir, _ = schema_dirs
    dropped += ["DROP USER IF EXISTS prov_ro@'127.0.0.1'", "DROP DATABASE IF EXISTS prov_denied"]
    sql(sandbox, "primary", "CREATE USER IF NOT EXISTS prov_ro@'127.0.0.1' IDENTIFIED BY 'ro-pw'")
    sql(sandbox, "primary", "GRANT SELECT ON *.* TO prov_ro@'127.0.0.1'")
    sql(sandbox, "primary", "DROP DATABASE IF EXISTS prov_denied")
    version = f"{stamp()}_denied.sql"
    (mysql_dir / version).write_text("CREATE DATABASE prov_denied;\n")
    monkeypatch.setenv("DATATIER_MYSQL__USER", "prov_ro")
    monkeypatch.setenv("DATATIER_MYSQL__PASSWORD", "ro-pw")
    assert main(["provision", "plan", "--only", "mysql"]) == 0, "reading is allowed"
    capsys.readouterr()
    assert main(["provision", "apply", "--only", "mysql", "--execute"]) == 3
    err = capsys.readouterr().err
    assert "denied prov_ro the privileges to apply" in err and "ro-pw" not in err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'prov_denied'")
        assert cur.fetchone() is None
    assert not applied(sandbox, version)


def test_a_concurrent_apply_waits_for_the_lock_then_changes_nothing(
    use_sandbox_config: SandboxHandle,
    schema_dirs: tuple[Path, Path],
    dropped: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    mysql_dir, _ = schema_dirs
    dropped.append("DROP DATABASE IF EXISTS prov_locked")
    version = f"{stamp()}_locked.sql"
    (mysql_dir / version).write_text("CREATE DATABASE prov_locked;\n")
    monkeypatch.setattr(MySQLSchemas, "LOCK_WAIT", 1)
    with sandbox.connect() as other, other.cursor() as cur:  # another apply, mid-way
        cur.execute("SELECT GET_LOCK('datatier.schema_migrations', 0)")
        assert cur.fetchone() == (1,)
        assert main(["provision", "apply", "--only", "mysql", "--execute"]) == 5
        err = capsys.readouterr().err
        assert "holds the migrations lock" in err and "nothing was changed" in err
        with sandbox.connect() as conn, conn.cursor() as check:
            check.execute("SHOW DATABASES LIKE 'prov_locked'")
            assert check.fetchone() is None
        assert not applied(sandbox, version)
    # the other session ended: its lock is gone and the apply goes through
    assert main(["provision", "apply", "--only", "mysql", "--execute"]) == 0
    assert applied(sandbox, version)


def test_a_migration_that_ran_but_was_not_recorded_says_so(
    use_sandbox_config: SandboxHandle,
    schema_dirs: tuple[Path, Path],
    dropped: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = use_sandbox_config
    mysql_dir, _ = schema_dirs
    dropped.append("DROP DATABASE IF EXISTS prov_unrecorded")
    version = f"{stamp()}_unrecorded.sql"
    (mysql_dir / version).write_text("CREATE DATABASE prov_unrecorded;\n")

    def lost(self: MySQLSchemas, migration: Migration) -> None:
        raise pymysql.err.OperationalError(2013, "Lost connection to server during query")

    monkeypatch.setattr(MySQLSchemas, "_record", lost)
    assert main(["provision", "apply", "--only", "mysql", "--execute"]) == 1
    err = capsys.readouterr().err
    assert f"{version} ran on primary" in err and "is NOT recorded" in err
    assert "Lost connection" in err
    assert "record it with: INSERT INTO `datatier`.`schema_migrations`" in err
    assert f"VALUES ('{version}', '" in err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'prov_unrecorded'")
        assert cur.fetchone() is not None, "the file did run"
    assert not applied(sandbox, version)


def test_mongo_collections_and_indexes_idempotently(
    use_sandbox_config: SandboxHandle,
    schema_dirs: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # FerretDB v1 (the sandbox's MongoDB) implements neither validators nor collMod, so this
    # covers collections and indexes; validators need a real mongod.
    _, mongo_dir = schema_dirs
    db_name = f"prov_{stamp()[-8:]}"
    spec = {"database": db_name, "collection": "users",
            "indexes": [{"name": "email_1", "keys": {"email": 1}, "unique": True},
                        {"keys": {"created": -1}}]}  # fmt: skip
    (mongo_dir / "users.json").write_text(json.dumps(spec))
    client = pymongo.MongoClient[dict[str, Any]](use_sandbox_config.config.mongo.uri)
    try:
        assert main(["provision", "plan", "--only", "mongo"]) == 0
        out = capsys.readouterr().out
        assert f"+ collection {db_name}.users" in out and "index" in out and "3 change(s)" in out
        assert main(["provision", "apply", "--only", "mongo", "--execute"]) == 0
        capsys.readouterr()
        indexes = {ix["name"]: ix for ix in client[db_name]["users"].list_indexes()}
        assert indexes["email_1"]["unique"] is True
        assert dict(indexes["created_-1"]["key"]) == {"created": -1}
        assert main(["provision", "plan", "--only", "mongo"]) == 0
        assert "No changes" in capsys.readouterr().out
        # the same index name with other keys is refused, never dropped
        spec["indexes"][0]["keys"] = {"login": 1}  # type: ignore[index]
        (mongo_dir / "users.json").write_text(json.dumps(spec))
        assert main(["provision", "apply", "--only", "mongo", "--execute"]) == 2
        assert "index email_1" in capsys.readouterr().err
        assert "email_1" in {ix["name"] for ix in client[db_name]["users"].list_indexes()}
    finally:
        client.drop_database(db_name)
        client.close()
