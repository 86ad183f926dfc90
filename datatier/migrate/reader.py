"""The reader of a planned table: :class:`~datatier.mysql.keyset.KeysetReader` over the
plan's table, the documents' columns and the plan's key (the plan blocks keys keyset paging
cannot follow: :func:`datatier.migrate.plan.build_plan`)."""

from __future__ import annotations

from collections.abc import Sequence

from datatier.migrate.plan import TablePlan
from datatier.mysql.keyset import KeysetReader


class TableReader(KeysetReader):
    """Keyset queries for one table plan, selecting ``columns``."""

    def __init__(self, plan: TablePlan, columns: Sequence[str]) -> None:
        super().__init__(plan.schema, columns, plan.key.columns)
