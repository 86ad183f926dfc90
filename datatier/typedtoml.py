"""Bind TOML documents to frozen dataclasses, with exact, actionable errors.

Contract: :func:`bind` turns a parsed TOML table into an instance of a dataclass schema.
Every unknown key, wrong type, bad choice or missing required value raises
:class:`~datatier.errors.ConfigError` naming the source (file or env var), the dotted key
and the problem (``nan`` and ``inf`` are refused for numbers). Supported field types:
``str``, ``int``, ``float``, ``bool``, ``Literal["a", "b"]`` (one of those strings),
:class:`Secret`, ``X | None``, ``list[str|int|float]``, nested dataclasses and
``dict[str, Dataclass]``. Field metadata: ``choices`` (allowed values of a ``str`` field
whose values are not fixed in the code), ``help`` (docs).

Secrets (:class:`Secret` fields) never come from the file itself: they come from an
environment override or from a sibling ``<name>_file`` key naming a file whose content
(trailing newline stripped) is the secret. Relative ``*_file`` paths are resolved against
``base_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from datatier.errors import ConfigError

T = TypeVar("T")

MISSING_REQUIRED = object()
"""Use as a field default (via ``required()``) for a value with no sensible default."""


SECRET_FILE_MAX = 1 << 20
"""A secret file larger than this is refused (``/dev/zero`` would never end)."""


class Secret:
    """A string that renders as ``***`` everywhere except :meth:`reveal`."""

    __slots__ = ("_value", "given")

    def __init__(self, value: str = "", *, given: bool = False) -> None:
        self._value = value
        self.given = given or bool(value)  # set at all: an empty secret file is not "unset"

    def reveal(self) -> str:
        """The secret itself: pass it to a client library, never to a log or a message."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def required(**metadata: Any) -> Any:
    """A dataclass field that must be given."""
    return dataclasses.field(default=MISSING_REQUIRED, metadata=metadata)


def option(default: Any, **metadata: Any) -> Any:
    """A dataclass field with a default and metadata (``choices``, ``help``)."""
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: default.copy(), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _literal(tp: Any) -> tuple[str, ...] | None:
    """The strings a ``Literal[...]`` type allows, or None for any other type."""
    if typing.get_origin(tp) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(tp))
    return None


def _type_name(tp: Any) -> str:
    tp, _ = _strip_optional(tp)
    if dataclasses.is_dataclass(tp):
        return "table"
    if _literal(tp) is not None:
        return "string"
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "table"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Secret: "secret"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _describe(value: Any) -> str:
    kind = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list"}.get(
        type(value), "table" if isinstance(value, dict) else type(value).__name__
    )
    text = json.dumps(value, default=str) if not isinstance(value, dict) else "{...}"
    return f"{kind} {text[:60]}"


class Binder:
    """Binds one document; ``source`` names it in errors, ``base_dir`` anchors ``*_file``."""

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir

    def error(self, key: str, problem: str, hint: str | None = None) -> ConfigError:
        return ConfigError(self.source, key or None, problem, hint=hint)

    def bind(self, schema: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
        if not dataclasses.is_dataclass(schema):
            raise TypeError(f"{schema!r} is not a dataclass")
        hints = typing.get_type_hints(schema)
        fields = {f.name: f for f in dataclasses.fields(schema)}
        secret_files = {
            f"{name}_file": name for name in fields if _strip_optional(hints[name])[0] is Secret
        }
        for key in data:
            if key not in fields and key not in secret_files:
                known = ", ".join(sorted([*fields, *secret_files]))
                raise self.error(f"{prefix}{key}", "unknown key", hint=f"known keys: {known}")
        values: dict[str, Any] = {}
        for name, fld in fields.items():
            key = f"{prefix}{name}"
            tp = hints[name]
            base, _ = _strip_optional(tp)
            if base is Secret:
                values[name] = self._secret(data, name, key, fld)
                continue
            if name in data:
                values[name] = self.value(tp, data[name], key, fld.metadata)
            elif fld.default is MISSING_REQUIRED:
                raise self.error(key, "missing required value")
        return schema(**values)

    def _secret(
        self, data: Mapping[str, Any], name: str, key: str, fld: dataclasses.Field[Any]
    ) -> Secret:
        file_key = f"{name}_file"
        if name in data:
            raw = data[name]
            if not isinstance(raw, Secret):
                raise self.error(
                    key,
                    "secrets may not be written into a config file",
                    hint=f"use {file_key} = PATH or the environment variable "
                    f"DATATIER_{key.upper().replace('.', '__')}",
                )
            return raw
        if file_key in data:
            raw_path = data[file_key]
            if not isinstance(raw_path, str) or not raw_path:
                raise self.error(f"{key}_file", f"expected a file path, got {_describe(raw_path)}")
            path = Path(raw_path)
            if not path.is_absolute():
                path = self.base_dir / path
            try:
                with path.open("rb") as handle:
                    content = handle.read(SECRET_FILE_MAX + 1)
            except OSError as exc:
                raise self.error(
                    f"{key}_file", f"cannot read secret file {path}: {exc.strerror}"
                ) from None
            if len(content) > SECRET_FILE_MAX:
                raise self.error(
                    f"{key}_file", f"secret file {path} holds more than {SECRET_FILE_MAX} bytes"
                )
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(f"{key}_file", f"secret file {path} is not UTF-8 text") from None
            return Secret(text.rstrip("\r\n"), given=True)
        if fld.default is MISSING_REQUIRED:
            raise self.error(key, "missing required secret", hint=f"set {file_key}")
        default = fld.default
        return default if isinstance(default, Secret) else Secret()

    def value(self, tp: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
        base, optional = _strip_optional(tp)
        if raw is None:
            if optional:
                return None
            raise self.error(key, f"expected {_type_name(base)}, got nothing")
        result = self._convert(base, raw, key)
        choices = meta.get("choices") or _literal(base)
        if choices is not None and result not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise self.error(key, f"{raw!r} is not one of {allowed}")
        minimum = meta.get("min")
        if minimum is not None and result < minimum:
            raise self.error(key, f"{result!r} is below the minimum {minimum!r}")
        return result

    def _convert(self, base: Any, raw: Any, key: str) -> Any:
        if dataclasses.is_dataclass(base):
            if not isinstance(raw, Mapping):
                raise self.error(key, f"expected a table, got {_describe(raw)}")
            return self.bind(typing.cast(type[Any], base), raw, f"{key}.")
        origin = typing.get_origin(base)
        if origin is dict:
            _, item_tp = typing.get_args(base)
            if not isinstance(raw, Mapping):
                raise self.error(key, f"expected a table, got {_describe(raw)}")
            return {k: self.value(item_tp, v, f"{key}.{k}", {}) for k, v in raw.items()}
        if origin is list:
            (item_tp,) = typing.get_args(base)
            if not isinstance(raw, list):
                raise self.error(key, f"expected {_type_name(base)}, got {_describe(raw)}")
            return [self.value(item_tp, v, f"{key}[{i}]", {}) for i, v in enumerate(raw)]
        if base is bool:
            if isinstance(raw, bool):
                return raw
        elif base is int:
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
        elif base is float:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                if not math.isfinite(raw):  # TOML allows nan and inf; no setting means them
                    raise self.error(key, f"expected a finite number, got {raw!r}")
                return float(raw)
        elif base is str or _literal(base) is not None:
            if isinstance(raw, str):
                return raw
        else:
            raise TypeError(f"unsupported schema type {base!r} at {key}")
        raise self.error(key, f"expected {_type_name(base)}, got {_describe(raw)}")


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Parse the TOML file at ``path``; ConfigError naming it (``what``: "policy file",
    "warm set file"...) when it is missing, unreadable or not TOML."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, None, f"{what} not found") from None
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read {what}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, None, f"invalid TOML: {exc}") from None


def coerce_env(tp: Any, text: str) -> Any:
    """Turn an environment variable's text into a TOML-like value for a field of type ``tp``.

    Raises ValueError with a short reason on text that cannot be that type.
    """
    base, optional = _strip_optional(tp)
    if optional and text == "":
        return None
    if base is Secret:
        return Secret(text)
    if base is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if base is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if base is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if typing.get_origin(base) is list:
        (item_tp,) = typing.get_args(base)
        return [coerce_env(item_tp, part.strip()) for part in text.split(",") if part.strip()]
    if base is str or _literal(base) is not None:
        return text
    raise ValueError(f"a {_type_name(base)} cannot be set from the environment")


def field_type_at(schema: type[Any], path: list[str]) -> Any:
    """The declared type at a (lower-case) key path in ``schema``; KeyError if there is none.

    ``*_file`` keys of secret fields resolve to ``str``.
    """
    tp: Any = schema
    for i, part in enumerate(path):
        base, _ = _strip_optional(tp)
        if dataclasses.is_dataclass(base):
            hints = typing.get_type_hints(base)
            if part in hints:
                tp = hints[part]
                continue
            stem = part.removesuffix("_file")
            if part.endswith("_file") and _strip_optional(hints.get(stem, None))[0] is Secret:
                tp = str
                continue
            raise KeyError(".".join(path[: i + 1]))
        if typing.get_origin(base) is dict:
            tp = typing.get_args(base)[1]
            continue
        raise KeyError(".".join(path[: i + 1]))
    return tp


def to_plain(obj: Any) -> Any:
    """A JSON/TOML-ready copy of a bound config with every secret replaced by ``***``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Secret):
        return "***" if obj else ""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_scalar(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key, ensure_ascii=False)


def dumps_toml(data: Mapping[str, Any], _prefix: str = "") -> str:
    """Render nested plain dicts as TOML (``None`` values are written as comments)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((f"{_prefix}{_toml_key(key)}", value))
        elif value is None:
            lines.append(f"# {_toml_key(key)} is unset")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_scalar(value)}")
    out = "\n".join(lines)
    for name, table in tables:
        body = dumps_toml(table, f"{name}.")
        has_scalars = any(not isinstance(v, Mapping) for v in table.values())
        header = f"[{name}]\n" if has_scalars or not table else ""
        out += ("\n\n" if out else "") + header + body
    return out.strip("\n") + ("\n" if not _prefix else "")
