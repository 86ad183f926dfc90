"""A table's DROP/CREATE as a backup writes them: relocatable under ``--rename``."""

from __future__ import annotations

from datatier.mysql.catalogue import Column, Table
from datatier.mysql.dumpdefs import table_statements

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
