"""The binlog scanner (:mod:`datatier.mysql.binlog.sqlrefs`) reads statements as MariaDB's
lexer does: whitespace, comments, strings under the statement's sql_mode, numbers, and the
database a database statement names (each case checked against a MariaDB 10.11 server)."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.selection import Selection
from datatier.mysql.binlog.sqlrefs import rewrite, scan

RENAMES = {"cr": "cr_r", "1": "one", "nb": "nb_r"}
KNOWN = {"cr", "1", "nb"}


def renamed(text: str, *, escapes: bool = True) -> str:
    return rewrite(text, scan(text, escapes=escapes), RENAMES, KNOWN)


@pytest.mark.parametrize(
    "text",
    [
        "CREATE OR REPLACE DATABASE cr",
        "create or replace schema `cr`",
        "CREATE DATABASE IF NOT EXISTS cr",
        "CREATE DATABASE /*!32312 IF NOT EXISTS*/ cr",
        "DROP SCHEMA IF EXISTS cr",
        "ALTER SCHEMA cr CHARSET=latin1",
        "ALTER DATABASE cr UPGRADE DATA DIRECTORY NAME",
    ],
)
def test_every_database_statement_form_names_its_database(text: str) -> None:
    assert [n.value for n in scan(text).database_objects] == ["cr"]
    assert renamed(text) == text.replace("`cr`", "cr").replace(" cr", " `cr_r`")


@pytest.mark.parametrize(
    "text",
    [
        "ALTER DATABASE CHARACTER SET latin1",
        "ALTER SCHEMA DEFAULT COLLATE latin1_bin",
        "ALTER DATABASE COMMENT 'x'",
        "ALTER DATABASE COMMENT = 'x'",
        "ALTER DATABASE CHARSET latin1",
    ],
)
def test_alter_database_without_a_name_acts_on_the_default_database(text: str) -> None:
    assert scan(text).database_objects == []


def test_non_reserved_option_words_are_names_when_options_follow() -> None:
    """``ALTER DATABASE comment COMMENT 'x'`` alters database `comment`."""
    assert [n.value for n in scan("ALTER DATABASE comment COMMENT 'x'").database_objects] == [
        "comment"
    ]


def test_only_ascii_whitespace_separates_names() -> None:
    """U+00A0 (and other Unicode spaces) belong to an unquoted name; \\v and \\f are spaces."""
    nbsp = scan("TRUNCATE TABLE \u00a0nb.t")
    assert [(n.value, parts) for n, parts in nbsp.qualifiers] == [("\u00a0nb", 2)]
    assert renamed("TRUNCATE TABLE \u2003nb.t") == "TRUNCATE TABLE \u2003nb.t"
    assert renamed("TRUNCATE TABLE\x0bnb.t\x0c") == "TRUNCATE TABLE\x0b`nb_r`.t\x0c"


def test_only_m_bang_and_bang_comments_are_code() -> None:
    assert renamed("/*Mike's change*/ ALTER TABLE nb.t") == "/*Mike's change*/ ALTER TABLE `nb_r`.t"
    assert renamed("/*M!100100 ALTER TABLE nb.t*/") == "/*M!100100 ALTER TABLE `nb_r`.t*/"
    assert renamed("SELECT 1 --\x01 nb.t\nFROM nb.t") == "SELECT 1 --\x01 nb.t\nFROM `nb_r`.t"


def test_backslashes_in_strings_follow_the_sql_mode() -> None:
    text = "SELECT 'C:\\' AS p FROM nb.t WHERE 'a' = 'a'"
    assert renamed(text, escapes=False) == text.replace("nb.t", "`nb_r`.t")
    assert renamed(text) == text  # with escapes the string runs to the next quote
    no_escapes = 1 << 20
    assert Selection(frozenset({"nb"})).scan(text, no_escapes).qualifiers != []


@pytest.mark.parametrize(
    ("text", "qualifiers"),
    [
        ("DEFAULT 1.50", []),
        ("SELECT 1e5, 1.e5, 1e5x, 1.5e-3, 123.", []),
        ("SELECT 12abc.t", ["12abc"]),
        ("SELECT `1`.50, x.1e5, t1.5", ["1", "x", "t1"]),
    ],
)
def test_numbers_are_not_names(text: str, qualifiers: list[str]) -> None:
    assert [n.value for n, _ in scan(text).qualifiers] == qualifiers
    assert renamed("ALTER TABLE t ADD c DECIMAL(5,2) DEFAULT 1.50") == (
        "ALTER TABLE t ADD c DECIMAL(5,2) DEFAULT 1.50"
    )


def test_ansi_quoted_identifiers_take_no_backslash_escapes() -> None:
    text = 'SELECT "a\\" FROM nb.t'
    found = scan(text, ansi_quotes=True)
    assert rewrite(text, found, RENAMES, KNOWN) == 'SELECT "a\\" FROM `nb_r`.t'


def test_a_single_byte_character_sets_no_break_space_is_a_space_when_given() -> None:
    """Sent in latin1 (read byte for byte), 0xA0 separates words."""
    text = "TRUNCATE TABLE\xa0nb.t"
    assert [n.value for n, _ in scan(text).qualifiers] == ["TABLE\xa0nb"]
    assert rewrite(text, scan(text, space="\xa0"), RENAMES, KNOWN) == "TRUNCATE TABLE\xa0`nb_r`.t"
