"""The secrets the Ansible role writes on the target, one role variable each.

Every :class:`~datatier.typedtoml.Secret` field of the config schema (and of each named
``[mongo.servers.NAME]``) becomes a role variable, ``datatier_`` plus its key path
(``datatier_mysql_password``), meant to be set from an Ansible Vault variable. The role writes
each given one to its own file under ``secrets/`` beside the config, which the config names
with the ``*_file`` key (secrets never sit in the config itself). A secret is *required*
when the config cannot work without it: one the source config already sets (by value or
``*_file``), the MySQL password when there are MySQL nodes, a MongoDB password when a
username is set. Others are optional (offered only for tables the config has): left out,
the config does not name them.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from datatier.config import Config
from datatier.typedtoml import Secret

_UNSAFE = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True)
class SecretVar:
    """One secret: its key path in the config, role variable and file name."""

    path: tuple[str, ...]
    required: bool

    @property
    def var(self) -> str:
        return "datatier_" + "_".join(_UNSAFE.sub("_", p.lower()) for p in self.path)

    @property
    def file_name(self) -> str:
        return "-".join(_UNSAFE.sub("-", p.lower()).replace("_", "-") for p in self.path)

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def _base(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if typing.get_origin(tp) in (typing.Union, type(int | None)) else tp


def _walk(
    schema: Any, doc: Mapping[str, Any], prefix: tuple[str, ...]
) -> Iterator[tuple[str, ...]]:
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        tp = _base(hints[f.name])
        path = (*prefix, f.name)
        if tp is Secret:
            yield path
        elif dataclasses.is_dataclass(tp):
            sub = doc.get(f.name)
            yield from _walk(tp, sub if isinstance(sub, Mapping) else {}, path)
        elif typing.get_origin(tp) is dict and dataclasses.is_dataclass(typing.get_args(tp)[1]):
            entries = doc.get(f.name)
            for name, sub in (entries if isinstance(entries, Mapping) else {}).items():
                item = typing.get_args(tp)[1]
                yield from _walk(item, sub if isinstance(sub, Mapping) else {}, (*path, name))


def _table(doc: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    for part in path:
        found = doc.get(part)
        doc = found if isinstance(found, Mapping) else {}
    return doc


def _present(doc: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    for part in path:
        found = doc.get(part)
        if not isinstance(found, Mapping):
            return False
        doc = found
    return True


def secret_vars(doc: Mapping[str, Any]) -> list[SecretVar]:
    """Every secret of the schema for the config document ``doc`` (see module docstring)."""
    found = []
    for path in _walk(Config, doc, ()):
        table, key = _table(doc, path[:-1]), path[-1]
        required = key in table or f"{key}_file" in table
        if path == ("mysql", "password"):
            required = required or bool(_table(doc, ("mysql", "nodes")))
        if key == "password" and path[0] == "mongo":
            required = required or bool(table.get("username"))
        if required or _present(doc, path[:-1]):
            found.append(SecretVar(path, required))
    return found


def without_secrets(doc: Mapping[str, Any], secrets: list[SecretVar]) -> dict[str, Any]:
    """A deep copy of ``doc`` without any secret's value or ``*_file`` key."""
    drop = {s.path for s in secrets} | {(*s.path[:-1], f"{s.path[-1]}_file") for s in secrets}

    def copy(table: Mapping[str, Any], prefix: tuple[str, ...]) -> dict[str, Any]:
        return {
            k: copy(v, (*prefix, k)) if isinstance(v, Mapping) else v
            for k, v in table.items()
            if (*prefix, k) not in drop
        }

    return copy(doc, ())
