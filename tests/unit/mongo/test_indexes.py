"""The final indexes of a restored collection (metadata changed by the slice's index
commands), the slice without them, and the comparison with an existing collection."""

from __future__ import annotations

from typing import Any

import bson
from bson.raw_bson import RawBSONDocument

from datatier.mongo.bsonstream import RAW_OPTIONS
from datatier.mongo.indexes import conflicts, final_indexes, secondary, without_index_commands


def spec(name: str, key: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"v": 2, "key": key, "name": name, **options}


def cmd(db: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"op": "c", "ns": f"{db}.$cmd", "o": body}


DUMPED = {("s", "u"): secondary([spec("_id_", {"_id": 1}), spec("a_1", {"a": 1})])}


def test_metadata_alone_without_id() -> None:
    assert final_indexes(DUMPED, [], []) == {("s", "u"): {"a_1": spec("a_1", {"a": 1})}}


def test_the_last_command_naming_an_index_decides() -> None:
    entries = [
        cmd("s", {"createIndexes": "u", "v": 2, "key": {"b": 1}, "name": "b_1", "unique": True}),
        {"op": "i", "ns": "s.u", "o": {"_id": 1}},
        cmd("s", {"dropIndexes": "u", "index": "a_1"}),
        cmd("s", {"dropIndexes": "u", "index": "gone"}),  # dropped before the dump: no-op
        cmd("s", {"createIndexes": "other", "key": {"x": 1}, "name": "x_1"}),  # not restored
        cmd("t", {"dropIndexes": "u", "index": "*"}),  # another database
    ]
    assert final_indexes(DUMPED, [], entries) == {
        ("s", "u"): {"b_1": {"v": 2, "key": {"b": 1}, "name": "b_1", "unique": True}}
    }


def test_drops_of_every_form_and_commit_index_build() -> None:
    two = {("s", "u"): secondary([spec("a_1", {"a": 1}), spec("b_1", {"b": 1, "c": -1})])}
    by_key = [cmd("s", {"dropIndexes": "u", "index": {"b": 1, "c": -1}})]
    assert list(final_indexes(two, [], by_key)[("s", "u")]) == ["a_1"]
    by_list = [cmd("s", {"deleteIndexes": "u", "index": ["a_1", "b_1"]})]
    assert final_indexes(two, [], by_list) == {("s", "u"): {}}
    dropped = [cmd("s", {"drop": "u"}), cmd("s", {"dropIndexes": "u"})]
    assert final_indexes(two, [], dropped) == {("s", "u"): {}}
    commit = [
        cmd("s", {"drop": "u"}),
        cmd("s", {"startIndexBuild": "u", "indexes": [spec("c_1", {"c": 1})]}),
        cmd("s", {"commitIndexBuild": "u", "indexes": [spec("c_1", {"c": 1})]}),
    ]
    assert final_indexes(two, [], commit) == {("s", "u"): {"c_1": spec("c_1", {"c": 1})}}


def test_a_collection_the_slice_creates_starts_without_indexes() -> None:
    entries = [
        {"op": "i", "ns": "s.new", "o": {"_id": 1}},
        cmd("s", {"createIndexes": "new", "key": {"k": 1}, "name": "k_1"}),
    ]
    assert final_indexes({}, [("s", "new"), ("s", "empty")], entries) == {
        ("s", "new"): {"k_1": {"key": {"k": 1}, "name": "k_1"}},
        ("s", "empty"): {},
    }


def test_the_replayed_slice_has_no_index_commands() -> None:
    kept = [
        {"op": "i", "ns": "s.u", "o": {"_id": 1}},
        cmd("s", {"drop": "u"}),
        cmd("s", {"create": "u"}),
        {"op": "c", "ns": "admin.$cmd", "o": {"applyOps": [cmd("s", {"createIndexes": "u"})]}},
        {"op": "n", "ns": "", "o": {}},
    ]
    left = [
        cmd("s", {name: "u"})
        for name in (
            "createIndexes", "dropIndexes", "deleteIndexes",
            "startIndexBuild", "commitIndexBuild", "abortIndexBuild",
        )
    ]  # fmt: skip
    assert list(without_index_commands([left[0], kept[0], *left[1:], *kept[1:]])) == kept


def test_conflicts_are_other_options_and_indexes_the_backup_does_not_hold_alike() -> None:
    wanted = secondary([spec("a_1", {"a": 1}, unique=True), spec("b_1", {"b": 1})])
    assert conflicts({}, {}, wanted, {}) == [], "missing indexes are built"
    same = secondary([spec("a_1", {"a": 1.0}, unique=True, background=True)])
    assert conflicts({}, {}, wanted, same) == []
    assert conflicts({}, {}, wanted, secondary([spec("b_1", {"b": 1}, unique=False)])) == []
    found = conflicts(
        {"capped": True, "size": 4096},
        {},
        wanted,
        secondary([spec("a_1", {"a": 1}), spec("b_1", {"b": -1}), spec("c_1", {"c": 1})]),
    )
    assert found == [
        "options {}, the backup's {'capped': True, 'size': 4096}",
        "index a_1 {'a': 1}, the backup's {'a': 1} unique=True",
        "index b_1 {'b': -1}, the backup's {'b': 1}",
        "index c_1 (not in the backup)",
    ]
    assert conflicts(None, {"capped": True}, {}, {}) == [], "options not known: not compared"


def test_raw_entries_give_plain_specs() -> None:
    """Entries are read raw: their nested documents must compare equal to list_indexes'."""
    body = {"createIndexes": "u", "key": {"a": 1}, "name": "a_1", "collation": {"locale": "fr"}}
    raw = RawBSONDocument(bson.encode({"op": "c", "ns": "s.$cmd", "o": body}), RAW_OPTIONS)
    final = final_indexes({("s", "u"): {}}, [], [raw])[("s", "u")]
    assert final == {"a_1": {k: v for k, v in body.items() if k != "createIndexes"}}
    assert conflicts({}, {}, final, secondary([dict(body, v=2)])) == []


def test_collmod_changes_an_index_and_loses_that_change_in_the_replay() -> None:
    """(a deferred index does not exist yet when the replay reaches the collMod)"""
    hide = cmd("s", {"collMod": "u", "index": {"name": "a_1", "hidden": True}})
    ttl = cmd("s", {"collMod": "u", "index": {"keyPattern": {"a": 1}, "expireAfterSeconds": 9}})
    both = cmd("s", {"collMod": "u", "validator": {"x": 1}, "index": {"name": "a_1"}})
    final = final_indexes(DUMPED, [], [hide, ttl])[("s", "u")]
    assert final == {"a_1": spec("a_1", {"a": 1}, hidden=True, expireAfterSeconds=9)}
    other = cmd("s", {"collMod": "u", "validator": {"x": 1}})
    assert list(without_index_commands([hide, ttl, both, other])) == [other, other]
