"""The oplog replay of a Mongo restore goes through the lease check, one check per batch
(datatier/mongo/restore.py ``_Fenced``): a batch after the check refused is never applied.
The check itself is in tests/unit/mongo/test_claim.py; restores losing their claim on real
servers in tests/integration/mongo/test_mongo_restore_claim.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from datatier.mongo.claim import ClaimLost
from datatier.mongo.oplog import replay
from datatier.mongo.oplogapply import Applier
from datatier.mongo.restore import _Fenced


class _Recording(Applier):
    name = "recording"

    def __init__(self) -> None:
        super().__init__(client=None)
        self.batches: list[int] = []

    def apply(self, batch: list[dict[str, Any]]) -> None:
        self.batches.append(len(batch))


def test_each_replay_batch_is_checked_first_and_none_is_applied_after_a_refusal() -> None:
    checks: list[str] = []

    @contextlib.contextmanager
    def writing(what: str) -> Iterator[None]:
        checks.append(what)
        if len(checks) > 1:
            raise ClaimLost("taken over")
        yield

    ops = [{"ts": 1, "op": "i", "ns": "shop.orders", "o": {"_id": i}} for i in range(1200)]
    inner = _Recording()
    with pytest.raises(ClaimLost):
        replay(None, ops, {"shop": "shop"}, {("shop", "orders")}, applier=_Fenced(inner, writing))
    assert inner.batches == [500], "the batch after the refused check was not applied"
    assert checks == ["oplog batch of 500 entries", "oplog batch of 500 entries"]
