"""The point-in-time restore's report of account statements it did not replay."""

from __future__ import annotations

from datatier.binlog.restore import SHOWN_ACCOUNTS, _accounts_text


def test_no_account_statement_adds_no_line() -> None:
    assert _accounts_text(0, []) == []


def test_the_text_lists_the_first_statements_and_counts_the_rest() -> None:
    listed = [(f"0-1-{n}", f"DROP USER u{n}") for n in range(100)]
    lines = _accounts_text(250, listed)
    assert lines[0].startswith("250 account statement(s) NOT replayed")
    assert lines[1:-1] == [f"  0-1-{n}  DROP USER u{n}" for n in range(SHOWN_ACCOUNTS)]
    assert lines[-1] == f"  ... and {250 - SHOWN_ACCOUNTS} more (--json lists 100)"
