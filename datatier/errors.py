"""One exception hierarchy, each class mapped to a named process exit code.

Every failure a user can act on is raised as a :class:`DatatierError` subclass; the CLI prints
its message on one line and exits with its ``exit_code``. Messages must never contain secrets.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypedDict


class ExitCode(IntEnum):
    """Process exit codes, the contract with cron, CI and scripts (see design.md)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    UNREACHABLE = 3
    INTEGRITY = 4
    NOT_READY = 5


class DatatierError(Exception):
    """Base of every error datatier reports to a user; exit code 1 unless a subclass says."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details: dict[str, object] = {}
        """Machine-readable facts (e.g. object keys) merged into the ``--json`` failure."""

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class OperationFailed(DatatierError):
    """The operation was attempted and did not succeed (exit 1)."""


class UsageError(DatatierError):
    """Bad flags, arguments, IDs or URLs (exit 2). Nothing was changed."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """The configuration is invalid (exit 2); the message names the source, key and problem."""

    def __init__(
        self, source: str, key: str | None, problem: str, *, hint: str | None = None
    ) -> None:
        where = source if not key else f"{source}: {key}"
        super().__init__(f"{where}: {problem}", hint=hint)
        self.source = source
        self.key = key
        self.problem = problem


class ServiceUnavailable(DatatierError):
    """A server (MySQL, S3, memcached, MongoDB) could not be reached or refused us (exit 3)."""

    exit_code = ExitCode.UNREACHABLE


class IntegrityFailure(DatatierError):
    """A checksum mismatch, a corrupt or truncated object (exit 4)."""

    exit_code = ExitCode.INTEGRITY


class NotReadyYet(DatatierError):
    """Work is still in progress elsewhere, e.g. an archive restore; run again later (exit 5)."""

    exit_code = ExitCode.NOT_READY


class Terminated(BaseException):
    """SIGTERM (cron timeout, systemd stop, Kubernetes) turned into an exception, so that
    running work cleans up: uploads are aborted, the dump process is killed. Exit 143."""


def exit_code_of(exc: BaseException) -> int:
    """The process exit code a failure maps to: the error's own, 130 for Ctrl-C, 143 for
    SIGTERM, else 1."""
    if isinstance(exc, DatatierError):
        return int(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, Terminated):
        return 143
    return int(ExitCode.FAILED)


class FailureFields(TypedDict):
    """What a failure's log line and notification carry."""

    error: str
    exit_code: int
    hint: str | None


def failure_fields(exc: BaseException) -> FailureFields:
    """``error`` (one line, with what the interrupted work noted about what it left: PEP 678
    notes), ``exit_code`` and ``hint`` of a failure: what its log line and its
    notification carry."""
    if isinstance(exc, DatatierError):
        message, hint = exc.message, exc.hint
    elif isinstance(exc, KeyboardInterrupt):
        message, hint = "interrupted", None
    elif isinstance(exc, Exception):
        message, hint = f"unexpected {type(exc).__name__}: {exc}", "rerun with --debug"
    else:
        message, hint = "terminated (SIGTERM)", None
    notes = "".join(f"; {note}" for note in getattr(exc, "__notes__", ()))
    return {"error": message + notes, "exit_code": exit_code_of(exc), "hint": hint}
