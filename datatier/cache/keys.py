"""Cache keys as the application builds them.

A query's ``key`` is a ``str.format`` template. Its fields are the query's parameters
(result mode: the columns of the ``params_sql`` row) or the row's columns (row mode), plus:

- ``{md5}`` / ``{sha1}``: hex digest of ``normalize_sql(sql) + "\\n" + canonical_params``,
  where ``canonical_params`` is the parameters as JSON with sorted keys, no spaces, and
  non-JSON values (dates, decimals) as ``str()``; ``{}`` when there are none;
- ``{rendered_md5}``: hex MD5 of the normalized statement with the parameters substituted by
  the MySQL driver (what an app that hashes its final SQL text computes);
- ``{query}`` and ``{set}``: the query's and the warm set's names.

A template field whose value is NULL refuses that row's key (``key column X is NULL``), so
two rows with NULL keys never share one; a binary value (``VARBINARY``, ``BLOB``) goes in as
its bytes decoded as UTF-8, and refuses the key when they are not valid UTF-8.

When no template fits, ``key_function = "package.module:function"`` names a function called as
``function(sql=..., params=..., row=...)`` (normalized SQL, the parameters or None, the row or
None) that returns the key as ``str`` or ``bytes``. ``params`` and ``row`` are read-only
mappings (:class:`KeyInputs`) under the template rule: a value the function reads is
refused when NULL (``key column X is NULL``) and comes as ``str`` when binary (bytes decoded
as UTF-8, refused when they are not), so the function never sees ``None`` or ``bytes``. A
NULL column it does not read refuses nothing. Any other return value (``None`` included)
refuses the key.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from datatier.errors import ConfigError

KeyFunction = Callable[..., str | bytes]
_SPACES = re.compile(r"\s+")
_RAW = (bytes, bytearray, type(None))  # key values a template cannot take as they are


class KeyValueRefused(ValueError):
    """A template field's value cannot go into a key (NULL, or bytes that are not UTF-8):
    that row's key is refused; the message names the column."""


def _key_text(name: str, value: Any) -> Any:
    """``value`` as a key template takes it (module docstring); KeyValueRefused if it cannot."""
    if value is None:
        raise KeyValueRefused(f"key column {name} is NULL")
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise KeyValueRefused(f"key column {name} is binary, not UTF-8") from None
    return value


class KeyInputs(Mapping[str, Any]):
    """A row or parameters as a key function reads them (module docstring): reading a NULL
    or non-UTF-8 binary value raises KeyValueRefused naming the column; bytes read as str.
    ``in`` and iteration see every column, NULL or not."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> Any:
        return _key_text(name, self._values[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return repr(dict(self.items()))  # reads every value, as formatting the row would


def _raw_in(columns: Iterable[Iterable[Any]]) -> bool:
    """Whether any value of ``columns`` is NULL or bytes (one C-speed pass per column)."""
    return any(not set(map(type, column)).isdisjoint(_RAW) for column in columns)


def normalize_sql(sql: str) -> str:
    """Whitespace runs collapsed to one space, trimmed, no trailing semicolon."""
    return _SPACES.sub(" ", sql).strip().rstrip(";").rstrip()


def canonical_params(params: Mapping[str, Any] | None) -> str:
    """Parameters as compact, key-sorted JSON (non-JSON values as ``str()``)."""
    return json.dumps(dict(params or {}), sort_keys=True, separators=(",", ":"), default=str)


def digest_input(sql: str, params: Mapping[str, Any] | None) -> bytes:
    """What ``{md5}`` and ``{sha1}`` hash (see module docstring)."""
    return f"{normalize_sql(sql)}\n{canonical_params(params)}".encode()


def load_key_function(dotted: str, source: str, key: str) -> KeyFunction:
    """Import ``module:function`` (or ``module.function``); ConfigError if it cannot be."""
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(source, key, f"cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(source, key, f"{module_name!r} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


class KeyBuilder:
    """Builds the key of one cache entry of one query (template or function)."""

    def __init__(
        self,
        *,
        set_name: str,
        query_name: str,
        sql: str,
        template: str | None,
        function: KeyFunction | None,
        interpolate: Callable[[str, Mapping[str, Any] | None], str] | None = None,
    ) -> None:
        self.set_name = set_name
        self.query_name = query_name
        self.sql = sql
        self.normalized = normalize_sql(sql)
        self.template = template
        self.function = function
        self.interpolate = interpolate
        fields = set(re.findall(r"{(\w+)}", template or ""))
        self._names = sorted(
            {
                re.split(r"[.\[]", f)[0]
                for _, f, _, _ in string.Formatter().parse(template or "")
                if f
            }
        )
        self._needs_digest = bool(fields & {"md5", "sha1"})
        self._needs_rendered = "rendered_md5" in fields
        self.plain = template is not None and not fields & {
            "md5", "sha1", "rendered_md5", "query", "set"
        }  # fmt: skip
        self._format = (template or "").format_map

    def batch_keys(
        self, columns: Sequence[str], as_dicts: bool
    ) -> Callable[[Sequence[Any]], list[bytes]] | None:
        """For a plain template: a function from a batch of rows (dicts if ``as_dicts``,
        else tuples in ``columns`` order) to their keys, as :meth:`build` makes them (it may
        raise KeyError for a missing field). None for other templates, key functions, and
        tuples that lack a field. A batch with a NULL or binary field value raises
        KeyValueRefused: build those rows' keys one by one."""
        if not self.plain or self.template is None:
            return None
        if as_dicts:
            by_name, names = self._format, [itemgetter(n) for n in self._names]

            def of_dicts(rows: Sequence[Any]) -> list[bytes]:
                if _raw_in(map(get, rows) for get in names):
                    raise KeyValueRefused("a key column is NULL or binary")
                return [by_name(r).encode() for r in rows]

            return of_dicts
        last = {name: i for i, name in enumerate(columns)}  # dict(zip()): the last one wins
        text = ""
        for literal, name, _, _ in string.Formatter().parse(self.template):
            text += literal.replace("{", "{{").replace("}", "}}")
            if name is not None:
                if name not in last:
                    return None  # build() says which field is missing
                text += f"{{{last[name]}}}"
        by_position = text.format
        used = [itemgetter(last[n]) for n in self._names]

        def of_tuples(rows: Sequence[Any]) -> list[bytes]:
            if _raw_in(map(get, rows) for get in used):
                raise KeyValueRefused("a key column is NULL or binary")
            return [by_position(*r).encode() for r in rows]

        return of_tuples

    def build(self, params: Mapping[str, Any] | None, row: Mapping[str, Any] | None) -> bytes:
        """The key; KeyError naming a template field (or a column a key function reads)
        that has no value, KeyValueRefused naming one whose value cannot go into a key, or
        saying what a key function returned instead of a key (module docstring)."""
        if self.function is not None:
            made = self.function(
                sql=self.normalized,
                params=None if params is None else KeyInputs(params),
                row=None if row is None else KeyInputs(row),
            )
            if isinstance(made, bytes | bytearray):
                return bytes(made)
            if not isinstance(made, str):
                raise KeyValueRefused(
                    f"key_function returned {type(made).__name__}, not str or bytes"
                )
            return made.encode()
        assert self.template is not None
        if self.plain and params is None and row is not None:  # the common row-mode case
            return self.template.format_map(self._usable(row)).encode()
        values: dict[str, Any] = {"query": self.query_name, "set": self.set_name}
        if self._needs_digest:
            data = digest_input(self.sql, params)
            values["md5"] = hashlib.md5(data, usedforsecurity=False).hexdigest()
            values["sha1"] = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if self._needs_rendered:
            sent = self.interpolate(self.sql, params) if self.interpolate else self.sql
            values["rendered_md5"] = hashlib.md5(
                normalize_sql(sent).encode(), usedforsecurity=False
            ).hexdigest()
        if params:
            values.update(self._usable(params))
        if row:
            values.update(self._usable(row))
        return self.template.format_map(_Strict(values)).encode()

    def _usable(self, values: Mapping[str, Any]) -> Mapping[str, Any]:
        """``values`` with the template's fields as a key takes them (:func:`_key_text`)."""
        raw = [n for n in self._names if n in values and isinstance(values[n], _RAW)]
        if not raw:
            return values
        return {**values, **{n: _key_text(n, values[n]) for n in raw}}


class _Strict(dict[str, Any]):
    """A format mapping whose missing fields raise KeyError with the field's name."""

    def __missing__(self, name: str) -> Any:
        raise KeyError(name)
