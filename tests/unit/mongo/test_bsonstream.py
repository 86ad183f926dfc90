"""Splitting concatenated BSON into documents, whatever the piece boundaries."""

from __future__ import annotations

import bson
import pytest
from bson.raw_bson import RawBSONDocument

from datatier.errors import IntegrityFailure
from datatier.mongo.bsonstream import iter_documents, raw_documents
from datatier.mongo.restore import batches

DOCS = [bson.encode({"_id": i, "pad": "x" * (i * 37 % 300)}) for i in range(200)]
STREAM = b"".join(DOCS)


@pytest.mark.parametrize("size", [1, 3, 4, 5, 64, 1000, len(STREAM)])
def test_any_piece_size_gives_the_same_documents(size: int) -> None:
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert list(iter_documents(pieces)) == DOCS


def test_empty_stream_and_empty_pieces() -> None:
    assert list(iter_documents([])) == []
    assert list(iter_documents([b"", DOCS[0], b""])) == [DOCS[0]]


def test_truncated_stream_is_an_integrity_failure_naming_it() -> None:
    with pytest.raises(IntegrityFailure, match=r"obj\.bson: ends inside a BSON document"):
        list(iter_documents([STREAM[:-3]], "obj.bson"))


def test_impossible_length_is_an_integrity_failure() -> None:
    with pytest.raises(IntegrityFailure, match="invalid BSON document length 2"):
        list(iter_documents([b"\x02\x00\x00\x00\x00"]))


def test_raw_documents_keep_bytes_and_read_dates_outside_pythons_range() -> None:
    far = bson.encode({"_id": 1, "d": bson.DatetimeMS(-(2**62)), "n": {"x": -0.0}})
    (doc,) = raw_documents([far])
    assert doc.raw == far
    assert doc["d"] == bson.DatetimeMS(-(2**62))
    assert bson.encode({"o": doc}) == bson.encode({"o": RawBSONDocument(far)})


def test_restore_batches_are_bounded_and_keep_every_document() -> None:
    """What bounds a Mongo restore's memory: batches of about `limit` bytes, built from
    pieces of any size, never the whole object."""
    pieces = [STREAM[i : i + 777] for i in range(0, len(STREAM), 777)]
    found = list(batches(pieces, limit=4096))
    assert [doc.raw for batch in found for doc in batch] == DOCS
    assert len(found) > 5
    assert all(sum(len(d.raw) for d in batch) < 4096 + 400 for batch in found)
