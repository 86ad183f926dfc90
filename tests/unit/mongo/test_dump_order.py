"""The order a collection is dumped in (the restored copy's natural order): the capped
collection's round trip runs against FerretDB in
tests/integration/mongo/test_tester5_findings.py."""

from __future__ import annotations

from datatier.mongo.dump import read_order


def test_collections_are_dumped_in_id_order() -> None:
    assert read_order({"name": "t", "options": {}}) == [("_id", 1)]
    assert read_order({"name": "t"}) == [("_id", 1)]


def test_a_capped_collection_keeps_its_insertion_order() -> None:
    assert read_order({"name": "log", "options": {"capped": True, "size": 4096}}) is None
