"""The secondary indexes (every index but ``_id_``) a Mongo restore gives each collection,
and the check that an existing target collection can take the backup's.

Contract:
- :func:`final_indexes` is, per restored collection, the indexes it has at the end of the
  backup: those its metadata lists (dump time), changed by the oplog slice's index
  commands in order (``createIndexes``/``commitIndexBuild`` add, ``dropIndexes``/
  ``deleteIndexes`` and a collection ``drop`` remove, ``collMod`` changes an index's
  ``hidden``, ``expireAfterSeconds`` or ``unique``). Whether an index command came before
  or after its collection was dumped, the last one to name an index decides, as on the
  source.
- :func:`without_index_commands` is the slice without those commands (nor
  ``startIndexBuild``/``abortIndexBuild``, nor a ``collMod``'s ``index`` change): the
  restore replays data changes onto collections without secondary indexes and builds
  :func:`final_indexes` afterwards (:func:`build`), so that a unique index never judges
  the intermediate states a replay of a fuzzy snapshot passes through (they need not
  satisfy it against later data). Index commands inside a transaction's ``applyOps`` are
  left in place (they only create indexes on new collections).
- :func:`build` creates indexes and returns those the server refused (a unique index the
  restored documents break), with the server's reason, instead of raising: the caller
  names them all.
- :func:`conflicts` says why an existing collection cannot become the backup's without
  being dropped: other options, or an index the backup does not hold with that name and
  definition. Indexes it lacks are not conflicts: the restore builds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import bson
import pymongo.errors
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.raw_bson import RawBSONDocument

INDEX_OPTIONS = (
    "unique", "sparse", "partialFilterExpression", "expireAfterSeconds", "collation", "hidden",
    "weights", "default_language", "language_override", "textIndexVersion",
    "2dsphereIndexVersion", "bits", "min", "max", "wildcardProjection",
)  # fmt: skip
ID_INDEX = "_id_"
# Index commands the replay leaves to build(): the first two change the final set.
_ADDS = ("createIndexes", "commitIndexBuild")
_DROPS = ("dropIndexes", "deleteIndexes")
_MODIFIABLE = ("hidden", "expireAfterSeconds", "unique")
INDEX_COMMANDS = frozenset({*_ADDS, *_DROPS, "startIndexBuild", "abortIndexBuild"})

# a command's body decoded whole (raw entries keep nested documents raw, which compare
# unequal to the dicts list_indexes gives); dates outside Python's range as DatetimeMS
_DECODE: CodecOptions[dict[str, Any]] = CodecOptions(
    datetime_conversion=DatetimeConversion.DATETIME_AUTO
)
Key = tuple[str, str]  # (database, collection), as the backup names them
Indexes = dict[str, dict[str, Any]]  # index name -> its spec (key, name, options)


def secondary(specs: Iterable[Mapping[str, Any]]) -> Indexes:
    """``specs`` (``list_indexes`` documents) by name, ``_id_`` left out."""
    return {str(s["name"]): dict(s) for s in specs if s.get("name") != ID_INDEX}


def _command(entry: Mapping[str, Any]) -> tuple[str, Any, dict[str, Any]] | None:
    """(command name, its first value, the whole command) of a top-level command entry."""
    if entry.get("op") != "c":
        return None
    found = entry.get("o") or {}
    body = bson.decode(found.raw, _DECODE) if isinstance(found, RawBSONDocument) else dict(found)
    if not body:
        return None
    name = next(iter(body))
    return name, body[name], body


def without_index_commands(entries: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """``entries`` less their top-level index commands, and ``collMod`` entries less their
    ``index`` change (module docstring)."""
    for entry in entries:
        command = _command(entry)
        if command is None:
            yield entry
        elif command[0] == "collMod" and "index" in command[2]:
            rest = {k: v for k, v in command[2].items() if k != "index"}
            if len(rest) > 1:  # other changes (a validator...) are replayed
                yield {**entry, "o": rest}
        elif command[0] not in INDEX_COMMANDS:
            yield entry


def final_indexes(
    dumped: Mapping[Key, Indexes], created: Iterable[Key], entries: Iterable[Mapping[str, Any]]
) -> dict[Key, Indexes]:
    """Per collection of ``dumped`` (its metadata's indexes) and ``created`` (by the slice,
    no metadata), its indexes after the slice ``entries`` (module docstring)."""
    final = {key: dict(indexes) for key, indexes in dumped.items()}
    for key in created:
        final.setdefault(key, {})
    for entry in entries:
        command = _command(entry)
        if command is None:
            continue
        name, coll, body = command
        key = (str(entry.get("ns", "")).partition(".")[0], str(coll))
        if key not in final:
            continue
        indexes = final[key]
        if name == "drop":
            indexes.clear()
        elif name == "createIndexes":
            spec = {k: v for k, v in body.items() if k != name}
            indexes[str(spec["name"])] = spec
        elif name == "commitIndexBuild":
            indexes.update(secondary(body.get("indexes") or []))
        elif name in _DROPS:
            _drop(indexes, body.get("index", "*"))
        elif name == "collMod" and isinstance(body.get("index"), Mapping):
            _modify(indexes, body["index"])
    return final


def _modify(indexes: Indexes, change: Mapping[str, Any]) -> None:
    """Apply a ``collMod`` ``index`` change (``hidden``, ``expireAfterSeconds``, ``unique``)
    to the index it names (``name`` or ``keyPattern``)."""
    for spec in indexes.values():
        if spec.get("name") == change.get("name") or (
            "keyPattern" in change and dict(spec["key"]) == dict(change["keyPattern"])
        ):
            spec.update({k: v for k, v in change.items() if k in _MODIFIABLE})
            return


def _drop(indexes: Indexes, which: Any) -> None:
    """Remove from ``indexes`` what a dropIndexes ``index`` value names: ``"*"``, a name, a
    list of names, or a key pattern."""
    if which == "*":
        indexes.clear()
    elif isinstance(which, str):
        indexes.pop(which, None)
    elif isinstance(which, list):
        for name in which:
            indexes.pop(str(name), None)
    elif isinstance(which, Mapping):
        pattern = list(which.items())
        for name in [n for n, s in indexes.items() if list(dict(s["key"]).items()) == pattern]:
            del indexes[name]


def definition(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two indexes the same: key (in order) and options (false ones as unset)."""
    options = sorted((k, spec[k]) for k in INDEX_OPTIONS if k in spec and spec[k] is not False)
    return tuple(dict(spec["key"]).items()), tuple(options)


def build(coll: Any, indexes: Indexes) -> list[str]:
    """Create ``indexes`` on ``coll`` (existing ones with the same definition stay); the
    ones refused, each as ``NAME: reason``."""
    refused = []
    for name, spec in indexes.items():
        options = {k: spec[k] for k in INDEX_OPTIONS if k in spec}
        try:
            coll.create_index(list(dict(spec["key"]).items()), name=name, **options)
        except pymongo.errors.OperationFailure as exc:
            unique = " (unique)" if spec.get("unique") else ""
            reason = (exc.details or {}).get("errmsg") or str(exc)
            refused.append(f"{name}{unique}: {reason}")
    return refused


def conflicts(
    options: Mapping[str, Any] | None,
    target_options: Mapping[str, Any],
    indexes: Indexes,
    target_indexes: Indexes,
) -> list[str]:
    """Why an existing collection (``target_*``) cannot become the backup's (``options``;
    None: not known, not compared; ``indexes``: its final ones) without being dropped."""
    found = []
    if options is not None and dict(options) != dict(target_options):
        found.append(f"options {dict(target_options)}, the backup's {dict(options)}")
    for name, spec in target_indexes.items():
        wanted = indexes.get(name)
        if wanted is None:
            found.append(f"index {name} (not in the backup)")
        elif definition(wanted) != definition(spec):
            found.append(f"index {name} {_shown(spec)}, the backup's {_shown(wanted)}")
    return found


def _shown(spec: Mapping[str, Any]) -> str:
    key, options = definition(spec)
    return str(dict(key)) + "".join(f" {k}={v}" for k, v in options)
