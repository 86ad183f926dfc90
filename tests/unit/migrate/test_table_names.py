"""``migrate --tables``: parsed as ``restore --tables`` is (one grammar), and never read as
"every table of the mapping" when it names none."""

from __future__ import annotations

import pytest

from datatier.errors import UsageError
from datatier.migrate.mapping import EMPTY
from datatier.migrate.service import table_names


@pytest.mark.parametrize("given", ["", ",", " , "])
def test_tables_naming_nothing_is_refused_not_read_as_all(given: str) -> None:
    with pytest.raises(UsageError, match="names no table"):
        table_names(given, EMPTY)


def test_entries_in_order_once_each_quoting_as_restore_takes_it() -> None:
    assert table_names("shop.orders, `my,db`.t ,shop.orders", EMPTY) == [
        "shop.orders",
        "my,db.t",
    ]


@pytest.mark.parametrize("given", ["a.b.c", "`a`.`b.c`", "`a.b`.c", "nodot"])
def test_names_migrate_cannot_address_are_refused(given: str) -> None:
    with pytest.raises(UsageError, match=r"DB\.TABLE"):
        table_names(given, EMPTY)


def test_no_option_falls_back_to_the_mapping_or_refuses() -> None:
    with pytest.raises(UsageError, match="no tables"):
        table_names(None, EMPTY)
