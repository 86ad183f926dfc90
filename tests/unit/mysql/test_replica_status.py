"""Replica status rows of both flavours, as the servers return them, parsed by column name.

The MariaDB rows are the column set of MariaDB 10.11's ``SHOW SLAVE STATUS`` (which
``SHOW REPLICA STATUS`` returns unchanged); the MySQL rows follow MySQL 8.0.22+'s
``SHOW REPLICA STATUS`` and MySQL 5.7's ``SHOW SLAVE STATUS``. Values are typical of a
healthy replica, a stopped SQL thread and a broken IO thread.
"""

from __future__ import annotations

from typing import Any

import pytest

from datatier.mysql.flavor import MARIADB, MYSQL, status_flavour
from datatier.mysql.replica_status import gtid_gap, parse_replica_status


def mariadb_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Slave_IO_State": "Waiting for master to send event",
        "Master_Host": "127.0.0.1",
        "Master_User": "repl",
        "Master_Port": 36060,
        "Connect_Retry": 1,
        "Master_Log_File": "primary-bin.000002",
        "Read_Master_Log_Pos": 4711,
        "Relay_Log_File": "replica2-relay-bin.000003",
        "Relay_Log_Pos": 1021,
        "Relay_Master_Log_File": "primary-bin.000002",
        "Slave_IO_Running": "Yes",
        "Slave_SQL_Running": "Yes",
        "Replicate_Rewrite_DB": "",
        "Replicate_Do_DB": "",
        "Replicate_Ignore_DB": "",
        "Replicate_Do_Table": "",
        "Replicate_Ignore_Table": "",
        "Replicate_Wild_Do_Table": "",
        "Replicate_Wild_Ignore_Table": "",
        "Last_Errno": 0,
        "Last_Error": "",
        "Skip_Counter": 0,
        "Exec_Master_Log_Pos": 4711,
        "Relay_Log_Space": 1620,
        "Until_Condition": "None",
        "Until_Log_File": "",
        "Until_Log_Pos": 0,
        "Master_SSL_Allowed": "No",
        "Master_SSL_CA_File": "",
        "Master_SSL_CA_Path": "",
        "Master_SSL_Cert": "",
        "Master_SSL_Cipher": "",
        "Master_SSL_Key": "",
        "Seconds_Behind_Master": 0,
        "Master_SSL_Verify_Server_Cert": "No",
        "Last_IO_Errno": 0,
        "Last_IO_Error": "",
        "Last_SQL_Errno": 0,
        "Last_SQL_Error": "",
        "Replicate_Ignore_Server_Ids": "",
        "Master_Server_Id": 1,
        "Master_SSL_Crl": "",
        "Master_SSL_Crlpath": "",
        "Using_Gtid": "Slave_Pos",
        "Gtid_IO_Pos": "0-1-30",
        "Replicate_Do_Domain_Ids": "",
        "Replicate_Ignore_Domain_Ids": "",
        "Parallel_Mode": "optimistic",
        "SQL_Delay": 0,
        "SQL_Remaining_Delay": None,
        "Slave_SQL_Running_State": "Slave has read all relay log; waiting for more updates",
        "Slave_DDL_Groups": 12,
        "Slave_Non_Transactional_Groups": 0,
        "Slave_Transactional_Groups": 18,
    }
    row.update(overrides)
    return row


def mysql8_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Replica_IO_State": "Waiting for source to send event",
        "Source_Host": "10.0.0.5",
        "Source_User": "repl",
        "Source_Port": 3306,
        "Connect_Retry": 60,
        "Source_Log_File": "binlog.000007",
        "Read_Source_Log_Pos": 157,
        "Relay_Log_File": "relay.000012",
        "Relay_Log_Pos": 373,
        "Relay_Source_Log_File": "binlog.000007",
        "Replica_IO_Running": "Yes",
        "Replica_SQL_Running": "Yes",
        "Last_Errno": 0,
        "Last_Error": "",
        "Skip_Counter": 0,
        "Exec_Source_Log_Pos": 157,
        "Relay_Log_Space": 745,
        "Until_Condition": "None",
        "Seconds_Behind_Source": 3,
        "Source_SSL_Verify_Server_Cert": "No",
        "Last_IO_Errno": 0,
        "Last_IO_Error": "",
        "Last_SQL_Errno": 0,
        "Last_SQL_Error": "",
        "Replicate_Ignore_Server_Ids": "",
        "Source_Server_Id": 101,
        "Source_UUID": "3e11fa47-71ca-11e1-9e33-c80aa9429562",
        "Source_Info_File": "mysql.slave_master_info",
        "SQL_Delay": 0,
        "SQL_Remaining_Delay": None,
        "Replica_SQL_Running_State": "Replica has read all relay log; waiting for more updates",
        "Source_Retry_Count": 86400,
        "Last_IO_Error_Timestamp": "",
        "Last_SQL_Error_Timestamp": "",
        "Retrieved_Gtid_Set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
        "Executed_Gtid_Set": "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n"
        "9b2e0b3c-71ca-11e1-9e33-c80aa9429562:1-2",
        "Auto_Position": 1,
        "Replicate_Rewrite_DB": "",
        "Channel_Name": "",
        "Source_TLS_Version": "",
        "Source_public_key_path": "",
        "Get_Source_public_key": 0,
        "Network_Namespace": "",
    }
    row.update(overrides)
    return row


def mysql57_row() -> dict[str, Any]:
    """The pre-8.0.22 names: Slave_*/Master_* plus Executed_Gtid_Set and Master_UUID."""
    renames = {
        "Replica_IO_State": "Slave_IO_State",
        "Source_Host": "Master_Host",
        "Source_Port": "Master_Port",
        "Replica_IO_Running": "Slave_IO_Running",
        "Replica_SQL_Running": "Slave_SQL_Running",
        "Seconds_Behind_Source": "Seconds_Behind_Master",
        "Source_Server_Id": "Master_Server_Id",
        "Source_UUID": "Master_UUID",
        "Replica_SQL_Running_State": "Slave_SQL_Running_State",
        "Source_Log_File": "Master_Log_File",
        "Read_Source_Log_Pos": "Read_Master_Log_Pos",
        "Exec_Source_Log_Pos": "Exec_Master_Log_Pos",
    }
    return {renames.get(k, k): v for k, v in mysql8_row().items()}


def test_mariadb_healthy_row() -> None:
    status = parse_replica_status(mariadb_row(Gtid_Slave_Pos="0-1-30"))
    assert status.flavour == MARIADB
    assert status.threads_ok and status.io_ok and status.sql_ok
    assert status.source_host == "127.0.0.1"
    assert status.source_port == 36060
    assert status.source_server_id == 1
    assert status.seconds_behind == 0
    assert status.using_gtid == "Slave_Pos"
    assert status.gtid_received == "0-1-30"
    assert status.gtid_executed == "0-1-30"
    assert status.read_source_log_pos == status.exec_source_log_pos == 4711
    assert status.last_error == ""


def test_mariadb_sql_thread_stopped_reads_null_seconds_behind() -> None:
    status = parse_replica_status(
        mariadb_row(
            Slave_SQL_Running="No",
            Seconds_Behind_Master=None,
            Slave_SQL_Running_State="",
        )
    )
    assert not status.threads_ok
    assert status.io_ok and not status.sql_ok
    assert status.seconds_behind is None


def test_mariadb_sql_error_is_reported() -> None:
    status = parse_replica_status(
        mariadb_row(
            Slave_SQL_Running="No",
            Last_Errno=1062,
            Last_Error="Could not execute Write_rows_v1 event on table shop.t; Duplicate entry",
            Last_SQL_Errno=1062,
            Last_SQL_Error="Could not execute Write_rows_v1 event on table shop.t; "
            "Duplicate entry '7' for key 'PRIMARY'",
        )
    )
    assert status.last_sql_errno == 1062
    assert status.last_error.startswith("SQL 1062: Could not execute")


def test_mariadb_io_thread_connecting_with_error() -> None:
    status = parse_replica_status(
        mariadb_row(
            Slave_IO_Running="Connecting",
            Slave_IO_State="Reconnecting after a failed master event read",
            Last_IO_Errno=2003,
            Last_IO_Error="error reconnecting to master 'repl@127.0.0.1:36060' - retry-time: 1",
        )
    )
    assert status.io_running == "Connecting"
    assert not status.io_ok and status.sql_ok and not status.threads_ok
    assert status.last_error.startswith("IO 2003: error reconnecting")


def test_mysql8_row() -> None:
    status = parse_replica_status(mysql8_row())
    assert status.flavour == MYSQL
    assert status.threads_ok
    assert status.source_host == "10.0.0.5"
    assert status.source_server_id == 101
    assert status.seconds_behind == 3
    assert status.using_gtid == "Yes"
    assert status.gtid_received == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
    # Multi-line GTID sets are flattened to one line.
    assert status.gtid_executed == (
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5, 9b2e0b3c-71ca-11e1-9e33-c80aa9429562:1-2"
    )
    assert status.sql_state.startswith("Replica has read all relay log")


def test_mysql8_stopped_replica() -> None:
    status = parse_replica_status(
        mysql8_row(
            Replica_IO_Running="No",
            Replica_SQL_Running="No",
            Seconds_Behind_Source=None,
            Auto_Position=0,
            Last_IO_Errno=13117,
            Last_IO_Error="Fatal error: The replica I/O thread stops because source and "
            "replica have equal MySQL server ids",
        )
    )
    assert not status.io_ok and not status.sql_ok
    assert status.seconds_behind is None
    assert status.using_gtid == "No"
    assert status.last_error.startswith("IO 13117: Fatal error")


def test_mysql57_names_are_detected_as_mysql() -> None:
    row = mysql57_row()
    assert "Slave_IO_Running" in row and "Replica_IO_Running" not in row
    status = parse_replica_status(row)
    assert status.flavour == MYSQL
    assert status.seconds_behind == 3
    assert status.source_server_id == 101
    assert status.threads_ok


def test_flavour_detection() -> None:
    assert status_flavour(mariadb_row()) == MARIADB
    assert status_flavour(mysql8_row()) == MYSQL
    assert status_flavour(mysql57_row()) == MYSQL


def test_bytes_values_and_missing_optional_columns() -> None:
    row = {"Slave_IO_Running": b"Yes", "Slave_SQL_Running": b"Yes", "Master_Host": b"db1"}
    status = parse_replica_status(row)
    assert status.threads_ok
    assert status.source_host == "db1"
    assert status.seconds_behind is None
    assert status.source_server_id is None


def test_not_a_status_row() -> None:
    with pytest.raises(ValueError, match="not a replica status row"):
        parse_replica_status({"Variable_name": "x", "Value": "y"})


def test_to_dict_is_json_ready() -> None:
    doc = parse_replica_status(mariadb_row()).to_json()
    assert doc["threads_ok"] is True
    assert doc["flavour"] == "mariadb"
    assert doc["io_running"] == "Yes"


@pytest.mark.parametrize(
    ("source", "replica", "gap"),
    [
        ("0-1-30", "0-1-30", 0),
        ("0-1-30", "0-1-25", 5),
        ("0-1-30,1-1-10", "0-1-29", 11),
        ("0-1-30", "", 30),
        ("0-1-30", "0-1-31", 0),
        ("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "0-1-3", None),
        ("0-1-3", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", None),
    ],
)
def test_gtid_gap(source: str, replica: str, gap: int | None) -> None:
    assert gtid_gap(source, replica) == gap
