"""Bundles (:mod:`datatier.mysql.pdump`) against hostile schemas, selections and manifests,
on the real sandbox: foreign keys between bundled tables and to a table with objects of its
own, generated columns, CHECK constraints, system versioning, partitions, a sequence as a
default, and MyISAM/Aria tables (never bundled) come back exactly; ``--tables`` of two
tables of one bundle and of another bundle, with ``--rename`` and ``--databases``, creates
those and nothing else; a target already holding a bundled table is refused without
``--force`` and replaced with it; a manifest whose sections were moved is refused (exit 4)
before anything is applied."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from datatier.backup.manifest import (
    BUNDLE_FORMAT_VERSION,
    Manifest,
    ObjectRecord,
    Section,
    manifest_key,
)
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, run_backup
from datatier.backup.stores import store_for
from datatier.cli import main
from datatier.config import load
from tests.integration.conftest import SandboxHandle, q
from tests.integration.encryption_support import encryption_env, make_key

DB = "bh_src"
COPY = "bh_copy"
HOSTILE = "a\\G b\\C c\\! d\\g ;; $$ // e\\"
BIG_ROWS = 3000


SCHEMA = [
    "CREATE TABLE parent (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB",
    "CREATE TABLE child (id INT PRIMARY KEY, p INT, KEY (p), "
    "FOREIGN KEY (p) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB",
    "CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(400)) ENGINE=InnoDB",
    "CREATE TABLE tobig (id INT PRIMARY KEY, b INT, KEY (b), "
    "FOREIGN KEY (b) REFERENCES big (id)) ENGINE=InnoDB",
    "CREATE TABLE gen (id INT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL, "
    "s INT AS (a + 1) STORED, CONSTRAINT pos CHECK (a >= 0)) ENGINE=InnoDB",
    "CREATE TABLE versioned (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING",
    "CREATE TABLE parted (id INT PRIMARY KEY, v INT) PARTITION BY HASH (id) PARTITIONS 3",
    "CREATE SEQUENCE seq START WITH 100",
    "CREATE TABLE useseq (id INT PRIMARY KEY DEFAULT (NEXT VALUE FOR seq), v INT)",
    "CREATE TABLE my (id INT PRIMARY KEY, v INT) ENGINE=MyISAM",
    "CREATE TABLE ar (id INT PRIMARY KEY, v INT) ENGINE=Aria",
    "CREATE TABLE hostile (id INT PRIMARY KEY, "
    "v VARCHAR(100) DEFAULT %(h)s COMMENT %(h)s, w TEXT) COMMENT=%(h)s",
    "CREATE TABLE crlf (id INT PRIMARY KEY, v VARCHAR(100) DEFAULT %(c)s COMMENT %(c)s)",
    "CREATE TABLE `bs\\` (id INT PRIMARY KEY, `c\\` VARCHAR(10) DEFAULT 'a\\\\', "
    "g VARCHAR(20) AS (CONCAT(`c\\`, ';\\\\')) VIRTUAL, `\\` INT) COMMENT 'z\\\\'",
]
TABLES = [
    "parent", "child", "big", "tobig", "gen", "versioned", "parted",
    "useseq", "my", "ar", "hostile", "crlf", "bs\\",
]  # fmt: skip
NEVER_BUNDLED = {"my", "ar", "seq"}


@pytest.fixture(scope="module")
def source(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (DB, COPY):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
        cur.execute(f"CREATE DATABASE {q(DB)}")
        cur.execute(f"USE {q(DB)}")
        for statement in SCHEMA:
            cur.execute(statement, {"h": HOSTILE, "c": "x\r\ny\\"} if "%(" in statement else None)
        cur.executemany("INSERT INTO parent VALUES (%s, %s)", [(i, f"p{i}") for i in range(5)])
        cur.executemany("INSERT INTO child VALUES (%s, %s)", [(i, i % 5) for i in range(7)])
        cur.executemany(
            "INSERT INTO big VALUES (%s, %s)", [(i, f"{i:0>350}") for i in range(BIG_ROWS)]
        )
        cur.execute("ANALYZE TABLE big")
        cur.fetchall()
        cur.executemany("INSERT INTO tobig VALUES (%s, %s)", [(i, i * 3) for i in range(4)])
        cur.executemany("INSERT INTO gen (id, a) VALUES (%s, %s)", [(i, i) for i in range(6)])
        cur.executemany("INSERT INTO versioned VALUES (%s, %s)", [(i, i) for i in range(3)])
        cur.execute("UPDATE versioned SET v = v + 10 WHERE id = 1")
        cur.executemany("INSERT INTO parted VALUES (%s, %s)", [(i, i) for i in range(9)])
        cur.executemany("INSERT INTO useseq (v) VALUES (%s)", [(i,) for i in range(3)])
        for engine_table in ("my", "ar"):
            cur.executemany(
                f"INSERT INTO {engine_table} VALUES (%s, %s)", [(i, i) for i in range(2)]
            )
        cur.executemany(
            "INSERT INTO hostile VALUES (%s, %s, %s)",
            [(i, HOSTILE, f"{HOSTILE}\n\\\r\nDELIMITER ;\n") for i in range(3)],
        )
        cur.execute("INSERT INTO crlf (id) VALUES (1)")
        cur.execute("INSERT INTO `bs\\` (id, `\\`) VALUES (1, 1), (2, 2)")
    sandbox.wait_replicated()
    sandbox.write_policy(
        "bundles-hostile",
        f'engine = "mysql"\nchunk_mb = 1\njobs = 2\n[source]\nnode = "replica1"\n'
        f'databases = ["{DB}"]\n',
    )
    yield
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (DB, COPY):
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")


@pytest.fixture(scope="module")
def backup(sandbox: SandboxHandle, source: None) -> Manifest:
    loaded = load(str(sandbox.config_path), environ={})
    return run_backup(loaded, load_policy(loaded, "bundles-hostile"))


def drop_copy(sandbox: SandboxHandle) -> None:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(COPY)}")


def tables_of(sandbox: SandboxHandle, database: str) -> list[str]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (database,)
        )
        return sorted(r[0] for r in cur.fetchall())


def same(sandbox: SandboxHandle, table: str) -> None:
    """``table`` of the copy has the source's definition and rows (a system-versioned
    table: its current rows, as the README says, so no CHECKSUM TABLE over its history).
    A default drawing from a sequence draws from the copy's."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        found = []
        for db in (DB, COPY):
            cur.execute(f"SHOW CREATE TABLE {q(db)}.{q(table)}")
            # a sequence default names its own database: the copy's, its own sequence
            create = cur.fetchone()[1].replace(f"nextval({q(db)}.", "nextval(`DB`.")
            cur.execute(f"CHECKSUM TABLE {q(db)}.{q(table)}")
            # gen: once, CHECKSUM TABLE of the unchanged source with a VIRTUAL column gave
            # another value (rows and definition equal): its rows, read back, compare
            checksum = None if table in ("versioned", "gen") else cur.fetchone()[1]
            cur.execute(f"SELECT * FROM {q(db)}.{q(table)} ORDER BY 1")
            found.append((create, checksum, cur.fetchall()))
    assert found[0] == found[1], table


def with_sequence(tables: list[str]) -> list[str]:
    """``tables`` and, when it holds ``useseq``, the sequence its default draws from (a
    restore of the table alone is refused: see the sequence test below)."""
    return [*tables, "seq"] if "useseq" in tables and "seq" not in tables else tables


def sections(backup: Manifest) -> dict[str, tuple[ObjectRecord, Section]]:
    return {s.table: (o, s) for o in backup.objects if o.kind == "bundle" for s in o.sections}


def test_what_is_bundled(backup: Manifest) -> None:
    bundled = sections(backup)
    assert not NEVER_BUNDLED & set(bundled)
    assert "big" not in bundled, "ANALYZEd: too big for a bundle"
    assert {"parent", "child", "tobig", "gen", "hostile", "crlf"} <= set(bundled)


def test_a_full_restore_gives_back_every_table(
    use_sandbox_config: SandboxHandle, backup: Manifest
) -> None:
    sandbox = use_sandbox_config
    drop_copy(sandbox)
    assert main(["restore", backup.backup_id, "--rename", f"{DB}={COPY}"]) == 0
    assert tables_of(sandbox, COPY) == tables_of(sandbox, DB)
    for table in TABLES:
        same(sandbox, table)
    # again over itself: bundled tables replaced while foreign keys point at them and from
    # them to a table with objects of its own, with one client per bundle at a time
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DELETE FROM {COPY}.child")
        cur.execute(f"INSERT INTO {COPY}.parent VALUES (99, 'mine')")
    argv = ["restore", backup.backup_id, "--rename", f"{DB}={COPY}", "--force", "--jobs", "1"]
    assert main(argv) == 0
    assert tables_of(sandbox, COPY) == tables_of(sandbox, DB)
    for table in TABLES:
        same(sandbox, table)
    assert main(["backups", "verify", backup.backup_id, "--restore-test"]) == 0
    assert main(["backups", "show", backup.backup_id]) == 0


def test_tables_picks_sections_of_one_and_of_two_bundles_and_nothing_else(
    use_sandbox_config: SandboxHandle, backup: Manifest
) -> None:
    sandbox = use_sandbox_config
    bundled = sections(backup)
    by_bundle: dict[str, list[str]] = {}
    for table, (obj, _) in bundled.items():
        by_bundle.setdefault(obj.key, []).append(table)
    first = next(names for names in by_bundle.values() if len(names) >= 3)
    picked = [first[0], first[-1]]
    others = [names for names in by_bundle.values() if names is not first]
    if others:
        picked.append(others[0][0])
    picked = with_sequence(picked)
    for extra in ([], ["--databases", DB]):
        drop_copy(sandbox)
        names = ",".join(f"{DB}.{table}" for table in picked)
        argv = ["restore", backup.backup_id, "--rename", f"{DB}={COPY}", "--tables", names]
        assert main([*argv, *extra]) == 0
        assert tables_of(sandbox, COPY) == sorted(picked)
        for table in picked:
            same(sandbox, table)


def test_a_target_holding_a_bundled_table_is_refused_without_force(
    use_sandbox_config: SandboxHandle, backup: Manifest
) -> None:
    sandbox = use_sandbox_config
    drop_copy(sandbox)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {q(COPY)}")
        cur.execute(f"CREATE TABLE {q(COPY)}.gen (id INT PRIMARY KEY, mine INT)")
        cur.execute(f"INSERT INTO {q(COPY)}.gen VALUES (1, 42)")
    argv = ["restore", backup.backup_id, "--rename", f"{DB}={COPY}", "--tables", f"{DB}.gen"]
    assert main(argv) == 2
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {q(COPY)}.gen")
        assert cur.fetchall() == ((1, 42),), "nothing changed"
    assert main([*argv, "--force"]) == 0
    same(sandbox, "gen")
    assert tables_of(sandbox, COPY) == ["gen"]


def _shrink_first(obj: ObjectRecord) -> ObjectRecord:
    """The first section ends 40 bytes early (inside its last INSERT); a gap follows."""
    first, *rest = obj.sections
    return dataclasses.replace(
        obj, sections=(dataclasses.replace(first, end=first.end - 40), *rest)
    )


def _move_boundary(obj: ObjectRecord) -> ObjectRecord:
    """The boundary between the first two sections moved 40 bytes back: contiguous still."""
    first, second, *rest = obj.sections
    return dataclasses.replace(
        obj,
        sections=(
            dataclasses.replace(first, end=first.end - 40),
            dataclasses.replace(second, start=second.start - 40),
            *rest,
        ),
    )


def _overlap(obj: ObjectRecord) -> ObjectRecord:
    first, second, *rest = obj.sections
    return dataclasses.replace(
        obj, sections=(first, dataclasses.replace(second, start=first.end - 10), *rest)
    )


def _past_end(obj: ObjectRecord) -> ObjectRecord:
    *rest, last = obj.sections
    return dataclasses.replace(
        obj, sections=(*rest, dataclasses.replace(last, end=obj.raw_size + 10))
    )


def _wrong_rows(obj: ObjectRecord) -> ObjectRecord:
    first, *rest = obj.sections
    return dataclasses.replace(
        obj, sections=(dataclasses.replace(first, rows=first.rows + 1), *rest)
    )


@pytest.mark.parametrize(
    ("tamper", "verify_sees"),
    [
        (_overlap, True),
        (_past_end, True),
        (_wrong_rows, True),
        (_shrink_first, True),
        # the layout is still plausible: only the decompressed bytes show it (restore)
        (_move_boundary, False),
    ],
)
def test_a_manifest_with_moved_sections_is_refused_before_anything_is_applied(
    use_sandbox_config: SandboxHandle,
    backup: Manifest,
    tamper: Callable[[ObjectRecord], ObjectRecord],
    verify_sees: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: sections ending 40 bytes early passed ``backups verify`` and a
    ``--tables`` restore created the table, ran a cut INSERT and exited 1, partly loaded."""
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    _, store = find_backup(loaded, backup.backup_id)
    key = manifest_key(backup.policy, backup.backup_id)
    good = b"".join(store.iter_read(key))
    victim = next(o for o in backup.objects if o.kind == "bundle" and len(o.sections) >= 2)
    first = victim.sections[0].table
    tampered = Manifest.decode(good, "test")
    tampered.objects = [tamper(o) if o.key == victim.key else o for o in tampered.objects]
    store.put_bytes(key, tampered.encode())
    try:
        drop_copy(sandbox)
        assert main(["backups", "verify", backup.backup_id]) == (4 if verify_sees else 0)
        for argv in (  # with the sequence a pick's default needs: else refused for that
            ["--tables", ",".join(f"{DB}.{t}" for t in with_sequence([first]))],
            ["--tables", ",".join(f"{DB}.{t}" for t in with_sequence([victim.sections[1].table]))],
            [],
        ):
            code = main(["restore", backup.backup_id, "--rename", f"{DB}={COPY}", *argv])
            assert code == 4, (argv, capsys.readouterr().err)
            assert tables_of(sandbox, COPY) == [], "nothing applied"
        # the tables outside the damaged bundle can still be salvaged
        elsewhere = [f"{DB}.{t}" for t in with_sequence(
            ["big", *(t for t, (o, _) in sections(backup).items() if o.key != victim.key)]
        )]  # fmt: skip
        argv = ["--tables", ",".join(elsewhere)]
        code = main(["restore", backup.backup_id, "--rename", f"{DB}={COPY}", *argv])
        assert code == 0, capsys.readouterr().err
        assert tables_of(sandbox, COPY) == sorted(t.split(".", 1)[1] for t in elsewhere)
    finally:
        store.put_bytes(key, good)


AGE_POLICY = "bundles-hostile-age"


@pytest.fixture
def age_policy(sandbox: SandboxHandle) -> Iterator[str]:
    """A policy whose backups (to a key of this test only) are gone afterwards: other
    tests (``keys check``) see every stored backup."""
    yield AGE_POLICY
    loaded = load(str(sandbox.config_path), environ={})
    store = store_for(load_policy(loaded, AGE_POLICY).store_url, loaded.config)
    store.delete([o.key for o in store.list_objects(f"{AGE_POLICY}/")])
    (sandbox.root / "backups" / f"{AGE_POLICY}.toml").unlink(missing_ok=True)


def test_an_encrypted_backup_of_bundles_restores_picks_sections_and_refuses_damage(
    use_sandbox_config: SandboxHandle,
    source: None,
    age_policy: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bundles sealed with age: the manifest is format 5 (bundles outrank encryption's 4),
    a full restore, a ``--tables`` pick of two sections and ``--restore-test`` decrypt;
    a flipped byte of a sealed bundle is exit 4 with nothing applied."""
    sandbox = use_sandbox_config
    key = make_key(tmp_path, "bundles")
    sandbox.write_policy(
        age_policy,
        f'engine = "mysql"\nchunk_mb = 1\njobs = 2\n[source]\nnode = "replica1"\n'
        f'databases = ["{DB}"]\n',
    )
    env = encryption_env([key], key.path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = load(str(sandbox.config_path), environ=env)
    manifest = run_backup(loaded, load_policy(loaded, age_policy))
    assert manifest.format_version == BUNDLE_FORMAT_VERSION and manifest.encryption
    bundled = [o for o in manifest.objects if o.kind == "bundle"]
    assert bundled and all(o.encrypted for o in bundled)

    drop_copy(sandbox)
    assert main(["restore", manifest.backup_id, "--rename", f"{DB}={COPY}"]) == 0
    for table in TABLES:
        same(sandbox, table)
    assert main(["backups", "verify", manifest.backup_id, "--restore-test"]) == 0

    victim = max(bundled, key=lambda o: len(o.sections))
    picked = with_sequence([victim.sections[0].table, victim.sections[-1].table])
    drop_copy(sandbox)
    names = ",".join(f"{DB}.{t}" for t in picked)
    argv = ["restore", manifest.backup_id, "--rename", f"{DB}={COPY}", "--tables", names]
    assert main(argv) == 0
    assert tables_of(sandbox, COPY) == sorted(picked)
    for table in picked:
        same(sandbox, table)

    _, store = find_backup(loaded, manifest.backup_id)
    good = b"".join(store.iter_read(victim.key))
    store.put_bytes(victim.key, good[:-1] + bytes([good[-1] ^ 1]))
    try:
        drop_copy(sandbox)
        capsys.readouterr()
        assert main(argv) == 4
        assert victim.key in capsys.readouterr().err
        assert tables_of(sandbox, COPY) == [], "nothing applied"
        assert main(["backups", "verify", manifest.backup_id]) == 4
    finally:
        store.put_bytes(victim.key, good)


def test_a_table_picked_without_the_sequence_its_default_draws_from_is_refused(
    use_sandbox_config: SandboxHandle, backup: Manifest, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tables DB.useseq --rename DB=COPY``: the copy's default draws from COPY.seq (the
    server checks it at CREATE TABLE), which neither the restore nor the target has. Exit 2
    naming it, with the hint to add it, and nothing created; with DB.seq picked too, the
    copy draws its keys from its own sequence and the source's is left alone."""
    sandbox = use_sandbox_config
    drop_copy(sandbox)
    argv = ["restore", backup.backup_id, "--rename", f"{DB}={COPY}", "--tables"]
    capsys.readouterr()
    assert main([*argv, f"{DB}.useseq"]) == 2
    err = capsys.readouterr().err
    assert "draws its DEFAULT from" in err and "seq" in err and "to --tables" in err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (COPY,))
        assert cur.fetchall() == (), "nothing changed"
    assert main([*argv, f"{DB}.useseq,{DB}.seq"]) == 0
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT NEXTVAL({q(DB)}.seq)")
        before = cur.fetchone()[0]
        cur.execute(f"INSERT INTO {q(COPY)}.useseq (v) VALUES (99)")
        cur.execute(f"SELECT NEXTVAL({q(DB)}.seq)")
        assert cur.fetchone()[0] == before + 1, "the source's sequence was not drawn from"
        cur.execute(f"SELECT COUNT(*) FROM {q(COPY)}.useseq")
        assert cur.fetchone()[0] == 4
