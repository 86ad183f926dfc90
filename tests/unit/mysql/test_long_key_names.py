"""Foreign-key names over 64 characters in a CREATE TABLE, renamed so CREATE accepts them."""

from __future__ import annotations

from datatier.mysql.long_key_names import MAX_NAME, restorable_create, short_key_name
from datatier.mysql.sqltext import ident

LONG = "t" * 60


def create(*keys: str, comment: str = "") -> str:
    lines = [f"  CONSTRAINT {ident(k)} FOREIGN KEY (`aid`) REFERENCES `a` (`id`)" for k in keys]
    return (
        f"CREATE TABLE {ident(LONG)} (\n  `aid` int(11) DEFAULT NULL,\n  KEY `aid` (`aid`),\n"
        + ",\n".join(lines)
        + f"\n) ENGINE=InnoDB{comment}"
    )


def test_a_short_name_is_64_characters_and_follows_the_full_name() -> None:
    one, two = short_key_name(f"{LONG}_ibfk_1"), short_key_name(f"{LONG}_ibfk_2")
    assert len(one) == len(two) == MAX_NAME
    assert one != two
    assert one.startswith("t" * 55 + "_")
    assert short_key_name(f"{LONG}_ibfk_1") == one
    assert len(short_key_name("é" * 70)) == MAX_NAME  # characters, not bytes


def test_keys_over_64_characters_are_renamed_and_others_kept() -> None:
    keys = [f"{LONG}_ibfk_1", "fk_ok", "k" * 64, f"{LONG}_ibfk_2"]
    text, renamed = restorable_create(create(*keys))
    assert renamed == [(keys[0], short_key_name(keys[0])), (keys[3], short_key_name(keys[3]))]
    assert text == create(short_key_name(keys[0]), "fk_ok", "k" * 64, short_key_name(keys[3]))


def test_a_name_with_backticks_is_requoted() -> None:
    name = "`" * 3 + "x" * 70
    text, renamed = restorable_create(create(name))
    assert renamed == [(name, short_key_name(name))]
    assert ident(short_key_name(name)) in text


def test_nothing_else_is_touched() -> None:
    """A long name in a string, an index name: not a foreign key's name."""
    comment = f" COMMENT='CONSTRAINT `{'x' * 70}` FOREIGN KEY'"
    statement = create("fk", comment=comment).replace("KEY `aid`", f"KEY `{'i' * 64}`")
    assert restorable_create(statement) == (statement, [])
    assert restorable_create("CREATE TABLE `t` (`a` int)") == ("CREATE TABLE `t` (`a` int)", [])
