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

from datatier.errors import OperationFailed
from datatier.mysql.connection import MySQLError
from datatier.mysql.local_admin import (
    LocalAccount,
    answers,
    ensure_accounts,
    replicate_from_start,
    root_connection,
)
from datatier.mysql.replica_status import read_replica_status
from datatier.mysql.replicate import Upstream
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

    def ready(self) -> bool:
        return answers(self.socket_path)

    def configure(self) -> None:
        """Create the tool and replication users locally; replicas then follow the primary."""
        with root_connection(self.socket_path) as conn:
            ensure_accounts(
                conn,
                [
                    LocalAccount(self.user, self.password.reveal(), "ALL PRIVILEGES ON *.*", True),
                    LocalAccount(
                        self.repl_user,
                        self.repl_password.reveal(),
                        "REPLICATION SLAVE, REPLICATION CLIENT ON *.*",
                    ),
                ],
            )
            if self.primary is None:
                return
            upstream = Upstream(
                self.primary.host, self.primary.port, self.repl_user, self.repl_password.reveal()
            )
            replicate_from_start(conn, upstream)

    def replication_threads(self) -> dict[str, Any]:
        """IO/SQL thread states of a replica (empty dict on the primary or on error)."""
        if self.primary is None:
            return {}
        try:
            with root_connection(self.socket_path, timeout=2.0) as conn:
                status = read_replica_status(conn)
        except (MySQLError, OSError):
            return {}
        if status is None:
            return {"io_thread": "not configured", "sql_thread": "not configured"}
        return {
            "io_thread": status.io_running,
            "sql_thread": status.sql_running,
            "seconds_behind_master": status.seconds_behind,
            "last_error": status.last_sql_error or status.last_io_error or None,
        }

    def details(self) -> dict[str, Any]:
        info: dict[str, Any] = {"role": self.role}
        info.update(self.replication_threads())
        return info
