"""The ``datatier`` command line: global options, command groups, errors to exit codes."""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Sequence

import click

from datatier import __version__, log
from datatier.cli.backup_cmd import backup_group
from datatier.cli.backups_cmd import backups_group
from datatier.cli.binlog_cmd import binlog_group, binlogs_group
from datatier.cli.cache_cmd import cache_group
from datatier.cli.check_cmd import check
from datatier.cli.config_cmd import config_group
from datatier.cli.context import AppContext
from datatier.cli.deploy_cmd import deploy_group
from datatier.cli.health_cmd import health_group
from datatier.cli.keys_cmd import keys_group
from datatier.cli.migrate_cmd import migrate_group
from datatier.cli.notify_cmd import notify_group
from datatier.cli.output import dumps
from datatier.cli.provision_cmd import provision_group
from datatier.cli.replication_cmd import replication_group
from datatier.cli.restore_cmd import restore
from datatier.cli.sandbox_cmd import sandbox_group
from datatier.errors import DatatierError, ExitCode, Terminated


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


cli.add_command(backup_group)
cli.add_command(backups_group)
cli.add_command(binlog_group)
cli.add_command(binlogs_group)
cli.add_command(config_group)
cli.add_command(deploy_group)
cli.add_command(restore)
cli.add_command(sandbox_group)
cli.add_command(health_group)
cli.add_command(keys_group)
cli.add_command(replication_group)
cli.add_command(cache_group)
cli.add_command(check)
cli.add_command(migrate_group)
cli.add_command(notify_group)
cli.add_command(provision_group)


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


def _notes(exc: BaseException) -> str:
    """What the interrupted work said about what it left (PEP 678 notes), as ``; ...``."""
    return "".join(f"; {note}" for note in getattr(exc, "__notes__", ()))


def _run(app: AppContext, args: list[str]) -> int:
    try:
        result = cli.main(args=args, prog_name="datatier", obj=app, standalone_mode=False)
    except DatatierError as exc:
        return _fail(app, exc, exc.message, int(exc.exit_code), exc.hint)
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
    doc = {**app.failure, "error": line + _notes(exc), "exit_code": code, "hint": hint}
    click.echo(dumps(doc))
