"""Concatenated BSON (a mongodump ``.bson`` file, a ``find_raw_batches`` batch): counted by
walking the length prefixes, never decoded."""

from __future__ import annotations

import struct

from datatier.errors import OperationFailed

_LENGTH = struct.Struct("<i")


def count_documents(raw: bytes) -> int:
    """Documents in a buffer of concatenated BSON documents; OperationFailed if the buffer
    does not end on a document boundary."""
    count = pos = 0
    while pos < len(raw):
        pos += _LENGTH.unpack_from(raw, pos)[0]
        count += 1
    if pos != len(raw):
        raise OperationFailed("a raw BSON batch does not end on a document boundary")
    return count
