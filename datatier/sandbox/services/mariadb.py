"""MariaDB from Debian's package: a GTID primary and read-only replicas, no systemd.

Facts this relies on are in shared/notes/servers.md: ``--no-defaults`` then ``--log-basename``
first, an explicit ``--log-bin``, ``--user=root`` when run as root. Users are created over the
Unix socket as root with ``sql_log_bin=0`` on every node, so they never replicate and
never clash; replicas then follow the primary with ``MASTER_USE_GTID=slave_pos``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from datatier.errors import OperationFailed
from datatier.sandbox.services.base import Runner, SandboxService
from datatier.typedtoml import Secret


class MariaDBService(SandboxService):
    """One ``mariadbd``; ``primary`` is None for the primary, else the node to follow."""

    kind = "mariadb"
    program = "mariadbd"

    def __init__(
        self,
        name: str,
        port: int,
        root: Path,
        *,
        server_id: int,
        primary: MariaDBService | None,
        user: str,
        password: Secret,
        repl_user: str,
        repl_password: Secret,
    ) -> None:
        super().__init__(name, port, root)
        self.server_id = server_id
        self.primary = primary
        self.user = user
        self.password = password
        self.repl_user = repl_user
        self.repl_password = repl_password

    @property
    def role(self) -> str:
        return "primary" if self.primary is None else "replica"

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def tmpdir(self) -> Path:
        return self.workdir / "tmp"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "mysqld.sock"

    def prepare(self, run: Runner) -> None:
        super().prepare(run)
        self.tmpdir.mkdir(exist_ok=True)
        if (self.datadir / "mysql").is_dir():
            return
        # Each instance gets its own tmpdir: parallel bootstraps sharing /tmp collide on
        # their '#sql-temptable-*' files and one of them aborts.
        code, output = run(
            "mariadb-install-db",
            [
                "--no-defaults",
                "--user=root",
                f"--datadir={self.datadir}",
                f"--tmpdir={self.tmpdir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
        )
        if code != 0:
            shutil.rmtree(self.datadir, ignore_errors=True)
            errors = [ln for ln in output.splitlines() if "ERROR" in ln]
            last = errors[-2:] or output.strip().splitlines()[-1:]
            raise OperationFailed(f"{self.name}: mariadb-install-db failed: {' '.join(last)}")

    def host_program(self) -> str:
        return shutil.which(self.program) or "/usr/sbin/mariadbd"

    def args(self) -> list[str]:
        args = [
            "--no-defaults", f"--log-basename={self.name}", "--user=root",
            f"--datadir={self.datadir}", f"--tmpdir={self.tmpdir}", f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.socket_path}", f"--pid-file={self.workdir / 'mysqld.pid'}",
            f"--log-error={self.workdir / 'error.log'}",
            f"--server-id={self.server_id}", f"--log-bin={self.name}-bin",
            "--binlog-format=ROW", "--log-slave-updates", "--gtid-strict-mode=1",
            "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=48M", "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0", "--performance-schema=OFF", "--max-connections=200",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
            "--event-scheduler=OFF", "--max-allowed-packet=64M",
        ]  # fmt: skip
        if self.primary is not None:
            args += ["--read-only", "--relay-log=" + f"{self.name}-relay-bin"]
        return args

    def _root(self, timeout: float = 10.0) -> pymysql.connections.Connection[Any]:
        # Every read and write is bounded: a frozen server must not hang `status`.
        return pymysql.connect(
            unix_socket=str(self.socket_path),
            user="root",
            connect_timeout=2,
            read_timeout=timeout,
            write_timeout=timeout,
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
        )

    def ready(self) -> bool:
        try:
            with self._root(timeout=2.0) as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
            return True
        except (pymysql.MySQLError, OSError):
            return False

    def configure(self) -> None:
        """Create the tool and replication users locally; replicas then follow the primary."""
        with self._root() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            for user, secret, grants in (
                (self.user, self.password, "ALL PRIVILEGES ON *.*"),
                (
                    self.repl_user,
                    self.repl_password,
                    "REPLICATION SLAVE, REPLICATION CLIENT ON *.*",
                ),
            ):
                cur.execute(
                    "CREATE USER IF NOT EXISTS %s@'127.0.0.1' IDENTIFIED BY %s",
                    (user, secret.reveal()),
                )
                cur.execute("ALTER USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, secret.reveal()))
                option = " WITH GRANT OPTION" if user == self.user else ""
                cur.execute(f"GRANT {grants} TO %s@'127.0.0.1'{option}", (user,))
            cur.execute("SET SESSION sql_log_bin = 1")
            if self.primary is None:
                return
            cur.execute("SHOW SLAVE STATUS")
            if cur.fetchone():
                cur.execute("START SLAVE")  # no-op when running; resumes after a restart
                return
            cur.execute("SET GLOBAL gtid_slave_pos = ''")
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, "
                "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                (
                    self.primary.host,
                    self.primary.port,
                    self.repl_user,
                    self.repl_password.reveal(),
                ),
            )
            cur.execute("START SLAVE")

    def replication_threads(self) -> dict[str, Any]:
        """IO/SQL thread states of a replica (empty dict on the primary or on error)."""
        if self.primary is None:
            return {}
        try:
            with self._root(timeout=2.0) as conn, conn.cursor() as cur:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
        except (pymysql.MySQLError, OSError):
            return {}
        if not row:
            return {"io_thread": "not configured", "sql_thread": "not configured"}
        return {
            "io_thread": row.get("Slave_IO_Running"),
            "sql_thread": row.get("Slave_SQL_Running"),
            "seconds_behind_master": row.get("Seconds_Behind_Master"),
            "last_error": row.get("Last_Error") or row.get("Last_IO_Error") or None,
        }

    def details(self) -> dict[str, Any]:
        info: dict[str, Any] = {"role": self.role}
        info.update(self.replication_threads())
        return info
