"""The sequences a table's CREATE draws defaults from: found in code, never in literals."""

from __future__ import annotations

import re

from datatier.backup.manifest import ObjectRecord
from datatier.mysql.sequence_deps import default_sequences, read_schema
from datatier.mysql.sqltext import PRELUDE, block
from datatier.mysql.staged_creates import mentions


def test_own_and_other_database_sequences_are_found() -> None:
    create = (
        "CREATE TABLE `t` (\n"
        "  `id` int(11) NOT NULL DEFAULT nextval(`s`),\n"
        "  `o` bigint(20) DEFAULT NEXTVAL(`other`.`ids`),\n"
        "  `p` int(11) DEFAULT lastval(`s2`)\n"
        ") ENGINE=InnoDB"
    )
    assert default_sequences(create) == {(None, "s"), ("other", "ids"), (None, "s2")}


def test_names_in_literals_comments_and_identifiers_are_not_sequences() -> None:
    create = (
        "CREATE TABLE `nextval` (\n"
        "  `nextval(``x``)` int(11) DEFAULT NULL COMMENT 'nextval(`fake`)',\n"
        "  `v` varchar(40) DEFAULT 'DEFAULT nextval(`db`.`no`)'\n"
        ") COMMENT='lastval(`nope`)'"
    )
    assert default_sequences(create) == set()


def test_quoted_names_with_backticks_and_dots_come_back_unquoted() -> None:
    create = "CREATE TABLE `t` (`id` int DEFAULT nextval(`a``b.c`.`s.q`))"
    assert default_sequences(create) == {("a`b.c", "s.q")}


def test_comments_neither_hide_nor_invent_sequences() -> None:
    create = (
        "CREATE TABLE `t` (\n"
        "  `a` int DEFAULT nextval(`s1`), -- it's a comment: nextval(`fake1`)\n"
        "  # also one: nextval(`fake2`) isn't code\n"
        "  `b` int /* don't nextval(`fake3`) */ DEFAULT nextval(`s2`),\n"
        "  `c` int /*!100000 DEFAULT nextval(`s3`) */\n"
        ")"
    )
    assert default_sequences(create) == {(None, "s1"), (None, "s2"), (None, "s3")}


def _object(*statements: str) -> bytes:
    return PRELUDE + block(list(statements)).encode()


def test_read_schema_tells_sequences_by_their_objects_and_reads_calling_tables_only() -> None:
    objects = {
        "zs": _object("DROP SEQUENCE IF EXISTS `zs`", "CREATE SEQUENCE `zs` start with 1"),
        "a": _object(
            "DROP TABLE IF EXISTS `a`", "CREATE TABLE `a` (`id` int DEFAULT nextval(`zs`))"
        ),
        "b": _object("DROP TABLE IF EXISTS `b`", "CREATE TABLE `b` (`id` int)"),
        # the older layout: plain statements after the prelude
        "old": PRELUDE + b"DROP TABLE IF EXISTS `old`;\nCREATE TABLE `old` (`i` int DEFAULT "
        b"nextval(`db`.`zs`));\n",
    }
    records = [
        ObjectRecord(f"k/{name}", "schema", 1, "0" * 64, len(text), "STANDARD", "db", name)
        for name, text in objects.items()
    ]
    facts = read_schema(records, lambda key: iter([objects[key.split("/")[1]]]))
    assert facts.sequences == {("db", "zs")}
    assert set(facts.creates) == {("db", "a"), ("db", "old")}
    assert default_sequences(facts.creates[("db", "a")]) == {(None, "zs")}
    assert default_sequences(facts.creates[("db", "old")]) == {("db", "zs")}


def test_a_call_cut_between_two_chunks_is_still_seen() -> None:
    calls = re.compile(rb"(?:next|last|set)val\s*\(", re.IGNORECASE)
    assert mentions(iter([b"x" * 100 + b"DEFAULT next", b"val(`s`)" + b"y" * 100]), calls)
    assert not mentions(iter([b"x" * 100, b"nextvalue (" + b"y" * 100]), calls)
