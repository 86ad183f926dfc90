"""The listing checks of :mod:`datatier.backup.listing`, on records and listings built here."""

from __future__ import annotations

import pytest

from datatier.backup.listing import listing_mismatch, listing_rewritten
from datatier.backup.manifest import ObjectRecord
from datatier.storage.base import ObjectInfo

URL = "s3://bucket"
KEY = "shop/20261201T010000Z-abcd/data/shop/t/data-00001.sql.zst"


def record(etag: str | None = '"0f"', storage_class: str = "STANDARD") -> ObjectRecord:
    return ObjectRecord(KEY, "data", 100, "ab" * 32, 300, storage_class, etag=etag)


def listed(etag: str | None, storage_class: str = "STANDARD", size: int = 100) -> ObjectInfo:
    return ObjectInfo(KEY, size, storage_class, etag=etag)


def test_an_object_with_another_etag_is_rewritten_and_named() -> None:
    problem = listing_rewritten(URL, [record('"0f"')], [listed('"1e"')])
    assert problem is not None
    assert f"{URL}/{KEY} was rewritten" in problem and '"1e"' in problem and '"0f"' in problem
    assert listing_mismatch(URL, "shop/", [record('"0f"')], [listed('"1e"')]) is None


@pytest.mark.parametrize(
    ("recorded", "live"),
    [('"0f"', '"0f"'), ('"0f"', "0f"), ('"0F-2"', '"0f-2"'), ("0f", ' "0f" ')],
    ids=["same", "unquoted", "case", "spaces"],
)
def test_the_same_etag_as_servers_spell_it_is_not_a_rewrite(recorded: str, live: str) -> None:
    assert listing_rewritten(URL, [record(recorded)], [listed(live)]) is None


@pytest.mark.parametrize(
    ("recorded", "live"),
    [(None, '"1e"'), ('"0f"', None)],
    ids=["old-manifest", "no-etag-listed"],
)
def test_without_both_etags_nothing_is_judged(recorded: str | None, live: str | None) -> None:
    assert listing_rewritten(URL, [record(recorded)], [listed(live)]) is None


@pytest.mark.parametrize(
    ("recorded", "now", "judged"),
    [
        ("STANDARD", "GLACIER", False),  # archived by a copy: a new ETag proves nothing
        ("STANDARD_IA", "DEEP_ARCHIVE", False),
        ("STANDARD", "REDUCED_REDUNDANCY", False),  # a class datatier does not rank
        ("STANDARD_IA", "STANDARD", True),  # warmer: no re-class of datatier's does that
        ("GLACIER", "GLACIER", True),
    ],
)
def test_a_colder_or_unknown_class_is_not_judged_by_etag(
    recorded: str, now: str, judged: bool
) -> None:
    problem = listing_rewritten(URL, [record('"0f"', recorded)], [listed('"1e"', now)])
    assert (problem is not None) is judged


def test_missing_objects_are_left_to_the_size_check() -> None:
    assert listing_rewritten(URL, [record()], []) is None
    assert listing_mismatch(URL, "shop/", [record()], []) == f"{URL}/{KEY} is missing"
    size = listing_mismatch(URL, "shop/", [record()], [listed('"0f"', size=99)])
    assert size is not None and "99 bytes" in size
