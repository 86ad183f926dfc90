"""What kind a restore creates under each target name, and how a conflict is shown."""

from __future__ import annotations

from datatier.mysql.otherkinds import Conflict, created_kinds


def test_created_kinds_follow_the_renames_and_tell_sequences() -> None:
    kinds = created_kinds(
        tables=[("a", "t"), ("a", "s"), ("b", "t")],
        sequences={("a", "s"), ("b", "other")},
        views=[("a", "v")],
        targets={"a": "a2", "b": "b"},
    )
    assert kinds == {("a2", "t"): "table", ("a2", "s"): "sequence", ("b", "t"): "table",
                     ("a2", "v"): "view"}  # fmt: skip


def test_a_conflict_names_both_kinds() -> None:
    c = Conflict("d`b", "x", "SYSTEM VERSIONED", "view")
    assert str(c) == "system-versioned table `d``b`.`x` (the backup has a view)"
    assert c.to_json() == {"database": "d`b", "name": "x", "present": "system-versioned table",
                           "restored": "view"}  # fmt: skip
