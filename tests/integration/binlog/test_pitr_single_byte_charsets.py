"""Point-in-time restores of a database whose name is not ASCII, whose window holds
statements sent in a single-byte character set (latin1, cp1251) or an EUC one (euckr,
ujis), on the sandbox's real MariaDB and S3 server. The server reads such a statement in
its client character set: `tf_café` sent in latin1 is the bytes ``74 66 5f 63 61 66 e9``.
The binlog scanner once read a statement without a 0xA0 byte as UTF-8, so that name
matched no restored database and was left unrenamed: the renamed copy's view read the
LIVE table (exit 0); and it wrote the replay's ``USE`` in UTF-8 bytes, another name in
latin1.
"""

from __future__ import annotations

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

TARGET = "tf_sbcs_r"


def _policy(database: str) -> str:
    return f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{database}"]\n'


@pytest.mark.parametrize(
    ("charset", "codec", "database"),
    [
        ("latin1", "latin1", "tf_café"),
        ("cp1251", "cp1251", "tf_sbcs_бд"),
        ("euckr", "euc_kr", "tf_sbcs_한"),
        ("ujis", "euc_jp", "tf_sbcs_表"),
    ],
)
def test_a_renamed_view_of_a_database_named_in_a_single_byte_charset_reads_the_copy(
    charset: str,
    codec: str,
    database: str,
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``CREATE VIEW v AS SELECT id FROM <database>.t`` sent in ``charset``: under
    ``--rename <database>=tf_sbcs_r`` the copy's view reads the copy's table, not the live
    one (which gets a row after the target)."""
    policy, quoted = f"tf_sbcs_{charset}", f"`{database}`"
    with pitr_window(
        use_sandbox_config, policy, quoted, TARGET, monkeypatch=monkeypatch,
        text=_policy(database),
    ) as window:  # fmt: skip
        window.sql(f"CREATE TABLE {quoted}.t (id INT PRIMARY KEY)")
        window.sql(f"INSERT INTO {quoted}.t VALUES (1)")
        window.backup()
        with window.session(quoted) as cur:
            cur.execute(f"SET NAMES {charset}")
            cur.execute(f"CREATE VIEW v AS SELECT id FROM {database}.t".encode(codec))
            cur.execute("INSERT INTO t VALUES (2)")
        gtid = window.gtid()
        window.sql(f"INSERT INTO {quoted}.t VALUES (3)")  # live, after the target
        window.archive()
        argv = ["restore", "--policy", policy, "--until-gtid", gtid]
        code = main([*argv, "--rename", f"{database}={TARGET}"])
        config = window.config
        assert code == 0
        got = query(config, "primary", f"SELECT id FROM {TARGET}.v ORDER BY id")
        assert got == [(1,), (2,)], "the restored view reads the restored table"
        assert query(config, "primary", f"SELECT id FROM {quoted}.v ORDER BY id") == [
            (1,), (2,), (3,),
        ]  # fmt: skip


def test_an_in_place_restore_of_a_database_named_in_latin1_replays_its_latin1_statements(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window's DDL runs in `tf_café` from a session in latin1, one statement naming
    it: the replay in place names the database in latin1 too."""
    database, policy = "tf_café", "tf_sbcs_inplace"
    quoted = f"`{database}`"
    with pitr_window(
        use_sandbox_config, policy, quoted, monkeypatch=monkeypatch, text=_policy(database)
    ) as window:
        window.sql(f"CREATE TABLE {quoted}.t (id INT PRIMARY KEY)")
        window.sql(f"INSERT INTO {quoted}.t VALUES (1)")
        window.backup()
        with window.session(quoted) as cur:
            cur.execute("SET NAMES latin1")
            cur.execute("ALTER TABLE t ADD COLUMN c VARCHAR(5) DEFAULT 'é'".encode("latin1"))
            cur.execute(f"CREATE VIEW v AS SELECT id, c FROM {database}.t".encode("latin1"))
        gtid = window.gtid()
        window.sql(f"DROP VIEW {quoted}.v", f"ALTER TABLE {quoted}.t DROP COLUMN c")  # after it
        window.archive()
        argv = ["restore", "--policy", policy, "--until-gtid", gtid, "--force"]
        assert main(argv) == 0
        assert query(window.config, "primary", f"SELECT id, c FROM {quoted}.v") == [(1, "é")]


def test_a_rename_to_a_name_latin1_cannot_write_is_refused_before_anything_changes(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A latin1 statement of the window names the database: renaming it to `tf_sbcs_表`
    would have to write that name in latin1, which has no `表`: refused (exit 2) before
    anything is restored."""
    database, policy, target = "tf_café", "tf_sbcs_refused", "tf_sbcs_表"
    quoted = f"`{database}`"
    with pitr_window(
        use_sandbox_config, policy, quoted, f"`{target}`", monkeypatch=monkeypatch,
        text=_policy(database),
    ) as window:  # fmt: skip
        window.sql(f"CREATE TABLE {quoted}.t (id INT PRIMARY KEY)")
        window.backup()
        with window.session(quoted) as cur:
            cur.execute("SET NAMES latin1")
            cur.execute(f"CREATE VIEW v AS SELECT id FROM {database}.t".encode("latin1"))
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", policy, "--until-gtid", gtid]
        assert main([*argv, "--rename", f"{database}={target}"]) == 2
        schemas = query(
            window.config, "primary",
            f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{target}'",
        )  # fmt: skip
        assert schemas == []
