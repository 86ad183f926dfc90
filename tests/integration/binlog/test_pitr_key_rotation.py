"""Encryption refusals of a point-in-time restore, as a new user meets them after a key
rotation (tester's regression tests, sandbox's real MariaDB and S3 server).

The base backup and the first binlog segment are encrypted to key A; after the rotation the
next segment is encrypted to key B. Restoring with A's identity alone is rightly refused
(exit 2, nothing changed), but the message said the *backup* is encrypted to B, the one
key it is not encrypted to, and ``keys check`` says A opens that backup. An empty identity
(0-byte) identity file is reported as no identity configured at all ("set
encryption.identity_file"), unlike one holding only comments ("it holds no identity").
Now the segment is named, and an empty identity file is "holds no identity" too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier.backup.encryption import short
from datatier.backup.service import load_policy
from datatier.binlog.archiver import Archiver
from datatier.config import load
from tests.integration.binlog_support import binlog_env, pitr_window, query
from tests.integration.conftest import SandboxHandle
from tests.integration.encryption_support import Key, cli, encryption_env, make_key

DB = "t5rot_db"
TARGET = "t5rot_r"
POLICY = "t5rot"
ENV = binlog_env(POLICY)


@pytest.fixture(scope="module")
def rotated(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, object]]:
    """Backup and segment 1 to key A, segment 2 to key B; the GTID after segment 2."""
    directory = tmp_path_factory.mktemp("t5-keys")
    keys = {name: make_key(directory, name) for name in ("a", "b")}
    env_b = {**ENV, **encryption_env([keys["b"]])}
    with pitr_window(sandbox, POLICY, DB, TARGET, env=encryption_env([keys["a"]])) as window:
        try:
            window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
            backup = window.backup()
            window.sql(f"INSERT INTO {DB}.t VALUES (1)")
            window.archive()
            window.sql(f"INSERT INTO {DB}.t VALUES (2)")
            rotated = load(str(sandbox.config_path), environ=env_b)
            Archiver(rotated, load_policy(rotated, POLICY), node="primary", once=True).run()
            gtid = window.gtid()
            yield {"keys": keys, "gtid": gtid, "backup": backup.backup_id, "dir": directory}
        finally:
            # objects encrypted to keys no other test holds would fail their `keys check`
            window.store.delete([o.key for o in window.store.list_objects(f"{POLICY}/")])
            (sandbox.root / "backups" / f"{POLICY}.toml").unlink(missing_ok=True)


def restore(sandbox: SandboxHandle, rotated: dict[str, object], identity: Path) -> tuple[int, str]:
    keys = rotated["keys"]
    assert isinstance(keys, dict)
    env = {**ENV, **encryption_env([keys["b"]], identity)}
    args = ["--policy", POLICY, "--until-gtid", str(rotated["gtid"]), "--rename", f"{DB}={TARGET}"]
    result = cli(sandbox.config_path, env, "restore", *args)
    assert query(sandbox.config, "primary", f"SHOW DATABASES LIKE '{TARGET}'") == []
    return result.code, result.err


def test_a_segment_no_identity_opens_is_named_not_the_backup(
    sandbox: SandboxHandle, rotated: dict[str, object]
) -> None:
    keys = rotated["keys"]
    assert isinstance(keys, dict)
    a, b = keys["a"], keys["b"]
    assert isinstance(a, Key) and isinstance(b, Key)
    code, err = restore(sandbox, rotated, a.path)
    assert code == 2, err
    wrong = f"backup {rotated['backup']} is encrypted to {short(b.public)}"
    assert wrong not in err, err
    assert "binlog" in err or "segment" in err, err


def test_an_empty_identity_file_is_named_as_empty(
    sandbox: SandboxHandle, rotated: dict[str, object]
) -> None:
    empty = Path(str(rotated["dir"])) / "empty.key"
    empty.write_bytes(b"")  # a file of comments only says "it holds no identity"
    code, err = restore(sandbox, rotated, empty)
    assert code == 2, err
    assert "holds no identity" in err, err
