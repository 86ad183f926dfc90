"""``datatier provision``: create and check what the data tier depends on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, failure, json_option, say
from datatier.errors import UsageError
from datatier.provision.plan import Change, Plan, apply_plan, make_plan
from datatier.provision.service import KINDS, provisioners

if TYPE_CHECKING:
    from datatier.provision.catchup import CatchUp

SYMBOL = {"create": "+", "update": "~", "apply": "+"}


def _kinds(only: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(k for item in only for k in item.split(",") if k) or KINDS


def _short(item: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if item == "lifecycle" and isinstance(value, list):
        return "[" + ", ".join(r.get("id", "?") for r in value) + "]"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _describe(change: Change) -> str:
    mark = SYMBOL.get(change.action, "~")
    if change.action == "apply" or (change.action == "create" and change.after is None):
        return f"  {mark} {change.item}"
    before, after = _short(change.item, change.before), _short(change.item, change.after)
    return f"  {mark} {change.item}: {before} -> {after}"


def _plan_text(plan: Plan) -> str:
    lines = []
    for rp in plan.resources:
        state = f"{len(rp.changes)} change(s)" if rp.changes else "in sync"
        lines.append(f"{rp.resource} ({rp.kind}): {state}")
        lines += [_describe(change) for change in rp.changes]
    total = len(plan.changes)
    if not plan.resources:
        lines.append("nothing to provision (no S3 stores, no schema files)")
    elif total == 0:
        lines.append("No changes: everything is in the desired state.")
    else:
        touched = sum(1 for r in plan.resources if r.changes)
        lines.append(f"Plan: {total} change(s) in {touched} resource(s).")
    return "\n".join(lines)


def _dry_run(doc: dict[str, Any], text: str, what: str) -> Output:
    """A dry run's output: ``doc`` (``executed: false``), ``text`` and how to go on."""
    return Output(
        {"executed": False, **doc},
        f"{text}\nDry run: nothing was changed. Add --execute to {what}.",
    )


ONLY = click.option(
    "--only",
    multiple=True,
    metavar="KIND[,KIND]",
    help=f"Restrict to resource kinds: {', '.join(KINDS)} (default: all).",
)


@click.group("provision", invoke_without_command=True)
@click.pass_context
def provision_group(ctx: click.Context) -> None:
    """Plan and apply buckets, lifecycle rules, schemas and new replicas (plan by default).

    `provision plan` shows what differs from the desired state and changes nothing;
    `provision apply --execute` changes only that; a saved plan (`plan --out FILE`) is
    applied with `apply --plan FILE --execute` and refused if anything changed since.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(plan_cmd)


@provision_group.command("plan")
@ONLY
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan.")
@json_option("Print the plan as JSON.")
@pass_app
def plan_cmd(app: AppContext, only: tuple[str, ...] = (), out: Path | None = None) -> None:
    """Show what `apply` would change (buckets, lifecycle, schemas); changes nothing."""
    loaded = app.loaded()
    plan = make_plan(provisioners(loaded, _kinds(only)), config=loaded.source)
    if out is not None:
        plan.save(out)
    saved = (
        f"\nsaved to {out}; apply it with `datatier provision apply --plan {out} --execute`"
        if out is not None
        else ""
    )
    emit(Output(plan.to_json(), lambda: _plan_text(plan) + saved))


@provision_group.command("apply")
@ONLY
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Apply this saved plan (refused if the world changed since it was made).",
)
@click.option("--execute", is_flag=True, help="Make the changes (default: show them only).")
@json_option("Print what was (or would be) changed.")
@pass_app
def apply_cmd(
    app: AppContext, only: tuple[str, ...], plan_file: Path | None, execute: bool
) -> None:
    """Change exactly what the plan lists; without --execute only show it."""
    loaded = app.loaded()
    if plan_file is not None:
        plan = Plan.load(plan_file)
        kinds = tuple(sorted({r.kind for r in plan.resources})) or KINDS
        if only and set(_kinds(only)) != set(kinds):
            raise UsageError("--only cannot be combined with --plan (the plan says what to do)")
    else:
        kinds = _kinds(only)
    provs = provisioners(loaded, kinds)
    if plan_file is None:
        plan = make_plan(provs, config=loaded.source)
    if not execute:
        text = _plan_text(plan)
        if plan.changes:
            emit(_dry_run(plan.to_json(), text, "apply"))
        else:
            emit(Output({"executed": False, **plan.to_json()}, text))
        return
    applied: list[dict[str, Any]] = []
    failure().update(executed=True, ok=False, changes=applied)

    def made(change: Change) -> None:
        applied.append(change.to_json())
        say(_describe(change))

    done = apply_plan(provs, plan, on_change=made)
    text = f"Applied {len(done)} change(s)." if done else "No changes: nothing to do."
    emit(Output({"executed": True, "changes": [c.to_json() for c in done]}, text))


@provision_group.command("replica")
@click.option("--from-backup", "backup_id", required=True, metavar="ID", help="A MySQL backup.")
@click.option("--target", required=True, metavar="HOST:PORT", help="The empty server to seed.")
@click.option("--execute", is_flag=True, help="Seed it (default: check and show the plan).")
@click.option("--timeout", type=click.FloatRange(1), default=600.0, show_default=True,
              help="Seconds to wait for each replication phase (reaching the copy of "
                   "datatier.*, then catching up) before giving up (exit 1).")  # fmt: skip
@click.option("--jobs", type=click.IntRange(1, 32), default=4, show_default=True)
@click.option("--datadir", metavar="DIR",
              help="Physical backups: the target's datadir on this host (default: its "
                   "@@datadir; must match).")  # fmt: skip
@click.option("--start-command", metavar="CMD",
              help="Physical backups: how to start the target after its datadir is "
                   "restored, e.g. 'systemctl start mariadb'.")  # fmt: skip
@click.option("--external-dir", metavar="ROOT",
              help="Physical backups: put tables created with DATA DIRECTORY under ROOT "
                   "(ROOT/db/table.ibd) rather than at the path each was created with (which "
                   "on the source's own host holds its live file).")  # fmt: skip
@json_option("Print the result as JSON.")
@pass_app
def replica_cmd(
    app: AppContext,
    backup_id: str,
    target: str,
    execute: bool,
    timeout: float,
    jobs: int,
    datadir: str | None,
    start_command: str | None,
    external_dir: str | None,
) -> None:
    """Seed an empty server from backup ID and make it a GTID replica of the primary.

    Restores the backup (checksums first, without binlogging), sets gtid_slave_pos from the
    manifest, points it at the primary with the replication user, starts replication and
    waits, reporting lag, until it has caught up. Without --execute only checks and plans.

    A physical backup is seeded on the target's host: the target is shut down, its datadir
    replaced by the backup (and its chain), then started with --start-command.
    """
    from datatier.mysql.connection import parse_dsn
    from datatier.provision.seeding import SeedOptions, plan_seeding

    loaded = app.loaded()
    endpoint = parse_dsn(target, loaded.config.mysql)

    def report(lag: CatchUp) -> None:
        say(
            f"catching up: {lag.gtid_gap} transactions behind, "
            f"Seconds_Behind_Master={lag.seconds_behind}, IO={lag.io} SQL={lag.sql}"
        )

    options = SeedOptions(
        jobs=jobs,
        timeout=timeout,
        datadir=datadir,
        start_command=start_command,
        external_dir=external_dir,
    )
    seeding = plan_seeding(loaded, backup_id, endpoint, options)
    if not execute:
        emit(_dry_run(seeding.to_json(), seeding.describe(), "seed"))
        return
    result = seeding.run(on_lag=report)
    emit(Output({"executed": True, **result.to_json()}, result.describe()))
