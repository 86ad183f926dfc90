"""Casts: exact or a CastError naming the value, never a silent rounding or truncation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from datatier.migrate.casts import (
    ZERO_DATE,
    CastError,
    allowed_casts,
    converter,
    default_cast,
    parse_tz,
)
from datatier.mysql.introspect import Column


def col(data_type: str, column_type: str | None = None, **kw: Any) -> Column:
    return Column(
        name="c", data_type=data_type, column_type=column_type or data_type, nullable=True, **kw
    )


def test_defaults_per_type() -> None:
    assert default_cast(col("decimal", "decimal(12,2)", scale=2)) == "string"
    assert default_cast(col("bigint")) == "int"
    assert default_cast(col("datetime")) == "time"
    assert default_cast(col("blob")) == "binary"
    assert default_cast(col("json")) == "json"
    assert default_cast(col("set")) == "array"
    assert default_cast(col("enum")) == "string"
    assert default_cast(col("bit", "bit(1)", precision=1)) == "bool"
    assert default_cast(col("bit", "bit(64)", precision=64)) == "string"
    assert default_cast(col("geometry")) is None


def test_bigint_beyond_2_53_fails_and_string_is_exact() -> None:
    as_int = converter(col("bigint"), "int")
    assert as_int(2**53) == 2**53
    with pytest.raises(CastError, match="9007199254740993 is beyond"):
        as_int(2**53 + 1)
    assert converter(col("bigint"), "string")(2**53 + 1) == "9007199254740993"


def test_decimal_casts() -> None:
    c = col("decimal", "decimal(30,10)", scale=10)
    assert converter(c, "string")(Decimal("0.0825000001")) == "0.0825000001"
    assert converter(c, "number")(Decimal("12.34")) == 12.34
    with pytest.raises(CastError, match="not exact as a double"):
        converter(c, "number")(Decimal("12345678901234567.89"))
    cents = converter(col("decimal", "decimal(12,2)", scale=2), "scaled_int")
    assert cents(Decimal("19.99")) == 1999
    with pytest.raises(CastError, match="more than 1 decimals"):
        converter(c, "scaled_int", scale=1)(Decimal("1.25"))
    with pytest.raises(CastError, match="beyond"):
        converter(c, "scaled_int")(Decimal("99999999.5"))


def test_times_zone_zero_dates_and_sub_millisecond() -> None:
    as_time = converter(col("datetime", datetime_precision=6), "time", tz="+02:00")
    out = as_time(datetime(2026, 1, 2, 3, 4, 5, 123000))
    assert out == datetime(2026, 1, 2, 1, 4, 5, 123000, tzinfo=UTC)
    assert out.utcoffset() == timedelta(hours=2)
    assert as_time("0000-00-00 00:00:00") is ZERO_DATE
    with pytest.raises(CastError, match="sub-millisecond"):
        as_time(datetime(2026, 1, 2, 3, 4, 5, 123456))
    ts = converter(col("timestamp"), "time", tz="+05:00")(datetime(2026, 1, 1))
    assert ts.tzinfo == UTC  # TIMESTAMP is read in UTC whatever the mapping's zone
    assert converter(col("date"), "time")(date(2026, 3, 1)) == datetime(2026, 3, 1, tzinfo=UTC)
    assert converter(col("datetime"), "string")(datetime(2026, 1, 1, 0, 0, 0, 5)) == (
        "2026-01-01 00:00:00.000005"
    )


def test_json_set_bit_time_bool() -> None:
    as_json = converter(col("json"), "json")
    assert as_json('{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    with pytest.raises(CastError, match=r"at \$.id is beyond 2\^53"):
        as_json('{"id": 12345678901234567891}')
    with pytest.raises(CastError, match="invalid JSON"):
        as_json("{nope")
    assert converter(col("set"), "array")("a,b") == ["a", "b"]
    assert converter(col("set"), "array")("") == []
    assert converter(col("bit", "bit(8)", precision=8), "int")(b"\x05") == 5
    assert converter(col("bit", "bit(1)", precision=1), "bool")(b"\x01") is True
    assert converter(col("time"), "string")(timedelta(hours=-1, minutes=30)) == "-00:30:00"
    assert converter(col("time"), "string")(timedelta(days=1, seconds=5)) == "24:00:05"
    with pytest.raises(CastError, match="not 0 or 1"):
        converter(col("tinyint"), "bool")(2)


def test_impossible_casts_are_refused() -> None:
    assert "time" not in allowed_casts(col("int"))
    with pytest.raises(ValueError, match="impossible"):
        converter(col("varchar", "varchar(10)"), "int")
    assert allowed_casts(col("blob")) == ("binary",)


def test_nulls_stay_null() -> None:
    for c, cast in ((col("bigint"), "int"), (col("json"), "json"), (col("datetime"), "time")):
        assert converter(c, cast)(None) is None


@pytest.mark.parametrize("text", ["+25:00", "CET", "0200", ""])
def test_bad_timezones(text: str) -> None:
    with pytest.raises(ValueError, match="timezone"):
        parse_tz(text)
    assert parse_tz("-03:30") == timezone(-timedelta(hours=3, minutes=30))
