"""``--tables``/``--databases`` entries (:mod:`datatier.backup.names`): hostile names
quoted MySQL style, commas outside backticks separating entries, ambiguous unquoted
entries refused against the backup's tables."""

from __future__ import annotations

import re

import pytest

from datatier.backup.names import (
    DatabaseEntry,
    TableEntry,
    parse_databases,
    parse_rename,
    parse_tables,
    resolve_databases,
    resolve_tables,
    show,
)
from datatier.errors import UsageError


def readings(*values: str) -> list[tuple[tuple[str, str], ...]]:
    return [e.readings for e in parse_tables(values)]


def test_plain_entries_split_on_commas_and_repeats() -> None:
    assert readings("shop.a, shop.b", "shop.a", " app.c ") == [
        (("shop", "a"),),
        (("shop", "b"),),
        (("app", "c"),),
    ]
    assert readings("shop.a,,", "") == [(("shop", "a"),)]


@pytest.mark.parametrize(
    ("value", "pair"),
    [
        ("`my,db`.`t.1`", ("my,db", "t.1")),
        ("`a.b`.c", ("a.b", "c")),
        ("a.`b.c`", ("a", "b.c")),
        ("a.b.`c`", ("a.b", "c")),
        ("`a`.b.c", ("a", "b.c")),
        ("`back``tick`.`x``y`", ("back`tick", "x`y")),
        ("` sp ace `.`t`", (" sp ace ", "t")),
        ("`数据,库`.`表.一`", ("数据,库", "表.一")),
        ("  `d`.`t`  ", ("d", "t")),
        ("`,`.`,`", (",", ",")),
        ("`.`.`.`", (".", ".")),
        ("db.back`tick", ("db", "back`tick")),  # a backtick inside a bare part is literal
        ("d b.t", ("d b", "t")),
    ],
)
def test_quoted_and_hostile_parts(value: str, pair: tuple[str, str]) -> None:
    assert readings(value) == [(pair,)]


def test_commas_inside_backticks_do_not_split() -> None:
    assert readings("`a,b`.`c,d`,x.y,`e`.f") == [(("a,b", "c,d"),), (("x", "y"),), (("e", "f"),)]


def test_an_unquoted_entry_keeps_every_reading() -> None:
    assert readings("a.b.c") == [(("a", "b.c"), ("a.b", "c"))]
    assert readings("a..b") == [(("a", ".b"), ("a.", "b"))]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("shop", "expected DB.TABLE"),
        ("`shop`", "expected DB.TABLE"),
        (".t", "expected DB.TABLE"),
        ("db.", "expected DB.TABLE"),
        ("`db`.", "expected DB.TABLE"),
        (".`t`", "expected DB.TABLE"),
        ("`db`x.t", "expected DB.TABLE"),
        ("`db` `t`", "expected DB.TABLE"),
        ("`a`.`b`.`c`", "expected DB.TABLE"),
        ("`db`.`t", "a backtick is not closed"),
        ("`db,t", "a backtick is not closed"),
        ("``.t", "an empty name"),
        ("db.``", "an empty name"),
    ],
)
def test_bad_entries_are_refused_in_one_line(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as refused:
        parse_tables([value])
    assert "\n" not in str(refused.value)
    assert refused.value.hint is not None and "backticks" in refused.value.hint


@pytest.mark.parametrize("values", [("",), (",",), (" , ", ""), ("  ",)])
def test_values_that_name_nothing_are_refused(values: tuple[str, ...]) -> None:
    """``--tables "$EMPTY"`` selected nothing, which read as no filter: every table."""
    with pytest.raises(UsageError, match="names no table") as table_error:
        parse_tables(values)
    assert table_error.value.hint and "leave --tables out" in table_error.value.hint
    with pytest.raises(UsageError, match=r"--databases .* names no database"):
        parse_databases(values)
    assert parse_tables(()) == () and parse_databases(()) == ()


def databases(*values: str) -> tuple[str, ...]:
    """The names ``values`` give against a backup holding each of them as written."""
    return tuple(e.name for e in parse_databases(values))


def test_databases_take_quoted_names() -> None:
    assert databases("a,`b,c`", "`x``y`, d.e ", "a") == ("a", "b,c", "x`y", "d.e")
    with pytest.raises(UsageError, match="expected one database name"):
        parse_databases(["`a`.`b`"])
    with pytest.raises(UsageError, match="an empty name"):
        parse_databases(["``"])
    with pytest.raises(UsageError, match="not closed"):
        parse_databases(["`a,b"])


HELD = {("a", "b.c"), ("a.b", "c"), ("shop", "x.y"), ("my,db", "t")}


def test_resolve_picks_the_one_reading_the_backup_holds() -> None:
    entries = parse_tables(["shop.x.y,`a`.`b.c`,a.b.`c`,`my,db`.t"])
    assert resolve_tables(entries, HELD, "B1") == (
        ("shop", "x.y"),
        ("a", "b.c"),
        ("a.b", "c"),
        ("my,db", "t"),
    )


def test_resolve_refuses_an_entry_two_tables_fit() -> None:
    with pytest.raises(UsageError) as refused:
        resolve_tables(parse_tables(["shop.x.y,a.b.c"]), HELD, "B1")
    assert refused.value.message == (
        "--tables 'a.b.c' fits 2 tables of backup B1: `a`.`b.c`, `a.b`.`c`"
    )
    assert refused.value.hint is not None and "backticks" in refused.value.hint


def test_resolve_leaves_an_unknown_entry_to_be_reported_missing() -> None:
    entry = TableEntry("x.y.z", (("x", "y.z"), ("x.y", "z")))
    assert resolve_tables([entry], HELD, "B1") == (("x", "y.z"),)


@pytest.mark.parametrize(
    ("pair", "shown"),
    [
        (("shop", "a"), "shop.a"),
        (("a", "b.c"), "a.`b.c`"),
        (("my,db", "t`1"), "`my,db`.`t``1`"),
        ((" x", "数据"), "` x`.数据"),
    ],
)
def test_show_quotes_what_needs_it_and_round_trips(pair: tuple[str, str], shown: str) -> None:
    assert show(*pair) == shown
    assert resolve_tables(parse_tables([shown]), {pair}, "B1") == (pair,)
    assert resolve_tables(parse_tables([show(*pair, always=True)]), {pair}, "B1") == (pair,)


@pytest.mark.parametrize(
    ("pair", "parsed"),
    [
        ("shop=shop_copy", ("shop", "shop_copy")),
        ("a=b=c", ("a", "b=c")),  # a plain DST is the rest, as before
        ("`e=q`=new", ("e=q", "new")),
        ("`e=q`=`n=w`", ("e=q", "n=w")),
        ("old=`a``b`", ("old", "a`b")),
        ("`x``=y`=z", ("x`=y", "z")),
    ],
)
def test_rename_pairs_take_backtick_quoted_names(pair: str, parsed: tuple[str, str]) -> None:
    assert parse_rename(pair) == parsed


@pytest.mark.parametrize(
    ("pair", "problem"),
    [
        ("noequals", "expected SRC=DST"),
        ("=dst", "a name is empty"),
        ("src=", "a name is empty"),
        ("`e=q", "a backtick is not closed"),
        ("`e=q`new", "expected = after `e=q`"),
        ("a=`b`c", "text after the quoted name `b`"),
        ("``=x", "a name is empty"),
    ],
)
def test_bad_rename_pairs_are_usage_errors(pair: str, problem: str) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)) as caught:
        parse_rename(pair)
    assert "backticks" in (caught.value.hint or "")


def test_blanks_at_an_entrys_ends_are_read_both_ways_outside_backticks() -> None:
    """``' sp.t'`` can mean `sp`.`t` or ` sp`.`t`; a quoted part is exact, and a no-break
    space is part of a name (it was stripped: ``'nb\u00a0'`` restored `nb`)."""
    (entry,) = parse_tables([" sp.t\t"])
    assert (entry.readings, entry.spaced) == ((("sp", "t"),), ((" sp", "t\t"),))
    assert parse_tables(["` sp`.t"])[0].candidates == ((" sp", "t"),)
    assert parse_tables(["nb\u00a0.t\u2003"])[0].candidates == (("nb\u00a0", "t\u2003"),)
    assert parse_databases([" sp, `x`, nb\u00a0"]) == (
        DatabaseEntry(" sp", "sp", " sp"),
        DatabaseEntry("`x`", "x"),
        DatabaseEntry(" nb\u00a0", "nb\u00a0", " nb\u00a0"),
    )


@pytest.mark.parametrize("held", [{" sp"}, {"sp"}, {"sp", "other"}])
def test_resolve_picks_the_blank_reading_the_backup_holds(held: set[str]) -> None:
    (name,) = held - {"other"}
    assert resolve_databases(parse_databases([" sp"]), held, "B1") == (name,)
    pair = (name, "t")
    assert resolve_tables(parse_tables([" sp.t"]), {pair}, "B1") == (pair,)


def test_resolve_refuses_an_entry_a_blank_apart_from_two_names() -> None:
    with pytest.raises(UsageError) as refused:
        resolve_databases(parse_databases(["a, sp"]), {"a", "sp", " sp"}, "B1")
    assert refused.value.message == "--databases ' sp' fits 2 databases of backup B1: `sp`, ` sp`"
    assert refused.value.hint is not None and "backticks" in refused.value.hint
    with pytest.raises(UsageError, match=r"fits 2 tables .*: `sp`.`t`, ` sp`.`t`"):
        resolve_tables(parse_tables(["a.t, sp.t"]), {("sp", "t"), (" sp", "t")}, "B1")
    assert resolve_databases(parse_databases(["`sp`"]), {"sp", " sp"}, "B1") == ("sp",)
