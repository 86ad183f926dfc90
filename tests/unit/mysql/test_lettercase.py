"""Names a server folding letter case takes for one (:func:`collisions`)."""

from __future__ import annotations

from datatier.mysql.lettercase import apart, collisions, name_key

DELTA_SIGMA, delta_sigma = "\u0394\u03a3", "\u03b4\u03c3"  # capital and small, not final


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


def test_name_key_folds_as_mariadb_not_as_python() -> None:
    """MariaDB (``lower_case_table_names=1``) lower-cases names character by character with
    utf8mb3_general_ci's old table: `İa` is stored as `ia` (Python: `i̇a`, two code points),
    a final capital sigma as a small one (Python: a final sigma), while Georgian `Ⴀ` and the
    capital sharp s `ẞ`, newer case pairs, are kept as they are (checked on a real server:
    tests/integration/mysql/test_restore_case_collisions.py)."""
    assert name_key("İa", True) == "ia"
    assert name_key(DELTA_SIGMA, True) == delta_sigma
    assert name_key("Ⴀa", True) == "Ⴀa"
    assert name_key("ẞa", True) == "ẞa"
    assert name_key("ÉCOLE_Ǆ", True) == "école_ǆ"


def test_names_the_server_folds_together_collide_and_no_others() -> None:
    tables = [
        ("db", "İa"),
        ("db", "ia"),
        ("db", "Ⴀa"),
        ("db", "ⴀa"),
        ("db", DELTA_SIGMA),
        ("db", delta_sigma),
    ]
    assert collisions(tables, True) == [
        [("db", "ia"), ("db", "İa")],
        [("db", DELTA_SIGMA), ("db", delta_sigma)],
    ]
