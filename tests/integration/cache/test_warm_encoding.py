"""``cache warm`` row mode encodes a batch at a time (keys and values built over the whole
batch, rows as dicts built by the C driver, replies read in bulk). These tests hold it to the
bytes of the row-by-row path it replaced, on hostile values, against the sandbox's replica
and a real memcached."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import MySQLdb
import MySQLdb.converters
import pytest
from MySQLdb.constants import FIELD_TYPE
from pymemcache.client.hash import HashClient

from datatier.cache.keys import KeyBuilder, KeyValueRefused
from datatier.cache.protocol import StoreBatch, StoreItem
from datatier.cache.serialize import serializer_for
from datatier.cache.warmset import RowFormat, SerializerName
from datatier.mysql.connection import endpoint
from datatier.mysql.fastreader import open_connection
from tests.integration.cache.test_cache import Memcached, run
from tests.integration.conftest import SandboxHandle, sql

pytestmark = pytest.mark.integration

HOSTILE_ROWS: list[tuple[Any, ...]] = [
    (
        1, "c1", 'quote" \'single\' back\\slash \x00nul \x01\n\t ☃ 😀 \u2028',
        b"\xff\x00\xfe'\"\\\n\x80",
        "12345678901234567890123456789012345.123456789012345678901234567890",
        "0000-00-00", "2020-02-29 23:59:59.123456", "-838:59:59.000", 1e308, 2155, "b", "x,y",
    ),
    (2, "c2", None, None, None, None, None, None, None, None, None, None),
    (
        3, "c3", "", b"", "-0.000000000000000000000000000001", "1000-01-01",
        "0000-00-00 00:00:00", "00:00:00", -0.0, 1901, "a", "",
    ),
    (
        4, "c4", "{\"json\": [1, 2]} </script> \\u0041", b"\x00" * 5, "0.5", "9999-12-31",
        "1970-01-01 00:00:00.000001", "12:34:56.789", 0.1, 2000, None, "y",
    ),
]  # fmt: skip
COLUMNS = "id, code, txt, bin, amount, d, ts, t, f, y, e, s"

QUERIES: dict[str, tuple[SerializerName, RowFormat, str, str]] = {
    "json_dict": ("json", "dict", f"SELECT {COLUMNS} FROM games.hostile", "hj:{id}"),
    "json_list": ("json", "list", f"SELECT {COLUMNS} FROM games.hostile", "hl:{code}:{id}"),
    "pickle_dict": ("pickle", "dict", f"SELECT {COLUMNS} FROM games.hostile", "hp:{id}"),
    "pickle_list": ("pickle", "list", f"SELECT {COLUMNS} FROM games.hostile", "hq:{id}"),
    "raw_blob": ("raw", "dict", "SELECT id, bin AS value FROM games.hostile", "hr:{id}"),
    "raw_text": ("raw", "dict", "SELECT id, txt AS value, code FROM games.hostile", "ht:{id}"),
    # a name given twice: the last value wins, as dict(zip()) has it
    "repeated": ("json", "dict", "SELECT id, txt AS x, code AS x FROM games.hostile", "hd:{x}"),
    # a key from a text column: some rows' keys have spaces and are refused one by one
    "spaced": ("json", "dict", f"SELECT {COLUMNS} FROM games.hostile", "hs:{txt}"),
}


@pytest.fixture(scope="module")
def hostile(sandbox: SandboxHandle) -> SandboxHandle:
    sql(sandbox, "primary", "CREATE DATABASE IF NOT EXISTS games CHARACTER SET utf8mb4")
    sql(sandbox, "primary", "DROP TABLE IF EXISTS games.hostile")
    sql(
        sandbox,
        "primary",
        "CREATE TABLE games.hostile (id INT PRIMARY KEY, code VARCHAR(8), txt VARCHAR(200), "
        "bin BLOB, amount DECIMAL(65,30), d DATE, ts DATETIME(6), t TIME(3), f DOUBLE, "
        "y YEAR, e ENUM('a','b'), s SET('x','y')) CHARACTER SET utf8mb4",
    )
    with sandbox.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")  # zero dates
        cur.executemany(
            f"INSERT INTO games.hostile ({COLUMNS}) VALUES ({', '.join(['%s'] * 12)})",
            HOSTILE_ROWS,
        )
    sandbox.wait_replicated()
    return sandbox


@pytest.fixture
def mc3(test_port_base: int) -> Iterator[Memcached]:
    node = Memcached(test_port_base + 52).start()
    yield node
    node.stop()


def warm_set_text(name: str) -> str:
    serializer, row_format, statement, key = QUERIES[name]
    return (
        f'batch_size = 3\n[queries.{name}]\nmode = "row"\nsql = "{statement}"\n'
        f'key = "{key}"\nserializer = "{serializer}"\nrow_format = "{row_format}"\nttl = 600\n'
    )


def row_by_row(sandbox: SandboxHandle, name: str) -> dict[bytes, bytes]:
    """What the row-by-row path wrote: rows as tuples from a plain mysqlclient cursor (a
    Python converter for DECIMAL text), one dict(zip()), key and value per row."""
    serializer, row_format, statement, template = QUERIES[name]
    conv = dict(MySQLdb.converters.conversions)
    if serializer == "json":
        for code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
            conv[code] = lambda v: v.decode() if isinstance(v, bytes) else v
    ep = endpoint(sandbox.config.mysql, "replica1")
    conn = open_connection(ep, conv=conv, init_command="SET SESSION time_zone = '+00:00'")
    try:
        cur = conn.cursor()
        cur.execute(statement)
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        conn.close()  # type: ignore[no-untyped-call]
    keys = KeyBuilder(
        set_name=name, query_name=name, sql=statement, template=template, function=None
    )
    ser = serializer_for(serializer, columns, row_format, 5)
    found = {}
    for row in rows:
        try:
            key = keys.build(None, dict(zip(columns, row, strict=True)))
        except KeyValueRefused:  # a NULL key column
            continue
        if b" " not in key and b"\x00" not in key and b"\n" not in key:
            found[key] = ser.encode_row(row)
    return found


@pytest.mark.parametrize("name", list(QUERIES))
def test_batch_encoding_writes_the_row_by_row_bytes(
    name: str,
    hostile: SandboxHandle,
    mc3: Memcached,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATATIER_CONFIG", str(hostile.config_path))
    monkeypatch.setenv("DATATIER_CACHE__WARM_SETS_DIR", str(tmp_path))
    (tmp_path / "hostile.toml").write_text(warm_set_text(name))
    expected = row_by_row(hostile, name)
    assert len(expected) >= (1 if name == "spaced" else 4)

    code, report, err = run(capsys, "cache", "warm", "hostile", "--server", mc3.address, "--json")

    assert report["keys_written"] == len(expected), (report, err)
    with mc3.node() as node:
        got = {key: value for key, (_, value) in node.get_many(list(expected)).items()}
        assert int(node.stats()["curr_items"]) == len(expected)
    assert got == expected
    if name == "spaced":  # rows 1 and 4 carry spaces, 2 has no txt (NULL: no key)
        assert code == 1 and report["failed"] == 3
    else:
        assert code == 0 and report["failed"] == 0, err


def test_an_empty_key_is_refused_not_sent(
    hostile: SandboxHandle,
    mc3: Memcached,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An empty key went out as ``add  0 ...``: memcached read the flags as the key and the
    value as a command, and the replies no longer matched the keys."""
    monkeypatch.setenv("DATATIER_CONFIG", str(hostile.config_path))
    monkeypatch.setenv("DATATIER_CACHE__WARM_SETS_DIR", str(tmp_path))
    (tmp_path / "empty.toml").write_text(
        '[queries.e]\nmode = "row"\nsql = "SELECT id, txt FROM games.hostile ORDER BY id"\n'
        'key = "{txt}"\n'
    )
    code, report, _ = run(capsys, "cache", "warm", "empty", "--server", mc3.address, "--json")
    assert code == 1
    assert report["failed"] == 4 and report["keys_written"] == 0  # a NULL txt is no key
    assert any("the key is empty" in e for e in report["queries"][0]["key_errors"])
    assert mc3.stats()["curr_items"] == "0" and mc3.get("None") is None


BINARY_KEY_ROWS = [(1, b"plain1"), (2, None), (3, None), (4, b"\xff\xfe"), (5, "ü".encode())]


@pytest.mark.parametrize("row_format", ["dict", "list"])
def test_binary_and_null_key_columns(
    row_format: str,
    hostile: SandboxHandle,
    mc3: Memcached,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: a VARBINARY key column gave the key ``h:r:b'plain1'`` (Python's bytes
    repr) and two rows with a NULL key column shared ``h:r:None``, so one row's value was
    served for the other. Bytes go in decoded as UTF-8; NULL or non-UTF-8 refuse the row's
    key, named in the report; the batch path (row_format) and one-by-one agree."""
    sql(hostile, "primary", "DROP TABLE IF EXISTS games.binkeys")
    sql(hostile, "primary", "CREATE TABLE games.binkeys (id INT PRIMARY KEY, k VARBINARY(16))")
    with hostile.connect() as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO games.binkeys VALUES (%s, %s)", BINARY_KEY_ROWS)
    hostile.wait_replicated()
    monkeypatch.setenv("DATATIER_CONFIG", str(hostile.config_path))
    monkeypatch.setenv("DATATIER_CACHE__WARM_SETS_DIR", str(tmp_path))
    (tmp_path / "bin.toml").write_text(
        f'batch_size = 5\n[queries.r]\nmode = "row"\nrow_format = "{row_format}"\n'
        'sql = "SELECT id, k FROM games.binkeys ORDER BY id"\nkey = "h:r:{k}"\n'
    )
    code, report, _ = run(capsys, "cache", "warm", "bin", "--server", mc3.address, "--json")

    assert code == 1 and report["keys_written"] == 2 and report["failed"] == 3, report
    errors = report["queries"][0]["key_errors"]
    assert errors.count("query r: key rejected: key column k is NULL") == 2, errors
    assert "query r: key rejected: key column k is binary, not UTF-8" in errors
    assert mc3.stats()["curr_items"] == "2"
    assert mc3.get("h:r:plain1") is not None and mc3.get("h:r:ü") is not None
    assert mc3.get("h:r:None") is None and mc3.get("h:r:b'plain1'") is None


def test_bulk_replies_keep_each_items_answer(mc3: Memcached) -> None:
    """Stored, present and too large items mixed over several pipelined slices: each
    answer stays with its item, and the connection stays usable."""
    with mc3.node() as node:
        assert node.store_many([StoreItem(b"k%d" % i, b"old") for i in range(0, 3000, 7)]) == [
            b"STORED"
        ] * len(range(0, 3000, 7))
        values = [b"v" * (i % 300) for i in range(3000)]
        values[1234] = values[2999] = b"h" * (2 << 20)
        answers = node.store_batch(
            StoreBatch([b"k%d" % i for i in range(3000)], values, 3, 600), "add"
        )
        assert len(answers) == 3000
        for i, answer in enumerate(answers):
            if i in (1234, 2999):
                assert b"too large" in answer, (i, answer)
            elif i % 7 == 0:
                assert answer == b"NOT_STORED", (i, answer)
            else:
                assert answer == b"STORED", (i, answer)
        found = node.get_many([b"k1", b"k7", b"k1234", b"k2998"])
        assert found == {b"k1": (3, values[1]), b"k7": (0, b"old"), b"k2998": (3, values[2998])}
        assert node.store_batch(StoreBatch([b"k1"], [b"new"], [5], [0]), "set") == [b"STORED"]
        assert node.get_many([b"k1"]) == {b"k1": (5, b"new")}


def test_two_nodes_get_the_keys_where_hashclient_looks(
    hostile: SandboxHandle,
    mc3: Memcached,
    test_port_base: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Split per node (with a TTL per key, from the jitter): an app's HashClient over the
    same servers reads every key, and each node holds only its own."""
    other = Memcached(test_port_base + 53).start()
    try:
        monkeypatch.setenv("DATATIER_CONFIG", str(hostile.config_path))
        monkeypatch.setenv("DATATIER_CACHE__WARM_SETS_DIR", str(tmp_path))
        (tmp_path / "spread.toml").write_text(
            'batch_size = 7\n[queries.s]\nmode = "row"\n'
            'sql = "SELECT seq AS id, seq * 3 AS v FROM games.seq_1_to_400"\n'
            'key = "spread:{id}"\nttl = 600\nttl_jitter = 0.2\n'
        )
        servers = [mc3.address, other.address]
        code, report, err = run(
            capsys, "cache", "warm", "spread", "--server", servers[0], "--server", servers[1],
            "--json",
        )  # fmt: skip
        assert code == 0 and report["keys_written"] == 400, (report, err)
        client = HashClient([tuple(s.split(":")) for s in servers], use_pooling=False)
        for i in range(1, 401):
            assert client.get(f"spread:{i}") == b'{"id":%d,"v":%d}' % (i, i * 3), i
        held = [int(n.stats()["curr_items"]) for n in (mc3, other)]
        assert sum(held) == 400 and min(held) > 100
        exps = {**mc3.exptimes(), **other.exptimes()}
        assert len(set(exps.values())) > 10  # jittered, one TTL per key
    finally:
        other.stop()


# (id, k, nick): k keys the rows; nick is NULL where the key function never reads it
FUNCTION_KEY_ROWS = [
    (1, b"plain1", "ann"),
    (2, None, None),
    (3, None, "cy"),
    (4, b"\xff\xfe", None),
    (5, "ü".encode(), None),
]


@pytest.mark.parametrize("mode", ["row", "result"])
def test_key_function_inputs_follow_the_template_contract(
    mode: str,
    hostile: SandboxHandle,
    mc3: Memcached,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Reproduction: a key_function received NULL as None and VARBINARY as bytes, so it
    built ``f:None`` for two rows (one row's value served for the other) and
    ``f:b'plain1'``. A value the function reads (row or params) now arrives as a template
    field does: bytes decoded as UTF-8, and a NULL or non-UTF-8 value refuses that key,
    counted as failed and named; a NULL column the function does not read refuses
    nothing."""
    sql(hostile, "primary", "DROP TABLE IF EXISTS games.fnkeys")
    sql(
        hostile,
        "primary",
        "CREATE TABLE games.fnkeys (id INT PRIMARY KEY, k VARBINARY(16), nick VARCHAR(8))",
    )
    with hostile.connect() as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO games.fnkeys VALUES (%s, %s, %s)", FUNCTION_KEY_ROWS)
    hostile.wait_replicated()
    monkeypatch.setenv("DATATIER_CONFIG", str(hostile.config_path))
    monkeypatch.setenv("DATATIER_CACHE__WARM_SETS_DIR", str(tmp_path))
    functions = "tests.integration.cache.keyfunctions"
    if mode == "row":
        query = (
            'mode = "row"\nsql = "SELECT id, k, nick FROM games.fnkeys ORDER BY id"\n'
            f'key_function = "{functions}:by_k"\n'
        )
        written = {"f:plain1:ann", "f:ü"}
    else:
        query = (
            'sql = "SELECT id, nick FROM games.fnkeys WHERE k <=> %(k)s"\n'
            'params_sql = "SELECT k FROM games.fnkeys ORDER BY id"\n'
            f'key_function = "{functions}:by_param"\n'
        )
        written = {"fp:plain1", "fp:ü"}
    (tmp_path / "fn.toml").write_text(f"batch_size = 5\n[queries.r]\n{query}")

    code, report, _ = run(capsys, "cache", "warm", "fn", "--server", mc3.address, "--json")

    assert code == 1 and report["keys_written"] == 2 and report["failed"] == 3, report
    errors = report["queries"][0]["key_errors"]
    assert errors.count("query r: key rejected: key column k is NULL") == 2, errors
    assert "query r: key rejected: key column k is binary, not UTF-8" in errors
    assert mc3.stats()["curr_items"] == "2"
    assert all(mc3.get(key) is not None for key in written)
    for shared in ("f:None", "fp:None", "f:b'plain1':ann", "fp:b'plain1'"):
        assert mc3.get(shared) is None
