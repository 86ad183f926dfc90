"""``POLICY/_binlogs/archiver.json``: the archiver's last word, for lag.

Written (overwritten) with each segment and every few seconds while the archiver is caught
up: its source, the archive's end position, and ``safe_until``, the moment before which
everything the server wrote is archived. The archiver vouches only for what it knows
(:meth:`~datatier.binlog.archiver.Archiver.vouched`): the timestamp of the oldest
transaction it holds unpublished, else the bound of a probe of the server its stream passed
while idle (nothing will be stamped before it: :mod:`datatier.mysql.binlog.quiet`), else
the last event it published. Never
the time it received a transaction, nor "now": an archiver that is behind (paused, slow,
restarted after an outage) receives transactions committed long before.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from datatier.backup.manifest import utc_now_iso
from datatier.binlog.layout import INDEX_TAGS, state_key
from datatier.binlog.records import iso
from datatier.storage.base import ObjectNotFound, ObjectStore


def write_state(
    store: ObjectStore,
    policy: str,
    *,
    node: str,
    server_id: int,
    position: str,
    last_seq: int,
    safe_until: float,
    gaps: int,
    note: str = "",
) -> None:
    doc = {
        "format": 1,
        "node": node,
        "server_id": server_id,
        "position": position,
        "last_seq": last_seq,
        "safe_until": safe_until,
        "safe_until_time": iso(safe_until),
        "updated_at": utc_now_iso(),
        "gaps": gaps,
        "vouch_note": note,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    text = json.dumps(doc, sort_keys=True, allow_nan=False)  # NaN is not JSON
    store.put_bytes(state_key(policy), (text + "\n").encode(), tags=INDEX_TAGS)


def read_state(store: ObjectStore, policy: str) -> dict[str, Any]:
    """The last state written ({} when there is none or it does not parse)."""
    try:
        doc = json.loads(store.get_bytes(state_key(policy)))
    except (ObjectNotFound, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
