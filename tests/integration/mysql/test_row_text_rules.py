"""Backups made before the row text rules changed (text of inexact charsets as hex, ENUM's
error value as 0) still pass ``verify --restore-test``: their digests are recomputed by the
rules the manifest says they were taken with (``options["row_text"]``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import pytest

from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.mysql import dumptasks, pdump
from datatier.mysql.catalogue import Column
from datatier.mysql.rowtext import EXACT_CHARSETS, ROW_TEXT_VERSION, RowQuery, value_sql
from tests.integration.conftest import SandboxHandle, sql

DB = "rt_rules"


@pytest.fixture
def inexact(use_sandbox_config: SandboxHandle) -> Iterator[SandboxHandle]:
    """A table whose values the old and the new rules render differently (and which the old
    rules still restore: no armscii8 0xFF)."""
    sandbox = use_sandbox_config
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(
            f"CREATE TABLE {DB}.t (id INT PRIMARY KEY, s TEXT CHARACTER SET sjis, "
            "u VARCHAR(10) CHARACTER SET ucs2, e ENUM('a', ''), st SET('a', 'b'))"
        )
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(
            f"INSERT INTO {DB}.t VALUES (1, _sjis X'835C5C', 'ü', 'nope', 'a,b'), "
            "(2, NULL, NULL, '', NULL)"
        )
    sandbox.write_policy(
        "rt-rules", f'engine = "mysql"\n[source]\nnode = "primary"\ndatabases = ["{DB}"]\n'
    )
    yield sandbox
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {DB}")
    (sandbox.root / "backups" / "rt-rules.toml").unlink(missing_ok=True)


def test_a_backup_rendered_by_the_legacy_rules_passes_its_restore_test(
    inexact: SandboxHandle,
) -> None:
    loaded = load(str(inexact.config_path), environ={})
    current = run_backup(loaded, load_policy(loaded, "rt-rules"))
    assert current.options["row_text"] == ROW_TEXT_VERSION
    assert main(["backups", "verify", current.backup_id, "--restore-test"]) == 0
    time.sleep(1.05)  # backup IDs are per second

    with pytest.MonkeyPatch.context() as patch:  # a backup of before the rules
        patch.setattr(pdump, "ROW_TEXT_VERSION", 1)
        patch.setattr(dumptasks, "RowQuery", functools.partial(RowQuery, rules=1))
        old = run_backup(loaded, load_policy(loaded, "rt-rules"))
    assert old.options["row_text"] == 1
    by_table = {t.name: t.data_sha256 for t in old.tables}
    assert by_table != {t.name: t.data_sha256 for t in current.tables}, "the rules differ"
    assert main(["backups", "verify", old.backup_id, "--restore-test"]) == 0


def test_a_backup_rendered_by_the_rules_of_version_2_passes_its_restore_test(
    inexact: SandboxHandle,
) -> None:
    """Version 2 quoted a SET's text (version 3 gives its number): such a backup's digests
    are recomputed by its own rules, not the legacy ones nor the current."""
    loaded = load(str(inexact.config_path), environ={})
    current = run_backup(loaded, load_policy(loaded, "rt-rules"))
    time.sleep(1.05)  # backup IDs are per second
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pdump, "ROW_TEXT_VERSION", 2)
        patch.setattr(dumptasks, "RowQuery", functools.partial(RowQuery, rules=2))
        made = run_backup(loaded, load_policy(loaded, "rt-rules"))
    assert made.options["row_text"] == 2
    by_table = {t.name: t.data_sha256 for t in made.tables}
    assert by_table != {t.name: t.data_sha256 for t in current.tables}, "the rules differ"
    assert main(["backups", "verify", made.backup_id, "--restore-test"]) == 0


def test_a_manifest_of_the_legacy_rules_is_not_compared_by_the_new_ones(
    inexact: SandboxHandle,
) -> None:
    """The rules the restore test reads by are the manifest's: rows written by the new rules
    under a manifest claiming the old ones differ (so the option is what decides)."""
    loaded = load(str(inexact.config_path), environ={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pdump, "ROW_TEXT_VERSION", 1)
        made = run_backup(loaded, load_policy(loaded, "rt-rules"))
    assert main(["backups", "verify", made.backup_id, "--restore-test"]) == 4


def test_every_single_byte_exact_charset_round_trips_each_byte_through_utf8mb4(
    sandbox: SandboxHandle,
) -> None:
    """What :data:`EXACT_CHARSETS` claims, on this server: all 256 bytes convert to distinct
    characters and back unchanged, and only the bytes QUOTE() escapes become NUL, ^Z, quote
    and backslash (so a QUOTEd value converted to utf8mb4 is still one exact literal)."""
    with sandbox.connect() as conn, conn.cursor() as cur:
        for charset in sorted(EXACT_CHARSETS - {"utf8", "utf8mb3"}):
            cur.execute(
                f"SELECT SUM(HEX(CONVERT(u USING {charset})) <> HEX(CHAR(b))),"
                " SUM((HEX(u) IN ('00', '1A', '27', '5C')) <> (b IN (0, 26, 39, 92))),"
                " SUM(HEX(u) <> HEX(CHAR(b)) AND b IN (0, 26, 39, 92)),"
                " COUNT(DISTINCT u COLLATE utf8mb4_bin) FROM (SELECT seq AS b,"
                f" CONVERT(CONVERT(CHAR(seq) USING {charset}) USING utf8mb4) AS u"
                " FROM mysql.seq_0_to_255) AS bytes"
            )
            assert cur.fetchone() == (0, 0, 0, 256), charset


def test_text_renders_as_quote_in_utf8mb4_renders_it_byte_for_byte(sandbox: SandboxHandle) -> None:
    """The row text of utf8mb4 text and of each charset of :data:`EXACT_CHARSETS` is
    ``QUOTE()`` of the value in utf8mb4, byte for byte (what digests of every backup compare),
    however :func:`value_sql` has the server compute it: every byte value of the single-byte
    charsets, and in utf8mb4/utf8mb3 the four escaped characters among multi-byte ones
    (2-, 3- and 4-byte: 'é', '€', '😀'), NULL, the empty string and a value of 200 KB."""
    column = functools.partial(Column, data_type="longtext", generated=False)
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
        for charset in sorted(EXACT_CHARSETS | {"utf8mb4"}):
            cur.execute(f"DROP TABLE IF EXISTS {DB}.q")
            cur.execute(f"CREATE TABLE {DB}.q (id INT PRIMARY KEY, v LONGTEXT CHARACTER SET "
                        f"{charset})")  # fmt: skip
            if charset.startswith("utf8"):
                four = "😀" if charset == "utf8mb4" else "€"
                values = ["", "\\", "'", "\0", "\x1a", f"é'€\\{four}\0x\x1a", "a" * 200_000 + "'"]
                cur.executemany(f"INSERT INTO {DB}.q VALUES (%s, %s)", list(enumerate(values)))
            else:
                cur.execute(f"INSERT INTO {DB}.q SELECT seq, CONVERT(CHAR(seq) USING {charset}) "
                            "FROM mysql.seq_0_to_255")  # fmt: skip
                specials = "CONCAT('a', CHAR(39), CHAR(92), CHAR(0), CHAR(26), 'b')"
                cur.execute(f"INSERT INTO {DB}.q SELECT 300, CONVERT({specials} USING {charset})")
            cur.execute(f"INSERT INTO {DB}.q VALUES (1000, NULL)")
            rendered = value_sql(column(name="v", charset=charset))
            cur.execute(f"SELECT id, CAST(CONVERT(QUOTE(v) USING utf8mb4) AS BINARY), "
                        f"CAST({rendered} AS BINARY) FROM {DB}.q")  # fmt: skip
            rows = cur.fetchall()
            assert len(rows) > 7, charset
            differing = [r for r in rows if r[1] != r[2]]
            assert not differing, (charset, rendered, differing[:3])
        cur.execute(f"DROP TABLE {DB}.q")


def test_a_backup_of_newer_rules_is_refused_before_anything_is_restored(
    inexact: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rules this code does not know cannot be recomputed: exit 1 saying so, no scratch
    database created (rather than a mismatch that would call the backup damaged)."""
    loaded = load(str(inexact.config_path), environ={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pdump, "ROW_TEXT_VERSION", ROW_TEXT_VERSION + 1)
        made = run_backup(loaded, load_policy(loaded, "rt-rules"))
    capsys.readouterr()
    assert main(["backups", "verify", made.backup_id, "--restore-test"]) == 1
    err = capsys.readouterr().err
    assert f"row text rules {ROW_TEXT_VERSION + 1}, newer than" in err, err
    with inexact.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'dtv\\_%'")
        assert cur.fetchall() == ()


def test_a_set_of_64_members_reloads_its_top_bit_exactly(
    use_sandbox_config: SandboxHandle,
) -> None:
    """``s+0`` of a SET holding its 64th member is a negative BIGINT on MariaDB; the
    restore stores it back as the same bits, by the server's rendering and by the client's
    (a row with large values, past the raw threshold)."""
    sandbox = use_sandbox_config
    members = ",".join(f"'m{i}'" for i in range(64))
    values = [(1, -1), (2, -(2**63)), (3, -(2**63) + 1), (4, 0), (5, None), (6, 2**62)]
    copy = f"{DB}_set_copy"
    with sandbox.connect() as conn, conn.cursor() as cur:
        for name in (DB, copy):
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {DB}")
        cur.execute(f"CREATE TABLE {DB}.s (id INT PRIMARY KEY, s SET({members}), b LONGBLOB)")
        for id_, bits in values:
            big = "REPEAT('x', 5 << 20)" if id_ == 3 else "NULL"  # the raw path
            number = "NULL" if bits is None else f"CAST({bits} AS SIGNED)"
            cur.execute(f"INSERT INTO {DB}.s VALUES ({id_}, {number}, {big})")
    sandbox.write_policy(
        "rt-set", f'engine = "mysql"\n[source]\nnode = "primary"\ndatabases = ["{DB}"]\n'
    )
    try:
        loaded = load(str(sandbox.config_path), environ={})
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(  # rows with over 1 MiB of large values rendered client-side
                dumptasks, "RowQuery", lambda table, _threshold: RowQuery(table, 1 << 20)
            )
            made = run_backup(loaded, load_policy(loaded, "rt-set"))
        assert main(["restore", made.backup_id, "--rename", f"{DB}={copy}"]) == 0
        assert main(["backups", "verify", made.backup_id, "--restore-test"]) == 0
        query = "SELECT id, CAST(s + 0 AS UNSIGNED), LENGTH(b) FROM {}.s ORDER BY id"
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(query.format(DB))
            source = cur.fetchall()
            cur.execute(query.format(copy))
            assert cur.fetchall() == source
        assert source[0][1] == 2**64 - 1 and source[1][1] == 2**63
    finally:
        for name in (DB, copy):
            sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {name}")
        (sandbox.root / "backups" / "rt-set.toml").unlink(missing_ok=True)


def test_a_row_text_option_that_is_not_a_version_is_an_integrity_failure(
    inexact: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    loaded = load(str(inexact.config_path), environ={})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pdump, "ROW_TEXT_VERSION", "3")
        made = run_backup(loaded, load_policy(loaded, "rt-rules"))
    capsys.readouterr()
    assert main(["backups", "verify", made.backup_id, "--restore-test"]) == 4
    assert "options.row_text is '3'" in capsys.readouterr().err
