"""Events read on a replica: the ALTER EVENT giving back the primary's status, and what is
left unresolved without a primary (no server needed)."""

from __future__ import annotations

from dataclasses import replace

from datatier.mysql.catalogue import Definition
from datatier.mysql.event_status import resolve_on_primary, status_statement

EVENT = Definition(
    database="shop",
    name="nightly`; DROP",
    kind="event",
    statement="CREATE EVENT ...",
    sql_mode="",
    collation="utf8mb4_general_ci",
    time_zone="SYSTEM",
    status="SLAVESIDE_DISABLED",
    definer="o'neil@app@10.0.0.%",
)


def test_the_status_statement_names_the_definer_and_quotes_everything() -> None:
    enabled = status_statement(replace(EVENT, primary_status="ENABLED"))
    assert enabled == "ALTER DEFINER='o\\'neil@app'@'10.0.0.%' EVENT `nightly``; DROP` ENABLE"
    disabled = status_statement(replace(EVENT, primary_status="DISABLED"))
    assert disabled is not None and disabled.endswith(" DISABLE")


def test_no_statement_without_a_known_primary_status() -> None:
    assert status_statement(EVENT) is None  # not resolved
    assert status_statement(replace(EVENT, primary_status="SLAVESIDE_DISABLED")) is None
    view = replace(EVENT, kind="view", primary_status="ENABLED")
    assert status_statement(view) is None


def test_without_a_primary_replicated_events_stay_and_are_named() -> None:
    own = replace(EVENT, name="local", status="ENABLED")
    events, unknown = resolve_on_primary([EVENT, own], None)
    assert events == [EVENT, own]
    assert unknown == ["shop.nightly`; DROP"]
    assert resolve_on_primary([own], None) == ([own], [])
