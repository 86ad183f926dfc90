"""A table's DROP/CREATE as a backup writes them: relocatable under ``--rename``."""

from __future__ import annotations

from datatier.mysql.catalogue import Column, Table
from datatier.mysql.dumpdefs import table_statements
from datatier.mysql.renamed import requalify

CREATE = (
    "CREATE TABLE `t` (\n"
    "  `id` int(11) NOT NULL DEFAULT nextval(`shop`.`s`),\n"
    "  `note` varchar(40) DEFAULT 'see nextval(`shop`.`s`)',\n"
    "  `o` int(11) DEFAULT NULL,\n"
    "  PRIMARY KEY (`id`),\n"
    "  CONSTRAINT `fk` FOREIGN KEY (`o`) REFERENCES `other`.`orders` (`id`)\n"
    ") ENGINE=InnoDB COMMENT='`shop`.`s`'"
)


def test_the_own_database_qualifier_goes_from_code_and_stays_in_literals() -> None:
    table = Table(
        "shop", "t", "table", "InnoDB", CREATE, (Column("id", "int", None, False),), ("id",)
    )
    drop, create = table_statements(table)
    assert drop == "DROP TABLE IF EXISTS `t`"
    assert "DEFAULT nextval(`s`)," in create
    assert "DEFAULT 'see nextval(`shop`.`s`)'" in create  # a string literal: as it was
    assert "REFERENCES `other`.`orders`" in create  # another database: kept
    assert create.endswith("COMMENT='`shop`.`s`'")


def test_requalify_renames_qualifiers_of_mapped_databases_only_in_code() -> None:
    create = (
        "CREATE TABLE `t` (\n"
        "  `id` int(11) NOT NULL DEFAULT nextval(`other`.`s`),\n"
        "  `note` varchar(40) DEFAULT 'REFERENCES `other`.`x`',\n"
        "  `o` int(11) DEFAULT NULL,\n"
        "  `other` int(11) DEFAULT NULL,\n"
        "  CONSTRAINT `other` FOREIGN KEY (`o`) REFERENCES `other`.`orders` (`id`),\n"
        "  CONSTRAINT `fk2` FOREIGN KEY (`other`) REFERENCES `kept`.`orders` (`id`)\n"
        ") ENGINE=InnoDB COMMENT='`other`.`s`'"
    )
    out = requalify(create, {"other": "o`copy"})
    assert "DEFAULT nextval(`o``copy`.`s`)," in out
    assert "REFERENCES `o``copy`.`orders`" in out
    assert "REFERENCES `kept`.`orders`" in out  # not renamed: as it was
    assert "DEFAULT 'REFERENCES `other`.`x`'" in out  # a string literal: as it was
    assert "CONSTRAINT `other` FOREIGN KEY" in out  # a name, not a qualifier
    assert "`other` int(11)" in out
    assert out.endswith("COMMENT='`other`.`s`'")


def test_requalify_leaves_comments_alone_and_an_apostrophe_in_one_fools_nothing() -> None:
    create = (
        "CREATE TABLE `t` ( -- it's the parent's key\n"
        "  `p` int DEFAULT nextval(`other`.`s`), /* `other`.`x` isn't code */\n"
        "  CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `other`.`orders` (`id`)\n"
        ") /*!50100 COMMENT 'see `other`.`y`' */"
    )
    out = requalify(create, {"other": "copy"})
    assert "nextval(`copy`.`s`)" in out and "REFERENCES `copy`.`orders`" in out
    assert "/* `other`.`x` isn't code */" in out and "-- it's the parent's key" in out
    assert out.endswith("COMMENT 'see `other`.`y`' */")
