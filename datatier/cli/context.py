"""Per-invocation state shared by CLI commands: global flags and the lazily loaded config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from datatier import log
from datatier.config import LoadedConfig, load


@dataclass
class AppContext:
    """Global options; :meth:`config` loads and validates the configuration on first use."""

    config_path: str | None = None
    debug: bool = False
    json_logs: bool = False
    reported: set[int] = field(default_factory=set)
    """ids of failures already logged with their reason (by a job), not to be repeated"""
    json_output: bool = False
    """``--json``: the result (or the failure) as one JSON document on stdout"""
    emitted: bool = False
    """the command's result is on stdout (a failure after it adds no second document)"""
    failure: dict[str, Any] = field(default_factory=dict)
    """what a failure's ``--json`` document carries besides error, exit_code and hint"""
    _loaded: LoadedConfig | None = field(default=None, repr=False)

    def loaded(self) -> LoadedConfig:
        """The validated configuration (raises ConfigError, exit 2, on bad config)."""
        if self._loaded is None:
            self._loaded = load(self.config_path)
            cfg = self._loaded.config
            log.configure(
                level="debug" if self.debug else cfg.log.level,
                json_lines=self.json_logs or None,
                fmt=cfg.log.format,
                secrets=cfg.secrets(),
            )
        return self._loaded


pass_app = click.make_pass_decorator(AppContext)
