"""Logging: JSON lines for Logstash, console lines for people, secrets never printed."""

from __future__ import annotations

import io
import json

from datatier import log


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_have_ts_level_event_and_fields() -> None:
    out = io.StringIO()
    log.configure(json_lines=True, stream=out)
    log.get_logger("test").info("backup.done", bytes=12, policy="nightly")
    doc = json.loads(out.getvalue())
    assert doc["event"] == "backup.done" and doc["level"] == "info"
    assert doc["bytes"] == 12 and doc["policy"] == "nightly"
    assert doc["ts"].endswith("Z") and "T" in doc["ts"]
    assert doc["logger"] == "datatier.test"


def test_auto_format_is_json_without_a_tty_and_console_with_one() -> None:
    pipe = io.StringIO()
    log.configure(stream=pipe)
    log.get_logger("t").info("evt", a=1)
    assert json.loads(pipe.getvalue())["a"] == 1
    tty = FakeTTY()
    log.configure(stream=tty)
    log.get_logger("t").warning("evt", a=1)
    line = tty.getvalue()
    assert "warning" in line and "evt" in line and "a=1" in line
    assert not line.startswith("{")


def test_secrets_are_redacted_in_event_fields_and_tracebacks() -> None:
    out = io.StringIO()
    log.configure(json_lines=True, stream=out, secrets=["hunter2-pw", "x"])
    logger = log.get_logger("t")
    logger.info("connect hunter2-pw", dsn="mysql://u:hunter2-pw@h", nested={"k": ["hunter2-pw"]})
    try:
        raise ValueError("bad password hunter2-pw")
    except ValueError:
        logger.error("failed", exc_info=True)
    text = out.getvalue()
    assert "hunter2-pw" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["event"] == "connect ***" and first["dsn"] == "mysql://u:***@h"
    assert first["nested"] == {"k": ["***"]}
    assert "***" in second["traceback"]


def test_level_filters_debug() -> None:
    out = io.StringIO()
    log.configure(level="info", json_lines=True, stream=out)
    log.get_logger("t").debug("hidden")
    assert out.getvalue() == ""
