"""``/etc/cron.d`` lines: one per policy, each run under ``flock -n`` so runs never overlap,
in UTC, with output to syslog."""

from __future__ import annotations

import shlex

from datatier.provision.artifacts.base import RenderContext, Renderer, need_policies
from datatier.provision.artifacts.schedule import policy_schedule

FILE = "crontab"


class CrontabRenderer(Renderer):
    """A cron.d file (with the user field). ``flock -n`` on a per-policy lock file makes a
    run that finds the previous one still going exit at once instead of piling up.
    ``CRON_TZ=UTC`` pins the schedules to UTC (as the systemd timers and CronJobs are) where
    cron honours it (cronie, busybox); Debian's cron uses the host's zone, so run such hosts
    in UTC. Output goes to syslog through ``logger`` (tag ``datatier-POLICY``), never mail."""

    name = "crontab"
    description = "cron.d file: backup then prune per policy, under flock -n, UTC, to syslog"

    def render(self, ctx: RenderContext) -> dict[str, str]:
        need_policies(ctx, "cron lines")
        lines = [
            "# Rendered by `datatier deploy render crontab` from the backup policies.",
            "# Install as /etc/cron.d/datatier. Schedules are UTC: CRON_TZ where cron honours it",
            "# (cronie, busybox); Debian's cron ignores it, so run such hosts in UTC.",
            "# flock -n: a run finding the previous one of its policy still going exits at once.",
            "# Output (JSON log lines) goes to syslog with the tag datatier-POLICY, not to mail;",
            "# failures also go to notify.command / notify.webhook_url from the config.",
            "SHELL=/bin/sh",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "CRON_TZ=UTC",
            'MAILTO=""',
            f"DATATIER_CONFIG={ctx.config_path}",
            "",
        ]
        for policy in ctx.policies:
            schedule = policy_schedule(policy)
            lock = f"{ctx.lock_dir}/datatier-{policy.name}.lock"
            script = " && ".join(
                shlex.join(cmd) for cmd in (ctx.backup_command(policy), ctx.prune_command(policy))
            )
            tag = shlex.quote(f"datatier-{policy.name}")
            lines.append(f"# {policy.name}: {policy.spec.engine} backup to {policy.store_url}")
            lines.append(
                f"{schedule.expr} {ctx.user} flock -n {shlex.quote(lock)} "
                f"sh -c {shlex.quote(script)} 2>&1 | logger -t {tag} -p cron.info"
            )
        return {FILE: "\n".join(lines) + "\n"}
