"""MongoDB collections, validators and indexes from ``schemas/mongo/*.json``, idempotently.

One file per collection::

    {"database": "app", "collection": "users",
     "validator": {"$jsonSchema": {"bsonType": "object", "required": ["email"]}},
     "validationLevel": "strict",
     "indexes": [{"name": "email_1", "keys": {"email": 1}, "unique": true}]}

Contract. A missing collection is created (with its validator); a different validator is set
with ``collMod``; a missing index is created. Nothing is ever dropped: an existing index with
the same name and other keys or options is refused (exit 2) for a person to resolve. Extra
indexes and collections are left alone. Running it again changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatier.config import MongoSettings
from datatier.errors import ConfigError, OperationFailed, ServiceUnavailable, UsageError
from datatier.provision.plan import Change, Provisioner

INDEX_OPTIONS = ("unique", "sparse", "expireAfterSeconds")


def _set(value: Any) -> bool:
    """Whether an index option is given (``0`` is a value: a TTL of 0 s; False is not)."""
    return value is not None and value is not False


@dataclass(frozen=True)
class CollectionSpec:
    database: str
    collection: str
    validator: dict[str, Any] | None
    validation_level: str | None
    indexes: tuple[dict[str, Any], ...]
    source: str

    @property
    def namespace(self) -> str:
        return f"{self.database}.{self.collection}"


def _index(raw: Any, source: str, i: int) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("keys"), dict) or not raw["keys"]:
        raise ConfigError(source, f"indexes[{i}]", 'needs "keys": {"field": 1, ...}')
    keys = {str(k): v for k, v in raw["keys"].items()}
    name = raw.get("name") or "_".join(f"{k}_{v}" for k, v in keys.items())
    index = {"name": str(name), "keys": keys}
    index.update({k: raw[k] for k in INDEX_OPTIONS if _set(raw.get(k))})
    unknown = set(raw) - {"name", "keys", *INDEX_OPTIONS}
    if unknown:
        raise ConfigError(source, f"indexes[{i}]", f"unknown key(s): {', '.join(sorted(unknown))}")
    return index


def mongo_specs(directory: Path) -> list[CollectionSpec]:
    """Every ``*.json`` spec in ``directory`` (name order); ConfigError on a bad file."""
    if not directory.is_dir():
        return []
    specs = []
    for path in sorted(directory.glob("*.json")):
        source = str(path)
        try:
            doc = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(source, None, f"invalid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError(source, None, "expected a JSON object")
        for key in ("database", "collection"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise ConfigError(source, key, "missing required value")
        unknown = set(doc) - {"database", "collection", "validator", "validationLevel", "indexes"}
        if unknown:
            raise ConfigError(source, None, f"unknown key(s): {', '.join(sorted(unknown))}")
        specs.append(
            CollectionSpec(
                database=doc["database"],
                collection=doc["collection"],
                validator=doc.get("validator"),
                validation_level=doc.get("validationLevel"),
                indexes=tuple(_index(x, source, i) for i, x in enumerate(doc.get("indexes", []))),
                source=source,
            )
        )
    return specs


class MongoSchemas(Provisioner):
    """The deployment's collections versus the spec files (see module docstring)."""

    kind = "mongo"

    def __init__(self, settings: MongoSettings, specs: list[CollectionSpec]) -> None:
        self.settings = settings
        self.specs = specs

    @property
    def resource(self) -> str:
        return "mongo"

    def _client(self) -> Any:
        import pymongo  # lazy: ~0.2 s to import

        return pymongo.MongoClient(
            self.settings.uri,
            username=self.settings.username,
            password=self.settings.password.reveal() or None,
            serverSelectionTimeoutMS=int(self.settings.server_selection_timeout * 1000),
        )

    def _call(self, action: str, fn: Any) -> Any:
        import pymongo.errors

        from datatier.mongo.client import unreachable  # lazy: pymongo

        try:
            with self._client() as client:
                return fn(client)
        except pymongo.errors.OperationFailure as exc:
            if exc.code in (13, 18):  # Unauthorized, AuthenticationFailed
                raise ServiceUnavailable(f"MongoDB refused to {action}: {exc.details}") from None
            raise OperationFailed(f"MongoDB could not {action}: {exc}") from None
        except pymongo.errors.ConnectionFailure as exc:
            raise unreachable(self.settings.uri, exc) from None
        except pymongo.errors.PyMongoError as exc:
            raise ServiceUnavailable(f"cannot reach MongoDB to {action}: {exc}") from None

    def observe(self) -> dict[str, Any]:
        def read(client: Any) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for spec in self.specs:
                db = client[spec.database]
                info = list(db.list_collections(filter={"name": spec.collection}))
                if not info:
                    found[spec.namespace] = {"exists": False}
                    continue
                options = info[0].get("options", {})
                indexes = {}
                for ix in db[spec.collection].list_indexes():
                    entry = {"keys": dict(ix["key"])}
                    entry.update({k: ix[k] for k in INDEX_OPTIONS if _set(ix.get(k))})
                    indexes[ix["name"]] = entry
                found[spec.namespace] = {
                    "exists": True,
                    "validator": options.get("validator"),
                    "validationLevel": options.get("validationLevel"),
                    "indexes": indexes,
                }
            normalised: dict[str, Any] = json.loads(json.dumps(found, default=str))
            return normalised

        observed: dict[str, Any] = self._call("list collections", read)
        return observed

    def diff(self, observed: dict[str, Any]) -> list[Change]:
        changes = []
        for spec in self.specs:
            now = observed.get(spec.namespace, {"exists": False})
            ns = spec.namespace
            if not now.get("exists"):
                changes.append(
                    Change(self.resource, f"collection {ns}", "create", None, spec.validator)
                )
            elif spec.validator is not None and (
                now.get("validator") != spec.validator
                or (spec.validation_level and now.get("validationLevel") != spec.validation_level)
            ):
                changes.append(
                    Change(
                        self.resource,
                        f"validator {ns}",
                        "update",
                        now.get("validator"),
                        spec.validator,
                    )
                )
            have = now.get("indexes", {}) if now.get("exists") else {}
            for ix in spec.indexes:
                want = {k: v for k, v in ix.items() if k != "name"}
                if ix["name"] not in have:
                    changes.append(
                        Change(self.resource, f"index {ns}.{ix['name']}", "create", None, want)
                    )
                elif have[ix["name"]] != want:
                    raise UsageError(
                        f"{spec.source}: index {ix['name']} on {ns} exists with "
                        f"{json.dumps(have[ix['name']], sort_keys=True)}, not "
                        f"{json.dumps(want, sort_keys=True)}",
                        hint="datatier never drops an index: rename it or drop it by hand",
                    )
        return changes

    def apply_change(self, change: Change) -> None:
        what, _, target = change.item.partition(" ")
        spec = next(
            (
                s
                for s in self.specs
                if target == s.namespace or target.startswith(s.namespace + ".")
            ),
            None,
        )
        if spec is None:
            raise UsageError(f"the plan names {target}, which no spec file describes")

        def act(client: Any) -> None:
            db = client[spec.database]
            options: dict[str, Any] = {}
            if spec.validator is not None:
                options["validator"] = spec.validator
                if spec.validation_level:
                    options["validationLevel"] = spec.validation_level
            if what == "collection":
                db.create_collection(spec.collection, **options)
            elif what == "validator":
                db.command({"collMod": spec.collection, **options})
            elif what == "index":
                name = target[len(spec.namespace) + 1 :]
                ix = next((i for i in spec.indexes if i["name"] == name), None)
                if ix is None:
                    raise UsageError(f"the plan creates index {target}, which {spec.source} lacks")
                extra = {k: ix[k] for k in INDEX_OPTIONS if k in ix}
                db[spec.collection].create_index(list(ix["keys"].items()), name=name, **extra)
            else:
                raise UsageError(f"unknown mongo change {change.item!r} in plan")

        self._call(f"apply {change.item}", act)
