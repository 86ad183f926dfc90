"""Running the stock tools: ``mariadb-backup`` (backup, prepare) and ``mbstream`` (extract).

Passwords reach mariabackup through an option file that exists only as an inherited
descriptor (:func:`datatier.mysql.connection.client_options_file`), never its command line
or the disk. A tool that
fails raises :class:`~datatier.errors.OperationFailed` with the last lines of its log.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatier.errors import OperationFailed, UsageError
from datatier.mysql.connection import ClientOptions, Endpoint, client_options_file
from datatier.storage.base import MiB

BACKUP_BINARIES = ("mariadb-backup", "mariabackup")
BINLOG_POS = re.compile(
    r"filename '(?P<file>[^']*)', position '(?P<pos>\d+)'(?:, GTID of the last change "
    r"'(?P<gtid>[^']*)')?"
)
READ_SIZE = MiB
LOG_PREFIX = re.compile(rb"^\[\d+\] [\d-]+ [\d:]+ ")  # "[01] 2026-12-04 22:40:27 "


def find_tool(*names: str) -> str:
    """The path of the first of ``names`` on PATH; UsageError naming the package if none."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise UsageError(
        f"{names[0]} is not installed on this host",
        hint="install the mariadb-backup package (it provides mariadb-backup and mbstream)",
    )


def tool_version(binary: str) -> str:
    """``mariadb-backup --version``'s server version, e.g. ``10.11.19-MariaDB``."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"server (\S+)", out.stderr + out.stdout)
    return match.group(1) if match else "unknown"


@dataclass(frozen=True)
class Checkpoints:
    """``xtrabackup_checkpoints``: the kind of backup and its LSN range."""

    backup_type: str
    from_lsn: int
    to_lsn: int
    last_lsn: int


def read_keyvalues(path: Path) -> dict[str, str]:
    """``key = value`` lines of a mariabackup metadata file."""
    return parse_keyvalues(path.read_text(errors="replace"))


def parse_keyvalues(text: str) -> dict[str, str]:
    """``key = value`` lines of a mariabackup metadata file's text."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def read_checkpoints(path: Path) -> Checkpoints:
    """Parse ``xtrabackup_checkpoints``; OperationFailed if it is missing or malformed."""
    try:
        values = read_keyvalues(path)
        return Checkpoints(
            backup_type=values["backup_type"],
            from_lsn=int(values["from_lsn"]),
            to_lsn=int(values["to_lsn"]),
            last_lsn=int(values["last_lsn"]),
        )
    except (OSError, KeyError, ValueError) as exc:
        raise OperationFailed(f"cannot read {path.name}: {exc!r}") from None


def info_uuid(text: str) -> str | None:
    """The ``uuid`` line of an ``xtrabackup_info`` (None when absent). mariadb-backup
    draws one per copy of the file it writes: the streamed copy's names the backup (the
    ``--extra-lsndir`` copy's differs)."""
    return parse_keyvalues(text).get("uuid") or None


def datadir_origin(datadir: str | Path) -> dict[str, Any] | None:
    """Which restore ``datadir`` comes from, or None when it holds no ``xtrabackup_info``
    (never restored from a mariadb-backup copy). A restore leaves the backup's
    ``xtrabackup_info`` in the datadir and the server never writes it: ``uuid`` names the
    backup ("" if the file names none), ``restored_ns`` (the file's ctime, which no one can
    set) tells two restores of one backup apart. OperationFailed if it cannot be read."""
    info = Path(datadir) / "xtrabackup_info"
    try:
        stamp = info.stat().st_ctime_ns
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OperationFailed(f"cannot read {info}: {exc.strerror or exc!r}") from None
    try:
        text = info.read_text(errors="replace")
    except OSError as exc:
        raise OperationFailed(f"cannot read {info}: {exc.strerror or exc!r}") from None
    return {"uuid": info_uuid(text) or "", "restored_ns": stamp}


def origin_binlog(datadir: str | Path) -> dict[str, Any] | None:
    """The binlog position the backup ``datadir`` was restored from was copied at (its
    ``xtrabackup_info``'s ``binlog_pos``: file name and position), or None (never restored,
    the binlog was off, unreadable). InnoDB can go on reporting that position for the
    datadir, under the same file name, until every rollback segment is written again."""
    try:
        text = (Path(datadir) / "xtrabackup_info").read_text(errors="replace")
    except OSError:
        return None
    pos = parse_binlog_pos(text)
    return None if pos is None else {"file": Path(pos.file).name, "pos": pos.position}


REDO_LOG = "ib_logfile0"
REDO_HEADER = 16  # the format (4 bytes), 4 reserved, the LSN the log was created at (8)


def redo_created_lsn(datadir: str | Path) -> int | None:
    """The LSN the datadir's redo log was created at (``ib_logfile0``'s header, big-endian
    at offset 8): by ``mariadb-install-db``, by the ``--prepare`` of a restored backup, by a
    log resize; the server never rewrites it otherwise. A restore of any kind (datatier's,
    ``--copy-back``, ``--move-back``) changes it, whether or not ``xtrabackup_info`` stays.
    None when the file cannot be read here (a redo log kept elsewhere)."""
    try:
        with (Path(datadir) / REDO_LOG).open("rb") as f:
            header = f.read(REDO_HEADER)
    except OSError:
        return None
    if len(header) < REDO_HEADER:
        return None
    return int.from_bytes(header[8:16], "big") or None


@dataclass(frozen=True)
class BinlogPosition:
    """Where the copy stands in the server's binlog, as mariabackup reported it."""

    file: str
    position: int
    gtid: str


def parse_binlog_pos(text: str) -> BinlogPosition | None:
    """The ``binlog_pos`` line of ``xtrabackup_info`` (None when the binlog is off)."""
    match = BINLOG_POS.search(text)
    if match is None:
        return None
    return BinlogPosition(match["file"], int(match["pos"]), match["gtid"] or "")


def tail_of(path: Path, lines: int = 4) -> str:
    """The last meaningful lines of a tool's log, joined for a one-line message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in kept if "error" in ln.lower()]
    return " | ".join((errors or kept)[-lines:])


class BackupRun:
    """One ``mariadb-backup --backup --stream=mbstream`` process; iterate :meth:`chunks`.

    A context manager: leaving it kills the process if it still runs (an interrupted
    backup), and :meth:`wait` raises OperationFailed when it exited with an error.
    ``workdir`` receives ``xtrabackup_checkpoints`` and ``xtrabackup_info`` (``--extra-lsndir``)
    and the tool's log.
    """

    def __init__(
        self,
        source: Endpoint,
        workdir: Path,
        *,
        datadir: str,
        parallel: int,
        incremental_lsn: int | None = None,
        binary: str | None = None,
    ) -> None:
        self.source = source
        self.workdir = workdir
        self.datadir = datadir
        self.parallel = parallel
        self.incremental_lsn = incremental_lsn
        self.binary = binary or find_tool(*BACKUP_BINARIES)
        self.log_path = workdir / "mariabackup.log"
        self._stack = contextlib.ExitStack()
        self._proc: subprocess.Popen[bytes] | None = None

    def argv(self, options_file: ClientOptions) -> list[str]:
        args = [
            self.binary,
            f"--defaults-file={options_file}",
            "--backup",
            "--stream=mbstream",
            f"--target-dir={self.workdir / 'target'}",
            f"--extra-lsndir={self.workdir}",
            f"--datadir={self.datadir}",
            f"--tmpdir={self.workdir}",
            f"--parallel={self.parallel}",
            # A checkpoint first: the backup's to_lsn is then recent, so the next
            # incremental copies only pages changed after this backup.
            "--innodb-log-checkpoint-now",
        ]
        if self.incremental_lsn is not None:
            args.append(f"--incremental-lsn={self.incremental_lsn}")
        return args

    def __enter__(self) -> BackupRun:
        options = self._stack.enter_context(client_options_file(self.source))
        log = self._stack.enter_context(self.log_path.open("wb"))
        self._proc = subprocess.Popen(
            self.argv(options),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            close_fds=True,
            pass_fds=options.pass_fds,  # the option file exists only as this descriptor
        )
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        try:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        finally:
            if proc is not None and proc.stdout is not None:
                proc.stdout.close()
            self._stack.close()

    def chunks(self) -> Iterator[bytes]:
        """The stream, in pieces of up to 1 MiB, until mariabackup closes it."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        with contextlib.suppress(OSError):  # a larger pipe: fewer, larger reads
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, READ_SIZE)
        while data := os.read(fd, READ_SIZE):
            yield data

    def mentions(self, rel: str, limit: int = 3) -> list[str]:
        """Up to ``limit`` lines of mariabackup's log naming tablespace ``rel`` (``db/t.ibd``),
        what it said of a file it left out."""
        try:
            text = self.log_path.read_bytes()
        except OSError:
            return []
        name = re.compile(re.escape(os.fsencode(rel.removesuffix(".ibd"))) + rb"(?![\w@#$])")
        said = [LOG_PREFIX.sub(b"", ln).strip() for ln in text.splitlines() if name.search(ln)]
        return [line.decode(errors="replace") for line in dict.fromkeys(said)][:limit]

    def wait(self) -> None:
        """Wait for the process; OperationFailed (with its log's last lines) on an error."""
        assert self._proc is not None
        code = self._proc.wait()
        if code != 0:
            raise OperationFailed(
                f"mariadb-backup failed on {self.source.label} (exit {code}): "
                f"{self.source.scrub(tail_of(self.log_path))}"
            )


def extract(chunks: Iterable[bytes], directory: Path, *, parallel: int = 1) -> None:
    """Feed an mbstream to ``mbstream -x -C DIRECTORY``; OperationFailed if it fails."""
    binary = find_tool("mbstream")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [binary, "-x", "-C", str(directory), f"--parallel={max(1, parallel)}"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
        )
        assert proc.stdin is not None
        try:
            with contextlib.suppress(BrokenPipeError):  # mbstream stopped: its exit code says why
                for chunk in chunks:
                    proc.stdin.write(chunk)
                proc.stdin.close()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        code = proc.wait()
        if code != 0:
            log.seek(0)
            text = log.read().decode(errors="replace").strip().splitlines()
            raise OperationFailed(
                f"mbstream could not extract into {directory} (exit {code}): "
                + " | ".join(text[-3:])
            )


BACKUP_CNF = "backup-my.cnf"
"""The options file mariabackup writes into every backup: the server settings the copy's
files need (``innodb_page_size``, the checksum format, the key management plugin and its
options for encrypted tables)."""


def defaults_option(directory: Path) -> str:
    """``--defaults-file=DIRECTORY/backup-my.cnf`` when the backup there has one (a
    ``mariadb-backup --prepare`` or a ``mariadbd`` on the copy must run with its settings:
    at the default 16 KiB page size a 4 KiB server's files cannot be read), else
    ``--no-defaults``: never the host's own option files."""
    cnf = directory / BACKUP_CNF
    return f"--defaults-file={cnf}" if cnf.is_file() else "--no-defaults"


SERVER_SETTINGS = re.compile(
    r"innodb_page_size|plugin_dir|plugin_load(?:_add)?|\w*key_management\w*"
)
"""The settings of ``backup-my.cnf`` a server on the copy needs to read its files: the page
size and the key management plugin with its options. Not the rest (mariabackup writes
``innodb_checksum_algorithm=crc32`` there whatever the server used, which would change the
format of the tables a restored server creates)."""


def take_settings(incremental: Path, target: Path) -> None:
    """Give ``target`` (the copy being prepared) the ``backup-my.cnf`` of ``incremental``,
    when it has one, before applying it: the server's settings as of the newer backup. A
    server that turned encryption on after the full backup names its key plugin there only;
    the prepare of the incremental, and a server on the restored copy, need it."""
    newer = incremental / BACKUP_CNF
    if newer.is_file():
        shutil.copyfile(newer, target / BACKUP_CNF)


def _option_value(raw: str) -> str:
    """An option file value as the server reads it: quotes removed, or, unquoted, up to a
    ``#`` comment (at the start or after whitespace), spaces trimmed."""
    value = raw.strip()
    if len(value) >= 2 and value[0] in "'\"" and value[0] in value[1:]:
        return value[1 : value.index(value[0], 1)]
    comment = re.search(r"(?:^|\s)#", value)
    return (value[: comment.start()] if comment else value).strip()


def _mysqld_lines(directory: Path) -> Iterator[tuple[str, str, str]]:
    """``(name, value, line)`` of each setting in ``DIRECTORY/backup-my.cnf``'s
    ``[mysqld]`` group, in order: the name with ``_`` for ``-`` and without ``loose_``, the
    value as :func:`_option_value` reads it, the line as written. Nothing when there is no
    such file."""
    try:
        text = (directory / BACKUP_CNF).read_text(errors="replace")
    except OSError:
        return
    group = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            group = stripped.strip("[] ").lower()
            continue
        if group != "mysqld" or not stripped or stripped[0] in "#;!":
            continue
        name, _, value = stripped.partition("=")
        name = name.strip().replace("-", "_")
        yield name.removeprefix("loose_"), _option_value(value), stripped


def server_settings(directory: Path) -> str:
    """An options file of the :data:`SERVER_SETTINGS` lines in ``DIRECTORY/backup-my.cnf``'s
    ``[mysqld]`` group, as written there (the server parses their quoting and escapes
    itself; a key file's password never reaches a command line), under ``[mysqld]``."""
    kept = [line for name, _, line in _mysqld_lines(directory) if SERVER_SETTINGS.fullmatch(name)]
    return "[mysqld]\n" + "".join(f"{line}\n" for line in kept)


def key_files(directory: Path) -> list[Path]:
    """The files of ``file_key_management`` that ``DIRECTORY/backup-my.cnf`` names: its key
    file, then the file holding that file's password (``filekey=FILE:...``), if any. The
    backup's server read its keys there, and a prepare or a server on the copy reads them
    there too. The last setting wins, as for the server; a relative name is taken from the
    datadir, the server's working directory (an absolute one stays as it is)."""
    named: dict[str, str] = {}
    for name, value, _ in _mysqld_lines(directory):
        if name in ("file_key_management_filename", "file_key_management_filekey"):
            named[name] = value
    wanted = [named.get("file_key_management_filename", "")]
    filekey = named.get("file_key_management_filekey", "")
    if filekey.startswith("FILE:"):
        wanted.append(filekey.removeprefix("FILE:"))
    return [directory / value for value in wanted if value]


def missing_key_file(directory: Path) -> Path | None:
    """The first of :func:`key_files` this process cannot read; None when it can read them
    all, or none is named."""
    for path in key_files(directory):
        if not (path.is_file() and os.access(path, os.R_OK)):
            return path
    return None


class KeyFileMissing(OperationFailed):
    """A prepare failed, and the copy names a key file, ``path``, not readable here."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message, hint=key_file_text(path))
        self.path = path
        self.details["key_file"] = str(path)


def key_file_text(missing: Path) -> str:
    """What to do when ``missing``, a key file a copy names, is not readable here."""
    return (
        f"the backup's server read its encryption keys through {missing} (file_key_"
        "management in its backup-my.cnf), which is not readable on this host: put a copy of "
        "that file there (a symlink will do), or run this where it is"
    )


def prepare(target: Path, *, incremental: Path | None = None, use_memory_mb: int = 256) -> None:
    """``mariadb-backup --prepare`` of ``target`` (applying ``incremental`` when given),
    with the settings of the backup's ``backup-my.cnf``."""
    binary = find_tool(*BACKUP_BINARIES)
    args = [
        binary,
        defaults_option(target),
        "--prepare",
        f"--target-dir={target}",
        f"--use-memory={use_memory_mb}M",
    ]
    if incremental is not None:
        args.append(f"--incremental-dir={incremental}")
    log_path = target.parent / f".prepare-{target.name}.log"
    with log_path.open("wb") as log:
        code = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log).returncode
    try:
        if code != 0:
            what = f"applying {incremental.name}" if incremental else "the full backup"
            message = f"mariadb-backup --prepare failed on {what} (exit {code}): "
            missing = missing_key_file(target)
            if missing is not None:
                raise KeyFileMissing(message + tail_of(log_path), path=missing)
            raise OperationFailed(message + tail_of(log_path))
    finally:
        log_path.unlink(missing_ok=True)
