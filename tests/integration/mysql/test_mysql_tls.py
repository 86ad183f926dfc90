"""TLS to MySQL, for real: a MariaDB started here with a certificate signed by a CA the
test generates with openssl, and an account that REQUIRES X509 (a client certificate), so
a login without TLS and the client certificate fails. Every kind of connection datatier
makes is exercised: pymysql (``connect``), the replica monitor, mysqlclient (the cache
warmer's reader) and the stock clients (mariadb-dump for a backup, mariadb for a restore).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from datatier.cli import main
from datatier.config import load
from datatier.errors import DatatierError, ServiceUnavailable
from datatier.mysql.connection import client_options_file, connect, endpoint
from datatier.mysql.fastreader import RowReader
from datatier.mysql.local_admin import root_connection
from datatier.sandbox import process
from datatier.sandbox.services.mariadb import MariaDBService
from tests.integration.conftest import SandboxHandle, unavailable
from tests.integration.tlscerts import Certs, ca_files_fixture  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def tls_server(
    sandbox: SandboxHandle, ca_files: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MariaDBService]:
    """A MariaDB serving TLS on DATATIER_TEST_PORT_BASE + 71; the datatier account
    requires a client certificate from the test CA."""
    port = int(os.environ.get("DATATIER_TEST_PORT_BASE", "24060")) + 71
    if not process.port_free("127.0.0.1", port):
        unavailable(f"port {port} for the TLS MariaDB is taken")
    cfg = sandbox.config.mysql
    svc = MariaDBService(
        "tlsdb", port, tmp_path_factory.mktemp("tlsdb"), server_id=71, primary=None,
        user=cfg.user, password=cfg.password, repl_user=cfg.replication_user,
        repl_password=cfg.replication_password,
    )  # fmt: skip
    try:
        svc.prepare(process.run_once)
    except DatatierError as exc:
        unavailable(f"cannot initialise the TLS MariaDB: {exc}")
    argv = [*svc.argv(), f"--ssl-ca={ca_files['ca']}", f"--ssl-cert={ca_files['server']}",
            f"--ssl-key={ca_files['server-key']}"]  # fmt: skip
    record = process.start(argv, svc.log_path, cwd=svc.workdir)
    try:
        if not process.wait_until(lambda: svc.ready() or not process.is_alive(record), 60):
            pytest.fail(f"TLS MariaDB did not start: {process.tail(svc.log_path)}")
        svc.configure()
        with root_connection(svc.socket_path) as conn, conn.cursor() as cur:
            cur.execute("ALTER USER %s@'127.0.0.1' REQUIRE X509", (cfg.user,))
            cur.execute("CREATE DATABASE tls_db")
            cur.execute("CREATE TABLE tls_db.t (id INT PRIMARY KEY, v VARCHAR(20))")
            cur.execute(
                "INSERT INTO tls_db.t SELECT seq, CONCAT('row ', seq) FROM tls_db.seq_1_to_500"
            )
        yield svc
    finally:
        process.stop([record])


def write_config(
    sandbox: SandboxHandle, files: Certs, svc: MariaDBService, where: Path, tls: str
) -> Path:
    """A config with only the TLS server (as the primary), a file store and one policy."""
    secret = sandbox.root / "secrets" / "mysql_password"
    (where / "backups").mkdir(exist_ok=True)
    (where / "backups" / "tls.toml").write_text(
        'engine = "mysql"\n[source]\nnode = "tlsdb"\ndatabases = ["tls_db"]\n'
    )
    path = where / "datatier.toml"
    path.write_text(
        f'[mysql]\nuser = "{sandbox.config.mysql.user}"\npassword_file = "{secret}"\n{tls}\n'
        f'[mysql.nodes.tlsdb]\nhost = "127.0.0.1"\nport = {svc.port}\nrole = "primary"\n'
        f'[backup]\npolicies_dir = "backups"\ndefault_store = "file://{where / "store"}"\n'
    )
    return path


def tls_settings(files: Certs, ca: str = "ca") -> str:
    return (
        f'ssl_ca = "{files[ca]}"\nssl_cert = "{files["client"]}"\n'
        f'ssl_key = "{files["client-key"]}"\nssl_verify_server_cert = true'
    )


def cipher(cur: object) -> str:
    cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")  # type: ignore[attr-defined]
    return str(cur.fetchone()[1])  # type: ignore[attr-defined]


def test_datatier_connections_use_verified_tls_with_a_client_certificate(
    sandbox: SandboxHandle, ca_files: Certs, tls_server: MariaDBService, tmp_path: Path
) -> None:
    config = load(
        str(write_config(sandbox, ca_files, tls_server, tmp_path, tls_settings(ca_files)))
    )
    ep = endpoint(config.config.mysql, "tlsdb")
    with connect(ep) as conn, conn.cursor() as cur:
        assert cipher(cur), "pymysql speaks TLS"
    with RowReader(ep) as reader:
        _, batches = reader.stream("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        rows = [row for batch in batches for row in batch]
        assert rows and rows[0][1], "mysqlclient speaks TLS"

    plain = load(str(write_config(sandbox, ca_files, tls_server, tmp_path, "")))
    with pytest.raises(ServiceUnavailable, match="Access denied"):
        connect(endpoint(plain.config.mysql, "tlsdb"))  # REQUIRE X509 refuses plain logins

    wrong = load(
        str(
            write_config(
                sandbox, ca_files, tls_server, tmp_path, tls_settings(ca_files, "other-ca")
            )
        )
    )
    with pytest.raises(ServiceUnavailable, match="certificate"):
        connect(endpoint(wrong.config.mysql, "tlsdb"))  # a server the CA did not sign


def test_without_tls_settings_connections_are_plaintext_even_to_a_tls_server(
    sandbox: SandboxHandle, ca_files: Certs, tls_server: MariaDBService, tmp_path: Path
) -> None:
    """No ``[mysql]`` TLS settings: plaintext, as the stock 10.x client, not pymysql's own
    default (try unverified TLS, with a CA bundle loaded per connection)."""
    user = "plain_login"
    with root_connection(tls_server.socket_path) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY 'plain-pw'", (user,))
        cur.execute("GRANT SELECT ON tls_db.* TO %s@'127.0.0.1'", (user,))
    config = load(str(write_config(sandbox, ca_files, tls_server, tmp_path, "")))
    ep = replace(endpoint(config.config.mysql, "tlsdb"), user=user, password="plain-pw")
    with connect(ep) as conn, conn.cursor() as cur:
        assert cipher(cur) == "", "no TLS configured: no TLS spoken"
        assert not conn.ssl
    with RowReader(ep) as reader:
        _, batches = reader.stream("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert [row[1] for batch in batches for row in batch] == [""]


def test_the_stock_clients_and_the_monitor_use_tls(
    sandbox: SandboxHandle,
    ca_files: Certs,
    tls_server: MariaDBService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = str(write_config(sandbox, ca_files, tls_server, tmp_path, tls_settings(ca_files)))
    capsys.readouterr()
    assert main(["--config", config, "replication", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["nodes"][0]["reachable"] is True and status["nodes"][0]["server_id"] == 71

    assert main(["--config", config, "backup", "run", "tls", "--json"]) == 0  # mariadb-dump
    backup_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["--config", config, "restore", backup_id, "--rename", "tls_db=tls_copy"]) == 0
    ep = endpoint(load(config).config.mysql, "tlsdb")
    with connect(ep) as conn, conn.cursor() as cur:
        cur.execute("CHECKSUM TABLE tls_db.t, tls_copy.t")
        first, second = (row[1] for row in cur.fetchall())
        assert first == second and first is not None
        cur.execute("DROP DATABASE tls_copy")

    wrong = str(
        write_config(sandbox, ca_files, tls_server, tmp_path, tls_settings(ca_files, "other-ca"))
    )
    assert main(["--config", wrong, "backup", "run", "tls", "--max-lag", "1"]) == 3
    assert "certificate" in capsys.readouterr().err
    with client_options_file(endpoint(load(wrong).config.mysql, "tlsdb")) as cnf:
        refused = subprocess.run(
            ["mariadb", f"--defaults-file={cnf}", "-e", "SELECT 1"],
            capture_output=True, text=True, pass_fds=cnf.pass_fds,
        )  # fmt: skip
    assert refused.returncode != 0 and "certificate" in refused.stderr.lower(), refused.stderr
