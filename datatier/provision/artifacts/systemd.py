"""systemd units: per policy a oneshot service (backup, then prune) and its timer.

A oneshot service is never started twice at once, so runs cannot overlap; ``Persistent=``
catches up a run missed while the machine was off.
"""

from __future__ import annotations

import shlex

from datatier.backup.policy import Policy
from datatier.provision.artifacts import archiver
from datatier.provision.artifacts.base import RenderContext, Renderer, need_policies
from datatier.provision.artifacts.schedule import on_calendar, policy_schedule

DIR = "systemd"


def unit_name(policy: Policy) -> str:
    return f"datatier-backup-{policy.name}"


class SystemdRenderer(Renderer):
    name = "systemd"
    description = "systemd service + timer per policy"

    def render(self, ctx: RenderContext) -> dict[str, str]:
        need_policies(ctx, "systemd units")
        files: dict[str, str] = {}
        for policy in ctx.policies:
            schedule = policy_schedule(policy)
            unit = unit_name(policy)
            header = f"# Rendered by `datatier deploy render systemd` from policy {policy.name}.\n"
            files[f"{DIR}/{unit}.service"] = header + "\n".join(
                [
                    "[Unit]",
                    f"Description=datatier backup of policy {policy.name}",
                    "Wants=network-online.target",
                    "After=network-online.target",
                    "",
                    "[Service]",
                    "Type=oneshot",
                    f"User={ctx.user}",
                    f"Environment=DATATIER_CONFIG={ctx.config_path}",
                    f"ExecStart={shlex.join(ctx.backup_command(policy))}",
                    f"ExecStartPost={shlex.join(ctx.prune_command(policy))}",
                    "TimeoutStartSec=12h",
                    "Nice=10",
                    "IOSchedulingClass=best-effort",
                    "IOSchedulingPriority=7",
                    "NoNewPrivileges=yes",
                    "PrivateTmp=yes",
                    "",
                ]
            )
            calendars = [f"OnCalendar={c}" for c in on_calendar(schedule, ctx.timezone)]
            files[f"{DIR}/{unit}.timer"] = header + "\n".join(
                [
                    "[Unit]",
                    f"Description=datatier backup {policy.name} schedule (cron: {schedule.expr})",
                    "",
                    "[Timer]",
                    *calendars,
                    "Persistent=true",
                    f"Unit={unit}.service",
                    "",
                    "[Install]",
                    "WantedBy=timers.target",
                    "",
                ]
            )
        files.update(archiver.systemd_files(ctx))
        return files
