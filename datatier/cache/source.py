"""Which MySQL node the warmer reads from, and whether it is fresh enough to read.

Contract: a replica is the default (``--node``, then the warm set's ``source_node``, then
``[cache] source_node``, then the first replica in the config); the primary only when the
caller allows it. Lag is measured by :mod:`datatier.mysql.lag` (shared with the
backup's source selection).
"""

from __future__ import annotations

from typing import Literal

from datatier.config import Config, Role
from datatier.errors import NotReadyYet, UsageError
from datatier.mysql.connection import Endpoint, endpoint
from datatier.mysql.lag import LagCheck, heartbeat_running, measure_lag

__all__ = [
    "LagCheck", "OnLag", "choose_source", "enforce_lag", "heartbeat_running", "measure_lag"
]  # fmt: skip

OnLag = Literal["refuse", "warn"]
"""What a warm does with a replica lagging more than allowed: refuse (exit 5) or warn."""


def choose_source(
    config: Config, node: str | None, set_node: str | None, allow_primary: bool
) -> tuple[Endpoint, Role]:
    """The endpoint to read from and its role; UsageError for the primary unless allowed."""
    mysql = config.mysql
    name = node or set_node or config.cache.source_node
    if name is None:
        replicas = mysql.replicas()
        if not replicas:
            raise UsageError(
                "no replica configured to read from",
                hint="add a [mysql.nodes.NAME] with role = replica, or pass --node",
            )
        name = next(iter(replicas))
    ep = endpoint(mysql, name)
    role = mysql.nodes[name].role
    if role == "primary" and not allow_primary:
        raise UsageError(
            f"{name} is the primary: the warmer reads from a replica",
            hint="pass --allow-primary to read from the primary anyway",
        )
    return ep, role


def enforce_lag(name: str, check: LagCheck, max_lag: float, on_lag: OnLag) -> str | None:
    """A warning text when the lag is over ``max_lag`` and ``on_lag`` is ``warn``;
    NotReadyYet (exit 5) when it is ``refuse``; None when fresh enough."""
    if not check.exceeds(max_lag):
        return None
    shown = "unknown" if check.lag is None else f"{check.lag:.1f} s"
    text = f"replica {name} lag {shown} ({check.method}) is over --max-lag {max_lag:g} s"
    if on_lag == "refuse":
        raise NotReadyYet(text, hint="run again later, or pass --on-lag warn")
    return text
