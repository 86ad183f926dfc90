"""The routines and events a backup's definition objects define
(:func:`~datatier.mysql.staged_creates.staged_definitions`): a forced restore lists the
target's others as left as they are, so a name misread here is listed wrongly."""

from __future__ import annotations

from datatier.backup.manifest import ObjectRecord
from datatier.mysql.package_drops import drop_statements
from datatier.mysql.sqltext import PRELUDE, block
from datatier.mysql.staged_creates import staged_definitions


def test_each_definitions_drop_names_it_whatever_its_bytes() -> None:
    routines = (
        PRELUDE
        + block(
            [
                "DROP PROCEDURE IF EXISTS `p ``é`",
                "SET SESSION sql_mode = ''",
                # a body quoting a DROP of another routine is no definition of its own
                "CREATE PROCEDURE `p ``é`() SELECT 'DROP FUNCTION IF EXISTS `fake`'",
                "DROP FUNCTION IF EXISTS `f`",
                "CREATE FUNCTION `f`() RETURNS INT RETURN 1",
                "DROP PACKAGE BODY IF EXISTS `pk`",
                # a package's DROP after its sql_mode (the layout since tester3 finding 5)
                *drop_statements("package", "pk2", "ORACLE"),
                "/*!50003 SET sql_mode = 'ORACLE' */",
                'CREATE PACKAGE "pk2" AS END',
            ]
        ).encode()
    )
    events = PRELUDE + block(["DROP EVENT IF EXISTS `ev`", "CREATE EVENT `ev` ..."]).encode()
    older = b"CREATE PROCEDURE q() SELECT 1;\n"  # an older layout: not read
    texts = {"r": routines, "e": events, "o": older, "s": b"DROP PROCEDURE IF EXISTS `no`"}
    objects = [
        ObjectRecord("r", "routines", 1, "0" * 64, len(routines), "STANDARD", "db", None),
        ObjectRecord("e", "events", 1, "0" * 64, len(events), "STANDARD", "db2", None),
        ObjectRecord("o", "routines", 1, "0" * 64, len(older), "STANDARD", "db3", None),
        ObjectRecord("s", "schema", 1, "0" * 64, 1, "STANDARD", "db", "t"),
    ]
    assert staged_definitions(objects, lambda key: iter([texts[key]])) == {
        ("procedure", "db", "p `é"),
        ("function", "db", "f"),
        ("package body", "db", "pk"),
        ("package", "db", "pk2"),
        ("event", "db2", "ev"),
    }
