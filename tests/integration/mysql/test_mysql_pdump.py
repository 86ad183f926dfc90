"""The parallel dump on the real sandbox: exactness of every type, one snapshot under
concurrent writes, the one-connection fallback, and what restore refuses up front."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.backup.manifest import Manifest, manifest_key
from datatier.backup.restore import find_backup
from datatier.backup.service import load_policy, run_backup
from datatier.cli import main
from datatier.config import load
from datatier.mysql import dumpplan
from datatier.mysql.catalogue import read_catalogue
from datatier.mysql.connection import connect, endpoint
from datatier.mysql.fastreader import RawConnection
from datatier.mysql.privileges import account_privileges
from datatier.mysql.rowtext import RowQuery, read_texts, uniform_text
from tests.integration.conftest import SandboxHandle, q, sql, wait_for

ZOO = "pd_zoo"
ZOO_TABLES = [
    "CREATE TABLE types (id INT PRIMARY KEY, ti TINYINT, bi BIGINT UNSIGNED, "
    "de DECIMAL(65,30), f FLOAT, d DOUBLE, b1 BIT(1), b64 BIT(64), "
    "l1 VARCHAR(40) CHARACTER SET latin1, u2 VARCHAR(20) CHARACTER SET ucs2, "
    "m3 TEXT CHARACTER SET utf8mb3, j JSON, bl LONGBLOB, vb VARBINARY(10), "
    "e ENUM('', 'a', 'b b'), s SET('x', 'y'), dt DATETIME(6), ts TIMESTAMP(6) NULL, "
    "tm TIME(2), y YEAR, g GEOMETRY, ip INET6, uu UUID, hid INT INVISIBLE DEFAULT 7, "
    "gen INT AS (ti * 2) VIRTUAL, da DATE)",
    # Character columns all utf8mb4 in one collation: the row CONCAT leaves them uncast.
    "CREATE TABLE uniform (id INT PRIMARY KEY, t VARCHAR(40), m MEDIUMTEXT, "
    "e ENUM('', 'a', 'b b'), s SET('x', 'y'), dt DATETIME(6), tm TIME, ip INET6, uu UUID, "
    "n DECIMAL(10,2)) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
    "CREATE TABLE collations (id INT PRIMARY KEY, a VARCHAR(20) COLLATE utf8mb4_general_ci, "
    "b VARCHAR(20) COLLATE utf8mb4_unicode_ci)",
    # NOT NULL columns of every kind: rendered without the NULL test.
    "CREATE TABLE notnull (id INT PRIMARY KEY, ti TINYINT NOT NULL, f FLOAT NOT NULL, "
    "de DECIMAL(8,3) NOT NULL, y YEAR NOT NULL, b BIT(9) NOT NULL, vb VARBINARY(8) NOT NULL, "
    "bl BLOB NOT NULL, dt DATETIME NOT NULL, t VARCHAR(20) NOT NULL, "
    "l1 VARCHAR(20) CHARACTER SET latin1 NOT NULL, j JSON NOT NULL)",
    # Text whose conversion to utf8mb4 is not exact goes as hex; ENUM error values as 0.
    "CREATE TABLE charsets (id INT PRIMARY KEY, ar VARCHAR(20) CHARACTER SET armscii8, "
    "sj TEXT CHARACTER SET sjis, a VARCHAR(20) CHARACTER SET ascii NOT NULL, "
    "w VARCHAR(20) CHARACTER SET swe7, l2 VARCHAR(20) CHARACTER SET latin2, "
    "e ENUM('a', ''), er ENUM('x', 'y') CHARACTER SET armscii8 NOT NULL, "
    "st SET('p', 'q') CHARACTER SET sjis)",
    "CREATE TABLE myisam (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM",
    "CREATE TABLE aria (id INT PRIMARY KEY, v TEXT) ENGINE=Aria",
    "CREATE TABLE unique_only (code CHAR(3) NOT NULL, n INT, UNIQUE KEY (code))",
    "CREATE TABLE parted (id INT PRIMARY KEY, v INT) PARTITION BY HASH (id) PARTITIONS 3",
    "CREATE TABLE versioned (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING",
    "CREATE SEQUENCE seq START WITH 100 INCREMENT BY 5",
]
COMPARED = [
    "types",
    "charsets",
    "uniform",
    "collations",
    "notnull",
    "myisam",
    "aria",
    "unique_only",
    "parted",
    "versioned",
]


@pytest.fixture(scope="module")
def zoo(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {ZOO}")
        cur.execute(f"CREATE DATABASE {ZOO}")
        cur.execute(f"USE {ZOO}")
        cur.execute("SET SESSION sql_mode = ''")
        for statement in ZOO_TABLES:
            cur.execute(statement)
        every_byte = bytes(range(256))
        ones = "1" * 64
        cur.execute(
            "INSERT INTO types (id, ti, bi, de, f, d, b1, b64, l1, u2, m3, j, bl, vb, e, s, dt, "
            "ts, tm, y, g, ip, uu, hid, da) VALUES "
            "(1, -128, 18446744073709551615, "
            "'-12345678901234567890.123456789012345678901234567890', "
            f"1/3, 0.1e0 + 0.2e0, b'1', b'{ones}', "
            "'caf\\xe9 \\'q\\' \\\\ \\0 \\Z', 'ü\\n', 'a\\rb\\n;\\n-- x', "
            "'{\"k\": [1, \"ü😀\"]}', %s, X'00', '', 'x,y', '0000-00-00 00:00:00', "
            "'2038-01-19 03:14:07.999999', '-838:59:59.99', 0, "
            "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), '::ffff:1.2.3.4', "
            "'123e4567-e89b-12d3-a456-426655440000', 9, '0000-00-00'),"
            "(2, NULL, 0, 0, -0e0, 5e-324, b'0', b'0', '', '', '', NULL, '', '', 'b b', '',"
            " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
            "(3, 1, 1, 1, 3.4028234e38, -1.7976931348623157e308, NULL, NULL, NULL, NULL, NULL,"
            " NULL, NULL, NULL, NULL, NULL, '9999-12-31 23:59:59.999999', NULL, '00:00:00', 2155,"
            " ST_GeomFromText('POINT(1.5 -2.25)'), NULL, NULL, NULL, '9999-12-31')",
            (every_byte * 3000,),
        )
        hostile = ["it's", "back\\slash", "nul\0", "ctrl\x1a", "é😀\n;--", "NULL", ""]
        cur.executemany(
            "INSERT INTO uniform VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (i, None, None, None, None, None, None, None, None, None)
                if i == 0
                else (
                    i, hostile[i % 7], hostile[(i + 3) % 7] * i, ["", "a", "b b"][i % 3],
                    ["x", "y", "x,y", ""][i % 4], f"2026-01-{i % 28 + 1:02d} 01:02:03.000004",
                    "-01:02:03", "2001:db8::1", "123e4567-e89b-12d3-a456-426655440000",
                    i / 4,
                )
                for i in range(30)
            ],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO collations VALUES (%s, %s, %s)",
            [(i, hostile[i % 7], hostile[(i + 1) % 7]) for i in range(10)],
        )
        cur.executemany(
            "INSERT INTO notnull VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (i, i - 5, i / 3, -i / 7, 0 if i == 0 else 1901 + i, i * 37 % 512,
                 bytes([i, 0, 39, 92]), every_byte[i:], "0000-00-00 00:00:00" if i == 0
                 else f"2026-02-{i + 1:02d} 03:04:05", hostile[i % 7], "caf\xe9"[: i % 5],
                 f'{{"k": "{i}"}}')
                for i in range(12)
            ],
        )  # fmt: skip
        cur.execute(
            "INSERT INTO charsets VALUES "
            "(1, _armscii8 X'78FF2F2A', _sjis X'835C5C815F', X'636166C3A9', _swe7 X'5C27FF', "
            "_latin2 X'27A55C', 'nope', 'nope', 'p,q'), "
            "(2, _armscii8 X'', _sjis X'', '', '', '', '', 'x', ''), "
            "(3, NULL, NULL, X'00271A5C', NULL, NULL, NULL, 'y', NULL), "
            "(4, _armscii8 X'FF', _sjis X'5C', 'x', _swe7 X'00', _latin2 X'FF', 'a', 'nope', 'q')"
        )
        cur.executemany("INSERT INTO myisam VALUES (%s, %s)", [(i, f"m{i}") for i in range(50)])
        cur.executemany("INSERT INTO aria VALUES (%s, %s)", [(i, "a" * i) for i in range(50)])
        cur.executemany("INSERT INTO unique_only VALUES (%s, %s)", [("abc", 1), ("ABD", 2)])
        cur.executemany("INSERT INTO parted VALUES (%s, %s)", [(i, i * i) for i in range(100)])
        cur.executemany("INSERT INTO versioned VALUES (%s, %s)", [(i, i) for i in range(10)])
        cur.execute("UPDATE versioned SET v = v + 1 WHERE id < 5")
        cur.execute("SELECT NEXTVAL(seq), NEXTVAL(seq)")
    sandbox.wait_replicated()
    sandbox.write_policy(
        "pd-zoo", f'engine = "mysql"\n[source]\nnode = "replica1"\ndatabases = ["{ZOO}"]\n'
    )
    yield
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {ZOO}")


def contents(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    """Each compared table's rows (visible and invisible columns) in key order."""
    found: dict[str, Any] = {}
    with sandbox.connect() as conn, conn.cursor() as cur:
        for table in COMPARED:
            cur.execute(f"SELECT * FROM {q(database)}.{table} ORDER BY 1")
            found[table] = cur.fetchall()
        cur.execute(f"SELECT hid, HEX(f), HEX(d) FROM {q(database)}.types ORDER BY id")
        found["exact floats and invisible"] = cur.fetchall()
        cur.execute(
            "SELECT id, HEX(ar), HEX(sj), HEX(a), HEX(w), HEX(l2), e + 0, er + 0, HEX(st) "
            f"FROM {q(database)}.charsets ORDER BY id"
        )
        found["stored bytes and enum indexes"] = cur.fetchall()
        cur.execute(f"SHOW CREATE SEQUENCE {q(database)}.seq")
        found["sequence"] = cur.fetchone()[1]
    return found


def test_server_and_client_rendering_are_byte_identical(sandbox: SandboxHandle, zoo: None) -> None:
    """Rows with large values are rendered client-side; both paths must agree exactly."""
    ep = endpoint(sandbox.config.mysql, "primary")
    with connect(ep) as conn:
        catalogue = read_catalogue(conn, lambda db: db == ZOO, lambda db, t: True)
    uniform = {t.name for t in catalogue.tables if uniform_text(t.dumped_columns)}
    assert "uniform" in uniform and not {"types", "collations"} & uniform, "both paths run"
    (notnull,) = [t for t in catalogue.tables if t.name == "notnull"]
    assert not any(c.nullable for c in notnull.columns), "NOT NULL columns render without IF"
    reader = RawConnection(ep)
    try:
        reader.execute("SET SESSION time_zone = '+00:00'")
        for table in catalogue.tables:
            if table.kind != "table":
                continue
            server = [t for b in read_texts(reader, RowQuery(table, 1 << 30)) for t in b]
            client = [t for b in read_texts(reader, RowQuery(table, -1)) for t in b]
            assert server, table.name
            for one, other in zip(server, client, strict=True):
                at = next(
                    (i for i, (x, y) in enumerate(zip(one, other, strict=False)) if x != y), None
                )
                assert one == other, (
                    table.name,
                    at,
                    one[:at][-80:],
                    one[at:][:80],
                    other[at:][:80],
                )
    finally:
        reader.close()


@pytest.mark.parametrize("key", ["id INT PRIMARY KEY", "id INT NOT NULL, UNIQUE KEY (id)"])
def test_a_large_row_mid_range_switches_paths_without_losing_or_reordering_rows(
    sandbox: SandboxHandle, key: str
) -> None:
    """The cheap query stops at the first row with a value over its share of the threshold;
    the rest of the range comes from the raw-carrying query, skipping what was read."""
    database = "pd_switch"
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {database}")
        cur.execute(f"CREATE DATABASE {database}")
        cur.execute(f"CREATE TABLE {database}.t ({key}, a TEXT, b BLOB, c INT)")
        for i in range(1, 301):
            big = i in (40, 41, 250)  # two in a row, then one far on
            text = "x'\\\0" * (300 if big else 2) + str(i)
            blob = None if i % 7 else bytes([i % 256, 0, 39])
            cur.execute(f"INSERT INTO {database}.t VALUES (%s, %s, %s, %s)", (i, text, blob, i))
        conn.commit()
    ep = endpoint(sandbox.config.mysql, "primary")
    with connect(ep) as conn:
        catalogue = read_catalogue(conn, lambda db: db == database, lambda db, t: True)
    table = catalogue.tables[0]
    reader = RawConnection(ep)
    try:
        server = [t for b in read_texts(reader, RowQuery(table, 1 << 30)) for t in b]
        mixed_query = RowQuery(table, 1000)  # share 500 bytes: rows 40, 41 and 250 go raw
        assert mixed_query.has_fast_path
        mixed = [t for b in read_texts(reader, mixed_query) for t in b]
        assert len(server) == 300
        assert mixed == server
        reader.execute("SELECT 1")  # the drained connection is still usable
    finally:
        reader.close()
        sql(sandbox, "primary", f"DROP DATABASE {database}")


def test_every_type_engine_and_table_kind_round_trips(
    use_sandbox_config: SandboxHandle, zoo: None
) -> None:
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "pd-zoo"))
    assert sorted(manifest.consistency["untransactional_tables"]) == [
        f"{ZOO}.aria",
        f"{ZOO}.myisam",
    ]
    kinds = {t.name: t.kind for t in manifest.tables}
    assert kinds["seq"] == "sequence" and kinds["types"] == "table"
    copy = "pd zoo copy"
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {q(copy)}")
    assert main(["restore", manifest.backup_id, "--rename", f"{ZOO}={copy}"]) == 0
    restored, source = contents(sandbox, copy), contents(sandbox, ZOO)
    for key in source:
        assert restored[key] == source[key], key
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT NEXTVAL({q(copy)}.seq)")
        # 100 and 105 were handed out; like a server restart, a restore may skip the cache
        assert cur.fetchone()[0] >= 110, "a restored sequence never hands out a value again"
    assert main(["backups", "verify", manifest.backup_id, "--restore-test"]) == 0
    sql(sandbox, "primary", f"DROP DATABASE {q(copy)}")


# -- one snapshot under concurrent writes --------------------------------------------------

LIVE = "pd_live"
ACCOUNTS = 400
START_BALANCE = 1000


class Writer(threading.Thread):
    """Moves money between accounts in transactions that touch three tables, as fast as it
    can: a snapshot torn between workers would break the invariants."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        super().__init__(daemon=True)
        self.conn = sandbox.connect()
        self.stop = threading.Event()
        self.commits = 0

    def run(self) -> None:
        rng = random.Random(7)
        with self.conn.cursor() as cur:
            cur.execute(f"USE {LIVE}")
            while not self.stop.is_set():
                a, b = rng.sample(range(1, ACCOUNTS + 1), 2)
                amount = rng.randint(1, 50)
                cur.execute("BEGIN")
                cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, a))
                cur.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, b))
                cur.execute(
                    "INSERT INTO ledger (account, delta) VALUES (%s, %s), (%s, %s)",
                    (a, -amount, b, amount),
                )
                cur.execute("INSERT INTO notes (body) VALUES (%s)", ("n" * rng.randint(0, 3000),))
                if rng.random() < 0.2:
                    cur.execute("DELETE FROM notes ORDER BY id LIMIT 1")
                cur.execute("COMMIT")
                self.commits += 1
        self.conn.close()


@pytest.fixture
def live(sandbox: SandboxHandle) -> Iterator[None]:
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {LIVE}")
        cur.execute(f"CREATE DATABASE {LIVE}")
        cur.execute(f"USE {LIVE}")
        cur.execute("CREATE TABLE accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)")
        cur.execute(
            "CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT, delta INT)"
        )
        cur.execute("CREATE TABLE notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, body MEDIUMTEXT)")
        cur.executemany(
            "INSERT INTO accounts VALUES (%s, %s)",
            [(i, START_BALANCE) for i in range(1, ACCOUNTS + 1)],
        )
        cur.executemany(
            "INSERT INTO ledger (account, delta) VALUES (%s, %s)",
            [(i, 0) for i in range(1, 20001)],
        )
    sandbox.wait_replicated()
    sandbox.write_policy(
        "pd-live",
        # bundle_tables = false: the small tables are cut into key ranges here
        'engine = "mysql"\njobs = 4\nchunk_mb = 1\nbundle_tables = false\n'
        f'[source]\nnode = "primary"\ndatabases = ["{LIVE}"]\n',
    )
    yield
    sql(sandbox, "replica2", "START SLAVE")
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {LIVE}")
    sandbox.wait_replicated(timeout=60)


def replica_state(sandbox: SandboxHandle, node: str, database: str) -> dict[str, Any]:
    with sandbox.connect(node) as conn, conn.cursor() as cur:
        found = {}
        for table in ("accounts", "ledger", "notes"):
            cur.execute(f"CHECKSUM TABLE {q(database)}.{table} EXTENDED")
            found[table] = cur.fetchone()[1]
            cur.execute(f"SELECT COUNT(*) FROM {q(database)}.{table}")
            found[f"{table} rows"] = cur.fetchone()[0]
        return found


def test_parallel_dump_under_writes_restores_exactly_its_gtid(
    use_sandbox_config: SandboxHandle, live: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = use_sandbox_config
    monkeypatch.setattr(dumpplan, "MIN_RANGE_BYTES", 1)  # split even these small tables
    sql(sandbox, "replica2", "STOP SLAVE")  # the reference stops at the backup's GTID later
    writer = Writer(sandbox)
    writer.start()
    wait_for(lambda: writer.commits > 50, 30)
    loaded = load(str(sandbox.config_path), environ={})
    try:
        manifest = run_backup(loaded, load_policy(loaded, "pd-live"))
    finally:
        before = writer.commits
        time.sleep(0.3)
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.commits > before, "writes went on during and after the backup"
    split = {t.name: t.split_points for t in manifest.tables}
    assert len(split["ledger"]) >= 1, "the test must exercise key ranges"
    gtid = manifest.consistency["gtid_pos"]
    assert manifest.options["jobs"] == 4 and "BACKUP STAGE" in manifest.consistency["method"]

    sql(sandbox, "replica2", f"START SLAVE UNTIL master_gtid_pos = '{gtid}'")

    def stopped_at_gtid() -> bool:
        with sandbox.connect("replica2") as conn, conn.cursor() as cur:
            cur.execute("SELECT @@gtid_slave_pos")
            return bool(cur.fetchone()[0] == gtid)

    wait_for(stopped_at_gtid, 60, step=0.1)
    wait_for(lambda: _sql_thread_stopped(sandbox), 30, step=0.1)
    copy = "pd_live_copy"
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {copy}")
    assert main(["restore", manifest.backup_id, "--rename", f"{LIVE}={copy}", "--no-binlog"]) == 0
    try:
        assert replica_state(sandbox, "primary", copy) == replica_state(sandbox, "replica2", LIVE)
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT SUM(balance) FROM {copy}.accounts")
            assert cur.fetchone()[0] == ACCOUNTS * START_BALANCE
            cur.execute(
                f"SELECT COUNT(*) FROM {copy}.accounts a JOIN (SELECT account, SUM(delta) s "
                f"FROM {copy}.ledger GROUP BY account) l ON l.account = a.id "
                f"WHERE a.balance <> {START_BALANCE} + l.s"
            )
            assert cur.fetchone()[0] == 0, "every balance matches its ledger"
    finally:
        with sandbox.connect() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"DROP DATABASE IF EXISTS {copy}")


def _sql_thread_stopped(sandbox: SandboxHandle) -> bool:
    with sandbox.connect("replica2") as conn, conn.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        row = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
        return bool(row["Slave_SQL_Running"] == "No")


# -- fallbacks and refusals ----------------------------------------------------------------


@pytest.fixture
def no_reload_user(sandbox: SandboxHandle) -> Iterator[dict[str, str]]:
    sql(sandbox, "primary", "DROP USER IF EXISTS 'dt_noreload'@'127.0.0.1'")
    sql(sandbox, "primary", "CREATE USER 'dt_noreload'@'127.0.0.1' IDENTIFIED BY 'nr-secret'")
    sql(
        sandbox,
        "primary",
        "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, SLAVE MONITOR ON *.* "
        "TO 'dt_noreload'@'127.0.0.1'",
    )
    sandbox.wait_replicated()
    yield {"DATATIER_MYSQL__USER": "dt_noreload", "DATATIER_MYSQL__PASSWORD": "nr-secret"}
    sql(sandbox, "primary", "DROP USER IF EXISTS 'dt_noreload'@'127.0.0.1'")


def test_without_reload_one_snapshot_connection_still_gives_an_exact_backup(
    sandbox: SandboxHandle, zoo: None, no_reload_user: dict[str, str]
) -> None:
    loaded = load(str(sandbox.config_path), environ=no_reload_user)
    manifest = run_backup(loaded, load_policy(loaded, "pd-zoo"))
    assert manifest.options["jobs"] == 1
    assert "one consistent-snapshot transaction" in manifest.consistency["method"]
    assert manifest.consistency["gtid_pos"] and manifest.consistency["binlog_pos"]
    copy = "pd_noreload"
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {copy}")
    admin = load(str(sandbox.config_path), environ={})
    from datatier.backup.engine import RestoreOptions
    from datatier.backup.restore import locate_backup, restore_backup

    catalog, found = locate_backup(admin, manifest.backup_id)
    restore_backup(admin, found, catalog, RestoreOptions(target="primary", renames={ZOO: copy}))
    assert contents(sandbox, copy) == contents(sandbox, ZOO)
    sql(sandbox, "primary", f"DROP DATABASE {copy}")


def test_a_look_alike_account_s_reload_is_not_credited(
    sandbox: SandboxHandle, zoo: None, no_reload_user: dict[str, str]
) -> None:
    """`DT_NORELOAD` holding RELOAD is another account (user names are case-sensitive);
    information_schema's GRANTEE compares collation-blind, so an IN list credited its
    grants to dt_noreload, and the backup took FLUSH TABLES WITH READ LOCK and failed."""
    sql(sandbox, "primary", "DROP USER IF EXISTS 'DT_NORELOAD'@'127.0.0.1'")
    sql(sandbox, "primary", "CREATE USER 'DT_NORELOAD'@'127.0.0.1' IDENTIFIED BY 'other-pw-9'")
    try:
        sql(sandbox, "primary", "GRANT RELOAD, SELECT ON *.* TO 'DT_NORELOAD'@'127.0.0.1'")
        sandbox.wait_replicated()
        loaded = load(str(sandbox.config_path), environ=no_reload_user)
        ep = endpoint(loaded.config.mysql, "primary")
        with connect(ep) as conn:
            found = account_privileges(conn)
        assert found.account == "dt_noreload@127.0.0.1"
        assert not found.holds(("RELOAD",)) and found.holds(("SELECT",))
        manifest = run_backup(loaded, load_policy(loaded, "pd-zoo"))
        assert "one consistent-snapshot transaction" in manifest.consistency["method"]
    finally:
        sql(sandbox, "primary", "DROP USER IF EXISTS 'DT_NORELOAD'@'127.0.0.1'")


def test_restore_refuses_a_target_whose_packet_limit_is_too_small(
    use_sandbox_config: SandboxHandle, zoo: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = use_sandbox_config
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "pd-zoo"))
    assert manifest.options["max_statement_bytes"] > 1_500_000, "the 768 KB blob row"
    _, store = find_backup(loaded, manifest.backup_id)
    doc = json.loads(store.get_bytes(manifest_key(manifest.policy, manifest.backup_id)))
    doc["options"]["max_statement_bytes"] = 2**31
    store.put_bytes(manifest_key(manifest.policy, manifest.backup_id), json.dumps(doc).encode())
    copy = "pd_packet"
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {copy}")
    assert main(["restore", manifest.backup_id, "--rename", f"{ZOO}={copy}"]) == 2
    err = capsys.readouterr().err
    assert "max_allowed_packet" in err and "SET GLOBAL max_allowed_packet" in err
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME=%s", (copy,)
        )
        assert cur.fetchone()[0] == 0


def test_manifest_records_a_gtid_every_replica_understands(
    sandbox: SandboxHandle, zoo: None
) -> None:
    loaded = load(str(sandbox.config_path), environ={})
    manifest: Manifest = run_backup(loaded, load_policy(loaded, "pd-zoo"))
    point = manifest.consistency
    assert point["binlog_file"].startswith("replica1-bin.") and point["binlog_pos"] > 0
    assert point["gtid_pos"].startswith("0-1-")
    assert point["commit_block_seconds"] < 5


# -- secondary indexes built after the data -----------------------------------------------

KEYED = "pd keyed"
KEYED_TABLES = {
    "plain": "CREATE TABLE `plain` (id INT PRIMARY KEY, a INT, b VARCHAR(40), c TEXT, "
    "UNIQUE KEY `u, (b)` (b), KEY `we``ird, KEY (x)` (a, b), INDEX pre (c(10)) COMMENT 'x, y', "
    "KEY ign (a) IGNORED)",
    "parted": "CREATE TABLE parted (id INT PRIMARY KEY, a INT, KEY (a)) "
    "PARTITION BY HASH (id) PARTITIONS 3",
    "myisam": "CREATE TABLE myisam (id INT PRIMARY KEY, a INT, KEY (a)) ENGINE=MyISAM",
    "versioned": "CREATE TABLE versioned (id INT PRIMARY KEY, a INT, KEY (a)) "
    "WITH SYSTEM VERSIONING",
    "fulltext": "CREATE TABLE `fulltext` (id INT PRIMARY KEY, a INT, t TEXT, KEY (a), "
    "FULLTEXT KEY (t))",
    "fk": "CREATE TABLE fk (id INT PRIMARY KEY, p INT, KEY (p), "
    "CONSTRAINT f FOREIGN KEY (p) REFERENCES plain (id))",
}
DEFERRED = {"plain", "parted"}


def _keyed_state(sandbox: SandboxHandle, database: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with sandbox.connect() as conn, conn.cursor() as cur:
        for table in KEYED_TABLES:
            cur.execute(f"SHOW CREATE TABLE {q(database)}.{q(table)}")
            found[f"{table} definition"] = cur.fetchone()[1]
            cur.execute(f"SELECT * FROM {q(database)}.{q(table)} ORDER BY id")
            found[f"{table} rows"] = cur.fetchall()
    return found


def _alters_logged(sandbox: SandboxHandle, database: str) -> set[str]:
    """Tables of ``database`` that got an ALTER TABLE ... ADD in the primary's binlog (read
    as bytes: other tests' events hold arbitrary bytes)."""
    altered: set[str] = set()
    reader = RawConnection(endpoint(sandbox.config.mysql, "primary"))
    try:
        logs = [row[0] for row in reader.rows("SHOW BINARY LOGS")]
        for name in logs[-2:]:
            assert name is not None
            for row in reader.rows(f"SHOW BINLOG EVENTS IN '{name.decode()}'"):
                info = row[-1] or b""
                if f"use {q(database)}".encode() in info and b"ALTER TABLE" in info:
                    altered.update(
                        t for t in KEYED_TABLES if f"ALTER TABLE {q(t)} ADD".encode() in info
                    )
    finally:
        reader.close()
    return altered


@pytest.mark.parametrize("flag", ["--keys-after-data", "--keys-with-data"])
def test_secondary_indexes_after_the_data_restore_the_same_tables(
    use_sandbox_config: SandboxHandle, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    """Only plain keys of InnoDB tables move, and the restored definitions are exactly the
    source's (index names with commas, quotes and KEY in them; prefix, IGNORED, unique and
    partitioned tables); tables on other engines, versioned, with FULLTEXT or a foreign key
    keep their indexes in CREATE TABLE."""
    from datatier.mysql import load as load_module

    sandbox = use_sandbox_config
    monkeypatch.setattr(load_module, "DEFER_MIN_BYTES", 1)  # every table with data qualifies
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {q(KEYED)}")
        cur.execute(f"CREATE DATABASE {q(KEYED)}")
        cur.execute(f"USE {q(KEYED)}")
        for statement in KEYED_TABLES.values():
            cur.execute(statement)
        for i in range(1, 201):
            cur.execute(
                "INSERT INTO plain VALUES (%s, %s, %s, %s)", (i, i % 7, f"b{i}", "c" * (i % 30))
            )
            for table in ("parted", "myisam", "versioned"):
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s)", (i, i % 5))
            cur.execute("INSERT INTO `fulltext` VALUES (%s, %s, %s)", (i, i, f"word{i}"))
            cur.execute("INSERT INTO fk VALUES (%s, %s)", (i, i))
        conn.commit()
    sandbox.write_policy(  # bundles never defer keys: these small tables stand for big ones
        "pd-keyed",
        'engine = "mysql"\nbundle_tables = false\n'
        f'[source]\nnode = "primary"\ndatabases = ["{KEYED}"]\n',
    )
    loaded = load(str(sandbox.config_path), environ={})
    manifest = run_backup(loaded, load_policy(loaded, "pd-keyed"))
    copy = f"pd keyed copy {flag}"
    sql(sandbox, "primary", f"DROP DATABASE IF EXISTS {q(copy)}")
    assert main(["restore", manifest.backup_id, "--rename", f"{KEYED}={copy}", flag]) == 0
    restored, source = _keyed_state(sandbox, copy), _keyed_state(sandbox, KEYED)
    for key in source:
        assert restored[key] == source[key], key
    expected = DEFERRED if flag == "--keys-after-data" else set()
    assert _alters_logged(sandbox, copy) == expected
    sql(sandbox, "primary", f"DROP DATABASE {q(copy)}")
    sql(sandbox, "primary", f"DROP DATABASE {q(KEYED)}")
