"""Tell someone a job failed: run ``notify.command`` and/or POST to ``notify.webhook_url``.

Contract. :meth:`Notifier.send` delivers one event (a JSON object) to every configured
channel and returns what failed; it never raises, and each channel is bounded in time:

- ``command``: split like a shell would (no shell runs), started with the event as JSON on
  stdin, killed after ``notify.timeout`` seconds; a non-zero exit is a failure. One attempt.
- ``webhook_url``: a POST of the JSON (``Content-Type: application/json``), each attempt
  bounded by ``notify.timeout``; retried ``notify.retries`` times with backoff (0.5 s,
  1 s, 2 s, ... at most 5 s) on connection errors, timeouts, 429 and 5xx; other answers
  are final. The URL is a secret (chat webhooks carry a token): it never appears in a log
  line or a result, only its scheme and host.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from datatier.config import NotifySettings
from datatier.log import get_logger

log = get_logger(__name__)

MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class Delivery:
    """What happened to one event: the channels tried and the failures (channel, reason)."""

    tried: tuple[str, ...] = ()
    failures: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.failures


class Notifier:
    """Delivers events per :class:`~datatier.config.NotifySettings` (see module docstring)."""

    def __init__(
        self, settings: NotifySettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self._sleep = sleep

    @property
    def configured(self) -> bool:
        return bool(self.settings.command) or bool(self.settings.webhook_url)

    def send(self, event: Mapping[str, Any]) -> Delivery:
        """Deliver ``event`` to every channel; never raises (failures are logged)."""
        payload = json.dumps(event, default=str, ensure_ascii=False).encode()
        tried: list[str] = []
        failures: list[tuple[str, str]] = []
        if self.settings.command:
            tried.append("command")
            problem = self._command(self.settings.command, payload)
            if problem:
                failures.append(("command", problem))
        if self.settings.webhook_url:
            tried.append("webhook")
            problem = self._webhook(self.settings.webhook_url.reveal(), payload)
            if problem:
                failures.append(("webhook", problem))
        for channel, problem in failures:
            log.warning("notify.failed", channel=channel, problem=problem, about=event.get("event"))
        if tried and not failures:
            log.info("notify.sent", channels=tried, about=event.get("event"))
        return Delivery(tuple(tried), tuple(failures))

    def _command(self, command: str, payload: bytes) -> str:
        """'' on success, else why not."""
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            return f"notify.command cannot be split: {exc}"
        if not argv:
            return "notify.command is empty"
        try:
            done = subprocess.run(
                argv,
                input=payload,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.settings.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"{argv[0]} did not finish within {self.settings.timeout:g} s (killed)"
        except OSError as exc:
            return f"cannot run {argv[0]}: {exc.strerror}"
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            detail = f": {tail[0][:200]}" if tail else ""
            return f"{argv[0]} exited {done.returncode}{detail}"
        return ""

    def _webhook(self, url: str, payload: bytes) -> str:
        """'' once an attempt got a 2xx answer, else why the last attempt failed."""
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.hostname or '?'}"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"notify.webhook_url is not an http(s) URL ({parts.scheme or 'no scheme'})"
        import urllib.error  # here: urllib.request costs ~25 ms on every command's start
        import urllib.request

        attempts = 1 + self.settings.retries
        problem = ""
        for attempt in range(attempts):
            if attempt:
                self._sleep(min(MAX_BACKOFF, 0.5 * 2 ** (attempt - 1)))
            request = urllib.request.Request(  # noqa: S310 - scheme checked above
                url,
                data=payload,
                method="POST",
                headers={"Content-Type": "application/json", "User-Agent": "datatier-notify"},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.settings.timeout) as reply:  # noqa: S310
                    reply.read(65536)
                    return ""
            except urllib.error.HTTPError as exc:
                problem = f"{where} answered HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    return problem  # the request itself is wrong: retrying will not help
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                problem = f"{where} unreachable: {reason}"
            log.debug("notify.webhook_retry", attempt=attempt + 1, of=attempts, problem=problem)
        return f"{problem} (after {attempts} attempt(s))"
