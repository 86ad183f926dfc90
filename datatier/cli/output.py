"""Output helpers for commands: aligned tables for people, JSON for scripts (stdout)."""

from __future__ import annotations

import json
from typing import Any

import click

from datatier.display import table

__all__ = ["emit_json", "table"]


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
