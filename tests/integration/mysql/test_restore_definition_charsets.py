"""Definitions come back in the character set their creator's client used: the bytes of
``_binary'...'`` literals, non-ASCII names, utf8mb4 names and bodies, and bodies holding
bytes that are not UTF-8. Backed up from replica1, restored renamed (by datatier and by the
stock client as the README shows), on the sandbox's real servers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from datatier.backup.manifest import Manifest
from datatier.backup.restore import find_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store
from tests.integration.mysql.conftest import back_up

SOURCE, COPY, BY_HAND = "integ_cs_src", "integ_cs_copy", "integ_cs_hand"
POLICY = "integ-cs"
NODES = ("primary", "replica1", "replica2")
LATIN1 = (  # sent by a latin1 client: 0xE9 is one byte, "é" in names too
    b"CREATE TRIGGER `tr\xe9` BEFORE INSERT ON t FOR EACH ROW SET NEW.s = HEX(_binary'\xe9')",
    b"CREATE VIEW `v\xe9` AS SELECT HEX(_binary'\xe9') AS `h\xe9`, COUNT(*) AS n FROM t",
    b"CREATE EVENT `e\xe9` ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE "
    b"DO INSERT INTO t VALUES (100, HEX(_binary'\xe9'))",
    b"CREATE FUNCTION `l\xe9`() RETURNS VARCHAR(20) DETERMINISTIC "
    b"RETURN CONCAT(HEX(_binary'\xe9'), HEX(_latin1'\xe9'))",
)
UTF8MB4 = (  # identifiers hold no 4-byte characters: the emoji is in the body
    "CREATE FUNCTION `数据`() RETURNS VARCHAR(40) DETERMINISTIC "
    "RETURN CONCAT('数据😀', HEX(_binary'😀'))".encode(),
    # not UTF-8: the server keeps a _binary literal's bytes whatever the client's charset
    b"CREATE FUNCTION g() RETURNS VARCHAR(20) DETERMINISTIC RETURN HEX(_binary'\xff\xfe')",
)
CALLS = {  # function -> what it returns on the source
    "lé": "E9E9",
    "数据": "数据😀F09F9880",
    "g": "FFFE",
}


def drop_all(sandbox: SandboxHandle) -> None:
    for node in NODES:
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            for db in (SOURCE, COPY, BY_HAND):
                cur.execute(f"DROP DATABASE IF EXISTS {db}")


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle) -> Iterator[Manifest]:
    drop_all(sandbox)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {SOURCE} CHARACTER SET utf8mb4")
        cur.execute(f"USE {SOURCE}")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20))")
        cur.execute("INSERT INTO t VALUES (1, 'one')")
        cur.execute("SET NAMES latin1")
        for statement in LATIN1:
            conn.query(statement)
        cur.execute("SET NAMES utf8mb4")
        for statement in UTF8MB4:
            conn.query(statement)
    clear_prefix(default_store(sandbox), POLICY)
    yield back_up(sandbox, POLICY, [SOURCE])
    drop_all(sandbox)


@pytest.fixture(scope="module")
def restored(sandbox: SandboxHandle, backup: Manifest) -> SandboxHandle:
    """SOURCE restored as COPY on the primary by datatier."""
    config = str(sandbox.config_path)
    args = ["--config", config, "restore", backup.backup_id, "--target", "primary"]
    assert main([*args, "--rename", f"{SOURCE}={COPY}"]) == 0
    return sandbox


def contexts(sandbox: SandboxHandle, db: str) -> dict[str, tuple[bytes, bytes]]:
    """Per definition (kind and name), its CHARACTER_SET_CLIENT and definition text, as
    the server keeps their bytes."""
    queries = {
        "routine": "SELECT ROUTINE_NAME, CHARACTER_SET_CLIENT, ROUTINE_DEFINITION "
        "FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
        "trigger": "SELECT TRIGGER_NAME, CHARACTER_SET_CLIENT, ACTION_STATEMENT "
        "FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s",
        "event": "SELECT EVENT_NAME, CHARACTER_SET_CLIENT, EVENT_DEFINITION "
        "FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s",
        "view": "SELECT TABLE_NAME, CHARACTER_SET_CLIENT, '' "
        "FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s",
    }
    found = {}
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION character_set_results = binary")
        for kind, sql in queries.items():
            cur.execute(sql, (db,))
            for name, charset, text in cur.fetchall():
                key = f"{kind} {name.decode()}"
                found[key] = (charset, bytes(text).replace(db.encode(), b"DB"))
    return found


def behaviour(sandbox: SandboxHandle, db: str) -> dict[str, object]:
    """What each function returns, what the view shows and what the trigger stores."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        seen: dict[str, object] = {}
        for function in CALLS:
            cur.execute(f"SELECT {db}.`{function}`()")
            seen[function] = cur.fetchone()[0]
        cur.execute(f"SELECT * FROM {db}.`vé`")
        seen["view"] = cur.fetchall()
        cur.execute(f"INSERT INTO {db}.t (id) VALUES (2)")
        cur.execute(f"SELECT s FROM {db}.t WHERE id = 2")
        seen["trigger"] = cur.fetchone()[0]
        cur.execute(f"DELETE FROM {db}.t WHERE id = 2")
    return seen


def test_the_source_is_what_the_tests_expect(sandbox: SandboxHandle, backup: Manifest) -> None:
    seen = behaviour(sandbox, SOURCE)
    assert seen == {**CALLS, "view": (("E9", 1),), "trigger": "E9"}
    charsets = {k: v[0].decode() for k, v in contexts(sandbox, SOURCE).items()}
    assert charsets == {
        "routine lé": "latin1",
        "routine 数据": "utf8mb4",
        "routine g": "utf8mb4",
        "trigger tré": "latin1",
        "event eé": "latin1",
        "view vé": "latin1",
    }


def test_restored_definitions_behave_and_read_as_the_source(restored: SandboxHandle) -> None:
    """Reproduction (before the fix): the latin1 trigger, view and function returned
    'C3A9' where the source's return 'E9', and said utf8mb4; a routine holding bytes that
    are not UTF-8 stopped the backup (UnicodeDecodeError reading SHOW CREATE)."""
    assert behaviour(restored, COPY) == behaviour(restored, SOURCE)
    assert contexts(restored, COPY) == contexts(restored, SOURCE)


def test_the_stock_client_loads_the_objects_as_the_readme_shows(
    sandbox: SandboxHandle, backup: Manifest, tmp_path: Path
) -> None:
    """`zstd -dc OBJECT | mariadb --binary-mode --comments DB`, object by object."""
    loaded = load(str(sandbox.config_path), environ={})
    _, store = find_backup(loaded, backup.backup_id)
    cfg = loaded.config.mysql
    node = cfg.nodes["primary"]
    cnf = tmp_path / "client.cnf"
    cnf.write_text(
        f"[client]\nhost={node.host}\nport={node.port}\nuser={cfg.user}\n"
        f"password={cfg.password.reveal()}\n"
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {BY_HAND}")
    order = ["schema", "bundle", "data", "triggers", "routines", "events", "viewstubs", "views"]
    for kind in order:
        for obj in (o for o in backup.objects if o.kind == kind and o.database == SOURCE):
            text = (
                zstandard.ZstdDecompressor()
                .decompressobj()
                .decompress(b"".join(store.iter_read(obj.key)))
            )
            subprocess.run(
                ["mariadb", f"--defaults-file={cnf}", "--binary-mode", "--comments", BY_HAND],
                input=text,
                capture_output=True,
                check=True,
            )
    assert behaviour(sandbox, BY_HAND) == behaviour(sandbox, SOURCE)
    assert contexts(sandbox, BY_HAND) == contexts(sandbox, SOURCE)


def test_a_view_its_charset_cannot_hold_as_it_is_falls_back_to_utf8mb4_with_a_warning(
    use_sandbox_config: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """An sjis character may end in a backslash byte (0x83 0x5C, "ソ"): the view's own
    database qualifiers cannot be found in its bytes without an sjis lexer, so the view is
    written as before (utf8mb4, its characters kept), and the backup says so."""
    sandbox = use_sandbox_config
    src, copy = "integ_cs_sjis", "integ_cs_sjis_copy"
    for node in NODES:
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP DATABASE IF EXISTS {src}")
            cur.execute(f"DROP DATABASE IF EXISTS {copy}")
    try:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {src}")
            cur.execute(f"USE {src}")
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            cur.execute("SET NAMES sjis")
            conn.query(b"CREATE VIEW vs AS SELECT HEX('\x83\x5c') AS h, COUNT(*) AS n FROM t")
        clear_prefix(default_store(sandbox), "integ-cs-sjis")
        with caplog.at_level("WARNING", logger="datatier"):
            manifest = back_up(sandbox, "integ-cs-sjis", [src])
        warned = [r for r in caplog.records if r.getMessage() == "backup.definition_charset"]
        assert [r.fields["object"] for r in warned] == [f"view {src}.vs"]  # type: ignore[attr-defined]
        args = ["restore", manifest.backup_id, "--target", "primary"]
        assert main([*args, "--rename", f"{src}={copy}"]) == 0
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {copy}.vs")
            assert cur.fetchall() == (("835C", 0),)
            cur.execute(
                "SELECT CHARACTER_SET_CLIENT FROM information_schema.VIEWS WHERE TABLE_SCHEMA=%s",
                (copy,),
            )
            assert cur.fetchall() == (("utf8mb4",),)
    finally:
        for node in NODES:
            with sandbox.connect(node) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute(f"DROP DATABASE IF EXISTS {src}")
                cur.execute(f"DROP DATABASE IF EXISTS {copy}")
