"""Deferring secondary indexes: only plain KEYs move, and nothing can fool the parser."""

from __future__ import annotations

from datatier.mysql.deferred_keys import defer_secondary_keys

CREATE = (
    "CREATE TABLE `t` (\n"
    "  `id` bigint(20) NOT NULL,\n"
    "  `account` int(11) DEFAULT NULL,\n"
    "  `note` varchar(20) DEFAULT 'a, KEY `x` (y)' COMMENT 'it''s (tricky',\n"
    "  `we,ird\n  KEY` int(11) DEFAULT NULL,\n"
    "  PRIMARY KEY (`id`),\n"
    "  UNIQUE KEY `u` (`note`),\n"
    "  KEY `account` (`account`),\n"
    "  KEY `two` (`account`,`note`(5)) COMMENT 'c,d'\n"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)


def test_plain_secondary_keys_move_to_an_alter() -> None:
    out = defer_secondary_keys(CREATE, "`t`")
    assert out.alter == (
        "ALTER TABLE `t` ADD KEY `account` (`account`), "
        "ADD KEY `two` (`account`,`note`(5)) COMMENT 'c,d'"
    )
    assert "KEY `account`" not in out.create and "KEY `two`" not in out.create
    for kept in ("PRIMARY KEY (`id`)", "UNIQUE KEY `u`", "`we,ird\n  KEY`"):
        assert kept in out.create
    assert out.create.endswith(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    assert "'a, KEY `x` (y)'" in out.create


def test_tables_with_foreign_keys_or_nothing_to_move_stay_whole() -> None:
    last = "  KEY `two` (`account`,`note`(5)) COMMENT 'c,d'\n"
    for extra in (
        "  CONSTRAINT `f` FOREIGN KEY (`account`) REFERENCES `a` (`id`)\n",
        "  CONSTRAINT `c` CHECK (`account` > 0)\n",
        "  FULLTEXT KEY `ft` (`note`)\n",
        "  SPATIAL KEY `sp` (`g`)\n",
    ):
        whole = CREATE.replace(last, last.rstrip("\n") + ",\n" + extra)
        assert whole != CREATE
        assert defer_secondary_keys(whole, "`t`").alter is None, extra
    for options in (") ENGINE=MyISAM", ") ENGINE=Aria", ") ENGINE=InnoDB WITH SYSTEM VERSIONING"):
        other = CREATE.replace(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", options)
        assert defer_secondary_keys(other, "`t`").alter is None, options
    commented = CREATE.replace("COMMENT 'c,d'", "COMMENT ') ENGINE=InnoDB'").replace(
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", ") ENGINE=MyISAM"
    )
    assert defer_secondary_keys(commented, "`t`").alter is None, "options are read after the body"
    plain = "CREATE TABLE `p` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB"
    assert defer_secondary_keys(plain, "`p`").alter is None
    assert defer_secondary_keys("CREATE SEQUENCE `s` start with 1", "`s`").alter is None
    assert defer_secondary_keys("CREATE TABLE `broken (", "`b`").alter is None


def test_a_plain_key_led_by_the_auto_increment_column_stays() -> None:
    """InnoDB refuses a table whose AUTO_INCREMENT column leads no index (tester15): the
    key it leads stays in the CREATE, even where the word appears in a default or a name."""
    create = (
        "CREATE TABLE `t` (\n"
        "  `a` int(11) NOT NULL,\n"
        "  `AUTO_INCREMENT` int(11) DEFAULT NULL,\n"
        "  `note` varchar(20) DEFAULT 'x AUTO_INCREMENT' COMMENT 'AUTO_INCREMENT',\n"
        "  `i``d` int(11) NOT NULL AUTO_INCREMENT,\n"
        "  PRIMARY KEY (`a`,`i``d`),\n"
        "  KEY `by id` (`i``d`,`note`),\n"
        "  KEY `note` (`note`),\n"
        "  KEY `AUTO_INCREMENT` (`AUTO_INCREMENT`)\n"
        ") ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=utf8mb4"
    )
    out = defer_secondary_keys(create, "`t`")
    assert "KEY `by id` (`i``d`,`note`)" in out.create
    assert out.alter == (
        "ALTER TABLE `t` ADD KEY `note` (`note`), ADD KEY `AUTO_INCREMENT` (`AUTO_INCREMENT`)"
    )
    alone = (
        "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  KEY `id` (`id`)\n"
        ") ENGINE=InnoDB"
    )
    assert defer_secondary_keys(alone, "`t`").alter is None
    # without a counter every plain key still moves
    assert defer_secondary_keys(create.replace(" AUTO_INCREMENT,", ","), "`t`").alter == (
        "ALTER TABLE `t` ADD KEY `by id` (`i``d`,`note`), ADD KEY `note` (`note`), "
        "ADD KEY `AUTO_INCREMENT` (`AUTO_INCREMENT`)"
    )


def test_a_plain_key_led_by_columns_a_foreign_key_references_stays() -> None:
    """A child's CREATE TABLE needs an index of the parent that the referenced columns lead
    (tester15); names compare in any letter case, a longer key serves, a shorter does not."""
    create = (
        "CREATE TABLE `p` (\n"
        "  `id` int(11) NOT NULL,\n"
        "  `Code` int(11) NOT NULL,\n"
        "  `x` int(11) DEFAULT NULL,\n"
        "  PRIMARY KEY (`id`),\n"
        "  KEY `code` (`Code`,`x`),\n"
        "  KEY `x` (`x`),\n"
        "  KEY `x2` (`x` DESC,`Code`)\n"
        ") ENGINE=InnoDB"
    )
    out = defer_secondary_keys(create, "`p`", [("code", "x")])
    assert "KEY `code` (`Code`,`x`)" in out.create
    assert out.alter == "ALTER TABLE `p` ADD KEY `x` (`x`), ADD KEY `x2` (`x` DESC,`Code`)"
    # (code, id): `code` alone serves it, InnoDB appending the primary key's id (review M1)
    assert defer_secondary_keys(create, "`p`", [("CODE", "id")]).alter == out.alter
    kept = defer_secondary_keys(create, "`p`", [("x", "code", "id")])
    assert kept.alter == "ALTER TABLE `p` ADD KEY `code` (`Code`,`x`)", "both keys led by x"
    assert defer_secondary_keys(create, "`p`", [("id",)]).alter == (
        "ALTER TABLE `p` ADD KEY `code` (`Code`,`x`), ADD KEY `x` (`x`), "
        "ADD KEY `x2` (`x` DESC,`Code`)"
    ), "the primary key serves a reference to id"
