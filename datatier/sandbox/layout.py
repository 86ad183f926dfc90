"""The sandbox's port layout (kept import-light: the CLI reads it to build its options)."""

from __future__ import annotations

# Below Linux's ephemeral range (32768-60999): a port in it can be taken at any moment by an
# outgoing connection's local end, and then a sandbox service cannot bind it.
DEFAULT_PORT_BASE = 22060
# N+6 is FerretDB's debug HTTP port; memcached2 is a spare, cold node for `cache copy`;
# mongo2 is mongo-java-server (a second MongoDB-protocol server, with an oplog).
PORT_OFFSETS = {
    "primary": 0,
    "replica1": 1,
    "replica2": 2,
    "memcached": 3,
    "s3": 4,
    "mongo": 5,
    "memcached2": 7,
    "mongo2": 8,
}
SERVICE_NAMES = tuple(PORT_OFFSETS)
