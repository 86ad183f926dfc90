"""How a kept table's foreign-key name is compared with the restore's
(:mod:`datatier.mysql.foreign_key_names`): as InnoDB compares them (checked on MariaDB
10.11), so the refusal neither misses a clash nor refuses a restore that would work."""

from __future__ import annotations

import pytest

from datatier.errors import UsageError
from datatier.mysql.foreign_key_names import Declared, KeptKey, check_kept_foreign_keys


@pytest.mark.parametrize(
    ("kept", "clashes"),
    [
        ("fk_child", True),
        ("FK_Child", True),  # ASCII letters compare case-blind
        ("FK_É", False),  # others do not: fk_é and FK_É are two keys
        ("fk_é", True),
        ("child_ibfk_3", True),  # the server names child's unnamed key so
        ("CHILD_IBFK_1", True),
        ("childx_ibfk_1", False),
        ("other_ibfk_1", False),
    ],
)
def test_a_kept_keys_name_clashes_as_innodb_compares_it(kept: str, clashes: bool) -> None:
    declared = Declared({"fk_child", "fk_é"}, {"child"})
    assert declared.clashes(kept) is clashes


def test_the_refusal_names_each_clashing_key_and_its_table() -> None:
    kept = [KeptKey("d", "later", "fk_a"), KeptKey("d", "later", "fk_b"), KeptKey("e", "t", "fk_a")]
    with pytest.raises(UsageError) as refused:
        check_kept_foreign_keys(kept, {"d": Declared({"fk_a"})}, "why")
    assert "'fk_a' of `d`.`later`" in str(refused.value)
    assert "fk_b" not in str(refused.value) and "`e`" not in str(refused.value)
    assert "nothing was changed" in (refused.value.hint or "")
    check_kept_foreign_keys(kept, {"d": Declared({"fk_c"})}, "why")  # no clash: no error
