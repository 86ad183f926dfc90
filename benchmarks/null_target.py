"""A migration target that accepts and drops documents, for the migrate benchmarks: what is
left of a run's time is datatier's own side (read, convert, batch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datatier.migrate.target import InsertResult, MigrationTarget


class NullTarget(MigrationTarget):
    """Accepts and drops documents: measures datatier's side of a run."""

    def describe(self) -> str:
        return "null"

    def ensure_table(self, table: str) -> bool:
        return True

    def ensure_index(self, table: str, name: str, fields: Sequence[str]) -> bool:
        return True

    def insert(self, table: str, docs: list[dict[str, Any]], conflict: str) -> InsertResult:
        return InsertResult(len(docs), 0, 0, 0)

    def get_many(self, table: str, ids: Sequence[Any]) -> list[dict[str, Any]]:
        return []

    def count(self, table: str) -> int:
        return 0
