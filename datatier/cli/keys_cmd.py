"""``datatier keys check``: which backups each available age identity can open."""

from __future__ import annotations

import click

from datatier.backup.encryption import short
from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option, table
from datatier.errors import OperationFailed
from datatier.ops.keys import KeysReport, check_keys


@click.group("keys")
def keys_group() -> None:
    """Encryption keys (age) of backups and restores."""


@keys_group.command("check")
@json_option("Print the report as JSON.")
@pass_app
def check_cmd(app: AppContext) -> None:
    """Say which backups (and archived binlogs) each identity of encryption.identity opens.

    Reads manifests and binlog index records only (they record the public keys objects are
    encrypted to); no key ever leaves this host. Exit 0 when every encrypted backup opens
    with an available identity, 1 when some cannot (they are named): after rotating keys,
    keep the old identity in the identity file for as long as backups need it.
    """
    report = check_keys(app.loaded())
    emit(Output(report.to_json(), lambda: _text(report)))
    if report.locked:
        names = ", ".join(f"{i.policy}/{i.name}" for i in report.locked[:5])
        more = f" and {len(report.locked) - 5} more" if len(report.locked) > 5 else ""
        raise OperationFailed(
            f"no identity here opens {len(report.locked)} encrypted item(s): {names}{more}",
            hint="add their private key to encryption.identity_file",
        )


def _text(report: KeysReport) -> str:
    lines = []
    held = ", ".join(short(k) for k in report.identities) or "none"
    lines.append(f"identities here: {held}")
    current = ", ".join(
        f"{short(k)} ({'held here' if k in report.identities else 'not held here'})"
        for k in report.recipients
    )
    lines.append(f"new backups are encrypted to: {current or 'nobody (encryption is off)'}")
    rows = [
        {
            "policy": item.policy,
            "backup": item.name,
            "encrypted to": ", ".join(short(k) for k in item.recipients) or "not encrypted",
            "opened by": ", ".join(short(k) for k in item.opened_by)
            or ("LOCKED" if item.recipients else "-"),
        }
        for item in report.items
    ]
    if rows:
        lines.append(table(rows, ["policy", "backup", "encrypted to", "opened by"]))
    for key in report.identities:
        lines.append(f"{short(key)} opens {len(report.opened_by(key))} of {len(report.items)}")
    return "\n".join(lines)
