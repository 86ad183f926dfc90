"""Concatenated BSON (a mongodump ``.bson`` file, a ``find_raw_batches`` batch): counted and
split by walking the length prefixes, never decoded."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument

from datatier.errors import IntegrityFailure, OperationFailed

_LENGTH = struct.Struct("<i")
MIN_DOCUMENT = 5  # int32 length + the terminating NUL
# For documents read raw: nested documents stay raw, and a date outside Python's datetime
# range (years before 1 or after 9999, legal in BSON) decodes as DatetimeMS instead of failing.
RAW_OPTIONS: CodecOptions[RawBSONDocument] = CodecOptions(
    document_class=RawBSONDocument, datetime_conversion=DatetimeConversion.DATETIME_AUTO
)


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


def iter_documents(pieces: Iterable[bytes], name: str = "BSON stream") -> Iterator[bytes]:
    """Each document of a stream of concatenated BSON documents cut into arbitrary pieces,
    as its own ``bytes``; holds at most one piece plus one document. IntegrityFailure
    naming ``name`` when a length is impossible or the stream ends inside a document."""
    buf = bytearray()
    for piece in pieces:
        buf += piece
        pos = 0
        while len(buf) - pos >= 4:
            length = _LENGTH.unpack_from(buf, pos)[0]
            if length < MIN_DOCUMENT:
                raise IntegrityFailure(f"{name}: invalid BSON document length {length}")
            if len(buf) - pos < length:
                break
            yield bytes(buf[pos : pos + length])
            pos += length
        del buf[:pos]
    if buf:
        raise IntegrityFailure(f"{name}: ends inside a BSON document ({len(buf)} bytes left)")


def raw_documents(pieces: Iterable[bytes], name: str = "BSON stream") -> Iterator[RawBSONDocument]:
    """:func:`iter_documents` as :class:`RawBSONDocument` (with :data:`RAW_OPTIONS`): fields
    can be read, and the document re-sent, without re-encoding any value."""
    for doc in iter_documents(pieces, name):
        yield RawBSONDocument(doc, RAW_OPTIONS)
