"""Names a server folding letter case takes for one (:func:`collisions`)."""

from __future__ import annotations

from datatier.mysql.lettercase import apart, collisions, name_key


def test_names_differing_only_by_case_collide_where_the_server_folds_them() -> None:
    tables = [("db", "orders"), ("db", "Orders"), ("db", "items"), ("DB", "ORDERS"), ("x", "t")]
    assert collisions(tables, True) == [[("DB", "ORDERS"), ("db", "Orders"), ("db", "orders")]]
    assert collisions(tables, False) == []


def test_databases_collide_one_group_each() -> None:
    names = [("Shop",), ("shop",), ("B",), ("b",), ("c",)]
    assert collisions(names, True) == [[("B",), ("b",)], [("Shop",), ("shop",)]]


def test_a_name_given_twice_is_no_collision() -> None:
    assert collisions([("db", "t"), ("db", "t")], True) == []


def test_name_key_folds_only_when_asked() -> None:
    assert (name_key("Orders", True), name_key("Orders", False)) == ("orders", "Orders")


def test_apart_gives_each_name_its_own_query() -> None:
    """Also names differing by an accent, which information_schema's collation takes for
    one (tests/integration/mysql/test_catalogue_collation.py)."""
    assert apart(["a", "Shop", "shop", "cafe", "café", "a"]) == [
        ["a"],
        ["Shop"],
        ["shop"],
        ["cafe"],
        ["café"],
    ]
    assert apart([]) == []
