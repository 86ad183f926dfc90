"""What a restore gives back besides rows: an event's status and the creation context of a
stored function, for a backup read from a replica as the sandbox's default policy does; and
a ``--tables``/``--databases`` pair that selects nothing. Found by hand on a sandbox; each
test states the reproduction. On the sandbox's real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store, failure_line
from tests.integration.mysql.conftest import back_up

SOURCE, OTHER, COPY = "integ_ctx_src", "integ_ctx_other", "integ_ctx_copy"
POLICY = "integ-ctx"
NODES = ("primary", "replica1", "replica2")
# The function is created by a latin1 client: the byte 0xE9 is its literal's only byte.
FUNCTION = b"CREATE FUNCTION f() RETURNS VARCHAR(20) DETERMINISTIC RETURN HEX(_binary'\xe9')"


def drop_all(sandbox: SandboxHandle) -> None:
    """Every database of this module gone from every node, each on its own."""
    for node in NODES:
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            for db in (SOURCE, OTHER, COPY):
                cur.execute(f"DROP DATABASE IF EXISTS {db}")


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle) -> Iterator[Manifest]:
    """SOURCE (a table, an ENABLED event, a function created under SET NAMES latin1) and
    OTHER (a table), backed up from replica1."""
    drop_all(sandbox)
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (SOURCE, OTHER):
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY)")
            cur.execute(f"INSERT INTO {db}.t VALUES (1), (2)")
        cur.execute(
            f"CREATE EVENT {SOURCE}.nightly ON SCHEDULE EVERY 1 DAY "
            f"STARTS '2030-01-01 00:00:00' ENABLE DO DELETE FROM {SOURCE}.t WHERE id < 0"
        )
        cur.execute(  # disabled on the primary: must not come back enabled
            f"CREATE EVENT {SOURCE}.paused ON SCHEDULE EVERY 1 DAY "
            f"STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM {SOURCE}.t"
        )
        cur.execute(f"USE {SOURCE}")
        cur.execute("SET NAMES latin1")
        conn.query(FUNCTION)  # bytes as they are: the latin1 client's literal
    sandbox.wait_replicated()
    clear_prefix(default_store(sandbox), POLICY)
    yield back_up(sandbox, POLICY, [SOURCE, OTHER])
    drop_all(sandbox)


@pytest.fixture
def restored(use_sandbox_config: SandboxHandle, backup: Manifest) -> Iterator[SandboxHandle]:
    """SOURCE restored as COPY on the primary."""
    sandbox = use_sandbox_config
    args = ["restore", backup.backup_id, "--target", "primary", "--databases", SOURCE]
    assert main([*args, "--rename", f"{SOURCE}={COPY}"]) == 0
    yield sandbox
    for node in NODES:
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP DATABASE IF EXISTS {COPY}")


def test_an_enabled_event_backed_up_from_a_replica_is_restored_enabled(
    restored: SandboxHandle,
) -> None:
    """Reproduction: CREATE EVENT ... ENABLE on the primary; `backup run` of a policy with
    `node = "replica1"`; `restore ID --rename SRC=COPY` into the primary. The source's event
    is ENABLED, the restored one SLAVESIDE_DISABLED (SHOW CREATE EVENT: `DISABLE ON SLAVE`),
    with exit 0 and no warning."""
    with restored.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT EVENT_SCHEMA, STATUS FROM information_schema.EVENTS "
            "WHERE EVENT_SCHEMA IN (%s, %s) AND EVENT_NAME = 'nightly' ORDER BY 1",
            (SOURCE, COPY),
        )
        assert cur.fetchall() == ((COPY, "ENABLED"), (SOURCE, "ENABLED"))
        cur.execute(  # the primary's status, and the definer kept (not the restoring account)
            "SELECT EVENT_NAME, STATUS, DEFINER FROM information_schema.EVENTS "
            "WHERE EVENT_SCHEMA = %s ORDER BY 1",
            (COPY,),
        )
        restored_events = cur.fetchall()
        cur.execute(
            "SELECT EVENT_NAME, STATUS, DEFINER FROM information_schema.EVENTS "
            "WHERE EVENT_SCHEMA = %s ORDER BY 1",
            (SOURCE,),
        )
        assert restored_events == cur.fetchall()
        assert [(name, status) for name, status, _ in restored_events] == [
            ("nightly", "ENABLED"),
            ("paused", "DISABLED"),
        ]


def test_a_function_created_by_a_latin1_client_returns_the_same_after_restore(
    restored: SandboxHandle,
) -> None:
    """Reproduction: SET NAMES latin1; CREATE FUNCTION f() ... RETURN HEX(_binary'<0xE9>');
    back up; restore renamed. The source's f() returns 'E9' and its CHARACTER_SET_CLIENT is
    latin1; the restored f() returns 'C3A9' and says utf8mb4 (exit 0, no warning)."""
    with restored.connect() as conn, conn.cursor() as cur:
        results = {}
        for db in (SOURCE, COPY):
            cur.execute(f"SELECT {db}.f()")
            value = cur.fetchone()[0]
            cur.execute(
                "SELECT CHARACTER_SET_CLIENT FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA = %s AND ROUTINE_NAME = 'f'",
                (db,),
            )
            results[db] = (value, cur.fetchone()[0])
        assert results[SOURCE] == ("E9", "latin1")
        assert results[COPY] == results[SOURCE]


def test_tables_and_databases_that_select_nothing_together_are_refused(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: `restore ID --tables SRC.t --databases OTHER --rename SRC=COPY`. Each
    option names something the backup holds, but no table is in both; the restore prints
    `restored ...: 0 objects ... 0 tables, 0 rows` and exits 0, as `--dry-run` does. The
    README refuses an option that names nothing (exit 2), never a silent no-op."""
    sandbox = use_sandbox_config
    args = ["restore", backup.backup_id, "--target", "primary", "--tables", f"{SOURCE}.t"]
    capsys.readouterr()
    code = main([*args, "--databases", OTHER, "--rename", f"{SOURCE}={COPY}"])
    err = capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'integ_ctx_copy'")
        assert cur.fetchall() == ()
    assert code == 2
    assert failure_line(err)


SEQ_DB, SEQ_COPY = "integ_ctx_seq", "integ_ctx_seq_copy"


@pytest.fixture
def sequence_default_backup(
    use_sandbox_config: SandboxHandle,
) -> Iterator[tuple[SandboxHandle, Manifest]]:
    """SEQ_DB: a sequence ``s`` and a table whose key defaults to ``NEXT VALUE FOR s``
    (written unqualified; SHOW CREATE TABLE gives ``nextval(`SEQ_DB`.`s`)``), backed up."""
    sandbox = use_sandbox_config

    def drop() -> None:
        for node in NODES:
            with sandbox.connect(node) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                for db in (SEQ_DB, SEQ_COPY):
                    cur.execute(f"DROP DATABASE IF EXISTS {db}")

    drop()
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {SEQ_DB}")
        cur.execute(f"USE {SEQ_DB}")
        cur.execute("CREATE SEQUENCE s")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY DEFAULT NEXT VALUE FOR s, v INT)")
        cur.execute("INSERT INTO t (v) VALUES (1), (2)")
    clear_prefix(default_store(sandbox), f"{POLICY}-seq")
    yield sandbox, back_up(sandbox, f"{POLICY}-seq", [SEQ_DB])
    drop()


def test_a_renamed_table_draws_its_default_from_the_renamed_sequence(
    sequence_default_backup: tuple[SandboxHandle, Manifest],
) -> None:
    """Reproduction: CREATE SEQUENCE s; CREATE TABLE t (id INT PRIMARY KEY DEFAULT NEXT VALUE
    FOR s, v INT) in SRC; back up; `restore ID --rename SRC=COPY` (exit 0, no warning).
    COPY.t's default is still nextval(`SRC`.`s`): an INSERT into the copy advances the
    original's sequence and COPY.s is never used (and on a target without SRC the table
    cannot be created at all)."""
    sandbox, manifest = sequence_default_backup
    args = ["restore", manifest.backup_id, "--target", "primary"]
    assert main([*args, "--rename", f"{SEQ_DB}={SEQ_COPY}"]) == 0
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT NEXTVAL({SEQ_DB}.s)")
        before = cur.fetchone()[0]
        cur.execute(f"INSERT INTO {SEQ_COPY}.t (v) VALUES (3)")
        cur.execute(f"SELECT NEXTVAL({SEQ_DB}.s)")
        assert cur.fetchone()[0] == before + 1  # the original's sequence was left alone
        cur.execute(f"SHOW CREATE TABLE {SEQ_COPY}.t")
        assert f"`{SEQ_DB}`" not in cur.fetchone()[1]


SEQ_FIRST = "integ_ctx_seq_first"


@pytest.mark.parametrize("bundled", [False, True], ids=["own-objects", "bundled"])
def test_a_dropped_database_whose_tables_draw_from_a_sequence_restores(
    use_sandbox_config: SandboxHandle, bundled: bool
) -> None:
    """Reproduction: CREATE SEQUENCE zs; CREATE TABLE a (id INT PRIMARY KEY DEFAULT NEXT VALUE
    FOR zs, v INT) and an empty b drawing from it too; back up; DROP DATABASE; restore ID (the
    3 a.m. case). Exit 1: "loading the definition of `db`.`a` failed: Table 'db.zs' doesn't
    exist": the server checks a sequence default at CREATE TABLE, and the schema objects
    loaded in any order, so the table came before its sequence and the backup could not be
    restored. The restore creates sequences first; the tables then draw from the restored
    sequence, which goes on past what it had handed out or cached."""
    sandbox = use_sandbox_config

    def drop() -> None:
        for node in NODES:
            with sandbox.connect(node) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute(f"DROP DATABASE IF EXISTS {SEQ_FIRST}")

    drop()
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {SEQ_FIRST}")
        cur.execute(f"USE {SEQ_FIRST}")
        cur.execute("CREATE SEQUENCE zs")
        for table in ("a", "b"):
            cur.execute(
                f"CREATE TABLE {table} (id INT PRIMARY KEY DEFAULT NEXT VALUE FOR zs, v INT)"
            )
        cur.execute("INSERT INTO a (v) VALUES (1), (2)")
    policy = f"{POLICY}-seq-first-{int(bundled)}"
    clear_prefix(default_store(sandbox), policy)
    settings = "" if bundled else "bundle_tables = false\n"
    manifest = back_up(sandbox, policy, [SEQ_FIRST], settings)
    try:
        drop()
        assert main(["restore", manifest.backup_id, "--target", "primary"]) == 0
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"USE {SEQ_FIRST}")
            cur.execute("INSERT INTO a (v) VALUES (3)")
            cur.execute("INSERT INTO b (v) VALUES (4)")
            cur.execute("SELECT id, v FROM a UNION ALL SELECT id, v FROM b ORDER BY id")
            rows = cur.fetchall()
            # the sequence goes on past the values it had cached (as mariadb-dump's SETVAL)
            assert rows[:2] == ((1, 1), (2, 2))
            assert [v for _, v in rows[2:]] == [3, 4]
            assert rows[2][0] > 2 and rows[3][0] == rows[2][0] + 1
    finally:
        drop()


FK_CHILD, FK_PARENT = "integ_ctx_fk_child", "integ_ctx_fk_parent"
FK_DBS = (FK_CHILD, FK_PARENT, f"{FK_CHILD}_copy", f"{FK_PARENT}_copy")


@pytest.fixture(params=[False, True], ids=["own-objects", "bundled"])
def cross_database_backup(
    use_sandbox_config: SandboxHandle, request: pytest.FixtureRequest
) -> Iterator[tuple[SandboxHandle, Manifest]]:
    """FK_CHILD.child with a foreign key to FK_PARENT.parent and a column drawing from the
    sequence FK_PARENT.ids, both databases backed up (``bundled``: with a second small
    table, so the child's CREATE is in a bundle)."""
    sandbox = use_sandbox_config

    def drop() -> None:
        for node in NODES:
            with sandbox.connect(node) as conn, conn.cursor() as cur:
                cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute("SET SESSION foreign_key_checks = 0")
                for db in FK_DBS:
                    cur.execute(f"DROP DATABASE IF EXISTS {db}")

    drop()
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {FK_PARENT}")
        cur.execute(f"CREATE DATABASE {FK_CHILD}")
        cur.execute(f"CREATE TABLE {FK_PARENT}.parent (id INT PRIMARY KEY)")
        cur.execute(f"CREATE SEQUENCE {FK_PARENT}.ids")
        cur.execute(
            f"CREATE TABLE {FK_CHILD}.child (id INT PRIMARY KEY, p INT, "
            f"n INT DEFAULT NEXT VALUE FOR {FK_PARENT}.ids, "
            f"FOREIGN KEY (p) REFERENCES {FK_PARENT}.parent (id))"
        )
        cur.execute(f"INSERT INTO {FK_PARENT}.parent VALUES (1)")
        cur.execute(f"INSERT INTO {FK_CHILD}.child (id, p) VALUES (1, 1)")
        if request.param:
            cur.execute(f"CREATE TABLE {FK_CHILD}.extra (id INT PRIMARY KEY)")
            cur.execute(f"INSERT INTO {FK_CHILD}.extra VALUES (1)")
    policy = f"{POLICY}-fk-{int(request.param)}"
    clear_prefix(default_store(sandbox), policy)
    manifest = back_up(sandbox, policy, [FK_CHILD, FK_PARENT])
    bundled = {(o.database, s.table) for o in manifest.objects for s in o.sections}
    assert ((FK_CHILD, "child") in bundled) == request.param
    yield sandbox, manifest
    drop()


def test_a_foreign_key_between_two_renamed_databases_follows_the_rename(
    cross_database_backup: tuple[SandboxHandle, Manifest],
) -> None:
    """Reproduction: CHILD.child REFERENCES PARENT.parent; back up both; `restore ID --rename
    CHILD=CHILD_copy --rename PARENT=PARENT_copy` (exit 0, no warning). CHILD_copy.child
    still REFERENCES `PARENT`.`parent`: a row inserted in the copy needs the live parent,
    and the live parent row can no longer be deleted (ERROR 1451 naming the copy)."""
    sandbox, manifest = cross_database_backup
    args = ["restore", manifest.backup_id, "--target", "primary"]
    args += ["--rename", f"{FK_CHILD}={FK_CHILD}_copy", "--rename", f"{FK_PARENT}={FK_PARENT}_copy"]
    assert main(args) == 0
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {FK_CHILD}_copy.child")
        create = cur.fetchone()[1]
        assert f"`{FK_PARENT}_copy`.`parent`" in create
        assert f"nextval(`{FK_PARENT}_copy`.`ids`)" in create
        assert f"`{FK_PARENT}`." not in create
        cur.execute(f"INSERT INTO {FK_PARENT}.parent VALUES (5)")
        cur.execute(f"INSERT INTO {FK_PARENT}_copy.parent VALUES (5)")
        cur.execute(f"INSERT INTO {FK_CHILD}_copy.child (id, p) VALUES (5, 5)")
        cur.execute(f"DELETE FROM {FK_PARENT}.parent WHERE id = 5")  # the live one is free
