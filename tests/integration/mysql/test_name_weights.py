"""Names weighed by the server (:mod:`datatier.mysql.name_weights`): equal weights must
mean one name to the server, so a forced restore neither misses a clash nor lists as left
a routine it replaced. The pairs the tester found on MariaDB 10.11, checked against the
server's own behaviour: keys made on it, routines created on it."""

from __future__ import annotations

import pymysql
import pytest

from datatier.mysql.name_weights import DEFINITIONS, FOREIGN_KEYS, weigh
from tests.integration.conftest import SandboxHandle

DB = "name_weights"


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("fk_가", "fk_밀", True),  # lead bytes EA/EB weigh alike in latin1_swedish_ci
        ("fk_φ", "fk_Ά", True),
        ("fk_é", "fk_©", True),
        ("Fk_X", "fk_x", True),
        ("fk_é", "FK_É", False),
        ("fk_a", "fk_b", False),
    ],
)
def test_foreign_key_names_weigh_as_innodb_compares_them(
    use_sandbox_config: SandboxHandle, one: str, other: str, same: bool
) -> None:
    with use_sandbox_config.connect() as conn, conn.cursor() as cur:
        weights = weigh(cur, [one, other], FOREIGN_KEYS)
        assert (weights[one] == weights[other]) is same
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        try:
            cur.execute(f"CREATE TABLE {DB}.p (id INT PRIMARY KEY)")
            for n, name in enumerate((one, other)):
                sql = (
                    f"CREATE TABLE {DB}.c{n} (a INT, CONSTRAINT `{name}` FOREIGN KEY (a) "
                    f"REFERENCES {DB}.p (id))"
                )
                if same and n == 1:
                    with pytest.raises(pymysql.err.OperationalError, match="121"):
                        cur.execute(sql)
                else:
                    cur.execute(sql)
        finally:
            cur.execute(f"DROP DATABASE {DB}")


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("straße", "strase", True),
        ("straße", "strasse", False),
        ("ﬁx", "fix", False),
        ("café", "CAFE", True),
    ],
)
def test_routine_names_weigh_as_the_server_compares_them(
    use_sandbox_config: SandboxHandle, one: str, other: str, same: bool
) -> None:
    with use_sandbox_config.connect() as conn, conn.cursor() as cur:
        weights = weigh(cur, [one, other], DEFINITIONS)
        assert (weights[one] == weights[other]) is same
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
        try:
            cur.execute(f"CREATE PROCEDURE {DB}.`{one}`() SELECT 1")
            sql = f"CREATE PROCEDURE {DB}.`{other}`() SELECT 2"
            if same:
                with pytest.raises(pymysql.err.OperationalError, match="already exists"):
                    cur.execute(sql)
            else:
                cur.execute(sql)
        finally:
            cur.execute(f"DROP DATABASE {DB}")


def test_many_names_are_weighed_in_batches(use_sandbox_config: SandboxHandle) -> None:
    names = [f"k{i}" for i in range(450)] + ["k1 "]  # a trailing space pads
    with use_sandbox_config.connect() as conn, conn.cursor() as cur:
        weights = weigh(cur, names, FOREIGN_KEYS)
    assert len(set(weights.values())) == 450 and weights["k1 "] == weights["k1"]
