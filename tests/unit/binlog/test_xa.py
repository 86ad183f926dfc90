"""XA transactions in a replay (:mod:`datatier.mysql.binlog.xa`): how an xid is shown, and
which XA groups are refused."""

from __future__ import annotations

import pytest

from datatier.mysql.binlog.positions import Gtid
from datatier.mysql.binlog.selection import ReplayRefused
from datatier.mysql.binlog.xa import XaLedger, shown_xid


@pytest.mark.parametrize(
    ("xid", "shown"),
    [
        ("X'786172656631',X'',1", "'xaref1'"),
        ("X'6A7461',X'6272',1", "'jta','br'"),
        ("X'6A7461',X'',4660", "'jta','',4660"),
        ("X'00FF',X'',1", "X'00FF',X'',1"),  # not printable: as written
        ("'plain'", "'plain'"),
    ],
)
def test_an_xid_is_shown_as_the_application_wrote_it(xid: str, shown: str) -> None:
    assert shown_xid(xid) == shown


def test_a_prepare_acting_on_a_restored_table_is_refused_with_its_xid_and_a_way_out() -> None:
    steps = [("START", "X'786172656631',X'',1"), ("END", "X'786172656631',X'',1")]
    with pytest.raises(ReplayRefused) as caught:
        XaLedger().settle(Gtid(0, 1, 8), steps, acts=True)
    assert caught.value.message == (
        "transaction 0-1-8 is XA transaction 'xaref1', prepared with changes to a restored "
        "database: an XA prepared transaction cannot be replayed"
    )
    assert "--until-gtid" in (caught.value.hint or "")


def test_a_commit_is_left_out_only_after_its_prepare_was() -> None:
    ledger = XaLedger()
    xid = "X'61',X'',1"
    ledger.settle(Gtid(0, 1, 5), [("START", xid)], acts=False)
    ledger.settle(Gtid(0, 1, 6), [("COMMIT", xid)], acts=False)
    with pytest.raises(ReplayRefused, match="commits XA transaction 'b', prepared before"):
        ledger.settle(Gtid(0, 1, 7), [("COMMIT", "X'62',X'',1")], acts=False)
