"""A throwaway ``mariadbd`` on a restored datadir, for restore tests and checks.

It listens on ``127.0.0.1:PORT`` only (and a socket in a private directory; ``private``:
on that socket alone, without grant checks and ignoring DATA DIRECTORY, for a
point-in-time replay: a table it creates keeps its files in the datadir), writes no
binlog (unless ``log_bin``: ``scratch-bin.*`` in the datadir, for tests of a backup source
with the binlog on), starts no replication and runs no events, so it can never act on
anything but its own copy. It reads no option file of the host; of the settings
mariabackup recorded in the copy's ``backup-my.cnf`` it takes the page size and the key
management plugin, from a private options file. A context manager: leaving it stops the
server (SIGTERM, then SIGKILL after ``stop_timeout``) and removes its run directory (held
while the process lives: a killed one's is swept by the next, see :mod:`datatier.tempdirs`);
the datadir is the caller's. ``lower_case_table_names``: the copy's source's, as its
manifest records it (a server names and finds table files by it; another setting cannot see
the tables the source created, and creates others).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from datatier.errors import OperationFailed, UsageError
from datatier.mysql.physical.datadir import resolve_owner
from datatier.mysql.physical.tool import server_settings, tail_of
from datatier.tempdirs import held_directory

HOST = "127.0.0.1"
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with its NUL


def port_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(candidates: Iterable[int] = ()) -> int:
    """The first free port of ``candidates``; with none given, one the kernel picks.
    UsageError when every candidate is taken."""
    tried = list(candidates)
    for port in tried:
        if port_free(port):
            return port
    if tried:
        raise UsageError(f"no free port for a scratch server in {tried[0]}-{tried[-1]}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def mariadbd_binary() -> str:
    found = shutil.which("mariadbd") or shutil.which("mysqld")
    if found is None and Path("/usr/sbin/mariadbd").is_file():
        found = "/usr/sbin/mariadbd"
    if found is None:
        raise UsageError("mariadbd is not installed on this host", hint="install mariadb-server")
    return found


PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when the thread that started it ends, even
    by SIGKILL (Linux's ``PR_SET_PDEATHSIG``), so a scratch server, which serves a
    decrypted copy of a backup, never outlives its restore test. SIGKILL, not SIGTERM: a
    ``mariadbd`` still starting defers SIGTERM until it is up (tens of seconds on a busy
    host), and a throwaway copy needs no clean shutdown. ``prctl`` is looked up here,
    before the fork: the child only calls it."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return functools.partial(prctl, PR_SET_PDEATHSIG, signal.SIGKILL)


class ScratchServer:
    """``mariadbd`` on ``datadir`` at ``127.0.0.1:port``; see the module docstring."""

    def __init__(
        self,
        datadir: Path,
        port: int,
        *,
        server_id: int = 4000,
        buffer_pool_mb: int = 128,
        start_timeout: float = 120.0,
        stop_timeout: float = 60.0,
        log_bin: bool = False,
        private: bool = False,
        lower_case_table_names: int | None = None,
        tmpdir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.datadir = datadir.absolute()
        self.port = port
        self.host = HOST
        self.server_id = server_id
        self.buffer_pool_mb = buffer_pool_mb
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_bin = log_bin
        self.private = private
        self.lower_case_table_names = lower_case_table_names
        self.tmpdir = tmpdir
        self.extra_args = list(extra_args)
        self.rundir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._held = contextlib.ExitStack()  # the run directory, held (a killed one is swept)

    @property
    def log_path(self) -> Path:
        assert self.rundir is not None
        return self.rundir / "error.log"

    @property
    def socket_path(self) -> Path:
        assert self.rundir is not None
        return self.rundir / "mysqld.sock"

    def argv(self) -> list[str]:
        assert self.rundir is not None
        where = (
            [
                "--skip-networking",
                "--skip-grant-tables",
                "--max-allowed-packet=1G",
                "--skip-symbolic-links",  # a replayed DATA DIRECTORY stays in the datadir
            ]
            if self.private
            else [f"--port={self.port}", f"--bind-address={self.host}"]
        )
        args = [
            mariadbd_binary(),
            f"--defaults-file={self.rundir / 'my.cnf'}",  # and no other option file
            f"--datadir={self.datadir}",
            *where,
            f"--socket={self.socket_path}",
            f"--pid-file={self.rundir / 'mysqld.pid'}",
            f"--log-error={self.log_path}",
            f"--tmpdir={self.tmpdir or self.rundir}",
            f"--server-id={self.server_id}",
            "--log-bin=scratch-bin" if self.log_bin else "--skip-log-bin",
            "--skip-slave-start",
            "--event-scheduler=DISABLED",
            "--skip-name-resolve",
            f"--innodb-buffer-pool-size={self.buffer_pool_mb}M",
            "--performance-schema=OFF",
        ]
        if self.lower_case_table_names is not None:
            args.append(f"--lower-case-table-names={self.lower_case_table_names}")
        args.extend(self.extra_args)
        if os.geteuid() == 0:
            args.append(f"--user={resolve_owner(self.datadir).name}")
        return args

    def __enter__(self) -> ScratchServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and wait until it accepts connections; OperationFailed with
        its log's last lines if it exits or does not answer within ``start_timeout``. On any
        failure or interruption the server is stopped and the run directory removed."""
        if not self.private and not port_free(self.port):
            raise UsageError(f"port {self.port} for the scratch server is taken")
        self.stop()  # a server of an earlier start, and its run directory
        self.rundir = self._held.enter_context(held_directory("datatier-scratch-"))
        if len(str(self.socket_path).encode()) > SOCKET_PATH_MAX:
            where = self.rundir.parent
            self.stop()
            raise UsageError(
                f"the scratch server's socket would be longer than a Unix socket path may "
                f"be ({SOCKET_PATH_MAX} bytes) under {where}",
                hint="set TMPDIR to a shorter directory",
            )
        try:
            self._launch(self.rundir)
            self._wait()
        except BaseException:
            self.stop()
            raise

    def _launch(self, rundir: Path) -> None:
        owner = resolve_owner(self.datadir)
        os.chown(rundir, owner.uid, owner.gid)
        options = rundir / "my.cnf"  # what the backup's files need, 0600: may hold a key
        options.write_text(server_settings(self.datadir))
        options.chmod(0o600)
        os.chown(options, owner.uid, owner.gid)
        self._proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    def _wait(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise OperationFailed(
                    f"mariadbd did not start on {self.datadir}: {tail_of(self.log_path)}"
                )
            try:
                self._knock()
                return
            except OSError:
                time.sleep(0.1)
        raise OperationFailed(
            f"mariadbd on {self.datadir} did not answer in time: {tail_of(self.log_path)}"
        )

    def _knock(self) -> None:
        """Connect once (OSError while the server does not listen yet)."""
        if not self.private:
            socket.create_connection((self.host, self.port), timeout=0.5).close()
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(self.socket_path))

    def shutdown(self) -> None:
        """Stop the server cleanly (SIGTERM, up to ``stop_timeout``) and remove the run
        directory; OperationFailed with its log's last lines unless it exited with 0 (a
        datadir to keep must not be one a SIGKILL cut short)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=self.stop_timeout)
        code = proc.poll()
        if code is None:  # a copy that did not shut down in time is never kept: no wait
            proc.kill()
            proc.wait()
        if code != 0:
            failure = OperationFailed(
                f"mariadbd on {self.datadir} did not shut down cleanly "
                f"({f'killed after {self.stop_timeout:g} s' if code is None else f'exit {code}'})"
                f": "
                f"{tail_of(self.log_path)}"
            )
            self.stop()
            raise failure
        self.stop()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove the run directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._held.close()
        self.rundir = None
