"""The references a MySQL manifest records (:mod:`datatier.mysql.references`): read back
as written, absent for older manifests, malformed ones refused (exit 4)."""

from __future__ import annotations

from typing import Any

import pytest

from datatier.backup.manifest import Manifest
from datatier.errors import IntegrityFailure
from datatier.mysql.referenced import referenced_keys, referenced_tables
from datatier.mysql.references import recorded_references


def manifest(options: dict[str, Any]) -> Manifest:
    return Manifest(
        policy="p",
        backup_id="20261203T000000Z-abcd",
        engine="mysql",
        tool_version="0",
        started_at="",
        finished_at="",
        source={},
        consistency={},
        objects=[],
        tables=[],
        options=options,
    )


def test_recorded_references_read_back_with_null_for_the_own_database() -> None:
    refs = recorded_references(
        manifest(
            {
                "references": {
                    "views": [["d`b", "v 1", [[None, "t"], ["other", "u"]]]],
                    "sequences": [["d`b", "t", [[None, "s"]]]],
                }
            }
        )
    )
    assert refs is not None
    assert refs.views == {("d`b", "v 1"): {(None, "t"), ("other", "u")}}
    assert refs.sequences == {("d`b", "t"): {(None, "s")}}
    assert refs.parents is None, "recorded since 2026-12-05: None says not recorded"
    parents = recorded_references(
        manifest(
            {
                "references": {
                    "views": [],
                    "sequences": [],
                    "parents": [["d`b", "p", ["a", "b"]], ["d`b", "p", ["c"]]],
                }
            }
        )
    )
    assert parents is not None
    assert parents.parents == {("d`b", "p"): frozenset({("a", "b"), ("c",)})}


def test_an_older_manifest_records_none() -> None:
    assert recorded_references(manifest({"dumper": "datatier parallel dump"})) is None


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"views": {}, "sequences": []},
        {"views": [], "sequences": [["db", "t"]]},
        {"views": [["db", "v", [["a", "b", "c"]]]], "sequences": []},
        {"views": [["db", "v", [[1, "b"]]]], "sequences": []},
        {"views": [], "sequences": [["db", 5, []]]},
        {"views": [], "sequences": [], "parents": {}},
        {"views": [], "sequences": [], "parents": [["db", "t"]]},
        {"views": [], "sequences": [], "parents": [[None, "t", ["a"]]]},
        {"views": [], "sequences": [], "parents": [["db", "t", []]]},
        {"views": [], "sequences": [], "parents": [["db", "t", [1]]]},
    ],
)
def test_malformed_references_are_an_integrity_failure(doc: object) -> None:
    with pytest.raises(IntegrityFailure, match=r"options\.references"):
        recorded_references(manifest({"references": doc}))


def test_a_foreign_key_s_parents_are_read_from_its_create_table() -> None:
    create = (
        b"CREATE TABLE `c` (\n  `a` int(11) DEFAULT NULL,\n  `b` int(11) DEFAULT NULL,\n"
        b"  CONSTRAINT `f1` FOREIGN KEY (`a`) REFERENCES `pa``r` (`code`),\n"
        b"  CONSTRAINT `f2` FOREIGN KEY (`b`, `c`) REFERENCES `other`.`p.2` (`id`, `x, y`)\n"
        b") ENGINE=InnoDB"
    )
    assert referenced_tables(create, "own") == {("own", "pa`r"), ("other", "p.2")}
    assert referenced_keys(create, "own") == {
        ("own", "pa`r", ("code",)),
        ("other", "p.2", ("id", "x, y")),
    }
    assert referenced_tables(b"CREATE TABLE `t` (`a` int) ENGINE=InnoDB", "own") == set()


def test_a_comment_like_an_unfinished_reference_list_is_read_in_linear_time() -> None:
    """Review M2: an optional separator let the regex try every split of `a``a`...; a
    table COMMENT of ~150 bytes would have hung the backup (2^n). 2,000 names: at once."""
    comment = b"COMMENT 'REFERENCES `x` (" + b"`a`" * 2000 + b"'"
    create = b"CREATE TABLE `t` (\n  `a` int(11)\n) ENGINE=InnoDB " + comment
    assert referenced_keys(create, "own") == set()
    assert referenced_keys(b"REFERENCES `p` (`a`,`b`, `c`)", "own") == {
        ("own", "p", ("a", "b", "c"))
    }
