"""Which declared key a kept or replaced table's key clashes with
(:class:`~datatier.mysql.foreign_key_names.Declared`). Names are weighed by the server
(tests/integration/mysql/test_name_weights.py); here a stand-in weight, ASCII letters
lower-cased, says the same for these ASCII names."""

from __future__ import annotations

import pytest

from datatier.mysql.foreign_key_names import Declared


def weight(name: str) -> bytes:
    return name.encode().lower()


@pytest.mark.parametrize(
    ("kept", "besides", "clashes_with"),
    [
        ("fk_child", None, "child"),
        ("FK_Child", None, "child"),
        ("fk_other", None, None),
        ("gen_ibfk_3", None, "gen"),  # the server names gen's unnamed key so
        ("GEN_IBFK_1", None, "gen"),
        ("genx_ibfk_1", None, None),
        ("fk_child", "child", None),  # its own key: dropped and created in turn
        ("fk_child", "orders", "child"),  # another table's: it must go first
    ],
)
def test_a_key_clashes_with_a_key_another_table_declares(
    kept: str, besides: str | None, clashes_with: str | None
) -> None:
    declared = Declared({("child", "fk_child")}, {"gen"})
    assert declared.clash(kept, weight, besides=besides) == clashes_with


def test_merged_declarations_and_what_is_weighed() -> None:
    declared = Declared({("a", "fk_a")})
    declared.merge(Declared({("", "fk_w")}, {"b"}))
    assert declared.weighed() == {"fk_a", "fk_w", "b_ibfk_"}
    assert declared.clash("FK_W", weight) == ""  # the window's: its table not noted
