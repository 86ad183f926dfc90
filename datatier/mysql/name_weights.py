"""Names compared as the server compares them, by asking it for their collation weights.

Some names are compared by the server with a collation Python cannot reproduce simply:
InnoDB compares foreign-key names with latin1_swedish_ci over their UTF-8 bytes (``fk_가``
and ``fk_밀`` are one key: their lead bytes weigh alike), routines and events are named in
utf8mb3_general_ci (``straße`` is ``strase``, not ``strasse``; checked on MariaDB 10.11).
:func:`weigh` returns each name's ``WEIGHT_STRING`` in the collation a :class:`Weighing`
names, trailing spaces dropped (both collations pad with spaces): equal weights, one name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Weighing:
    """How one kind of name is weighed: the SQL expression of a name's weight (its
    parameter: the name's UTF-8 bytes) and the weight of a space (stripped at the end)."""

    expression: str
    space: bytes


FOREIGN_KEYS = Weighing(
    "WEIGHT_STRING(CONVERT(CAST(%s AS BINARY) USING latin1) COLLATE latin1_swedish_ci)", b" "
)
"""As InnoDB compares foreign-key names: latin1_swedish_ci over their UTF-8 bytes."""

DEFINITIONS = Weighing(
    "WEIGHT_STRING(CONVERT(CONVERT(%s USING utf8mb4) USING utf8mb3) COLLATE utf8mb3_general_ci)",
    b"\x00 ",
)
"""As the server compares routine and event names."""

_BATCH = 200


def weigh(cur: Any, names: Iterable[str], how: Weighing) -> dict[str, bytes]:
    """Each of ``names`` -> its weight, asked of the server through ``cur`` (a few queries
    for any number of names)."""
    unique = sorted(set(names))
    found: dict[str, bytes] = {}
    for start in range(0, len(unique), _BATCH):
        chunk = unique[start : start + _BATCH]
        cur.execute(
            "SELECT " + ", ".join([how.expression] * len(chunk)),
            [n.encode("utf-8", "surrogateescape") for n in chunk],
        )
        row = cur.fetchone()
        for name, weight in zip(chunk, row, strict=True):
            found[name] = _strip(bytes(weight or b""), how.space)
    return found


def _strip(weight: bytes, space: bytes) -> bytes:
    while weight.endswith(space):
        weight = weight[: -len(space)]
    return weight
