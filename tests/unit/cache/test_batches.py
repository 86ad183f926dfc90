"""The batch pieces of the warmer's hot path agree with their item-by-item definitions."""

from __future__ import annotations

import itertools

import pytest

from datatier.cache.keys import KeyBuilder, KeyValueRefused
from datatier.cache.pipe import _merge
from datatier.cache.protocol import FLUSH_BYTES, SLICE_ITEMS, StoreBatch, StoreItem, slices
from datatier.cache.warmer import _all_valid


def one_by_one(verb: bytes, items: list[StoreItem]) -> bytes:
    return b"".join(
        b"%s %s %d %d %d\r\n%s\r\n" % (verb, i.key, i.flags, i.exptime, len(i.value), i.value)
        for i in items
    )


def test_wire_is_the_text_protocol_item_by_item() -> None:
    items = [StoreItem(b"k%d" % i, b"v%%s\r\n%d" % i * i, 0, 60) for i in range(50)]
    uniform = StoreBatch([i.key for i in items], [i.value for i in items], 0, 60)
    assert uniform.wire(b"add", 0, 50) == one_by_one(b"add", items)
    assert uniform.wire(b"set", 10, 20) == one_by_one(b"set", items[10:20])
    mixed = [StoreItem(i.key, i.value, n % 3, n * 10) for n, i in enumerate(items)]
    assert StoreBatch.of(mixed).wire(b"set", 5, 45) == one_by_one(b"set", mixed[5:45])
    assert StoreBatch.of(mixed).take([3, 1]).wire(b"add", 0, 2) == one_by_one(
        b"add", [mixed[3], mixed[1]]
    )


def test_slices_cover_every_item_in_bounded_runs() -> None:
    values = [b"x" * n for n in (10, FLUSH_BYTES, 5, 5, 3 * FLUSH_BYTES, 1)] + [b""] * 9000
    runs = list(slices(values))
    assert runs[0][0] == 0 and runs[-1][1] == len(values)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(runs))
    for start, end in runs:
        assert end > start and end - start <= SLICE_ITEMS
        assert end - start == 1 or sum(map(len, values[start:end])) <= FLUSH_BYTES
    assert list(slices([])) == []


def test_merge_keeps_order_flags_and_ttls() -> None:
    a = StoreBatch([b"a1", b"a2"], [b"1", b"2"], 0, 60)
    b = StoreBatch([b"b1"], [b"3"], 0, 60)
    c = StoreBatch([b"c1", b"c2"], [b"4", b"5"], [1, 2], [70, 80])
    assert _merge([a, b]) == StoreBatch([b"a1", b"a2", b"b1"], [b"1", b"2", b"3"], 0, 60)
    merged = _merge([a, StoreBatch([], []), c])
    assert merged == StoreBatch(
        [b"a1", b"a2", b"c1", b"c2"], [b"1", b"2", b"4", b"5"], [0, 0, 1, 2], [60, 60, 70, 80]
    )
    assert _merge([b]) is b and _merge([StoreBatch([], [])]) is None and _merge([]) is None


@pytest.mark.parametrize(
    ("keys", "valid"),
    [
        ([b"a", b"b:1"], True),
        ([b"a", b""], False),
        ([b"a", b"x" * 251], False),
        ([b"x" * 250], True),
        ([b"a", b"b c"], False),
        ([b"a\x7f"], False),
        ([b"\xc3\xa9t\xc3\xa9"], True),
        ([], False),
    ],
)
def test_all_valid_is_key_problem_for_every_key(keys: list[bytes], valid: bool) -> None:
    assert _all_valid(keys) is valid


def test_batch_keys_build_what_build_builds() -> None:
    columns = ["id", "name", "id"]  # a repeated name: the last one wins, as in dict(zip())
    rows = [(1, "x", 2), (3, "{y}", "z"), (5, "é", 6.5)]
    keys = KeyBuilder(
        set_name="s",
        query_name="q",
        sql="SELECT 1",
        template="{{lit}}:{name}/{id}}}",
        function=None,
    )
    expected = [keys.build(None, dict(zip(columns, r, strict=True))) for r in rows]
    by_tuple = keys.batch_keys(columns, as_dicts=False)
    by_dict = keys.batch_keys(columns, as_dicts=True)
    assert by_tuple is not None and by_dict is not None
    assert by_tuple(rows) == expected
    assert by_dict([dict(zip(columns, r, strict=True)) for r in rows]) == expected
    assert expected[0] == b"{lit}:x/2}"
    for raw in ((3, "y", None), (5, "é", b"b")):  # NULL or bytes: built one by one instead
        with pytest.raises(KeyValueRefused):
            by_tuple([rows[0], raw])
        with pytest.raises(KeyValueRefused):
            by_dict([dict(zip(columns, raw, strict=True))])
    assert (
        keys.build(None, dict(zip(columns, (5, "é", b"b"), strict=True))) == "{lit}:é/b}".encode()
    )
    missing = KeyBuilder(set_name="s", query_name="q", sql="x", template="{nope}", function=None)
    assert missing.batch_keys(columns, as_dicts=False) is None
    with pytest.raises(KeyError):
        by_missing = missing.batch_keys(columns, as_dicts=True)
        assert by_missing is not None
        by_missing([{"id": 1}])
    digest = KeyBuilder(set_name="s", query_name="q", sql="x", template="{md5}", function=None)
    assert digest.batch_keys(columns, as_dicts=True) is None
