"""The clock skew between a replica's host and the heartbeat writer's comes off the lag
(:mod:`datatier.replication.skew`): a pure function of one round's measurements. The
monitor's real readings of offsets and lags are covered against the sandbox in
tests/integration/replication/test_clock_skew.py. Each reading here is right to 1 ms, so
a corrected lag is the largest the skew allows: 2 ms over the skew's own figure."""

from __future__ import annotations

import pytest

from datatier.replication.skew import correct_lags
from datatier.replication.snapshot import NodeHealth


def node(
    name: str,
    server_id: int,
    *,
    lag: float | None = None,
    source: int | None = 1,
    offset: float | None = 0.0,
    error: float = 0.001,
    reachable: bool = True,
) -> NodeHealth:
    return NodeHealth(
        name=name,
        role="primary" if server_id == 1 else "replica",
        host="db",
        port=3306,
        reachable=reachable,
        server_id=server_id,
        lag=lag,
        lag_raw=lag,
        lag_source=None if lag is None else source,
        clock_offset=offset if reachable else None,
        clock_error=error if reachable else None,
    )


def test_a_replica_clock_ahead_of_the_writer_no_longer_reads_as_lag() -> None:
    nodes = {
        "p": node("p", 1, lag=0.2, source=1, offset=-3.0),
        "r": node("r", 2, lag=5.3, offset=2.0),
    }
    out = correct_lags(nodes)
    assert out["r"].lag == pytest.approx(0.302) and out["r"].lag_raw == 5.3
    assert out["r"].clock_skew == pytest.approx(5.0)
    assert out["p"].lag == 0.2 and out["p"].clock_skew is None  # the writer reads its own clock


def test_a_replica_clock_behind_the_writer_no_longer_hides_its_lag() -> None:
    """The dangerous direction: 10 s behind on a clock 8 s slow read as 2 s (or as 0)."""
    out = correct_lags({"p": node("p", 1, lag=0.1), "r": node("r", 2, lag=2.0, offset=-8.0)})
    assert out["r"].lag == pytest.approx(10.002)
    out = correct_lags({"p": node("p", 1, lag=0.1), "r": node("r", 2, lag=-7.5, offset=-8.0)})
    assert out["r"].lag == pytest.approx(0.502)


def test_a_skew_within_the_readings_error_never_lowers_the_lag() -> None:
    nodes = {
        "p": node("p", 1, lag=0.1, error=0.004),
        "r": node("r", 2, lag=0.25, offset=0.006, error=0.004),
    }
    out = correct_lags(nodes)
    assert out["r"].lag == pytest.approx(0.252) and out["r"].clock_skew == pytest.approx(0.006)


def test_a_corrected_lag_below_zero_is_zero() -> None:
    out = correct_lags({"p": node("p", 1, lag=0.1), "r": node("r", 2, lag=1.0, offset=1.5)})
    assert out["r"].lag == 0.0


def test_without_the_writer_this_round_a_last_skew_that_adds_lag_stands() -> None:
    """A replica clock 4 s slow: its lag read while the writer is away is 4 s short."""
    first = correct_lags({"p": node("p", 1, lag=0.1), "r": node("r", 2, lag=1.0, offset=-4.0)})
    down = {"p": node("p", 1, reachable=False), "r": node("r", 2, lag=5.0, offset=-4.0)}
    out = correct_lags(down, first)
    assert out["r"].lag == pytest.approx(9.002) and out["r"].clock_skew == pytest.approx(-4.0)
    # a skew measured against another writer does not carry over
    moved = {"p": node("p", 1, reachable=False), "r": node("r", 2, lag=5.0, source=3)}
    assert correct_lags(moved, first)["r"].lag == 5.0


def test_a_last_skew_that_would_take_lag_off_does_not_stand() -> None:
    """The writer's clock may have been stepped (a reboot) since it was measured: a carried
    skew never makes a replica look fresher."""
    first = correct_lags({"p": node("p", 1, lag=0.1), "r": node("r", 2, lag=4.2, offset=4.0)})
    down = {"p": node("p", 1, reachable=False), "r": node("r", 2, lag=9.0, offset=4.0)}
    out = correct_lags(down, first)
    assert out["r"].lag == 9.0 and out["r"].clock_skew is None


def test_correcting_twice_changes_nothing() -> None:
    """A node whose check is still running is carried from the last round, corrected."""
    once = correct_lags({"p": node("p", 1, lag=0.1), "r": node("r", 2, lag=3.0, offset=2.0)})
    assert correct_lags(once, once) == once


def test_the_skew_is_against_the_writer_of_the_heartbeat_read_not_the_configured_primary() -> None:
    """After a failover the lag is read from the new write target's row."""
    nodes = {
        "old": node("old", 1, offset=-20.0, lag=50.0, source=1),
        "new": node("new", 3, lag=0.1, source=3, offset=1.0),
        "r": node("r", 2, lag=1.6, source=3, offset=1.5),
    }
    assert correct_lags(nodes)["r"].lag == pytest.approx(1.102)


def test_no_lag_no_correction() -> None:
    out = correct_lags({"p": node("p", 1, lag=0.1), "r": node("r", 2, lag=None, offset=9.0)})
    assert out["r"].lag is None and out["r"].clock_skew is None
