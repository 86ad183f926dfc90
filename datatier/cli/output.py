"""The one output layer of the command line: a command's result as text for people, or as
one JSON document with ``--json``; its failure too.

Contract:

* A command builds its result as an :class:`Output` (or any object with ``to_json()`` and
  ``to_text()``): ``doc`` is the ``--json`` document, a dict or a list whose keys scripts
  rely on; ``text`` is what a person reads (built only when shown); ``notes`` are lines for
  people on stderr (warnings), shown with the text only. :func:`emit` prints one of the two
  on stdout, once per command.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import click

from datatier.cli.context import AppContext
from datatier.display import table

__all__ = [
    "Output", "dumps", "emit", "failure", "json_option", "redraw", "say", "table"
]  # fmt: skip


class Shown(Protocol):
    """A command result :func:`emit` can show."""

    def to_json(self) -> Any: ...

    def to_text(self) -> str: ...


@dataclass(frozen=True)
class Output:
    """A command's result: its JSON document and its text (a string, or a function making
    it when it is shown)."""

    doc: Any
    text: str | Callable[[], str]
    notes: Sequence[str] = ()

    def to_json(self) -> Any:
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


def emit(result: Shown) -> None:
    """Show a command's result on stdout: its JSON document under ``--json``, else its
    text (then its notes on stderr)."""
    app = _app()
    app.emitted = True
    if app.json_output:
        click.echo(dumps(result.to_json()))
        return
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
