"""What differs between MariaDB and MySQL 8 is decided from the version string, in
datatier/mysql/flavor.py only (the MySQL side has no server in the test suite)."""

from __future__ import annotations

from datatier.mysql.flavor import detect

MARIADB = "10.11.6-MariaDB-0+deb12u1-log"
MYSQL = "8.0.36"


def test_the_family_and_version_come_from_the_version_string() -> None:
    assert (detect(MARIADB).name, detect(MARIADB).version) == ("mariadb", (10, 11, 6))
    assert (detect(MYSQL).name, detect(MYSQL).version) == ("mysql", (8, 0, 36))
    assert detect("").name == "mysql", "an unknown server is treated as MySQL"


def test_accounts_and_sessions_follow_the_family() -> None:
    mariadb, mysql = detect(MARIADB), detect(MYSQL)
    assert "is_role AS r" in mariadb.accounts_query
    assert "'N' AS r" in mysql.accounts_query and "is_role" not in mysql.accounts_query
    assert mariadb.grants_session == ()
    assert mysql.grants_session == ("SET SESSION print_identified_with_as_hex = ON",)
    assert mariadb.reset_keeps_collation and not mysql.reset_keeps_collation


def test_backup_locks_need_mariadb_10_4_1() -> None:
    assert detect(MARIADB).block_ddl == ("BACKUP STAGE START", "BACKUP STAGE BLOCK_DDL")
    assert detect("10.3.39-MariaDB").block_ddl == ("FLUSH TABLES WITH READ LOCK",)
    assert detect(MYSQL).unlock == "UNLOCK TABLES"
