"""``datatier notify``: send an event to the configured notify channels (systemd's
``OnFailure=`` unit uses it; ``test`` checks the channels by hand)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import click

from datatier.cli.context import AppContext, pass_app
from datatier.cli.output import Output, emit, json_option
from datatier.errors import OperationFailed, UsageError
from datatier.ops.notify import Notifier


@click.group("notify")
def notify_group() -> None:
    """Send events to notify.command / notify.webhook_url."""


def _send(app: AppContext, event: dict[str, object]) -> None:
    notifier = Notifier(app.loaded().config.notify)
    if not notifier.configured:
        raise UsageError(
            "no notify channel configured", hint="set notify.command or notify.webhook_url"
        )
    delivery = notifier.send(
        {**event, "host": socket.gethostname(), "at": datetime.now(UTC).isoformat()}
    )
    if not delivery.ok:
        failed = "; ".join(f"{channel}: {problem}" for channel, problem in delivery.failures)
        raise OperationFailed(f"notification failed: {failed}")
    emit(Output({"sent_to": list(delivery.tried)}, f"sent to {', '.join(delivery.tried)}"))


@notify_group.command("send")
@click.option("--unit", required=True, help="The systemd unit that failed (%i in a template).")
@click.option("--message", default=None, help="Extra text for the event.")
@json_option()
@pass_app
def send(app: AppContext, unit: str, message: str | None) -> None:
    """Report that UNIT failed (event unit.failed). Exit 1 if a channel failed."""
    _send(app, {"event": "unit.failed", "unit": unit, "error": message or f"{unit} failed"})


@notify_group.command("test")
@json_option()
@pass_app
def test(app: AppContext) -> None:
    """Send a test event (event notify.test) to every channel. Exit 1 if one failed."""
    _send(app, {"event": "notify.test", "error": None})
