"""A definition's text in its creator's bytes (:mod:`datatier.mysql.creator_text`), its
object (:mod:`datatier.mysql.dumpdefs`) and what the view check reads from it, on the bytes
MariaDB 10.11 gives with ``character_set_results = binary``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from datatier.backup.manifest import ObjectRecord
from datatier.mysql.catalogue import Definition
from datatier.mysql.creator_text import as_bytes, as_text, faithful_text, python_codec
from datatier.mysql.dumpdefs import _definition_statements
from datatier.mysql.renamed import warn_qualified
from datatier.mysql.sqltext import PRELUDE, block, parse_block
from datatier.mysql.view_deps import definition_reads

ROUTINE = (
    b"CREATE DEFINER=`root`@`localhost` FUNCTION `f\xe9`() RETURNS varchar(40)\n"
    b"RETURN HEX(_binary'\xe9')"
)
EVENT = (  # as MariaDB gives it: the event's name in UTF-8, the rest in latin1
    b"CREATE DEFINER=`root`@`localhost` EVENT `e\xc3\xa9` ON SCHEDULE EVERY 1 DAY "
    b"DO INSERT INTO t VALUES (HEX(_binary'\xe9'))"
)
VIEW = (
    b"CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW "
    b"`v\xe9` AS select hex(_binary'\xe9') AS `h`,`t\xe4`.`a` AS `a` from `db`.`t\xe4` "
    b"join `other`.`u`"
)


def test_latin1_bytes_pass_through_unchanged() -> None:
    text = faithful_text("function", "db", "fé", "latin1", ROUTINE)
    assert text is not None and as_bytes(text) == ROUTINE


def test_utf8_bodies_pass_through_even_when_they_are_not_utf8() -> None:
    raw = "CREATE FUNCTION `数据`() RETURN CONCAT('😀', HEX(_binary'\xff'))".encode()
    raw = raw.replace(b"\xc3\xbf", b"\xff")  # the literal's byte as the server keeps it
    for charset in ("utf8mb4", "utf8mb3"):
        text = faithful_text("function", "db", "数据", charset, raw)
        assert text is not None and as_bytes(text) == raw


def test_an_events_utf8_name_is_written_in_its_charset() -> None:
    text = faithful_text("event", "db", "eé", "latin1", EVENT)
    assert text is not None
    assert as_bytes(text) == EVENT.replace(b"`e\xc3\xa9`", b"`e\xe9`")


def test_definitions_that_a_session_of_their_charset_cannot_recreate_are_refused() -> None:
    assert faithful_text("function", "db", "f€", "latin2", ROUTINE) is None  # no € in latin2
    assert faithful_text("function", "db", "fx", "latin1", ROUTINE) is None  # name not held
    assert faithful_text("view", "db", "v", "sjis", b"CREATE VIEW `v` AS select 1") is None
    assert faithful_text("function", "db", "f", "utf8mb4; DROP", b"CREATE") is None
    assert faithful_text("function", "db", "f", "binary", b"CREATE") is None
    assert faithful_text("function", "db", "fé", "dec8", ROUTINE) is None  # no codec
    assert faithful_text("function", "db", "f", "dec8", b"CREATE FUNCTION `f`") is not None


def test_python_codecs() -> None:
    assert python_codec("latin1") == "cp1252"
    assert python_codec("utf8mb4") == "utf-8"
    assert python_codec("koi8r") == "koi8-r"
    assert python_codec("swe7") is None


def definition(kind: str, name: str, raw: bytes, charset: str) -> Definition:
    text = faithful_text(kind, "db", name, charset, raw)
    assert text is not None
    return Definition("db", name, kind, text, "", "latin1_swedish_ci", charset=charset)


def object_bytes(d: Definition) -> bytes:
    return PRELUDE + as_bytes(block(_definition_statements(d)))


def test_the_object_sets_the_charset_sends_the_bytes_and_returns_to_utf8() -> None:
    data = object_bytes(definition("function", "fé", ROUTINE, "latin1"))
    statements = parse_block(data)
    assert statements is not None
    assert statements[0] == b"DROP FUNCTION IF EXISTS `f\xc3\xa9`"  # sent as utf8mb4
    assert b"/*!50003 SET character_set_client = latin1 */" in statements
    assert statements[-2:] == [ROUTINE, b"/*!50003 SET character_set_client = utf8mb4 */"]


def test_a_latin1_view_loses_its_own_database_and_the_check_reads_its_names() -> None:
    data = object_bytes(definition("view", "vé", VIEW, "latin1"))
    assert b"from `t\xe4` join `other`.`u`" in data
    assert definition_reads(data) == {(None, "tä"), ("other", "u")}


def test_objects_without_a_charset_are_read_as_utf8() -> None:
    text = "CREATE VIEW `v` AS select 1 AS `a` from `tä`"
    data = PRELUDE + block(["DROP VIEW IF EXISTS `v`", text]).encode()
    assert definition_reads(data) == {(None, "tä")}


def test_a_renamed_latin1_definition_naming_its_database_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    routine = b"CREATE FUNCTION `f`() RETURNS INT RETURN (SELECT COUNT(*) FROM `b\xe4se`.`t`)"
    d = Definition("bäse", "f", "function", as_text(routine), "", "latin1_bin", charset="latin1")
    record = ObjectRecord("k", "routines", 1, "0" * 64, 1, "STANDARD", "bäse")
    with caplog.at_level("WARNING", logger="datatier"):
        warn_qualified(record, object_bytes(d))
        warn_qualified(record, object_bytes(replace(d, statement="RETURN 1")))
    assert [r.getMessage() for r in caplog.records] == ["restore.qualified_reference"]


def test_a_renamed_definition_naming_another_renamed_database_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``--rename shop=shop2 --rename crm=crm2``: a routine of shop reading ``crm.t`` still
    reads the original crm (not requalified): warned, naming crm and its new name; a
    database the restore does not rename is not (a string literal that looks like a
    reference is warned about too: a byte search, as for the own database)."""
    body = "RETURN (SELECT COUNT(*) FROM `crm`.`t`) + (SELECT COUNT(*) FROM live.u)"
    d = Definition("shop", "f", "function", f"CREATE FUNCTION `f`() RETURNS INT {body}",
                   "", "utf8mb4_bin")  # fmt: skip
    record = ObjectRecord("k", "routines", 1, "0" * 64, 1, "STANDARD", "shop")
    with caplog.at_level("WARNING", logger="datatier"):
        warn_qualified(record, object_bytes(d), {"shop": "shop2", "crm": "crm2"})
    warned = [r for r in caplog.records if r.getMessage() == "restore.qualified_reference"]
    assert len(warned) == 1 and "crm2" in str(warned[0].__dict__), warned
    caplog.clear()
    with caplog.at_level("WARNING", logger="datatier"):
        warn_qualified(record, object_bytes(d), {"shop": "shop2"})
        warn_qualified(record, object_bytes(d), {"shop": "shop2", "live2": "live3"})
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_a_converted_definition_is_written_in_utf8mb4_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = Definition("db", "v", "view", "CREATE VIEW `v` AS select 'ソ'", "", "sjis_bin")
    with caplog.at_level("WARNING", logger="datatier"):
        data = object_bytes(replace(d, converted_from="sjis"))
    assert b"character_set_client = utf8mb4 */" in data and "ソ".encode() in data
    assert [r.getMessage() for r in caplog.records] == ["backup.definition_charset"]
