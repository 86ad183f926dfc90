"""The sequences a table's CREATE draws defaults from: found in code, never in literals."""

from __future__ import annotations

from datatier.mysql.sequence_deps import default_sequences


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
