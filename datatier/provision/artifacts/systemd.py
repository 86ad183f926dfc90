"""systemd units: per policy a oneshot service (backup, then prune) and its timer; the
always-on heartbeat writer, health endpoint and (with ``binlog.policy``) binlog archiver; a
notify unit every one of them names in
``OnFailure=``.

A oneshot service is never started twice at once, so runs cannot overlap; ``Persistent=``
catches up a run missed while the machine was off. The always-on services restart
forever (``Restart=always``); if one keeps dying (5 starts in 5 minutes) systemd gives up,
marks it failed and ``OnFailure=`` starts ``datatier-notify@UNIT.service``, which sends a
``unit.failed`` event to the configured notify channels. Timers and services run in UTC.
"""

from __future__ import annotations

import shlex

from datatier.backup.policy import Policy
from datatier.provision.artifacts.base import RenderContext, Renderer, need_policies
from datatier.provision.artifacts.schedule import on_calendar, policy_schedule

DIR = "systemd"
NOTIFY_UNIT = "datatier-notify@.service"
ARCHIVER_UNIT = "datatier-binlog-archive.service"  # with binlog.policy: SIGTERM publishes first
ON_FAILURE = "OnFailure=datatier-notify@%n.service"
HARDENING = ("NoNewPrivileges=yes", "PrivateTmp=yes")


def unit_name(policy: Policy) -> str:
    return f"datatier-backup-{policy.name}"


class SystemdRenderer(Renderer):
    name = "systemd"
    description = "systemd: service + timer per policy, heartbeat and health services, notify"

    def render(self, ctx: RenderContext) -> dict[str, str]:
        need_policies(ctx, "systemd units")
        files = self._always_on(ctx)
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
                    ON_FAILURE,
                    "",
                    "[Service]",
                    "Type=oneshot",
                    f"User={ctx.user}",
                    f"Environment=DATATIER_CONFIG={ctx.config_path}",
                    "Environment=TZ=UTC",
                    f"ExecStart={shlex.join(ctx.backup_command(policy))}",
                    f"ExecStartPost={shlex.join(ctx.prune_command(policy))}",
                    "TimeoutStartSec=12h",
                    "Nice=10",
                    "IOSchedulingClass=best-effort",
                    "IOSchedulingPriority=7",
                    *HARDENING,
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
        return files

    def _always_on(self, ctx: RenderContext) -> dict[str, str]:
        header = "# Rendered by `datatier deploy render systemd`.\n"

        def service(description: str, command: list[str], extra: tuple[str, ...] = ()) -> str:
            return header + "\n".join(
                [
                    "[Unit]",
                    f"Description={description}",
                    "Wants=network-online.target",
                    "After=network-online.target",
                    "StartLimitIntervalSec=300",
                    "StartLimitBurst=5",
                    ON_FAILURE,
                    "",
                    "[Service]",
                    "Type=simple",
                    f"User={ctx.user}",
                    f"Environment=DATATIER_CONFIG={ctx.config_path}",
                    f"ExecStart={shlex.join(command)}",
                    "Restart=always",
                    "RestartSec=2",
                    *extra,
                    *HARDENING,
                    "",
                    "[Install]",
                    "WantedBy=multi-user.target",
                    "",
                ]
            )

        files = {
            f"{DIR}/datatier-heartbeat.service": service(
                "datatier heartbeat writer (replica lag is measured from it)",
                [ctx.binary, "replication", "heartbeat"],
            ),
            f"{DIR}/datatier-health.service": service(
                "datatier health endpoint for HAProxy (one port per MySQL node)",
                [ctx.binary, "health", "serve", *ctx.health_listens()],
            ),
            **(
                {
                    f"{DIR}/{ARCHIVER_UNIT}": service(
                        f"datatier binlog archiver (point-in-time recovery, {ctx.binlog_policy})",
                        [ctx.binary, "binlog", "archive"],
                        ("KillSignal=SIGTERM", "TimeoutStopSec=120"),
                    )
                }
                if ctx.binlog_policy
                else {}
            ),
            f"{DIR}/{NOTIFY_UNIT}": header
            + "\n".join(
                [
                    "# Started by OnFailure= of the datatier units with the failed unit's name.",
                    "[Unit]",
                    "Description=datatier: report that %i failed",
                    "",
                    "[Service]",
                    "Type=oneshot",
                    f"User={ctx.user}",
                    f"Environment=DATATIER_CONFIG={ctx.config_path}",
                    f"ExecStart={shlex.join([ctx.binary, 'notify', 'send', '--unit'])} %i",
                    "TimeoutStartSec=2min",
                    *HARDENING,
                    "",
                ]
            ),
        }
        return files
