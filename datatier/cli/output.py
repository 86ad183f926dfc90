"""The one output layer of the command line: a command's result as text for people, or as
one JSON document with ``--json``; its failure too.

Contract:

* A command builds its result as an :class:`Output` (or any object with ``to_json()`` and
  ``to_text()``): ``doc`` is the ``--json`` document, always one JSON object (a dict: a
  listing puts its rows under a key that names them, beside summary fields) whose keys
  scripts rely on; ``text`` is what a person reads (built only when shown); ``notes`` are
  lines for people on stderr (warnings), shown with the text only. :func:`emit` prints one
  of the two on stdout, once per command, and refuses (TypeError) a document that is not a
  dict.
* Deprecated, until 0.3.0: commands that printed a bare JSON list before 0.2.0 name the key
  of that list (:attr:`Output.legacy_list`); with ``DATATIER_JSON_LISTS=1`` in the
  environment :func:`emit` prints that list alone, as before, and one deprecation warning
  on stderr (a log event when logs are JSON), never on stdout.
* ``--json`` is :data:`json_option`, the same flag on every command: it switches the whole
  invocation to JSON. Lines a command prints for people on its way (:func:`say`) are left
  out then, so stdout holds exactly one JSON document.
* Failures (see :func:`datatier.cli.main`): the one stderr line, as always; under
  ``--json`` also ``{"error": ..., "exit_code": ..., "hint": ...}`` on stdout (``error`` as
  the stderr line says it), with what the command added to :attr:`AppContext.failure`
  (``{"ok": false, ...}``), unless the command's result was emitted already: a command
  that reports failures in its result (``check``, ``cache stats``) exits non-zero with
  that document alone.
* Progress goes to stderr (:mod:`datatier.cli.progress`), never through here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import click

from datatier import log
from datatier.cli.context import AppContext
from datatier.display import table

__all__ = [
    "LEGACY_LISTS_ENV", "Output", "dumps", "emit", "failure", "json_option", "legacy_lists",
    "redraw", "say", "table",
]  # fmt: skip

LEGACY_LISTS_ENV = "DATATIER_JSON_LISTS"
"""Set to 1: listings print their bare JSON list as before 0.2.0 (deprecated; gone in 0.3.0)."""
LEGACY_LISTS_REMOVED_IN = "0.3.0"


class Shown(Protocol):
    """A command result :func:`emit` can show."""

    def to_json(self) -> dict[str, Any]: ...

    def to_text(self) -> str: ...


@dataclass(frozen=True)
class Output:
    """A command's result: its JSON document (one object) and its text (a string, or a
    function making it when it is shown). ``legacy_list``: the key of ``doc`` holding the
    list that was the whole document before 0.2.0 (see :data:`LEGACY_LISTS_ENV`)."""

    doc: dict[str, Any]
    text: str | Callable[[], str]
    notes: Sequence[str] = ()
    legacy_list: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.doc

    def to_text(self) -> str:
        return self.text() if callable(self.text) else self.text


def _app() -> AppContext:
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(AppContext) if ctx is not None else None
    return found if found is not None else AppContext()


def _json_flag(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(AppContext).json_output = True


def json_option(help: str = "Print JSON on stdout.") -> Callable[[Any], Any]:
    """The ``--json`` flag of a command (handled here: commands never see it)."""
    return click.option(
        "--json",
        "json_output",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_json_flag,
        help=help,
    )


def dumps(doc: Any) -> str:
    """``doc`` as the indented JSON every command prints."""
    return json.dumps(doc, indent=2, default=str, ensure_ascii=False)


def legacy_lists() -> bool:
    """Whether ``DATATIER_JSON_LISTS`` asks for the pre-0.2.0 bare lists (any value but
    empty or ``0``)."""
    return os.environ.get(LEGACY_LISTS_ENV, "").strip() not in ("", "0")


def _json_doc(result: Shown) -> Any:
    """The document ``--json`` prints: the result's object, or under the legacy switch
    the list it names (and the deprecation warning on stderr)."""
    doc = result.to_json()
    if not isinstance(doc, dict):
        raise TypeError(
            f"--json output must be a JSON object, not {type(doc).__name__}: "
            "put the rows under a key that names them"
        )
    key = getattr(result, "legacy_list", None)
    if key is None or not legacy_lists():
        return doc
    ctx = click.get_current_context(silent=True)
    name = " ".join(ctx.command_path.split()[1:]) if ctx is not None else "this command"
    message = (
        f"{LEGACY_LISTS_ENV}=1 is deprecated and goes away in {LEGACY_LISTS_REMOVED_IN}: "
        f"`{name} --json` prints an object; read its {key!r} key"
    )
    if log.json_enabled():
        log.get_logger("datatier.cli").warning(
            "json.legacy_lists", message=message, command=name, key=key
        )
    else:
        click.echo(f"datatier: warning: {message}", err=True)
    return doc[key]


def emit(result: Shown) -> None:
    """Show a command's result on stdout: its JSON document under ``--json`` (TypeError
    if it is not a dict), else its text (then its notes on stderr)."""
    app = _app()
    if app.json_output:
        doc = _json_doc(result)
        app.emitted = True
        click.echo(dumps(doc))
        return
    app.emitted = True
    text = result.to_text()
    if text:
        click.echo(text, nl=not text.endswith("\n"))
    for note in getattr(result, "notes", ()):
        click.echo(note, err=True)


def say(line: str) -> None:
    """A line for people on stdout as the command goes (left out under ``--json``)."""
    if not _app().json_output:
        click.echo(line)


def redraw() -> None:
    """Clear the terminal before a ``--watch`` command shows its next result (text only:
    under ``--json`` each result is one more document)."""
    if not _app().json_output:
        click.clear()


def failure() -> dict[str, Any]:
    """The fields a failure of this command adds to its ``--json`` error document; update
    it as the command learns them."""
    return _app().failure
