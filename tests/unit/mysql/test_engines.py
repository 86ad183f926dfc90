"""The engines a restore's schema objects name: only the table option counts."""

from __future__ import annotations

from collections.abc import Iterator

from datatier.backup.manifest import ObjectRecord
from datatier.mysql.engines import needed_engines
from datatier.mysql.sqltext import PRELUDE, block


def schema(table: str, create: str) -> tuple[ObjectRecord, bytes]:
    record = ObjectRecord(
        key=f"d/{table}.sql.zst",
        kind="schema",
        size=1,
        sha256="x",
        raw_size=1,
        storage_class="STANDARD",
        database="d",
        table=table,
    )
    return record, PRELUDE + block([f"DROP TABLE IF EXISTS `{table}`", create]).encode()


def test_the_engine_is_the_table_option_never_a_comment_or_default() -> None:
    objects = dict(
        [
            schema(
                "a",
                "CREATE TABLE `a` (\n  `x` varchar(30) DEFAULT ') ENGINE=FAKE' COMMENT "
                "') ENGINE=OTHER'\n) ENGINE=ARCHIVE DEFAULT CHARSET=utf8mb4",
            ),
            schema("b", "CREATE TABLE `b` (\n  `x` int(11)\n) ENGINE=InnoDB"),
            schema("c", "CREATE TABLE `c` (\n  `x` int(11)\n) ENGINE=ARCHIVE"),
        ]
    )
    content: dict[str, bytes] = {r.key: text for r, text in objects.items()}

    def read(key: str) -> Iterator[bytes]:
        yield content[key]

    everything = {("d", "a"), ("d", "b"), ("d", "c")}
    assert needed_engines(list(objects), read, everything) == {
        "ARCHIVE": {("d", "a"), ("d", "c")},
        "InnoDB": {("d", "b")},
    }
    # a table the restore leaves out (--tables) needs nothing of the target
    assert needed_engines(list(objects), read, {("d", "b"), ("d", "c")}) == {
        "ARCHIVE": {("d", "c")},
        "InnoDB": {("d", "b")},
    }
