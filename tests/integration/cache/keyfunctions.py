"""Key functions the warm-set tests name in ``key_function`` (importable as
``tests.integration.cache.keyfunctions:NAME``), written the way an application would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def by_k(*, sql: str, params: Mapping[str, Any] | None, row: Mapping[str, Any] | None) -> str:
    """Row mode: the key from column ``k`` (``nick`` is read only when ``id`` is 1)."""
    assert row is not None
    suffix = f":{row['nick']}" if row["id"] == 1 else ""
    return f"f:{row['k']}{suffix}"


def by_param(*, sql: str, params: Mapping[str, Any] | None, row: Mapping[str, Any] | None) -> str:
    """Result mode: the key from the ``params_sql`` column ``k``."""
    assert params is not None
    return f"fp:{params['k']}"
