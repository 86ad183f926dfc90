"""Point-in-time restores whose window holds statements sent in a multi-byte character set
whose second bytes can be ASCII (sjis, cp932, gbk, big5), on the sandbox's real MariaDB and
S3 server. The server reads such a character as one, whatever its second byte: sjis `表`
is 0x95 0x5C, so ``'表'`` is a whole string, and `チ` is 0x83 0x60, so ```チ``` a whole
identifier. The binlog scanner once read the 0x5C as a backslash escaping the closing
quote (and the 0x60 as the closing backtick): the names after it were taken for string
text, left unrenamed, and the renamed copy's view read the LIVE database (exit 0).
"""

from __future__ import annotations

import pytest

from datatier.cli import main
from tests.integration.binlog_support import pitr_window, query
from tests.integration.conftest import SandboxHandle

DB, TARGET, POLICY = "tf_mbcs", "tf_mbcs_r", "tf_mbcs"


@pytest.mark.parametrize(
    ("charset", "codec", "char"),
    [("sjis", "shift_jis", "表"), ("gbk", "gbk", "乗"), ("big5", "big5", "許")],
)
def test_a_renamed_view_reads_the_restored_table_after_a_string_ending_in_0x5c(
    charset: str,
    codec: str,
    char: str,
    use_sandbox_config: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``CREATE VIEW v AS SELECT '<char>' AS x, id FROM tf_mbcs.t WHERE 'a' = 'a'`` in
    ``charset`` (``char``'s second byte is 0x5C): under ``--rename`` the view of the copy
    reads the copy's table, not the live one (which gets a row after the target)."""
    assert char.encode(codec)[1:] == b"\\"
    with pitr_window(use_sandbox_config, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {DB}.t VALUES (1)")
        window.backup()
        with window.session() as cur:
            cur.execute(f"SET NAMES {charset}")
            view = f"CREATE VIEW v AS SELECT '{char}' AS x, id FROM {DB}.t WHERE 'a' = 'a'"
            cur.execute(view.encode(codec))
            cur.execute("INSERT INTO t VALUES (2)")
        gtid = window.gtid()
        window.sql(f"INSERT INTO {DB}.t VALUES (3)")  # live, after the target
        window.archive()
        argv = ["restore", "--policy", POLICY, "--until-gtid", gtid]
        code = main([*argv, "--rename", f"{DB}={TARGET}"])
        config = window.config
        assert code == 0
        got = query(config, "primary", f"SELECT x, id FROM {TARGET}.v ORDER BY id")
        assert got == [(char, 1), (char, 2)], "the restored view reads the restored table"
        assert query(config, "primary", f"SELECT id FROM {DB}.v ORDER BY id") == [(1,), (2,), (3,)]


def test_a_renamed_view_reads_the_restored_table_after_an_identifier_ending_in_0x60(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent in sjis, ```チ``` (0x83 0x60) is one identifier: ``tf_mbcs.t`` after it is
    renamed."""
    with pitr_window(use_sandbox_config, POLICY, DB, TARGET, monkeypatch=monkeypatch) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)", f"INSERT INTO {DB}.t VALUES (1)")
        window.backup()
        with window.session() as cur:
            cur.execute("SET NAMES sjis")
            view = f"CREATE VIEW v AS SELECT id AS `チ`, id FROM {DB}.t WHERE `id` > 0"
            cur.execute(view.encode("shift_jis"))
            cur.execute("INSERT INTO t VALUES (2)")
        gtid = window.gtid()
        window.sql(f"INSERT INTO {DB}.t VALUES (3)")  # live, after the target
        window.archive()
        argv = ["restore", "--policy", POLICY, "--until-gtid", gtid]
        code = main([*argv, "--rename", f"{DB}={TARGET}"])
        assert code == 0
        got = query(window.config, "primary", f"SELECT `チ` FROM {TARGET}.v ORDER BY 1")
        assert got == [(1,), (2,)], "the restored view reads the restored table"


def test_a_rename_to_a_name_sjis_cannot_write_is_refused_for_a_multi_byte_statement(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replayed statement would have to spell the new name in sjis, which has no `é`:
    refused (exit 2) before anything is restored."""
    target = "tf_mbcs_é"
    with pitr_window(
        use_sandbox_config, POLICY, DB, f"`{target}`", monkeypatch=monkeypatch
    ) as window:
        window.sql(f"CREATE TABLE {DB}.t (id INT PRIMARY KEY)")
        window.backup()
        with window.session() as cur:
            cur.execute("SET NAMES sjis")
            cur.execute(f"ALTER TABLE {DB}.t ADD COLUMN c VARCHAR(5) DEFAULT '表'".encode("sjis"))
        gtid = window.gtid()
        window.archive()
        argv = ["restore", "--policy", POLICY, "--until-gtid", gtid]
        assert main([*argv, "--rename", f"{DB}={target}"]) == 2
        schemas = query(
            window.config, "primary",
            f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{target}'",
        )  # fmt: skip
        assert schemas == []


JA_DB, JA_POLICY = "tf_mbcs_表", "tf_mbcs_ja"


def test_an_in_place_restore_of_a_database_named_in_sjis_replays_its_sjis_statements(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window's DDL runs in `tf_mbcs_表` from a session in sjis: its replay in place
    names the database in sjis too (``USE`` in UTF-8 bytes, read as sjis, was another name:
    the replay failed after the base loaded, exit 1)."""
    quoted = f"`{JA_DB}`"
    policy = f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{JA_DB}"]\n'
    with pitr_window(
        use_sandbox_config, JA_POLICY, quoted, monkeypatch=monkeypatch, text=policy
    ) as window:
        window.sql(f"CREATE TABLE {quoted}.t (id INT PRIMARY KEY)")
        window.sql(f"INSERT INTO {quoted}.t VALUES (1)")
        window.backup()
        with window.session(quoted) as cur:
            cur.execute("SET NAMES sjis")
            cur.execute("ALTER TABLE t ADD COLUMN c VARCHAR(5) DEFAULT '表'".encode("sjis"))
        gtid = window.gtid()
        window.sql(f"ALTER TABLE {quoted}.t DROP COLUMN c")  # after the target
        window.archive()
        argv = ["restore", "--policy", JA_POLICY, "--until-gtid", gtid, "--force"]
        assert main(argv) == 0
        assert query(window.config, "primary", f"SELECT id, c FROM {quoted}.t") == [(1, "表")]
