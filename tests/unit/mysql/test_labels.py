"""Restore messages name objects by what they hold, with any name shown safely on one line
(:mod:`datatier.mysql.labels`)."""

from __future__ import annotations

from datatier.backup.manifest import ObjectRecord, Section
from datatier.mysql.labels import name_label, object_label


def record(kind: str, table: str | None, part: int = 0, **kw: object) -> ObjectRecord:
    key = "p/id/data/db%20x/tables/t%0A/data-00001.sql.zst"
    return ObjectRecord(key, kind, 1, "00", 1, "STANDARD", "db x", table, part, **kw)  # type: ignore[arg-type]


def test_names_are_quoted_and_control_characters_escaped() -> None:
    assert name_label("plain") == "`plain`"
    assert name_label("a`b") == "`a``b`"
    assert name_label("new\nline\ttab\\") == "`new\\nline\\ttab\\\\`"
    assert name_label("\x1b[31mred\x7f\x85") == "`\\x1b[31mred\\x7f\\x85`"
    assert name_label(b"caf\xe9".decode("utf-8", "surrogateescape")) == "`caf\\xe9`"
    assert name_label("数据 x") == "`数据 x`"


def test_objects_are_named_by_what_they_hold_in_their_target_database() -> None:
    assert object_label(record("data", "t\n", 3), "copy") == "the rows of `copy`.`t\\n` (part 3)"
    assert object_label(record("schema", "t"), "copy") == "the definition of `copy`.`t`"
    assert object_label(record("views", "v"), "db x") == "view `db x`.`v`"
    assert object_label(record("routines", None), "db x") == "the routines of `db x`"
    assert object_label(record("grants", None), None) == "the accounts and grants"
    sections = tuple(Section(f"t{i}", i * 10, i * 10 + 10, 1) for i in range(5))
    bundle = record("bundle", None, sections=sections)
    assert object_label(bundle, "c") == "the bundle of tables `t0`, `t1`, `t2` and 2 more in `c`"
    assert "%" not in object_label(record("data", "t\n", 1), "db x")
