"""Unit tests of the cache warmer's pure parts: warm-set validation, keys, serializers,
rate limiting, TTL arithmetic of the copy."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from datatier.cache.census import Census, shortfall
from datatier.cache.copy import CopyReport, remaining_exptime
from datatier.cache.keys import KeyBuilder, KeyValueRefused, normalize_sql
from datatier.cache.protocol import MetaEntry, key_problem, parse_address
from datatier.cache.serialize import UnserializableResult, serializer_for
from datatier.cache.warmset import load_warm_set
from datatier.errors import ConfigError
from datatier.ratelimit import RateLimit

GOOD = """
description = "t"
[queries.top]
sql = "SELECT id FROM g.t WHERE id = %(id)s"
params_sql = "SELECT id FROM g.t"
key = "g:{md5}"
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_valid_set_loads(tmp_path: Path) -> None:
    ws = load_warm_set(write(tmp_path, GOOD))
    assert ws.name == "s"
    q = ws.spec.queries["top"]
    assert (q.mode, q.serializer, q.row_limit()) == ("result", "json", 10_000)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (GOOD.replace("key =", "kee ="), "queries.top.kee", "unknown key"),
        (GOOD.replace('key = "g:{md5}"', ""), "queries.top", "exactly one of key"),
        (
            GOOD + 'key_function = "m:f"\n',
            "queries.top",
            "exactly one of key",
        ),
        (GOOD.replace('"g:{md5}"', '"g:{md5:>5}"'), "queries.top.key", "format specs"),
        (GOOD.replace('"g:{md5}"', '"g:{md5"'), "queries.top.key", "expected '}'"),
        (
            GOOD.replace('params_sql = "SELECT id FROM g.t"\n', "").replace("{md5}", "{id}"),
            "queries.top.key",
            "uses id but the query has no params_sql",
        ),
        (GOOD + 'serializer = "yaml"\n', "queries.top.serializer", "'yaml' is not one of"),
        (GOOD + "ttl_jitter = 1.5\n", "queries.top.ttl_jitter", "below 1.0"),
        (GOOD + "ttl = -1\n", "queries.top.ttl", "below the minimum"),
        (GOOD + 'mode = "row"\n', "queries.top.params_sql", "row mode runs the query once"),
        (GOOD + "pickle_protocol = 9\n", "queries.top.pickle_protocol", "up to protocol 5"),
        ('description = "no queries"\n', "queries", "at least one"),
    ],
)
def test_bad_warm_sets_name_file_and_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_warm_set(path)
    message = str(err.value)
    assert str(path) in message and key in message and problem in message, message


def test_bad_toml_and_bad_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_warm_set(write(tmp_path, "queries = ["))
    with pytest.raises(ConfigError, match="warm set name"):
        load_warm_set(write(tmp_path, GOOD, "bad name.toml"))


def test_md5_key_is_the_documented_digest() -> None:
    sql = "SELECT *\n  FROM g.t\tWHERE id = %(id)s ;"
    kb = KeyBuilder(set_name="s", query_name="q", sql=sql, template="p:{md5}:{id}", function=None)
    expected = hashlib.md5(
        b'SELECT * FROM g.t WHERE id = %(id)s\n{"id":7}', usedforsecurity=False
    ).hexdigest()
    assert kb.build({"id": 7}, None) == f"p:{expected}:7".encode()
    assert normalize_sql(sql) == "SELECT * FROM g.t WHERE id = %(id)s"


def test_key_template_missing_field_raises_with_its_name() -> None:
    kb = KeyBuilder(set_name="s", query_name="q", sql="x", template="k:{nope}", function=None)
    with pytest.raises(KeyError, match="nope"):
        kb.build(None, {"id": 1})


def test_key_function_receives_normalized_sql_and_values() -> None:
    seen: dict[str, object] = {}

    def fn(*, sql: str, params: object, row: object) -> str:
        seen.update(sql=sql, params=params, row=row)
        return "custom:1"

    kb = KeyBuilder(set_name="s", query_name="q", sql=" SELECT 1 ;", template=None, function=fn)
    assert kb.build({"a": 1}, None) == b"custom:1"
    assert seen["sql"] == "SELECT 1" and seen["row"] is None
    assert seen["params"] == {"a": 1}


def test_key_function_reads_values_as_a_template_does() -> None:
    """NULL refuses the key once read, bytes arrive as UTF-8 text; unread NULLs, ``in`` and
    iteration refuse nothing."""

    def fn(*, sql: str, params: object, row: Any) -> str:
        assert "nick" in row and list(row) == ["id", "k", "nick"] and len(row) == 3
        return f"u:{row['k']}"

    kb = KeyBuilder(set_name="s", query_name="q", sql="x", template=None, function=fn)
    assert kb.build(None, {"id": 1, "k": "ü".encode(), "nick": None}) == "u:ü".encode()
    with pytest.raises(KeyValueRefused, match="key column k is NULL"):
        kb.build(None, {"id": 2, "k": None, "nick": "x"})
    with pytest.raises(KeyValueRefused, match="key column k is binary, not UTF-8"):
        kb.build(None, {"id": 3, "k": b"\xff", "nick": "x"})
    with pytest.raises(KeyValueRefused, match="key column k is NULL"):
        KeyBuilder(
            set_name="s", query_name="q", sql="x", template=None,
            function=lambda **kw: f"g:{kw['params'].get('k')}",
        ).build({"k": None}, None)  # fmt: skip
    with pytest.raises(KeyValueRefused, match="key column nick is NULL"):
        KeyBuilder(
            set_name="s", query_name="q", sql="x", template=None,
            function=lambda **kw: f"r:{kw['row']}",
        ).build(None, {"id": 1, "nick": None})  # fmt: skip


@pytest.mark.parametrize(("made", "name"), [(None, "NoneType"), (7, "int"), (["a"], "list")])
def test_key_function_must_return_str_or_bytes(made: Any, name: str) -> None:
    def wrong(**_: Any) -> Any:
        return made  # None would have become the key "None", 7 the key "7"

    kb = KeyBuilder(set_name="s", query_name="q", sql="x", template=None, function=wrong)
    with pytest.raises(KeyValueRefused, match=f"key_function returned {name}, not str or bytes"):
        kb.build(None, {"id": 1})
    assert (
        KeyBuilder(
            set_name="s", query_name="q", sql="x", template=None, function=lambda **_: b"k:1"
        ).build(None, {"id": 1})
        == b"k:1"
    )


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (b"", "empty"),
        (b"a" * 251, "251 bytes"),
        (b"a b", "whitespace"),
        (b"a\nb", "whitespace"),
        (b"a\x7fb", "control"),
    ],
)
def test_keys_memcached_would_refuse(key: bytes, problem: str) -> None:
    found = key_problem(key)
    assert found is not None and problem in found
    assert key_problem(b"a" * 250) is None


def test_serializers_keep_values_exact() -> None:
    row = (1, decimal.Decimal("12.30"), dt.datetime(2026, 1, 2, 3, 4, 5), b"\x00\xff", None)
    cols = ["id", "price", "at", "blob", "gone"]
    as_json = json.loads(serializer_for("json", cols, "dict", 5).encode_row(row))
    assert as_json == {
        "id": 1,
        "price": "12.30",
        "at": "2026-01-02T03:04:05",
        "blob": "AP8=",
        "gone": None,
    }
    assert json.loads(serializer_for("json", cols, "list", 5).encode_result([row, row]))[1][1] == (
        "12.30"
    )
    pickled = serializer_for("pickle", cols, "dict", 2).encode_row(row)
    assert pickle.loads(pickled)["price"] == decimal.Decimal("12.30")
    assert pickled[1] == 2  # the protocol byte
    raw = serializer_for("raw", ["id", "value"], "dict", 5)
    assert raw.encode_row((1, "héllo")) == "héllo".encode()
    with pytest.raises(UnserializableResult, match="exactly 1 row"):
        raw.encode_result([(1, "a"), (2, "b")])
    with pytest.raises(UnserializableResult, match="one column"):
        serializer_for("raw", ["a", "b"], "dict", 5)


def test_rate_limit_paces_units() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limit = RateLimit(100, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        limit.take(50)
    # 500 units at 100/s with a 100-unit burst: 4 s of waiting
    assert sum(slept) == pytest.approx(4.0)
    unlimited = RateLimit(None, clock=lambda: now[0], sleep=sleep)
    unlimited.take(10**9)
    assert sum(slept) == pytest.approx(4.0)


def test_remaining_ttl_arithmetic() -> None:
    assert remaining_exptime(-1, 1000, 5000) == 0  # never expires stays never
    assert remaining_exptime(1100, 1000, 5000) == 100
    assert remaining_exptime(1000, 1000, 5000) is None  # expiring now: skipped
    forty_days = 40 * 24 * 3600
    assert remaining_exptime(1000 + forty_days, 1000, 5000) == 5000 + forty_days


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:11211") == ("127.0.0.1", 11211)
    for bad in ("localhost", ":1", "h:0", "h:x", "h:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


def test_key_columns_null_or_binary() -> None:
    """NULL refuses the key, bytes go in as UTF-8 text; the batch builder refuses a batch
    holding either (so it is built one by one) and agrees on the others."""
    kb = KeyBuilder(set_name="s", query_name="q", sql="x", template="h:r:{k}", function=None)
    assert kb.build(None, {"k": b"plain1"}) == b"h:r:plain1"
    assert kb.build(None, {"k": bytearray("ü".encode())}) == "h:r:ü".encode()
    with pytest.raises(KeyValueRefused, match="key column k is NULL"):
        kb.build(None, {"k": None})
    with pytest.raises(KeyValueRefused, match="key column k is binary, not UTF-8"):
        kb.build(None, {"k": b"\xff"})
    for rows, as_dicts in (([{"k": "a"}, {"k": None}], True), ([("a",), (b"b",)], False)):
        batch = kb.batch_keys(["k"], as_dicts)
        assert batch is not None
        with pytest.raises(KeyValueRefused):
            batch(rows)
    tuples = kb.batch_keys(["id", "k"], False)
    assert tuples is not None and tuples([(1, "a"), (2, 7)]) == [b"h:r:a", b"h:r:7"]
    params = KeyBuilder(
        set_name="s", query_name="q", sql="x", template="p:{md5}:{g}", function=None
    )
    with pytest.raises(KeyValueRefused, match="key column g is NULL"):
        params.build({"g": None}, None)


def test_shortfall_is_certain_only_when_the_source_was_quiet() -> None:
    quiet = Census(100, (5, 5, 0, 0, 0))
    assert shortfall(quiet, quiet, 100) == (0, False)
    assert shortfall(quiet, Census(98, (5, 5, 0, 0, 0)), 97) == (1, True)
    # keys set during the pass are not counted as missed; the estimate is not certain
    busy = Census(130, (35, 35, 0, 0, 0))
    assert shortfall(quiet, busy, 100) == (0, False)
    assert shortfall(quiet, busy, 90) == (10, False)
    # duplicates in the dump can hide a miss: never a negative shortfall
    assert shortfall(quiet, quiet, 120) == (0, False)


def test_copy_report_says_what_the_crawler_missed() -> None:
    report = CopyReport("a:1", "b:2", None, scanned=90)
    assert report.shortfall_note() is None and report.exit_code() == 0
    report.unlisted, report.second_pass, report.recovered = 10, True, 10
    assert report.shortfall_note() is None and report.exit_code() == 0
    report.recovered = 4
    note = report.shortfall_note()
    assert note is not None and "up to 6 keys may be missing on b:2" in note
    assert report.exit_code() == 0
    report.missed = 6
    note = report.shortfall_note()
    assert note is not None and "6 keys of a:1 were never listed" in note
    assert report.exit_code() == 1
    doc = report.to_json()
    assert (doc["unlisted"], doc["recovered"], doc["missed"]) == (10, 4, 6)


def test_metadump_lines_parse_by_position_and_by_name() -> None:
    line = b"key=app%3Aa%20b exp=-1 la=1700000000 cas=7 fetch=no cls=1 size=80"
    assert MetaEntry.parse(line) == (b"app:a b", -1, 80)
    assert MetaEntry.parse(b"key=plain exp=1700000100 la=1 cas=2 fetch=yes cls=3 size=9") == (
        b"plain",
        1700000100,
        9,
    )
    assert MetaEntry.parse(b"cas=2 key=k%25 size=3") == (b"k%", -1, 3)  # another order
