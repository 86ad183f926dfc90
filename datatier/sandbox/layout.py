"""The sandbox's port layout (kept import-light: the CLI reads it to build its options)."""

from __future__ import annotations

DEFAULT_PORT_BASE = 33060
# N+6 is FerretDB's debug HTTP port; memcached2 is a spare, cold node for `cache copy`.
PORT_OFFSETS = {
    "primary": 0,
    "replica1": 1,
    "replica2": 2,
    "memcached": 3,
    "s3": 4,
    "mongo": 5,
    "memcached2": 7,
}
SERVICE_NAMES = tuple(PORT_OFFSETS)
