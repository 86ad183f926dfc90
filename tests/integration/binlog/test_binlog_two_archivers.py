"""Two archivers on one archive (a cron ``--once`` beside the service, an overlapping
rollout): the one that loses the race for a sequence number must stop without harming what
the winner published. Real MariaDB primary and S3 server of the sandbox; the interleaving
(the loser read the archive before the winner published) is made deterministic by giving
the second archiver the archive's earlier end, as it had read it.
"""

from __future__ import annotations

import hashlib

import pytest
import zstandard

from datatier.binlog.archiver import Archiver
from datatier.binlog.chain import load_chain
from datatier.errors import OperationFailed
from tests.integration.binlog_support import binlog_env, fresh_policy, query
from tests.integration.conftest import SandboxHandle

DB = "two_archivers_db"
POLICY = "two_archivers"
ENV = binlog_env(POLICY)


def write(sandbox: SandboxHandle, rows: int) -> None:
    for i in range(rows):
        query(sandbox.config, "primary", f"INSERT INTO {DB}.t (v) VALUES (%s)", (f"row {i}",))


def test_a_second_archiver_never_overwrites_a_published_segment(sandbox: SandboxHandle) -> None:
    loaded, policy, store = fresh_policy(sandbox, POLICY, DB, ENV)
    query(
        sandbox.config,
        "primary",
        f"CREATE TABLE {DB}.t (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)",
    )
    Archiver(loaded, policy, node="primary", once=True).run()
    before = load_chain(store, POLICY)
    assert before.records and not before.gaps

    write(sandbox, 20)
    winner = Archiver(loaded, policy, node="primary", once=True)
    winner.run()
    published = load_chain(store, POLICY).records[-1]
    assert published.seq == before.next_seq and published.transactions == 20

    write(sandbox, 30)  # the loser's segment differs from the winner's
    loser = Archiver(loaded, policy, node="primary", once=True)
    loser.seq, loser.published, loser.last = before.next_seq, before.end, before.records[-1]
    with pytest.raises(OperationFailed, match="another archiver"):
        loser._stream(loser._source())

    after = load_chain(store, POLICY)
    assert not after.gaps, [g.describe() for g in after.gaps]
    record = after.records[-1]
    assert record == published
    assert record.key is not None
    raw = store.get_bytes(record.key)
    assert hashlib.sha256(raw).hexdigest() == record.sha256
    plain = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    assert len(plain) == record.raw_size
