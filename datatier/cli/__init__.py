"""The ``datatier`` command line: global options, command groups, errors to exit codes."""

from __future__ import annotations

import gc
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import NoReturn

import click

from datatier import __version__, log
from datatier.cli.context import AppContext
from datatier.cli.lazy import LazyGroup
from datatier.cli.output import dumps
from datatier.errors import DatatierError, ExitCode, Terminated

COMMANDS = {
    "backup": "datatier.cli.backup_cmd:backup_group",
    "backups": "datatier.cli.backups_cmd:backups_group",
    "binlog": "datatier.cli.binlog_cmd:binlog_group",
    "binlogs": "datatier.cli.binlog_cmd:binlogs_group",
    "cache": "datatier.cli.cache_cmd:cache_group",
    "check": "datatier.cli.check_cmd:check",
    "config": "datatier.cli.config_cmd:config_group",
    "deploy": "datatier.cli.deploy_cmd:deploy_group",
    "health": "datatier.cli.health_cmd:health_group",
    "keys": "datatier.cli.keys_cmd:keys_group",
    "migrate": "datatier.cli.migrate_cmd:migrate_group",
    "notify": "datatier.cli.notify_cmd:notify_group",
    "provision": "datatier.cli.provision_cmd:provision_group",
    "replication": "datatier.cli.replication_cmd:replication_group",
    "restore": "datatier.cli.restore_cmd:restore",
    "sandbox": "datatier.cli.sandbox_cmd:sandbox_group",
}
"""Every top-level command and where it lives: imported only when used (:mod:`.lazy`)."""


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar="DATATIER_CONFIG",
    help="Config file (TOML). Default: $DATATIER_CONFIG, else ./datatier.toml, else built-ins.",
)
@click.option("--debug", is_flag=True, help="Debug logging, and tracebacks on errors.")
@click.option("--json-logs", is_flag=True, help="Log JSON lines (default when stderr is no TTY).")
@click.version_option(__version__, prog_name="datatier")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool, json_logs: bool) -> None:
    """datatier keeps a MySQL/MongoDB/Memcached data tier healthy and recoverable.

    Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 a service cannot be reached,
    4 integrity failure, 5 not ready yet (run again later).
    """
    app = ctx.ensure_object(AppContext)
    app.config_path = config_path
    app.debug = app.debug or debug
    app.json_logs = json_logs
    # Commands that never read the config still log; loading a config reconfigures.
    log.configure(level="debug" if app.debug else "info", json_lines=json_logs or None)


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; map every error to one stderr line and a named exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    app = AppContext(debug="--debug" in args)
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return _run(app, args)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def entry() -> NoReturn:
    """The ``datatier`` console script (and ``python -m datatier``): :func:`main`, then exit
    with its code. The heap is frozen first (:func:`gc.freeze`): the process is ending, and
    the collections the interpreter runs while it shuts down would only walk it, some 0.1 s
    after a backup (most of it the S3 client's service model). Buffers are still flushed:
    logging's exit handler runs, and objects outside reference cycles are freed as usual.
    Young objects are collected every 10,000 allocations rather than 700: starting a
    command (its imports, the S3 client) otherwise runs some 150 collections, ~0.05 s of
    CPU per command, for no garbage worth it."""
    gc.set_threshold(10_000, 20, 20)
    code = main()
    gc.freeze()
    raise SystemExit(code)


def _notes(exc: BaseException) -> str:
    """What the interrupted work said about what it left (PEP 678 notes), as ``; ...``:
    for Ctrl-C, which click turns into Abort, the notes of the KeyboardInterrupt."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, click.exceptions.Abort) and isinstance(cause, KeyboardInterrupt):
        exc = cause
    return "".join(f"; {note}" for note in getattr(exc, "__notes__", ()))


def _run(app: AppContext, args: list[str]) -> int:
    try:
        result = cli.main(args=args, prog_name="datatier", obj=app, standalone_mode=False)
    except DatatierError as exc:
        return _fail(app, exc, exc.message, int(exc.exit_code), exc.hint)
    except click.exceptions.NoSuchCommand as exc:
        app.json_output = app.json_output or "--json" in args
        where = exc.ctx.command_path if exc.ctx is not None else "datatier"
        hint = f"see '{where} --help'"
        return _fail(app, exc, _no_such_command(exc), int(ExitCode.USAGE), hint)
    except click.ClickException as exc:
        code = int(ExitCode.USAGE) if isinstance(exc, click.UsageError) else int(ExitCode.FAILED)
        app.json_output = app.json_output or "--json" in args  # refused before it was parsed
        if log.json_enabled():
            return _fail(app, exc, exc.format_message(), code, None)
        _json_failure(app, exc, exc.format_message(), code, None)
        exc.show()
        return code
    except click.exceptions.Abort as exc:
        return _fail(app, exc, "aborted", 130, None)
    except KeyboardInterrupt as exc:
        return _fail(app, exc, "interrupted", 130, None)
    except Terminated as exc:
        return _fail(app, exc, "terminated (SIGTERM)", 143, None)
    except Exception as exc:
        message = f"unexpected {type(exc).__name__}: {exc}"
        return _fail(app, exc, message, int(ExitCode.FAILED), "rerun with --debug")
    # click returns the code of ctx.exit(N) (e.g. after --help); commands return None.
    return result if isinstance(result, int) else int(ExitCode.OK)


def _no_such_command(exc: click.exceptions.NoSuchCommand) -> str:
    """One line for a mistyped command, with click's close matches (click's own display
    adds a usage block that says nothing about the typo)."""
    message = f"no such command {exc.command_name!r}"
    if exc.possibilities:
        message += f"; did you mean {' or '.join(map(repr, exc.possibilities))}?"
    return message


def _fail(app: AppContext, exc: BaseException, message: str, code: int, hint: str | None) -> int:
    """Report a failure once: a JSON line (error, exit_code, hint; the traceback with
    --debug) when logs are JSON, else one plain ``datatier: error: ...`` line on stderr.
    A failure a job already logged with its reason is not logged again. Under ``--json``
    the failure is also the stdout document (see :mod:`datatier.cli.output`)."""
    notes = _notes(exc)
    _json_failure(app, exc, message, code, hint)
    if log.json_enabled():
        if id(exc) not in app.reported:
            log.get_logger("datatier.cli").error(
                "command.failed",
                exc_info=app.debug,
                error=message + notes,
                exit_code=code,
                hint=hint,
            )
        return code
    if app.debug and isinstance(exc, Exception):
        traceback.print_exc()
    if isinstance(exc, DatatierError):
        click.echo(f"datatier: error: {exc}{notes}", err=True)
    elif code == 130 or code == 143:
        click.echo(f"datatier: {message}{notes}", err=True)
    else:
        suffix = f" ({hint})" if hint else ""
        click.echo(f"datatier: error: {message}{suffix}", err=True)
    return code


def _json_failure(
    app: AppContext, exc: BaseException, message: str, code: int, hint: str | None
) -> None:
    """Under ``--json``, when the command emitted no result: the failure as the stdout
    document (``error`` as the stderr line says it, and what the command added)."""
    if not app.json_output or app.emitted:
        return
    line = f"{exc}" if isinstance(exc, DatatierError) else message
    details = exc.details if isinstance(exc, DatatierError) else {}
    doc = {**app.failure, **details, "error": line + _notes(exc), "exit_code": code, "hint": hint}
    click.echo(dumps(doc))
