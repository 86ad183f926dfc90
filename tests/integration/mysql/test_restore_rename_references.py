"""A restore of tables whose CREATE refers to sequences and to other databases: sequence
defaults (NEXT VALUE FOR, PREVIOUS VALUE FOR) and foreign keys across two backed-up
databases with hostile names, restored in place, under ``--rename``, by ``--tables`` picks
and by ``backups verify --restore-test``. Found by hand on a sandbox; each test states the
reproduction. On the sandbox's real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest, ObjectRecord
from datatier.cli import main
from datatier.mysql.connection import endpoint
from datatier.mysql.load import SQLLoader
from datatier.mysql.renamed import rename_references
from datatier.mysql.sqltext import PRELUDE
from datatier.mysql.sqltext import ident as q
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import clear_prefix, default_store, failure_line, loaded_config
from tests.integration.mysql.conftest import back_up

# PARENT sorts before CHILD (a space before an underscore): it is scratch database _0.
PARENT = "integ_rr a.b`c'd"
CHILD = "integ_rr_nextvalé.x"
PARENT2, CHILD2 = "integ_rr P2`.", "integ_rr C2é"
DATABASES = (PARENT, CHILD, PARENT2, CHILD2)
SEQ = "s.q`x"
POLICY = "integ-rr"
NODES = ("primary", "replica1", "replica2")
TABLES = {PARENT: ("parent", "REFERENCES", "tree"), CHILD: ("nextval", "other")}


def drop(sandbox: SandboxHandle, *databases: str) -> None:
    """``databases`` gone from every node (foreign keys between them ignored)."""
    for node in NODES:
        with sandbox.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("SET SESSION foreign_key_checks = 0")
            for db in databases:
                cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")


def show_create(sandbox: SandboxHandle, database: str, table: str) -> str:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SHOW CREATE TABLE {q(database)}.{q(table)}")
        return str(cur.fetchone()[1])


def scratch_left(sandbox: SandboxHandle, manifest: Manifest) -> list[str]:
    stem = "dtv_" + manifest.backup_id.replace("-", "_").lower()
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (stem + "%",))
        return [str(row[0]) for row in cur.fetchall()]


@pytest.fixture(params=[False, True], ids=["own-objects", "bundled"])
def linked(
    use_sandbox_config: SandboxHandle, request: pytest.FixtureRequest
) -> Iterator[tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]]]:
    """PARENT: the sequence SEQ, ``parent`` and ``REFERENCES`` drawing their keys from it
    (the latter with a default string and a comment that spell PARENT's qualifier), and
    ``tree`` with a foreign key to itself. CHILD: ``nextval`` drawing its key from
    PARENT.SEQ (NEXT VALUE and PREVIOUS VALUE FOR) with a foreign key to PARENT.parent, and
    ``other``. Both backed up; yields the manifest and each table's SHOW CREATE TABLE."""
    sandbox = use_sandbox_config
    drop(sandbox, *DATABASES)
    seq = f"{q(PARENT)}.{q(SEQ)}"
    literal = f"`{PARENT.replace('`', '``')}`.".replace("'", "''")
    with sandbox.connect() as conn, conn.cursor() as cur:
        for statement in (
            f"CREATE DATABASE {q(PARENT)}",
            f"CREATE DATABASE {q(CHILD)}",
            f"CREATE SEQUENCE {seq}",
            f"CREATE TABLE {q(PARENT)}.parent (id INT PRIMARY KEY DEFAULT NEXT VALUE FOR {seq})",
            f"CREATE TABLE {q(PARENT)}.`REFERENCES` (id INT PRIMARY KEY DEFAULT NEXT VALUE "
            f"FOR {seq}, note VARCHAR(60) DEFAULT 'nextval({literal}`x`)' "
            f"COMMENT '{literal}')",
            f"CREATE TABLE {q(PARENT)}.tree (id INT PRIMARY KEY, up INT, "
            f"FOREIGN KEY (up) REFERENCES {q(PARENT)}.tree (id))",
            f"CREATE TABLE {q(CHILD)}.`nextval` (id INT PRIMARY KEY DEFAULT NEXT VALUE FOR "
            f"{seq}, p INT, l BIGINT DEFAULT PREVIOUS VALUE FOR {seq}, "
            f"FOREIGN KEY (p) REFERENCES {q(PARENT)}.parent (id))",
            f"CREATE TABLE {q(CHILD)}.other (id INT PRIMARY KEY)",
            f"INSERT INTO {q(PARENT)}.parent () VALUES (), ()",
            f"INSERT INTO {q(PARENT)}.`REFERENCES` () VALUES ()",
            f"INSERT INTO {q(PARENT)}.tree VALUES (1, NULL), (2, 1)",
            f"INSERT INTO {q(CHILD)}.`nextval` (p) VALUES (1), (2)",
            f"INSERT INTO {q(CHILD)}.other VALUES (1)",
        ):
            cur.execute(statement)
    creates = {
        (db, t): show_create(sandbox, db, t) for db, tables in TABLES.items() for t in tables
    }
    policy = f"{POLICY}-{int(request.param)}"
    clear_prefix(default_store(sandbox), policy)
    settings = "" if request.param else "bundle_tables = false\n"
    manifest = back_up(sandbox, policy, [PARENT, CHILD], settings)
    bundled = {(o.database, s.table) for o in manifest.objects for s in o.sections}
    assert ((CHILD, "nextval") in bundled) == request.param
    yield sandbox, manifest, creates
    drop(sandbox, *DATABASES)
    for name in scratch_left(sandbox, manifest):
        drop(sandbox, name)


def test_a_dropped_pair_restores_with_the_same_creates_and_sequence(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
) -> None:
    """Both databases dropped, `restore ID`: every table's SHOW CREATE TABLE is the
    source's, byte for byte (the own-database qualifier the backup strips comes back), and
    the restored defaults draw from the restored sequence. (Where the sequence resumes is
    not checked here: with a backtick in PARENT's name, replica1 never applies the
    sequence's advance, and the backup reads replica1.)"""
    sandbox, manifest, creates = linked
    drop(sandbox, PARENT, CHILD)
    assert main(["restore", manifest.backup_id, "--target", "primary"]) == 0
    for (db, table), create in creates.items():
        assert show_create(sandbox, db, table) == create, (db, table)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT NEXTVAL({q(PARENT)}.{q(SEQ)})")
        drawn = cur.fetchone()[0]
        cur.execute(f"INSERT INTO {q(CHILD)}.`nextval` (p) VALUES (1)")
        cur.execute(f"SELECT id, l FROM {q(CHILD)}.`nextval` WHERE id NOT IN (4, 5)")
        assert cur.fetchall() == ((drawn + 1, drawn + 1),)


def test_renaming_both_follows_each_reference_and_leaves_literals_alone(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
) -> None:
    """`restore ID --rename PARENT=PARENT2 --rename CHILD=CHILD2` (names with backticks,
    dots, quotes, non-ASCII; tables named `nextval` and `REFERENCES`): the copies' CREATEs
    are the source's with PARENT's qualifier replaced in code only (sequence defaults,
    PREVIOUS VALUE FOR, the foreign key), never in the default string or the comment; the
    copies draw from PARENT2's sequence and the live parent is free to lose its rows."""
    sandbox, manifest, creates = linked
    args = ["restore", manifest.backup_id, "--target", "primary"]
    assert main([*args, "--rename", f"{PARENT}={PARENT2}", "--rename", f"{CHILD}={CHILD2}"]) == 0
    old, new = q(PARENT) + ".", q(PARENT2) + "."
    for (db, table), create in creates.items():
        copy = show_create(sandbox, PARENT2 if db == PARENT else CHILD2, table)
        # in a string literal the quote in PARENT's name is doubled: replace() leaves it
        assert copy == create.replace(old, new), (db, table)
    spelled = old.replace("'", "''")
    assert f"'nextval({spelled}`x`)' COMMENT '{spelled}'" in show_create(
        sandbox, PARENT2, "REFERENCES"
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT NEXTVAL({q(PARENT)}.{q(SEQ)})")
        live = cur.fetchone()[0]
        for db in (PARENT, PARENT2):
            cur.execute(f"INSERT INTO {q(db)}.parent VALUES (100)")
        cur.execute(f"INSERT INTO {q(CHILD2)}.`nextval` (p) VALUES (100)")
        cur.execute(f"SELECT NEXTVAL({q(PARENT)}.{q(SEQ)})")
        assert cur.fetchone()[0] == live + 1, "the live sequence was not drawn from"
        cur.execute(f"DELETE FROM {q(PARENT)}.parent WHERE id = 100")  # the live one is free
        cur.execute(f"SELECT COUNT(*) FROM {q(CHILD2)}.`nextval`")
        assert cur.fetchone()[0] == 3


def test_a_pick_without_its_sequence_is_refused_and_with_it_restores(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--tables PARENT.parent --rename PARENT=PARENT2`: exit 2 naming PARENT2's sequence
    and the backup's PARENT.SEQ to add, nothing created; with the sequence picked too it
    restores. `--tables CHILD.nextval --rename CHILD=CHILD2` (PARENT not renamed) draws
    from the live PARENT.SEQ, which the target has: restored, pointing at PARENT."""
    sandbox, manifest, _ = linked
    args = ["restore", manifest.backup_id, "--target", "primary"]
    capsys.readouterr()
    code = main([*args, "--rename", f"{PARENT}={PARENT2}", "--tables", f"{PARENT}.parent"])
    err = capsys.readouterr().err
    assert code == 2, err
    line = failure_line(err)
    assert "draws its DEFAULT from" in line and f"{q(PARENT2)}.{q(SEQ)}" in line
    assert f"add {q(PARENT)}.{q(SEQ)} to --tables" in line
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (PARENT2,))
        assert cur.fetchall() == (), "nothing changed"
    picked = f"{q(PARENT)}.parent,{q(PARENT)}.{q(SEQ)}"
    assert main([*args, "--rename", f"{PARENT}={PARENT2}", "--tables", picked]) == 0
    assert f"nextval({q(SEQ)})" in show_create(sandbox, PARENT2, "parent").replace(
        q(PARENT2) + ".", ""
    )
    assert main([*args, "--rename", f"{CHILD}={CHILD2}", "--tables", f"{CHILD}.nextval"]) == 0
    create = show_create(sandbox, CHILD2, "nextval")
    assert f"nextval({q(PARENT)}.{q(SEQ)})" in create
    assert f"REFERENCES {q(PARENT)}.`parent`" in create


def test_a_restore_test_of_databases_linked_by_a_foreign_key_passes_and_cleans_up(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
) -> None:
    """Reproduction: CHILD.nextval has a FOREIGN KEY to PARENT.parent, PARENT's name sorts
    first; back up both; `backups verify ID --restore-test`. The restore into dtv_ID_0 and
    dtv_ID_1 succeeds (the child's key now points at dtv_ID_0, the renamed parent), then the
    cleanup's DROP DATABASE dtv_ID_0 fails with ERROR 1451 (a foreign key constraint
    fails): exit 1, "unexpected IntegrityError ... rerun with --debug", and both scratch
    databases, full copies of the data, are left on the target. Expected: exit 0, no
    dtv_ID_* database left."""
    sandbox, manifest, _ = linked
    code = main(["backups", "verify", manifest.backup_id, "--restore-test"])
    left = scratch_left(sandbox, manifest)
    assert (code, left) == (0, [])


@pytest.mark.parametrize("pick", ["--tables", "--databases"])
def test_a_rename_of_a_database_outside_the_restore_is_not_silently_dropped(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
    capsys: pytest.CaptureFixture[str],
    pick: str,
) -> None:
    """Reproduction: `restore ID --databases PARENT --rename PARENT=PARENT2` (the parent's
    copy), then `restore ID --rename PARENT=PARENT2 --rename CHILD=CHILD2 --tables
    CHILD.nextval` (or `--databases CHILD`) to add the child's copy next to it. Exit 0, no
    warning, and CHILD2.nextval has `DEFAULT nextval(PARENT.s)` and `FOREIGN KEY ...
    REFERENCES PARENT.parent`: the copy draws its keys from the live sequence and holds the
    live parent's rows, the case e00b90e fixed for both databases restored at once, though
    --rename PARENT=PARENT2 was given. Expected: the references follow the rename (PARENT2
    holds both), or a refusal (exit 2) before anything changes."""
    sandbox, manifest, _ = linked
    args = ["restore", manifest.backup_id, "--target", "primary"]
    assert main([*args, "--databases", PARENT, "--rename", f"{PARENT}={PARENT2}"]) == 0
    both = ["--rename", f"{PARENT}={PARENT2}", "--rename", f"{CHILD}={CHILD2}"]
    chosen = f"{q(CHILD)}.`nextval`" if pick == "--tables" else CHILD
    capsys.readouterr()
    code = main([*args, *both, pick, chosen])
    err = capsys.readouterr().err
    if code == 2:
        assert failure_line(err)
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (CHILD2,))
            assert cur.fetchall() == (), "nothing changed"
        return
    assert code == 0, err
    create = show_create(sandbox, CHILD2, "nextval")
    assert q(PARENT) + "." not in create, create


def test_a_pick_whose_sequence_name_is_a_plain_table_on_the_target_is_refused_up_front(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: the target PARENT2 holds a plain table named SEQ and a table `parent`
    with a row; `restore ID --rename PARENT=PARENT2 --tables PARENT.parent --force`. The
    check (information_schema.TABLES, any type) counts the plain table as the sequence, the
    load drops PARENT2.parent, its CREATE fails "'PARENT2.SEQ' is not a SEQUENCE": exit 1
    and PARENT2.parent is gone. Expected, as for a missing sequence: exit 2 naming it,
    before anything changes (PARENT2.parent keeps its row)."""
    sandbox, manifest, _ = linked
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {q(PARENT2)}")
        cur.execute(f"CREATE TABLE {q(PARENT2)}.{q(SEQ)} (id INT)")
        cur.execute(f"CREATE TABLE {q(PARENT2)}.parent (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO {q(PARENT2)}.parent VALUES (7)")
    argv = ["restore", manifest.backup_id, "--target", "primary", "--force"]
    capsys.readouterr()
    code = main([*argv, "--rename", f"{PARENT}={PARENT2}", "--tables", f"{q(PARENT)}.parent"])
    err = capsys.readouterr().err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                    "ORDER BY 1", (PARENT2,))  # fmt: skip
        kept = [row[0] for row in cur.fetchall()]
    assert (code, kept) == (2, ["parent", SEQ]), failure_line(err)


def test_the_refusal_names_a_held_sequence_of_a_database_not_restored(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: PARENT dropped on the target; `restore ID --rename CHILD=CHILD2
    --tables CHILD.nextval` (its default draws from PARENT.SEQ, which the backup holds).
    Exit 2, nothing changed, as documented, but the hint says only "restore the table where
    its sequence exists"; adding PARENT.SEQ to --tables is what works (it restores the
    sequence into PARENT and the table as CHILD2.nextval, exit 0). Expected: the hint names
    it, as it does for a sequence of a restored database."""
    sandbox, manifest, _ = linked
    drop(sandbox, PARENT)
    args = ["restore", manifest.backup_id, "--target", "primary", "--rename", f"{CHILD}={CHILD2}"]
    capsys.readouterr()
    code = main([*args, "--tables", f"{q(CHILD)}.`nextval`"])
    line = failure_line(capsys.readouterr().err)
    assert code == 2, line
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (CHILD2,))
        assert cur.fetchall() == (), "nothing changed"
    assert main([*args, "--tables", f"{q(CHILD)}.`nextval`,{q(PARENT)}.{q(SEQ)}"]) == 0
    assert f"add {q(PARENT)}.{q(SEQ)} to --tables" in line


SETVAL_DB, SETVAL_COPY = "integ_rr_setval", "integ_rr_setval_copy"


def test_a_pick_whose_default_calls_setval_without_its_sequence_is_refused_up_front(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: CREATE SEQUENCE s; CREATE TABLE t (id INT PRIMARY KEY, a BIGINT
    DEFAULT (SETVAL(s, 5))) (the server keeps `DEFAULT setval(`db`.`s`,5,1,0)` and checks s
    at CREATE TABLE as for NEXT VALUE FOR); back up; `restore ID --rename DB=COPY --tables
    DB.t`. Exit 1 "loading the definition of COPY.t failed: Table 'COPY.s' doesn't exist",
    COPY created and partly loaded. Expected, as for NEXT VALUE FOR: exit 2 naming the
    sequence to add, nothing changed."""
    sandbox = use_sandbox_config
    drop(sandbox, SETVAL_DB, SETVAL_COPY)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {SETVAL_DB}")
        cur.execute(f"USE {SETVAL_DB}")
        cur.execute("CREATE SEQUENCE s")
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, a BIGINT DEFAULT (SETVAL(s, 5)))")
        cur.execute("CREATE TABLE u (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t (id) VALUES (1)")
    try:
        clear_prefix(default_store(sandbox), f"{POLICY}-setval")
        manifest = back_up(sandbox, f"{POLICY}-setval", [SETVAL_DB], "bundle_tables = false\n")
        argv = ["restore", manifest.backup_id, "--target", "primary"]
        capsys.readouterr()
        code = main([*argv, "--rename", f"{SETVAL_DB}={SETVAL_COPY}", "--tables", f"{SETVAL_DB}.t"])
        line = failure_line(capsys.readouterr().err)
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (SETVAL_COPY,))
            created = cur.fetchall()
        assert (code, created) == (2, ()), line
        assert "draws its DEFAULT from" in line and "to --tables" in line
    finally:
        drop(sandbox, SETVAL_DB, SETVAL_COPY)


OLD_SRC, OLD_PARENT = "integ_rr_old_child", "integ_rr_old_parent"
OLD_COPIES = {OLD_SRC: f"{OLD_SRC}_copy", OLD_PARENT: f"{OLD_PARENT}_copy"}


def test_a_schema_object_of_an_older_backup_follows_the_rename(sandbox: SandboxHandle) -> None:
    """Reproduction: a backup written before 12c19da (2026-12-01; so every backup of 0.1.0)
    of OLD_SRC.c (DEFAULT NEXT VALUE FOR OLD_PARENT.s, FOREIGN KEY to OLD_PARENT.p) and
    OLD_PARENT; `restore ID --rename OLD_SRC=..._copy --rename OLD_PARENT=..._copy`. Its
    schema objects are the prelude and plain statements, with the server's qualifiers
    (`nextval(`OLD_PARENT`.`s`)`, also a table's own database). The loader sends such
    objects to the stock client without the rewrite: exit 0, no warning, and the copy draws
    its keys from the live OLD_PARENT.s and holds the live parent's rows (checked here on
    the loader as the restore wires it, with the text such a backup holds; made by hand
    with datatier at 366ad94 the restore gives the same). The CHANGELOG says older backups
    are requalified too. Expected: the copy's CREATE names the copies only."""
    databases = [*OLD_COPIES, *OLD_COPIES.values()]
    drop(sandbox, *databases)
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in databases:
            cur.execute(f"CREATE DATABASE {db}")
        for db in (OLD_PARENT, OLD_COPIES[OLD_PARENT]):
            cur.execute(f"CREATE SEQUENCE {db}.s")
            cur.execute(f"CREATE TABLE {db}.p (id INT PRIMARY KEY)")
    text = (
        PRELUDE
        + (
            "DROP TABLE IF EXISTS `c`;\n"
            "CREATE TABLE `c` (\n"
            f"  `id` int(11) NOT NULL DEFAULT nextval(`{OLD_PARENT}`.`s`),\n"
            "  `p` int(11) DEFAULT NULL,\n"
            "  PRIMARY KEY (`id`),\n"
            "  KEY `p` (`p`),\n"
            f"  CONSTRAINT `c_ibfk_1` FOREIGN KEY (`p`) REFERENCES `{OLD_PARENT}`.`p` (`id`)\n"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
        ).encode()
    )
    record = ObjectRecord(
        f"p/id/data/{OLD_SRC}/tables/c/schema.sql.zst", "schema", 1, "00", len(text),
        "STANDARD", OLD_SRC, "c",
    )  # fmt: skip
    loader = SQLLoader(
        endpoint(loaded_config(sandbox).config.mysql, "primary"),
        lambda _: iter([text]),
        OLD_COPIES.__getitem__,
        rewrite_create=rename_references(OLD_COPIES),
    )
    try:
        loader.load_all([record], ["schema"])
        create = show_create(sandbox, OLD_COPIES[OLD_SRC], "c")
        assert f"`{OLD_PARENT}`." not in create, create
        assert f"nextval(`{OLD_PARENT}_copy`.`s`)" in create
    finally:
        drop(sandbox, *databases)


@pytest.mark.parametrize("bad", ["collision", "too-long"])
def test_a_rename_of_a_database_left_out_is_validated_like_any_other(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
    capsys: pytest.CaptureFixture[str],
    bad: str,
) -> None:
    """Every --rename now reaches the restored CREATE TABLEs, also one of a database the
    restore leaves out. Found by review: `--databases CHILD --rename CHILD=X --rename
    PARENT=X` pointed the copy's foreign key into the copy itself, and `--rename
    PARENT=<65 characters>` failed half-way at the server. Both are refused (exit 2) before
    anything changes."""
    sandbox, manifest, _ = linked
    args = ["restore", manifest.backup_id, "--target", "primary", "--databases", CHILD]
    if bad == "collision":
        args += ["--rename", f"{CHILD}={CHILD2}", "--rename", f"{PARENT}={CHILD2}"]
    else:
        args += ["--rename", f"{CHILD}={CHILD2}", "--rename", f"{PARENT}={'p' * 65}"]
    capsys.readouterr()
    assert main(args) == 2
    assert "--rename" in failure_line(capsys.readouterr().err)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (CHILD2,))
        assert cur.fetchall() == (), "nothing changed"


def test_the_manifest_records_sequences_and_a_dry_run_refuses_a_pick_without_them(
    linked: tuple[SandboxHandle, Manifest, dict[tuple[str, str], str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Recorded at backup time (own database as null, others by name), so the refusal
    comes before anything is fetched: ``--dry-run`` exits 2 with the same message."""
    sandbox, manifest, _ = linked
    recorded = manifest.options["references"]["sequences"]
    assert [PARENT, "parent", [[None, SEQ]]] in recorded, recorded
    assert [CHILD, "nextval", [[PARENT, SEQ]]] in recorded, recorded
    assert not any(entry[1] in ("tree", "other") for entry in recorded), recorded
    capsys.readouterr()
    argv = ["restore", manifest.backup_id, "--target", "primary", "--dry-run"]
    code = main([*argv, "--rename", f"{PARENT}={PARENT2}", "--tables", f"{PARENT}.parent"])
    err = capsys.readouterr().err
    assert code == 2, err
    line = failure_line(err)
    assert "draws its DEFAULT from" in line and f"add {q(PARENT)}.{q(SEQ)} to --tables" in line
    picked = f"{q(PARENT)}.parent,{q(PARENT)}.{q(SEQ)}"
    assert main([*argv, "--rename", f"{PARENT}={PARENT2}", "--tables", picked]) == 0
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (PARENT2,))
        assert cur.fetchall() == (), "a dry run changes nothing"
