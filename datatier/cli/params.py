"""Click parameter types the commands share."""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and infinities (usage error, exit 2).

    click's bounds let ``nan`` through (every comparison with it is false): ``--max-lag nan``
    would admit any lag and write ``NaN`` into a manifest, ``--grace-hours nan`` crashed."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
