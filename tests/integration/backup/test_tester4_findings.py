"""Tester4's findings on the backup lifecycle (store that lies, kills, concurrency, keys,
hostile names), each a failing reproduction on the real sandbox (MariaDB + S3 server).

Tried and behaved correctly (no test here):
- hostile names round trip through S3: databases named with a backtick, quotes, newline,
  tab, non-ASCII and 64 characters, tables ``ta`b'le"\\n;--`` and 64 x's, a column
  ``co`l\\nx``; values with every byte 0x00-0xFF, a 10 MB row, empty and NULL values;
  a table with TIMESTAMP(6) / DATETIME(6) extremes, BIT(64), DECIMAL(65,30), JSON, ENUM and
  SET with quotes and commas, GEOMETRY, INET6, UUID, a virtual and an invisible column,
  backed up under time_zone +05:00 and restored under -07:00: identical rows and DDL;
- rows of 30 MB of random bytes, zero bytes and quotes round trip; a 40 MB row (its hex
  statement over max_allowed_packet) is refused before anything with exit 2 and a hint;
- a manifest copied over another backup's: ``list`` hides it, ``verify`` exits 4
  ("manifest names ..."), ``prune`` refuses (exit 4, nothing deleted);
- SIGKILL of ``backup run`` at seven moments (dump, upload, just before the manifest):
  every partial backup is ``incomplete``, never listed by default, spared by prune within
  the grace period, never counted by retention; the next run is complete;
- a physical full backup with a deleted object under an incremental: prune keeps the older
  intact full and reports both as damaged; ``verify`` of the incremental checks the chain
  and exits 4 on a same-size corrupt object of its full backup;
- three ``backup run --incremental`` of one physical policy at once: three incrementals
  on the same parent, all complete; a logical, a physical and a large logical backup of one
  server at once: all complete; SIGKILL of a physical full at four moments: no mariabackup
  left running, the server writable, the next incremental's parent the newest complete full;
- a policy switched mariabackup -> mysql -> mariabackup: the incremental names the
  physical full as parent, prune keeps that chain;
- consistency under writers: transfers between two InnoDB tables (primary and replica1
  as source, four runs) keep their invariant in the restored copy; an Aria table written
  during the dump holds exactly the rows of the recorded GTID position;
- two restores into one new database at once: one exit 5 (restore lock), the other whole;
  prune --execute deleting the very backup a restore is staging: the restore had its
  objects and restored whole (exit 0);
- the S3 server stopped (SIGSTOP) for 15 s mid-upload: the backup waits, completes and
  verifies; a physical ``verify --restore-test`` of a server with the hostile names passes;
- latin1, latin2, cp850, cp852, koi8r/u, macroman, gbk, big5 (common characters),
  utf16/utf32/ucs2 text round trip byte for byte; system-versioned tables keep current
  rows only (documented in README, like mariadb-dump).
"""

from __future__ import annotations

import os
import time

import pytest

from datatier.backup.manifest import Manifest
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from tests.integration.conftest import SandboxHandle
from tests.integration.integrity import (
    clear_prefix,
    cli_json,
    default_store,
    integ_data,  # noqa: F401  (fixture)
    loaded_config,
    policy,
)

pytestmark = pytest.mark.usefixtures("integ_data")


def backups_of(sandbox: SandboxHandle, name: str, count: int) -> list[Manifest]:
    loaded = loaded_config(sandbox)
    made = []
    for _ in range(count):
        made.append(run_backup(loaded, load_policy(loaded, name)))
        time.sleep(1.05)  # IDs are per second
    return made


def test_prune_keeps_a_backup_whose_object_was_replaced_and_deletes_the_only_intact_one(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Severity: data loss. keep_last = 1, two backups; after the newest finished, one of
    its data objects is overwritten in the store with other bytes of the same size (a
    lying or buggy store, a tool writing into the bucket, bit rot repaired with the wrong
    copy). ``backups list`` calls the newest backup complete, ``prune --execute`` keeps it
    as "newest, last 1 of 1" and deletes the older, intact backup: afterwards no backup of
    the policy verifies or restores. Retention judges a backup good from the listing (key
    and size, ``datatier/backup/listing.py``, used by ``catalog.Catalog._entry``); the
    manifest records nothing the listing could compare beyond the size (an ETag, or the
    object's last-modified time after ``finished_at`` would show the rewrite).
    Expected: the newest backup whose objects were rewritten after it finished is not
    counted as good (damaged), or prune never deletes the only backup that verifies."""
    sandbox = use_sandbox_config
    name = policy(sandbox, "t4-samesize", "[retention]\nkeep_last = 1\nmin_age_days = 0\n")
    good, newest = backups_of(sandbox, name, 2)
    store = default_store(sandbox)
    victim = next(o for o in newest.objects if o.kind == "data")
    store.put_bytes(victim.key, os.urandom(victim.size))  # same size, other bytes

    assert main(["backups", "verify", newest.backup_id]) == 4, "precondition: it is corrupt"
    cli_json(capsys, "backups", "prune", name, "--execute", "--json")
    _, listed = cli_json(capsys, "backups", "list", name, "--all", "--json")
    ids = [b["id"] for b in listed["backups"]]
    verified = {i: main(["backups", "verify", i]) for i in ids}
    assert 0 in verified.values(), (
        f"prune left no backup that verifies: {verified}; the intact {good.backup_id} "
        f"was deleted in favour of the rewritten {newest.backup_id}"
    )


# -- text in a non-utf8mb4 character set (datatier/mysql/rowtext.py, value_sql) -------------

CHARSET_DB = "t4_charsets"


def _charset_round_trip(
    sandbox: SandboxHandle,
    capsys: pytest.CaptureFixture[str],
    name: str,
    columns: dict[str, str],
    row: dict[str, bytes],
) -> tuple[int, dict[str, str], dict[str, str], str]:
    """Back up ``CHARSET_DB.t`` (``columns``: name -> charset) holding ``row`` (raw
    bytes per column), restore it renamed; (restore exit, HEX per column of the source,
    of the copy, verify --restore-test's stderr)."""
    copy = CHARSET_DB + "_copy"
    with sandbox.connect() as conn, conn.cursor() as cur:
        for db in (CHARSET_DB, copy):
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {CHARSET_DB}")
        defs = ", ".join(f"{c} VARCHAR(100) CHARACTER SET {cs}" for c, cs in columns.items())
        cur.execute(f"CREATE TABLE {CHARSET_DB}.t (id INT PRIMARY KEY, {defs})")
        values = ", ".join(f"CONVERT(X'{row[c].hex()}' USING {columns[c]})" for c in columns)
        cur.execute(f"INSERT INTO {CHARSET_DB}.t VALUES (1, {values})")
    sandbox.write_policy(
        name, f'engine = "mysql"\n[source]\nnode = "primary"\ndatabases = ["{CHARSET_DB}"]\n'
    )
    try:
        code, made = cli_json(capsys, "backup", "run", name, "--json")
        assert code == 0
        capsys.readouterr()
        restored = main(["restore", made["id"], "--rename", f"{CHARSET_DB}={copy}"])
        hexes = ", ".join(f"HEX({c})" for c in columns)
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {hexes} FROM {CHARSET_DB}.t")
            before = dict(zip(columns, cur.fetchone(), strict=True))
            cur.execute(f"SELECT {hexes} FROM {copy}.t")
            got = cur.fetchone()
            after = dict(zip(columns, got or (None,) * len(columns), strict=True))
        capsys.readouterr()
        tested = main(["backups", "verify", made["id"], "--restore-test"])
        return restored, before, after, f"exit {tested}: {capsys.readouterr().err[-400:]}"
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            for db in (CHARSET_DB, copy):
                cur.execute(f"DROP DATABASE IF EXISTS {db}")
        clear_prefix(default_store(sandbox), name)
        (sandbox.root / "backups" / f"{name}.toml").unlink(missing_ok=True)


def test_armscii8_text_with_its_apostrophe_byte_is_restored_as_other_values_with_exit_0(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Severity: silent wrong (a restore that succeeds with other data). In armscii8, byte
    0xFF (the Armenian apostrophe) converts to U+0027, a plain quote. The dump renders a
    non-utf8mb4 text value as ``CONVERT(QUOTE(col) USING utf8mb4)``: QUOTE runs in armscii8,
    where 0xFF needs no escaping, and the conversion then turns it into an unescaped quote
    inside the dumped string literal. The stored value ends the literal early and the rest
    of the value is read as SQL. Here a row (a = 'x\\xff/*', b = '*/,\\xffz') comes back
    as (a = 'x', b = 'z') and ``restore`` exits 0; only ``verify --restore-test`` notices
    (exit 4). Other values make the restore fail with a syntax error after loading began,
    or load extra rows (then exit 1, "2 rows after restore, the backup has 1"), so a backup
    of ordinary Armenian text may not restore at all.
    Expected: every value restored byte for byte (render such columns as hex with their
    charset introducer, e.g. ``_armscii8 X'...'``, or escape after the conversion).
    Cause: ``datatier/mysql/rowtext.py`` ``value_sql`` (and ``literal_of`` for raw rows)."""
    restored, before, after, tested = _charset_round_trip(
        use_sandbox_config,
        capsys,
        "t4-armscii8",
        {"a": "armscii8", "b": "armscii8"},
        {"a": b"x\xff/*", "b": b"*/,\xffz"},
    )
    assert after == before, (
        f"restore exit {restored}; source {before}, restored {after}; restore-test {tested}"
    )


def test_ascii_sjis_and_cp932_bytes_change_in_a_round_trip_and_the_restore_test_says_ok(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Severity: silent wrong. Text in other charsets is dumped converted to utf8mb4 and
    converted back on load; that round trip is not lossless, as ``rowtext`` claims, for
    characters two codes share: sjis 0x5C comes back as 0x815F, cp932 0xED40 (NEC-selected
    IBM extension) as 0xFA5C, cp932 0x8790 as 0x81E0; bytes a charset leaves undefined,
    which the server stores as given (``INSERT ... VALUES (X'C3A9')`` into an ascii column
    in strict mode: an application writing UTF-8 into an ascii column), come back as
    ``?`` (ascii 0x80-0xFF, cp1251 0x98, cp1250/cp1256/hebrew/greek/tis620/armscii8 ...).
    ``restore`` exits 0 with the changed
    bytes and ``verify --restore-test`` reports the data checksums equal (the checksum is
    taken over the converted text), so nothing ever says the copy differs from the source.
    Expected: the restored bytes equal the source's (dump such columns in their own
    charset, e.g. ``_sjis X'...'``), or at least the restore test computes its checksum on
    the stored bytes and fails.
    Cause: ``datatier/mysql/rowtext.py`` ``value_sql`` (CONVERT ... USING utf8mb4) and the
    data checksum of ``datatier/mysql/table_digest.py``, taken over the same rendered text."""
    restored, before, after, tested = _charset_round_trip(
        use_sandbox_config,
        capsys,
        "t4-sjis",
        {"s": "sjis", "c": "cp932", "d": "cp932", "a": "ascii"},
        {"s": b"\x83\x5c\x5c", "c": b"\xed\x40", "d": b"\x87\x90", "a": b"caf\xc3\xa9"},
    )
    assert after == before, (
        f"restore exit {restored}; source {before}, restored {after}; restore-test {tested}"
    )


def test_an_enum_error_value_comes_back_as_the_empty_member(
    use_sandbox_config: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """Severity: silent wrong (minor; mariadb-dump does the same). An ENUM column holds the
    error value (index 0, read as '') wherever a non-strict session wrote a value not in
    the list (legacy applications with sql_mode = ''). When the list also has the member
    '' (here index 2), the dump writes both as '' and the load stores the member: index 0
    becomes index 2 (``WHERE e = 0`` finds the row in the source, not in the copy), and
    ``restore`` exits 0. Expected: the restored index equals the source's (render an ENUM
    value whose index is 0 as the number 0, which loads as the error value).
    Cause: ``datatier/mysql/rowtext.py`` (ENUM rendered by QUOTE as text)."""
    sandbox = use_sandbox_config
    name, db, copy = "t4-enum", "t4_enum", "t4_enum_copy"
    with sandbox.connect() as conn, conn.cursor() as cur:
        for each in (db, copy):
            cur.execute(f"DROP DATABASE IF EXISTS {each}")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY, e ENUM('a',''))")
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute(f"INSERT INTO {db}.t VALUES (1, 'a'), (2, ''), (3, 'not in the list')")
    sandbox.write_policy(
        name, f'engine = "mysql"\n[source]\nnode = "primary"\ndatabases = ["{db}"]\n'
    )
    try:
        code, made = cli_json(capsys, "backup", "run", name, "--json")
        assert code == 0
        restored = main(["restore", made["id"], "--rename", f"{db}={copy}"])
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT id, e + 0 FROM {db}.t ORDER BY id")
            before = cur.fetchall()
            cur.execute(f"SELECT id, e + 0 FROM {copy}.t ORDER BY id")
            after = cur.fetchall()
        assert after == before, f"restore exit {restored}: (id, index) {before} -> {after}"
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            for each in (db, copy):
                cur.execute(f"DROP DATABASE IF EXISTS {each}")
        clear_prefix(default_store(sandbox), name)
        (sandbox.root / "backups" / f"{name}.toml").unlink(missing_ok=True)
