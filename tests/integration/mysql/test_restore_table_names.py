"""``restore --tables``/``--databases`` with names holding dots and commas, on the real
sandbox: a backup holding both `a`.`b.c` and `a.b`.`c` restores exactly the one a
backtick-quoted entry names; the unquoted ``a.b.c`` (it fits both) is refused (exit 2)
and changes nothing (it used to restore both, replacing a table nobody asked for); a
table and a database with a comma in their names can be named."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle
from tests.integration.mysql.conftest import back_up

PREFIX = "tn_names"
DB_A = f"{PREFIX}_a"  # holds `b.c`
DB_AB = f"{DB_A}.b"  # holds `c`: `{DB_A}.b.c` names either
DB_COMMA = f"{PREFIX}_c,d"  # holds `e,f`
DB_EQ = f"{PREFIX}_e=q`"  # holds `t`: --rename needs it quoted
COPY_A, COPY_AB, COPY_COMMA = (f"{PREFIX}_copy_{n}" for n in ("a", "ab", "comma"))
COPY_EQ = f"{PREFIX}_copy_e=q"
VIEW = "v.w,"  # in DB_COMMA, over `e,f`
DATABASES = (DB_A, DB_AB, DB_COMMA, DB_EQ)
COPIES = (COPY_A, COPY_AB, COPY_COMMA, COPY_EQ)


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def rows(sandbox: SandboxHandle, database: str, table: str) -> list[tuple[int, str]] | None:
    """The rows of ``database``.``table``, None when it does not exist."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
            (database, table),
        )
        if cur.fetchone()[0] == 0:
            return None
        cur.execute(f"SELECT id, v FROM {q(database)}.{q(table)} ORDER BY id")
        return [(int(i), str(v)) for i, v in cur.fetchall()]


def execute(sandbox: SandboxHandle, *statements: str) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    sandbox.wait_replicated()


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle) -> Iterator[Manifest]:
    execute(sandbox, *(f"DROP DATABASE IF EXISTS {q(db)}" for db in (*DATABASES, *COPIES)))
    for db, table in ((DB_A, "b.c"), (DB_AB, "c"), (DB_COMMA, "e,f"), (DB_EQ, "t")):
        execute(
            sandbox,
            f"CREATE DATABASE {q(db)}",
            f"CREATE TABLE {q(db)}.{q(table)} (id INT PRIMARY KEY, v VARCHAR(40))",
            f"INSERT INTO {q(db)}.{q(table)} VALUES (1, '{db}.{table}')",
        )
    execute(
        sandbox, f"CREATE VIEW {q(DB_COMMA)}.{q(VIEW)} AS SELECT id, v FROM {q(DB_COMMA)}.`e,f`"
    )
    yield back_up(sandbox, "table_names", DATABASES, "jobs = 2\n")
    execute(sandbox, *(f"DROP DATABASE IF EXISTS {q(db)}" for db in (*DATABASES, *COPIES)))


@pytest.fixture
def clean(use_sandbox_config: SandboxHandle, backup: Manifest) -> Iterator[SandboxHandle]:
    """No copies before the test; the sources as backed up after it."""
    sandbox = use_sandbox_config
    execute(sandbox, *(f"DROP DATABASE IF EXISTS {q(db)}" for db in COPIES))
    yield sandbox
    execute(
        sandbox,
        f"DELETE FROM {q(DB_A)}.`b.c` WHERE id <> 1",
        f"DELETE FROM {q(DB_AB)}.`c` WHERE id <> 1",
    )


def test_a_quoted_entry_restores_exactly_the_table_it_names(
    clean: SandboxHandle, backup: Manifest
) -> None:
    sandbox = clean
    argv = ["restore", backup.backup_id, "--rename", f"{DB_A}={COPY_A}"]
    argv += ["--rename", f"{DB_AB}={COPY_AB}", "--tables", f"{q(DB_A)}.`b.c`"]
    assert main(argv) == 0
    assert rows(sandbox, COPY_A, "b.c") == [(1, f"{DB_A}.b.c")]
    assert rows(sandbox, COPY_AB, "c") is None, "the other `a.b.c` was not asked for"

    argv[-1] = f"{q(DB_AB)}.c"  # quoting one part is enough
    assert main(argv) == 0
    assert rows(sandbox, COPY_AB, "c") == [(1, f"{DB_AB}.c")]


def test_a_quoted_entry_with_force_leaves_the_other_table_alone(
    clean: SandboxHandle, backup: Manifest
) -> None:
    sandbox = clean
    execute(
        sandbox,
        f"INSERT INTO {q(DB_A)}.`b.c` VALUES (2, 'written after the backup')",
        f"INSERT INTO {q(DB_AB)}.`c` VALUES (2, 'written after the backup')",
    )
    argv = ["restore", backup.backup_id, "--force", "--tables", f"`{DB_AB}`.`c`"]
    assert main(argv) == 0
    assert rows(sandbox, DB_AB, "c") == [(1, f"{DB_AB}.c")], "restored as backed up"
    assert rows(sandbox, DB_A, "b.c") == [(1, f"{DB_A}.b.c"), (2, "written after the backup")]


def test_an_ambiguous_unquoted_entry_is_refused_and_changes_nothing(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: ``--tables a.b.c`` restored both `a`.`b.c` and `a.b`.`c` (exit 0),
    replacing a table the user did not name with its backed-up rows."""
    sandbox = clean
    execute(
        sandbox,
        f"INSERT INTO {q(DB_A)}.`b.c` VALUES (2, 'written after the backup')",
        f"INSERT INTO {q(DB_AB)}.`c` VALUES (2, 'written after the backup')",
    )
    argv = ["restore", backup.backup_id, "--force", "--tables", f"{DB_A}.b.c"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"`{DB_A}`.`b.c`" in err and f"`{DB_AB}`.`c`" in err, err
    assert "backtick" in err, err
    assert rows(sandbox, DB_A, "b.c") == [(1, f"{DB_A}.b.c"), (2, "written after the backup")]
    assert rows(sandbox, DB_AB, "c") == [(1, f"{DB_AB}.c"), (2, "written after the backup")]


@pytest.mark.parametrize("option", ["--tables", "--databases"])
@pytest.mark.parametrize("value", ["", ",", " , "])
def test_an_option_naming_nothing_is_refused_and_changes_nothing(
    clean: SandboxHandle,
    backup: Manifest,
    option: str,
    value: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: ``--tables "$T" --force`` with an empty ``T`` restored every table of
    the backup (exit 0), replacing rows written since in tables nobody named."""
    sandbox = clean
    execute(
        sandbox,
        f"INSERT INTO {q(DB_A)}.`b.c` VALUES (2, 'written after the backup')",
        f"INSERT INTO {q(DB_AB)}.`c` VALUES (2, 'written after the backup')",
    )
    capsys.readouterr()
    assert main(["restore", backup.backup_id, "--force", option, value]) == 2
    err = capsys.readouterr().err
    assert "names no" in err and f"leave {option} out" in err, err
    assert rows(sandbox, DB_A, "b.c") == [(1, f"{DB_A}.b.c"), (2, "written after the backup")]
    assert rows(sandbox, DB_AB, "c") == [(1, f"{DB_AB}.c"), (2, "written after the backup")]


def database_exists(sandbox: SandboxHandle, database: str) -> bool:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (database,)
        )
        return bool(cur.fetchone()[0])


def test_a_database_renamed_twice_is_refused_and_changes_nothing(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: ``--rename A=X --rename A=Y`` restored A into Y (exit 0), the first
    rename silently dropped."""
    sandbox = clean
    argv = ["restore", backup.backup_id, "--databases", q(DB_A)]
    argv += ["--rename", f"{DB_A}={COPY_A}", "--rename", f"{DB_A}={COPY_AB}"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "renamed twice" in err and "one --rename per database" in err, err
    assert not database_exists(sandbox, COPY_A) and not database_exists(sandbox, COPY_AB)


@pytest.mark.parametrize(
    ("target", "code", "problem"),
    [
        (f"{PREFIX}_copy_a ", 2, "ends with a space"),
        (PREFIX + "x" * 60, 2, "68 characters, MariaDB takes at most 64"),
        ("日" * 64, 1, "cannot create database"),  # 320 bytes as a file name
    ],
)
def test_a_rename_target_the_server_cannot_take_is_one_clear_line(
    clean: SandboxHandle,
    backup: Manifest,
    target: str,
    code: int,
    problem: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: such a target passed ``--dry-run`` and the restore failed with
    ``unexpected ProgrammingError: (1102, "Incorrect database name ...")`` (exit 1, rerun
    with --debug). Names MariaDB refuses are refused before anything changes (exit 2);
    one its file system refuses fails at its CREATE DATABASE, named, before any table."""
    sandbox = clean
    argv = ["restore", backup.backup_id, "--databases", q(DB_A), "--rename", f"{DB_A}={target}"]
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    assert problem in err and "unexpected" not in err, err
    assert "--rename" in err, err
    assert not database_exists(sandbox, target)
    if code == 1:  # it said "the restore was interrupted: ... may be partly loaded"
        assert "partly loaded" not in err, err
        assert "the restore stopped before changing anything" in err, err


def test_names_with_commas_can_be_named(clean: SandboxHandle, backup: Manifest) -> None:
    sandbox = clean
    base = ["restore", backup.backup_id, "--rename", f"{DB_COMMA}={COPY_COMMA}"]
    argv = [*base, "--tables", f"{q(DB_COMMA)}.`e,f`,{q(DB_A)}.`b.c`"]
    argv += ["--rename", f"{DB_A}={COPY_A}"]
    assert main(argv) == 0
    assert rows(sandbox, COPY_COMMA, "e,f") == [(1, f"{DB_COMMA}.e,f")]
    assert rows(sandbox, COPY_A, "b.c") == [(1, f"{DB_A}.b.c")]

    execute(sandbox, f"DROP DATABASE {q(COPY_COMMA)}", f"DROP DATABASE {q(COPY_A)}")
    assert main([*base, "--databases", q(DB_COMMA)]) == 0
    assert rows(sandbox, COPY_COMMA, "e,f") == [(1, f"{DB_COMMA}.e,f")]
    assert rows(sandbox, COPY_A, "b.c") is None
    assert rows(sandbox, DB_A, "b.c") == [(1, f"{DB_A}.b.c")]


def test_a_view_named_in_tables_is_restored(clean: SandboxHandle, backup: Manifest) -> None:
    """Reproduction: ``--tables db.view`` passed the check that the backup holds it, then
    restored its database empty and not the view (exit 0)."""
    sandbox = clean
    view = f"{q(DB_COMMA)}.{q(VIEW)}"
    argv = ["restore", backup.backup_id, "--rename", f"{DB_COMMA}={COPY_COMMA}"]
    assert main([*argv, "--tables", f"{view},{q(DB_COMMA)}.`e,f`"]) == 0
    assert rows(sandbox, COPY_COMMA, VIEW) == [(1, f"{DB_COMMA}.e,f")]

    execute(sandbox, f"DROP VIEW {view}")  # the view alone, beside its table
    assert main(["restore", backup.backup_id, "--force", "--tables", view]) == 0
    assert rows(sandbox, DB_COMMA, VIEW) == [(1, f"{DB_COMMA}.e,f")]


def test_an_unquoted_name_with_a_comma_is_split_and_not_found(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["restore", backup.backup_id, "--rename", f"{DB_COMMA}={COPY_COMMA}"]
    assert main([*argv, "--databases", DB_COMMA]) == 2
    assert "not in backup" in capsys.readouterr().err
    assert rows(clean, COPY_COMMA, "e,f") is None


def completed(policy: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The ids of ``policy``'s complete backups (``backups list --json``)."""
    capsys.readouterr()
    assert main(["backups", "list", policy, "--json"]) == 0
    return [b["id"] for b in json.loads(capsys.readouterr().out)["backups"]]


@pytest.mark.parametrize(
    ("listed", "problem"),
    [
        (f"{DB_A}.b.c", f"fits `{DB_A}`.`b.c`, `{DB_AB}`.`c`: quote one with backticks"),
        (f"{DB_A}.no_such_table", "names no table or view there"),
    ],
)
def test_a_policy_listing_a_table_the_source_lacks_or_two_fails_without_a_manifest(
    clean: SandboxHandle, listed: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backup that left a listed table out (a typo, a dropped table, an unquoted dot
    picking either table) would be silently incomplete: it fails, exit 1, and writes no
    manifest."""
    sandbox = clean
    tables = json.dumps([f"{q(DB_COMMA)}.`e,f`", listed])
    sandbox.write_policy(
        "listing", f'engine = "mysql"\n[source]\nnode = "replica1"\ntables = {tables}\n'
    )
    capsys.readouterr()
    assert main(["backup", "run", "listing"]) == 1
    err = capsys.readouterr().err
    assert problem in err, err
    assert completed("listing", capsys) == []


def test_a_policy_listing_only_tables_of_missing_databases_names_them(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "policy ... matches no database", not which entry named nothing."""
    sandbox = clean
    listed = f"{PREFIX}_no_such_db.t"
    tables = json.dumps([listed])
    sandbox.write_policy(
        "listing", f'engine = "mysql"\n[source]\nnode = "replica1"\ntables = {tables}\n'
    )
    capsys.readouterr()
    assert main(["backup", "run", "listing"]) == 1
    err = capsys.readouterr().err
    assert f"'{listed}' names no table or view there" in err, err
    assert completed("listing", capsys) == []


def test_a_policy_quoting_a_dotted_name_backs_up_exactly_that_table(
    clean: SandboxHandle,
) -> None:
    sandbox = clean
    sandbox.write_policy(
        "quoted",
        'engine = "mysql"\n[source]\nnode = "replica1"\n'
        f"tables = {json.dumps([f'`{DB_AB}`.c', f'{q(DB_COMMA)}.`e,f`'])}\n",
    )
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "quoted"))
    assert sorted((t.database, t.name) for t in manifest.tables) == [
        (DB_AB, "c"),
        (DB_COMMA, "e,f"),
    ]


def test_an_ambiguous_exclusion_fails_and_a_quoted_one_leaves_out_only_its_table(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """``exclude_tables = ["a.b.c"]`` left both `a`.`b.c` and `a.b`.`c` out of every
    backup, silently: one of them was meant to be backed up."""
    sandbox = clean
    policy = 'engine = "mysql"\n[source]\nnode = "replica1"\n'
    policy += f"databases = {json.dumps([DB_A, DB_AB])}\n"
    sandbox.write_policy("excluding", policy + f"exclude_tables = {json.dumps([f'{DB_A}.b.c'])}\n")
    capsys.readouterr()
    assert main(["backup", "run", "excluding"]) == 1
    err = capsys.readouterr().err
    assert f"fits `{DB_A}`.`b.c`, `{DB_AB}`.`c`: quote one with backticks" in err, err
    assert completed("excluding", capsys) == []

    quoted = f"exclude_tables = {json.dumps([f'{q(DB_A)}.`b.c`'])}\n"
    sandbox.write_policy("excluding", policy + quoted)
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "excluding"))
    assert [(t.database, t.name) for t in manifest.tables] == [(DB_AB, "c")]


def test_the_hint_for_an_invalid_view_is_an_exclude_tables_entry_that_works(
    clean: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: the hint said to add ``"db.v.1,`"`` to exclude_tables; with a dot, a
    comma or a backtick in the name that entry is refused (or names another table)."""
    sandbox = clean
    database, view = f"{PREFIX}_bad.db", 'v.1,`"'
    execute(
        sandbox,
        f"DROP DATABASE IF EXISTS {q(database)}",
        f"CREATE DATABASE {q(database)}",
        f"CREATE TABLE {q(database)}.t (id INT PRIMARY KEY, gone INT)",
        f"CREATE VIEW {q(database)}.{q(view)} AS SELECT gone FROM {q(database)}.t",
        f"ALTER TABLE {q(database)}.t DROP COLUMN gone",
    )
    try:
        policy = (
            f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = {json.dumps([database])}\n'
        )
        sandbox.write_policy("badview", policy)
        capsys.readouterr()
        assert main(["backup", "run", "badview", "--json"]) == 1
        hint = json.loads(capsys.readouterr().out)["hint"]
        entry = hint.split("add ", 1)[1].split(" to the policy", 1)[0]  # a TOML string
        sandbox.write_policy("badview", policy + f"exclude_tables = [{entry}]\n")
        loaded = load(str(sandbox.config_path), environ={})
        manifest = run_backup(loaded, load_policy(loaded, "badview"))
        assert [(t.database, t.name) for t in manifest.tables] == [(database, "t")]
    finally:
        execute(sandbox, f"DROP DATABASE IF EXISTS {q(database)}")


def test_a_database_whose_name_holds_an_equals_sign_can_be_renamed(
    clean: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reproduction: ``--rename`` split at the first ``=``, so `e=q` could not be renamed
    (``--rename e=q=new`` read database ``e``: "not in the backup")."""
    sandbox = clean
    argv = ["restore", backup.backup_id, "--databases", q(DB_EQ)]
    assert main([*argv, "--rename", f"{q(DB_EQ)}={q(COPY_EQ)}"]) == 0
    assert rows(sandbox, COPY_EQ, "t") == [(1, f"{DB_EQ}.t")]
    execute(sandbox, f"DROP DATABASE {q(COPY_EQ)}")
    assert main([*argv, "--rename", f"{q(DB_EQ)}={COPY_EQ}"]) == 0  # DST plain: the rest
    assert rows(sandbox, COPY_EQ, "t") == [(1, f"{DB_EQ}.t")]

    capsys.readouterr()
    assert main([*argv, "--rename", f"{q(DB_EQ)}{COPY_EQ}"]) == 2
    assert "expected = after" in capsys.readouterr().err


SP = f"{PREFIX}_sp"  # and ` {SP}`: a database whose name starts with a space
NB = f"{PREFIX}_nb"  # and `{NB}\u00a0`: one ending in a no-break space
BLANKED = (f" {SP}", SP, f"{NB}\u00a0", NB)
BLANK_COPY = f"{PREFIX}_copy_blank"
BLANK_COPIES = (BLANK_COPY, f"{BLANK_COPY}_wrong", f"{BLANK_COPY}_nb")


@pytest.fixture
def blanks(use_sandbox_config: SandboxHandle) -> Iterator[Manifest]:
    """A backup of ` SP` (row 1), `SP` (row 2), `NB\\u00a0` (row 1) and `NB` (row 2): names
    one blank apart. Reproduction: ``--databases ' SP'`` and ``--tables ' SP.t'`` restored
    `SP` (exit 0, Python's ``strip`` on every entry, also of a no-break space), while
    ``--rename ' SP=...'`` took the name exactly."""
    sandbox = use_sandbox_config
    drop = [f"DROP DATABASE IF EXISTS {q(db)}" for db in (*BLANKED, *BLANK_COPIES)]
    execute(sandbox, *drop)
    for db, row in zip(BLANKED, (1, 2, 1, 2), strict=True):
        execute(
            sandbox,
            f"CREATE DATABASE {q(db)}",
            f"CREATE TABLE {q(db)}.t (id INT PRIMARY KEY, v VARCHAR(40))",
            f"INSERT INTO {q(db)}.t VALUES ({row}, 'x')",
        )
    yield back_up(sandbox, "blank_names", BLANKED)
    execute(sandbox, *drop)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--databases", f" {SP}"), ("--tables", f" {SP}.t"), ("--tables", f"`{NB}`.t, {SP}.t")],
)
def test_an_unquoted_entry_one_blank_from_two_names_is_refused(
    blanks: Manifest, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Blanks at an entry's ends are dropped outside backticks; when the backup holds the
    name with them too, the entry fits two and is refused (exit 2), nothing restored."""
    capsys.readouterr()
    argv = ["restore", blanks.backup_id, option, value, "--rename", f"` {SP}`={BLANK_COPY}"]
    argv += ["--rename", f"{SP}={BLANK_COPY}_wrong", "--rename", f"{NB}={BLANK_COPY}_nb"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"` {SP}`" in err and "backticks" in err, err


@pytest.mark.parametrize(
    ("option", "value", "source"),
    [
        ("--databases", f"` {SP}`", f" {SP}"),
        ("--tables", f"` {SP}`.t", f" {SP}"),
        ("--databases", f"{NB}\u00a0", f"{NB}\u00a0"),  # not a blank: part of the name
        ("--tables", f"{NB}\u00a0.t", f"{NB}\u00a0"),
        ("--databases", f" {SP} ,", SP),  # `SP ` cannot be a database name
    ],
)
def test_an_entry_restores_exactly_the_database_it_names(
    blanks: Manifest, use_sandbox_config: SandboxHandle, option: str, value: str, source: str
) -> None:
    sandbox = use_sandbox_config
    argv = ["restore", blanks.backup_id, option, value, "--rename", f"{q(source)}={BLANK_COPY}"]
    assert main(argv) == 0
    assert rows(sandbox, BLANK_COPY, "t") == [(1 if source != SP else 2, "x")]


@pytest.mark.parametrize("key", ["tables", "exclude_tables"])
def test_a_policy_entry_one_blank_from_two_tables_is_refused(
    blanks: Manifest,
    use_sandbox_config: SandboxHandle,
    key: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``tables = [" SP.t"]`` backed up `SP`.`t` instead; ``exclude_tables`` left it out and
    backed up ` SP`.`t`. Both fit: refused (exit 1, no manifest) as an unquoted dot
    fitting two is; quoted, the entry names exactly one."""
    sandbox, name = use_sandbox_config, f"blanks_{key}"
    policy = 'engine = "mysql"\n[source]\nnode = "replica1"\n'
    if key == "exclude_tables":
        policy += f"databases = {json.dumps([f' {SP}', SP])}\n"
    sandbox.write_policy(name, policy + f"{key} = {json.dumps([f' {SP}.t'])}\n")
    capsys.readouterr()
    assert main(["backup", "run", name]) == 1
    err = capsys.readouterr().err
    assert f"fits `{SP}`.`t`, ` {SP}`.`t`" in err or f"fits ` {SP}`.`t`, `{SP}`.`t`" in err, err
    assert completed(name, capsys) == []

    sandbox.write_policy(name, policy + f"{key} = {json.dumps([f'` {SP}`.t'])}\n")
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, name))
    held = sorted((t.database, t.name) for t in manifest.tables)
    assert held == ([(f" {SP}", "t")] if key == "tables" else [(SP, "t")])
