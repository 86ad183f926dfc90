"""Schema spec files and diffs (no server: the appliers run against real servers in
tests/integration/test_provision_schemas.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from datatier.config import MongoSettings, MySQLNode, MySQLSettings
from datatier.errors import ConfigError, IntegrityFailure, UsageError
from datatier.provision.schema_mongo import MongoSchemas, mongo_specs
from datatier.provision.schema_mysql import MySQLSchemas, mysql_migrations

ROOT = Path(__file__).resolve().parents[3]


def test_repository_schema_files_are_valid() -> None:
    versions = [m.version for m in mysql_migrations(ROOT / "schemas" / "mysql")]
    assert versions[:1] == ["001_heartbeat.sql"]
    assert {s.namespace for s in mongo_specs(ROOT / "schemas" / "mongo")} == {
        "app.users",
        "app.sessions",
    }


def test_mongo_spec_errors_name_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"database": "app"}))
    with pytest.raises(ConfigError, match=r"a.json: collection: missing required value"):
        mongo_specs(tmp_path)
    (tmp_path / "a.json").write_text(
        json.dumps({"database": "d", "collection": "c", "indexes": [{"name": "x"}]})
    )
    with pytest.raises(ConfigError, match=r"a.json: indexes\[0\]"):
        mongo_specs(tmp_path)


def test_mongo_diff_validator_ttl_and_conflicting_index(tmp_path: Path) -> None:
    validator = {"$jsonSchema": {"bsonType": "object", "required": ["email"]}}
    (tmp_path / "u.json").write_text(
        json.dumps(
            {"database": "d", "collection": "u", "validator": validator,
             "indexes": [{"name": "ttl", "keys": {"at": 1}, "expireAfterSeconds": 0}]}
        )
    )  # fmt: skip
    schemas = MongoSchemas(MongoSettings(), mongo_specs(tmp_path))
    observed: dict[str, Any] = {"d.u": {"exists": True, "validator": None, "indexes": {}}}
    changes = schemas.diff(observed)
    assert [c.item for c in changes] == ["validator d.u", "index d.u.ttl"]
    assert changes[1].after == {"keys": {"at": 1}, "expireAfterSeconds": 0}  # 0 is kept
    observed = {"d.u": {"exists": True, "validator": validator,
                        "indexes": {"ttl": {"keys": {"at": -1}}}}}  # fmt: skip
    with pytest.raises(UsageError, match=r"index ttl on d\.u exists with"):
        schemas.diff(observed)


def test_mysql_diff_refuses_changed_and_out_of_order_files(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "002_b.sql").write_text("SELECT 2;\n")
    settings = MySQLSettings(nodes={"p": MySQLNode(role="primary")})
    schemas = MySQLSchemas(settings, mysql_migrations(tmp_path))
    sums = {m.version: m.checksum for m in schemas.migrations}
    assert [c.item for c in schemas.diff({"applied": {}})] == [
        "migration 001_a.sql",
        "migration 002_b.sql",
    ]
    assert schemas.diff({"applied": sums}) == []
    with pytest.raises(IntegrityFailure, match=r"001_a\.sql changed after it was applied"):
        schemas.diff({"applied": {**sums, "001_a.sql": "0" * 64}})
    with pytest.raises(UsageError, match=r"001_a\.sql is pending but 002_b\.sql is already"):
        schemas.diff({"applied": {"002_b.sql": sums["002_b.sql"]}})
    with pytest.raises(ConfigError, match="role = primary"):
        MySQLSchemas(MySQLSettings(), [])
