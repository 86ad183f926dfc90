"""The mariadb-dump splitter: sections, prelude, triggers, footer, truncation, block edges."""

from __future__ import annotations

import io

import pytest

from datatier.mysql.dumpsplit import DumpSplitter, TruncatedDump, split_stream

DUMP = b"""/*M!999999\\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
--
-- Host: 127.0.0.1    Database: shop
-- ------------------------------------------------------

/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;

-- CHANGE MASTER TO MASTER_LOG_FILE='r1-bin.000002', MASTER_LOG_POS=2233;

--
-- Current Database: `sh``op`
--

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `sh``op`;

USE `sh``op`;

--
-- Table structure for table `t 1`
--

DROP TABLE IF EXISTS `t 1`;
CREATE TABLE `t 1` (`id` int NOT NULL, `v` text, PRIMARY KEY (`id`));

--
-- Dumping data for table `t 1`
--
-- ORDER BY:  `id`

INSERT INTO `t 1` VALUES
(1,'a\\n-- not a title'),
(2,'(paren'),
(3,'x');
INSERT INTO `t 1` VALUES
(4,'y');
/*!50003 SET @saved_cs_client      = @@character_set_client */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER trg BEFORE INSERT ON `t 1` FOR EACH ROW SET NEW.v = 1 */;;
DELIMITER ;

--
-- Dumping events for database 'sh`op'
--

--
-- Dumping routines for database 'sh`op'
--
DELIMITER ;;
CREATE PROCEDURE `p1`()
SELECT 1
;;
DELIMITER ;

--
-- Current Database: `sh``op`
--

USE `sh``op`;

--
-- Final view structure for view `v1`
--

/*!50001 VIEW `v1` AS select 1 */;

-- SET GLOBAL gtid_slave_pos='0-1-9';
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;

-- Dump completed on 2026-11-26  7:10:58
"""


class Recorder:
    def __init__(self) -> None:
        self.sections: list[tuple[str, str, str | None, bytes, int]] = []
        self._current: list[bytes] = []
        self._rows = 0
        self._head: tuple[str, str, str | None] | None = None

    def begin(self, kind: str, database: str, name: str | None) -> None:
        assert self._head is None, "begin without end"
        self._head = (kind, database, name)
        self._current, self._rows = [], 0

    def write(self, data: bytes, rows: int) -> None:
        assert self._head is not None
        self._current.append(data)
        self._rows += rows

    def end(self) -> None:
        assert self._head is not None
        self.sections.append((*self._head, b"".join(self._current), self._rows))
        self._head = None


def split(data: bytes, block: int | None = None) -> tuple[Recorder, bytes, DumpSplitter]:
    rec = Recorder()
    prelude: list[bytes] = []
    splitter = DumpSplitter(rec, prelude.append)
    step = block or len(data)
    for i in range(0, len(data), step):
        splitter.feed(data[i : i + step])
    splitter.finish()
    return rec, b"".join(prelude), splitter


def test_sections_in_order_with_names_unescaped() -> None:
    rec, prelude, splitter = split(DUMP)
    heads = [(k, d, n) for k, d, n, _, _ in rec.sections]
    assert heads == [
        ("database", "sh`op", None),
        ("schema", "sh`op", "t 1"),
        ("data", "sh`op", "t 1"),
        ("triggers", "sh`op", "t 1"),
        ("events", "sh`op", None),
        ("routines", "sh`op", None),
        ("views", "sh`op", "v1"),
    ]
    assert b"SET NAMES utf8mb4" in prelude and b"sandbox mode" in prelude
    assert b"--" not in prelude
    assert b"MASTER_LOG_POS=2233" in splitter.header
    assert b"gtid_slave_pos='0-1-9'" in splitter.trailer
    assert splitter.completed


def test_data_rows_counted_and_use_lines_dropped() -> None:
    rec, _, _ = split(DUMP)
    by_kind = {k: (body, rows) for k, _, _, body, rows in rec.sections}
    body, rows = by_kind["data"]
    assert rows == 4
    assert b"TRIGGER" not in body and body.rstrip().endswith(b"(4,'y');")
    assert b"USE " not in by_kind["database"][0]
    assert b"CREATE DATABASE" in by_kind["database"][0]
    assert by_kind["triggers"][0].startswith(b"/*!50003 SET @saved_cs_client")
    assert b"OLD_SQL_MODE" not in by_kind["views"][0], "the footer never lands in an object"


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 4096])
def test_any_block_size_gives_the_same_split(block: int) -> None:
    whole, prelude, _ = split(DUMP)
    pieces, prelude2, _ = split(DUMP, block)
    assert pieces.sections == whole.sections
    assert prelude2 == prelude


def test_truncated_dump_raises() -> None:
    cut = DUMP[: DUMP.index(b"INSERT INTO `t 1` VALUES\n(4")]
    with pytest.raises(TruncatedDump):
        split_stream(io.BytesIO(cut), Recorder(), lambda _: None)
    no_completion = DUMP.replace(b"-- Dump completed", b"-- Dump stopped")
    with pytest.raises(TruncatedDump):
        split(no_completion)
