"""Failure notification: a command fed the event on stdin, a webhook with timeout and retries
(against a real local HTTP server, see tests/httpsink.py)."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from datatier import log
from datatier.config import NotifySettings
from datatier.ops.notify import Notifier
from datatier.typedtoml import Secret
from tests.httpsink import sink

PORTS = iter(range(int(os.environ.get("DATATIER_TEST_HTTP_PORT", "26100")) + 150, 32700))
EVENT = {"event": "job.failed", "job": "backup", "policy": "shop", "exit_code": 3}


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    log.configure(level="debug", json_lines=True, stream=stream)
    yield stream
    log.configure()


def no_sleep(_seconds: float) -> None:
    pass


def test_webhook_gets_the_event_as_json() -> None:
    with sink(PORTS) as server:
        notifier = Notifier(NotifySettings(webhook_url=Secret(server.url), timeout=2))
        delivery = notifier.send(EVENT)
        assert delivery.ok and delivery.tried == ("webhook",)
        assert server.events() == [EVENT]
        assert server.received[0]["content_type"] == "application/json"


def test_webhook_retries_5xx_and_429_then_succeeds(logs: io.StringIO) -> None:
    with sink(PORTS, [503, 429]) as server:
        notifier = Notifier(
            NotifySettings(webhook_url=Secret(server.url), timeout=2, retries=2), sleep=no_sleep
        )
        assert notifier.send(EVENT).ok
        assert len(server.events()) == 3
    assert "s3cr3t-token" not in logs.getvalue()


def test_webhook_gives_up_after_its_retries_and_never_on_a_4xx() -> None:
    with sink(PORTS, [500, 500, 500, 500]) as server:
        notifier = Notifier(
            NotifySettings(webhook_url=Secret(server.url), timeout=2, retries=2), sleep=no_sleep
        )
        delivery = notifier.send(EVENT)
        assert not delivery.ok and len(server.events()) == 3
        channel, problem = delivery.failures[0]
        assert channel == "webhook" and "HTTP 500 (after 3 attempt(s))" in problem
        assert "s3cr3t-token" not in problem and "/hook" not in problem
    with sink(PORTS, [404]) as server:
        notifier = Notifier(NotifySettings(webhook_url=Secret(server.url), retries=5))
        assert "HTTP 404" in notifier.send(EVENT).failures[0][1]
        assert len(server.events()) == 1


def test_webhook_attempts_are_bounded_by_the_timeout() -> None:
    with sink(PORTS, [("sleep", 3.0), ("sleep", 3.0)]) as server:
        notifier = Notifier(
            NotifySettings(webhook_url=Secret(server.url), timeout=0.3, retries=1), sleep=no_sleep
        )
        started = time.monotonic()
        delivery = notifier.send(EVENT)
        took = time.monotonic() - started
    assert not delivery.ok and "timed out" in delivery.failures[0][1]
    assert took < 2.0, took


def test_unreachable_webhook_fails_quietly(logs: io.StringIO) -> None:
    with sink(PORTS) as server:
        url = server.url
    notifier = Notifier(
        NotifySettings(webhook_url=Secret(url), timeout=1, retries=1), sleep=no_sleep
    )
    delivery = notifier.send(EVENT)
    assert not delivery.ok and "unreachable" in delivery.failures[0][1]
    lines = [json.loads(x) for x in logs.getvalue().splitlines()]
    assert [x["event"] for x in lines if x["level"] == "warning"] == ["notify.failed"]
    assert "s3cr3t-token" not in logs.getvalue()


def test_command_gets_the_event_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    script = f"import sys, shutil; shutil.copyfileobj(sys.stdin, open({str(out)!r}, 'w'))"
    command = f"{sys.executable} -c {json.dumps(script)}"
    delivery = Notifier(NotifySettings(command=command)).send(EVENT)
    assert delivery.ok and delivery.tried == ("command",)
    assert json.loads(out.read_text()) == EVENT


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("sh -c 'echo no pager >&2; exit 7'", "sh exited 7: no pager"),
        ("sleep 5", "sleep did not finish within 0.3 s (killed)"),
        ("/nonexistent/pager", "cannot run /nonexistent/pager"),
        ("'unclosed", "cannot be split"),
    ],
)
def test_command_failures_are_reported_not_raised(command: str, problem: str) -> None:
    delivery = Notifier(NotifySettings(command=command, timeout=0.3)).send(EVENT)
    assert not delivery.ok and problem in delivery.failures[0][1]


def test_nothing_configured_sends_nothing() -> None:
    notifier = Notifier(NotifySettings())
    assert not notifier.configured
    assert notifier.send(EVENT).tried == ()


def test_a_non_http_webhook_is_refused() -> None:
    delivery = Notifier(NotifySettings(webhook_url=Secret("file:///etc/passwd"))).send(EVENT)
    assert "not an http(s) URL" in delivery.failures[0][1]


def test_notify_send_cli_reports_a_failed_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What systemd's OnFailure=datatier-notify@%n.service runs."""
    from datatier.cli import main

    out = tmp_path / "event.json"
    script = f"import sys, shutil; shutil.copyfileobj(sys.stdin, open({str(out)!r}, 'w'))"
    cfg = tmp_path / "datatier.toml"
    cfg.write_text(
        f"[notify]\ncommand = {json.dumps(f'{sys.executable} -c {json.dumps(script)}')}\n"
    )
    monkeypatch.setenv("DATATIER_CONFIG", str(cfg))
    assert main(["notify", "send", "--unit", "datatier-health.service"]) == 0
    event = json.loads(out.read_text())
    assert event["event"] == "unit.failed" and event["unit"] == "datatier-health.service"
    assert event["host"] and event["error"] == "datatier-health.service failed"
    monkeypatch.setenv("DATATIER_NOTIFY__COMMAND", "sh -c 'exit 3'")
    assert main(["notify", "test"]) == 1
    cfg.write_text("")
    monkeypatch.delenv("DATATIER_NOTIFY__COMMAND")
    assert main(["notify", "test"]) == 2  # nothing configured
